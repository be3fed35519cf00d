"""Running a parsed command-line command: user errors as one line, Ctrl-C and closed pipes handled.

Shared by ``chainrule`` and the torch-free ``chainrule-edge``, so it imports nothing beyond the standard
library.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable

#: failures of the machine rather than of the command (disk full, read-only file system, no permission): one line
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                                errno.EIO})


def run_command(prog: str, parser: argparse.ArgumentParser, args: argparse.Namespace,
                command: Callable[[argparse.Namespace], None], user_errors: tuple[type[Exception], ...]) -> int:
    """Run ``command(args)`` and return the process exit code: 2 without a command (after printing the
    help), 1 for a user error or a refused file operation (printed as ``PROG: error: MESSAGE``), 130 on
    Ctrl-C, 0 otherwise (including when the output pipe was closed early, e.g. by ``head``)."""
    if not args.command:
        parser.print_help()
        return 2
    try:
        command(args)
    except user_errors as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise
        print(f"{prog}: error: {f'{e.filename}: ' if e.filename else ''}{e.strerror}", file=sys.stderr)
        return 1
    return 0
