"""Side-by-side benchmark against the peer implementations: nanoGPT's own ``train.py`` and ``GPT.generate``.

Both sides run on the same corpus (character-level tiny Shakespeare), the same configuration (nanoGPT's CPU
recipe: 4 layers, 4 heads, 128 dims, context 64, batch 12, lr 1e-3 -> 1e-4, dropout 0, evaluation every 250
steps) and the same thread count, each measurement in its own fresh process, alternating sides within one run,
so only the ratios matter (absolute speeds vary between machines by up to 2x).

Evaluation volume is matched: each nanoGPT evaluation estimates ``eval_iters=20`` batches of 12 windows of train
and of val (480 windows of forward work); chainrule evaluates val only, so by default it scores a fixed seeded
subset of 480 validation windows (``train.eval_max_windows=480``; ``--eval-windows``). ``--full-eval`` restores
the whole-split evaluation (1,742 windows of 64 characters, every time). ``--compile`` adds a measured row for
chainrule with ``train.compile=true``; its compilation time (``compile_seconds`` of the run's summary) is reported
apart, and its ``*_excl_compile`` figures leave it out. Every figure is the median over
``--repeats`` with its spread; the machine's CPU pressure (``/proc/pressure/cpu``, avg10) is read before and
after each measurement and any measurement taken under pressure is marked as such.

The peers are never imported by chainrule: the nanoGPT folder is copied to a temporary directory, its
``prepare.py`` builds the data from ``--corpus``, and its scripts run there.

    python bench/peers.py --peers ../shared/peers --corpus path/to/tinyshakespeare/input.txt
    python bench/peers.py --peers ../shared/peers --corpus input.txt --quick     # a few iterations, to check it runs
    python bench/peers.py --peers ../shared/peers --corpus input.txt --compile   # + chainrule's compiled step
    python bench/peers.py --peers ../shared/peers --corpus input.txt --full-eval # whole-split evaluation

Writes bench/results/peers.json (``peers-quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PRESSURE_LIMIT = 5.0  # % of time some task waited for a CPU (avg10) above which a measurement is "under pressure"

#: nanoGPT's README recipe for CPU (train.py flags) and the same model/optimiser in chainrule's terms. chainrule's
#: loss is the NLL per example (summed over the 64 positions), nanoGPT's the mean per token, so nanoGPT's clip of
#: 1.0 on the per-token gradient is a clip of 64 on chainrule's (at 1.0, clipping would act on every step).
NANOGPT_TRAIN = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--eval_iters=20",
                 "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4",
                 "--n_embd=128", "--dropout=0.0", "--eval_interval={eval_every}", "--max_iters={steps}",
                 "--lr_decay_iters={steps}", "--warmup_iters={warmup}",
                 "--always_save_checkpoint=True"]  # the final model, scored by bench/peers_val.py
CHAINRULE_TRAIN = ["data.tokenizer=char", "data.context=64", "train.batch_size=12", "train.steps={steps}",
                   "train.lr=1e-3", "train.min_lr_ratio=0.1", "train.warmup_steps={warmup}",
                   "train.weight_decay=0.1", "train.betas=[0.9, 0.99]", "train.grad_clip=64",
                   "train.eval_every={eval_every}", "train.checkpoint_every=0", "train.log_every=100",
                   "train.progress=false", "model.embed_dim=128", "model.num_layers=4", "model.num_heads=4",
                   "model.dropout=0", "model.bias=false"]
#: nanoGPT's forward volume per evaluation: eval_iters=20 batches x batch 12 x (train + val) = 480 windows
MATCHED_EVAL_WINDOWS = 20 * 12 * 2
#: generation: the 0.8 M model at context 256 (fresh weights: this measures speed only), batch 1
GEN_SHAPE = {"layers": 4, "heads": 4, "dims": 128, "context": 256, "vocab": 65}


def cpu_pressure() -> float | None:
    """avg10 of ``some`` in /proc/pressure/cpu (% of the last 10 s some runnable task waited), None if absent."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    match = re.search(r"avg10=([\d.]+)", line)
    return float(match.group(1)) if match else None


