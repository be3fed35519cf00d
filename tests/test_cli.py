"""The command line: user errors exit non-zero with one clear line, no traceback, no damaged files."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from chainrule import cli


def chainrule(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHAINRULE_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "chainrule", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def assert_user_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("chainrule: error:"), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A histogram run on digits (fitted by counting: a second or two)."""
    root = tmp_path_factory.mktemp("cli")
    res = chainrule("train", "digits", "histogram", "--run", str(root / "hist"), "--set", "output.samples=4",
                    cwd=root)
    assert res.returncode == 0, res.stderr
    return root / "hist"


def _help(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0, command
    return capsys.readouterr().out


def _listed_commands(help_text: str) -> list[str]:
    """The subcommands a ``--help`` lists under COMMAND (none for a leaf command)."""
    if "  COMMAND\n" not in help_text:
        return []
    # a name longer than argparse's column (e.g. 'decompress') ends its line, its help follows on the next
    return re.findall(r"^    (\S+)(?:  |$)", help_text.split("  COMMAND\n", 1)[1], re.M)


def test_every_listed_command_has_help_with_an_example(capsys):
    top = _listed_commands(_help(capsys))
    assert set(top) == set(cli.COMMANDS)
    assert {"train", "eval", "sample", "complete", "models", "datasets", "demo", "generate", "import", "forecast",
            "serve", "export"} <= set(top)
    pending = [(cmd,) for cmd in top]
    while pending:
        command = pending.pop()
        text = _help(capsys, *command)
        assert "example" in text, command
        pending += [(*command, sub) for sub in _listed_commands(text)]


#: the one spelling of each option several commands take (chainrule.cli.options), by argparse dest
SHARED_FLAGS = {"run": "--run", "config": "--config", "overrides": "--set", "resume": "--resume", "seed": "--seed",
                "out": "--out", "temperature": "--temperature", "num_samples": "--num-samples", "device": "--device",
                "split": "--split", "batch_size": "--batch-size", "no_cache": "--no-cache", "json": "--json",
                "max_new_tokens": "--max-new-tokens"}
#: other spellings accepted beside it
ALIASES = {"run": {"--run-dir"}, "num_samples": {"-n"}}


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) of every command and subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _parsers(sub, (*path, name))


def _bare(flag: str) -> str:
    return flag.lstrip("-").replace("_", "-").lower()


def test_shared_flags_are_spelled_the_same_in_every_command():
    bare_shared = {_bare(flag): dest for dest, flag in SHARED_FLAGS.items()}
    seen: dict[str, set[tuple[str, ...]]] = {}
    for command, parser in _parsers(cli.build_parser()):
        for action in parser._actions:
            flags = set(action.option_strings)
            if not flags or isinstance(action, argparse._HelpAction):
                continue
            if action.dest in SHARED_FLAGS:
                seen.setdefault(action.dest, set()).add(command)
                allowed = {SHARED_FLAGS[action.dest]} | ALIASES.get(action.dest, set())
                assert SHARED_FLAGS[action.dest] in flags and flags <= allowed, (command, sorted(flags))
            for flag in flags:  # a near spelling (--num_samples, --Seed) of a shared flag under another dest
                dest = bare_shared.get(_bare(flag))
                assert dest is None or (action.dest == dest and flag == SHARED_FLAGS[dest]), (command, flag)
    assert set(seen) == set(SHARED_FLAGS)  # every shared option is in use, so each check above ran


