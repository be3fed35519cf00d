"""Command-line interface: ``chainrule train | eval | sample | complete | models | datasets | demo``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from chainrule.errors import ChainruleError

EXAMPLES = {
    "train": """examples:
  chainrule train digits gated_pixelcnn --set train.steps=2000 --run runs/digits-gated
  chainrule train mnist made --set data.binarize=dynamic --set model.num_masks=8
  chainrule train imagefolder:photos/ pixelcnn_pp --set data.size=32 --config my.yaml
  chainrule train --resume --run runs/digits-gated        # continue exactly where it stopped
  torchrun --nproc_per_node 2 -m chainrule train digits pixelcnn --run-dir runs/ddp""",
    "eval": "example:\n  chainrule eval runs/digits-gated --split test",
    "sample": "examples:\n  chainrule sample runs/digits-gated -n 64 --out grid.png\n"
              "  chainrule sample runs/cond -n 16 --class 3 --temperature 0.8 --out threes.png",
    "complete": "example:\n  chainrule complete runs/digits-gated -n 16 --out completions.png",
    "models": "example:\n  chainrule models",
    "datasets": "example:\n  chainrule datasets",
    "demo": "example:\n  chainrule demo            # Gated PixelCNN vs the histogram baseline on digits",
}


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="chainrule", formatter_class=fmt,
        description="Autoregressive generative models: p(x) = prod_t p(x_t | x_<t). Train, evaluate exact "
                    "log-likelihood, sample and complete images.",
        epilog="Run 'chainrule COMMAND --help' for each command's options and an example.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model on a dataset into a run directory", formatter_class=fmt,
                       description="Train MODEL on DATASET. Writes RUN/config.yaml, checkpoints/, best.safetensors, "
                                   "metrics.jsonl, plots/training_curve.png and samples/final.png.",
                       epilog=EXAMPLES["train"])
    t.add_argument("dataset", nargs="?", help="dataset name (see 'chainrule datasets'), imagefolder:PATH or a folder")
    t.add_argument("model", nargs="?", help="model name (see 'chainrule models')")
    t.add_argument("--config", metavar="FILE.yaml", help="YAML with data/model/train/output sections")
    t.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override a config value, e.g. train.lr=3e-4 (repeatable)")
    t.add_argument("--run", "--run-dir", dest="run", metavar="DIR",
                   help="run directory (default: runs/DATASET-MODEL-TIME); spell it --run-dir under torchrun")
    t.add_argument("--resume", action="store_true", help="continue the run in --run from its newest checkpoint")

    e = sub.add_parser("eval", help="test NLL (nats/example, bits/dim) of a trained run", formatter_class=fmt,
                       description="Exact negative log-likelihood of a split under a run's best weights.",
                       epilog=EXAMPLES["eval"])
    e.add_argument("run", help="run directory")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--json", action="store_true", help="print the result as JSON")

    s = sub.add_parser("sample", help="draw images from a run and save a PNG grid", formatter_class=fmt,
                       description="Ancestral sampling from a trained run.", epilog=EXAMPLES["sample"])
    s.add_argument("run", help="run directory")
    s.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--out", default="samples.png", help="output PNG (default samples.png)")
    s.add_argument("--class", dest="cls", help="class index or name (class-conditional models)")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-cache", action="store_true", help="re-run the full network at every position")

    c = sub.add_parser("complete", help="fill in the lower half of test images", formatter_class=fmt,
                       description="Conditional generation: keep the top half of test images and sample the "
                                   "rest. The grid shows originals, the given halves and the completions.",
                       epilog=EXAMPLES["complete"])
    c.add_argument("run", help="run directory")
    c.add_argument("-n", type=int, default=16)
    c.add_argument("--out", default="completions.png")
    c.add_argument("--split", default="test", choices=["train", "val", "test"])
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--temperature", type=float, default=1.0)

    sub.add_parser("models", help="list the model architectures", formatter_class=fmt,
                   description="List registered models.", epilog=EXAMPLES["models"])
    sub.add_parser("datasets", help="list the datasets", formatter_class=fmt,
                   description="List registered datasets.", epilog=EXAMPLES["datasets"])

    d = sub.add_parser("demo", help="Gated PixelCNN vs histogram baseline on digits", formatter_class=fmt,
                       description="Train the histogram baseline and a Gated PixelCNN on scikit-learn's 8x8 "
                                   "digits, print their test bits/dim and write a sample grid.",
                       epilog=EXAMPLES["demo"])
    d.add_argument("--steps", type=int, default=None, help="Gated PixelCNN training steps")
    d.add_argument("--root", default="runs", help="where to put the demo runs (default runs/)")
    return p


def _cmd_train(a: argparse.Namespace) -> None:
    from chainrule import api

    if not a.resume and (not a.dataset or not a.model) and not a.config:
        raise ChainruleError("train needs DATASET and MODEL (or --config); see 'chainrule train --help'")
    run = api.train(a.dataset, a.model, a.config, a.overrides, a.run, resume=a.resume)
    if api._is_rank_zero():
        print(f"run written to {run.path}")


def _cmd_eval(a: argparse.Namespace) -> None:
    from chainrule import api

    res = api.evaluate(a.run, split=a.split, batch_size=a.batch_size)
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['model']} on {res['data']}: {res['nll_nats']:.4f} nats/example, {res['bpd']:.4f} bits/dim "
              f"({res['examples']} examples)")


def _cmd_sample(a: argparse.Namespace) -> None:
    from chainrule import api
    from chainrule.evaluation.images import save_grid

    run = api.open_run(a.run)
    x = api.sample(run, a.n, cls=a.cls, temperature=a.temperature, seed=a.seed, use_cache=not a.no_cache)
    print(f"wrote {save_grid(x, run.spec['levels'], a.out)}")


def _cmd_complete(a: argparse.Namespace) -> None:
    import torch

    from chainrule import api
    from chainrule.evaluation.images import save_grid

    run = api.open_run(a.run)
    orig, given, out = api.complete(run, n=a.n, split=a.split, seed=a.seed, temperature=a.temperature)
    grid = torch.cat([orig, given, out])
    print(f"wrote {save_grid(grid, run.spec['levels'], a.out, nrow=orig.shape[0])} "
          "(rows: originals, given top halves, completions)")


def _cmd_models(_: argparse.Namespace) -> None:
    from chainrule.models.registry import MODELS, model_class

    for name in MODELS:
        cls = model_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        cache = "cached step" if cls.supports_cache else ""
        print(f"{name:16s} {doc}  {('[' + cache + ']') if cache else ''}".rstrip())


def _cmd_datasets(_: argparse.Namespace) -> None:
    from chainrule.data.registry import DATASETS

    for name, (_, desc) in DATASETS.items():
        print(f"{name:16s} {desc}")


def _cmd_demo(a: argparse.Namespace) -> None:
    from chainrule.demo import run_demo

    run_demo(root=Path(a.root), steps=a.steps)


COMMANDS = {"train": _cmd_train, "eval": _cmd_eval, "sample": _cmd_sample, "complete": _cmd_complete,
            "models": _cmd_models, "datasets": _cmd_datasets, "demo": _cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        COMMANDS[args.command](args)
    except ChainruleError as e:
        print(f"chainrule: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
