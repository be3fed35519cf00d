"""Where a training step's time goes at nanoGPT's CPU recipe (4 layers, 4 heads, 128 dims, context 64, batch 12).

Times, in one process on the same threads and the same token batch, alternating in rounds:

- ``chainrule model``: the Transformer's ``loss`` (teacher-forced NLL summed over the window, the start vector
  included), backward and fused AdamW — the arithmetic the trainer runs per step, without the trainer;
- ``chainrule compiled model`` (with ``--compile``): the same step with the loss's forward/backward through
  ``torch.compile`` as ``train.compile=true`` runs it; the first call's compilation is reported apart;
- ``nanoGPT model`` (with ``--peers``): nanoGPT's ``GPT`` forward with targets, backward and its AdamW, imported
  from its own folder, as its ``train.py`` runs it;

then prints a ``torch.profiler`` table of chainrule's step (operators by self CPU time), so the gap between the
two model steps, and what the trainer adds on top (``bench/peers.py`` measures whole runs), can be read apart.

    python bench/train_profile.py --peers ../shared/peers
    python bench/train_profile.py --steps 20 --rounds 2      # quicker
    python bench/train_profile.py --peers ../shared/peers --compile --out bench/results/train_profile_compile.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from peers import cpu_pressure  # the shared pressure helper of bench/peers.py (bench/ is on the path)

from chainrule.core.training.distributed import LossModule
from chainrule.modalities.registry import build_model

HERE = Path(__file__).resolve().parent
BATCH, CONTEXT, VOCAB = 12, 64, 65



def chainrule_step(compiled: bool = False):
    """One training step of chainrule's Transformer; ``compiled``: its loss through torch.compile, as the trainer's
    ``train.compile=true`` does."""
    torch.manual_seed(0)
    model = build_model("transformer", event_shape=[1, CONTEXT], levels=VOCAB, dropout=0.0, bias=False,
                        embed_dim=128, num_layers=4, num_heads=4).train()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), fused=True)
    x = torch.randint(0, VOCAB, (BATCH, 1, CONTEXT))
    loss = torch.compile(LossModule(model)) if compiled else model.loss

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss(x).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 64.0)
        opt.step()
    return step


def nanogpt_step(peers: Path):
    sys.path.insert(0, str(peers / "nanoGPT"))
    from model import GPT, GPTConfig  # nanoGPT's own model file

    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=CONTEXT, vocab_size=VOCAB, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
                          bias=False)).train()
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    x = torch.randint(0, VOCAB, (BATCH, CONTEXT))
    y = torch.randint(0, VOCAB, (BATCH, CONTEXT))

    def step() -> None:
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peers", type=Path, help="folder holding nanoGPT/ (optional)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=50, help="steps per side per round")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--rows", type=int, default=15, help="profiler rows to print")
    p.add_argument("--compile", action="store_true", help="also time the step compiled (train.compile=true)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "train_profile.json", help="JSON output")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    sides = {"chainrule model": chainrule_step()}
    if a.compile:
        sides["chainrule compiled model"] = chainrule_step(compiled=True)
    if a.peers:
        sides["nanoGPT model"] = nanogpt_step(a.peers)
    before = cpu_pressure()
    warm_up: dict[str, float] = {}
    for name, fn in sides.items():
        t0 = time.perf_counter()
        for _ in range(5):
            fn()  # warm-up (the compiled side compiles on its first call)
        warm_up[name] = time.perf_counter() - t0
    ms: dict[str, list[float]] = {k: [] for k in sides}
    cpu_ms: dict[str, list[float]] = {k: [] for k in sides}  # process CPU time: the steadier figure under load
    for _ in range(a.rounds):
        for name, fn in sides.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(a.steps):
                fn()
            ms[name].append(1000 * (time.perf_counter() - t0) / a.steps)
            cpu_ms[name].append(1000 * (time.process_time() - c0) / a.steps)
    report = {name: {"ms_per_step": statistics.median(v), "min": min(v), "max": max(v),
                     "tokens_per_s": BATCH * CONTEXT * 1000 / statistics.median(v),
                     "cpu_ms_per_step": statistics.median(cpu_ms[name])} for name, v in ms.items()}
    for name in report:
        report[name]["warm_up_seconds"] = warm_up[name]  # 5 steps; for the compiled side, its compilation
    if "nanoGPT model" in report:
        report["ratio_chainrule_to_nanoGPT"] = report["nanoGPT model"]["ms_per_step"] / \
            report["chainrule model"]["ms_per_step"]
        if "chainrule compiled model" in report:
            report["ratio_compiled_to_nanoGPT"] = report["nanoGPT model"]["ms_per_step"] / \
                report["chainrule compiled model"]["ms_per_step"]
    report["pressure"] = [before, cpu_pressure()]
    print(json.dumps(report, indent=2))
    step = sides["chainrule model"]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows))
    command = "python bench/train_profile.py" + (" --peers PEERS" if a.peers else "") + \
        (" --compile" if a.compile else "") + f" --steps {a.steps} --rounds {a.rounds} --threads {a.threads}"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"command": command, "threads": a.threads, **report}, indent=2) + "\n")


if __name__ == "__main__":
    main()
