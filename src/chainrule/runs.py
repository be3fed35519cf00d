"""Runs of every kind: the shared run directory (:mod:`chainrule.core.runs.run`) plus rebuilding the model from
the one registry (keyed by the run kind's modality) and loading its weights."""

from __future__ import annotations

from pathlib import Path

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.runs import run as base
from chainrule.core.runs.run import default_run_dir
from chainrule.modalities.registry import build_model

__all__ = ["Run", "default_run_dir", "open_run"]


class Run(base.Run):
    """A run whose model the registry rebuilds from ``config.yaml``."""

    def build_model(self) -> AutoregressiveModel:
        spec, m = self.spec, dict(self.config["model"])
        name = m.pop("name")
        head = m.pop("head", None)
        head_options = m.pop("head_options", None)
        m.pop("conditional", None)
        return build_model(name, spec.get("event_shape"), spec.get("levels", 0),
                           num_classes=spec.get("num_classes", 0), head=head, head_options=head_options,
                           modality=self.kind.modality, **m)

    def load_model(self, device: str | None = None) -> AutoregressiveModel:
        from chainrule.core.training.checkpoint import load_weights

        model = self.build_model()
        load_weights(model, self.weights_path())
        model.eval()
        if device:
            model.to(device)
        return model


def open_run(path: str | Path) -> Run:
    """Open an existing run directory, with clear errors for a missing or damaged one."""
    return Run(*base.read_run_config(path))
