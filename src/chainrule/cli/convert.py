"""``chainrule import``: a pretrained checkpoint (Hugging Face GPT-2) converted into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from chainrule.cli import options

EXAMPLES = "example:\n  chainrule import gpt2 hf/gpt2 --run runs/gpt2"


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    im = sub.add_parser("import", help="convert a pretrained model (Hugging Face GPT-2) into a run",
                        formatter_class=fmt, epilog=EXAMPLES,
                        description="Convert a Hugging Face GPT-2 directory (config.json, model.safetensors or "
                                    "pytorch_model.bin, tokenizer.json or vocab.json + merges.txt) into a run "
                                    "directory usable by eval and generate.")
    im.add_argument("format", choices=["gpt2"], help="source format")
    im.add_argument("source", metavar="HF_DIR", help="the Hugging Face model directory")
    options.add_run_option(im, "run directory to write (default: runs/NAME-import-TIME)")


def run(a: argparse.Namespace) -> None:
    from chainrule.convert import IMPORTERS
    from chainrule.runs import default_run_dir

    out = a.run or default_run_dir(Path(a.source).resolve().name, "import")
    result = IMPORTERS[a.format](a.source, out)
    print(f"run written to {result.path}")
