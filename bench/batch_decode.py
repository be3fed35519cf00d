"""Continuous batching in process: N generations decoded one by one against the same N sharing batched steps.

No HTTP: this measures what the server's decode loop (``chainrule.modalities.text.generation.batch``) buys over
running each generation alone, on the serving bench's tiny text model (``bench/runs/serve-text``, trained by
``bench/serve.py`` if missing). Each generation has its own seed; the batched texts are checked equal to the
alone ones. Reports tokens/s of both and the ratio, median over repeats.

    .venv/bin/python bench/batch_decode.py                  # 32 generations of 64 tokens, 3 repeats
    .venv/bin/python bench/batch_decode.py --quick          # 4 generations of 8 tokens, 1 repeat

Writes bench/results/batch_decode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from peers import cpu_pressure
from serve import ensure_text_run

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generations", type=int, default=32)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--prompt", default="ROMEO:")
    p.add_argument("--quick", action="store_true", help="a tiny size, to check the script runs")
    p.add_argument("--out", type=Path, default=HERE / "results" / "batch_decode.json")
    args = p.parse_args()
    if args.quick:
        args.generations, args.tokens, args.repeats = 4, 8, 1
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

    from chainrule.modalities.text.generation import GenerationConfig, generate_strings
    from chainrule.modalities.text.generation.batch import DecodeBatch, Generation
    from chainrule.serve.registry import load_registry

    run = ensure_text_run(HERE / "runs" / "serve-text", "shakespeare", 200)
    served = next(iter(load_registry([run]).values()))
    model, tok = served.model, served.tokenizer
    cfgs = [GenerationConfig(max_new_tokens=args.tokens, seed=i) for i in range(args.generations)]

    def one_by_one() -> list[list[str]]:
        return [generate_strings(model, tok, args.prompt, c) for c in cfgs]

    def batched() -> list[list[str]]:
        gens = [Generation(model, tok, tok.encode(args.prompt), c) for c in cfgs]
        texts = [[""] for _ in gens]
        batch = DecodeBatch(model, max_rows=args.generations)
        for g in gens:
            batch.join(g)
        while batch.members:
            for g, pieces in batch.advance():
                i = gens.index(g)
                for piece in pieces:
                    texts[i] = [texts[i][0] + piece[0]]
        return texts

    times: dict[str, list[float]] = {"one_by_one": [], "batched": []}
    with torch.inference_mode():
        same = one_by_one() == batched()  # also the warm-up
        for _ in range(args.repeats):
            for name, fn in (("one_by_one", one_by_one), ("batched", batched)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    total = args.generations * args.tokens
    rate = {k: round(total / statistics.median(v)) for k, v in times.items()}
    out = {"generations": args.generations, "tokens": args.tokens, "repeats": args.repeats, "same_texts": same,
           "tokens_per_s": rate, "spread_s": {k: [round(min(v), 3), round(max(v), 3)] for k, v in times.items()},
           "ratio": round(rate["batched"] / rate["one_by_one"], 2),
           "params": sum(q.numel() for q in model.parameters()),
           "cpu_pressure_avg10": cpu_pressure(),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
                      f"torch {torch.__version__}"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
