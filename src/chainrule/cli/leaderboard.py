"""``chainrule leaderboard``: every generative family trained on one dataset, compared in one table."""

from __future__ import annotations

import argparse
import json

from chainrule.cli import options

EXAMPLES = """examples:
  chainrule train digits vae --run runs/digits-vae && chainrule train digits gan --run runs/digits-gan
  chainrule leaderboard digits                       # every run under runs/ trained on digits
  chainrule leaderboard digits --runs runs/digits-vae runs/digits-gan --samples 500 --grids grids/
  chainrule leaderboard mnist-subset --out board.json --json
  chainrule leaderboard fashion-mnist --test-limit 1000     # bounds on the first 1,000 test images"""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    p = sub.add_parser("leaderboard", help="compare runs of every family on one dataset",
                       formatter_class=fmt, epilog=EXAMPLES,
                       description="One row per run trained on DATASET: test NLL in nats and bits/dim (marked <= "
                                   "when it is a bound: VAE, flows, diffusion; 'none' for a GAN), the Frechet "
                                   "distance and precision / recall of samples on the features of a small classifier "
                                   "trained once per dataset and cached (see docs/families.md), the class accuracy "
                                   "of the samples of a class-conditional run (the share the classifier puts in the "
                                   "class asked for; '-' for an unconditional run), samples per second, parameters "
                                   "and training seconds.")
    p.add_argument("dataset", metavar="DATASET", help="dataset name the runs were trained on (e.g. digits)")
    p.add_argument("--runs", nargs="+", metavar="RUN", help="run directories (default: every run under --root "
                                                            "trained on DATASET)")
    p.add_argument("--root", default="runs", help="where to look for runs (default runs/)")
    p.add_argument("--samples", type=int, default=1000, help="samples per model for the quality figures "
                                                             "(default 1000)")
    p.add_argument("--test-limit", type=int, metavar="N", help="NLL on the first N test images only (the same "
                                                               "for every run; default: the whole test split)")
    p.add_argument("--grids", metavar="DIR", help="write a PNG grid of 64 samples per run into DIR")
    p.add_argument("--out", metavar="FILE.json", help="also write the rows as JSON")
    options.add_json(p)


def run(a: argparse.Namespace) -> None:
    from chainrule.core.errors import ConfigError
    from chainrule.core.limits import check_count
    from chainrule.core.runs.atomic import atomic_write_text
    from chainrule.leaderboard import format_table, leaderboard, runs_for

    check_count(a.samples, "--samples", ConfigError, minimum=4)  # precision / recall use 3 neighbours
    runs = a.runs or runs_for(a.dataset, a.root)
    if a.test_limit is not None:
        check_count(a.test_limit, "--test-limit", ConfigError)
    rows = leaderboard(a.dataset, runs, samples=a.samples, grids=a.grids, test_limit=a.test_limit)
    if a.out:
        atomic_write_text(a.out, json.dumps(rows, indent=2) + "\n")
    print(json.dumps(rows, indent=2) if a.json else format_table(rows))
