"""Tiny models and real (bundled) data for the training tests: binarized 8x8 scikit-learn digits."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.heads import Bernoulli
from chainrule.modalities.image.data.base import Discretizer, ImageDataset


def digits_arrays() -> dict[str, Tensor]:
    """The 1797 scikit-learn digits: images (N, 1, 8, 8) as intensities in [0, 1] and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return {"images": torch.from_numpy(d.images / 16.0).float().unsqueeze(1),
            "target": torch.from_numpy(d.target).long()}


def digits_sets(n_val: int = 297, cache=None) -> tuple[ImageDataset, ImageDataset]:
    """Train / val ImageDatasets of the digits (threshold 0.5), fixed split. ``cache``: a file written by
    ``torch.save(digits_arrays())`` (saves subprocesses the scikit-learn import)."""
    arrays = torch.load(cache, weights_only=True) if cache else digits_arrays()
    x, y = arrays["images"], arrays["target"]
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    disc = Discretizer("threshold")
    names = [str(i) for i in range(10)]

    def make(idx: Tensor, split: str) -> ImageDataset:
        return ImageDataset(x[idx], y[idx], disc, "digits", split, class_names=names)

    return make(perm[n_val:], "train"), make(perm[:n_val], "val")


class TinyAR(AutoregressiveModel):
    """Raster-order autoregressive model for one binary channel: a strictly lower-triangular linear map
    (an FVSBN) plus an optional MADE-style masked hidden layer with dropout. ``delay`` seconds of sleep per
    training forward slow it down for kill-and-resume tests."""

    name = "tiny_ar"

    def __init__(self, event_shape=(1, 8, 8), head=None, num_classes: int = 0, hidden: int = 0,
                 dropout: float = 0.0, delay: float = 0.0) -> None:
        super().__init__(event_shape, head or Bernoulli(), num_classes)
        d = self.num_dims
        self.delay = delay
        self.direct = nn.Linear(d, d)
        self.register_buffer("direct_mask", torch.ones(d, d).tril(-1))
        self.hidden = hidden
        if hidden:
            deg = torch.arange(hidden) % max(d - 1, 1) + 1  # hidden unit k sees inputs 1..deg[k]
            pos = torch.arange(1, d + 1)
            self.fc_in = nn.Linear(d, hidden)
            self.fc_out = nn.Linear(hidden, d)
            self.register_buffer("in_mask", (deg[:, None] >= pos[None, :]).float())
            self.register_buffer("out_mask", (pos[:, None] > deg[None, :]).float())
            self.drop = nn.Dropout(dropout)

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        if self.training and self.delay:
            time.sleep(self.delay)
        h = inputs.flatten(1)
        out = nn.functional.linear(h, self.direct.weight * self.direct_mask, self.direct.bias)
        if self.hidden:
            z = torch.relu(nn.functional.linear(h, self.fc_in.weight * self.in_mask, self.fc_in.bias))
            out = out + nn.functional.linear(self.drop(z), self.fc_out.weight * self.out_mask, self.fc_out.bias)
        return out.reshape(inputs.shape)


class NaNAt(TinyAR):
    """TinyAR whose ``nan_at``-th training forward returns NaN parameters."""

    def __init__(self, nan_at: int, **kw) -> None:
        super().__init__(**kw)
        self.nan_at = nan_at
        self.calls = 0

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        out = super().network(inputs, cond)
        if self.training:
            self.calls += 1
            if self.calls == self.nan_at:
                return out * math.nan
        return out


class CountingModel(AutoregressiveModel):
    """Independent pixels fitted by counting (add-one smoothing): a closed-form baseline."""

    name = "counting"
    closed_form = True

    def __init__(self, event_shape=(1, 8, 8), head=None, num_classes: int = 0) -> None:
        super().__init__(event_shape, head or Bernoulli(), num_classes)
        self.register_buffer("logits", torch.zeros(event_shape))

    def fit_counts(self, dataset: ImageDataset) -> None:
        x, _ = dataset.all()
        p = (x.float().sum(0) + 1) / (len(x) + 2)
        self.logits.copy_((p / (1 - p)).log())

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.logits.expand_as(inputs)


def tiny_run(run_dir, *, steps: int = 60, batch_size: int = 32, hidden: int = 32, dropout: float = 0.0,
             ema: float = 0.0, delay: float = 0.0, resume: bool = False, data=None, **overrides):
    """The fixed small run shared by the kill/resume and torchrun tests (one thread): (model, summary)."""
    from chainrule.core.training import TrainConfig, Trainer

    train, val = digits_sets(cache=data)
    torch.manual_seed(1234)
    model = TinyAR(hidden=hidden, dropout=dropout, delay=delay)
    opts = dict(steps=steps, batch_size=batch_size, lr=3e-3, warmup_steps=5, min_lr_ratio=0.1, grad_clip=1.0,
                ema=ema, eval_every=10, eval_batch_size=128, checkpoint_every=10, keep_checkpoints=2,
                log_every=5, progress=False, device="cpu", num_threads=1, seed=7)
    opts.update(overrides)
    summary = Trainer(model, train, val, TrainConfig(**opts), run_dir, resume=resume).fit()
    return model, summary


def kill_after_checkpoint(args: list[str], checkpoint: Path) -> None:
    """Run ``args`` in a subprocess and SIGKILL it as soon as ``checkpoint`` exists (failing if it exits first or
    no such checkpoint appears within 300 s); the process is gone when this returns."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, f"no {checkpoint.name} appeared"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
