"""Weights (safetensors) and trainer state (``torch.save``, loaded with ``weights_only=True``) on disk.

Every write is atomic: a temporary file in the same directory, fsync, ``os.replace``. A run directory
holds ``checkpoints/step-000123.safetensors`` (+ ``.ema.safetensors`` when EMA is on) and
``checkpoints/step-000123.state.pt``; the state is written last and records the SHA-256 of the weight
files, so a checkpoint counts only when the state exists and all its files match. Every weights file also
carries its own SHA-256 (of its header and tensor data) in its metadata, so ``best.safetensors`` and a file
copied on its own are verified too: a flipped bit is an error, never a silently different model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from chainrule.core.errors import CheckpointError
from chainrule.core.runs.atomic import atomic_write, atomic_write_bytes, remove_stale_temporaries  # noqa: F401
from chainrule.core.runs.files import CHECKPOINTS_DIR

STATE_FORMAT = "chainrule-trainer-state"
#: the metadata key holding a weights file's own content digest (files written before it existed load unchecked)
DIGEST_KEY = "sha256"
_STEP_RE = re.compile(r"^step-(\d+)\.state\.pt$")


# ------------------------------------------------------------------ weights
def _tensors(module_or_state: nn.Module | Mapping[str, Tensor]) -> dict[str, Tensor]:
    state = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    # clone: safetensors refuses shared storage (tied weights) and non-contiguous views
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def _content_digest(header: Mapping[str, Any], payload: bytes | memoryview) -> str:
    """SHA-256 of a safetensors header (without the digest itself) and its tensor data: every byte that matters."""
    fields = {k: v for k, v in header.items() if k != "__metadata__"}
    fields["__metadata__"] = {k: v for k, v in (header.get("__metadata__") or {}).items() if k != DIGEST_KEY}
    sha = hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    sha.update(payload)
    return sha.hexdigest()


def _weights_parts(module_or_state: nn.Module | Mapping[str, Tensor],
                   metadata: Mapping[str, str] | None) -> tuple[bytes, memoryview]:
    """A safetensors file as (length prefix + header recording the content digest, tensor data)."""
    meta = {"format": "chainrule", **{str(k): str(v) for k, v in (metadata or {}).items()}}
    data = st_save(_tensors(module_or_state), metadata=meta)
    size = int.from_bytes(data[:8], "little")
    header, payload = json.loads(data[8:8 + size]), memoryview(data)[8 + size:]
    header.setdefault("__metadata__", {})[DIGEST_KEY] = _content_digest(header, payload)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-(8 + len(encoded)) % 8)  # keep the tensor data 8-byte aligned, as safetensors writes it
    return len(encoded).to_bytes(8, "little") + encoded, payload


def save_weights(module_or_state: nn.Module | Mapping[str, Tensor], path: str | os.PathLike,
                 metadata: Mapping[str, str] | None = None) -> str:
    """Save a module's ``state_dict`` (or a state dict) to a safetensors file atomically; return its SHA-256."""
    head, payload = _weights_parts(module_or_state, metadata)

    def write(f) -> None:
        f.write(head)
        f.write(payload)

    atomic_write(path, write)
    sha = hashlib.sha256(head)
    sha.update(payload)
    return sha.hexdigest()


def _invalid(path: str | os.PathLike, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: not a valid chainrule checkpoint ({why})")


def read_weights(path: str | os.PathLike, sha256: str | None = None) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Read and validate a safetensors file (tensors on CPU, metadata); :class:`CheckpointError` if unusable."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise _invalid(path, "file not found") from None
    except OSError as e:
        raise _invalid(path, e.strerror or str(e)) from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise _invalid(path, "contents do not match the checksum recorded in its state file")
    try:
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + size])
        meta = header.get("__metadata__") or {}
        recorded = meta.get(DIGEST_KEY)
        if recorded is not None and _content_digest(header, memoryview(data)[8 + size:]) != recorded:
            raise _invalid(path, f"contents do not match the {DIGEST_KEY} recorded in the file; it was damaged "
                                 "after it was written")
        tensors = st_load(data)
    except CheckpointError:
        raise
    except Exception as e:  # safetensors raises its own error types for truncated / garbled files
        raise _invalid(path, f"unreadable safetensors data: {e}") from None
    return tensors, dict(meta)


def load_weights(model: nn.Module, path: str | os.PathLike, sha256: str | None = None) -> dict[str, str]:
    """Load weights saved by :func:`save_weights` into ``model`` (strict); returns the file's metadata.

    Missing/unexpected keys and shape mismatches raise :class:`CheckpointError` before ``model`` is touched.
    """
    tensors, meta = read_weights(path, sha256)
    apply_weights(model, tensors, path)
    return meta


