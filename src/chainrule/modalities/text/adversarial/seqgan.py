"""The SeqGAN-style loop: alternate discriminator updates (real training windows against fresh samples) with a
REINFORCE update of the generator whose reward is the discriminator's probability that a whole sample is real,
minus a moving-average baseline (one reward per complete sequence; no Monte-Carlo roll-outs), plus
``mle_weight`` × the per-token negative log-likelihood of real windows, so the result is "MLE + adversarial"."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError, TrainingDiverged
from chainrule.modalities.text.adversarial.discriminator import TokenDiscriminator, discriminator_loss
from chainrule.modalities.text.adversarial.policy import MovingBaseline, reinforce_loss, sample_sequences

_COUNTS = {"steps": 1, "batch_size": 2, "seq_len": 2, "d_steps": 1, "d_pretrain": 0, "log_every": 1, "seed": 0}
_POSITIVE = ("lr", "d_lr", "temperature")


@dataclass
class AdversarialConfig:
    """Options of adversarial fine-tuning (checked on construction; each bad value is one :class:`ConfigError`).

    ``d_pretrain`` discriminator-only updates first (SeqGAN pre-trains its discriminator: a generator rewarded by
    a discriminator at chance gets no signal), then ``steps`` generator updates, each after ``d_steps``
    discriminator updates; ``batch_size`` samples and as
    many real windows of ``seq_len`` tokens per step; Adam with ``lr`` (generator) and ``d_lr`` (discriminator);
    ``mle_weight`` scales the maximum-likelihood term (0 = purely adversarial); ``baseline_decay`` is the
    moving-average baseline's decay; samples are drawn at ``temperature``.
    """

    steps: int = 200
    batch_size: int = 32
    seq_len: int = 64
    lr: float = 1e-4
    d_lr: float = 1e-3
    d_steps: int = 1
    d_pretrain: int = 100
    mle_weight: float = 1.0
    baseline_decay: float = 0.9
    temperature: float = 1.0
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10

    def __post_init__(self) -> None:
        for name, low in _COUNTS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"adversarial option {name!r} must be a whole number >= {low}; got {value!r}")
        for name in (*_POSITIVE, "mle_weight", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"adversarial option {name!r} must be a finite number; got {value!r}")
            if value < 0 or (value == 0 and name in _POSITIVE):
                raise ConfigError(f"adversarial option {name!r} must be {'> 0' if name in _POSITIVE else '>= 0'}; "
                                  f"got {value!r}")
        if isinstance(self.baseline_decay, bool) or not isinstance(self.baseline_decay, (int, float)) \
                or not 0 <= self.baseline_decay < 1:
            raise ConfigError(f"adversarial option 'baseline_decay' must be in [0, 1); got {self.baseline_decay!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_fits(model: AutoregressiveModel, data: Any, cfg: AdversarialConfig) -> None:
    """:class:`ConfigError` unless ``model`` is an unconditional token model and ``seq_len`` fits its context and
    the data's windows."""
    if model.family != "autoregressive" or getattr(model, "vocab_size", None) is None:
        raise ConfigError(f"adversarial fine-tuning needs an autoregressive token model; {model.name} is a "
                          f"{model.family} model")
    if model.num_classes > 0:
        raise ConfigError(f"adversarial fine-tuning of a class-conditional model is not supported ({model.name})")
    context = data.get(torch.arange(1))[0].shape[-1]
    if cfg.seq_len > min(model.max_len, context):
        raise ConfigError(f"adversarial option 'seq_len' must be at most {min(model.max_len, context)} (the model's "
                          f"and the data's context); got {cfg.seq_len}")


def real_windows(data: Any, n: int, length: int, generator: torch.Generator) -> Tensor:
    """``n`` random training windows cut to ``length`` tokens at one random offset, ``(n, 1, length)``."""
    x, _ = data.get(torch.randint(len(data), (n,), generator=generator))
    start = int(torch.randint(x.shape[-1] - length + 1, (1,), generator=generator))
    return x[..., start:start + length]


def fit_adversarial(model: AutoregressiveModel, data: Any, cfg: AdversarialConfig, device: torch.device | str = "cpu",
                    log: Callable[[dict[str, Any]], None] | None = None) -> tuple[TokenDiscriminator, dict[str, Any]]:
    """Fine-tune ``model`` in place on the training windows ``data`` (the trainer's dataset protocol); returns the
    discriminator and the last logged record. ``log`` receives a record every ``log_every`` steps and at the end."""
    check_fits(model, data, cfg)
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    cpu_gen = torch.Generator().manual_seed(cfg.seed)
    sample_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    model.to(device)
    disc = TokenDiscriminator(model.vocab_size).to(device)
    g_opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr)
    baseline = MovingBaseline(cfg.baseline_decay)
    window: dict[str, float] = {}
    record: dict[str, Any] = {}
    start = time.perf_counter()

    def draw() -> Tensor:
        model.eval()
        fake = sample_sequences(model, cfg.batch_size, cfg.seq_len, cfg.temperature, sample_gen)
        model.train()
        return fake

    def train_discriminator(fake: Tensor) -> tuple[Tensor, Tensor, dict[str, float]]:
        real = real_windows(data, cfg.batch_size, cfg.seq_len, cpu_gen).to(device)
        d_loss, d_stats = discriminator_loss(disc, real, fake)
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        return real, d_loss, d_stats

    for _ in range(cfg.d_pretrain):
        train_discriminator(draw())
    for step in range(1, cfg.steps + 1):
        fake = draw()
        for _ in range(cfg.d_steps):
            real, d_loss, d_stats = train_discriminator(fake)
        with torch.no_grad():
            rewards = torch.sigmoid(disc(fake))
        b = baseline.current(rewards)
        pg = reinforce_loss(model, fake, rewards, b)
        mle = model.loss(real) / cfg.seq_len  # per-token NLL of the real windows, nats
        loss = pg + cfg.mle_weight * mle if cfg.mle_weight > 0 else pg
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"adversarial fine-tuning diverged at step {step}: loss {float(loss)}; lower "
                                   "the learning rate")
        g_opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        g_opt.step()
        baseline.update(rewards)
        stats = {"d_loss": float(d_loss.detach()), **d_stats, "reward": float(rewards.mean()),
                 "pg_loss": float(pg.detach()), "mle_nll": float(mle.detach())}
        for key, value in stats.items():
            window[key] = window.get(key, 0.0) + value
        if step % cfg.log_every == 0 or step == cfg.steps:
            count = (step - 1) % cfg.log_every + 1
            record = {"step": step, **{k: v / count for k, v in window.items()}, "baseline": baseline.value,
                      "seconds": time.perf_counter() - start, "split": "adversarial"}
            record["train_bpd"] = record["mle_nll"] / math.log(2)  # the training-curve plot's field
            window = {}
            if log is not None:
                log(record)
    model.eval()
    return disc, record

