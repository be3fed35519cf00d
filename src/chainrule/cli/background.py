"""``chainrule background``: train the background model of a run for likelihood-ratio OOD scores."""

from __future__ import annotations

import argparse
import json

from chainrule.cli import options

EXAMPLES = """examples:
  chainrule background runs/fashion-pixelcnn --out runs/fashion-background
  chainrule background runs/bard --out runs/bard-background --rate 0.1 --set train.max_seconds=600
  chainrule score runs/fashion-pixelcnn mnist/ --background runs/fashion-background --out scores.csv"""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    p = sub.add_parser("background", help="train a run's background model (likelihood-ratio OOD detection)",
                       formatter_class=fmt, epilog=EXAMPLES,
                       description="Trains a model with the run's data, model and training settings on inputs "
                                   "where a fraction --rate of the positions (pixels, tokens) is replaced by uniform "
                                   "noise (Ren et al. 2019). 'chainrule score RUN INPUTS --background OUT' then adds "
                                   "the likelihood ratio log p(x) - log p_background(x), low for out-of-distribution "
                                   "inputs. Image and text runs.")
    options.add_run_argument(p, "the (foreground) run directory of an image or text model")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory to write the background model to")
    p.add_argument("--rate", type=float, default=0.2, help="fraction of positions replaced by noise (default 0.2)")
    options.add_seed(p, "seed of the perturbation (default 0)")
    options.add_set(p)
    options.add_json(p)


def run(a: argparse.Namespace) -> None:
    from chainrule.ood import train_background

    bg = train_background(a.run, a.out, rate=a.rate, overrides=a.overrides, seed=a.seed)
    if a.json:
        print(json.dumps({"run": str(bg.path), **bg.config["background"]}, indent=2))
        return
    print(f"wrote {bg.path}: background of {a.run}, perturbation rate {a.rate}")