def apply_weights(model: nn.Module, tensors: Mapping[str, Tensor], path: str | os.PathLike) -> None:
    """``model.load_state_dict(tensors)`` after checking keys and shapes (errors name ``path``)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        raise _invalid(path, "; ".join(parts) + "; was it saved from a different model?")
    bad = [f"{k} {tuple(tensors[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
           if tuple(tensors[k].shape) != tuple(v.shape)]
    if bad:
        raise _invalid(path, f"shape mismatch: {'; '.join(bad[:3])}")
    model.load_state_dict(dict(tensors), strict=True)


# ------------------------------------------------------------------ trainer state
def save_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` a state dict (tensors and plain Python values only) atomically."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Load a trainer state with ``weights_only=True`` (no arbitrary unpickling)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise _invalid(path, "file not found") from None
    except Exception as e:
        raise _invalid(path, f"unreadable trainer state: {e}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise _invalid(path, "not a trainer state file")
    return state


# ------------------------------------------------------------------ run-directory layout
@dataclass(frozen=True)
class CheckpointFiles:
    """The files of the checkpoint taken after ``step`` optimiser steps."""

    step: int
    weights: Path
    ema: Path
    state: Path

    @classmethod
    def at(cls, run_dir: str | os.PathLike, step: int) -> CheckpointFiles:
        d = Path(run_dir) / CHECKPOINTS_DIR
        stem = f"step-{step:06d}"
        return cls(step, d / f"{stem}.safetensors", d / f"{stem}.ema.safetensors", d / f"{stem}.state.pt")

    def paths(self) -> tuple[Path, Path, Path]:
        return self.weights, self.ema, self.state


def list_checkpoints(run_dir: str | os.PathLike) -> list[CheckpointFiles]:
    """Checkpoints whose state file exists, oldest first (their contents are not checked here)."""
    d = Path(run_dir) / CHECKPOINTS_DIR
    if not d.is_dir():
        return []
    steps = sorted(int(m.group(1)) for p in d.iterdir() if (m := _STEP_RE.match(p.name)))
    return [CheckpointFiles.at(run_dir, s) for s in steps]


def write_checkpoint(run_dir: str | os.PathLike, step: int, model: nn.Module, state: dict[str, Any],
                     ema: nn.Module | None = None) -> CheckpointFiles:
    """Write weights (+ EMA weights), then the state recording their checksums."""
    files = CheckpointFiles.at(run_dir, step)
    files.state.unlink(missing_ok=True)  # a stale state must never pair with the new weights
    meta = {"step": str(step)}
    checksums = {"weights": save_weights(model, files.weights, meta)}
    if ema is not None:
        checksums["ema"] = save_weights(ema, files.ema, {**meta, "ema": "1"})
    else:
        files.ema.unlink(missing_ok=True)
    save_state({**state, "format": STATE_FORMAT, "step": step, "checksums": checksums}, files.state)
    return files


def read_checkpoint(files: CheckpointFiles) -> tuple[dict[str, Any], dict[str, Tensor], dict[str, Tensor] | None]:
    """Load and verify one checkpoint: (state, weights, EMA weights or None)."""
    state = load_state(files.state)
    sums = state.get("checksums", {})
    weights, _ = read_weights(files.weights, sums.get("weights"))
    ema = read_weights(files.ema, sums["ema"])[0] if "ema" in sums else None
    return state, weights, ema


def latest_checkpoint(run_dir: str | os.PathLike):
    """The newest complete, uncorrupted checkpoint as ``(files, state, weights, ema)``, or None.

    Broken ones are skipped with a warning (and left on disk).
    """
    for files in reversed(list_checkpoints(run_dir)):
        try:
            return (files, *read_checkpoint(files))
        except CheckpointError as e:
            warnings.warn(f"skipping checkpoint at step {files.step}: {e}", stacklevel=2)
    return None


def prune_checkpoints(run_dir: str | os.PathLike, keep: int, current_step: int) -> None:
    """Keep the newest ``keep`` checkpoints up to ``current_step`` (0 = keep all); delete older files."""
    if keep <= 0:
        return
    done = [c for c in list_checkpoints(run_dir) if c.step <= current_step]
    if len(done) <= keep:
        return
    oldest_kept = done[-keep].step
    d = Path(run_dir) / CHECKPOINTS_DIR
    for p in d.glob("step-*"):
        m = re.match(r"^step-(\d+)\.", p.name)
        if m and int(m.group(1)) < oldest_kept:
            p.unlink(missing_ok=True)
