"""Sequence VAE (MusicVAE, Roberts et al. 2018): a bidirectional LSTM encoder, a latent ``z`` and a hierarchical
decoder, on the model contract with ``likelihood = "bound"``.

The sequence of ``T = U * L`` positions is cut into ``U`` segments of ``L`` positions (bars, for music). The
encoder reads the whole sequence both ways and gives ``q(z | x)``; the decoder is a *conductor* LSTM that turns
``z`` into one vector per segment, and a *note* LSTM that decodes each segment autoregressively from its
conductor vector (its state reset at every segment; its input at every step is the previous position's value,
across segment boundaries, the conductor vector and ``z`` itself). Given ``z`` the decoder is causal, so
``log p(x | z)`` is a chain-rule sum over positions, scored by the same heads as every other model.

Posterior collapse is the failure to guard against: a note LSTM that sees the previous true value predicts well
without ``z``, the KL term then pushes ``q(z | x)`` onto the prior and ``z`` carries nothing. The remedies are
the standard ones: ``z`` enters every conductor step and every note step (a short path to every output); word
dropout (Bowman et al. 2016) replaces each teacher-forced decoder input by a learned "unknown" vector with
probability ``word_dropout`` while training, so the decoder must get what it cannot see from ``z``; free bits per
latent dimension (Kingma et al. 2016); and a KL warm-up.

Training maximises ``E_q[log p(x | z)] - beta * sum_d max(KL_d, free_bits)``, ``KL_d`` the batch mean of
dimension ``d``'s KL, ``beta`` rising linearly from 0 to ``kl_weight`` over ``kl_anneal_steps`` training steps
(KL annealing; the count is a buffer, so it is saved in checkpoints and resume is exact); below ``free_bits``
nats a dimension's KL is not pushed down, so each dimension may carry that much information for free.
Optional scheduled sampling (Bengio et al. 2015) in its parallel form (Duckworth et al. 2019): a first
teacher-forced pass draws the model's own values, and each decoder input is replaced by that draw with
probability ``scheduled_sampling``. ``log_prob`` is the ELBO (``beta = 1``, no free bits) while training and the
importance-weighted bound (Burda et al. 2016) with ``iwae_samples`` (default 100) in eval mode: both are lower
bounds on ``log p(x)``, so the reported NLL is an upper bound.

This file knows no modality: a modality subclasses :class:`SequenceVAE`, sets ``name``/``modality`` and
implements :meth:`input_embedding` (token ids -> vectors for text and music, values -> vectors for series).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import ConfigError
from chainrule.core.heads.base import Head
from chainrule.core.latent.bounds import ImportanceWeightedBound


def kl_weight_at(step: int | Tensor, anneal_steps: int, final: float = 1.0) -> float:
    """The KL weight ``beta`` after ``step`` training steps: linear from 0 to ``final`` over ``anneal_steps``."""
    if anneal_steps <= 0:
        return float(final)
    return float(final) * min(1.0, float(step) / float(anneal_steps))


class SequenceVAE(ImportanceWeightedBound, AutoregressiveModel):
    """See the module docstring. Subclasses implement :meth:`input_embedding`.

    Options:
        segment_length: positions per segment (16 = one bar of the melody grid); the length must be a multiple.
        embed_dim, encoder_size, conductor_size, decoder_size, latent: sizes.
        kl_weight, kl_anneal_steps: the KL term's final weight and warm-up steps.
        free_bits: nats per latent dimension below which its (batch-mean) KL is not pushed down.
        word_dropout: probability of hiding each teacher-forced decoder input while training (0 = off).
        scheduled_sampling: probability of feeding the model's own draw instead of the true previous value.
        iwae_samples: ``k`` of the evaluation bound (1..5000). chunk: decoder rows per pass (memory only).
    """

    likelihood: ClassVar[str] = "bound"
    family: ClassVar[str] = "vae"
    supports_cache: ClassVar[bool] = False

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0, segment_length: int = 16,
                 embed_dim: int = 64, encoder_size: int = 128, conductor_size: int = 128, decoder_size: int = 128,
                 latent: int = 32, kl_weight: float = 1.0, kl_anneal_steps: int = 2000, free_bits: float = 0.25,
                 word_dropout: float = 0.5, scheduled_sampling: float = 0.0, iwae_samples: int = 100,
                 chunk: int = 4096) -> None:
        super().__init__(event_shape, head, num_classes)
        if num_classes:
            raise ValueError("the sequence VAE is unconditional; train it without class labels")
        if len(self.event_shape) != 2 or self.event_shape[0] != 1:
            raise ConfigError(f"{self.name} models sequences: event shape (1, T), got {self.event_shape}")
        length = self.event_shape[1]
        if segment_length < 1 or length % segment_length:
            raise ConfigError(f"{self.name}: the length {length} must be a multiple of segment_length "
                              f"{segment_length}")
        if not 1 <= int(iwae_samples) <= 5000:
            raise ValueError(f"iwae_samples must be in 1..5000, got {iwae_samples}")
        for option, value in (("scheduled_sampling", scheduled_sampling), ("word_dropout", word_dropout)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{option} must be a probability, got {value}")
        self.segment_length, self.num_segments = int(segment_length), length // int(segment_length)
        self.latent, self.embed_dim = int(latent), int(embed_dim)
        self.kl_weight, self.kl_anneal_steps, self.free_bits = float(kl_weight), int(kl_anneal_steps), float(free_bits)
        self.scheduled_sampling, self.word_dropout = float(scheduled_sampling), float(word_dropout)
        self.iwae_samples, self.chunk = int(iwae_samples), max(int(chunk), 1)
        self.embedding = self.input_embedding(embed_dim)
        self.encoder = nn.LSTM(embed_dim, encoder_size, batch_first=True, bidirectional=True)
        self.to_posterior = nn.Linear(2 * encoder_size, 2 * latent)
        self.conductor_init = nn.Linear(latent, 2 * conductor_size)
        self.conductor = nn.LSTM(latent, conductor_size, batch_first=True)
        self.decoder_init = nn.Linear(conductor_size, 2 * decoder_size)
        self.decoder = nn.LSTM(embed_dim + conductor_size + latent, decoder_size, batch_first=True)
        self.start = nn.Parameter(torch.zeros(embed_dim))
        self.unknown = nn.Parameter(torch.zeros(embed_dim))  # what a dropped decoder input becomes
        self.out = nn.Linear(decoder_size, self.num_params_out)
        self.register_buffer("steps_trained", torch.zeros((), dtype=torch.long))

    def input_embedding(self, embed_dim: int) -> nn.Module:
        """Data ``(B, 1, T)`` -> vectors ``(B, T, embed_dim)``: the one thing a modality decides (with the head)."""
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:
        return self.embedding(x)

    # ------------------------------------------------------------------ encoder and decoder
    def posterior_from_inputs(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """q(z | x) from embedded inputs ``(B, T, D)``: mean and log-variance ``(B, latent)`` each."""
        _, (h, _) = self.encoder(inputs)
        mean, log_var = self.to_posterior(torch.cat([h[0], h[1]], dim=-1)).chunk(2, dim=-1)
        return mean, log_var.clamp(-12.0, 8.0)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.posterior_from_inputs(self.encode(x))

    def conduct(self, z: Tensor, segments: int | None = None) -> Tensor:
        """One vector per segment ``(N, U, conductor_size)`` from latents ``(N, latent)`` (``U`` defaults to the
        event's segments; a length-free modality passes its input's)."""
        h0, c0 = torch.tanh(self.conductor_init(z)).chunk(2, dim=-1)
        steps = z.unsqueeze(1).expand(-1, self.num_segments if segments is None else segments, -1)
        out, _ = self.conductor(steps.contiguous(), (h0[None].contiguous(), c0[None].contiguous()))
        return out

    def segment_state(self, plan: Tensor) -> tuple[Tensor, Tensor]:
        """Initial note-LSTM state ``(1, N', H)`` twice from conductor vectors ``(N', conductor_size)``."""
        h0, c0 = torch.tanh(self.decoder_init(plan)).chunk(2, dim=-1)
        return h0[None].contiguous(), c0[None].contiguous()

    def decode_inputs(self, inputs: Tensor, z: Tensor) -> Tensor:
        """Teacher-forced head parameters ``(N, P, T)`` given embedded values ``(N, T, D)`` and latents
        ``(N, latent)``: position ``t`` sees the values before ``t`` only (every segment in one batched pass)."""
        n, t, d = inputs.shape
        seg = self.segment_length
        u = t // seg
        prev = torch.cat([self.start.expand(n, 1, d), inputs[:, :-1]], dim=1)  # the value before each position
        plan = self.conduct(z, u)  # (N, U, C)
        steps = torch.cat([prev, plan.repeat_interleave(seg, dim=1), z.unsqueeze(1).expand(-1, t, -1)], dim=-1)
        steps = steps.reshape(n * u, seg, -1)
        out, _ = self.decoder(steps, self.segment_state(plan.reshape(n * u, -1)))
        return self.out(out.reshape(n, t, -1)).transpose(1, 2)

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        """Reconstruction parameters at the posterior mean (not causal in ``x``: the encoder reads all of it)."""
        mean, _ = self.posterior_from_inputs(inputs)
        return self.decode_inputs(inputs, mean)

    def decoder_log_prob(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) for ``x`` ``(B, 1, T)`` and latents ``(S, B, latent)`` -> ``(S, B)``."""
        s, b = z.shape[:2]
        xs = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
        params = self.decode_inputs(self.encode(xs), z.reshape(s * b, -1))
        return self.reconstruction_log_prob(params, xs).reshape(s, b)

    def reconstruction_log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x | z) ``(B,)`` from the decoder's parameters ``(B, P, T)`` (a modality may leave values out)."""
        return self.head.log_prob(params, x).flatten(1).sum(1)

    # ------------------------------------------------------------------ bounds and the objective
    def kl_per_dimension(self, mean: Tensor, log_var: Tensor) -> Tensor:
        """KL(q(z_d | x) || N(0, 1)) in nats for every latent dimension ``(B, latent)``."""
        return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var)

    def kl(self, mean: Tensor, log_var: Tensor) -> Tensor:
        """KL(q(z | x) || N(0, I)) in nats ``(B,)``."""
        return self.kl_per_dimension(mean, log_var).sum(-1)

    def elbo_terms(self, x: Tensor, cond: Any = None, regularise: bool = False) -> tuple[Tensor, Tensor]:
        """One-sample reconstruction term ``log p(x | z)`` ``(B,)`` and the analytic KL per latent dimension
        ``(B, latent)``. ``regularise`` (the training objective only) applies scheduled sampling and word dropout,
        which change the decoder's inputs: without them the terms make the ELBO of the model that is evaluated."""
        self.check_input(x, cond)
        inputs = self.encode(x)
        mean, log_var = self.posterior_from_inputs(inputs)
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        if regularise and self.scheduled_sampling > 0:
            inputs = self.mix_own_draws(inputs, z)
        if regularise and self.word_dropout > 0:
            inputs = self.drop_words(inputs)
        params = self.decode_inputs(inputs, z)
        return self.reconstruction_log_prob(params, x), self.kl_per_dimension(mean, log_var)

    def drop_words(self, inputs: Tensor) -> Tensor:
        """Word dropout: each decoder input ``(B, T, D)`` replaced by the learned unknown vector with probability
        ``word_dropout`` (the encoder has already read the true inputs)."""
        hide = torch.rand(inputs.shape[:2], device=inputs.device) < self.word_dropout
        return torch.where(hide.unsqueeze(-1), self.unknown.to(inputs.dtype).expand_as(inputs), inputs)

    def mix_own_draws(self, inputs: Tensor, z: Tensor) -> Tensor:
        """Parallel scheduled sampling: each input replaced by the model's own teacher-forced draw with
        probability ``scheduled_sampling`` (the draw carries no gradient)."""
        with torch.no_grad():
            drawn = self.head.sample(self.decode_inputs(inputs, z))
        own = self.encode(drawn)
        use_own = torch.rand(inputs.shape[:2], device=inputs.device) < self.scheduled_sampling
        return torch.where(use_own.unsqueeze(-1), own, inputs)

    def elbo(self, x: Tensor, cond: Any = None) -> Tensor:
        """The evidence lower bound, nats per example ``(B,)``."""
        rec, kl = self.elbo_terms(x, cond)
        return rec - kl.sum(-1)

    def current_kl_weight(self) -> float:
        return kl_weight_at(self.steps_trained, self.kl_anneal_steps, self.kl_weight)

    def loss(self, x: Tensor, cond: Any = None) -> Tensor:
        """``-(mean log p(x | z) - beta * sum_d max(mean KL_d, free_bits))`` over the batch; each training call
        counts one step of the KL annealing schedule."""
        rec, kl = self.elbo_terms(x, cond, regularise=self.training)
        beta = self.current_kl_weight()
        if self.training:
            self.steps_trained += 1
        return -(rec.mean() - beta * kl.mean(0).clamp(min=self.free_bits).sum())

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def decode_latents(self, z: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None,
                       x_given: Tensor | None = None, known: Tensor | None = None, length: int | None = None
                       ) -> Tensor:
        """Values ``(N, 1, T)`` decoded from latents ``(N, latent)``, one position at a time (temperature 0:
        the most probable value at each step); positions where ``known`` is True keep ``x_given``. ``length``
        (a multiple of ``segment_length``) defaults to the event's; values are the head's (ids or numbers)."""
        n = z.shape[0]
        length = self.num_positions if length is None else int(length)
        if length < 1 or length % self.segment_length:
            raise ConfigError(f"{self.name}: a decoded length must be a positive multiple of segment_length "
                              f"{self.segment_length}, got {length}")
        plan = self.conduct(z, length // self.segment_length)
        x: Tensor | None = None
        prev = self.start.expand(n, 1, -1)
        state = None
        for t in range(length):
            u, offset = divmod(t, self.segment_length)
            if offset == 0:
                state = self.segment_state(plan[:, u])
            out, state = self.decoder(torch.cat([prev, plan[:, u:u + 1], z.unsqueeze(1)], dim=-1), state)
            params = self.out(out[:, 0])
            value = self.head.sample(params.unsqueeze(-1), temperature=temperature, generator=generator).reshape(n, 1)
            if known is not None and x_given is not None:
                value = torch.where(known[:, t:t + 1], x_given[..., t], value)
            if x is None:
                x = value.new_zeros((n, 1, length))
            x[..., t] = value
            prev = self.encode(x[..., t:t + 1])
        return x

    def draw(self, n: int, cond: Tensor | None, x_given: Tensor | None, known: Tensor | None, temperature: float,
             use_cache: bool, generator: torch.Generator | None) -> Tensor:
        """``z`` from the prior, then the hierarchical decoder."""
        z = torch.randn((n, self.latent), generator=generator, device=self.device, dtype=self.out.weight.dtype)
        return self.decode_latents(z, temperature, generator, x_given, known)
