"""Image models side by side with pytorch-generative's, in one process, at matched parameter counts.

For each pair (their PixelCNN, Gated PixelCNN, PixelSNAIL and ImageGPT at their constructors' defaults, and ours
configured to the same parameter count within ~5%, both counts printed) on the same binary images:

- one Adam step at batch 32 (lr 1e-3): their BCE-with-logits loss of ``reproduce()`` (summed over pixels, mean
  over images) against our ``loss``, the same Bernoulli NLL (the script checks the two agree on our logits);
- sampling 16 images: ours with its default sampler (cached where the model has a cache), theirs with the loop of
  their ``AutoregressiveModel.sample``, which re-runs the whole network once per pixel (784 passes at 28x28).
  Every one of their passes costs the same, so by default a fixed number of their pixels is timed and scaled to
  the whole image (``--their-sample-steps``; 0 runs their own ``model.sample`` in full). The table says which.

Every figure is the median over ``--repeats`` after one warm-up, with its spread (min-max); the sides alternate
within each repeat so both see the same machine. CPU pressure (``/proc/pressure/cpu`` avg10, the helper of
``bench/peers.py``) is recorded before and after each pair; a run that met pressure is marked under load (its
speeds are not reliable; the ratios less so than absolute times). Their package imports torchvision (which does
not import beside the pinned torch here: the peers folder's import-only ``tvstub`` stands in for it) and
TensorBoard.

    python bench/peers_images.py --peers ../shared/peers                        # 28x28, the benchmark sizes
    python bench/peers_images.py --peers ../shared/peers --models PixelCNN,"Gated PixelCNN" --repeats 5
    python bench/peers_images.py --peers ../shared/peers --their-sample-steps 0  # their full 784-pass sampler
    python bench/peers_images.py --peers ../shared/peers --quick                # 8x8 images, one repeat (smoke)
    python bench/peers_images.py --peers ../shared/peers --models ImageGPT --merge  # re-run one pair, keep the rest

Writes bench/results/peers_images.json and .md (``peers_images-quick.*`` with ``--quick``).
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
sys.path.insert(0, str(HERE))
from peers import PRESSURE_LIMIT, cpu_pressure, under_pressure  # noqa: E402  (the shared pressure helper of bench/peers.py)

BATCH, SAMPLES = 32, 16

#: label -> (their class, their options (their defaults, spelled out), our model, our options, how they differ)
PAIRS: dict[str, tuple[str, dict, str, dict, str]] = {
    "PixelCNN": (
        "PixelCNN", {"n_residual": 15, "residual_channels": 128, "head_channels": 32},
        "pixelcnn", {"hidden_channels": 256, "num_blocks": 15, "output_channels": 32},
        "same layers: 7x7 mask-A conv to 256 maps, 15 blocks of 1x1 (256->128), masked 3x3 'B', 1x1 (128->256), "
        "ReLUs, 1x1 head 256->32->1 (their residual_channels=128 means a 256-map stream). Their loop adds each "
        "block's output to its input again (x + block(x) with a block that is already residual: 2x + f(x)); "
        "ours adds once"),
    "Gated PixelCNN": (
        "GatedPixelCNN", {"n_gated": 10, "gated_channels": 128, "head_channels": 32},
        "gated_pixelcnn", {"hidden_channels": 122, "num_layers": 11, "output_channels": 32},
        "both: a 7x7 first layer + 10 gated 3x3 layers, summed skips, 1x1 head ->32->1. Their vertical stack is "
        "factorised (1xN then (N//2+1)x1 conv, plus a 1x1 from the input); ours is one (N//2+1)xN conv, which "
        "costs more per map, so ours has 122 maps per stack against their 128 for the same parameter count"),
    "PixelSNAIL": (
        "PixelSNAIL", {"n_channels": 64, "n_pixel_snail_blocks": 8, "n_residual_blocks": 2},
        "pixelsnail", {"channels": 64, "num_stages": 8, "num_residual": 1, "embed_dim": 16, "num_heads": 4,
                       "mlp_ratio": 2.0, "output_channels": 32},
        "both 64 maps, 8 stages of gated residual convolutions + causal attention. Their residual blocks are "
        "two 2x2 convolutions (12 c^2 parameters, 2 per stage); ours are masked 3x3 (27 c^2, so 1 per stage). "
        "Their attention: one head, keys 4 and values 32 wide; ours: a pre-norm Transformer block 16 wide, "
        "4 heads"),
    "ImageGPT": (
        "ImageGPT", {"n_transformer_blocks": 8, "n_attention_heads": 4, "n_embedding_channels": 16},
        "image_gpt", {"embed_dim": 16, "num_layers": 8, "num_heads": 4},
        "same blocks (8 pre-norm blocks, 16 wide, 4 heads, MLP x4). Positions differ: ours learns a 16-wide "
        "embedding per pixel (12,544 parameters at 28x28), theirs one learned value per pixel added to the "
        "image (784); without the position tables the counts agree within 1%"),
}


def timed(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict[str, float]]:
    """Wall seconds of each function, alternating them within each repeat after one warm-up call of each: median,
    min and max; plus the median CPU seconds of this process (less disturbed than wall time on a busy machine)."""
    for fn in fns.values():
        fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[key].append(time.perf_counter() - t)
            cpu[key].append(time.process_time() - c)
    return {k: {"median": statistics.median(v), "min": min(v), "max": max(v), "cpu": statistics.median(cpu[k])}
            for k, v in wall.items()}


def bce(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Their ``reproduce()`` loss: BCE with logits summed over each image's pixels, mean over images."""
    b = x.shape[0]
    return F.binary_cross_entropy_with_logits(logits.reshape(b, -1), x.reshape(b, -1), reduction="none").sum(1).mean()


