"""Adversarial fine-tuning benchmark: does SeqGAN-style training help a character language model?

Trains a small char Transformer on the complete works of Shakespeare (`shakespeare`, 90/10 split by characters)
by maximum likelihood, then spends the same extra budget three ways from that start:

- **adversarial + MLE**: `chainrule adversarial` with `mle_weight` 1 (REINFORCE on the discriminator's reward plus
  the per-token NLL of real windows);
- **adversarial only**: the same with `mle_weight` 0;
- **MLE continued** (the fair control): the same number of generator updates, batch, window length, optimiser
  and learning rate, on the likelihood term alone.

For each model it reports the held-out NLL (nats/char, the whole validation text) and statistics of samples
(from an empty prompt, temperature 1) against the held-out text: the precision of their distinct 2/3/4-grams
(the share that occur in the held-out text) and the repetition rate (the share of a sample's 4-grams that repeat
an earlier 4-gram of the same sample, averaged over samples). Chunks of training text of the same length are the
reference for what real text scores.

    .venv/bin/python bench/adversarial.py            # the stated budget (BENCHMARKS.md, "Adversarial fine-tuning")
    .venv/bin/python bench/adversarial.py --quick    # a tiny size that checks the script runs

Writes bench/results/adversarial.json (adversarial-quick.json with --quick); runs go to bench/runs/adversarial/.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from chainrule import api
from chainrule.adversarial import adversarial_finetune
from chainrule.core.runs.files import BEST_WEIGHTS, SUMMARY_FILE
from chainrule.core.training.checkpoint import save_weights
from chainrule.modalities.text.adversarial import AdversarialConfig
from chainrule.modalities.text.adversarial.seqgan import real_windows
from chainrule.modalities.text.data.sources import shakespeare_corpus
from chainrule.modalities.text.data.text import split_text
from chainrule.runs import open_run

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = {
    "full": {"model": ["model.embed_dim=64", "model.num_layers=2", "model.num_heads=4"], "mle_steps": 1500,
             "adv_steps": 300, "samples": 64, "sample_chars": 256},
    "quick": {"model": ["model.embed_dim=16", "model.num_layers=1", "model.num_heads=2"], "mle_steps": 20,
              "adv_steps": 3, "samples": 4, "sample_chars": 32},
}
CONTEXT = 64
ADV = {"batch_size": 32, "seq_len": CONTEXT, "lr": 3e-4, "d_lr": 1e-3, "d_steps": 1, "d_pretrain": 200,
       "baseline_decay": 0.9, "seed": 0}


def train_mle(run_dir: Path, budget: dict) -> float:
    start = time.perf_counter()
    api.train("shakespeare", "transformer", run_dir=run_dir, overrides=[
        *budget["model"], "data.tokenizer=char", f"data.context={CONTEXT}", f"train.steps={budget['mle_steps']}",
        "train.batch_size=32", "train.lr=3e-3", "train.warmup_steps=50", "train.eval_every=0",
        "train.checkpoint_every=0", "train.progress=false", "output.samples=0"])
    return time.perf_counter() - start


def continue_mle(source: Path, out: Path, cfg: AdversarialConfig) -> float:
    """The control: ``cfg.steps`` more Adam steps on the likelihood of real windows alone (same batch, window length,
    learning rate and gradient clip as the adversarial runs), into a copy of the MLE run."""
    shutil.copytree(source, out)
    run = open_run(out)
    model = run.load_model()
    data = api.load_data(run.config["data"], run.path)["train"]
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    start = time.perf_counter()
    for _ in range(cfg.steps):
        loss = model.loss(real_windows(data, cfg.batch_size, cfg.seq_len, gen)) / cfg.seq_len
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    seconds = time.perf_counter() - start
    save_weights(model.eval(), out / BEST_WEIGHTS)
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    return seconds


def ngrams(text: str, n: int) -> list[str]:
    return [text[i:i + n] for i in range(len(text) - n + 1)]


def sample_statistics(samples: list[str], held_out: str) -> dict[str, float]:
    """Distinct n-gram precision against the held-out text (pooled over samples) and the 4-gram repetition rate."""
    out: dict[str, float] = {}
    for n in (2, 3, 4):
        reference = set(ngrams(held_out, n))
        distinct = {g for s in samples for g in ngrams(s, n)}
        out[f"precision_{n}"] = len(distinct & reference) / max(1, len(distinct))
    rates = [1 - len(set(g)) / len(g) for s in samples if (g := ngrams(s, 4))]
    out["repetition_4"] = float(np.mean(rates)) if rates else 0.0
    return out


def measure(run_dir: Path, budget: dict, held_out: str) -> dict:
    res = api.evaluate(run_dir, split="test", out=run_dir / "eval.json")
    samples = api.generate_texts(run_dir, "", num_samples=budget["samples"], max_new_tokens=budget["sample_chars"],
                                 seed=0, temperature=1.0)
    (run_dir / "bench-samples.txt").write_text("".join(f"=== {i} ===\n{s}\n" for i, s in enumerate(samples)))
    return {"val_nats_per_char": res["nats_per_token"], "val_bits_per_char": res["bits_per_char"],
            **sample_statistics(samples, held_out), "example": samples[0][:160]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: check that the script runs")
    a = p.parse_args()
    size = "quick" if a.quick else "full"
    budget = BUDGETS[size]
    torch.set_num_threads(1)
    runs = ROOT / "bench" / "runs" / ("adversarial-quick" if a.quick else "adversarial")
    shutil.rmtree(runs, ignore_errors=True)
    texts = split_text(shakespeare_corpus().text)
    held_out = texts["val"]
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(texts["train"]) - budget["sample_chars"], budget["samples"])
    real = [texts["train"][s:s + budget["sample_chars"]] for s in starts]

    rows: dict[str, dict] = {"real text (train chunks)": sample_statistics(real, held_out)}
    mle_seconds = train_mle(runs / "mle", budget)
    rows["MLE"] = {**measure(runs / "mle", budget, held_out), "extra_seconds": 0.0}
    print(json.dumps({"MLE": rows["MLE"]}), flush=True)
    cfg = AdversarialConfig(steps=budget["adv_steps"], **ADV)
    variants = {"MLE continued (control)": None, "adversarial + MLE (weight 1)": 1.0,
                "adversarial only (weight 0)": 0.0}
    for name, weight in variants.items():
        out = runs / name.split(" (")[0].replace(" ", "-").replace("+", "plus")
        if weight is None:
            seconds = continue_mle(runs / "mle", out, cfg)
        else:
            start = time.perf_counter()
            adversarial_finetune(runs / "mle", out, device="cpu", steps=cfg.steps, mle_weight=weight, **ADV)
            seconds = time.perf_counter() - start
        rows[name] = {**measure(out, budget, held_out), "extra_seconds": seconds}
        if weight is not None:
            rows[name]["last_record"] = json.loads((out / SUMMARY_FILE).read_text())["adversarial"]["last"]
        print(json.dumps({name: rows[name]}), flush=True)
    result = {
        "meta": {"command": "python bench/adversarial.py" + (" --quick" if a.quick else ""), "dataset": "shakespeare",
                 "split": "train: first 90% of the characters; held out: the last 10%", "context": CONTEXT,
                 "model": budget["model"], "mle": {"steps": budget["mle_steps"], "batch_size": 32, "lr": 3e-3,
                                                   "schedule": "50 warm-up steps, cosine to 0.1x"},
                 "extra_budget": {"steps": budget["adv_steps"], **ADV, "optimizer": "Adam", "grad_clip": 1.0},
                 "samples": {"count": budget["samples"], "chars": budget["sample_chars"], "prompt": "",
                             "temperature": 1.0},
                 "mle_seconds": mle_seconds, "threads": 1, "note": "seconds measured under load"},
        "results": rows,
    }
    out = ROOT / "bench" / "results" / ("adversarial-quick.json" if a.quick else "adversarial.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    if any(not math.isfinite(r.get("val_nats_per_char", 0.0)) for r in rows.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
