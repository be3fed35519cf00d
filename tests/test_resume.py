"""A training process killed with SIGKILL mid-run and then resumed ends exactly where an uninterrupted run
ends (bitwise on CPU with one thread): weights, EMA weights and the metrics log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import digits_arrays, kill_after_checkpoint, tiny_run

SCRIPT = Path(__file__).parent / "scripts" / "train_tiny.py"
OPTS = dict(steps=60, dropout=0.1, ema=0.9)  # dropout + EMA: RNG and EMA state must resume exactly too


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    killed = tmp_path / "killed"
    torch.save(digits_arrays(), tmp_path / "digits.pt")
    args = [sys.executable, str(SCRIPT), str(killed), "--steps", str(OPTS["steps"]), "--dropout",
            str(OPTS["dropout"]), "--ema", str(OPTS["ema"]), "--data", str(tmp_path / "digits.pt")]
    # slowed down (30 ms per step) so it is reliably still training when killed
    kill_after_checkpoint([*args, "--delay", "0.03"], killed / "checkpoints" / "step-000020.state.pt")
    assert not (killed / "checkpoints" / "step-000060.state.pt").exists()  # it really stopped mid-run

    ref_model, ref = tiny_run(tmp_path / "ref", **OPTS)  # the same run uninterrupted (one thread too)
    model, summary = tiny_run(killed, resume=True, **OPTS)
    assert summary["steps"] == ref["steps"] == 60
    ref_w, w = ref_model.state_dict(), model.state_dict()
    assert all(torch.equal(ref_w[k], w[k]) for k in ref_w)
    for name in ("checkpoints/step-000060.safetensors", "checkpoints/step-000060.ema.safetensors",
                 "best.safetensors"):
        a, b = load_file(tmp_path / "ref" / name), load_file(killed / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert (killed / "metrics.jsonl").read_text() == (tmp_path / "ref" / "metrics.jsonl").read_text()
    assert summary["best_val_nll"] == ref["best_val_nll"]
