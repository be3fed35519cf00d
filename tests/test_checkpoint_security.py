"""A checkpoint carrying a malicious pickle is refused without running it, on every load path.

The payload's ``__reduce__`` would create a marker file when unpickled. Loading the run through
``Run.load_model``, the text-run loader, the trainer's resume, the GPT-2 importer and the server's run
loading must raise :class:`CheckpointError` (or exit 1 from the CLI) and leave no marker; finally, loading
the same file unsafely does create the marker, so the payload is live and the test could fail.
"""

from __future__ import annotations

import io
import shutil
import warnings

import pytest
import torch
from serve_helpers import make_image_run, make_text_run
from training_helpers import tiny_run

from chainrule import api, cli
from chainrule.convert.gpt2 import read_gpt2_weights
from chainrule.core.errors import CheckpointError
from chainrule.core.training.checkpoint import STATE_FORMAT, list_checkpoints, load_state
from chainrule.runs import open_run
from chainrule.serve.registry import load_registry


class Payload:
    """Unpickling this calls ``open(path, "w")``: the marker file appears if the pickle is ever run."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def plant(path, marker, state: bool = False) -> None:
    """Overwrite ``path`` with a torch.save'd pickle holding the payload (a trainer-state-shaped dict)."""
    obj = {"format": STATE_FORMAT, "progress": Payload(marker)} if state else {"weight": Payload(marker)}
    torch.save(obj, path)


def unsafe_load(path) -> None:
    """What the loaders must never do: unpickle without ``weights_only`` (this runs the payload)."""
    torch.load(io.BytesIO(path.read_bytes()), weights_only=False)


def test_malicious_weights_refused_by_run_and_server_loading(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    image = make_image_run(tmp_path / "image")
    text = make_text_run(tmp_path / "text")
    plant(image / "best.safetensors", marker)
    plant(text / "best.safetensors", marker)
    steps_only = tmp_path / "steps-only"  # no best weights: the newest step checkpoint is loaded
    shutil.copytree(image, steps_only)
    (steps_only / "best.safetensors").unlink()
    (steps_only / "checkpoints").mkdir()
    plant(steps_only / "checkpoints" / "step-000005.safetensors", marker)

    for run in (image, steps_only):
        with pytest.raises(CheckpointError, match="not a valid chainrule checkpoint"):
            open_run(run).load_model()
        with pytest.raises(CheckpointError):
            api.sample(run, 2)
    with pytest.raises(CheckpointError):
        api.load_text_run(text)
    for run in (image, text, steps_only):
        with pytest.raises(CheckpointError):
            load_registry([run])
        assert cli.main(["serve", str(run), "--port", "8"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("chainrule: error:") and len(err.splitlines()) == 1, err
    assert not marker.exists()

    unsafe_load(image / "best.safetensors")
    assert marker.exists()


def test_malicious_trainer_state_refused_on_resume(tmp_path):
    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    tiny_run(run, steps=10, hidden=0, checkpoint_every=10, eval_every=0)
    ckpts = list_checkpoints(run)
    assert [c.step for c in ckpts] == [10]
    plant(ckpts[0].state, marker, state=True)

    with pytest.raises(CheckpointError, match="unreadable trainer state"):
        load_state(ckpts[0].state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the refused checkpoint is skipped with a warning
        with pytest.raises(CheckpointError, match="no complete checkpoint"):
            tiny_run(run, steps=20, hidden=0, checkpoint_every=10, eval_every=0, resume=True)
    assert not marker.exists()

    unsafe_load(ckpts[0].state)
    assert marker.exists()


def test_malicious_gpt2_bin_refused(tmp_path):
    marker = tmp_path / "PWNED"
    plant(tmp_path / "pytorch_model.bin", marker)
    with pytest.raises(CheckpointError):
        read_gpt2_weights(tmp_path)
    assert not marker.exists()
    unsafe_load(tmp_path / "pytorch_model.bin")
    assert marker.exists()
