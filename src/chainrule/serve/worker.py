"""Model work off the event loop: a thread pool, ``torch.inference_mode`` and per-request time limits.

Every call runs in the pool so the event loop keeps answering (``/healthz`` stays fast under load). A
generation (streamed or not) advances in slices of about 10 ms per pool task (at least one token), so
concurrent generations interleave fairly instead of each holding a thread for its whole length, short
requests are not stuck behind long ones, and a generation past its deadline stops within a slice. Tokens
are still streamed one event each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import torch

T = TypeVar("T")
#: how long one pool task may advance a generation before handing the thread to the next request
STEP_SLICE_S = 0.01


class RequestTimeout(Exception):
    """A request ran past the server's time limit (answered with 504)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request exceeded the server's time limit of {seconds:g} s; "
                         "ask for less work (fewer tokens or samples)")


class Deadline:
    """The moment a request must be finished by."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()


def _advance(it: Iterator[T], budget_s: float) -> tuple[list[T], bool]:
    """Items of ``it`` for about ``budget_s`` seconds (at least one step); True once it is exhausted."""
    items: list[T] = []
    stop_at = time.perf_counter() + budget_s
    for item in it:  # leaving the loop early does not close the iterator
        items.append(item)
        if time.perf_counter() >= stop_at:
            return items, False
    return items, True


def _inference(fn: Callable[..., T], *args: Any) -> T:
    with torch.inference_mode():
        return fn(*args)


class Worker:
    """A fixed thread pool for model calls."""

    def __init__(self, threads: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="chainrule-model")

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self.pool.submit(_inference, fn, *args)

    async def call(self, deadline: Deadline, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the pool under inference mode; :class:`RequestTimeout` past the deadline
        (the thread finishes its current call)."""
        remaining = deadline.remaining()
        if remaining <= 0:
            raise RequestTimeout(deadline.seconds)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self.submit(fn, *args)), remaining)
        except TimeoutError:
            raise RequestTimeout(deadline.seconds) from None

    async def iterate(self, it: Iterator[T], deadline: Deadline, slice_s: float = STEP_SLICE_S
                      ) -> AsyncIterator[T]:
        """Advance a (model-running) iterator in pool tasks of about ``slice_s`` seconds each, yielding its
        items one by one; closes it when done or abandoned."""
        pending: Future | None = None
        try:
            while True:
                remaining = deadline.remaining()
                if remaining <= 0:
                    raise RequestTimeout(deadline.seconds)
                pending = self.submit(_advance, it, slice_s)
                try:
                    items, done = await asyncio.wait_for(asyncio.wrap_future(pending), remaining)
                except TimeoutError:
                    raise RequestTimeout(deadline.seconds) from None
                for item in items:
                    yield item
                if done:
                    return
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                if pending is None or pending.done():
                    close()
                else:  # still running a step in a thread: close it once that step ends
                    pending.add_done_callback(lambda _: close())

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