def test_help_imports_no_library_code():
    """Building the parser imports only the command modules, so ``chainrule --help`` answers at once."""
    code = ("import sys; from chainrule.cli import build_parser; build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'pandas', 'yaml'}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr


def test_models_and_datasets_listed(tmp_path):
    res = chainrule("models", cwd=tmp_path)
    for name in ["histogram", "pixel_lstm", "made", "pixelcnn", "gated_pixelcnn", "pixelcnn_pp"]:
        assert name in res.stdout
    res = chainrule("datasets", cwd=tmp_path)
    for name in ["digits", "mnist", "fashion-mnist", "imagefolder"]:
        assert name in res.stdout


def test_unknown_model(tmp_path):
    assert_user_error(chainrule("train", "digits", "no_such_model", "--run", "r", cwd=tmp_path), "no_such_model")
    assert not (tmp_path / "r").exists()


def test_unknown_dataset(tmp_path):
    assert_user_error(chainrule("train", "no_such_data", "pixelcnn", cwd=tmp_path), "no_such_data")


@pytest.mark.parametrize("setting,needle", [("train.lr=abc", "lr"), ("train.steps=-5", "steps"),
                                            ("nosection.x=1", "nosection"), ("train.lr", "train.lr"),
                                            ("train.no_such_key=1", "no_such_key"),
                                            ("data.binarize=sometimes", "binarize")])
def test_bad_set_value(tmp_path, setting, needle):
    assert_user_error(chainrule("train", "digits", "pixelcnn", "--set", setting, "--run", "r", cwd=tmp_path),
                      needle)


def test_eval_reports_split_and_data(trained_run):
    res = chainrule("eval", str(trained_run), cwd=trained_run.parent)
    assert res.returncode == 0, res.stderr
    assert "test" in res.stdout and "digits" in res.stdout and "bits/dim" in res.stdout


def test_corrupt_checkpoint(trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    weights = run / "best.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    before = {p: digest(p) for p in run.rglob("*") if p.is_file()}
    assert_user_error(chainrule("eval", str(run), cwd=tmp_path), "best.safetensors")
    assert_user_error(chainrule("sample", str(run), "-n", "4", "--out", "g.png", cwd=tmp_path), "best.safetensors")
    assert before == {p: digest(p) for p in run.rglob("*") if p.is_file()}


def test_missing_run(tmp_path):
    assert_user_error(chainrule("eval", "nowhere", cwd=tmp_path), "nowhere")


def test_existing_run_is_not_overwritten(trained_run):
    before = digest(trained_run / "best.safetensors")
    assert_user_error(chainrule("train", "digits", "histogram", "--run", str(trained_run),
                                cwd=trained_run.parent), "already exists")
    assert digest(trained_run / "best.safetensors") == before


def test_class_on_unconditional_model(trained_run, tmp_path):
    assert_user_error(chainrule("sample", str(trained_run), "--class", "3", "--out", str(tmp_path / "g.png"),
                                cwd=tmp_path), "conditional")


def _png(path: Path, size=(8, 8), value=100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)


def test_imagefolder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(chainrule("train", f"imagefolder:{empty}", "histogram", cwd=tmp_path), "empty")

    corrupt = tmp_path / "corrupt"
    for i in range(4):
        _png(corrupt / f"ok{i}.png")
    (corrupt / "bad.png").write_bytes(b"\x89PNG not really an image")
    assert_user_error(chainrule("train", f"imagefolder:{corrupt}", "histogram", cwd=tmp_path), "bad.png")

    mixed = tmp_path / "mixed"
    for i in range(4):
        _png(mixed / f"a{i}.png")
    _png(mixed / "big.png", size=(16, 16))
    assert_user_error(chainrule("train", f"imagefolder:{mixed}", "histogram", cwd=tmp_path), "big.png")

    assert_user_error(chainrule("train", f"imagefolder:{tmp_path / 'absent'}", "histogram", cwd=tmp_path),
                      "absent")


def test_sample_and_complete_write_pngs(trained_run, tmp_path):
    res = chainrule("sample", str(trained_run), "-n", "9", "--out", str(tmp_path / "s.png"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert Image.open(tmp_path / "s.png").size[0] > 8
    res = chainrule("complete", str(trained_run), "-n", "4", "--out", str(tmp_path / "c.png"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert Image.open(tmp_path / "c.png").size[0] > 8
    assert Image.open(trained_run / "samples" / "final.png").size[0] > 8


def test_torchrun_cli(tmp_path):
    """The CLI itself runs under torchrun (2 gloo processes); only rank 0 writes the run."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, "CHAINRULE_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
              "--master_port", port]
    args = ["-m", "chainrule", "train", "digits", "made", "--run-dir", str(tmp_path / "ddp"),
            "--set", "train.steps=20", "--set", "train.progress=false", "--set", "output.samples=4"]
    res = subprocess.run(launch + args, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("run written to") == 1
    summary = __import__("json").loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["steps"] == 20 and summary["best_val_nll"] is not None
