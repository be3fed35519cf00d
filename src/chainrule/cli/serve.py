"""``chainrule serve``: load runs once and serve them over HTTP (the app itself is :mod:`chainrule.serve`)."""

from __future__ import annotations

import argparse
import sys

from chainrule.cli import options
from chainrule.core.errors import ConfigError

EXAMPLES = """examples:
  chainrule serve runs/shakespeare-transformer runs/digits-gated --port 8000
  chainrule serve runs/shakespeare-transformer --max-batch 32   # at most 32 samples share each decode step
  curl -s localhost:8000/v1/models
  curl -s localhost:8000/v1/generate -H 'content-type: application/json' \\
      -d '{"prompt": "ROMEO:", "max_new_tokens": 100, "stream": true}'
  curl -s localhost:8000/v1/completions -H 'content-type: application/json' \\
      -d '{"prompt": "ROMEO:", "max_tokens": 50, "n": 2}'    # OpenAI's API: docs/openai.md
  curl -s localhost:8000/v1/sample -H 'content-type: application/json' \
      -d '{"model": "speech-wavenet", "seconds": 2, "seed": 1}' -o speech.wav    # audio runs: a WAV
  open http://127.0.0.1:8000/ for the web page

The whole API is public, its schema too (GET /openapi.json): bind to 127.0.0.1 (the default) or put an
authenticating proxy in front. Bound to a loopback address, the server answers only requests whose Host
header names this machine (localhost, 127.0.0.1, ::1), which defeats DNS rebinding; --allowed-hosts
changes the list (* allows any)."""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    s = sub.add_parser("serve", help="serve runs over HTTP (JSON API, streaming, web page)", formatter_class=fmt,
                       description="Load the runs once and serve them: GET /healthz, GET /v1/models, POST "
                                   "/v1/generate (text; stream=true for server-sent events), /v1/sample (PNG; "
                                   "a WAV for audio runs), /v1/log_prob, /v1/forecast; the web page is at /. "
                                   "Models are named by their run directory's name.",
                       epilog=EXAMPLES)
    s.add_argument("runs", nargs="+", metavar="RUN", help="run directories to serve")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--max-new-tokens", type=int, default=1024, help="largest max_new_tokens a request may ask "
                                                                     "for (default and cap 1024)")
    s.add_argument("--max-samples", type=int, default=64, help="largest num_samples per request (cap 64)")
    s.add_argument("--max-seconds", type=float, default=10.0,
                   help="largest seconds of audio per waveform a request may ask for (default 10, cap 60)")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds a request may take (default 60)")
    s.add_argument("--max-body-kb", type=int, default=1000, help="largest request body in kB (default 1000)")
    s.add_argument("--threads", type=int, default=4, help="threads running model work (default 4)")
    s.add_argument("--max-batch", type=int, default=64,
                   help="text samples decoded together in one model's continuous batch; concurrent generations "
                        "share its steps, more wait for room (default 64)")
    s.add_argument("--max-concurrent-forecasts", type=int, default=1,
                   help="forecast requests running at once (default 1, so generation keeps its share under load)")
    s.add_argument("--max-request-mb", type=int, default=512,
                   help="largest estimated memory of one request's work in MB; more is refused with 422 (default "
                        "512)")
    s.add_argument("--memory-budget-mb", type=int, default=2048,
                   help="estimated memory of all requests at work at once in MB; more wait in line, and get 503 "
                        "when still waiting at the time limit (default 2048; the models' own weights come on top)")
    s.add_argument("--limit-concurrency", type=int, default=512,
                   help="connections open at once, hence requests in progress; at the limit a new connection "
                        "pushes out the one that has waited longest for a request, or gets 503 (default 512)")
    s.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a client has to send a request's headers; then the connection is closed "
                        "(default 10)")
    s.add_argument("--body-timeout", type=float, default=30.0,
                   help="seconds a client has to send a request's body after its headers (default 30)")
    s.add_argument("--keep-alive", type=float, default=5.0,
                   help="seconds an idle connection stays open for the client's next request (default 5)")
    s.add_argument("--allowed-hosts", metavar="NAMES",
                   help="comma-separated names the Host header may carry, e.g. api.example.com,localhost; "
                        "* allows any (default: the loopback names when bound to a loopback address, else any)")
    options.add_device(s, help="torch device for the models (default: where they load)")


def run(a: argparse.Namespace) -> None:
    from chainrule.serve.schemas import MAX_NEW_TOKENS, MAX_SAMPLES, MAX_SECONDS, Limits

    if not 0 < a.port < 65536:
        raise ConfigError(f"--port must be 1..65535, got {a.port}")
    if not 1 <= a.max_new_tokens <= MAX_NEW_TOKENS:
        raise ConfigError(f"--max-new-tokens must be 1..{MAX_NEW_TOKENS}, got {a.max_new_tokens}")
    if not 1 <= a.max_samples <= MAX_SAMPLES:
        raise ConfigError(f"--max-samples must be 1..{MAX_SAMPLES}, got {a.max_samples}")
    if not 0 < a.max_seconds <= MAX_SECONDS:
        raise ConfigError(f"--max-seconds must be in (0, {MAX_SECONDS:g}], got {a.max_seconds}")
    positive = {"--timeout": a.timeout, "--max-body-kb": a.max_body_kb, "--threads": a.threads,
                "--max-batch": a.max_batch, "--max-concurrent-forecasts": a.max_concurrent_forecasts,
                "--max-request-mb": a.max_request_mb,
                "--memory-budget-mb": a.memory_budget_mb, "--limit-concurrency": a.limit_concurrency,
                "--header-timeout": a.header_timeout, "--body-timeout": a.body_timeout, "--keep-alive": a.keep_alive}
    bad = [name for name, value in positive.items() if not value > 0]
    if bad:
        raise ConfigError(f"{', '.join(bad)} must be positive")
    try:
        from chainrule.serve.app import create_app
        from chainrule.serve.server import ConnectionLimits, serve_app
    except ImportError as e:
        raise ConfigError(f"serve needs the serve extra (pip install 'chainrule[serve]'): {e}") from None
    from chainrule.serve.hosts import default_allowed_hosts
    from chainrule.serve.registry import load_registry

    allowed = default_allowed_hosts(a.host) if a.allowed_hosts is None else [
        h.strip() for h in a.allowed_hosts.split(",") if h.strip()]
    if allowed is not None and not allowed:
        raise ConfigError("--allowed-hosts needs at least one name (or * for any)")
    models = load_registry(a.runs, a.device)
    limits = Limits(max_new_tokens=a.max_new_tokens, max_samples=a.max_samples, timeout_s=a.timeout,
                    max_seconds=a.max_seconds,
                    max_concurrent_forecasts=a.max_concurrent_forecasts, max_body_bytes=a.max_body_kb * 1000,
                    max_request_bytes=a.max_request_mb * 2**20, memory_budget_bytes=a.memory_budget_mb * 2**20,
                    max_batch_rows=a.max_batch)
    app = create_app(models, limits, threads=a.threads, allowed_hosts=allowed)
    host = f"[{a.host}]" if ":" in a.host else a.host
    print(f"chainrule: serving {', '.join(f'{n} ({m.kind})' for n, m in models.items())} at "
          f"http://{host}:{a.port}/", file=sys.stderr, flush=True)
    serve_app(app, a.host, a.port, ConnectionLimits(header_timeout_s=a.header_timeout, body_timeout_s=a.body_timeout,
                                                     keep_alive_s=a.keep_alive, max_connections=a.limit_concurrency))
