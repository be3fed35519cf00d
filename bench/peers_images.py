"""Image models side by side with pytorch-generative's, in one process at the same sizes.

For each pair (their PixelCNN, Gated PixelCNN, PixelSNAIL and ImageGPT, and ours at the same widths and depths) on
binary images: the time of one Adam training step at batch 32 (the BCE-with-logits loss of their ``reproduce()``,
our ``loss``) and of sampling 16 images (their ``model.sample``, which re-runs the network per pixel; ours with
its default, cached where the model has a cache). Pairs alternate step by step so both see the same machine;
CPU pressure (``/proc/pressure/cpu``) is recorded before and after, and a run that met pressure is marked under
load. Their package imports torchvision (which does not import beside the pinned torch: the peers folder's
``tvstub`` stands in for it) and TensorBoard.

    .venv/bin/python bench/peers_images.py --peers ../shared/peers              # 28x28, the benchmark sizes
    .venv/bin/python bench/peers_images.py --peers ../shared/peers --quick      # 8x8 images, one repeat
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from chainrule.modalities.registry import build_model

HERE = Path(__file__).resolve().parent
BATCH, SAMPLES = 32, 16
#: pressure (avg10 "some", percent) above which a run is marked as measured under load
BUSY = 10.0

#: name -> (their constructor's options, our model and options at the same widths and depths)
PAIRS: dict[str, tuple[str, dict, str, dict]] = {
    "PixelCNN": ("PixelCNN", {"n_residual": 15, "residual_channels": 128, "head_channels": 32},
                 "pixelcnn", {"hidden_channels": 128, "num_blocks": 15, "output_channels": 32}),
    "Gated PixelCNN": ("GatedPixelCNN", {"n_gated": 10, "gated_channels": 128, "head_channels": 32},
                       "gated_pixelcnn", {"hidden_channels": 128, "num_layers": 11, "output_channels": 32}),
    "PixelSNAIL": ("PixelSNAIL", {"n_channels": 64, "n_pixel_snail_blocks": 8, "n_residual_blocks": 2},
                   "pixelsnail", {"channels": 64, "num_stages": 8, "num_residual": 2, "output_channels": 64}),
    "ImageGPT": ("ImageGPT", {"n_transformer_blocks": 8, "n_attention_heads": 4, "n_embedding_channels": 16},
                 "image_gpt", {"embed_dim": 16, "num_layers": 8, "num_heads": 4}),
}


def pressure() -> dict[str, float] | None:
    """CPU pressure stall information (``some`` line), or ``None`` where the kernel has none."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None
    return {k: float(v) for k, v in (f.split("=") for f in line.split()[1:]) if k.startswith("avg")}


def seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def theirs(models, cls: str, options: dict, size: int):
    extra = {"in_size": size} if cls == "ImageGPT" else {}
    net = getattr(models, cls)(in_channels=1, out_channels=1, **options, **extra)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randint(0, 2, (BATCH, 1, size, size)).float()

    def train_step() -> None:
        opt.zero_grad()
        logits = net(x)
        F.binary_cross_entropy_with_logits(logits.view(BATCH, -1), x.view(BATCH, -1), reduction="none"
                                           ).sum(1).mean().backward()
        opt.step()

    def sample() -> None:
        with torch.no_grad():
            net.eval()
            net.sample(n_samples=SAMPLES)
            net.train()

    return net, train_step, sample


def ours(name: str, options: dict, size: int):
    torch.manual_seed(0)
    net = build_model(name, (1, size, size), 2, **options)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randint(0, 2, (BATCH, 1, size, size))

    def train_step() -> None:
        opt.zero_grad()
        net.loss(x).backward()
        opt.step()

    def sample() -> None:
        net.eval()
        net.sample(SAMPLES, generator=torch.Generator().manual_seed(0))
        net.train()

    return net, train_step, sample


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peers", required=True, help="folder holding pytorch-generative/ and tvstub/")
    p.add_argument("--size", type=int, default=28, help="image side (default 28, binarized MNIST)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each measurement (median)")
    p.add_argument("--models", default=",".join(PAIRS), help="comma-separated subset of: " + ", ".join(PAIRS))
    p.add_argument("--quick", action="store_true", help="8x8 images, one repeat (a smoke run)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    size, repeats = (8, 1) if a.quick else (a.size, a.repeats)
    torch.set_num_threads(a.threads)
    peers = Path(a.peers).expanduser().resolve()
    sys.path[:0] = [str(peers / "tvstub"), str(peers / "pytorch-generative")]
    from pytorch_generative import models  # noqa: E402  (found through --peers)

    before = pressure()
    out = HERE / "results" / ("peers_images-quick.json" if a.quick else "peers_images.json")
    command = "python bench/peers_images.py --peers PEERS" + (" --quick" if a.quick else
                                                              f" --size {size} --repeats {repeats}")
    rows: list[dict] = []
    for label in a.models.split(","):
        cls, their_opts, name, our_opts = PAIRS[label]
        t_net, t_train, t_sample = theirs(models, cls, their_opts, size)
        o_net, o_train, o_sample = ours(name, our_opts, size)
        row = {"model": label, "ours": name, "their_params": sum(q.numel() for q in t_net.parameters()),
               "our_params": sum(q.numel() for q in o_net.parameters()), "cached": bool(o_net.supports_cache)}
        row["their_train_step_s"], row["our_train_step_s"] = seconds(t_train, repeats), seconds(o_train, repeats)
        row["their_sample16_s"], row["our_sample16_s"] = seconds(t_sample, repeats), seconds(o_sample, repeats)
        row["train_speedup"] = row["their_train_step_s"] / row["our_train_step_s"]
        row["sample_speedup"] = row["their_sample16_s"] / row["our_sample16_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
        meta = {"machine": f"{platform.processor() or platform.machine()}, {a.threads} threads, "
                           f"torch {torch.__version__}",
                "image": [1, size, size], "batch": BATCH, "samples": SAMPLES, "repeats": repeats,
                "peer": "pytorch-generative (torchvision replaced by an import-only stand-in)", "command": command}
        write(out, rows, meta, before, pressure(), complete=len(rows) == len(a.models.split(",")))


def write(out: Path, rows: list[dict], meta: dict, before: dict | None, after: dict | None, complete: bool) -> None:
    """The results so far (a run stopped early keeps its finished pairs), marked under load when it met pressure."""
    busy = any(pr is not None and pr.get("avg10", 0.0) > BUSY for pr in (before, after))
    meta = {**meta, "cpu_pressure_before": before, "cpu_pressure_after": after, "under_load": busy,
            "complete": complete}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text(table(rows, busy) + "\n")
    print(table(rows, busy), flush=True)


def table(rows: list[dict], busy: bool) -> str:
    note = " (measured under load)" if busy else ""
    out = [f"| model | params theirs / ours | train step, batch 32: theirs / ours (s){note} | speed-up | "
           f"sample 16: theirs / ours (s){note} | speed-up |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cached = ", cached" if r["cached"] else ""
        out.append(f"| {r['model']} ({r['ours']}{cached}) | {r['their_params']:,} / {r['our_params']:,} | "
                   f"{r['their_train_step_s']:.3f} / {r['our_train_step_s']:.3f} | {r['train_speedup']:.1f}x | "
                   f"{r['their_sample16_s']:.2f} / {r['our_sample16_s']:.2f} | {r['sample_speedup']:.1f}x |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
