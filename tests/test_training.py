"""The training loop, its schedule, config validation, checkpoints, NaN guard and early stopping."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import CountingModel, NaNAt, TinyAR, digits_sets, tiny_run

from chainrule.core.errors import CheckpointError, ConfigError, TrainingDiverged
from chainrule.core.training import TrainConfig, Trainer, load_weights, save_weights
from chainrule.core.training.checkpoint import latest_checkpoint
from chainrule.core.training.schedule import lr_factor, warmup_cosine
from chainrule.core.training.validation import mean_nll
from chainrule.modalities.image.data.base import ImageDataset

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return digits_sets()


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()  # runs with num_threads=1 change the process-wide setting
    yield
    torch.set_num_threads(n)


def cfg(**kw) -> TrainConfig:
    base = dict(steps=40, batch_size=32, lr=3e-3, warmup_steps=5, eval_every=10, eval_batch_size=128,
                checkpoint_every=10, keep_checkpoints=0, log_every=5, progress=False, device="cpu", seed=3,
                num_threads=1)
    return TrainConfig(**{**base, **kw})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): digest(p) for p in sorted(run.rglob("*.safetensors")) + sorted(
        run.rglob("*.state.pt"))}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ schedule
def test_schedule_warmup_is_linear_and_cosine_ends_at_min_ratio():
    total, warm, floor = 110, 10, 0.1
    f = [lr_factor(s, total, warm, floor) for s in range(total)]
    assert f[:warm] == pytest.approx([(s + 1) / warm for s in range(warm)])  # linear, reaching 1
    assert f[warm] == pytest.approx(1.0)
    assert f[-1] == pytest.approx(floor)  # last update at lr * min_lr_ratio
    assert f[warm + 99 // 2] == pytest.approx(floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * 49 / 99)))
    assert all(a >= b for a, b in zip(f[warm:], f[warm + 1:], strict=False))  # decays monotonically
    assert lr_factor(0, 1, 0, 0.0) == 1.0 and lr_factor(5, 10, 0, 0.5) > 0.5
    # the LambdaLR form gives the same per-step learning rates
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = warmup_cosine(opt, total, warm, floor)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2.0 * v for v in f])


# ------------------------------------------------------------------ config
def test_config_from_dict_and_validation():
    c = TrainConfig.from_dict({"lr": "3e-4", "steps": "1e3", "betas": [0.9, 0.95], "ema": 0.999})
    assert (c.lr, c.steps, c.betas, c.ema) == (3e-4, 1000, (0.9, 0.95), 0.999)  # YAML strings coerced
    assert TrainConfig.from_dict(c.to_dict()) == c
    bad = [({"learning_rate": 1e-3}, "learning_rate"), ({"lr": -1e-3}, "lr"), ({"lr": 0}, "lr"),
           ({"steps": 0}, "steps"), ({"batch_size": 2.5}, "batch_size"), ({"ema": 1.0}, "ema"),
           ({"betas": [0.9]}, "betas"), ({"min_lr_ratio": 2}, "min_lr_ratio"), ({"grad_clip": -1}, "grad_clip"),
           ({"lr": "fast"}, "lr"), ({"lr": float("nan")}, "lr"), ({"device": "tpu9"}, "device"),
           ({"progress": "yes"}, "progress"), ({"patience": -1}, "patience"), ({"keep_weights": "last"},
                                                                                 "keep_weights")]
    for d, name in bad:
        with pytest.raises(ConfigError, match=name):
            TrainConfig.from_dict(d)


def test_config_checks_against_data_and_processes(digits, tmp_path, monkeypatch):
    train, val = digits
    with pytest.raises(ConfigError, match="larger than the training set"):
        Trainer(TinyAR(), train, val, cfg(batch_size=len(train) + 1), tmp_path / "a")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="divisible"):
        Trainer(TinyAR(), train, val, cfg(batch_size=33), tmp_path / "b")


# ------------------------------------------------------------------ learning
def test_training_beats_independent_pixels(digits, tmp_path):
    train, val = digits
    # the closed-form independent-pixel baseline (fitted by counting) gives ~24.4 nats on this split
    base = Trainer(CountingModel(), train, val, cfg(), tmp_path / "hist").fit()
    assert base["steps"] == 0 and base["reason"].startswith("closed-form")
    assert (tmp_path / "hist" / "best.safetensors").exists()
    torch.manual_seed(0)
    model = TinyAR(hidden=32)
    init = mean_nll(model, val, 256, CPU)  # ~46 nats (random logits near 0 -> ~64 ln 2 = 44)
    s = Trainer(model, train, val, cfg(steps=200, lr=1e-2, eval_every=50, checkpoint_every=100), tmp_path / "ar").fit()
    # Threshold: a fully-visible sigmoid belief net reaches ~18 nats here after 200 steps (measured 17.6-18.4),
    # so requiring 3 nats below the independent-pixel baseline and 20 below init leaves a wide margin while
    # failing any run that learns no pixel dependencies.
    assert s["best_val_nll"] < base["best_val_nll"] - 3.0
    assert s["best_val_nll"] < init - 20.0
    assert s["best_val_bpd"] == pytest.approx(s["best_val_nll"] / (64 * math.log(2)))
    assert s["steps"] == 200 and not s["stopped_early"]
    records = [json.loads(ln) for ln in (tmp_path / "ar" / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in records if r["split"] == "train"]
    val_recs = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in train_recs] == list(range(5, 201, 5))
    assert {"step", "epoch", "lr", "train_nll", "train_bpd", "grad_norm"} <= train_recs[0].keys()
    assert [r["step"] for r in val_recs] == [50, 100, 150, 200]
    assert min(r["val_nll"] for r in val_recs) == pytest.approx(s["best_val_nll"])
    # best.safetensors holds the weights that scored best_val_nll
    fresh = TinyAR(hidden=32)
    load_weights(fresh, tmp_path / "ar" / "best.safetensors")
    assert mean_nll(fresh, val, 100, CPU) == pytest.approx(s["best_val_nll"], rel=1e-9)
    assert sorted(p.name for p in (tmp_path / "ar" / "checkpoints").iterdir()) == [
        "step-000100.safetensors", "step-000100.state.pt", "step-000200.safetensors", "step-000200.state.pt"]


def test_ema_weights_are_evaluated_and_saved_as_best(digits, tmp_path):
    train, val = digits
    torch.manual_seed(0)
    model = TinyAR(hidden=16)
    s = Trainer(model, train, val, cfg(steps=30, ema=0.9), tmp_path / "r").fit()
    best = load_file(tmp_path / "r" / "best.safetensors")
    ema = load_file(tmp_path / "r" / "checkpoints" / f"step-{s['best_step']:06d}.ema.safetensors")
    live = load_file(tmp_path / "r" / "checkpoints" / f"step-{s['best_step']:06d}.safetensors")
    assert same_weights(best, ema) and not same_weights(best, live)


def test_without_validation_the_final_ema_weights_are_best_and_an_in_memory_fit_writes_nothing(digits, tmp_path,
                                                                                                 monkeypatch):
    train, _ = digits
    opts = dict(steps=13, ema=0.9, checkpoint_every=5, log_every=5)
    torch.manual_seed(0)
    s = Trainer(TinyAR(hidden=16), train, None, cfg(**opts), tmp_path / "r").fit()
    best = load_file(tmp_path / "r" / "best.safetensors")
    final_ema = load_file(tmp_path / "r" / "checkpoints" / "step-000013.ema.safetensors")
    live = load_file(tmp_path / "r" / "checkpoints" / "step-000013.safetensors")
    assert same_weights(best, final_ema) and not same_weights(best, live)
    assert s["best_val_nll"] is None and s["steps"] == 13 and math.isfinite(s["final_train_nll"])
    records = [json.loads(ln) for ln in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 13]  # the last, partial logging window is logged too
    # run_dir=None: the same fit in memory, nothing written anywhere
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    before = sorted(tmp_path.rglob("*"))
    torch.manual_seed(0)
    model = TinyAR(hidden=16)
    trainer = Trainer(model, train, None, cfg(**opts), None)
    mem = trainer.fit()
    assert sorted(tmp_path.rglob("*")) == before
    assert mem["run_dir"] is None and mem["best_weights"] is None and mem["last_checkpoint"] is None
    assert mem["final_train_nll"] == s["final_train_nll"]
    assert same_weights(trainer.eval_model.state_dict(), best)


# ------------------------------------------------------------------ checkpoints
class Tied(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 4)
        self.b = self.a  # shared parameters


def test_weights_round_trip_is_exact(digits, tmp_path):
    _, val = digits
    torch.manual_seed(1)
    model = TinyAR(hidden=16, dropout=0.2).eval()
    save_weights(model, tmp_path / "w.safetensors")
    other = TinyAR(hidden=16, dropout=0.2).eval()
    meta = load_weights(other, tmp_path / "w.safetensors")
    assert meta["format"] == "chainrule"
    assert same_weights(model.state_dict(), other.state_dict())
    x, _ = val.all()
    assert torch.equal(model.log_prob(x), other.log_prob(x))
    tied = Tied()
    save_weights(tied, tmp_path / "tied.safetensors")
    tied2 = Tied()
    load_weights(tied2, tmp_path / "tied.safetensors")
    assert torch.equal(tied2.b.weight, tied.a.weight) and tied2.a is tied2.b


def test_corrupt_or_mismatched_checkpoint_raises_and_leaves_files(tmp_path):
    torch.manual_seed(2)
    model = TinyAR(hidden=8)
    good = tmp_path / "good.safetensors"
    save_weights(model, good)
    data = good.read_bytes()
    cases = {"truncated.safetensors": data[: len(data) // 2], "garbage.safetensors": b"not a checkpoint" * 10,
             "empty.safetensors": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    before = {p.name: digest(p) for p in tmp_path.iterdir()}
    target = TinyAR(hidden=8)
    params = {k: v.clone() for k, v in target.state_dict().items()}
    for name in [*cases, "missing.safetensors"]:
        with pytest.raises(CheckpointError, match=f"{name}: not a valid chainrule checkpoint"):
            load_weights(target, tmp_path / name)
    with pytest.raises(CheckpointError, match="missing keys: .*fc_in.weight"):
        load_weights(TinyAR(hidden=8), _saved(TinyAR(hidden=0), tmp_path / "small.safetensors"))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_weights(target, _saved(TinyAR(hidden=4), tmp_path / "narrow.safetensors"))
    assert same_weights(params, target.state_dict())  # nothing was half-loaded
    assert {p.name: digest(p) for p in tmp_path.iterdir() if p.name in before} == before


def _saved(model: torch.nn.Module, path: Path) -> Path:
    save_weights(model, path)
    return path


def test_resume_skips_a_corrupt_newest_checkpoint_and_continues_exactly(tmp_path):
    full = tmp_path / "full"
    model_a, _ = tiny_run(full, steps=40, hidden=16, dropout=0.1, ema=0.8, keep_checkpoints=0)
    broken = tmp_path / "broken"
    shutil.copytree(full, broken)
    for p in (broken / "checkpoints").glob("step-000040.*"):
        p.unlink()  # as if killed before step 40
    w30 = broken / "checkpoints" / "step-000030.safetensors"
    w30.write_bytes(w30.read_bytes()[:-100])  # truncated weights: step 30 must be skipped
    before = snapshot(broken)
    with pytest.warns(UserWarning, match="skipping checkpoint at step 30"):
        files, state, _, _ = latest_checkpoint(broken)
    assert files.step == 20 and state["progress"]["step"] == 20
    assert snapshot(broken) == before
    with pytest.warns(UserWarning, match="step 30"):
        model_b, summary = tiny_run(broken, steps=40, hidden=16, dropout=0.1, ema=0.8, keep_checkpoints=0,
                                    resume=True)
    assert summary["steps"] == 40
    assert same_weights(model_a.state_dict(), model_b.state_dict())
    for name in ("step-000040.safetensors", "step-000040.ema.safetensors"):
        assert same_weights(load_file(full / "checkpoints" / name), load_file(broken / "checkpoints" / name))
    assert (full / "metrics.jsonl").read_text() == (broken / "metrics.jsonl").read_text()


def test_refuses_to_overwrite_a_run_and_to_resume_nothing(digits, tmp_path):
    train, val = digits
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        Trainer(TinyAR(), train, val, cfg(), tmp_path / "empty", resume=True).fit()
    Trainer(TinyAR(), train, val, cfg(steps=10), tmp_path / "run").fit()
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        Trainer(TinyAR(), train, val, cfg(steps=10), tmp_path / "run")


# ------------------------------------------------------------------ NaN guard
def test_nan_loss_stops_without_touching_saved_files(digits, tmp_path):
    train, val = digits
    run = tmp_path / "run"
    torch.manual_seed(0)
    Trainer(TinyAR(hidden=8), train, val, cfg(steps=20), run).fit()
    before = snapshot(run)
    assert "best.safetensors" in before and "checkpoints/step-000020.state.pt" in before
    torch.manual_seed(0)
    model = NaNAt(nan_at=5, hidden=8)  # the 5th step after resuming, i.e. step 25
    with pytest.raises(TrainingDiverged, match=r"step 25.*step-000020\.safetensors"), pytest.warns(UserWarning):
        Trainer(model, train, val, cfg(steps=40), run, resume=True).fit()
    assert snapshot(run) == before  # no checkpoint written, best.safetensors untouched
    assert not (run / "checkpoints" / "step-000030.state.pt").exists()
    # diverging before any checkpoint says so
    with pytest.raises(TrainingDiverged, match="step 3: loss nan.*no checkpoint"):
        Trainer(NaNAt(nan_at=3), train, val, cfg(), tmp_path / "fresh").fit()
    assert not (tmp_path / "fresh" / "best.safetensors").exists()


# ------------------------------------------------------------------ early stopping
def noise_val(val: ImageDataset) -> ImageDataset:
    """Uniform random bits: zero logits (a zero-initialised TinyAR) are optimal for them, and fitting the digits
    moves away from zero, so no evaluation after the first one improves."""
    return ImageDataset(torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(0)), None,
                        val.discretizer, "noise", "val")


def zero_tiny_ar() -> TinyAR:
    model = TinyAR()
    torch.nn.init.zeros_(model.direct.weight)
    torch.nn.init.zeros_(model.direct.bias)
    return model


def test_keep_weights_final_keeps_the_last_step_while_best_keeps_the_lowest_validation(digits, tmp_path):
    train, val = digits
    opts = dict(steps=20, lr=1e-2, eval_every=5, checkpoint_every=5)
    kept = {}
    for keep in ("best", "final"):
        s = Trainer(zero_tiny_ar(), train, noise_val(val), cfg(**opts, keep_weights=keep), tmp_path / keep).fit()
        assert s["best_step"] == 5 and s["kept_weights"] == keep  # the best validation step is reported either way
        kept[keep] = load_file(tmp_path / keep / "best.safetensors")
    at = {n: load_file(tmp_path / "best" / "checkpoints" / f"step-{n:06d}.safetensors") for n in (5, 20)}
    assert same_weights(kept["best"], at[5]) and not same_weights(kept["best"], at[20])
    assert same_weights(kept["final"], at[20])  # the two runs are the same trajectory


def test_early_stopping_when_validation_gets_worse(digits, tmp_path):
    train, val = digits
    noise = noise_val(val)  # no evaluation after the first one improves
    s = Trainer(zero_tiny_ar(), train, noise, cfg(steps=500, lr=1e-2, eval_every=5, patience=2, checkpoint_every=0),
                tmp_path / "r").fit()
    assert s["stopped_early"] and "early stopping" in s["reason"]
    assert s["steps"] == 15 and s["best_step"] == 5
    assert (tmp_path / "r" / "checkpoints" / "step-000015.state.pt").exists()
    assert load_file(tmp_path / "r" / "best.safetensors") is not None
    # resuming an early-stopped run does nothing more
    again = Trainer(TinyAR(), train, noise, cfg(steps=500, lr=1e-2, eval_every=5, patience=2),
                    tmp_path / "r", resume=True).fit()
    assert again["steps"] == 15 and again["stopped_early"]
