"""Adversarial fine-tuning of a trained text (or music) run into a new run directory.

The new run has the source's ``config.yaml`` and ``tokenizer.json`` unchanged and the fine-tuned weights as its
``best.safetensors``, so ``eval``, ``generate``, ``serve`` and ``export`` take it like any run; the adversarial
options, the source and the last training record go to its ``summary.json``, the training records to
``metrics.jsonl``, the discriminator to ``discriminator.safetensors``. The source run is only read.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch

from chainrule.core.errors import ConfigError
from chainrule.core.runs.atomic import atomic_write_bytes
from chainrule.core.runs.files import BEST_WEIGHTS, METRICS_FILE, TOKENIZER_FILE
from chainrule.core.runs.kind import RunKind
from chainrule.core.runs.lock import run_lock
from chainrule.core.runs.run import check_new_run_dir
from chainrule.core.training.checkpoint import save_weights
from chainrule.core.training.metrics import MetricsLog
from chainrule.modalities.text.adversarial import AdversarialConfig, fit_adversarial
from chainrule.modalities.text.adversarial.seqgan import check_fits
from chainrule.runs import Run, open_run

#: the discriminator's weights in the new run (not needed to use the run; kept to continue or inspect it)
DISCRIMINATOR_WEIGHTS = "discriminator.safetensors"


def adversarial_finetune(source: str | Path, out: str | Path, device: str | None = None, **options: Any) -> Run:
    """Fine-tune ``source`` (a text or music run) adversarially into the new run directory ``out``.

    ``options`` are :class:`AdversarialConfig` fields (``steps``, ``batch_size``, ``seq_len``, ``lr``, ``d_lr``,
    ``d_steps``, ``d_pretrain``, ``mle_weight``, ``baseline_decay``, ``temperature``, ``seed``, ...). Every option
    and the output directory are checked before anything is loaded or written.
    """
    from chainrule.api import finish_run, load_data

    cfg = AdversarialConfig(**options)
    src = open_run(source)
    if src.kind not in (RunKind.TEXT, RunKind.MUSIC):
        raise ConfigError(f"{src.path}: a {src.kind.value} run; adversarial fine-tuning needs a text or music run")
    out = Path(out)
    if out.resolve() == src.path.resolve():
        raise ConfigError(f"{out}: the output must be a new run directory, not the source run")
    check_new_run_dir(out, hint="choose another --out")
    dev = _device(device)
    model = src.load_model()
    train_set = load_data(src.config["data"], src.path)["train"]
    check_fits(model, train_set, cfg)
    new = Run(path=out, config=copy.deepcopy(src.config))
    with run_lock(out, create=True):
        check_new_run_dir(out, hint="choose another --out")
        new.save_config()
        tokenizer = src.path / TOKENIZER_FILE
        if tokenizer.is_file():
            atomic_write_bytes(out / TOKENIZER_FILE, tokenizer.read_bytes())
        metrics = MetricsLog(out / METRICS_FILE)
        metrics.reset()
        started = time.perf_counter()
        disc, last = fit_adversarial(model, train_set, cfg, dev, log=metrics.write)
        save_weights(model, out / BEST_WEIGHTS)
        save_weights(disc, out / DISCRIMINATOR_WEIGHTS)
        new.write_summary({"adversarial": {"source": str(src.path), "options": cfg.as_dict(), "last": last,
                                           "seconds": time.perf_counter() - started, "device": str(dev)}})
        finish_run(new)
    return new


def _device(name: str | None) -> torch.device:
    """The torch device to train on: ``name``, or CUDA when available; a bad name is a :class:`ConfigError`."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device must be a torch device such as cpu or cuda; got {name!r}") from None
