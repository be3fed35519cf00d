"""Command-line interface: ``chainrule train | eval | sample | complete | generate | interpolate | import |
forecast | serve | export | compress | decompress | score | features | background | models | datasets | demo |
leaderboard | adversarial``.

Each command group is one module exposing ``add_parser(sub, fmt)`` and ``run(args)``; options several commands
share come from :mod:`chainrule.cli.options`. Command modules import torch and the library only inside ``run``,
so building the parser (``chainrule --help``) stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from chainrule.core.console import run_command
from chainrule.core.errors import ChainruleError

#: command -> the module defining it (a module may define several); ``chainrule --help`` lists them in this order
COMMANDS = {
    "train": "chainrule.cli.train",
    "eval": "chainrule.cli.evaluate",
    "sample": "chainrule.cli.images",
    "complete": "chainrule.cli.images",
    "generate": "chainrule.cli.generate",
    "interpolate": "chainrule.cli.interpolate",
    "upscale": "chainrule.cli.conditional",
    "colorize": "chainrule.cli.conditional",
    "import": "chainrule.cli.convert",
    "forecast": "chainrule.cli.forecast",
    "serve": "chainrule.cli.serve",
    "export": "chainrule.cli.export",
    "compress": "chainrule.cli.compress",
    "decompress": "chainrule.cli.compress",
    "score": "chainrule.cli.score",
    "features": "chainrule.cli.features",
    "background": "chainrule.cli.background",
    "models": "chainrule.cli.catalog",
    "datasets": "chainrule.cli.catalog",
    "demo": "chainrule.cli.demo",
    "leaderboard": "chainrule.cli.leaderboard",
    "tts-train": "chainrule.cli.speak",
    "speak": "chainrule.cli.speak",
    "adversarial": "chainrule.cli.adversarial",
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command module's subcommands."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="chainrule", formatter_class=fmt,
        description="Autoregressive generative models: p(x) = prod_t p(x_t | x_<t). Train, evaluate exact "
                    "log-likelihood, sample images, generate text, forecast time series, serve over HTTP and "
                    "export to ONNX.",
        epilog="Run 'chainrule COMMAND --help' for each command's options and an example.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(module).add_parser(sub, fmt)
    return p


def _run(a: argparse.Namespace) -> None:
    importlib.import_module(COMMANDS[a.command]).run(a)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_command("chainrule", parser, args, _run, (ChainruleError,))


if __name__ == "__main__":
    sys.exit(main())
