"""Admission control: before its work starts, a request reserves a share of a :class:`Budget` (its estimated
memory of the server's memory budget; a forecast also one of the forecast slots).

Reservations are granted first come, first served while the total stays within the capacity; a request that
does not fit waits in line, and one still waiting at its deadline is refused with 503 (:class:`ServerBusy`). A
reservation is handed back when the request is over *and* its model work has stopped (``Job.when_idle``), so
work that was abandoned but is still finishing its current step keeps counting until it really ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chainrule.serve.worker import Job


class ServerBusy(Exception):
    """No room for the request before its deadline (answered with 503 and ``Retry-After``)."""


class Budget:
    """``capacity`` units (bytes, slots) shared by concurrent requests; ``used`` is what is reserved now."""

    def __init__(self, capacity: int, what: str) -> None:
        self.capacity, self.what = max(1, int(capacity)), what
        self.used = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def reserve(self, amount: int, job: Job) -> AsyncIterator[None]:
        """Hold ``amount`` while the block runs; on leaving, stop the job's work and hand the amount back once
        that work has ended. :class:`ServerBusy` when it cannot be granted before the job's deadline."""
        amount = min(max(0, int(amount)), self.capacity)  # larger requests are refused before they get here
        await self._acquire(amount, job)
        try:
            yield
        finally:
            job.stop()
            job.when_idle(lambda: self._release(amount))

    async def _acquire(self, amount: int, job: Job) -> None:
        if not self._waiting and self.used + amount <= self.capacity:
            self.used += amount
            return
        entry = (amount, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(entry[1]), max(job.deadline.remaining(), 0.0))
        except BaseException as e:
            if entry in self._waiting:  # not granted: leave the line (the next in line may fit now)
                self._waiting.remove(entry)
                self._grant_waiting()
            else:  # granted just as it gave up
                self._release(amount)
            if isinstance(e, asyncio.TimeoutError):
                raise ServerBusy(f"server busy: its {self.what} is taken by other requests; retry later") from None
            raise

    def _release(self, amount: int) -> None:
        self.used -= amount
        self._grant_waiting()

    def _grant_waiting(self) -> None:
        """Grant waiting reservations in order while the first in line fits (no overtaking, so none starves)."""
        while self._waiting and self.used + self._waiting[0][0] <= self.capacity:
            amount, future = self._waiting.popleft()
            self.used += amount
            future.set_result(None)
