"""``train.eval_max_windows``: the trainer's evaluations score one fixed, seeded subset of the validation split —
the same examples at every evaluation, after a resume and in every process — and say so in the summary."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from training_helpers import TinyAR, digits_arrays, digits_sets, tiny_run

from chainrule.core.errors import ConfigError
from chainrule.core.evaluation.plots import validation_label
from chainrule.core.training import TrainConfig, Trainer, load_weights
from chainrule.core.training.eval_subset import eval_indices
from chainrule.core.training.validation import mean_nll

CPU = torch.device("cpu")
SUBSET = 50  # of the 297 validation digits
SEED = 7  # tiny_run's seed
SCRIPT = Path(__file__).parent / "scripts" / "train_tiny.py"


@pytest.fixture(scope="module")
def digits():
    return digits_sets()


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def val_records(run) -> list[dict]:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "val"]


def test_subset_is_a_pure_function_of_split_size_count_and_seed():
    torch.manual_seed(0)
    a = eval_indices(297, SUBSET, SEED)
    torch.manual_seed(1)  # every rank seeds its global RNG differently: the subset must not depend on it
    torch.rand(5)
    b = eval_indices(297, SUBSET, SEED)
    assert torch.equal(a, b)
    assert len(a) == SUBSET and len(set(a.tolist())) == SUBSET and 0 <= a.min() and a.max() < 297
    assert torch.equal(a, a.sort().values)
    assert not torch.equal(a, eval_indices(297, SUBSET, SEED + 1))  # the run seed chooses it
    assert eval_indices(297, 0, SEED) is None  # 0 = the whole split
    assert eval_indices(297, 297, SEED) is None and eval_indices(297, 1000, SEED) is None


def test_every_evaluation_scores_the_same_subset(tmp_path):
    """Each logged val_nll equals a direct computation, with that step's checkpointed weights, over exactly the
    subset drawn from the run seed: the same examples at step 10, 20, 30 and 40."""
    _, summary = tiny_run(tmp_path / "r", steps=40, keep_checkpoints=0, eval_max_windows=SUBSET)
    _, val = digits_sets()
    subset = eval_indices(len(val), SUBSET, SEED)
    records = val_records(tmp_path / "r")
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    for r in records:
        model = TinyAR(hidden=32)
        load_weights(model, tmp_path / "r" / "checkpoints" / f"step-{r['step']:06d}.safetensors")
        direct = -model.eval().log_prob(val.get(subset)[0]).double().mean().item()
        assert r["val_nll"] == pytest.approx(direct, rel=1e-9)
        assert (r["val_examples"], r["val_split_examples"], r["val_subset"]) == (SUBSET, len(val), True)
        full = mean_nll(model, val, 128, CPU)
        assert abs(full - r["val_nll"]) > 1e-6  # a subset estimate, not the split's NLL
    assert (summary["val_examples"], summary["val_split_examples"], summary["val_subset"]) == (SUBSET, len(val),
                                                                                               True)
    assert summary["best_val_nll"] == min(r["val_nll"] for r in records)
    assert validation_label(records) == f"validation (subset: {SUBSET} of {len(val)})"  # the plotted curve


def test_subset_survives_a_resume_exactly(tmp_path):
    """A run resumed from step 20 logs the same subset figures at steps 30 and 40 as the uninterrupted run (dropout
    on: the training RNG streams advance between evaluations, so a subset drawn from them would differ)."""
    opts = dict(steps=40, hidden=16, dropout=0.2, keep_checkpoints=0, eval_max_windows=SUBSET)
    full = tmp_path / "full"
    model_a, ref = tiny_run(full, **opts)
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    for p in (cut / "checkpoints").glob("step-00003*"):
        p.unlink()
    for p in (cut / "checkpoints").glob("step-00004*"):
        p.unlink()
    model_b, resumed = tiny_run(cut, resume=True, **opts)
    assert (full / "metrics.jsonl").read_text() == (cut / "metrics.jsonl").read_text()
    assert resumed["best_val_nll"] == ref["best_val_nll"] and resumed["best_step"] == ref["best_step"]
    a, b = load_file(full / "best.safetensors"), load_file(cut / "best.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_subset_does_not_change_the_training_trajectory(tmp_path):
    """Drawing the subset touches no training RNG: with dropout on, the weights after training are bitwise those
    of the full-split run."""
    model_a, _ = tiny_run(tmp_path / "full", steps=30, dropout=0.2, checkpoint_every=0)
    model_b, _ = tiny_run(tmp_path / "subset", steps=30, dropout=0.2, checkpoint_every=0, eval_max_windows=SUBSET)
    a, b = model_a.state_dict(), model_b.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_subset_as_large_as_the_split_is_the_full_evaluation_exactly(tmp_path, digits):
    _, val = digits
    _, full = tiny_run(tmp_path / "full", steps=20, checkpoint_every=0)
    for k in (len(val), len(val) + 10):
        _, same = tiny_run(tmp_path / f"k{k}", steps=20, checkpoint_every=0, eval_max_windows=k)
        assert val_records(tmp_path / f"k{k}") == val_records(tmp_path / "full")  # bitwise equal figures
        assert same["best_val_nll"] == full["best_val_nll"]
        assert (same["val_examples"], same["val_split_examples"], same["val_subset"]) == (len(val), len(val), False)
        assert validation_label(val_records(tmp_path / f"k{k}")) == "validation"


@pytest.mark.parametrize("value", [-1, 2.5, "many", True])
def test_bad_values_fail_in_one_line_naming_the_option(value):
    with pytest.raises(ConfigError, match="train.eval_max_windows") as e:
        TrainConfig.from_dict({"eval_max_windows": value})
    assert "\n" not in str(e.value)


def test_no_validation_set_means_no_scope_in_the_summary(digits):
    train, _ = digits
    cfg = TrainConfig(steps=2, batch_size=32, eval_every=1, checkpoint_every=0, progress=False, device="cpu",
                      eval_max_windows=SUBSET)
    summary = Trainer(TinyAR(), train, None, cfg, None).fit()
    assert "val_examples" not in summary and summary["best_val_nll"] is None


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="torch.distributed with the gloo backend is not available in this build")
def test_two_processes_score_the_same_subset_as_one(tmp_path):
    """Under torchrun each rank scores its half of the subset and the sums are all-reduced: the figures equal the
    single process's only if both ranks drew the same subset."""
    torch.save(digits_arrays(), tmp_path / "digits.pt")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(SCRIPT), str(tmp_path / "ddp"), "--steps", "20", "--batch-size", "32",
           "--eval-max-windows", str(SUBSET), "--data", str(tmp_path / "digits.pt")]
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    tiny_run(tmp_path / "one", steps=20, batch_size=32, eval_max_windows=SUBSET)
    ddp, one = val_records(tmp_path / "ddp"), val_records(tmp_path / "one")
    assert [r["step"] for r in ddp] == [r["step"] for r in one] == [10, 20]
    assert all(r["val_examples"] == SUBSET for r in ddp)
    # Tolerance: the weights differ only by the gradients' summation order (~1e-7 relative, see test_ddp.py)
    for a, b in zip(ddp, one, strict=True):
        assert a["val_nll"] == pytest.approx(b["val_nll"], rel=1e-5)


