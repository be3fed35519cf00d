"""Train the tiny digits model of ``training_helpers.tiny_run``; used by the kill/resume and torchrun tests.

Usage: python train_tiny.py RUN_DIR [--steps N] [--resume] [--delay S] ... (also under torchrun).
Rank 0 writes the final weights to RUN_DIR/final.safetensors.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training_helpers import tiny_run  # noqa: E402

from chainrule.core.training import save_weights  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--ema", type=float, default=0.0)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds of sleep per training step")
    ap.add_argument("--eval-max-windows", type=int, default=0, help="train.eval_max_windows")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--data", type=Path, default=None, help="digits saved by torch.save(digits_arrays())")
    a = ap.parse_args()
    torch.set_num_threads(1)
    model, summary = tiny_run(a.run_dir, steps=a.steps, batch_size=a.batch_size, dropout=a.dropout, ema=a.ema,
                              delay=a.delay, resume=a.resume, data=a.data,
                              eval_max_windows=a.eval_max_windows)
    if int(os.environ.get("RANK", "0")) == 0:
        save_weights(model, a.run_dir / "final.safetensors")
        print(summary, flush=True)


if __name__ == "__main__":
    main()
