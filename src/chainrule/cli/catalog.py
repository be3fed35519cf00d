"""``chainrule models`` and ``chainrule datasets``: what can be trained on what."""

from __future__ import annotations

import argparse

from chainrule.cli import options


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    sub.add_parser("models", help="list the model architectures", formatter_class=fmt,
                   description="List registered models.", epilog="example:\n  chainrule models")
    sub.add_parser("datasets", help="list the datasets", formatter_class=fmt,
                   description="List registered datasets.", epilog="example:\n  chainrule datasets")


def _models() -> None:
    from chainrule.modalities.registry import MODELS, model_class

    for modality, name in MODELS:
        cls = model_class(name, modality)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        tags = [modality] + (["cached step"] if cls.supports_cache else [])
        print(f"{name:16s} {doc}  [{', '.join(tags)}]")


def _datasets() -> None:
    from chainrule.modalities.datasets import DATASETS

    for name, (_, desc) in DATASETS.items():
        print(f"{name:16s} {desc}")


def run(a: argparse.Namespace) -> None:
    {"models": _models, "datasets": _datasets}[a.command]()