def test_text_run_scores_the_seeded_subset_of_its_windows(tmp_path):
    """Through ``api.train`` on a text corpus: the run's validation figure is the mean NLL of exactly the subset's
    windows of the held-out text (the last 10%, cut into whole windows), and the summary says it is a subset."""
    from chainrule import api

    context, count = 16, 5
    text = "".join(f"{w} " for w in ("to be or not to be that is the question " * 60).split())
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    run = api.train(f"textfile:{path}", "transformer", run_dir=tmp_path / "run", overrides=[
        f"data.context={context}", "data.tokenizer=char", f"data.root={tmp_path}", "model.embed_dim=16",
        "model.num_layers=1", "model.num_heads=2", "train.steps=10", "train.batch_size=8", "train.progress=false",
        "train.eval_every=0", "train.checkpoint_every=0", "output.samples=0", "train.seed=5",
        f"train.eval_max_windows={count}"])
    summary = json.loads((run.path / "summary.json").read_text())
    tokens = api.load_text_run(run)[1].encode(text[int(len(text) * 0.9):])
    windows = torch.tensor(tokens[: len(tokens) // context * context]).reshape(-1, 1, context)
    assert (summary["val_examples"], summary["val_split_examples"], summary["val_subset"]) == (count, len(windows),
                                                                                               True)
    subset = eval_indices(len(windows), count, 5)
    with torch.no_grad():
        direct = -run.load_model().eval().log_prob(windows[subset]).double().mean().item()
    assert summary["final_val_nll"] == pytest.approx(direct, rel=1e-5)
