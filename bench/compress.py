"""Compression benchmark: a trained model driving the range coder, against general-purpose and image codecs.

Text: a char-level Transformer (4 layers, 4 heads, 128 dims, context 64, as in bench/text.py) trained on the first
90% of the ``shakespeare`` corpus (and of tiny Shakespeare when ``--corpus`` is given) compresses the held-out
last 10% (or its first ``--text-chars`` characters). Reported: bits per character of the .cr file, of its payload
alone, the ideal cost of the quantised probabilities the coder used, and the model's own teacher-forced NLL on the
same text (non-overlapping windows of the context, as evaluation scores it); gzip -9, bzip2 -9, xz -9e and zstd
-19 on the same bytes; KB/s each way.

Images: one run per kind, each compressing test images laid out as one mosaic PNG (cells of the run's image size,
so the coder's tiles are the test images), against that PNG re-saved by Pillow with ``optimize=True`` and WebP
lossless (``method=6``); bits per sub-pixel and the model's NLL on the same images:

* ``binary``: a small Gated PixelCNN on ``mnist-subset`` binarized (static, seed 0), the mosaic a 1-bit PNG;
* ``grey``: the same on 256-level ``mnist-subset``;
* ``rgb``: a small ImageGPT (KV cache) with the logistic mixture head on ``photos``, the mosaic the top rows of the
  test photo (grace_hopper).

A convolutional model without a cache runs its network once per pixel, so image coding is slow; ``--images``,
``--patches`` and ``--image-kinds`` trade that off.

Every round trip is checked byte for byte (text) or pixel for pixel (images). Coding runs on one thread.

    .venv/bin/python bench/compress.py --corpus path/to/tinyshakespeare/input.txt      # full run
    .venv/bin/python bench/compress.py --reuse ...         # code with the runs already in bench/runs
    .venv/bin/python bench/compress.py --quick             # tiny sizes: a check that it works (seconds)

Writes bench/results/compress.json and bench/results/compress.md (``--quick``: compress-quick.*).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import math
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
TEXT_MODEL = ["model.embed_dim=128", "model.num_layers=4", "model.num_heads=4", "model.dropout=0", "model.bias=false"]
TEXT_TRAIN = ["data.tokenizer=char", "data.context=64", "train.batch_size=12", "train.lr=1e-3",
              "train.min_lr_ratio=0.1", "train.warmup_steps=100", "train.weight_decay=0.1", "train.grad_clip=1.0",
              "train.eval_every=0", "train.checkpoint_every=0", "train.log_every=100", "train.progress=false",
              "output.samples=0"]
IMAGE_TRAIN = ["train.batch_size=64", "train.lr=2e-3", "train.eval_every=0", "train.checkpoint_every=0",
               "train.progress=false", "output.samples=0"]
#: kind -> (dataset, model, overrides, PIL mode of the mosaic): small models, so that training and coding take
#: minutes on two cores
GATED_SMALL = ["model.hidden_channels=16", "model.num_layers=4", "model.output_channels=32", "train.batch_size=32"]
IMAGE_KINDS: dict[str, tuple[str, str, list[str], str]] = {
    "binary": ("mnist-subset", "gated_pixelcnn", ["data.binarize=static", *GATED_SMALL], "1"),
    "grey": ("mnist-subset", "gated_pixelcnn", ["data.levels=256", *GATED_SMALL], "L"),
    "rgb": ("photos", "image_gpt", ["data.levels=256", "model.head=logistic_mixture", "model.embed_dim=64",
                                    "model.num_layers=2", "model.num_heads=4", "train.batch_size=16", "train.lr=1e-3"],
            "RGB"),
}


# ------------------------------------------------------------------------------------------------ baselines
def zstd_size(data: bytes) -> tuple[int | None, str]:
    """zstd -19 size via the ``zstandard`` package, else the ``zstd`` binary, else (None, why)."""
    try:
        import zstandard

        return len(zstandard.ZstdCompressor(level=19).compress(data)), "zstandard package, level 19"
    except ImportError:
        pass
    if shutil.which("zstd"):
        out = subprocess.run(["zstd", "-19", "-c", "-q"], input=data, capture_output=True, check=True).stdout
        return len(out), "zstd binary, -19"
    return None, "skipped: neither the zstandard package nor the zstd binary is available"


def general_purpose(data: bytes) -> tuple[dict[str, int | None], str]:
    zstd, how = zstd_size(data)
    sizes = {"gzip -9": len(gzip.compress(data, compresslevel=9, mtime=0)), "bzip2 -9": len(bz2.compress(data, 9)),
             "xz -9e": len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)), "zstd -19": zstd}
    return sizes, how


def image_codecs(pixels: np.ndarray, mode: str) -> dict[str, int]:
    """PNG (optimised) and WebP lossless sizes of ``pixels`` (``(H, W)`` 0/255 for mode 1, ``(H, W)`` or
    ``(H, W, 3)`` 8-bit otherwise)."""
    from PIL import Image

    im = Image.fromarray(pixels, "RGB" if mode == "RGB" else "L")
    png, webp = io.BytesIO(), io.BytesIO()
    (im.convert("1", dither=Image.Dither.NONE) if mode == "1" else im).save(png, format="PNG", optimize=True)
    im.save(webp, format="WEBP", lossless=True, quality=100, method=6)
    return {"PNG (optimize)": len(png.getvalue()), "WebP lossless": len(webp.getvalue())}


# ------------------------------------------------------------------------------------------------ coding
def round_trip(run, path: Path, batch: int) -> dict:
    """Compress and decompress ``path`` in memory with ``run``; sizes, ideal cost and seconds each way."""
    from chainrule.compression import RunCoder
    from chainrule.core.compression.container import Container

    coder = RunCoder(run, batch_size=batch)
    content = coder.read(path)
    t0 = time.perf_counter()
    container, bits = coder.encode(content)
    blob = container.to_bytes()
    t1 = time.perf_counter()
    back = coder.decode(Container.from_bytes(blob))
    t2 = time.perf_counter()
    if coder.codec.checksum(back) != coder.codec.checksum(content):
        raise SystemExit(f"round trip of {path} is not identical")
    units, unit = coder.codec.units(content)
    return {"file_bytes": len(blob), "payload_bytes": 4 * len(container.words), "header_bytes": container.header_bytes,
            "ideal_bits": bits, "units": units, "unit": unit, "encode_seconds": t1 - t0, "decode_seconds": t2 - t1,
            "model": coder.model}


def windowed_nll_bits(model, ids: np.ndarray) -> float:
    """The model's teacher-forced NLL of ``ids`` in bits, over non-overlapping windows of its context (each from
    an empty context): what evaluation reports, on exactly the coded text."""
    total, n = 0.0, model.max_len
    with torch.no_grad():
        for start in range(0, len(ids), n * 64):
            chunk = ids[start:start + n * 64]
            full = len(chunk) // n * n
            if full:
                x = torch.from_numpy(chunk[:full].reshape(-1, 1, n))
                total -= float(model.log_prob(x).double().sum())
            if len(chunk) > full:
                total -= float(model.log_prob(torch.from_numpy(chunk[full:]).reshape(1, 1, -1)).double().sum())
    return total / math.log(2)


# ------------------------------------------------------------------------------------------------ text
def _shown(path: Path) -> str:
    """A run's path as written to the results: relative to the repository when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)


