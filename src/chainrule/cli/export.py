"""``chainrule export``: a run as one ONNX file for the torch-free runtime, a Hugging Face GPT-2 directory, or a
Hub-style ``config.json`` + ``model.safetensors`` directory (the exporters are in :mod:`chainrule.export`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from chainrule.cli import options
from chainrule.export import FORMATS

EXAMPLES = """examples:
  chainrule export runs/shakespeare-transformer --format onnx --out model.onnx
  chainrule export runs/gpt2 --out gpt2.onnx --max-context 256     # smaller KV cache
  chainrule-edge generate model.onnx --prompt "ROMEO:" --max-new-tokens 200
  chainrule-edge forecast passengers.onnx --history 112,118,132,129,121 --horizon 12
  chainrule export runs/digits-vae --out vae.onnx          # a VAE's or RealNVP's sampler: noise -> image
  chainrule-edge sample vae.onnx -n 64 --out samples.png
  chainrule export runs/shakespeare-transformer --format hf --out shakespeare-gpt2
      # then: transformers.AutoModelForCausalLM.from_pretrained("shakespeare-gpt2")
  chainrule export runs/digits-gated-pixelcnn --format pretrained --out digits-model
      # then: chainrule.pretrained.from_pretrained("digits-model")"""

#: where --out points when not given
DEFAULT_OUT = {"onnx": "model.onnx", "hf": "{run}-hf", "pretrained": "{run}-pretrained"}


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    x = sub.add_parser("export", help="export a run to ONNX (chainrule-edge), Hugging Face GPT-2 or config.json + "
                                      "model.safetensors", formatter_class=fmt, epilog=EXAMPLES,
                       description="Export a trained run. onnx: one self-contained file, the incremental step "
                                   "of a text model (with its KV cache / recurrent state and tokenizer) or of a "
                                   "forecaster (with its feature spec), the forward pass of an image model, or "
                                   "the sampler (noise -> image) of a VAE or RealNVP flow; "
                                   "the graph is checked against PyTorch before the file is written; run it with "
                                   "chainrule-edge. hf: a directory transformers loads (AutoModelForCausalLM, "
                                   "AutoTokenizer) for a text transformer with learned positions; the start vector "
                                   "becomes a BOS token the tokenizer puts first. pretrained: config.json + "
                                   "model.safetensors (+ tokenizer.json) for any run, loaded with "
                                   "chainrule.pretrained.from_pretrained and hostable on the Hugging Face Hub.")
    options.add_run_argument(x)
    x.add_argument("--format", default="onnx", metavar="FORMAT",
                   help=f"export format: {', '.join(FORMATS)} (default onnx)")
    options.add_out(x, None, "output file (onnx, default model.onnx) or directory (hf, pretrained; default "
                             "RUN-hf, RUN-pretrained)", metavar="PATH")
    x.add_argument("--max-context", type=int, default=None, metavar="N",
                   help="positions in the exported cache. Text models: default the model's context length; "
                        "forecasters: history + the longest horizon (default history + 4 x the trained horizon)")


def run(a: argparse.Namespace) -> None:
    from chainrule.export import export_run

    out = a.out or DEFAULT_OUT.get(a.format, "model.onnx").format(run=Path(a.run).resolve().name)
    meta = export_run(a.run, out, fmt=a.format, max_context=a.max_context)
    if a.format == "hf":
        print(f"wrote {out}/ (GPT-2, vocabulary {meta['vocab_size']} with BOS id {meta['bos_token_id']})")
    elif a.format == "pretrained":
        print(f"wrote {out}/ ({meta['model']['name']} {meta['kind']} model: config.json + model.safetensors)")
    else:
        what = {"step": "incremental step", "sampler": "sampler"}.get(meta["graph"], "forward pass")
        print(f"wrote {out} ({meta['model']} {what}, {meta['kind']} model)")
