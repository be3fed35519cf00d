"""Where a bench script's results go: ``bench/results/NAME[-quick].json`` and ``.md``, written once here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def result_path(name: str, quick: bool, ext: str = "json") -> Path:
    return RESULTS / f"{name}{'-quick' if quick else ''}.{ext}"


def write_results(name: str, quick: bool, payload: dict[str, Any], table: str) -> None:
    """Write the JSON payload and the markdown table, and print the table."""
    RESULTS.mkdir(exist_ok=True)
    result_path(name, quick).write_text(json.dumps(payload, indent=2) + "\n")
    result_path(name, quick, "md").write_text(table + "\n")
    print(table)
