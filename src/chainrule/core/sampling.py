"""The shared ancestral sampling loop over the positions of fixed-shape data (images, any ``(C, *S)`` event).

Python loops over positions exist only where sampling is inherently sequential: this loop, the token loop of
text generation (:mod:`chainrule.modalities.text.generation.loop`, with its logits processors and stop rules)
and the forecast roll-out of the series base class. Training and evaluation are vectorised over positions.

Each of those loops calls :func:`check_stop` before every step, so work run inside :func:`stop_when` (a server
abandoning a request past its time limit or after its client left) ends within one step instead of running on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from chainrule.core.contract import AutoregressiveModel


class SamplingStopped(Exception):
    """A sampling loop was abandoned between two steps because its stop check said so."""


#: the stop check of the work running in this thread (each thread has its own context)
_should_stop: ContextVar[Callable[[], bool] | None] = ContextVar("chainrule_should_stop", default=None)


@contextmanager
def stop_when(should_stop: Callable[[], bool]) -> Iterator[None]:
    """Inside this block (in this thread), every sampling loop asks ``should_stop()`` before each step and raises
    :class:`SamplingStopped` once it answers True. No signature between the caller and the loop has to carry it."""
    token = _should_stop.set(should_stop)
    try:
        yield
    finally:
        _should_stop.reset(token)


def check_stop() -> None:
    """Raise :class:`SamplingStopped` when the enclosing :func:`stop_when` check says the work should end."""
    should_stop = _should_stop.get()
    if should_stop is not None and should_stop():
        raise SamplingStopped("sampling was stopped between steps")


def _flat(x: Tensor) -> Tensor:
    """(B, C, *S) -> (B, C, N) view over flat positions."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def position_params(model: AutoregressiveModel, x: Tensor, pos: int, cond: Tensor | None, crop: bool) -> Tensor:
    """Parameters ``(B, P)`` of flat position ``pos`` by re-running the network on the values ``x`` so far — the
    uncached path shared by sampling and entropy coding. With ``crop`` (a ``row_causal`` image model, whose
    outputs in row r depend on rows <= r only) the network runs on the rows up to ``pos`` alone."""
    if crop:
        rows = pos // model.positions[-1] + 1
        return _flat(model.network(model.encode(x[:, :, :rows]), cond))[:, :, pos]
    return _flat(model(x, cond))[:, :, pos]


@torch.no_grad()
def ancestral_sample(
    model: AutoregressiveModel,
    n: int,
    cond: Tensor | None = None,
    x_given: Tensor | None = None,
    known: Tensor | None = None,
    temperature: float = 1.0,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw ``n`` samples position by position in ``model.ordering()``.

    With ``use_cache`` and a model that supports it, each position costs one :meth:`step`; otherwise the
    teacher-forced network is re-run and the next position's parameters read off — for ``row_causal``
    image models only on the rows up to the current one (half the work on average). All paths draw the
    same random numbers in the same order, so they give identical samples under one seed. The arguments are
    those :meth:`AutoregressiveModel.sample` has checked (``check_sample``); call that, not this, with user input.
    """
    device = model.device
    c, shape = model.channels, model.positions
    x = torch.zeros(n, c, *shape, dtype=torch.long, device=device)
    known_flat = None
    if x_given is not None:
        x.copy_(x_given.to(device).long())
        known_flat = known.to(device).reshape(n, -1).bool()
    if cond is not None:
        cond = cond.to(device)
    order = model.ordering().tolist()
    cached = use_cache and model.supports_cache
    crop = use_cache and not cached and model.row_causal and len(shape) == 2
    xf = _flat(x)
    cache = model.init_cache(n, cond) if cached else None
    prev: Tensor | None = None
    was_training = model.training
    model.eval()
    try:
        for pos in order:
            check_stop()
            if cached:
                params, cache = model.step(prev, cache)
            else:
                params = position_params(model, x, pos, cond, crop)
            draw = model.head.sample(params.unsqueeze(-1), temperature=temperature, generator=generator)[..., 0]
            if known_flat is not None:
                keep = known_flat[:, pos].unsqueeze(1)
                draw = torch.where(keep, xf[:, :, pos], draw)
            xf[:, :, pos] = draw
            prev = draw
    finally:
        model.train(was_training)
    return x