def theirs(models, cls: str, options: dict, x: torch.Tensor, sample_steps: int):
    """Their model, train step and sampler (``sample_steps`` pixels of their loop, or their full ``sample``)."""
    size = x.shape[-1]
    extra = {"in_size": size} if cls == "ImageGPT" else {}
    torch.manual_seed(0)
    net = getattr(models, cls)(in_channels=1, out_channels=1, **options, **extra)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xf = x.float()

    def train_step() -> None:
        opt.zero_grad()
        bce(net(xf), xf).backward()
        opt.step()

    @torch.no_grad()
    def sample() -> None:
        net.eval()
        if not sample_steps:
            net.sample(n_samples=SAMPLES)
        else:  # the body of their AutoregressiveModel.sample, stopped after sample_steps pixels
            image = -torch.ones(SAMPLES, 1, size, size)
            for t in range(sample_steps):
                row, col = divmod(t, size)
                out = net._sample_fn(net.forward(image)[:, :, row, col]).view(SAMPLES, 1)
                image[:, :, row, col] = torch.where(image[:, :, row, col] < 0, out, image[:, :, row, col])
        net.train()

    return net, train_step, sample


def ours(name: str, options: dict, x: torch.Tensor):
    torch.manual_seed(0)
    net = build_model(name, tuple(x.shape[1:]), 2, **options)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def train_step() -> None:
        opt.zero_grad()
        net.loss(x).backward()
        opt.step()

    def sample() -> None:
        net.eval()
        net.sample(SAMPLES, generator=torch.Generator().manual_seed(0))
        net.train()

    return net, train_step, sample


def same_loss_gap(net: torch.nn.Module, x: torch.Tensor) -> float:
    """|their BCE on our logits - our loss|: zero up to rounding when both sides train on the same objective."""
    with torch.no_grad():
        return abs(bce(net(x), x.float()).item() - net.loss(x).item())


def params(net: torch.nn.Module) -> int:
    return sum(q.numel() for q in net.parameters())


