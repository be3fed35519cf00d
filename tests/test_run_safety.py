"""Runs on disk lose nothing: one writer per run directory, a run stopped before its first checkpoint resumes,
weights verify themselves, reading a run needs no write access, refused writes and damaged inputs are one-line
errors (never a traceback nor a giant allocation), and imported shards stay inside their directory."""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from chainrule import api, cli
from chainrule.convert.gpt2 import import_gpt2, read_gpt2_config, read_gpt2_weights
from chainrule.core.errors import CheckpointError, ConfigError, DataError, RunLockedError
from chainrule.core.runs.atomic import atomic_write_text
from chainrule.core.runs.lock import run_lock
from chainrule.core.training import trainer as trainer_module
from chainrule.modalities.series import api as ts_api
from chainrule.modalities.series.table import from_frame, read_table
from chainrule.runs import open_run

#: a tiny PixelCNN on the digits that evaluates at step 6 and checkpoints first at step 10
IMAGE_RUN = ["train.steps=12", "train.batch_size=32", "train.eval_every=6", "train.checkpoint_every=10",
             "train.num_threads=1", "train.progress=false", "output.samples=0", "model.hidden_channels=8",
             "model.num_blocks=1", "model.output_channels=16"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the library catches it."""


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    return api.train("digits", "pixelcnn", overrides=IMAGE_RUN, run_dir=tmp_path_factory.mktemp("runs") / "ref").path


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def same_tensors(a: Path, b: Path) -> bool:
    x, y = load_file(a), load_file(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("chainrule: error:") and len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------ 7: one writer per run directory
def test_a_second_writer_gets_a_one_line_error_naming_the_holder(image_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    (run / ".tmp-summary.json.x1").write_text("the holder's half-written file")
    before = snapshot(run)
    new = tmp_path / "new"
    with run_lock(run), run_lock(new, create=True):  # another writer, as far as the commands below can tell
        with pytest.raises(RunLockedError, match=f"PID {os.getpid()}"):
            api.train(run_dir=run, resume=True)
        with pytest.raises(RunLockedError, match=f"PID {os.getpid()}"):
            api.train("digits", "pixelcnn", overrides=IMAGE_RUN, run_dir=new)
        assert [p.name for p in new.iterdir()] == [".lock"]
        res = subprocess.run([sys.executable, "-m", "chainrule", "train", "--resume", "--run", str(run)],
                             capture_output=True, text=True, timeout=600,
                             env={**os.environ, "CHAINRULE_OFFLINE": "1", "PYTHONWARNINGS": "ignore"})
        assert res.returncode == 1
        assert res.stderr.strip().splitlines() == [res.stderr.strip()], res.stderr
        assert f"PID {os.getpid()}" in res.stderr and "is writing this run" in res.stderr
    assert snapshot(run) == before  # no config rewritten, no temporary of the holder's deleted, no lock left
    assert not new.exists()
    with run_lock(run), pytest.raises(RunLockedError):  # the lock is free again, and exclusive
        with run_lock(run):
            pass
    with run_lock(run), run_lock(run, enabled=False):  # ranks other than 0 under torchrun take no lock
        pass


def test_a_failed_new_run_leaves_no_directory_and_a_finished_one_no_lock(image_run, tmp_path):
    with pytest.raises(ConfigError):
        api.train("digits", "pixelcnn", overrides=[*IMAGE_RUN, "model.no_such_option=1"], run_dir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    assert ".lock" not in {p.name for p in image_run.iterdir()}


def test_forecast_train_and_import_take_the_lock(tmp_path):
    csv = sales_csv(tmp_path / "sales.csv")
    held = tmp_path / "held"
    with run_lock(held, create=True):
        with pytest.raises(RunLockedError):
            ts_api.train_forecaster(csv, "lstm", horizon=3, time="date", target="sales", steps=4, progress=False,
                                    run_dir=held, hidden_size=8, num_layers=1)
        with pytest.raises(RunLockedError):
            import_gpt2(gpt2_dir(tmp_path / "hf"), held)
        assert [p.name for p in held.iterdir()] == [".lock"]


# ------------------------------------------------------------------ 8: stopped before the first checkpoint
def kill_at_first_checkpoint(monkeypatch) -> None:
    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(trainer_module, "write_checkpoint", killed)


def test_resume_starts_a_run_stopped_before_its_first_checkpoint_again(image_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        kill_at_first_checkpoint(m)
        with pytest.raises(Killed):
            api.train("digits", "pixelcnn", overrides=IMAGE_RUN, run_dir=run)
    assert (run / "config.yaml").is_file() and not (run / "checkpoints").exists()
    with pytest.raises(ConfigError, match="already exists"):
        api.train("digits", "pixelcnn", overrides=IMAGE_RUN, run_dir=run)
    api.train(run_dir=run, resume=True)
    for name in ("best.safetensors", "checkpoints/step-000012.safetensors"):
        assert same_tensors(run / name, image_run / name), name
    assert (run / "metrics.jsonl").read_text() == (image_run / "metrics.jsonl").read_text()


def sales_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    days = pd.date_range("2023-01-02", periods=40, freq="D")
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "sales": 20 + 5 * np.sin(np.arange(40)) + rng.normal(size=40)}
                 ).to_csv(path, index=False)
    return path


def test_forecast_resume_starts_a_run_stopped_before_its_first_checkpoint_again(tmp_path, monkeypatch):
    csv = sales_csv(tmp_path / "sales.csv")
    train = ["forecast", "train", str(csv), "--time", "date", "--target", "sales", "--horizon", "3", "--model",
             "lstm", "--steps", "12", "--batch-size", "8", "--device", "cpu", "--set", "model.hidden_size=8",
             "--set", "train.checkpoint_every=10", "--set", "train.log_every=2", "--set", "train.num_threads=1",
             "--set", "train.progress=false"]
    assert cli.main([*train, "--run", str(tmp_path / "ref")]) == 0
    with monkeypatch.context() as m:
        kill_at_first_checkpoint(m)
        with pytest.raises(Killed):
            cli.main([*train, "--run", str(tmp_path / "run")])
    assert cli.main(["forecast", "train", "--resume", "--run", str(tmp_path / "run")]) == 0
    assert same_tensors(tmp_path / "run" / "best.safetensors", tmp_path / "ref" / "best.safetensors")
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == (tmp_path / "ref" / "metrics.jsonl").read_text()


# ------------------------------------------------------------------ 9: weights verify themselves
def test_one_flipped_bit_in_best_weights_is_an_error(image_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    expected = api.evaluate(run)["nll_nats"]
    best = run / "best.safetensors"
    data = bytearray(best.read_bytes())
    data[-3] ^= 0x01  # a low mantissa bit of the last weight: the model still loads and runs
    best.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="best.safetensors.*sha256"):
        open_run(run).load_model()
    assert cli.main(["eval", str(run)]) == 1
    assert "sha256" in one_line_error(capsys)
    data[-3] ^= 0x01
    best.write_bytes(bytes(data))
    assert api.evaluate(run)["nll_nats"] == expected


# ------------------------------------------------------------------ 10: reading needs no write access
@pytest.fixture
def read_only(monkeypatch):
    """Make every write under the directories passed to the returned function fail with EROFS (tests run as
    root, where chmod would not stop them)."""
    roots: list[Path] = []
    real_os_open, real_open, real_mkdir = os.open, builtins.open, os.mkdir

    def inside(path) -> bool:
        try:
            p = Path(os.fsdecode(path)).absolute()
        except TypeError:
            return False
        return any(p == r or r in p.parents for r in roots)

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def os_mkdir(path, *args, **kwargs):
        if inside(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", os_mkdir)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    return lambda path: roots.append(Path(path).absolute())


def test_eval_of_a_read_only_run_reports_without_writing(image_run, tmp_path, read_only, capsys):
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    before = snapshot(run)
    read_only(run)
    with pytest.warns(UserWarning, match="not recorded"):
        result = api.evaluate(run)
    assert result["examples"] == 300
    with pytest.warns(UserWarning):
        assert cli.main(["eval", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == result
    assert cli.main(["eval", str(run), "--out", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text()) == result
    assert snapshot(run) == before


def test_eval_records_into_a_writable_run_unless_it_is_being_written(image_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    with run_lock(run), pytest.warns(UserWarning, match="is writing this run"):
        api.evaluate(run)
    assert "eval_test" not in json.loads((run / "summary.json").read_text())
    result = api.evaluate(run, split="val")
    assert json.loads((run / "summary.json").read_text())["eval_val"] == result


def test_training_into_a_read_only_directory_is_one_line(tmp_path, read_only, capsys):
    (tmp_path / "ro").mkdir()
    read_only(tmp_path / "ro")
    assert cli.main(["train", "digits", "histogram", "--run", str(tmp_path / "ro" / "run")]) == 1
    assert "Read-only file system" in one_line_error(capsys)


def test_a_full_disk_is_one_line_and_leaves_no_temporary(tmp_path, monkeypatch, capsys):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert cli.main(["train", "digits", "histogram", "--run", str(tmp_path / "run"), "--set", "output.samples=0"]) == 1
    err = one_line_error(capsys)
    assert "No space left on device" in err and "config.yaml" in err
    assert not list(tmp_path.rglob(".tmp-*"))


@pytest.mark.parametrize("edit, needle", [
    ({"spec": 5}, "spec must be a mapping"),
    ({"model": 5}, "model must be a mapping"),
    ({"spec.event_shape": [1, 100000, 100000]}, "event_shape"),
    ({"spec.event_shape": "big"}, "event_shape"),
    ({"spec.levels": 10 ** 12}, "levels"),
    ({"spec.num_classes": -1}, "num_classes"),
])
def test_a_malformed_run_config_is_refused_before_building_a_model(image_run, tmp_path, monkeypatch, capsys, edit,
                                                                     needle):
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    for key, value in edit.items():
        section, _, name = key.partition(".")
        if name:
            cfg[section][name] = value
        else:
            cfg[section] = value
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))

    def no_build(*args, **kwargs):
        raise AssertionError("a model was built from a malformed config")

    monkeypatch.setattr("chainrule.runs.build_model", no_build)
    with pytest.raises(CheckpointError, match=needle):
        open_run(run).load_model()
    assert cli.main(["eval", str(run)]) == 1
    assert needle.split()[0] in one_line_error(capsys)


# ------------------------------------------------------------------ 10, 11: GPT-2 imports
def gpt2_dir(path: Path, vocab_size: int = 300, embed: int = 8, layers: int = 1, positions: int = 16) -> Path:
    """A tiny random GPT-2 in Hugging Face's layout (config.json, model.safetensors, tokenizer.json)."""
    from tokenizers import ByteLevelBPETokenizer

    path.mkdir(parents=True)
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(["a chain rule factorises a joint distribution"] * 4, vocab_size=vocab_size,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    tok.save(str(path / "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    (path / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": vocab_size, "n_embd": embed,
                                                  "n_layer": layers, "n_head": 2, "n_positions": positions,
                                                  "eos_token_id": eos}))
    g = torch.Generator().manual_seed(0)

    def w(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.1

    e = embed
    tensors = {"wte.weight": w(vocab_size, e), "wpe.weight": w(positions, e), "ln_f.weight": w(e), "ln_f.bias": w(e)}
    for i in range(layers):
        for name, shape in (("ln_1.weight", (e,)), ("ln_1.bias", (e,)), ("ln_2.weight", (e,)), ("ln_2.bias", (e,)),
                            ("attn.c_attn.weight", (e, 3 * e)), ("attn.c_attn.bias", (3 * e,)),
                            ("attn.c_proj.weight", (e, e)), ("attn.c_proj.bias", (e,)),
                            ("mlp.c_fc.weight", (e, 4 * e)), ("mlp.c_fc.bias", (4 * e,)),
                            ("mlp.c_proj.weight", (4 * e, e)), ("mlp.c_proj.bias", (e,))):
            tensors[f"h.{i}.{name}"] = w(*shape)
    save_file(tensors, str(path / "model.safetensors"))
    return path


def test_shards_outside_the_model_directory_are_refused(tmp_path):
    hf = gpt2_dir(tmp_path / "hf")
    outside = tmp_path / "outside"
    outside.mkdir()
    (hf / "model.safetensors").rename(outside / "x.safetensors")
    index = hf / "model.safetensors.index.json"
    for shard in ("../outside/x.safetensors", str(outside / "x.safetensors"), "sub/../../outside/x.safetensors"):
        index.write_text(json.dumps({"weight_map": {"wte.weight": shard}}))
        with pytest.raises(CheckpointError, match="outside the model directory"):
            read_gpt2_weights(hf)
        with pytest.raises(CheckpointError, match="outside the model directory"):
            import_gpt2(hf, tmp_path / "run")
        assert not (tmp_path / "run").exists()
    # a link inside the directory may point anywhere: the Hugging Face cache links every file to a blob
    (hf / "model-00001-of-00001.safetensors").symlink_to(outside / "x.safetensors")
    index.write_text(json.dumps({"weight_map": {"wte.weight": "model-00001-of-00001.safetensors"}}))
    run = import_gpt2(hf, tmp_path / "run")
    run.load_model()
    assert run.spec["levels"] == 300


@pytest.mark.parametrize("changes, needle", [
    ({"n_embd": "abc"}, "n_embd"), ({"n_head": 0}, "n_head"), ({"n_layer": -1}, "n_layer"),
    ({"vocab_size": 10 ** 12}, "vocab_size"), ({"n_positions": 1.5}, "n_positions"), ({"n_head": 3}, "divisible"),
    ({"layer_norm_epsilon": "x"}, "layer_norm_epsilon"), ({"n_inner": -4}, "n_inner"), ({"n_embd": True}, "n_embd"),
])
def test_a_malformed_gpt2_config_is_a_one_line_error(tmp_path, capsys, changes, needle):
    hf = gpt2_dir(tmp_path / "hf")
    cfg = json.loads((hf / "config.json").read_text())
    (hf / "config.json").write_text(json.dumps({**cfg, **changes}))
    with pytest.raises(ConfigError, match=needle):
        read_gpt2_config(hf)
    assert cli.main(["import", "gpt2", str(hf), "--run", str(tmp_path / "run")]) == 1
    assert needle in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ 12: a stray timestamp
def test_a_stray_timestamp_is_an_error_not_a_giant_grid(tmp_path):
    csv = tmp_path / "stray.csv"
    pd.DataFrame({"t": [0, 1, 10_000], "y": [1.0, 2.0, 3.0]}).to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"stray.csv.*'t'.*10,001 steps.*3 rows"):
        read_table(csv, time="t", target="y")
    dated = pd.DataFrame({"t": pd.to_datetime(["2020-01-01 00:00:00", "2020-01-01 00:00:01", "2020-02-01 00:00:00"]),
                          "y": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match="stray"):
        from_frame(dated, "dated", "t", "y")
    with pytest.raises(DataError, match="stray"):  # a --freq much finer than the data
        from_frame(dated.iloc[[0, 2]], "dated", "t", "y", freq="s")
    gappy = pd.DataFrame({"t": [0, 1, 2, 50, 100], "y": [1.0, 2.0, 3.0, 4.0, 5.0]})  # sparse, but real
    assert len(from_frame(gappy, "gappy", "t", "y").values[0]) == 101
    with pytest.raises(DataError):
        from_frame(gappy, "gappy", "t", "y", max_grid_per_row=10)


# ------------------------------------------------------------------ 13: file modes
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_mode_of_any_new_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "atomic.txt", "x")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == 0o666 & ~umask
