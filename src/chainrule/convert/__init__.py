"""Importers: turn other libraries' pretrained models into chainrule run directories."""

from __future__ import annotations

from chainrule.convert.gpt2 import import_gpt2

#: format name (as in ``chainrule import FORMAT DIR``) -> importer(src_dir, run_dir) -> Run
IMPORTERS = {"gpt2": import_gpt2}

__all__ = ["IMPORTERS", "import_gpt2"]
