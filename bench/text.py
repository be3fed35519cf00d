"""Text benchmark: tiny Shakespeare, char level, at the nanoGPT CPU configuration.

Trains the GPT-style Transformer (4 layers, 4 heads, 128 dims, context 64, batch 12, 2000 iterations,
lr 1e-3 -> 1e-4, dropout 0) and, at a comparable parameter count, the LSTM and hybrid models; reports
training tokens/s, wall time, validation nats/char and bits/char, the fraction of the CPU's measured peak
fp32 FLOP/s that training reaches, generation tokens/s for 500 new tokens at context 256 with and
without the cache, and peak memory. Each model runs in its own process so peak RSS is its own.

    .venv/bin/python bench/text.py --corpus path/to/tinyshakespeare/input.txt
    .venv/bin/python bench/text.py --corpus input.txt --models transformer --steps 200   # quick check

Writes bench/results/text.json and bench/results/text.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
NANOGPT_VAL_LOSS = 1.8857  # nats/char, the nanoGPT CPU configuration on this corpus (see data README)

MODELS = {  # comparable parameter counts (~0.8 M)
    "transformer": ["model.embed_dim=128", "model.num_layers=4", "model.num_heads=4", "model.dropout=0",
                    "model.bias=false"],
    "rnn_lm": ["model.cell=lstm", "model.embed_dim=128", "model.hidden_size=256", "model.num_layers=2"],
    "hybrid": ["model.embed_dim=128", "model.rnn_layers=1", "model.num_layers=3", "model.num_heads=4"],
}
TRAIN = ["data.tokenizer=char", "data.context=64", "train.batch_size=12", "train.steps={steps}", "train.lr=1e-3",
         "train.min_lr_ratio=0.1", "train.warmup_steps=100", "train.weight_decay=0.1", "train.betas=[0.9, 0.99]",
         "train.grad_clip=1.0", "train.eval_every=0", "train.checkpoint_every=0", "train.log_every=100",
         "train.progress=false"]


def peak_flops(seconds: float = 3.0) -> float:
    """Measured fp32 matmul throughput (FLOP/s) with all threads: the practical peak of this CPU."""
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0)


def model_flops_per_token(model, context: int) -> float:
    """Training FLOPs per token: 6 N (forward + backward through the weights) + 12 L T D for attention."""
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    attn = 0
    blocks = getattr(model, "blocks", [])
    if len(blocks):
        attn = 12 * len(blocks) * context * model.embed_dim
    return 6 * n + attn


def generation_speed(run, rebuild: bool = True) -> dict:
    """Tokens/s for 500 new tokens at context 256, with and without the cache (the run's architecture,
    rebuilt for a 256-token context with fresh weights: this measures speed only)."""
    import copy

    from chainrule.modalities.text.generation import GenerationConfig, generate_tokens
    from chainrule.runs import Run

    config = copy.deepcopy(run.config)
    if rebuild:
        config["spec"]["event_shape"] = [1, 256]
    torch.manual_seed(0)
    model = Run(path=run.path, config=config).build_model().eval()
    out = {}
    for cached in (True, False):
        cfg = GenerationConfig(max_new_tokens=500, seed=0)
        t0 = time.perf_counter()
        n = sum(1 for _ in generate_tokens(model, [0], cfg, use_cache=cached))
        out["cached" if cached else "uncached"] = n / (time.perf_counter() - t0)
    out["speedup"] = out["cached"] / out["uncached"]
    return out


def wide_generation_speed(run) -> dict:
    """Generation speed of the Transformer at nanoGPT's shakespeare-char shape (6 layers, 6 heads, 384 dims,
    context 256, 10.7 M parameters; fresh weights, the run's vocabulary)."""
    import copy

    from chainrule.runs import Run

    config = copy.deepcopy(run.config)
    config["spec"]["event_shape"] = [1, 256]
    config["model"] = {**config["model"], "name": "transformer", "embed_dim": 384, "num_layers": 6, "num_heads": 6}
    out = generation_speed(Run(path=run.path, config=config), rebuild=False)
    torch.manual_seed(0)
    out["params"] = sum(p.numel() for p in Run(path=run.path, config=config).build_model().parameters())
    return out