def under_pressure(*readings: float | None) -> bool:
    """Whether any CPU pressure reading exceeds :data:`PRESSURE_LIMIT` (a missing reading counts as none)."""
    return any(p is not None and p > PRESSURE_LIMIT for p in readings)


def child_env(threads: int, extra_path: list[str] | None = None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join([*extra_path, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def measure(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> dict:
    """Run one measurement in a fresh process: wall seconds, pressure before/after, stdout."""
    before = cpu_pressure()
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = cpu_pressure()
    if res.returncode:
        raise SystemExit(f"benchmark step failed: {' '.join(cmd[:3])} ...\n{res.stderr[-2000:]}")
    loaded = under_pressure(before, after)
    return {"wall_seconds": wall, "pressure_before": before, "pressure_after": after, "under_pressure": loaded,
            "stdout": res.stdout}


def prepare_nanogpt(peers: Path, corpus: Path, work: Path) -> Path:
    """A working copy of nanoGPT with the corpus prepared by its own ``prepare.py`` (``requests`` stubbed:
    it is imported only to download)."""
    src = peers / "nanoGPT"
    if not (src / "train.py").is_file():
        raise SystemExit(f"--peers: {src} has no train.py (expected the peers folder holding nanoGPT/)")
    nano = work / "nanoGPT"
    shutil.copytree(src, nano)
    data = nano / "data" / "shakespeare_char"
    shutil.copy(corpus, data / "input.txt")
    stub = work / "stub"
    stub.mkdir()
    (stub / "requests.py").write_text("")
    subprocess.run([sys.executable, "prepare.py"], cwd=data, env=child_env(1, [str(stub)]), check=True,
                   capture_output=True)
    return nano


def nanogpt_train(nano: Path, steps: int, eval_every: int, warmup: int, threads: int) -> dict:
    flags = [f.format(steps=steps, eval_every=eval_every, warmup=warmup) for f in NANOGPT_TRAIN]
    out = measure([sys.executable, "train.py", *flags, "--out_dir=out"], child_env(threads), cwd=nano)
    log = out.pop("stdout")
    evals = re.findall(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)", log)
    out["val_loss"] = float(evals[-1][2]) if evals else None
    # each iteration's logged time covers everything since the previous one, evaluations included
    out["loop_seconds"] = sum(float(ms) for ms in re.findall(r"^iter \d+: .*time ([\d.]+)ms", log, re.M)) / 1000
    out["tokens_per_s"] = steps * 12 * 64 / out["wall_seconds"]
    out["loop_tokens_per_s"] = steps * 12 * 64 / out["loop_seconds"] if out["loop_seconds"] else None
    out.update(without_compile(out, 0.0, steps * 12 * 64))
    return out


def chainrule_train(corpus: Path, steps: int, eval_every: int, warmup: int, threads: int, run_dir: Path,
                    extra: list[str]) -> dict:
    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = [f"data.path={corpus}", f"train.num_threads={threads}", *extra,
                 *(o.format(steps=steps, eval_every=eval_every, warmup=warmup) for o in CHAINRULE_TRAIN)]
    code = ("import json, sys; from chainrule import api; "
            "run = api.train('tinyshakespeare', 'transformer', run_dir=sys.argv[1], overrides=sys.argv[2:]); "
            "print(json.dumps(json.loads((run.path / 'summary.json').read_text())))")
    out = measure([sys.executable, "-c", code, str(run_dir), *overrides], child_env(threads))
    summary = json.loads(out.pop("stdout").strip().splitlines()[-1])
    final = summary.get("final_val_nll")
    out["val_loss"] = None if final is None else final / 64  # per 64-character window -> per character
    out["loop_seconds"] = summary.get("wall_time")  # the training loop with its evaluations
    out["tokens_per_s"] = steps * 12 * 64 / out["wall_seconds"]
    out["loop_tokens_per_s"] = steps * 12 * 64 / out["loop_seconds"] if out["loop_seconds"] else None
    out["val_examples"] = summary.get("val_examples")  # windows each evaluation scored, of val_split_examples
    out["val_split_examples"] = summary.get("val_split_examples")
    out.update(without_compile(out, summary.get("compile_seconds") or 0.0, steps * 12 * 64))
    return out


def without_compile(out: dict, compile_seconds: float, tokens: int) -> dict:
    """The compiled step's first call compiles: the same throughputs with that time left out (equal to the plain
    ones for an eager run, so every side has the fields)."""
    loop = out.get("loop_seconds")
    return {"compile_seconds": compile_seconds,
            "tokens_per_s_excl_compile": tokens / (out["wall_seconds"] - compile_seconds),
            "loop_tokens_per_s_excl_compile": tokens / (loop - compile_seconds) if loop else None}


NANOGPT_GENERATE = """
import json, sys, time, torch
sys.path.insert(0, sys.argv[1])
from model import GPT, GPTConfig
n, s = int(sys.argv[2]), json.loads(sys.argv[3])
torch.manual_seed(0)
m = GPT(GPTConfig(block_size=s["context"], vocab_size=s["vocab"], n_layer=s["layers"], n_head=s["heads"],
                  n_embd=s["dims"], dropout=0.0, bias=False)).eval()
idx = torch.zeros((1, 1), dtype=torch.long)
m.generate(idx, 10)
t0 = time.perf_counter(); m.generate(idx, n); dt = time.perf_counter() - t0
print(json.dumps({"tokens_per_s": n / dt}))
"""

CHAINRULE_GENERATE = """
import json, sys, time, torch
from chainrule.modalities.registry import build_model
from chainrule.modalities.text.generation import GenerationConfig, generate_tokens
n, s, engine = int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
m = build_model("transformer", event_shape=[1, s["context"]], levels=s["vocab"], embed_dim=s["dims"],
                num_layers=s["layers"], num_heads=s["heads"], dropout=0.0, bias=False).eval()
kw = {} if engine == "eager" else {"engine": engine}
t0 = time.perf_counter()
for _ in generate_tokens(m, [0], GenerationConfig(max_new_tokens=10, seed=0), **kw):
    pass
warm = time.perf_counter() - t0
t0 = time.perf_counter()
for _ in generate_tokens(m, [0], GenerationConfig(max_new_tokens=n, seed=0), **kw):
    pass
print(json.dumps({"tokens_per_s": n / (time.perf_counter() - t0), "warm_up_seconds": warm}))
"""


def nanogpt_generate(nano: Path, n: int, threads: int) -> dict:
    out = measure([sys.executable, "-c", NANOGPT_GENERATE, str(nano), str(n), json.dumps(GEN_SHAPE)],
                  child_env(threads))
    return {**out, **json.loads(out.pop("stdout").strip().splitlines()[-1])}


def chainrule_generate(n: int, threads: int, engine: str) -> dict:
    out = measure([sys.executable, "-c", CHAINRULE_GENERATE, str(n), json.dumps(GEN_SHAPE), engine],
                  child_env(threads))
    return {**out, **json.loads(out.pop("stdout").strip().splitlines()[-1])}


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def alternate(sides: dict, repeats: int) -> dict[str, list[dict]]:
    """Run every side ``repeats`` times, alternating sides and reversing the order every other round."""
    results: dict[str, list[dict]] = {name: [] for name in sides}
    for r in range(repeats):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            results[name].append(sides[name]())
            print(f"  {name} #{r + 1}: {json.dumps({k: v for k, v in results[name][-1].items() if k != 'stdout'})}",
                  flush=True)
    return results


def ratio_rows(results: dict[str, list[dict]], field: str, reference: str) -> dict:
    """Median of ``field`` per side and each side's ratio to ``reference`` (higher = faster)."""
    ref = statistics.median(m[field] for m in results[reference])
    out = {}
    for name, ms in results.items():
        values = [m[field] for m in ms]
        out[name] = {field: summarise(values), f"ratio_to_{reference}": statistics.median(values) / ref,
                     "under_pressure": any(m["under_pressure"] for m in ms),
                     "pressure": [[m["pressure_before"], m["pressure_after"]] for m in ms]}
        extra = {k: ms[-1][k] for k in ("val_loss", "warm_up_seconds", "val_examples", "val_split_examples")
                 if k in ms[-1]}
        if any(m.get("compile_seconds") for m in ms):
            extra["compile_seconds"] = summarise([m["compile_seconds"] for m in ms])
        out[name].update(extra)
    return out


def table(report: dict) -> str:
    lines = ["| figure | side | median | spread | ratio to nanoGPT | val nats/char | under pressure |",
             "|---|---|---:|---|---:|---:|---|"]
    for section, field in (("train", "tokens_per_s"), ("train_loop", "loop_tokens_per_s"),
                           ("train_excl_compile", "tokens_per_s_excl_compile"),
                           ("train_loop_excl_compile", "loop_tokens_per_s_excl_compile"),
                           ("generate", "tokens_per_s")):
        for name, row in report[section].items():
            s = row[field]
            lines.append(f"| {section} {field} | {name} | {s['median']:,.0f} | {s['min']:,.0f}-{s['max']:,.0f} | "
                         f"{row['ratio_to_nanoGPT']:.2f}x | {row.get('val_loss') or '':.4} | "
                         f"{'yes' if row['under_pressure'] else 'no'} |")
    return "\n".join(lines)


def command_flags(a: argparse.Namespace) -> str:
    """The flags that change what was measured, for the report's command line."""
    flags = [f"--eval-windows {a.eval_windows}" if a.eval_windows != MATCHED_EVAL_WINDOWS and not a.full_eval
             else "", "--full-eval" if a.full_eval else "", "--compile" if a.compile else "",
             f"--threads {a.threads}" if a.threads != 2 else "", "--quick" if a.quick else ""]
    return "".join(f" {f}" for f in flags if f)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peers", required=True, type=Path, help="folder holding the peer snapshots (nanoGPT/)")
    p.add_argument("--corpus", required=True, type=Path, help="tiny Shakespeare input.txt")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for every side (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="measurements per side, alternating (default 3)")
    p.add_argument("--engines", default="eager,compiled", help="chainrule decode engines to measure")
    p.add_argument("--eval-windows", type=int, default=MATCHED_EVAL_WINDOWS,
                   help=f"validation windows chainrule scores per evaluation, one fixed seeded subset (default "
                        f"{MATCHED_EVAL_WINDOWS}: nanoGPT's forward volume per evaluation)")
    p.add_argument("--full-eval", action="store_true",
                   help="chainrule scores the whole validation split at every evaluation (the behaviour before "
                        "train.eval_max_windows)")
    p.add_argument("--compile", action="store_true",
                   help="also measure chainrule with train.compile=true (compile time reported apart)")
    p.add_argument("--quick", action="store_true", help="a few iterations and tokens: checks the script runs")
    p.add_argument("--out", type=Path, help="JSON output (default bench/results/peers[-quick].json)")
    a = p.parse_args()
    if not a.corpus.is_file():
        raise SystemExit(f"--corpus: no such file {a.corpus}")
    if a.eval_windows <= 0:
        raise SystemExit(f"--eval-windows must be positive; got {a.eval_windows} (--full-eval scores the whole split)")
    eval_windows = 0 if a.full_eval else a.eval_windows  # train.eval_max_windows: 0 = the whole split
    steps, eval_every, warmup, tokens = (20, 10, 5, 50) if a.quick else (2000, 250, 100, 500)
    repeats = 1 if a.quick else a.repeats
    out = a.out or HERE / "results" / ("peers-quick.json" if a.quick else "peers.json")
    start_pressure = cpu_pressure()
    if start_pressure is not None and start_pressure > PRESSURE_LIMIT:
        print(f"warning: CPU pressure avg10={start_pressure}% before the run: speed figures will be marked "
              "'under pressure'", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nano = prepare_nanogpt(a.peers, a.corpus, work)
        print(f"== training, {steps} iterations", flush=True)
        evaluation = [f"train.eval_max_windows={eval_windows}"]
        sides = {"nanoGPT": lambda: nanogpt_train(nano, steps, eval_every, warmup, a.threads),
                 "chainrule": lambda: chainrule_train(a.corpus, steps, eval_every, warmup, a.threads,
                                                      work / "chainrule-run", evaluation)}
        if a.compile:
            sides["chainrule compiled"] = lambda: chainrule_train(a.corpus, steps, eval_every, warmup, a.threads,
                                                                  work / "chainrule-compiled-run",
                                                                  [*evaluation, "train.compile=true"])
        train = alternate(sides, repeats)
        print("== both final models on the same held-out characters (bench/peers_val.py)", flush=True)
        same_val = json.loads(measure([sys.executable, str(HERE / "peers_val.py"), "--nanogpt", str(nano),
                                       "--run", str(work / "chainrule-run"), "--corpus", str(a.corpus)],
                                      child_env(a.threads))["stdout"].strip().splitlines()[-1])
        print(json.dumps(same_val), flush=True)
        print(f"== generation, {tokens} tokens at batch 1, context {GEN_SHAPE['context']}", flush=True)
        sides = {"nanoGPT": lambda: nanogpt_generate(nano, tokens, a.threads)}
        for engine in a.engines.split(","):
            sides[f"chainrule {engine}"] = lambda e=engine: chainrule_generate(tokens, a.threads, e)
        generate = alternate(sides, repeats)
    report = {
        "meta": {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {a.threads} threads",
                 "command": "python bench/peers.py --peers PEERS --corpus CORPUS" + command_flags(a),
                 "quick": a.quick, "steps": steps, "eval_every": eval_every, "generate_tokens": tokens,
                 "generate_shape": GEN_SHAPE, "repeats": repeats, "pressure_limit_avg10": PRESSURE_LIMIT,
                 "pressure_at_start": start_pressure, "pressure_at_end": cpu_pressure(),
                 "chainrule_eval_max_windows": eval_windows,
                 "eval_volume_note": "forward windows per evaluation: nanoGPT 20 batches x 12 windows of train and "
                                     "of val = 480; chainrule val only, " + (
                                         "the whole split" if eval_windows == 0 else
                                         f"a fixed seeded subset of {eval_windows} windows"),
                 "val_loss_note": "nats/char at the last evaluation: nanoGPT over 20 random batches of the val "
                                  "split, chainrule over " + ("the whole val split" if eval_windows == 0 else
                                                              f"its fixed subset of {eval_windows} val windows") +
                                  " (every position of each window); same_val scores both on the same characters"},
        "same_val": {**same_val, "note": "nats/char of characters 2..64 of every non-overlapping 64-character "
                                         "val window, both final models (bench/peers_val.py)"},
        "train": ratio_rows(train, "tokens_per_s", "nanoGPT"),
        "train_loop": ratio_rows(train, "loop_tokens_per_s", "nanoGPT"),
        "train_excl_compile": ratio_rows(train, "tokens_per_s_excl_compile", "nanoGPT"),
        "train_loop_excl_compile": ratio_rows(train, "loop_tokens_per_s_excl_compile", "nanoGPT"),
        "generate": ratio_rows(generate, "tokens_per_s", "nanoGPT"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")


if __name__ == "__main__":
    main()