def run_pair(models, label: str, size: int, repeats: int, sample_steps: int) -> dict:
    cls, their_opts, name, our_opts, note = PAIRS[label]
    x = torch.randint(0, 2, (BATCH, 1, size, size), generator=torch.Generator().manual_seed(0))
    steps = sample_steps if 0 < sample_steps < size * size else 0
    t_net, t_train, t_sample = theirs(models, cls, their_opts, x, steps)
    o_net, o_train, o_sample = ours(name, our_opts, x)
    row = {"model": label, "ours": name, "our_options": our_opts, "their_options": their_opts, "differences": note,
           "their_params": params(t_net), "our_params": params(o_net), "cached": bool(o_net.supports_cache),
           "loss_gap": same_loss_gap(o_net, x), "pressure_before": cpu_pressure()}
    row["param_ratio"] = row["our_params"] / row["their_params"]
    print(f"{label}: parameters theirs {row['their_params']:,}, ours {row['our_params']:,} "
          f"({100 * (row['param_ratio'] - 1):+.1f}%)", flush=True)
    train = timed({"theirs": t_train, "ours": o_train}, repeats)
    sample = timed({"theirs": t_sample, "ours": o_sample}, repeats)
    scale = size * size / steps if steps else 1.0
    sample["theirs"] = {k: v * scale for k, v in sample["theirs"].items()}
    row.update({"train_step_s": train, "sample16_s": sample,
                "their_sample": f"{steps} of {size * size} pixels timed, scaled" if steps else "full",
                "train_speedup": train["theirs"]["median"] / train["ours"]["median"],
                "train_speedup_cpu": train["theirs"]["cpu"] / train["ours"]["cpu"],
                "sample_speedup": sample["theirs"]["median"] / sample["ours"]["median"],
                "pressure_after": cpu_pressure()})
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peers", required=True, type=Path,
                   help="folder holding pytorch-generative/ and tvstub/ (e.g. ../shared/peers)")
    p.add_argument("--size", type=int, default=28, help="image side (default 28, MNIST's)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each measurement (median, min-max)")
    p.add_argument("--models", default=",".join(PAIRS), help="comma-separated subset of: " + ", ".join(PAIRS))
    p.add_argument("--their-sample-steps", type=int, default=16,
                   help="pixels of their per-pixel sampler to time and scale to the image (0: their full sample)")
    p.add_argument("--quick", action="store_true", help="8x8 images, one repeat, 4 of their sampling steps")
    p.add_argument("--threads", type=int, default=2, help="torch threads for both sides (default 2)")
    p.add_argument("--merge", action="store_true",
                   help="keep the other pairs already in the results file (re-run some pairs only)")
    a = p.parse_args()
    size, repeats, steps = (8, 1, 4) if a.quick else (a.size, a.repeats, a.their_sample_steps)
    labels = [m.strip() for m in a.models.split(",")]
    unknown = [m for m in labels if m not in PAIRS]
    if unknown:
        raise SystemExit(f"--models: unknown {', '.join(unknown)} (choose from {', '.join(PAIRS)})")
    peers = a.peers.expanduser().resolve()
    if not (peers / "pytorch-generative" / "pytorch_generative").is_dir() or not (peers / "tvstub").is_dir():
        raise SystemExit(f"--peers: {a.peers} does not hold pytorch-generative/ and tvstub/")
    torch.set_num_threads(a.threads)
    sys.path[:0] = [str(peers / "tvstub"), str(peers / "pytorch-generative")]
    from pytorch_generative import models  # noqa: E402  (found through --peers)

    start = cpu_pressure()
    out = HERE / "results" / ("peers_images-quick.json" if a.quick else "peers_images.json")
    command = "python bench/peers_images.py --peers PEERS" + (" --quick" if a.quick else (
        f" --size {size} --repeats {repeats} --their-sample-steps {steps} --threads {a.threads}"))
    meta = {"machine": f"{platform.processor() or platform.machine()}, {a.threads} threads, torch {torch.__version__}",
            "image": [1, size, size], "batch": BATCH, "samples": SAMPLES, "repeats": repeats,
            "peer": "pytorch-generative (torchvision replaced by an import-only stand-in)", "command": command}
    kept = [r for r in json.loads(out.read_text())["results"] if r["model"] not in labels] \
        if a.merge and out.is_file() else []
    rows: list[dict] = []
    for label in labels:
        rows.append(run_pair(models, label, size, repeats, steps))
        print(json.dumps(rows[-1]), flush=True)
        write(out, kept + rows, meta, start, cpu_pressure(), complete=len(rows) == len(labels))


def write(out: Path, rows: list[dict], meta: dict, start: float | None, end: float | None, complete: bool) -> None:
    """The results so far (a run stopped early keeps its finished pairs), marked under load when it met pressure."""
    seen = [start, end, *(r[k] for r in rows for k in ("pressure_before", "pressure_after"))]
    busy = under_pressure(*seen)
    meta = {**meta, "cpu_pressure_start": start, "cpu_pressure_end": end, "pressure_limit": PRESSURE_LIMIT,
            "under_load": busy, "complete": complete}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text(table(rows, busy) + "\n")
    print(table(rows, busy), flush=True)


def spread(t: dict[str, float]) -> str:
    return f"{t['median']:.3f} ({t['min']:.3f}-{t['max']:.3f})"


def table(rows: list[dict], busy: bool) -> str:
    note = " (measured under load)" if busy else ""
    out = [f"| model | params theirs / ours | train step, batch 32, theirs / ours: median (min-max), s{note} | "
           f"speed-up (wall; CPU time) | sample 16, theirs / ours: median (min-max), s{note} | their sampler | "
           "speed-up |", "|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        cached = ", cached" if r["cached"] else ""
        tr, sa = r["train_step_s"], r["sample16_s"]
        out.append(f"| {r['model']} ({r['ours']}{cached}) | {r['their_params']:,} / {r['our_params']:,} | "
                   f"{spread(tr['theirs'])} / {spread(tr['ours'])} | "
                   f"{r['train_speedup']:.2f}x; {r['train_speedup_cpu']:.2f}x | "
                   f"{spread(sa['theirs'])} / {spread(sa['ours'])} | {r['their_sample']} | "
                   f"{r['sample_speedup']:.1f}x |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
