"""``chainrule score``: per-example log-likelihood and per-position surprisal of inputs under a trained run."""

from __future__ import annotations

import argparse
import json

from chainrule.cli import options

EXAMPLES = """examples:
  chainrule score runs/mnist-pixelcnn digits/ --out scores.csv --heatmap heat/
  chainrule score runs/shakespeare-transformer lines.txt --out scores.csv --heatmap heat/
  chainrule score runs/passengers-deepar passengers.csv --out scores.csv
  chainrule score runs/fashion-pixelcnn mnist/ --background runs/fashion-background --typicality 1000"""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    p = sub.add_parser("score", help="log-likelihood and per-position surprisal of inputs under a run",
                       formatter_class=fmt, epilog=EXAMPLES,
                       description="Scores every example of INPUTS with the run's exact likelihood: its NLL in nats "
                                   "and bits/dim, and the surprisal -log p(x_t | x_<t) of every position (pixel, "
                                   "token, series step). Image runs read a PNG or a folder of images (discretised "
                                   "as in training), text runs a text file with one example per line, series runs "
                                   "a CSV with the run's columns (one-step-ahead surprisal). --background and "
                                   "--typicality add out-of-distribution scores for image and text runs.")
    options.add_run_argument(p, "run directory of an image, text or series model")
    p.add_argument("inputs", metavar="INPUTS", help="image / folder of images, text file, or CSV (series run)")
    options.add_out(p, "scores.csv", "CSV with one row per example (default scores.csv)", "FILE.csv")
    p.add_argument("--heatmap", metavar="DIR", help="also write a surprisal heat map per image (PNG) or, for text, "
                                                    "an HTML page with each token highlighted by its surprisal")
    p.add_argument("--background", metavar="RUN2",
                   help="a background run (same data, trained on perturbed inputs: chainrule.ood.train_background); "
                        "adds background_log_likelihood and likelihood_ratio = log p(x) - log p_background(x), low "
                        "for out-of-distribution inputs (Ren et al. 2019)")
    p.add_argument("--typicality", type=int, default=0, metavar="N",
                   help="fit the typicality test (Nalisnick et al. 2019) on N examples of the run's validation "
                        "split; adds typicality_distance (|bits/dim - entropy|) and atypical (rejected at --alpha)")
    p.add_argument("--alpha", type=float, default=0.01, help="level of the typicality test (default 0.01)")
    options.add_json(p)


def run(a: argparse.Namespace) -> None:
    from chainrule.core.runs.atomic import atomic_write_text
    from chainrule.scoring import score

    frame = score(a.run, a.inputs, a.heatmap, a.background, a.typicality, a.alpha)
    table = frame.assign(surprisal=frame["surprisal"].map(json.dumps))
    atomic_write_text(a.out, table.to_csv(index=False))
    if a.json:
        print(json.dumps(frame.drop(columns="surprisal").to_dict("records"), indent=2))
        return
    mean = frame["bits_per_dim"].mean() if len(frame) else float("nan")
    print(f"wrote {a.out}: {len(frame)} examples, mean {mean:.4f} bits/dim"
          + (f"; heat maps in {a.heatmap}" if a.heatmap else ""))
