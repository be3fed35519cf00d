"""A micro-batcher: requests for one model arriving within a few milliseconds share one forward pass.

Each request submits a list of examples; the batcher concatenates the examples of the requests waiting
(up to ``max_examples``), runs ``fn`` once on all of them in the worker pool and hands each request its
own slice of the results. Batching must not change a request's answer, so ``fn`` must treat examples
independently (a log-likelihood does). If a batch fails, its requests are retried one by one, so one bad
request cannot fail the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chainrule.serve.worker import Deadline, RequestTimeout, Worker


@dataclass
class _Pending:
    examples: Sequence[Any]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Collect requests for ``wait_s`` seconds after the first one, then run ``fn(examples) -> results``."""

    def __init__(self, fn: Callable[[list[Any]], list[Any]], worker: Worker, max_examples: int = 256,
                 wait_s: float = 0.005) -> None:
        self.fn, self.worker = fn, worker
        self.max_examples, self.wait_s = max_examples, wait_s
        self.queue: asyncio.Queue[_Pending] | None = None
        self.task: asyncio.Task | None = None
        self.batches = 0  # forward passes run (for tests and stats)
        self.requests = 0

    async def submit(self, examples: Sequence[Any], deadline: Deadline) -> list[Any]:
        """The results for ``examples`` (one per example), computed together with other waiting requests."""
        if self.task is None or self.task.done():
            self.queue = asyncio.Queue()
            self.task = asyncio.get_running_loop().create_task(self._loop())
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(_Pending(list(examples), fut))
        try:
            return await asyncio.wait_for(fut, max(deadline.remaining(), 0.0))  # cancels fut on timeout
        except asyncio.TimeoutError:
            raise RequestTimeout(deadline.seconds) from None

    async def _loop(self) -> None:
        assert self.queue is not None
        carry: _Pending | None = None
        while True:
            first = carry or await self.queue.get()
            carry = None
            batch, size = [first], len(first.examples)
            await asyncio.sleep(self.wait_s)  # let concurrent requests arrive
            while not self.queue.empty():
                nxt = self.queue.get_nowait()
                if size + len(nxt.examples) > self.max_examples:
                    carry = nxt
                    break
                batch.append(nxt)
                size += len(nxt.examples)
            await self._run(batch)

    async def _run(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.requests += len(batch)
        try:
            results = await self._compute([e for p in batch for e in p.examples])
        except Exception as e:
            if len(batch) == 1:
                return self._settle(batch[0], error=e)
            for p in batch:  # isolate the failure: each request on its own
                try:
                    self._settle(p, await self._compute(list(p.examples)))
                except Exception as err:  # handed to the request that caused it
                    self._settle(p, error=err)
            return
        start = 0
        for p in batch:
            self._settle(p, results[start:start + len(p.examples)])
            start += len(p.examples)

    async def _compute(self, examples: list[Any]) -> list[Any]:
        results = await asyncio.wrap_future(self.worker.submit(self.fn, examples))
        if len(results) != len(examples):
            raise RuntimeError(f"batched function returned {len(results)} results for {len(examples)} examples")
        return results

    @staticmethod
    def _settle(p: _Pending, results: Any = None, error: BaseException | None = None) -> None:
        if p.future.done():  # the request gave up (time limit)
            return
        if error is not None:
            p.future.set_exception(error)
        else:
            p.future.set_result(results)
