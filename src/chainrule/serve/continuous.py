"""Continuous batching for text generation: concurrent generate requests share batched decode steps.

Each served text model whose cache a batch can hold (:func:`~chainrule.modalities.text.generation.batch.
batchable`: the Transformer, RNN and hybrid language models) gets a :class:`ContinuousBatcher`: one decode thread
advancing a :class:`~chainrule.modalities.text.generation.batch.DecodeBatch`. A request's prompt is prefilled in
the worker pool (under its time limit and stop check), then its cache joins the batch between two steps; every
step draws each request's tokens with its own processors, seed and stop strings and runs one model ``step`` over
all rows; a request leaves between steps when it is done, stopped (time limit, client gone) or its stream was
abandoned. At most ``max_rows`` samples decode together; more wait for rows in arrival order (a request of more
samples than that decodes once the batch is empty). A request's memory reservation is handed back only once its
rows have left the batch.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from typing import Any

import torch

from chainrule.modalities.text.generation.batch import DecodeBatch, Generation
from chainrule.modalities.text.generation.config import GenerationConfig
from chainrule.modalities.text.generation.text import TokenDecoder
from chainrule.serve.worker import Job, RequestTimeout, Worker

log = logging.getLogger("chainrule.serve")
#: seconds the decode thread waits for work before it ends (a new request starts it again)
IDLE_S = 1.0
_END = object()


class _Member:
    """A generation in (or waiting for) the batch, with where its pieces go."""

    def __init__(self, gen: Generation, job: Job, queue: asyncio.Queue, loop: asyncio.AbstractEventLoop,
                 finished: Future, whole: bool) -> None:
        self.gen, self.job, self.queue, self.loop, self.finished = gen, job, queue, loop, finished
        #: hand on the whole text once at the end (a plain reply) instead of each step's pieces (a stream)
        self.held: list[str] | None = [""] * gen.num_rows if whole else None


class ContinuousBatcher:
    """The decode loop of one text model; :meth:`stream` is a request's view of it."""

    def __init__(self, model: Any, worker: Worker, max_rows: int) -> None:
        self.model, self.worker = model, worker
        self.batch = DecodeBatch(model, max_rows)
        self.steps = 0  # batched steps run (for tests and stats)
        self.most_rows = 0  # the largest batch seen
        self.joined = 0  # generations that joined the batch
        self._waiting: deque[_Member] = deque()
        self._members: dict[int, _Member] = {}  # id(generation) -> member
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    async def stream(self, tokenizer: TokenDecoder, prompt_ids: Sequence[int], cfg: GenerationConfig, job: Job,
                     whole: bool = False) -> AsyncIterator[list[str]]:
        """The per-step text pieces of one generation (as :func:`~chainrule.modalities.text.generation.text.
        stream_texts` yields them), or with ``whole`` its whole texts once at the end (a plain reply needs no
        pieces, and the event loop then wakes once per request instead of once per token);
        :class:`RequestTimeout` past the job's deadline."""
        queue: asyncio.Queue = asyncio.Queue()
        ended = False
        try:
            gen = await self.worker.call(job, Generation, self.model, tokenizer, prompt_ids, cfg)
            if gen.done:  # nothing to generate
                ended = True
                yield gen.flush()
                return
            finished: Future = Future()
            job.track(finished)  # the request's reservation waits until its rows have left the batch
            self._enqueue(_Member(gen, job, queue, asyncio.get_running_loop(), finished, whole))
            while True:
                remaining = job.deadline.remaining()
                if remaining <= 0:
                    raise RequestTimeout(job.deadline.seconds)
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except asyncio.TimeoutError:
                    raise RequestTimeout(job.deadline.seconds) from None
                if item is _END:
                    ended = True
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if not ended:  # abandoned (time limit, client gone, error): leave the batch at the next step
                job.stop()
                self._wake()

    def _enqueue(self, member: _Member) -> None:
        with self._cond:
            self._waiting.append(member)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="chainrule-decode", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        with torch.inference_mode():
            while self._admit():
                self._drop_stopped()
                if not self.batch.members:
                    continue
                try:
                    emitted = self.batch.advance()
                except Exception as e:  # a failed step fails its batch, not the server
                    log.exception("batched decode step failed")
                    for member in list(self._members.values()):
                        self._end(member, e)
                    self.batch = DecodeBatch(self.model, self.batch.max_rows)
                    continue
                self.steps += 1
                self._deliver(emitted)

    def _admit(self) -> bool:
        """Move waiting generations that fit into the batch; False (the thread ends) after ``IDLE_S`` idle."""
        with self._cond:
            if not self._waiting and not self.batch.members:
                self._cond.wait(IDLE_S)
                if not self._waiting and not self.batch.members:
                    self._thread = None
                    return False
            while self._waiting and self.batch.fits(self._waiting[0].gen):
                member = self._waiting.popleft()
                if member.job.should_stop():
                    self._end(member, _stopped(member))
                    continue
                try:
                    self.batch.join(member.gen)
                except Exception as e:  # e.g. no memory for the rows: this request fails, the batch goes on
                    log.exception("joining the decode batch failed")
                    self._end(member, e)
                    continue
                self.joined += 1
                self._members[id(member.gen)] = member
            stale = [m for m in self._waiting if m.job.should_stop()]
            for member in stale:
                self._waiting.remove(member)
                self._end(member, _stopped(member))
        self.most_rows = max(self.most_rows, self.batch.rows)
        return True

    def _drop_stopped(self) -> None:
        for gen in list(self.batch.members):
            member = self._members[id(gen)]
            if member.job.should_stop():
                self.batch.leave(gen)
                self._end(member, _stopped(member))

    def _deliver(self, emitted: list[tuple[Generation, list[list[str]]]]) -> None:
        """Hand each generation its pieces (one wake-up of each event loop per step); end the finished ones."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue, Any]]] = {}
        for gen, pieces in emitted:
            member = self._members[id(gen)]
            items = by_loop.setdefault(member.loop, [])
            if member.held is None:
                items += [(member.queue, p) for p in pieces]
            else:
                for p in pieces:
                    member.held = [a + b for a, b in zip(member.held, p, strict=True)]
            if gen.done:
                if member.held is not None:
                    items.append((member.queue, member.held))
                items.append((member.queue, _END))
                del self._members[id(gen)]
                member.finished.set_result(None)
        for loop, items in by_loop.items():
            _call_soon(loop, _put_all, items)

    def _end(self, member: _Member, error: BaseException | None = None) -> None:
        self._members.pop(id(member.gen), None)
        _call_soon(member.loop, _put_all, [(member.queue, _END if error is None else error)])
        if not member.finished.done():
            member.finished.set_result(None)


def _stopped(member: _Member) -> RequestTimeout:
    """What a stopped generation's reader (if still there: the time limit passed) raises."""
    return RequestTimeout(member.job.deadline.seconds)


def _put_all(items: list[tuple[asyncio.Queue, Any]]) -> None:
    for queue, item in items:
        queue.put_nowait(item)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
    if not loop.is_closed():  # a closed loop has no reader left
        loop.call_soon_threadsafe(fn, *args)
