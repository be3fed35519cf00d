"""The architecture as rules a test can check: imports only point down, and adding a model touches one file plus
one registry line (plus its export step, if it has one)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chainrule.modalities.registry import MODELS, model_class

SRC = Path(__file__).resolve().parents[1] / "src" / "chainrule"
MODEL_NAMES = {name for _, name in MODELS}
#: files allowed to name a model: the registry and the export step tables (a model's optional export step)
NAMING_ALLOWED = {"modalities/registry.py", "export/steps.py", "export/forecast.py", "export/plan.py"}


def modules() -> list[tuple[str, ast.Module]]:
    return [(p.relative_to(SRC).as_posix(), ast.parse(p.read_text(encoding="utf-8"), filename=str(p)))
            for p in sorted(SRC.rglob("*.py"))]


def imported(tree: ast.Module) -> set[str]:
    """Every ``chainrule...`` module a file imports, at top level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chainrule"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("chainrule"))
    return out


def layer_violations(path: str, deps: set[str]) -> list[str]:
    """Imports that point up (or sideways between modalities) for a file at ``path`` (relative to the package)."""
    above_modalities = ("chainrule.api", "chainrule.runs", "chainrule.cli", "chainrule.serve", "chainrule.export",
                        "chainrule.edge", "chainrule.convert", "chainrule.demo")
    bad = []
    for dep in sorted(deps):
        if path.startswith("core/") and not dep.startswith("chainrule.core"):
            bad.append(dep)  # the core knows no modality and no entry point
        elif path.startswith("modalities/") and dep.startswith(above_modalities):
            bad.append(dep)
        elif path.startswith("modalities/") and path.count("/") >= 2:
            own = "chainrule.modalities." + path.split("/")[1]
            if (dep.startswith("chainrule.modalities") and not dep.startswith(own)
                    and not dep.startswith("chainrule.modalities.registry")):
                bad.append(dep)  # one modality never reaches into another (the registry is the one shared table)
            if "/models/" in path and dep.startswith(("chainrule.core.training", "chainrule.core.evaluation")):
                bad.append(dep)  # a model file never imports training code
            if "/data/" in path and ".models" in dep:
                bad.append(dep)  # data code never imports models
        elif path.startswith("edge/") and not dep.startswith(("chainrule.edge", "chainrule.core.console",
                                                              "chainrule.core.limits")):
            bad.append(dep)  # the edge runtime stays torch-free
    return bad


def test_imports_only_point_down():
    found = {path: bad for path, tree in modules() if (bad := layer_violations(path, imported(tree)))}
    assert not found, f"imports that point up or across modalities: {found}"


def test_the_layer_check_can_fail():
    """The rule itself catches the bugs it guards against."""
    assert layer_violations("core/training/trainer.py", {"chainrule.modalities.image.data.base"})
    assert layer_violations("modalities/series/models/lstm.py", {"chainrule.modalities.text.models.transformer"})
    assert layer_violations("modalities/text/models/rnn_lm.py", {"chainrule.core.training.trainer"})
    assert layer_violations("modalities/image/data/mnist.py", {"chainrule.modalities.image.models.made"})
    assert layer_violations("edge/text.py", {"chainrule.core.sampling"})
    assert not layer_violations("modalities/series/models/transformer.py", {"chainrule.core.nn.attention"})


def name_dispatch(tree: ast.Module) -> set[str]:
    """Model names used to decide something: compared against, listed in a container, or used as a dict key."""
    hits: set[str] = set()
    for node in ast.walk(tree):
        consts: list[ast.AST] = []
        if isinstance(node, ast.Compare):
            consts = [node.left, *node.comparators]
        elif isinstance(node, ast.Dict):
            consts = [k for k in node.keys if k is not None]
        for c in consts:
            for sub in ast.walk(c):
                if isinstance(sub, ast.Constant) and sub.value in MODEL_NAMES:
                    hits.add(sub.value)
    return hits


def test_no_dispatch_on_model_names_outside_the_registry():
    """Only the registry and the export step tables branch on a model's name; everything else asks the model
    (its modality, head, ``supports_cache``, ...), so a new model needs no edit elsewhere."""
    found = {}
    for path, tree in modules():
        if path in NAMING_ALLOWED or path.startswith("modalities/") and "/models/" in path:
            continue
        hits = name_dispatch(tree)
        if hits:
            found[path] = sorted(hits)
    assert not found, f"model names used to dispatch outside the registry: {found}"


def test_the_dispatch_check_can_fail():
    assert name_dispatch(ast.parse("if model.name == 'pixelcnn':\n    pass\n")) == {"pixelcnn"}
    assert name_dispatch(ast.parse("STEPS = {'hybrid': 1}\n")) == {"hybrid"}
    assert not name_dispatch(ast.parse("print('pixelcnn')\n"))


@pytest.mark.parametrize("key", sorted(MODELS))
def test_each_model_is_one_file_in_its_modality(key):
    modality, name = key
    cls = model_class(name, modality)
    path = Path(cls.__module__.replace(".", "/")).as_posix()
    assert path.startswith(f"chainrule/modalities/{modality}/models/"), path
    assert cls.name == name and cls.modality == modality
    assert isinstance(cls.TINY, dict), f"{name} needs TINY options for the generic tests"
    assert cls.likelihood in ("exact", "bound") or (cls.likelihood, cls.family) == ("none", "gan")
