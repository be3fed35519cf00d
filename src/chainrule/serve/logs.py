"""Log lines an attacker can repeat at will, rate-limited so they cannot fill the disk.

Running out of file descriptors makes the event loop log a traceback for every failed ``accept`` and uvicorn
warns about every refused or malformed request; under a flood that was 70 MB of log in 40 s. The filter lets
one line of each kind through per interval and says how many like it it held back.
"""

from __future__ import annotations

import logging
import threading
import time

#: substrings that mark a repeatable line, each limited on its own
NOISY = ("Too many open files", "out of system resource", "Exceeded concurrency limit",
         "Invalid HTTP request received", "connection closed:", "closed a streamed reply")
#: the loggers they come from (a logger's filter sees only its own records, not its children's)
LOGGERS = ("", "asyncio", "uvicorn", "uvicorn.error", "chainrule.serve")


class RateLimit(logging.Filter):
    """Let through one record of each kind in ``kinds`` per ``interval_s`` seconds; the next one let through
    says how many were held back."""

    def __init__(self, interval_s: float = 10.0, kinds: tuple[str, ...] = NOISY) -> None:
        super().__init__()
        self.interval_s, self.kinds = interval_s, kinds
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]}"
        kind = next((k for k in self.kinds if k in text), None)
        if kind is None:
            return True
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -self.interval_s) < self.interval_s:
                self._held[kind] = self._held.get(kind, 0) + 1
                return False
            self._last[kind], held = now, self._held.pop(kind, 0)
        if held:
            record.msg, record.args = f"{record.getMessage()} ({held} more like this held back)", ()
        return True


def rate_limit_noisy_lines(interval_s: float = 10.0) -> RateLimit:
    """Install one shared :class:`RateLimit` on the server's loggers (after uvicorn configured logging)."""
    limit = RateLimit(interval_s)
    for name in LOGGERS:
        logging.getLogger(name).addFilter(limit)
    return limit
