"""Model work off the event loop: a thread pool, ``torch.inference_mode``, time limits and cancellation.

Every call runs in the pool so the event loop keeps answering (``/healthz`` stays fast under load). A
generation (streamed or not) advances in slices of about 10 ms per pool task (at least one token), so
concurrent generations interleave fairly instead of each holding a thread for its whole length, short
requests are not stuck behind long ones, and a generation past its deadline stops within a slice. Tokens
are still streamed one event each.

A thread cannot be killed, so abandoned work is stopped from inside: each request's :class:`Job` carries a
stop flag and its deadline, and the model work runs under ``chainrule.core.sampling.stop_when(job.should_stop)``,
which every sampling loop (token generation, image sampling, forecast roll-out) checks before each step. A
request that times out or whose client leaves therefore stops computing within one step, and whatever it
reserved (memory, a forecast slot) is handed back only once its pool tasks have ended (:meth:`Job.when_idle`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from chainrule.core.sampling import SamplingStopped, stop_when

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


class Job:
    """One request's model work: its deadline, a stop flag the model threads read, and its running pool tasks.

    ``should_stop`` is called from model threads between steps; everything else runs on the event loop.
    """

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self._stop = threading.Event()
        self._running: set[Future] = set()
        self._on_idle: list[Callable[[], None]] = []
        self._loop = asyncio.get_running_loop()

    def should_stop(self) -> bool:
        return self._stop.is_set() or self.deadline.remaining() <= 0

    def stop(self) -> None:
        """Ask the job's model work to end at its next step (idempotent)."""
        self._stop.set()

    def track(self, future: Future) -> None:
        """Count ``future`` as this job's work until it finishes."""
        self._running.add(future)
        future.add_done_callback(self._finished_in_thread)

    def _finished_in_thread(self, future: Future) -> None:
        if not self._loop.is_closed():  # a closed loop has no reservations left to hand back
            self._loop.call_soon_threadsafe(self._finished, future)

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the event loop) once no pool task of this job is running: now, or when the last
        one ends."""
        if self._running:
            self._on_idle.append(callback)
        else:
            callback()

    def _finished(self, future: Future) -> None:
        self._running.discard(future)
        if not self._running:
            callbacks, self._on_idle = self._on_idle, []
            for callback in callbacks:
                callback()


def _advance(it: Iterator[T], budget_s: float) -> tuple[list[T], bool]:
    """Items of ``it`` for about ``budget_s`` seconds (at least one step); True once it is exhausted."""
    items: list[T] = []
    stop_at = time.perf_counter() + budget_s
    for item in it:  # leaving the loop early does not close the iterator
        items.append(item)
        if time.perf_counter() >= stop_at:
            return items, False
    return items, True


class Worker:
    """A fixed thread pool for model calls; ``busy`` counts the tasks computing right now."""

    def __init__(self, threads: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="chainrule-model")
        self.busy = 0
        self._lock = threading.Lock()

    def _run(self, job: Job | None, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            self.busy += 1
        try:
            with torch.inference_mode():
                if job is None:
                    return fn(*args)
                if job.should_stop():  # abandoned while queued: do not start
                    raise SamplingStopped("the request ended before its work started")
                with stop_when(job.should_stop):
                    return fn(*args)
        finally:
            with self._lock:
                self.busy -= 1

    def submit(self, fn: Callable[..., T], *args: Any, job: Job | None = None) -> Future[T]:
        """Run ``fn(*args)`` in the pool under inference mode (and, with ``job``, under its stop check)."""
        future = self.pool.submit(self._run, job, fn, *args)
        if job is not None:
            job.track(future)
        return future

    async def call(self, job: Job, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool; :class:`RequestTimeout` past the job's deadline, after which the work stops
        at its next step."""
        deadline = job.deadline
        if deadline.remaining() <= 0:
            raise RequestTimeout(deadline.seconds)
        future = self.submit(fn, *args, job=job)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), deadline.remaining())
        except (asyncio.TimeoutError, SamplingStopped):
            raise RequestTimeout(deadline.seconds) from None
        finally:
            if not future.done():  # timed out or the request was cancelled: the thread stops at its next step
                job.stop()

    async def iterate(self, it: Iterator[T], job: Job, slice_s: float = STEP_SLICE_S) -> AsyncIterator[T]:
        """Advance a (model-running) iterator in pool tasks of about ``slice_s`` seconds each, yielding its
        items one by one; closes it when done or abandoned."""
        deadline = job.deadline
        pending: Future | None = None
        try:
            while True:
                if deadline.remaining() <= 0:
                    raise RequestTimeout(deadline.seconds)
                pending = self.submit(_advance, it, slice_s, job=job)
                try:
                    items, done = await asyncio.wait_for(asyncio.wrap_future(pending), deadline.remaining())
                except (asyncio.TimeoutError, SamplingStopped):
                    raise RequestTimeout(deadline.seconds) from None
                for item in items:
                    yield item
                if done:
                    return
        finally:
            close = getattr(it, "close", None)
            if pending is None or pending.done():
                if close is not None:
                    close()
            else:  # still running a step in a thread: stop it there, close the iterator once that step ends
                job.stop()
                if close is not None:
                    pending.add_done_callback(lambda _: close())

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