def text_run(dataset: str, root: Path, steps: int, corpus: str | None, reuse: str | None, keep: bool):
    from chainrule import api

    if reuse:
        return api.open_run(reuse)
    run_dir = root / f"compress-{dataset}-transformer"
    if keep and (run_dir / "best.safetensors").is_file():
        return api.open_run(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    overrides = [*TEXT_MODEL, *TEXT_TRAIN, f"train.steps={steps}", *([f"data.path={corpus}"] if corpus else [])]
    return api.train(dataset, "transformer", run_dir=run_dir, overrides=overrides)


def held_out_text(dataset: str, corpus: str | None) -> str:
    from chainrule.modalities.text.data.sources import shakespeare_corpus, tinyshakespeare_corpus
    from chainrule.modalities.text.data.text import split_text

    source = tinyshakespeare_corpus(corpus) if dataset == "tinyshakespeare" else shakespeare_corpus()
    return split_text(source.text)["val"]


def bench_text(dataset: str, args: argparse.Namespace, root: Path, tmp: Path) -> dict:
    tiny = dataset == "tinyshakespeare"
    run = text_run(dataset, root, args.text_steps, args.corpus if tiny else None, None if tiny else args.text_run,
                   args.reuse)
    text = held_out_text(dataset, args.corpus)
    if args.text_chars:
        text = text[:args.text_chars]
    data = text.encode("utf-8")
    path = tmp / f"{dataset}-val.txt"
    path.write_bytes(data)
    res = round_trip(run, path, args.batch_size)
    model = res.pop("model")
    from chainrule.modalities.text.data.tokenizers import load_tokenizer

    ids = load_tokenizer(run.path / "tokenizer.json").encode_array(text)
    chars = len(text)
    sizes, zstd_how = general_purpose(data)
    kb = len(data) / 1024
    part = f"first {chars:,} chars of the held-out 10%" if args.text_chars else f"held-out 10%, {chars:,} chars"
    return {
        "dataset": f"{dataset} ({part})", "run": _shown(run.path), "chars": chars, "bytes": len(data),
        "bits_per_char": {
            "chainrule .cr file": 8 * res["file_bytes"] / chars,
            "chainrule payload": 8 * res["payload_bytes"] / chars,
            "quantised model cost": res["ideal_bits"] / chars,
            "model NLL (eval windows)": windowed_nll_bits(model, ids) / chars,
            **{k: (8 * v / chars if v is not None else None) for k, v in sizes.items()},
        },
        "header_bytes": res["header_bytes"], "batch_size": args.batch_size, "zstd": zstd_how,
        "encode_kb_per_s": kb / res["encode_seconds"], "decode_kb_per_s": kb / res["decode_seconds"],
    }


# ------------------------------------------------------------------------------------------------ images
def image_run(kind: str, root: Path, steps: int, seconds: float, keep: bool, model: str | None = None):
    """The kind's run: its architecture, or ``model`` with its default options (e.g. ``histogram``, which is
    fitted by counting and so needs no training budget)."""
    from chainrule import api

    dataset, default, overrides, _ = IMAGE_KINDS[kind]
    if model and model != default:
        overrides = [o for o in overrides if not o.startswith("model.")]
    model = model or default
    run_dir = root / f"compress-{kind}-{model}"
    if keep and (run_dir / "best.safetensors").is_file():
        return api.open_run(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    budget = [f"train.steps={steps}", *([f"train.max_seconds={seconds}"] if seconds else [])]
    return api.train(dataset, model, run_dir=run_dir, overrides=[*IMAGE_TRAIN, *overrides, *budget])


def mosaic(images: np.ndarray, columns: int) -> np.ndarray:
    """``(N, C, S, S)`` 8-bit cells -> one grid image ``(rows * S, columns * S, C)``, black cells after the last."""
    n, c, size = images.shape[:3]
    rows = -(-n // columns)
    grid = np.zeros((rows * columns, c, size, size), dtype=np.uint8)
    grid[:n] = images
    return grid.reshape(rows, columns, c, size, size).transpose(0, 3, 1, 4, 2).reshape(rows * size, columns * size, c)


def cells_of(pixels: np.ndarray, size: int) -> np.ndarray:
    """Inverse of :func:`mosaic`: ``(H, W, C)`` -> ``(N, C, size, size)``."""
    h, w, c = pixels.shape
    return pixels.reshape(h // size, size, w // size, size, c).transpose(0, 2, 4, 1, 3).reshape(-1, c, size, size)


def bench_images(kind: str, args: argparse.Namespace, root: Path, tmp: Path) -> dict:
    from PIL import Image

    from chainrule import api
    from chainrule.modalities.image.codec import to_levels, to_values

    _, _, _, mode = IMAGE_KINDS[kind]
    run = image_run(kind, root, args.image_steps, args.image_seconds, args.reuse, args.image_model)
    levels, size = int(run.spec["levels"]), int(run.spec["event_shape"][1])
    test = api.load_data(run.config["data"], run.path)["test"]
    wanted = args.patches if kind == "rgb" else args.images
    n = min(wanted, len(test)) if wanted else len(test)
    x, _ = test.get(torch.arange(n))
    columns = min(args.columns if kind != "rgb" else 16, n)  # 16 patches = the test photo's width
    pixels = mosaic(to_values(x.numpy(), levels), columns)
    pixels = pixels if mode == "RGB" else pixels[..., 0]
    path = tmp / f"{kind}-test-mosaic.png"
    im = Image.fromarray(pixels, "RGB" if mode == "RGB" else "L")
    (im.convert("1", dither=Image.Dither.NONE) if mode == "1" else im).save(path)
    res = round_trip(run, path, args.image_batch)
    model = res.pop("model")
    full = pixels if pixels.ndim == 3 else pixels[..., None]
    cells = torch.from_numpy(to_levels(cells_of(full, size), levels, "mosaic"))
    with torch.no_grad():
        nll_bits = -sum(float(model.log_prob(cells[i:i + 64]).double().sum()) for i in range(0, len(cells), 64))
    nll_bits /= math.log(2)
    dims = pixels.size
    kb = dims / 1024
    what = {"binary": "binarized (static)", "grey": "256-level", "rgb": "RGB 256-level"}[kind]
    return {
        "kind": kind,
        "dataset": f"{run.config['data']['name']} test, {what}, {n} images as one {pixels.shape[1]}x{pixels.shape[0]} "
                   "mosaic",
        "run": _shown(run.path), "pixels": dims,
        "bits_per_pixel": {
            "chainrule .cr file": 8 * res["file_bytes"] / dims,
            "chainrule payload": 8 * res["payload_bytes"] / dims,
            "quantised model cost": res["ideal_bits"] / dims,
            "model NLL": nll_bits / dims,
            **{k: 8 * v / dims for k, v in image_codecs(pixels, mode).items()},
        },
        "header_bytes": res["header_bytes"], "batch_size": args.image_batch, "model": run.config["model"]["name"],
        "train_steps": _steps_done(run.path),
        "encode_kb_per_s": kb / res["encode_seconds"], "decode_kb_per_s": kb / res["decode_seconds"],
    }


def image_config(kind: str, a: argparse.Namespace) -> str:
    dataset, model, overrides, _ = IMAGE_KINDS[kind]
    if a.image_model and a.image_model != model:
        model, overrides = a.image_model, [o for o in overrides if not o.startswith("model.")]
    budget = f"at most {a.image_steps} steps" + (f" or {a.image_seconds:g} s" if a.image_seconds else "")
    return f"{model} on {dataset} {' '.join(overrides)}, {budget}"


def _steps_done(path: Path) -> int | None:
    try:
        return int(json.loads((path / "summary.json").read_text()).get("steps"))
    except (OSError, ValueError, TypeError):
        return None


# ------------------------------------------------------------------------------------------------ report
def table(rows: list[dict], key: str) -> str:
    methods = list(rows[0][key])
    out = [f"| data | {' | '.join(methods)} | encode KB/s | decode KB/s |",
           f"|---|{'---:|' * (len(methods) + 2)}"]
    for r in rows:
        cells = [f"{r[key][m]:.4f}" if r[key][m] is not None else "n/a" for m in methods]
        out.append(f"| {r['dataset']} | {' | '.join(cells)} | {r['encode_kb_per_s']:.1f} | "
                   f"{r['decode_kb_per_s']:.1f} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", help="tiny Shakespeare input.txt: also benchmark its held-out part")
    p.add_argument("--text-run", help="use this text run for shakespeare instead of training one")
    p.add_argument("--reuse", action="store_true", help="code with the runs already in bench/runs where they exist")
    p.add_argument("--text-steps", type=int, default=2000)
    p.add_argument("--image-steps", type=int, default=600)
    p.add_argument("--image-seconds", type=float, default=480, help="training time limit per image run (0 = none)")
    p.add_argument("--image-kinds", default="binary,grey,rgb", help=f"any of {', '.join(IMAGE_KINDS)}")
    p.add_argument("--image-model", help="train this architecture for every image kind instead of the defaults")
    p.add_argument("--text-chars", type=int, default=0, help="code only the first N held-out characters (0 = all)")
    p.add_argument("--images", type=int, default=50, help="MNIST test images per mosaic (0 = all 1,000)")
    p.add_argument("--patches", type=int, default=32, help="test photo patches, 16 per row (0 = all 288)")
    p.add_argument("--columns", type=int, default=10, help="MNIST mosaic width in images")
    p.add_argument("--batch-size", type=int, default=16, help="text streams coded together")
    p.add_argument("--image-batch", type=int, default=100, help="image tiles coded together")
    p.add_argument("--skip-text", action="store_true")
    p.add_argument("--skip-images", action="store_true")
    p.add_argument("--quick", action="store_true", help="tiny sizes, runs in a temporary folder: checks it works")
    p.add_argument("--out", help="results JSON (default bench/results/compress.json, or compress-quick.json)")
    a = p.parse_args()
    kinds = [k for k in a.image_kinds.split(",") if k]
    if unknown := set(kinds) - set(IMAGE_KINDS):
        raise SystemExit(f"--image-kinds: unknown {', '.join(sorted(unknown))}; choose from {', '.join(IMAGE_KINDS)}")
    if a.quick:
        a.text_steps, a.image_steps, a.image_seconds, a.reuse = 20, 10, 0, False
        a.text_chars, a.images, a.patches, a.columns = a.text_chars or 2000, 4, 2, 2
    torch.set_num_threads(2)  # training; the coder itself runs on one thread
    results: dict = {"text": [], "images": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs" if a.quick else HERE / "runs"
        if not a.skip_text:
            for dataset in ["shakespeare", *(["tinyshakespeare"] if a.corpus else [])]:
                results["text"].append(bench_text(dataset, a, root, Path(tmp)))
                print(json.dumps(results["text"][-1]), flush=True)
        if not a.skip_images:
            for kind in kinds:
                results["images"].append(bench_images(kind, a, root, Path(tmp)))
                print(json.dumps(results["images"][-1]), flush=True)
    results["meta"] = {
        "machine": f"{platform.machine()}, torch {torch.__version__}, CPU, coding on 1 thread",
        "command": "python bench/compress.py" + (" --corpus CORPUS" if a.corpus else "") + (" --quick" if a.quick
                                                                                           else ""),
        "text_config": f"char transformer, 4 layers, 4 heads, 128 dims, context 64, {a.text_steps} steps of 12",
        "image_config": {k: image_config(k, a) for k in kinds}}
    out = Path(a.out) if a.out else HERE / "results" / ("compress-quick.json" if a.quick else "compress.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    md = []
    if results["text"]:
        md += ["Bits per character (lower is better)", "", table(results["text"], "bits_per_char"), ""]
    if results["images"]:
        md += ["Bits per sub-pixel (lower is better)", "", table(results["images"], "bits_per_pixel"), ""]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
