"""``chainrule sample`` and ``chainrule complete``: image grids drawn from a trained run."""

from __future__ import annotations

import argparse

from chainrule.cli import options

SAMPLE_EXAMPLES = """examples:
  chainrule sample runs/digits-gated -n 64 --out grid.png
  chainrule sample runs/cond -n 16 --class 3 --temperature 0.8 --out threes.png"""
COMPLETE_EXAMPLES = "example:\n  chainrule complete runs/digits-gated -n 16 --out completions.png"


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    s = sub.add_parser("sample", help="draw images from a run and save a PNG grid", formatter_class=fmt,
                       description="Ancestral sampling from a trained run.", epilog=SAMPLE_EXAMPLES)
    options.add_run_argument(s)
    options.add_num_samples(s, 64, "number of samples (default 64)")
    options.add_out(s, "samples.png", "output PNG (default samples.png)")
    s.add_argument("--class", dest="cls", help="class index or name (class-conditional models)")
    options.add_temperature(s)
    options.add_seed(s)
    options.add_no_cache(s)

    c = sub.add_parser("complete", help="fill in the lower half of test images", formatter_class=fmt,
                       description="Conditional generation: keep the top half of test images and sample the "
                                   "rest. The grid shows originals, the given halves and the completions.",
                       epilog=COMPLETE_EXAMPLES)
    options.add_run_argument(c)
    options.add_num_samples(c, 16, "images to complete (default 16)")
    options.add_out(c, "completions.png", "output PNG (default completions.png)")
    options.add_split(c)
    options.add_seed(c)
    options.add_temperature(c)


def _sample(a: argparse.Namespace) -> None:
    from chainrule import api
    from chainrule.modalities.image.grids import save_grid

    trained = api.open_run(a.run)
    x = api.sample(trained, a.num_samples, cls=a.cls, temperature=a.temperature, seed=a.seed, use_cache=not a.no_cache)
    print(f"wrote {save_grid(x, trained.spec['levels'], a.out)}")


def _complete(a: argparse.Namespace) -> None:
    import torch

    from chainrule import api
    from chainrule.modalities.image.grids import save_grid

    trained = api.open_run(a.run)
    orig, given, out = api.complete(trained, n=a.num_samples, split=a.split, seed=a.seed, temperature=a.temperature)
    grid = torch.cat([orig, given, out])
    print(f"wrote {save_grid(grid, trained.spec['levels'], a.out, nrow=orig.shape[0])} "
          "(rows: originals, given top halves, completions)")


def run(a: argparse.Namespace) -> None:
    {"sample": _sample, "complete": _complete}[a.command](a)
