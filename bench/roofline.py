"""How close the Transformer runs to this machine's limits: training against peak matmul FLOP/s, decoding against
memory bandwidth.

Measures, in one process on the same threads:

- peak fp32 matmul throughput (a 2048 x 2048 product, best of several) and copy bandwidth (a 256 MB tensor
  copied, bytes read + written);
- one training step of the Transformer at nanoGPT's shakespeare-char shape (6 layers, 6 heads, 384 dims,
  context 256, no biases, tied embeddings) at batch ``--batch``: the model's loss, backward and fused AdamW, as the
  trainer runs them; FLOPs per token by nanoGPT's estimate 6 N + 12 L T D (N without the position table), so the
  fraction is comparable with nanoGPT's "MFU";
- the cached decode step of the same 10.7 M-parameter model at batch 1: every weight is read once per token, so
  ``bandwidth / (4 bytes x N)`` tokens/s is the memory-bandwidth limit, and the measured rate is a fraction of it.

    python bench/roofline.py                # 2 threads, writes bench/results/roofline.json
    python bench/roofline.py --quick        # a small model and few steps: checks that it runs

Speed depends on the machine and its load: the CPU pressure before and after is recorded.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from peers import cpu_pressure  # the shared pressure helper of bench/peers.py (bench/ is on the path)

from chainrule.modalities.registry import build_model
from chainrule.modalities.text.generation.engine import Decoder

HERE = Path(__file__).resolve().parent



def best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_matmul_flops(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / best_seconds(lambda: a @ b, repeats)


def copy_bandwidth(megabytes: int, repeats: int) -> float:
    src = torch.empty(megabytes * 2 ** 20 // 4)
    src.uniform_()
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / best_seconds(lambda: dst.copy_(src), repeats)


def train_tokens_per_s(model: torch.nn.Module, batch: int, context: int, steps: int) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randint(0, 65, (batch, 1, context))
    rates = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        model.loss(x).backward()
        opt.step()
        if i:  # the first step warms up
            rates.append(batch * context / (time.perf_counter() - t0))
    return rates


@torch.inference_mode()
def decode_tokens_per_s(model: torch.nn.Module, tokens: int, repeats: int) -> list[float]:
    decoder = Decoder(model, "eager")
    token = torch.zeros(1, 1, dtype=torch.long)
    rates = []
    for r in range(repeats + 1):
        _, cache = model.prefill(token[:, :0])
        t0 = time.perf_counter()
        for _ in range(tokens):
            decoder.step(token, cache)
        if r:
            rates.append(tokens / (time.perf_counter() - t0))
    return rates


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8, help="training batch (nanoGPT's recipe uses 64; default 8)")
    p.add_argument("--steps", type=int, default=5, help="training steps timed after one warm-up step")
    p.add_argument("--tokens", type=int, default=200, help="decode steps timed per repeat (< 256)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    shape = dict(embed_dim=64, num_layers=2, num_heads=2) if a.quick else dict(embed_dim=384, num_layers=6,
                                                                              num_heads=6)
    context = 32 if a.quick else 256
    before = cpu_pressure()
    peak = peak_matmul_flops(512 if a.quick else 2048, a.repeats + 2)
    bandwidth = copy_bandwidth(16 if a.quick else 256, a.repeats + 2)
    torch.manual_seed(0)
    model = build_model("transformer", event_shape=[1, context], levels=65, dropout=0.0, bias=False, **shape)
    n_params = sum(p.numel() for p in model.parameters())
    n_positions = sum(p.numel() for name, p in model.named_parameters() if "pos" in name)
    flops_per_token = 6 * (n_params - n_positions) + 12 * shape["num_layers"] * context * shape["embed_dim"]
    train = train_tokens_per_s(model.train(), a.batch, context, 2 if a.quick else a.steps)
    decode = decode_tokens_per_s(model.eval(), min(a.tokens, context - 1) if not a.quick else 20, a.repeats)
    limit = bandwidth / (4 * n_params)
    report = {
        "meta": {"machine": f"{platform.machine()}, {a.threads} threads", "quick": a.quick, "shape": shape,
                 "context": context, "batch": a.batch, "pressure_before": before, "pressure_after": cpu_pressure(),
                 "command": "python bench/roofline.py" + (" --quick" if a.quick else "")},
        "peak_matmul_gflops": peak / 1e9,
        "copy_bandwidth_gb_s": bandwidth / 1e9,
        "params": n_params,
        "train": {"tokens_per_s": spread(train), "flops_per_token": flops_per_token,
                  "fraction_of_peak": statistics.median(train) * flops_per_token / peak},
        "decode": {"tokens_per_s": spread(decode), "bandwidth_limit_tokens_per_s": limit,
                   "fraction_of_bandwidth_limit": statistics.median(decode) / limit},
    }
    out = HERE / "results" / ("roofline-quick.json" if a.quick else "roofline.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
