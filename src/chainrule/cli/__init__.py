"""Command-line interface: ``chainrule train | eval | sample | complete | generate | import | forecast | serve |
export | models | datasets | demo``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from chainrule.core.console import run_command
from chainrule.core.errors import ChainruleError

#: commands defined in their own modules: name -> (module, parser builder, runner)
MODULE_COMMANDS = {
    "forecast": ("chainrule.cli.forecast", "add_forecast_parser", "run_forecast"),
    "serve": ("chainrule.serve.command", "add_serve_parser", "run_serve"),
    "export": ("chainrule.export.command", "add_export_parser", "run_export"),
}

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
                    "log-likelihood, sample images, generate text, forecast time series, serve over HTTP and "
                    "export to ONNX.",
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

    im = sub.add_parser("import", help="convert a pretrained model (Hugging Face GPT-2) into a run",
                        formatter_class=fmt, epilog="example:\n  chainrule import gpt2 hf/gpt2 --run runs/gpt2",
                        description="Convert a Hugging Face GPT-2 directory (config.json, model.safetensors or "
                                    "pytorch_model.bin, tokenizer.json or vocab.json + merges.txt) into a run "
                                    "directory usable by eval and generate.")
    im.add_argument("format", choices=["gpt2"], help="source format")
    im.add_argument("source", metavar="DIR", help="the Hugging Face model directory")
    im.add_argument("--run", metavar="OUT", help="run directory to write (default: runs/NAME-import-TIME)")
    _add_generate_parser(sub, fmt)
    for module, add_parser, _ in MODULE_COMMANDS.values():
        getattr(importlib.import_module(module), add_parser)(sub, fmt)
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
    elif "bits_per_char" in res:
        print(f"{res['model']} on {res['data']}: {res['nats_per_token']:.4f} nats/token, "
              f"{res['bits_per_char']:.4f} bits/char ({res['examples']} windows)")
    else:
        print(f"{res['model']} on {res['data']}: {res['nll_nats']:.4f} nats/example, {res['bpd']:.4f} bits/dim "
              f"({res['examples']} examples)")


def _cmd_sample(a: argparse.Namespace) -> None:
    from chainrule import api
    from chainrule.modalities.image.grids import save_grid

    run = api.open_run(a.run)
    x = api.sample(run, a.n, cls=a.cls, temperature=a.temperature, seed=a.seed, use_cache=not a.no_cache)
    print(f"wrote {save_grid(x, run.spec['levels'], a.out)}")


def _cmd_complete(a: argparse.Namespace) -> None:
    import torch

    from chainrule import api
    from chainrule.modalities.image.grids import save_grid

    run = api.open_run(a.run)
    orig, given, out = api.complete(run, n=a.n, split=a.split, seed=a.seed, temperature=a.temperature)
    grid = torch.cat([orig, given, out])
    print(f"wrote {save_grid(grid, run.spec['levels'], a.out, nrow=orig.shape[0])} "
          "(rows: originals, given top halves, completions)")


def _cmd_models(_: argparse.Namespace) -> None:
    from chainrule.modalities.registry import MODELS, model_class

    for name in MODELS:
        cls = model_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        tags = [cls.data_kind] + (["cached step"] if cls.supports_cache else [])
        print(f"{name:16s} {doc}  [{', '.join(tags)}]")


def _cmd_datasets(_: argparse.Namespace) -> None:
    from chainrule.modalities.datasets import DATASETS

    for name, (_, desc) in DATASETS.items():
        print(f"{name:16s} {desc}")


def _cmd_demo(a: argparse.Namespace) -> None:
    from chainrule.demo import run_demo

    run_demo(root=Path(a.root), steps=a.steps)


def _cmd_import(a: argparse.Namespace) -> None:
    from chainrule.convert import IMPORTERS
    from chainrule.runs import default_run_dir

    out = a.run or default_run_dir(Path(a.source).resolve().name, "import")
    run = IMPORTERS[a.format](a.source, out)
    print(f"run written to {run.path}")


GENERATE_EXAMPLES = """examples:
  chainrule generate runs/shakespeare-transformer --prompt "ROMEO:" --max-new-tokens 300
  chainrule generate runs/gpt2 --prompt "The meaning of life is" --temperature 0.8 --top-k 50 --top-p 0.95 \\
      --repetition-penalty 1.2 --no-repeat-ngram 3 --stop '\\n\\n' --seed 1 --num-samples 3"""


def _add_generate_parser(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    g = sub.add_parser("generate", help="continue a text prompt with a trained language model", formatter_class=fmt,
                       description="Sample text from a text run, streaming it as it is produced. Tokens are drawn "
                                   "after the repetition penalty, no-repeat-n-gram ban, temperature, top-k and "
                                   "top-p, in that order. The prompt is printed first (unless --no-echo).",
                       epilog=GENERATE_EXAMPLES)
    g.add_argument("run", help="run directory of a text model")
    g.add_argument("--prompt", default="", help="text to continue (default: empty, unconditional)")
    g.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate per sample (default 200)")
    g.add_argument("--temperature", type=float, default=1.0, help="logit temperature; 0 = greedy (default 1)")
    g.add_argument("--top-k", type=int, default=None, help="keep only the K most likely tokens")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass, after top-k (default 1 = off)")
    g.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="CTRL-style penalty on tokens already in the text (default 1 = off)")
    g.add_argument("--no-repeat-ngram", type=int, default=0, metavar="N",
                   help="never repeat an N-gram of tokens (default 0 = off)")
    g.add_argument("--stop", nargs="+", action="extend", default=[], metavar="STR",
                   help="end a sample before the first occurrence of STR (escapes \\n, \\t, \\\\ understood)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--num-samples", type=int, default=1, help="samples to generate; each printed under a header")
    g.add_argument("--no-cache", action="store_true", help="re-run the full network for every token")
    g.add_argument("--no-echo", action="store_true", help="print only the generated text, not the prompt")


def _unescape(s: str) -> str:
    """``\\n``, ``\\t`` and ``\\\\`` in a command-line string -> newline, tab, backslash."""
    import re

    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], s)


def _cmd_generate(a: argparse.Namespace) -> None:
    from chainrule import api

    options = {"max_new_tokens": a.max_new_tokens, "temperature": a.temperature, "top_k": a.top_k,
               "top_p": a.top_p, "repetition_penalty": a.repetition_penalty,
               "no_repeat_ngram_size": a.no_repeat_ngram, "stop": [_unescape(s) for s in a.stop], "seed": a.seed}
    echo = "" if a.no_echo else a.prompt
    if a.num_samples == 1:
        pieces = api.generate(a.run, a.prompt, use_cache=not a.no_cache, **options)
        sys.stdout.write(echo)
        sys.stdout.flush()
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return
    texts = api.generate_texts(a.run, a.prompt, num_samples=a.num_samples, use_cache=not a.no_cache, **options)
    for i, text in enumerate(texts, 1):
        print(f"=== sample {i}/{len(texts)} ===")
        print(echo + text, flush=True)


COMMANDS = {"train": _cmd_train, "eval": _cmd_eval, "sample": _cmd_sample, "complete": _cmd_complete,
            "models": _cmd_models, "datasets": _cmd_datasets, "demo": _cmd_demo,
            "import": _cmd_import}
COMMANDS["generate"] = _cmd_generate


def _run_command(a: argparse.Namespace) -> None:
    if a.command in MODULE_COMMANDS:
        module, _, runner = MODULE_COMMANDS[a.command]
        getattr(importlib.import_module(module), runner)(a)
    else:
        COMMANDS[a.command](a)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    return run_command("chainrule", parser, args, _run_command, (ChainruleError,))


if __name__ == "__main__":
    sys.exit(main())
