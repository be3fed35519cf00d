"""Mutation check: plant each known bug in a copy of the source tree and require the targeted tests to fail.

``make mutants`` (or ``python -m tests.mutations [NAME ...]``) runs it; it is too slow for ``make test``. The bugs
are listed in :mod:`tests.mutations.catalog`; ``tests/test_mutation_catalog.py`` keeps the list from going stale.
"""
