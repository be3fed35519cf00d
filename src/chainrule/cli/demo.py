"""``chainrule demo``: the Gated PixelCNN against the histogram baseline on 8x8 digits."""

from __future__ import annotations

import argparse
from pathlib import Path

from chainrule.cli import options

EXAMPLES = "example:\n  chainrule demo            # Gated PixelCNN vs the histogram baseline on digits"


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    d = sub.add_parser("demo", help="Gated PixelCNN vs histogram baseline on digits", formatter_class=fmt,
                       description="Train the histogram baseline and a Gated PixelCNN on scikit-learn's 8x8 "
                                   "digits, print their test bits/dim and write a sample grid.",
                       epilog=EXAMPLES)
    d.add_argument("--steps", type=int, default=None, help="Gated PixelCNN training steps")
    d.add_argument("--root", default="runs", help="where to put the demo runs (default runs/)")


def run(a: argparse.Namespace) -> None:
    from chainrule.demo import run_demo

    run_demo(root=Path(a.root), steps=a.steps)
