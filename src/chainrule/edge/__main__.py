"""``chainrule-edge``: run exported models with onnxruntime and numpy (no PyTorch)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chainrule.core.console import run_command
from chainrule.edge.errors import EdgeError

EPILOG = """examples:
  chainrule-edge generate model.onnx --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8 --top-k 40
  chainrule-edge sample digits.onnx -n 16 --out samples.png
  chainrule-edge sample vae.onnx -n 64 --temperature 0.8 --out samples.png   # a VAE's or RealNVP's sampler
  chainrule-edge sample speech.onnx --seconds 2 --out speech.wav      # an exported WaveNet: a WAV
  chainrule-edge forecast passengers.onnx --history 112,118,132,129,121,135 --horizon 12 --samples 200
  chainrule-edge info model.onnx"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chainrule-edge", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Run a model exported with 'chainrule export --format onnx' using "
                                            "onnxruntime and numpy only.", epilog=EPILOG)
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    g = sub.add_parser("generate", help="continue a text prompt (text models)")
    g.add_argument("model", help="exported .onnx file")
    g.add_argument("--prompt", default="", help="text to continue (default: empty)")
    g.add_argument("--max-new-tokens", type=int, default=200)
    g.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1)")
    g.add_argument("--top-k", type=int, default=None, help="keep only the K most likely tokens")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1 = off)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-echo", action="store_true", help="print only the generated text")

    s = sub.add_parser("sample", help="draw images (image models) or audio (WaveNet: a WAV)")
    s.add_argument("model", help="exported .onnx file")
    s.add_argument("-n", type=int, default=None, help="number of samples (default 16 images, or 1 waveform)")
    s.add_argument("--out", default=None, help=".png grid or .npy levels (default samples.png); audio: .wav or "
                                               ".npy (default samples.wav)")
    s.add_argument("--seconds", type=float, default=1.0, help="audio models: seconds per waveform (default 1)")
    s.add_argument("--class", dest="cls", type=int, default=None, help="class index (class-conditional models)")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)

    f = sub.add_parser("forecast", help="forecast one series (forecasting models)")
    f.add_argument("model", help="exported .onnx file")
    f.add_argument("--history", required=True,
                   help="comma-separated values, oldest first (empty = missing); write --history=-1,2 when the "
                        "first value is negative")
    f.add_argument("--horizon", type=int, default=None, help="steps to forecast (default: the trained horizon)")
    f.add_argument("--samples", type=int, default=100, help="sample paths (default 100)")
    f.add_argument("--quantiles", default="0.05,0.25,0.5,0.75,0.95", help="comma-separated, in (0, 1)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--json", action="store_true", help="print the forecast as JSON")

    i = sub.add_parser("info", help="describe an exported model")
    i.add_argument("model", help="exported .onnx file")
    return p


def _cmd_generate(a: argparse.Namespace) -> None:
    from chainrule.edge.model import EdgeModel
    from chainrule.edge.text import generate_text

    model = EdgeModel(a.model, threads=a.threads)
    pieces = generate_text(model, a.prompt, max_new_tokens=a.max_new_tokens, temperature=a.temperature,
                           top_k=a.top_k, top_p=a.top_p, seed=a.seed)
    if not a.no_echo:
        sys.stdout.write(a.prompt)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def _cmd_sample(a: argparse.Namespace) -> None:
    from chainrule.edge.images import sample_images, save_samples
    from chainrule.edge.model import EdgeModel

    model = EdgeModel(a.model, threads=a.threads)
    if model.kind == "audio":
        from chainrule.edge.audio import sample_audio, save_audio

        x = sample_audio(model, a.seconds, n=1 if a.n is None else a.n, temperature=a.temperature, seed=a.seed,
                         cls=a.cls)
        print(f"wrote {save_audio(model, x, a.out or 'samples.wav')}")
        return
    x = sample_images(model, 16 if a.n is None else a.n, temperature=a.temperature, seed=a.seed, cls=a.cls)
    print(f"wrote {save_samples(x, int(model.metadata['head']['levels']), a.out or 'samples.png')}")


def _cmd_forecast(a: argparse.Namespace) -> None:
    import json

    from chainrule.edge.forecast import forecast, parse_history
    from chainrule.edge.model import EdgeModel

    try:
        quantiles = [float(q) for q in a.quantiles.split(",") if q.strip()]
    except ValueError:
        raise EdgeError(f"quantiles must be comma-separated numbers in (0, 1), got {a.quantiles!r}") from None
    model = EdgeModel(a.model, threads=a.threads)
    res = forecast(model, parse_history(a.history), a.horizon, a.samples, quantiles, a.seed)
    if a.json:
        print(json.dumps(res))
        return
    keys = list(res["quantiles"])
    print("step\tmean\tmedian\t" + "\t".join(f"q{k}" for k in keys))
    for h in range(res["horizon"]):
        row = [res["mean"][h], res["median"][h], *(res["quantiles"][k][h] for k in keys)]
        print(f"{h + 1}\t" + "\t".join(f"{v:.6g}" for v in row))


def _cmd_info(a: argparse.Namespace) -> None:
    from chainrule.edge.model import EdgeModel

    print(EdgeModel(a.model, threads=a.threads).describe())


COMMANDS = {"generate": _cmd_generate, "sample": _cmd_sample, "forecast": _cmd_forecast, "info": _cmd_info}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    return run_command("chainrule-edge", parser, args, lambda a: COMMANDS[a.command](a), (EdgeError,))


if __name__ == "__main__":
    sys.exit(main())
