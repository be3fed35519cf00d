"""``chainrule features``: Fisher scores or last hidden activations of inputs under a trained run, as a NumPy array."""

from __future__ import annotations

import argparse
import json

from chainrule.cli import options

EXAMPLES = """examples:
  chainrule features runs/mnist-pixelcnn digits/ --kind fisher --out feats.npy
  chainrule features runs/mnist-pixelcnn digits/ --kind fisher --params out. --fisher-examples 200 --out feats.npy
  chainrule features runs/shakespeare-transformer lines.txt --kind hidden --out feats.npy"""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    p = sub.add_parser("features", help="Fisher scores or hidden activations of inputs, for downstream models",
                       formatter_class=fmt, epilog=EXAMPLES,
                       description="One feature vector per example of INPUTS (images or a folder of them for an image "
                                   "run, a text file with one example per line for a text run). fisher: the "
                                   "gradient of log p(x) with respect to the output layer (or --params), divided by "
                                   "the square root of the diagonal empirical Fisher on the run's training data. "
                                   "hidden: the last hidden activations, mean-pooled over positions.")
    options.add_run_argument(p, "run directory of an image or text model")
    p.add_argument("inputs", metavar="INPUTS", help="image / folder of images, or text file")
    p.add_argument("--kind", choices=("fisher", "hidden"), default="fisher", help="feature kind (default fisher)")
    options.add_out(p, "features.npy", "NumPy array (N, D), rows in input order (default features.npy)", "FILE.npy")
    p.add_argument("--params", metavar="NAME_PREFIX",
                   help="fisher: the parameters whose names start with this (default: the output layer)")
    p.add_argument("--fisher-examples", type=int, default=500, metavar="N",
                   help="fisher: training examples the diagonal Fisher is estimated on (default 500)")
    options.add_json(p)


def run(a: argparse.Namespace) -> None:
    import io

    import numpy as np

    from chainrule.core.runs.atomic import atomic_write_bytes
    from chainrule.features import features

    names, feats = features(a.run, a.inputs, a.kind, a.params, a.fisher_examples)
    buf = io.BytesIO()
    np.save(buf, feats)
    atomic_write_bytes(a.out, buf.getvalue())
    if a.json:
        print(json.dumps({"output": a.out, "examples": names, "shape": list(feats.shape)}, indent=2))
        return
    print(f"wrote {a.out}: {feats.shape[0]} examples x {feats.shape[1]} {a.kind} features")
