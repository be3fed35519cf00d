"""A forecaster training killed with SIGKILL mid-run and resumed with ``chainrule forecast train --resume`` ends
exactly where an uninterrupted run ends (bitwise on CPU with one thread): weights, EMA weights, metrics log."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from training_helpers import kill_after_checkpoint

from chainrule.cli import main

SCRIPT = Path(__file__).parent / "scripts" / "forecast_tiny.py"
#: a tiny Transformer with dropout and EMA, so RNG, EMA and data position must all resume exactly
TRAIN = ["--time", "date", "--target", "sales", "--id", "store", "--horizon", "7", "--model", "transformer",
         "--steps", "40", "--batch-size", "12", "--device", "cpu", "--set", "model.embed_dim=16",
         "--set", "model.num_layers=1", "--set", "model.num_heads=2", "--set", "model.dropout=0.2",
         "--set", "train.ema=0.9", "--set", "train.checkpoint_every=10", "--set", "train.log_every=5",
         "--set", "train.num_threads=1", "--set", "train.progress=false"]


@pytest.fixture(autouse=True)
def _keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def write_sales(path: Path) -> Path:
    rng = np.random.default_rng(0)
    days = pd.date_range("2022-01-03", periods=60, freq="D")
    rows = [{"date": d.date().isoformat(), "store": s, "sales": round(20 + 5 * np.sin(i) + 3 * k + rng.normal(), 3)}
            for k, s in enumerate("ab") for i, d in enumerate(days)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    csv = write_sales(tmp_path / "sales.csv")
    killed = tmp_path / "killed"
    # slowed down (30 ms per batch) so it is reliably still training when killed
    kill_after_checkpoint([sys.executable, str(SCRIPT), "--delay", "0.03", str(csv), *TRAIN, "--run", str(killed)],
                          killed / "checkpoints" / "step-000010.state.pt")
    assert not (killed / "checkpoints" / "step-000040.state.pt").exists()  # it really stopped mid-run
    assert not (killed / "best.safetensors").exists()

    ref = tmp_path / "ref"
    assert main(["forecast", "train", str(csv), *TRAIN, "--run", str(ref)]) == 0  # uninterrupted, one thread too
    assert main(["forecast", "train", "--resume", "--run", str(killed)]) == 0
    for name in ("best.safetensors", "checkpoints/step-000040.safetensors", "checkpoints/step-000040.ema.safetensors"):
        a, b = load_file(ref / name), load_file(killed / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert (killed / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()
    summary, ref_summary = (json.loads((d / "summary.json").read_text()) for d in (killed, ref))
    assert summary["steps"] == ref_summary["steps"] == 40
    assert summary["final_train_nll"] == ref_summary["final_train_nll"]
    # best.safetensors is the final EMA weights (no validation split): what predict uses
    ema = load_file(ref / "checkpoints/step-000040.ema.safetensors")
    best = load_file(ref / "best.safetensors")
    assert all(torch.equal(best[k], ema[k]) for k in best)