def run_one(name: str, corpus: str, steps: int, root: Path) -> dict:
    from chainrule import api

    run_dir = root / f"tinyshakespeare-{name}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    overrides = [f"data.path={corpus}", *MODELS[name], *(t.format(steps=steps) for t in TRAIN)]
    t0 = time.perf_counter()
    run = api.train("tinyshakespeare", name, run_dir=run_dir, overrides=overrides)
    wall = time.perf_counter() - t0
    summary = json.loads((run.path / "summary.json").read_text())
    train_seconds = float(summary["wall_time"])
    res = api.evaluate(run, split="val")
    model = run.load_model()
    context = 64
    tokens_per_s = steps * 12 * context / train_seconds
    flops = model_flops_per_token(model, context) * tokens_per_s
    # positions 1..63 of each window have at least one character of context, as in nanoGPT's loss
    data = api.load_data(run.config["data"], run.path)["val"]
    with torch.no_grad():
        x, _ = data.get(torch.arange(len(data)))
        per_pos = -model.log_prob_positions(x).double()
    ctx_loss = per_pos[:, 1:].mean().item()
    return {
        "model": name, "params": res["params"], "steps": steps, "train_seconds": train_seconds, "wall_seconds": wall,
        "train_tokens_per_s": tokens_per_s, "train_flops_per_s": flops,
        "val_nats_per_char_all_positions": res["nll_nats"] / context / data.chars_per_token,
        "val_nats_per_char": ctx_loss / data.chars_per_token,
        "val_bits_per_char": ctx_loss / data.chars_per_token / math.log(2),
        "generation_tokens_per_s": generation_speed(run),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "data": res["data"],
    }


def table(rows: list[dict], peak: float, wide: dict | None = None) -> str:
    out = ["| model | params | train tokens/s | wall (s) | val nats/char | val bits/char | % of peak FLOP/s | "
           "gen tok/s cached | uncached | speed-up | peak RSS (MB) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        g = r["generation_tokens_per_s"]
        out.append(f"| {r['model']} | {r['params']:,} | {r['train_tokens_per_s']:,.0f} | {r['train_seconds']:.0f} | "
                   f"{r['val_nats_per_char']:.4f} | {r['val_bits_per_char']:.4f} | "
                   f"{100 * r['train_flops_per_s'] / peak:.1f}% | {g['cached']:.0f} | {g['uncached']:.0f} | "
                   f"{g['speedup']:.1f}x | {r['peak_rss_mb']:.0f} |")
    out.append(f"| nanoGPT (published, same config) | 0.80 M | | | {NANOGPT_VAL_LOSS} | "
               f"{NANOGPT_VAL_LOSS / math.log(2):.4f} | | | | | |")
    if wide:
        out.append(f"| transformer 6 x 384 (generation only) | {wide['params']:,} | | | | | | {wide['cached']:.0f} | "
                   f"{wide['uncached']:.0f} | {wide['speedup']:.1f}x | |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="tiny Shakespeare input.txt (sha256-checked)")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one model in this process
    p.add_argument("--generation-only", action="store_true",
                   help="re-measure generation speed for the runs already in bench/runs and update the results")
    p.add_argument("--out", default=str(HERE / "results" / "text.json"))
    a = p.parse_args()
    torch.set_num_threads(2)
    root = HERE / "runs"
    if a.one:
        print(json.dumps(run_one(a.one, a.corpus, a.steps, root)))
        return
    if a.generation_only:
        from chainrule.runs import open_run

        old = json.loads(Path(a.out).read_text())
        for r in old["results"]:
            r["generation_tokens_per_s"] = generation_speed(open_run(root / f"tinyshakespeare-{r['model']}"))
            print(r["model"], r["generation_tokens_per_s"], flush=True)
        old["meta"]["generation_wide"] = wide_generation_speed(open_run(root / "tinyshakespeare-transformer"))
        print("wide transformer", old["meta"]["generation_wide"], flush=True)
        Path(a.out).write_text(json.dumps(old, indent=2) + "\n")
        md = table(old["results"], old["meta"]["peak_fp32_flops_measured"], old["meta"]["generation_wide"])
        Path(a.out).with_suffix(".md").write_text(md + "\n")
        print(md)
        return
    peak = peak_flops()
    rows = []
    for m in a.models.split(","):
        print(f"== {m}", flush=True)
        res = subprocess.run([sys.executable, __file__, "--corpus", a.corpus, "--steps", str(a.steps), "--one", m],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    meta = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, CPU",
            "peak_fp32_flops_measured": peak, "command": f"python bench/text.py --corpus CORPUS --steps {a.steps}",
            "config": "4 layers, 4 heads, 128 dims, context 64, batch 12, lr 1e-3 -> 1e-4, dropout 0"}
    from chainrule.runs import open_run

    meta["generation_wide"] = wide_generation_speed(open_run(root / "tinyshakespeare-transformer"))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    Path(a.out).with_suffix(".md").write_text(table(rows, peak, meta["generation_wide"]) + "\n")
    print(table(rows, peak, meta["generation_wide"]))


if __name__ == "__main__":
    main()
