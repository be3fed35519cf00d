"""Per-example log-likelihood and per-position surprisal from any run: ``chainrule score`` and ``api.score``.

An autoregressive model gives every position its own ``-log p(x_t | x_<t)``, so a run scores whole examples
(outliers, out-of-distribution inputs) and shows *where* an example surprises it:

* image runs: PNG files or a folder of them, discretised to the run's levels exactly as compression reads them
  (:mod:`chainrule.modalities.image.codec`); an image larger than the run's event shape is cut into tiles, each
  scored on its own; a class-conditional run scores each tile under its most likely class;
* text runs: a text file, one example per line (empty lines skipped), tokenised by the run's tokenizer; a line
  longer than the model's context is scored in consecutive windows of ``max_len`` tokens;
* series runs: a CSV with the run's columns, scored by the one-step-ahead surprisal of
  :mod:`chainrule.modalities.series.anomaly`.

The per-position surprisal is the model's own ``-log_prob_positions`` (nats); ``bits_per_dim`` divides the
example's NLL by its dimensions (sub-pixels, tokens, scored steps) and ``ln 2``.

    >>> from chainrule import api
    >>> api.score("runs/mnist-pixelcnn", "digits/").sort_values("bits_per_dim").tail()
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from chainrule.core.errors import DataError
from chainrule.core.runs.files import TOKENIZER_FILE
from chainrule.core.runs.kind import RunKind
from chainrule.runs import Run, open_run

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Scored", "score", "score_examples"]


@dataclass(frozen=True)
class Scored:
    """One scored example: its name, per-position surprisal in nats (NaN where unscored) and, for text, the
    token strings the positions stand for."""

    name: str
    surprisal: np.ndarray
    tokens: tuple[str, ...] = ()
    #: the model's ``log_prob`` of the example where it differs from the positions' sum (a mask ensemble)
    log_likelihood: float | None = None

    @property
    def dims(self) -> int:
        return int(np.isfinite(self.surprisal).sum())

    @property
    def nll(self) -> float:
        return float(np.nansum(self.surprisal)) if self.log_likelihood is None else -self.log_likelihood

    def row(self, channels: int) -> dict[str, Any]:
        dims = self.dims * channels
        return {"example": self.name, "log_likelihood": -self.nll, "nll_nats": self.nll, "dims": dims,
                "bits_per_dim": self.nll / max(dims, 1) / math.log(2), "surprisal": self.surprisal.tolist()}


def score(run: Run | str | Path, inputs: str | Path, heatmap: str | Path | None = None,
          background: Run | str | Path | None = None, typicality: int = 0, alpha: float = 0.01) -> pd.DataFrame:
    """One row per example: ``example``, ``log_likelihood`` and ``nll_nats`` (nats), ``dims``, ``bits_per_dim``
    and ``surprisal`` (the per-position list). With ``heatmap``, a surprisal map per image (PNG) or one HTML page
    of highlighted tokens (text) is written into that folder.

    Out-of-distribution columns (:mod:`chainrule.ood`): with a ``background`` run (trained on perturbed inputs by
    :func:`chainrule.ood.train_background`), ``background_log_likelihood`` and ``likelihood_ratio`` (low = out of
    distribution); with ``typicality=N``, the typicality test fitted on ``N`` examples of the run's validation
    split: ``typicality_distance`` (``|bits/dim - entropy|``, in bits/dim) and ``atypical`` (rejected at
    ``alpha``)."""
    import pandas as pd

    from chainrule import ood

    trained = run if isinstance(run, Run) else open_run(run)
    scored, channels = score_examples(trained, Path(inputs))
    if heatmap is not None:
        write_heatmaps(scored, Path(heatmap))
    frame = pd.DataFrame([s.row(channels) for s in scored],
                         columns=["example", "log_likelihood", "nll_nats", "dims", "bits_per_dim", "surprisal"])
    if background is not None:
        bg = background if isinstance(background, Run) else open_run(background)
        ood.check_background(trained, bg)
        bg_scored, _ = score_examples(bg, Path(inputs))
        frame["background_log_likelihood"] = [-s.nll for s in bg_scored]
        frame["likelihood_ratio"] = ood.likelihood_ratio(frame["log_likelihood"], frame["background_log_likelihood"])
    if typicality:
        test = ood.Typicality.fit(ood.held_out_bits_per_dim(trained, typicality), batch=1, alpha=alpha)
        frame["typicality_distance"] = test.distance(frame["bits_per_dim"].to_numpy())
        frame["atypical"] = frame["typicality_distance"] > test.threshold
    return frame


def score_examples(run: Run, inputs: Path) -> tuple[list[Scored], int]:
    """The scored examples of ``inputs`` and how many channels each scored position holds."""
    if run.kind is RunKind.SERIES:
        return _score_series(run, inputs), 1
    model = run.load_model("cpu").eval()
    if run.kind is RunKind.TEXT:
        return _score_text(model, run, inputs), 1
    return _score_images(model, int(run.spec["levels"]), inputs), model.channels


@torch.inference_mode()
def _score_images(model: Any, levels: int, inputs: Path) -> list[Scored]:
    from chainrule.modalities.image.codec import ImageCodec, untile

    codec = ImageCodec(model, levels)
    out = []
    for picture in codec.read(inputs).items:
        events, known = codec.events(picture)
        x = torch.from_numpy(events)
        labels = best_labels(model, x)
        per_tile = -model.log_prob_positions(x, labels).double().numpy()  # (tiles, H, W)
        width, height = picture.size
        whole = float(model.log_prob(x, labels).double().sum()) if known.all() else None  # no padding to leave out
        out.append(Scored(picture.name, untile(per_tile[:, None], height, width)[0], log_likelihood=whole))
    return out


def best_labels(model: Any, x: torch.Tensor) -> torch.Tensor | None:
    """For a class-conditional model, each example's most likely class (lowest index among ties)."""
    if model.num_classes == 0:
        return None
    scores = torch.stack([model.log_prob(x, torch.full((len(x),), c, dtype=torch.long))
                          for c in range(model.num_classes)], dim=1)
    return scores.argmax(1)


