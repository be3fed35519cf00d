"""The mutation check's planted bugs still apply to the source and name tests that exist, so the check cannot go
stale silently when the code they patch is edited. (The check itself, ``make mutants``, is too slow for here.)"""

from __future__ import annotations

import pytest
from mutations.catalog import MUTANTS, Mutant
from mutations.run import PACKAGE, ROOT


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_each_planted_bug_still_applies(mutant: Mutant) -> None:
    source = (PACKAGE / mutant.file).read_text(encoding="utf-8")
    assert source.count(mutant.old) == 1, f"{mutant.name}: its old text must occur exactly once in {mutant.file}"
    assert mutant.new != mutant.old and mutant.tests
    for node in mutant.tests:
        path, _, name = node.partition("::")
        assert (ROOT / path).is_file(), node
        if name:
            assert f"def {name.split('[')[0]}(" in (ROOT / path).read_text(encoding="utf-8"), node


def test_mutant_names_are_unique() -> None:
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names))
