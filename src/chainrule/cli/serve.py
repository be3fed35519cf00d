"""``chainrule serve``: load runs once and serve them over HTTP (the app itself is :mod:`chainrule.serve`)."""

from __future__ import annotations

import argparse
import sys

from chainrule.cli import options
from chainrule.core.errors import ConfigError

EXAMPLES = """examples:
  chainrule serve runs/shakespeare-transformer runs/digits-gated --port 8000
  curl -s localhost:8000/v1/models
  curl -s localhost:8000/v1/generate -H 'content-type: application/json' \\
      -d '{"prompt": "ROMEO:", "max_new_tokens": 100, "stream": true}'
  open http://127.0.0.1:8000/ for the web page"""


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    s = sub.add_parser("serve", help="serve runs over HTTP (JSON API, streaming, web page)", formatter_class=fmt,
                       description="Load the runs once and serve them: GET /healthz, GET /v1/models, POST "
                                   "/v1/generate (text; stream=true for server-sent events), /v1/sample (PNG), "
                                   "/v1/log_prob, /v1/forecast; the web page is at /. Models are named by "
                                   "their run directory's name.",
                       epilog=EXAMPLES)
    s.add_argument("runs", nargs="+", metavar="RUN", help="run directories to serve")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--max-new-tokens", type=int, default=1024, help="largest max_new_tokens a request may ask "
                                                                     "for (default and cap 1024)")
    s.add_argument("--max-samples", type=int, default=64, help="largest num_samples per request (cap 64)")
    s.add_argument("--timeout", type=float, default=60.0, help="seconds a request may take (default 60)")
    s.add_argument("--max-body-kb", type=int, default=1000, help="largest request body in kB (default 1000)")
    s.add_argument("--threads", type=int, default=4, help="threads running model work (default 4)")
    s.add_argument("--max-concurrent-forecasts", type=int, default=1,
                   help="forecast requests running at once (default 1, so generation keeps its share under load)")
    options.add_device(s, help="torch device for the models (default: where they load)")


def run(a: argparse.Namespace) -> None:
    from chainrule.serve.schemas import MAX_NEW_TOKENS, MAX_SAMPLES, Limits

    if not 0 < a.port < 65536:
        raise ConfigError(f"--port must be 1..65535, got {a.port}")
    if not 1 <= a.max_new_tokens <= MAX_NEW_TOKENS:
        raise ConfigError(f"--max-new-tokens must be 1..{MAX_NEW_TOKENS}, got {a.max_new_tokens}")
    if not 1 <= a.max_samples <= MAX_SAMPLES:
        raise ConfigError(f"--max-samples must be 1..{MAX_SAMPLES}, got {a.max_samples}")
    if a.timeout <= 0 or a.max_body_kb <= 0 or a.threads <= 0:
        raise ConfigError("--timeout, --max-body-kb and --threads must be positive")
    try:
        import uvicorn

        from chainrule.serve.app import create_app
    except ImportError as e:
        raise ConfigError(f"serve needs the serve extra (pip install 'chainrule[serve]'): {e}") from None
    from chainrule.serve.registry import load_registry

    models = load_registry(a.runs, a.device)
    limits = Limits(max_new_tokens=a.max_new_tokens, max_samples=a.max_samples, timeout_s=a.timeout,
                    max_concurrent_forecasts=a.max_concurrent_forecasts,
                    max_body_bytes=a.max_body_kb * 1000)
    app = create_app(models, limits, threads=a.threads)
    host = f"[{a.host}]" if ":" in a.host else a.host
    print(f"chainrule: serving {', '.join(f'{n} ({m.kind})' for n, m in models.items())} at "
          f"http://{host}:{a.port}/", file=sys.stderr, flush=True)
    uvicorn.run(app, host=a.host, port=a.port, log_level="info", timeout_graceful_shutdown=5)
