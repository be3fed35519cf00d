"""Builders for the options several commands share, so each is spelled, defaulted and explained one way.

A command that takes a run directory, a seed, an output file, a sample count, ... adds it through these
functions rather than spelling the flag itself; ``tests/test_cli.py`` checks every command against them.
"""

from __future__ import annotations

import argparse

#: what ``add_parser`` receives: the top-level ``add_subparsers()`` result and the help formatter class
Subparsers = argparse._SubParsersAction
Formatter = type[argparse.HelpFormatter]
#: a parser or one of its argument groups
Container = argparse.ArgumentParser | argparse._ArgumentGroup

SPLITS = ("train", "val", "test")


def add_run_argument(p: Container, help: str = "run directory") -> None:
    """The run directory a command reads, as its first positional argument."""
    p.add_argument("run", metavar="RUN", help=help)


def add_run_option(p: Container, help: str) -> None:
    """The run directory a command writes; ``--run-dir`` is the spelling torchrun passes through."""
    p.add_argument("--run", "--run-dir", dest="run", metavar="DIR", help=help)


def add_config(p: Container) -> None:
    p.add_argument("--config", metavar="FILE.yaml", help="YAML with data/model/train/output sections")


def add_set(p: Container, help: str = "override a config value, e.g. train.lr=3e-4 (repeatable)") -> None:
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides", help=help)


def add_resume(p: Container) -> None:
    p.add_argument("--resume", action="store_true", help="continue the run in --run from its newest checkpoint "
                                                         "(from its start if it stopped before the first)")


def add_seed(p: Container, help: str = "random seed (default 0)") -> None:
    p.add_argument("--seed", type=int, default=0, help=help)


def add_out(p: Container, default: str | None, help: str, metavar: str = "FILE") -> None:
    p.add_argument("--out", default=default, metavar=metavar, help=help)


def add_temperature(p: Container, help: str = "divide the logits by T before sampling (default 1)") -> None:
    p.add_argument("--temperature", type=float, default=1.0, metavar="T", help=help)


def add_num_samples(p: Container, default: int, help: str) -> None:
    p.add_argument("-n", "--num-samples", dest="num_samples", type=int, default=default, metavar="N", help=help)


def add_device(p: Container, default: str | None = None,
               help: str = "torch device: cpu, cuda, ... (default: where the weights load)") -> None:
    p.add_argument("--device", default=default, help=help)


def add_split(p: Container) -> None:
    p.add_argument("--split", default="test", choices=SPLITS, help="data split (default test)")


def add_batch_size(p: Container, default: int | None, help: str) -> None:
    p.add_argument("--batch-size", type=int, default=default, help=help)


def add_no_cache(p: Container, help: str = "re-run the full network at every position") -> None:
    p.add_argument("--no-cache", action="store_true", help=help)


def add_json(p: Container, help: str = "print the result as JSON") -> None:
    p.add_argument("--json", action="store_true", help=help)
