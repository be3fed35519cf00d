"""Micro-benchmark of the decode engines: microseconds per cached step of the Transformer at batch 1.

Fresh weights of the 0.8 M model (4 layers, 4 heads, 128 dims, context 256, 65 tokens) or ``--wide``
(nanoGPT's shakespeare-char shape: 6 layers, 6 heads, 384 dims, 10.7 M parameters). Each engine is warmed up
(the compiled one pays its compilation there, reported separately), then timed over ``--tokens`` steps from
position 1, ``--repeats`` times in alternation; both wall and process CPU time are reported (CPU time is the
steadier figure on a busy machine, wall time the one users see). CPU pressure is read before and after.

    python bench/decode.py                      # eager, static, compiled
    python bench/decode.py --engines eager,compiled --tokens 250 --wide

Writes bench/results/decode.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from peers import cpu_pressure  # the shared pressure helper of bench/peers.py (bench/ is on the path)

from chainrule.modalities.registry import build_model
from chainrule.modalities.text.generation.engine import Decoder

HERE = Path(__file__).resolve().parent



def time_engine(model: torch.nn.Module, engine: str, tokens: int) -> dict:
    decoder = Decoder(model, engine)
    token = torch.zeros(1, 1, dtype=torch.long)
    _, cache = model.prefill(token[:, :0])
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(tokens):
        decoder.step(token, cache)
    return {"wall_us": 1e6 * (time.perf_counter() - wall0) / tokens,
            "cpu_us": 1e6 * (time.process_time() - cpu0) / tokens}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", default="eager,static,compiled")
    p.add_argument("--tokens", type=int, default=200, help="steps timed per repeat (< 255)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--wide", action="store_true", help="6 layers, 6 heads, 384 dims (10.7 M parameters)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "decode.json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    shape = {"embed_dim": 384, "num_layers": 6, "num_heads": 6} if a.wide else \
        {"embed_dim": 128, "num_layers": 4, "num_heads": 4}
    torch.manual_seed(0)
    model = build_model("transformer", event_shape=[1, 256], levels=65, dropout=0.0, bias=False, **shape).eval()
    engines = a.engines.split(",")
    before = cpu_pressure()
    results: dict[str, dict] = {}
    with torch.inference_mode():
        for engine in engines:
            t0 = time.perf_counter()
            time_engine(model, engine, 2)
            results[engine] = {"warm_up_seconds": time.perf_counter() - t0, "runs": []}
        for _ in range(a.repeats):
            for engine in engines:
                results[engine]["runs"].append(time_engine(model, engine, a.tokens))
    for r in results.values():
        for key in ("wall_us", "cpu_us"):
            values = [run[key] for run in r["runs"]]
            r[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
        print(json.dumps({k: v for k, v in r.items() if k != "runs"}))
    after = cpu_pressure()
    report = {"meta": {"shape": shape, "context": 256, "threads": a.threads, "tokens": a.tokens,
                       "pressure_before": before, "pressure_after": after,
                       "under_pressure": any(x is not None and x > 5.0 for x in (before, after)),
                       "command": "python bench/decode.py" + (" --wide" if a.wide else "")},
              "engines": results}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    for engine, r in results.items():
        print(f"{engine}: {r['cpu_us']['median']:.0f} us/step CPU, {r['wall_us']['median']:.0f} us wall, "
              f"warm-up {r['warm_up_seconds']:.1f} s")


if __name__ == "__main__":
    main()
