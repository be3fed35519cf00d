"""Run ``chainrule forecast train ...`` in this process; used by the forecaster kill/resume test.

Usage: python forecast_tiny.py [--delay S] ARGS... — ARGS go to ``chainrule forecast train``; ``--delay`` sleeps
S seconds per training batch so the test can kill the run mid-way.
"""

from __future__ import annotations

import sys
import time

import torch

from chainrule.cli import main
from chainrule.modalities.series.features import TrainingWindows


def slowed(delay: float) -> None:
    get = TrainingWindows.get

    def slow_get(self, indices):
        time.sleep(delay)
        return get(self, indices)

    TrainingWindows.get = slow_get


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--delay"]:
        slowed(float(args[1]))
        args = args[2:]
    torch.set_num_threads(1)
    sys.exit(main(["forecast", "train", *args]))
