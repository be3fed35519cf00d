"""What every generation engine shares: the engine names, their check, and compiling a static step once.

An engine is how a cached generation loop runs one step: ``eager`` (the model's own ``step``), ``static`` (a pure
function of fixed-shape tensors, the model's weights gathered once per cache) or ``compiled`` (that function
through ``torch.compile``, so Python and per-operator dispatch leave the loop). Each modality writes its own
static step (text: attention over key/value buffers; audio: WaveNet's queues); the names, the check and the
compile-once cache are here so both loops speak alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from chainrule.core.errors import ConfigError

ENGINES = ("eager", "static", "compiled")
_COMPILED: dict[Callable[..., Any], Callable[..., Any]] = {}


def check_engine(engine: str, model: Any, supported: bool, needs: str) -> None:
    """:class:`ConfigError` unless ``engine`` is known and, when it is not ``eager``, ``supported`` for ``model``
    (``needs`` says what the static engines need, for the message)."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if engine != "eager" and not supported:
        raise ConfigError(f"engine {engine!r} needs {needs}; {getattr(model, 'name', type(model).__name__)} runs "
                          f"with engine 'eager'")


def compile_once(step: Callable[..., Any], options: dict[str, Any] | None = None) -> Callable[..., Any]:
    """``step`` through ``torch.compile`` (inductor, whole graph, static shapes; ``options`` are inductor's),
    built once per process; a new input shape (model widths, batch size) compiles again on its first call.
    Compilation takes tens of seconds on a CPU and is paid by the first call, not here."""
    compiled = _COMPILED.get(step)
    if compiled is None:
        compiled = _COMPILED[step] = torch.compile(step, dynamic=False, fullgraph=True, options=options)
    return compiled