def text_lines(model: Any, tokenizer: Any, inputs: Path) -> list[tuple[str, np.ndarray]]:
    """``(name, token ids)`` of each non-empty line of the file ``inputs`` (name: ``line N``, from 1)."""
    from chainrule.modalities.text.codec import TextCodec

    if not inputs.is_file():
        raise DataError(f"{inputs}: not a file (a text run scores a text file, one example per line)")
    codec = TextCodec(model, tokenizer)
    lines = inputs.read_bytes().split(b"\n")
    return [(f"line {i}", codec.tokens(line.rstrip(b"\r"))[0]) for i, line in enumerate(lines, 1) if line.strip()]


@torch.inference_mode()
def _score_text(model: Any, run: Run, inputs: Path) -> list[Scored]:
    from chainrule.modalities.text.data.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(run.path / TOKENIZER_FILE)
    out = []
    for name, ids in text_lines(model, tokenizer, inputs):
        windows = [torch.from_numpy(ids[lo:lo + model.max_len])[None, None] for lo in range(0, len(ids), model.max_len)]
        surprisal = np.concatenate([-model.log_prob_positions(w)[0].double().numpy() for w in windows])
        tokens = tuple(tokenizer.token_bytes(int(i)).decode("utf-8", "replace") for i in ids)
        out.append(Scored(name, surprisal, tokens, sum(float(model.log_prob(w)[0]) for w in windows)))
    return out


def _score_series(run: Run, inputs: Path) -> list[Scored]:
    from chainrule.modalities.series.anomaly import one_step_log_probs
    from chainrule.modalities.series.api import forecaster_from_run, load_series

    d = run.config.get("data", {})
    ss = load_series(inputs, d.get("time"), d.get("target"), d.get("id"), d.get("covariates") or (), d.get("freq"))
    forecaster = forecaster_from_run(run, "cpu")
    return [Scored(str(sid), -one_step_log_probs(forecaster.model, forecaster.spec, ss, i))
            for i, sid in enumerate(ss.ids)]


# -------------------------------------------------------------------------------------------- heat maps
def write_heatmaps(scored: list[Scored], folder: Path) -> list[Path]:
    """A PNG per image (surprisal per pixel) or one ``surprisal.html`` for text lines; nothing for series."""
    folder.mkdir(parents=True, exist_ok=True)
    if scored and scored[0].tokens:
        path = folder / "surprisal.html"
        path.write_text(text_heatmap(scored), encoding="utf-8")
        return [path]
    if not scored or scored[0].surprisal.ndim != 2:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for s in scored:
        fig, ax = plt.subplots(figsize=(4, 4))
        shown = ax.imshow(s.surprisal, cmap="magma")
        fig.colorbar(shown, ax=ax, label="surprisal (nats)")
        ax.set_title(f"{s.name}: {s.nll / max(s.dims, 1) / math.log(2):.3f} bits/pixel", fontsize=8)
        ax.axis("off")
        path = folder / f"{Path(s.name).with_suffix('').as_posix().replace('/', '_')}.surprisal.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def text_heatmap(scored: list[Scored]) -> str:
    """An HTML page: each line's tokens on a background as red as the token is surprising (hover: the value)."""
    top = max((float(np.nanmax(s.surprisal)) for s in scored if s.surprisal.size), default=1.0) or 1.0
    rows = []
    for s in scored:
        spans = "".join(f'<span title="{v:.3f} nats" style="background:rgba(220,30,30,{min(v / top, 1):.3f})">'
                        f"{html.escape(t)}</span>" for t, v in zip(s.tokens, s.surprisal, strict=True))
        rows.append(f"<p><b>{html.escape(s.name)}</b> ({s.nll:.2f} nats) <code>{spans}</code></p>")
    return ("<!doctype html><meta charset='utf-8'><title>surprisal</title>"
            "<body style='font-family:sans-serif;white-space:pre-wrap'>" + "\n".join(rows) + "</body>\n")
