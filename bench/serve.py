"""Serving load test: concurrent clients on loopback against ``chainrule serve`` with a small text model and a
forecaster, first on its own (quiet), then beside a hostile mix (attack).

Each client sends requests back to back for the whole run, one kind per client in turn: plain text generation,
streamed generation (server-sent events; first-token latency measured) and forecasts; one more client polls
``/healthz`` every 100 ms. Reports requests/s, p50/p99 latency and errors per kind, and the server process's
peak resident memory (VmHWM from /proc). The attack (``bench/serve_attack.py``) adds clients sending headers or
bodies a byte a second, streams that are never read, requests over the memory limit and requests at the limits
(the most work one may ask for; generations past the time limit). Each phase gets a fresh server. Goals: during
the attack the normal requests keep their p99 within 2x of the quiet run, and the server's peak RSS stays under
its RSS before the load plus its memory budget (``--memory-budget-mb``). The clients run in this process
(asyncio + httpx), so on a small machine they share the CPU with the server.

    .venv/bin/python bench/serve.py                              # 50 clients, 30 s per phase; tiny runs if needed
    .venv/bin/python bench/serve.py --clients 5 --duration 5     # quick check
    .venv/bin/python bench/serve.py --phases quiet               # the plain load test only
    .venv/bin/python bench/serve.py --text-run runs/lm --forecast-run runs/passengers
    .venv/bin/python bench/serve.py --phases quiet --kinds generate,stream               # text generation only
    .venv/bin/python bench/serve.py --phases quiet --max-batch 1 --out bench/results/serve-one-by-one.json

Generated tokens/s counts the text requests finished within the load window times ``--tokens``. Concurrent
generations share the server's continuous decode batch (``--max-batch`` samples; 1 decodes them one by one).

Runs it creates go to bench/runs/serve-text and bench/runs/serve-forecast (reused on later calls); the server's
logs to bench/runs/serve-server-quiet.log and bench/runs/serve-server-attack.log.
Writes bench/results/serve.json and bench/results/serve.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from serve_attack import attack

HERE = Path(__file__).resolve().parent
KINDS = ("generate", "stream", "forecast")
PHASES = ("quiet", "attack")
TEXT_TRAIN = ["data.tokenizer=char", "data.context=128", "model.embed_dim=64", "model.num_layers=2",
              "model.num_heads=4", "model.dropout=0", "train.steps={steps}", "train.batch_size=16", "train.lr=3e-3",
              "train.eval_every=0", "train.checkpoint_every=0", "train.progress=false", "output.samples=0"]


# ------------------------------------------------------------------ runs
def ensure_text_run(path: Path, data: str, steps: int) -> Path:
    """A tiny character-level transformer, trained for a few steps through the Python API."""
    if (path / "best.safetensors").is_file():
        return path
    from chainrule import api

    print(f"training a tiny text model on {data} into {path} ({steps} steps)", flush=True)
    api.train(data, "transformer", overrides=[o.format(steps=steps) for o in TEXT_TRAIN], run_dir=path)
    return path


def ensure_forecast_run(path: Path, data: str, steps: int) -> Path | None:
    """A tiny DeepAR forecaster, or None when the time-series extra is not installed."""
    if (path / "best.safetensors").is_file():
        return path
    try:
        from chainrule.modalities.series.api import train_forecaster
    except ImportError as e:
        print(f"no forecaster: {e}", flush=True)
        return None
    print(f"training a tiny forecaster on {data} into {path} ({steps} steps)", flush=True)
    train_forecaster(data, "deepar", steps=steps, progress=False, run_dir=path, hidden_size=16, num_layers=1)
    return path


# ------------------------------------------------------------------ server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs: list[Path], port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "chainrule", "serve", *map(str, runs), "--host", "127.0.0.1", "--port", str(port),
           "--threads", str(args.server_threads), "--timeout", str(args.server_timeout),
           "--memory-budget-mb", str(args.memory_budget_mb), "--max-request-mb", str(args.max_request_mb),
           *(["--max-batch", str(args.max_batch)] if args.max_batch != 64 else [])]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 180:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not start within 180 s; see {log}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(line.split()[1])
    return out


# ------------------------------------------------------------------ load
class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = {k: [] for k in KINDS}
        self.done_at: dict[str, list[float]] = {k: [] for k in KINDS}
        self.first_token: list[float] = []
        self.errors: dict[str, int] = {k: 0 for k in KINDS}
        self.messages: list[str] = []
        self.health: list[float] = []
        self.health_errors = 0

    def error(self, kind: str, message: str) -> None:
        self.errors[kind] += 1
        if len(self.messages) < 10:
            self.messages.append(f"{kind}: {message}")


async def one_request(c: httpx.AsyncClient, kind: str, seed: int, args: argparse.Namespace, stats: Stats,
                      models: dict[str, str]) -> None:
    t0 = time.perf_counter()
    try:
        if kind == "forecast":
            r = await c.post("/v1/forecast", json={"model": models["forecast"], "history": args.history,
                                                   "seed": seed, "num_samples": args.forecast_samples})
            ok = r.status_code == 200
        elif kind == "generate":
            r = await c.post("/v1/generate", json={"model": models["text"], "prompt": args.prompt,
                                                   "max_new_tokens": args.tokens, "seed": seed})
            ok = r.status_code == 200
        else:
            ok, first = False, None
            async with c.stream("POST", "/v1/generate", json={"model": models["text"], "prompt": args.prompt,
                                                              "max_new_tokens": args.tokens, "seed": seed,
                                                              "stream": True}) as r:
                async for line in r.aiter_lines():
                    if first is None and line.startswith("data:"):
                        first = time.perf_counter() - t0
                    if line.startswith("event: done"):
                        ok = True
                    elif line.startswith("event: error"):
                        break
            if first is not None:
                stats.first_token.append(first)
        if not ok:
            return stats.error(kind, f"status {r.status_code}")
    except httpx.HTTPError as e:
        return stats.error(kind, f"{type(e).__name__}: {e}")
    now = time.perf_counter()
    stats.latency[kind].append(now - t0)
    stats.done_at[kind].append(now)


async def client_loop(i: int, base: str, kinds: list[str], until: float, args: argparse.Namespace, stats: Stats,
                      models: dict[str, str]) -> None:
    kind = kinds[i % len(kinds)]
    seed = 1000 * i
    async with httpx.AsyncClient(base_url=base, timeout=args.request_timeout) as c:
        while time.perf_counter() < until:
            await one_request(c, kind, seed, args, stats, models)
            seed += 1


async def poll_health(base: str, until: float, stats: Stats) -> None:
    """``GET /healthz`` every 100 ms on a connection of its own, its latency recorded."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            try:
                ok = (await c.get("/healthz")).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                stats.health.append(time.perf_counter() - t0)
            else:
                stats.health_errors += 1
            await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - t0)))


