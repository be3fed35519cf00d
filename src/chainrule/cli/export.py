"""``chainrule export``: a run as one ONNX file for the torch-free runtime (the exporter is :mod:`chainrule.export`)."""

from __future__ import annotations

import argparse

from chainrule.cli import options
from chainrule.export import FORMATS

EXAMPLES = """examples:
  chainrule export runs/shakespeare-transformer --format onnx --out model.onnx
  chainrule export runs/gpt2 --out gpt2.onnx --max-context 256     # smaller KV cache
  chainrule-edge generate model.onnx --prompt "ROMEO:" --max-new-tokens 200
  chainrule-edge forecast passengers.onnx --history 112,118,132,129,121 --horizon 12"""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    x = sub.add_parser("export", help="export a run to ONNX for the torch-free runtime (chainrule-edge)",
                       formatter_class=fmt, epilog=EXAMPLES,
                       description="Export a trained run as one self-contained ONNX file: the incremental step "
                                   "of a text model (with its KV cache / recurrent state and tokenizer) or of a "
                                   "forecaster (with its feature spec), or the forward pass of an image model. "
                                   "The exported graph is checked against PyTorch before the file is written. "
                                   "Run it with chainrule-edge.")
    options.add_run_argument(x)
    x.add_argument("--format", default="onnx", help=f"export format: {', '.join(FORMATS)} (default onnx)")
    options.add_out(x, "model.onnx", "output file (default model.onnx)", metavar="FILE.onnx")
    x.add_argument("--max-context", type=int, default=None, metavar="N",
                   help="positions in the exported cache. Text models: default the model's context length; "
                        "forecasters: history + the longest horizon (default history + 4 x the trained horizon)")


def run(a: argparse.Namespace) -> None:
    from chainrule.export import export_run

    meta = export_run(a.run, a.out, fmt=a.format, max_context=a.max_context)
    what = "incremental step" if meta["graph"] == "step" else "forward pass"
    print(f"wrote {a.out} ({meta['model']} {what}, {meta['kind']} model)")
