"""``output.tensorboard=true``: a TensorBoard event file beside ``metrics.jsonl`` in ``RUN/tensorboard/``.

The sink mirrors what the Trainer already records (every ``metrics.jsonl`` record becomes scalars: loss, bits/dim,
learning rate, gradient norm), so nothing is computed twice; the run's config is stored as text and, once a run
is finished, its sample grids, fan charts and curves (``samples/*.png``, ``plots/*.png``) as images and its text
samples (``samples/*.txt``) as text. Needs the ``tensorboard`` package (``pip install 'chainrule[tensorboard]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from chainrule.core.errors import ConfigError
from chainrule.core.runs.files import PLOTS_DIR, SAMPLES_DIR, TENSORBOARD_DIR

#: ``metrics.jsonl`` keys -> TensorBoard tags
SCALAR_TAGS = {"train_nll": "train/loss", "train_bpd": "train/bits_per_dim", "lr": "train/lr",
               "grad_norm": "train/grad_norm", "context_length": "train/context_length",
               "val_nll": "val/loss", "val_bpd": "val/bits_per_dim"}


class TensorBoardSink:
    """Writes one run's events; the Trainer feeds it through its metrics log (``start`` when the log is reset or
    cut back for a resume, ``write`` per record), the caller adds the finished run's outputs and closes it."""

    def __init__(self, log_dir: str | Path, config: dict[str, Any] | None = None) -> None:
        self._writer_class = _summary_writer_class()
        self.log_dir = Path(log_dir)
        self.config = config
        self.writer: Any = None
        self.last_step = 0

    def start(self, step: int = 0) -> None:
        """Open the event file; events of ``step`` and later from an earlier, interrupted session are dropped
        (TensorBoard's ``purge_step``), so a resumed run shows one curve."""
        self.close()
        self.writer = self._writer_class(str(self.log_dir), purge_step=step if step > 0 else None)
        if step == 0 and self.config is not None:
            text = yaml.safe_dump(self.config, sort_keys=False)
            self.writer.add_text("config", "```yaml\n" + text + "```", 0)

    def _open(self) -> Any:
        if self.writer is None:
            self.start(self.last_step + 1 if self.last_step else 0)
        return self.writer

    def write(self, record: dict[str, Any]) -> None:
        step = int(record.get("step", 0))
        self.last_step = max(self.last_step, step)
        writer = self._open()
        for key, tag in SCALAR_TAGS.items():
            value = record.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(tag, float(value), step)

    def image(self, tag: str, path: str | Path, step: int | None = None) -> None:
        """A PNG file as an image (grey, RGB or RGBA)."""
        from PIL import Image

        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        self._open().add_image(tag, pixels, self.last_step if step is None else step, dataformats="HWC")

    def text(self, tag: str, text: str, step: int | None = None) -> None:
        """Text shown verbatim (as a Markdown code block)."""
        self._open().add_text(tag, "```\n" + text + "\n```", self.last_step if step is None else step)

    def add_run_outputs(self, run_dir: str | Path) -> None:
        """The finished run's sample grids, fan charts and curves as images, its text samples as text; each tagged
        ``<folder>/<file stem>``."""
        run_dir = Path(run_dir)
        for folder in (SAMPLES_DIR, PLOTS_DIR):
            for png in sorted((run_dir / folder).glob("*.png")):
                self.image(f"{folder}/{png.stem}", png)
        for txt in sorted((run_dir / SAMPLES_DIR).glob("*.txt")):
            self.text(f"{SAMPLES_DIR}/{txt.stem}", txt.read_text(encoding="utf-8", errors="replace"))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def wants_tensorboard(config: dict[str, Any]) -> bool:
    """A run config's ``output.tensorboard`` (default false); ConfigError for a value that is not a boolean, or for
    true without the tensorboard package. Checked before a run directory is written."""
    wanted = config.get("output", {}).get("tensorboard", False)
    if not isinstance(wanted, bool):
        raise ConfigError(f"output.tensorboard must be true or false, got {wanted!r}")
    if wanted:
        _summary_writer_class()
    return wanted


def tensorboard_sink(run_dir: str | Path | None, config: dict[str, Any]) -> TensorBoardSink | None:
    """The sink a run's ``output.tensorboard`` asks for (None when off or without a run directory)."""
    if not wants_tensorboard(config) or run_dir is None:
        return None
    return TensorBoardSink(Path(run_dir) / TENSORBOARD_DIR, config)


def _summary_writer_class() -> type:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("output.tensorboard=true needs the tensorboard package: "
                          "pip install 'chainrule[tensorboard]'") from None
    return SummaryWriter