async def watch_memory(pid: int, stop: asyncio.Event, peak: dict[str, int]) -> None:
    while not stop.is_set():
        mem = memory_kb(pid)
        peak["rss_kb"] = max(peak.get("rss_kb", 0), mem.get("VmRSS", 0))
        peak["hwm_kb"] = mem.get("VmHWM", 0)
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass


async def load(base: str, pid: int, kinds: list[str], args: argparse.Namespace, models: dict[str, str],
               hostile: bool) -> dict:
    stats, peak, stop = Stats(), {}, asyncio.Event()
    watcher = asyncio.create_task(watch_memory(pid, stop, peak))
    rss_before = memory_kb(pid).get("VmRSS", 0)
    cpu0, own0 = cpu_seconds(pid), time.process_time()
    t0 = time.perf_counter()
    until = t0 + args.duration
    attackers = None
    if hostile:  # the attack's own clock: the same window as the load
        attackers = asyncio.create_task(attack(
            base, models, time.monotonic() + args.duration, args.attack_slow_headers, args.attack_slow_bodies,
            args.attack_unread_streams, args.attack_oversized, args.attack_heavy, args.server_timeout + 10))
    await asyncio.gather(poll_health(base, until, stats),
                         *(client_loop(i, base, kinds, until, args, stats, models) for i in range(args.clients)))
    elapsed = time.perf_counter() - t0
    hostile_stats = (await attackers).summary() if attackers is not None else None
    cpu = {"server_cpu_s": round(cpu_seconds(pid) - cpu0, 1), "client_cpu_s": round(time.process_time() - own0, 1)}
    stop.set()
    await watcher
    return {"stats": stats, "elapsed": elapsed, "duration": args.duration, "until": until, "peak": peak,
            "tokens": args.tokens,
            "rss_before_kb": rss_before, "cpu": cpu, "attack": hostile_stats}


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def summarise(result: dict, kinds: list[str]) -> dict:
    """Requests/s counts the requests finished within the load window; latencies cover every request."""
    stats, elapsed, until, window = result["stats"], result["elapsed"], result["until"], result["duration"]
    per_kind = {}
    for k in kinds:
        lat, in_window = stats.latency[k], sum(t <= until for t in stats.done_at[k])
        per_kind[k] = {"requests": len(lat), "errors": stats.errors[k], "req_per_s": round(in_window / window, 2),
                       "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99)}
    per_kind.get("stream", {}).update({"first_token_p50_ms": pct(stats.first_token, 50),
                                       "first_token_p99_ms": pct(stats.first_token, 99)})
    total = sum(v["requests"] for v in per_kind.values())
    text_req_per_s = sum(per_kind[k]["req_per_s"] for k in ("generate", "stream") if k in per_kind)
    return {"elapsed_s": round(elapsed, 2), "requests": total,
            "req_per_s": round(sum(v["req_per_s"] for v in per_kind.values()), 2),
            "generated_tokens_per_s": round(text_req_per_s * result["tokens"]),
            "errors": sum(stats.errors.values()), "error_messages": stats.messages, "by_kind": per_kind,
            "healthz": {"requests": len(stats.health), "errors": stats.health_errors,
                        "p50_ms": pct(stats.health, 50), "p99_ms": pct(stats.health, 99)},
            "server_rss_before_mb": round(result["rss_before_kb"] / 1024, 1),
            "server_peak_rss_mb": round(result["peak"].get("hwm_kb", 0) / 1024, 1),
            "server_max_sampled_rss_mb": round(result["peak"].get("rss_kb", 0) / 1024, 1), **result["cpu"],
            "attack": result["attack"]}


def verdict(quiet: dict, attacked: dict, memory_budget_mb: float) -> dict:
    """The goals: p99 of every normal kind and of /healthz within 2x of the quiet run; peak RSS within the RSS
    before the load plus the memory budget."""
    ratios = {k: _ratio(attacked["by_kind"][k]["p99_ms"], quiet["by_kind"][k]["p99_ms"]) for k in quiet["by_kind"]}
    ratios["healthz"] = _ratio(attacked["healthz"]["p99_ms"], quiet["healthz"]["p99_ms"])
    rss_limit = round(attacked["server_rss_before_mb"] + memory_budget_mb, 1)
    return {"p99_ratio": ratios, "p99_within_2x": all(r is not None and r <= 2.0 for r in ratios.values()),
            "rss_limit_mb": rss_limit, "peak_rss_mb": attacked["server_peak_rss_mb"],
            "rss_within_budget": attacked["server_peak_rss_mb"] <= rss_limit}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def phase_markdown(name: str, res: dict) -> list[str]:
    lines = [f"## {name}", "",
             f"**{res['req_per_s']} requests/s overall, {res['generated_tokens_per_s']} generated tokens/s, "
             f"{res['errors']} errors, server peak RSS "
             f"{res['server_peak_rss_mb']} MB** (before the load: {res['server_rss_before_mb']} MB). CPU time "
             f"over {res['elapsed_s']} s: server {res['server_cpu_s']} s, clients {res['client_cpu_s']} s.", "",
             "| kind | requests | req/s | p50 (ms) | p99 (ms) | first token p50 / p99 (ms) | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for k, v in res["by_kind"].items():
        ft = f"{v['first_token_p50_ms']} / {v['first_token_p99_ms']}" if "first_token_p50_ms" in v else ""
        lines.append(f"| {k} | {v['requests']} | {v['req_per_s']} | {v['p50_ms']} | {v['p99_ms']} | {ft} | "
                     f"{v['errors']} |")
    h = res["healthz"]
    lines.append(f"| /healthz | {h['requests']} |  | {h['p50_ms']} | {h['p99_ms']} |  | {h['errors']} |")
    if res["error_messages"]:
        lines += ["", "First errors: " + "; ".join(res["error_messages"])]
    if res.get("attack"):
        a = res["attack"]
        lines += ["", f"Hostile clients: replies {a['statuses']}; connections closed by the server "
                      f"{a['closed_by_server']} (longest lived, s: {a['max_connection_s']}); refused or reset "
                      f"{a['failures']}."]
    return lines + [""]


def markdown(out: dict) -> str:
    cfg = out["config"]
    lines = [f"# Serving load test ({cfg['clients']} clients, {cfg['duration_s']} s per phase, loopback)", "",
             f"Server: `chainrule serve` with {cfg['server_threads']} model threads (OMP_NUM_THREADS=1), time limit "
             f"{cfg['server_timeout_s']} s, memory budget {cfg['memory_budget_mb']} MB ({cfg['max_request_mb']} MB "
             f"per request); text model `{cfg['text_model']}` ({cfg['text_params']:,} params), {cfg['tokens']} new "
             f"tokens per request; forecaster `{cfg['forecast_model']}`, {cfg['forecast_samples']} sample paths per "
             f"request. Clients in one asyncio process on the same machine ({cfg['machine']}).", ""]
    if "attack" in out["phases"]:
        a = cfg["attack"]
        lines += [f"Attack: {a['slow_headers']} clients sending headers and {a['slow_bodies']} sending a body a "
                  f"byte a second, {a['unread_streams']} streams never read, {a['oversized']} clients sending "
                  f"requests over the memory limit and {a['heavy']} sending requests at the limits.", ""]
    for name, res in out["phases"].items():
        lines += phase_markdown(name, res)
    if "verdict" in out:
        v = out["verdict"]
        lines += ["## Verdict", "",
                  f"p99 during the attack / quiet: {v['p99_ratio']} -> "
                  f"{'within' if v['p99_within_2x'] else 'NOT within'} 2x.",
                  f"Peak RSS {v['peak_rss_mb']} MB vs limit {v['rss_limit_mb']} MB (RSS before the load + memory "
                  f"budget) -> {'within' if v['rss_within_budget'] else 'OVER'} budget.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    p.add_argument("--text-run", type=Path, help="text run to serve (default: train a tiny one)")
    p.add_argument("--forecast-run", type=Path, help="forecasting run to serve (default: train a tiny one)")
    p.add_argument("--text-data", default="shakespeare", help="corpus for the tiny text model")
    p.add_argument("--forecast-data", default="airpassengers", help="dataset for the tiny forecaster")
    p.add_argument("--train-steps", type=int, default=200)
    p.add_argument("--tokens", type=int, default=64, help="new tokens per generate request")
    p.add_argument("--prompt", default="ROMEO:")
    p.add_argument("--forecast-samples", type=int, default=100)
    p.add_argument("--server-threads", type=int, default=4)
    p.add_argument("--server-timeout", type=float, default=20.0, help="the server's --timeout (s)")
    p.add_argument("--memory-budget-mb", type=int, default=2048, help="the server's --memory-budget-mb")
    p.add_argument("--max-request-mb", type=int, default=512, help="the server's --max-request-mb")
    p.add_argument("--request-timeout", type=float, default=120.0)
    p.add_argument("--phases", default=",".join(PHASES), help="quiet, attack or both (default)")
    p.add_argument("--kinds", default=",".join(KINDS),
                   help="request kinds the clients send, in turn (default: all; generate,stream isolates text)")
    p.add_argument("--max-batch", type=int, default=64,
                   help="the server's --max-batch (samples decoded together; 1 decodes requests one by one)")
    p.add_argument("--attack-slow-headers", type=int, default=300, help="clients sending headers a byte a second")
    p.add_argument("--attack-slow-bodies", type=int, default=50, help="clients sending a body a byte a second")
    p.add_argument("--attack-unread-streams", type=int, default=4, help="clients never reading their stream")
    p.add_argument("--attack-oversized", type=int, default=4, help="clients sending requests over the memory limit")
    p.add_argument("--attack-heavy", type=int, default=2,
                   help="clients sending requests at the limits (generations past the time limit)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "serve.json")
    args = p.parse_args()
    args.history = [112.0, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118, 115, 126, 141, 135, 125, 149, 170,
                    170, 158, 133, 114, 140, 145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166]

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    text_run = args.text_run or ensure_text_run(HERE / "runs" / "serve-text", args.text_data, args.train_steps)
    forecast_run = args.forecast_run or ensure_forecast_run(HERE / "runs" / "serve-forecast", args.forecast_data,
                                                            args.train_steps)
    runs = [text_run] + ([forecast_run] if forecast_run else [])
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        raise SystemExit(f"--kinds: choose from {', '.join(KINDS)}")
    if not forecast_run:
        kinds = [k for k in kinds if k != "forecast"] or ["generate", "stream"]

    phases = [ph.strip() for ph in args.phases.split(",") if ph.strip()]
    if not phases or any(ph not in PHASES for ph in phases):
        raise SystemExit(f"--phases: choose from {', '.join(PHASES)}")
    (HERE / "runs").mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results, listed, models = {}, {}, {}
    for phase in phases:
        listed, models, results[phase] = run_phase(phase, runs, kinds, args)
    import torch

    out = {"config": {"clients": args.clients, "duration_s": args.duration, "tokens": args.tokens,
                      "prompt": args.prompt, "forecast_samples": args.forecast_samples,
                      "server_threads": args.server_threads, "server_timeout_s": args.server_timeout,
                      "max_batch": args.max_batch,
                      "memory_budget_mb": args.memory_budget_mb, "max_request_mb": args.max_request_mb,
                      "text_model": listed["text"]["name"], "text_params": listed["text"].get("params", 0),
                      "forecast_model": models["forecast"], "kinds": kinds,
                      "attack": {"slow_headers": args.attack_slow_headers, "slow_bodies": args.attack_slow_bodies,
                                 "unread_streams": args.attack_unread_streams, "oversized": args.attack_oversized,
                                 "heavy": args.attack_heavy},
                      "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"},
           "phases": results}
    if set(PHASES) <= set(results):
        out["verdict"] = verdict(results["quiet"], results["attack"], args.memory_budget_mb)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(out))
    print(markdown(out))


def run_phase(phase: str, runs: list[Path], kinds: list[str], args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """A fresh server, a warm-up, then the load (beside the attack in the attack phase); the server's models,
    their names and the summary."""
    port = free_port()
    log = HERE / "runs" / f"serve-server-{phase}.log"
    proc = start_server(runs, port, args, log)
    base = f"http://127.0.0.1:{port}"
    try:
        listed = {m["kind"]: m for m in httpx.get(f"{base}/v1/models").json()["models"]}
        models = {"text": listed["text"]["name"], "forecast": listed.get("timeseries", {}).get("name")}
        warm = argparse.Namespace(**{**vars(args), "tokens": 4})
        asyncio.run(_warm_up(base, kinds, warm, models))
        print(f"{phase}: {args.clients} clients x {args.duration:g} s on {base} ({', '.join(kinds)})", flush=True)
        result = summarise(asyncio.run(load(base, proc.pid, kinds, args, models, phase == "attack")), kinds)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return listed, models, result


async def _warm_up(base: str, kinds: list[str], args: argparse.Namespace, models: dict[str, str]) -> None:
    stats = Stats()
    async with httpx.AsyncClient(base_url=base, timeout=args.request_timeout) as c:
        for k in kinds:
            await one_request(c, k, 0, args, stats, models)
    if sum(stats.errors.values()):
        raise SystemExit(f"warm-up failed: {stats.messages}")


if __name__ == "__main__":
    main()
