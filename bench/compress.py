"""Compression benchmark: a trained model driving the range coder, against general-purpose and image codecs.

Text: a char-level Transformer (4 layers, 4 heads, 128 dims, context 64, as in bench/text.py) trained on the first
90% of the ``shakespeare`` corpus (and of tiny Shakespeare when ``--corpus`` is given) compresses the held-out
last 10%. Reported: bits per character of the .cr file, of its payload alone, the ideal cost of the quantised
probabilities the coder used, and the model's own teacher-forced NLL on the same text (non-overlapping windows of
the context, as evaluation scores it); gzip -9, bzip2 -9, xz -9e and zstd -19 on the same bytes; KB/s each way.

Images: a Gated PixelCNN trained on 256-level MNIST (``mnist-subset``) compresses 200 of its test images laid out
as one mosaic PNG (28 x 28 cells, so the coder's tiles are the digits), against that PNG re-saved by Pillow with
``optimize=True`` and WebP lossless (``method=6``); bits per pixel and the model's NLL on the same images. A
convolutional model without a cache runs its network once per pixel, so image coding is slow (about a second
per digit on one thread); ``--images`` and ``--image-model`` trade that off.

Every round trip is checked byte for byte (text) or pixel for pixel (images). Coding runs on one thread.

    .venv/bin/python bench/compress.py                                   # full run (see the README section)
    .venv/bin/python bench/compress.py --corpus path/to/tinyshakespeare/input.txt
    .venv/bin/python bench/compress.py --text-steps 20 --image-steps 20 --text-chars 3000 --images 16 \\
        --columns 4 --out /tmp/compress.json                             # quick check that it works

Writes bench/results/compress.json and bench/results/compress.md.
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
IMAGE_TRAIN = ["data.levels=256", "train.batch_size=64", "train.lr=2e-3", "train.eval_every=0",
               "train.checkpoint_every=0", "train.progress=false", "output.samples=0"]
CELL = 28


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


def image_codecs(pixels: np.ndarray) -> dict[str, int]:
    from PIL import Image

    im = Image.fromarray(pixels, "L")
    png, webp = io.BytesIO(), io.BytesIO()
    im.save(png, format="PNG", optimize=True)
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


def text_run(dataset: str, root: Path, steps: int, corpus: str | None, reuse: str | None):
    from chainrule import api

    if reuse:
        return api.open_run(reuse)
    run_dir = root / f"compress-{dataset}-transformer"
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
    run = text_run(dataset, root, args.text_steps, args.corpus if tiny else None, None if tiny else args.text_run)
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
    return {
        "dataset": f"{dataset} (held-out last 10%)", "run": _shown(run.path), "chars": chars, "bytes": len(data),
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
def image_run(root: Path, model: str, steps: int, reuse: str | None):
    from chainrule import api

    if reuse:
        return api.open_run(reuse)
    run_dir = root / f"compress-mnist-subset-{model}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    return api.train("mnist-subset", model, run_dir=run_dir, overrides=[*IMAGE_TRAIN, f"train.steps={steps}"])


def mosaic(images: np.ndarray, columns: int) -> np.ndarray:
    """``(N, 28, 28)`` uint8 -> one grid image, black cells after the last image."""
    rows = -(-len(images) // columns)
    grid = np.zeros((rows * columns, CELL, CELL), dtype=np.uint8)
    grid[:len(images)] = images
    return grid.reshape(rows, columns, CELL, CELL).transpose(0, 2, 1, 3).reshape(rows * CELL, columns * CELL)


def bench_images(args: argparse.Namespace, root: Path, tmp: Path) -> dict:
    from PIL import Image

    from chainrule import api

    run = image_run(root, args.image_model, args.image_steps, args.image_run)
    if run.spec["levels"] != 256 or run.spec["event_shape"] != [1, CELL, CELL]:
        raise SystemExit("the image benchmark needs a 256-level 1 x 28 x 28 run")
    test = api.load_data(run.config["data"], run.path)["test"]
    n = min(args.images, len(test)) if args.images else len(test)
    x, _ = test.get(torch.arange(n))
    pixels = mosaic(x[:, 0].numpy().astype(np.uint8), args.columns)
    path = tmp / "mnist-test-mosaic.png"
    Image.fromarray(pixels, "L").save(path)
    res = round_trip(run, path, args.image_batch)
    model = res.pop("model")
    cells = torch.from_numpy(pixels.reshape(-1, CELL, pixels.shape[1] // CELL, CELL).transpose(0, 2, 1, 3)
                             .reshape(-1, 1, CELL, CELL).astype(np.int64))
    with torch.no_grad():
        nll_bits = -float(model.log_prob(cells).double().sum()) / math.log(2)
    dims = pixels.size
    kb = dims / 1024
    return {
        "dataset": f"mnist-subset test, {n} images as one {pixels.shape[1]}x{pixels.shape[0]} mosaic",
        "run": _shown(run.path), "pixels": dims,
        "bits_per_pixel": {
            "chainrule .cr file": 8 * res["file_bytes"] / dims,
            "chainrule payload": 8 * res["payload_bytes"] / dims,
            "quantised model cost": res["ideal_bits"] / dims,
            "model NLL": nll_bits / dims,
            **{k: 8 * v / dims for k, v in image_codecs(pixels).items()},
        },
        "header_bytes": res["header_bytes"], "batch_size": args.image_batch, "model": run.config["model"]["name"],
        "encode_kb_per_s": kb / res["encode_seconds"], "decode_kb_per_s": kb / res["decode_seconds"],
    }


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
    p.add_argument("--image-run", help="use this 256-level 28x28 image run instead of training one")
    p.add_argument("--text-steps", type=int, default=2000)
    p.add_argument("--image-steps", type=int, default=2000)
    p.add_argument("--image-model", default="gated_pixelcnn", help="image architecture to train")
    p.add_argument("--text-chars", type=int, default=0, help="code only the first N held-out characters (0 = all)")
    p.add_argument("--images", type=int, default=200, help="test images in the mosaic (0 = all 1,000)")
    p.add_argument("--columns", type=int, default=25, help="mosaic width in images")
    p.add_argument("--batch-size", type=int, default=16, help="text streams coded together")
    p.add_argument("--image-batch", type=int, default=100, help="image tiles coded together")
    p.add_argument("--skip-text", action="store_true")
    p.add_argument("--skip-images", action="store_true")
    p.add_argument("--out", default=str(HERE / "results" / "compress.json"))
    a = p.parse_args()
    torch.set_num_threads(2)  # training; the coder itself runs on one thread
    root = HERE / "runs"
    results: dict = {"text": [], "images": []}
    with tempfile.TemporaryDirectory() as tmp:
        if not a.skip_text:
            for dataset in ["shakespeare", *(["tinyshakespeare"] if a.corpus else [])]:
                results["text"].append(bench_text(dataset, a, root, Path(tmp)))
                print(json.dumps(results["text"][-1]), flush=True)
        if not a.skip_images:
            results["images"].append(bench_images(a, root, Path(tmp)))
            print(json.dumps(results["images"][-1]), flush=True)
    results["meta"] = {"machine": f"{platform.machine()}, torch {torch.__version__}, CPU, coding on 1 thread",
                       "command": "python bench/compress.py" + (" --corpus CORPUS" if a.corpus else ""),
                       "text_config": "char transformer, 4 layers, 4 heads, 128 dims, context 64, "
                                      f"{a.text_steps} steps",
                       "image_config": f"{a.image_model} on 256-level mnist-subset, {a.image_steps} steps"}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    md = []
    if results["text"]:
        md += ["Bits per character (lower is better)", "", table(results["text"], "bits_per_char"), ""]
    if results["images"]:
        md += ["Bits per pixel (lower is better)", "", table(results["images"], "bits_per_pixel"), ""]
    out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
