"""Run the mutation check: for each planted bug, a fresh copy of ``src/`` with the bug in it is put first on
``PYTHONPATH`` and only the bug's tests run; the check passes when every bug makes them fail.

The working tree is never modified. Before the bugs, the targeted tests run once on an unmodified copy: a test
that fails without any bug would make every "caught" meaningless.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .catalog import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "chainrule"


class StaleMutant(Exception):
    """A mutant whose ``old`` text no longer occurs exactly once in its file."""


def source_copy(dest: Path) -> Path:
    """A copy of the package under ``dest`` (``dest`` is then the directory to put on ``PYTHONPATH``)."""
    shutil.copytree(PACKAGE, dest / "chainrule", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def plant(mutant: Mutant, tree: Path) -> None:
    path = tree / "chainrule" / mutant.file
    text = path.read_text(encoding="utf-8")
    if text.count(mutant.old) != 1:
        raise StaleMutant(f"{mutant.name}: expected one occurrence of {mutant.old!r} in {mutant.file}, found "
                          f"{text.count(mutant.old)}")
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")


def pytest_on(tree: Path, tests: list[str]) -> subprocess.CompletedProcess:
    """Run ``tests`` from the repository with the package imported from ``tree`` (subprocesses inherit it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
    probe = subprocess.run([sys.executable, "-c", "import chainrule; print(chainrule.__file__)"], env=env, cwd=ROOT,
                           capture_output=True, text=True, check=True)
    if not Path(probe.stdout.strip()).is_relative_to(tree):
        raise RuntimeError(f"the copy is not what gets imported: {probe.stdout.strip()}")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)


def last_lines(res: subprocess.CompletedProcess, n: int = 15) -> str:
    return "\n".join((res.stdout + res.stderr).strip().splitlines()[-n:])


def check(mutants: list[Mutant], baseline: bool = True) -> bool:
    """True when every mutant is caught (its tests fail, pytest exit code 1)."""
    with tempfile.TemporaryDirectory(prefix="chainrule-mutants-") as tmp:
        if baseline:
            tests = sorted({t for m in mutants for t in m.tests})
            print(f"baseline: {len(tests)} test selection(s) on the unmodified source ...", flush=True)
            res = pytest_on(source_copy(Path(tmp) / "baseline"), tests)
            if res.returncode != 0:
                print(f"baseline FAILED: fix the tests before judging mutants\n{last_lines(res)}")
                return False
        caught = True
        for i, mutant in enumerate(mutants):
            tree = source_copy(Path(tmp) / f"m{i}")
            plant(mutant, tree)
            res = pytest_on(tree, list(mutant.tests))
            verdict = {0: "SURVIVED", 1: "caught"}.get(res.returncode, f"ERROR (pytest exit {res.returncode})")
            print(f"{verdict:>10}  {mutant.name}", flush=True)
            if res.returncode != 1:
                caught = False
                print(last_lines(res))
            shutil.rmtree(tree)
        return caught


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutations", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run on the unmodified source")
    args = parser.parse_args(argv)
    if args.list:
        for m in MUTANTS:
            print(f"{m.name}: {m.file} -> {', '.join(m.tests)}")
        return 0
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    ok = check(chosen, baseline=not args.no_baseline)
    print("all mutants caught" if ok else "mutation check FAILED")
    return 0 if ok else 1
