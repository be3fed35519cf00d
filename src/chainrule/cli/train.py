"""``chainrule train``: fit a model on a dataset into a run directory (also under torchrun)."""

from __future__ import annotations

import argparse

from chainrule.cli import options
from chainrule.core.errors import ChainruleError

EXAMPLES = """examples:
  chainrule train digits gated_pixelcnn --set train.steps=2000 --run runs/digits-gated
  chainrule train mnist made --set data.binarize=dynamic --set model.num_masks=8
  chainrule train imagefolder:photos/ pixelcnn_pp --set data.size=32 --config my.yaml
  chainrule train airpassengers sequence_vae --run runs/air-vae   # a series dataset: the VAE on its windows
  chainrule train --resume --run runs/digits-gated        # continue exactly where it stopped
  torchrun --nproc_per_node 2 -m chainrule train digits pixelcnn --run-dir runs/ddp"""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    t = sub.add_parser("train", help="train a model on a dataset into a run directory", formatter_class=fmt,
                       description="Train MODEL on DATASET. Writes RUN/config.yaml, checkpoints/, best.safetensors, "
                                   "metrics.jsonl, plots/training_curve.png and samples/final.png.",
                       epilog=EXAMPLES)
    t.add_argument("dataset", nargs="?", help="dataset name (see 'chainrule datasets'), imagefolder:PATH or a folder")
    t.add_argument("model", nargs="?", help="model name (see 'chainrule models')")
    options.add_config(t)
    options.add_set(t)
    options.add_run_option(t, "run directory (default: runs/DATASET-MODEL-TIME); spell it --run-dir under torchrun")
    options.add_resume(t)


def run(a: argparse.Namespace) -> None:
    from chainrule import api

    if not a.resume and (not a.dataset or not a.model) and not a.config:
        raise ChainruleError("train needs DATASET and MODEL (or --config); see 'chainrule train --help'")
    result = api.train(a.dataset, a.model, a.config, a.overrides, a.run, resume=a.resume)
    if api._is_rank_zero():
        print(f"run written to {result.path}")
