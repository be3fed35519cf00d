"""``chainrule eval``: exact negative log-likelihood of a data split under a run's best weights."""

from __future__ import annotations

import argparse
import json

from chainrule.cli import options

EXAMPLES = """examples:
  chainrule eval runs/digits-gated --split test
  chainrule eval /read-only/runs/digits-gated --out results.json"""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    e = sub.add_parser("eval", help="test NLL (nats/example, bits/dim) of a trained run", formatter_class=fmt,
                       description="Exact negative log-likelihood of a split under a run's best weights.",
                       epilog=EXAMPLES)
    options.add_run_argument(e)
    options.add_split(e)
    options.add_batch_size(e, 256, "examples per forward pass (default 256)")
    options.add_json(e)
    options.add_out(e, None, "write the results to this JSON file (default: record them in RUN/summary.json "
                             "when the run is writable)", metavar="FILE.json")


def run(a: argparse.Namespace) -> None:
    from chainrule import api

    res = api.evaluate(a.run, split=a.split, batch_size=a.batch_size, out=a.out)
    if a.json:
        print(json.dumps(res, indent=2))
    elif "nll_iwae_nats" in res:  # a latent series model: both bounds
        print(f"{res['model']} on {res['data']}: NLL <= {res['nll_iwae_nats']:.4f} nats/window (IWAE bound, "
              f"k={res['iwae_samples']}), <= {res['nll_elbo_nats']:.4f} (ELBO); per scored step "
              f"{res['nll_iwae_nats_per_step']:.4f} / {res['nll_elbo_nats_per_step']:.4f} "
              f"({res['windows']} windows, upper bounds)")
    elif "bits_per_sample" in res:
        print(f"{res['model']} on {res['data']}: {res['bits_per_sample']:.4f} bits/sample "
              f"({res['quantization']}, {res['split']} split, {res['examples']} crops)")
    elif "nats_per_event" in res:  # music
        bound = ", an upper bound (IWAE)" if res.get("likelihood") == "bound" else ""
        print(f"{res['model']} on {res['data']}: {res['nats_per_event']:.4f} nats/event "
              f"({res['split']} split, {res['examples']} windows{bound})")
    elif "bits_per_char" in res:
        print(f"{res['model']} on {res['data']}: {res['nats_per_token']:.4f} nats/token, "
              f"{res['bits_per_char']:.4f} bits/char ({res['examples']} windows)")
    else:
        bound = ", an upper bound" if res.get("likelihood") == "bound" else ""
        print(f"{res['model']} on {res['data']}: {res['nll_nats']:.4f} nats/example, {res['bpd']:.4f} bits/dim "
              f"({res['examples']} examples{bound})")
