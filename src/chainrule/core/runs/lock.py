"""One writer per run directory: training, resuming, forecast training and importing hold an exclusive
``flock`` on ``RUN/.lock`` while they write, so a second writer fails at once with the holder's PID instead of
interleaving checkpoints and configs. Readers (eval, sample, serve) take no lock. The kernel drops the lock
when its process dies, so a killed run is never left locked."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chainrule.core.errors import CheckpointError, RunLockedError
from chainrule.core.runs.files import LOCK_FILE

try:
    import fcntl
except ImportError:  # no flock (Windows): runs are not locked there
    fcntl = None  # type: ignore[assignment]


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"PID {pid}" if pid.isdigit() else "PID unknown"


def _acquire(run_dir: Path) -> int:
    """An open descriptor of ``RUN/.lock`` holding its exclusive lock; :class:`RunLockedError` when held."""
    lock_path = run_dir / LOCK_FILE
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(f"{run_dir}: another chainrule process ({_holder(lock_path)}) is writing this run; "
                                 "wait for it to finish or choose another --run") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            linked = os.stat(lock_path)
        except FileNotFoundError:
            linked = None
        held = os.fstat(fd)
        if linked is not None and (linked.st_dev, linked.st_ino) == (held.st_dev, held.st_ino):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            return fd
        os.close(fd)  # the previous holder removed the file between our open and flock: lock the new one


@contextmanager
def run_lock(run_dir: str | os.PathLike, *, create: bool = False, enabled: bool = True) -> Iterator[None]:
    """Hold ``run_dir``'s writer lock for the ``with`` block.

    ``create``: make a missing directory (a new run) and remove it again if the block leaves it empty; otherwise
    a missing directory is a :class:`CheckpointError`. ``enabled=False`` takes no lock (ranks other than 0 under
    torchrun, whose rank 0 holds it).
    """
    path = Path(run_dir)
    if not enabled or fcntl is None:
        yield
        return
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path}: not a directory")
    made = not path.exists()
    if made and not create:
        raise CheckpointError(f"{path}: run directory not found")
    path.mkdir(parents=True, exist_ok=True)
    try:
        fd = _acquire(path)
        try:
            yield
        finally:
            (path / LOCK_FILE).unlink(missing_ok=True)  # while still held: a writer that opened it retries
            os.close(fd)
    finally:
        if made and not any(path.iterdir()):
            path.rmdir()
