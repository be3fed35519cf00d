"""Shared pieces of the serving tests: tiny runs written directly to disk, and a real server process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import torch

from chainrule import api
from chainrule.core.training.checkpoint import save_weights
from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.text.data.tokenizers import CharTokenizer
from chainrule.runs import Run

TEXT_CHARS = "abcdefgh \n"
CHROMIUM = "/usr/bin/chromium"


def make_text_run(path: Path, seed: int = 1, max_len: int = 64) -> Path:
    """A tiny character-level transformer run (random weights, sharpened so the text has structure)."""
    path.mkdir(parents=True)
    tok = CharTokenizer.fit(TEXT_CHARS)
    tiny = model_class("transformer", "text").TINY
    torch.manual_seed(seed)
    model = build_model("transformer", (1, max_len), tok.vocab_size, head="categorical", **tiny)
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    Run(path=path, config={"spec": {"kind": "text", "event_shape": [1, max_len], "levels": tok.vocab_size,
                                    "num_classes": 0, "data": "test characters"},
                           "model": {"name": "transformer", "head": "categorical", **tiny}}).save_config()
    save_weights(model, path / "best.safetensors")
    tok.save(path / api.TOKENIZER_FILE)
    return path


def make_image_run(path: Path, seed: int = 2, num_classes: int = 10) -> Path:
    """A tiny class-conditional Gated PixelCNN on binary 8x8 images (random weights)."""
    path.mkdir(parents=True)
    tiny = model_class("gated_pixelcnn", "image").TINY
    torch.manual_seed(seed)
    model = build_model("gated_pixelcnn", (1, 8, 8), 2, num_classes=num_classes, **tiny)
    Run(path=path, config={"spec": {"kind": "image", "event_shape": [1, 8, 8], "levels": 2,
                                    "num_classes": num_classes, "class_names": [f"c{i}" for i in range(num_classes)],
                                    "data": "test digits"},
                           "model": {"name": "gated_pixelcnn", "conditional": num_classes > 0, **tiny}}).save_config()
    save_weights(model, path / "best.safetensors")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(runs: list[Path], log_path: Path, *args: str, timeout: float = 120.0) -> Iterator[str]:
    """``python -m chainrule serve RUNS`` on a free loopback port; yields the base URL once /healthz answers."""
    port = free_port()
    env = {**os.environ, "CHAINRULE_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "chainrule", "serve", *map(str, runs), "--host", "127.0.0.1", "--port", str(port),
           *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"server did not answer /healthz within {timeout:.0f} s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def chromium() -> Iterator:
    """Headless Debian Chromium under Playwright; fails (never skips) with a clear message when missing."""
    import pytest

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser tests need Debian's Chromium at {CHROMIUM}; install it with 'make browser' "
                    "(apt-get install chromium)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        pytest.fail(f"the browser tests need Playwright (pip install playwright): {e}", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()
