"""The model contract shared by every architecture.

A model factorises ``log p(x | c) = sum_t log p(x_t | x_<t, c)`` over an ordering of the positions of
``x``. Data ``x`` is an integer tensor ``(B, C, *S)``; the network returns the parameters of every
conditional at once, ``(B, P, *S)``, each position's parameters computed from earlier positions only
(teacher forcing). Architectures implement :meth:`network`; everything else is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from chainrule.core.errors import InputError
from chainrule.core.heads.base import Head
from chainrule.core.limits import check_count, check_temperature


@dataclass(frozen=True)
class Condition:
    """What a model is conditioned on besides the earlier positions of ``x``; each modality fills its fields.

    ``labels``: a class per example ``(B,)`` (image and text models take a bare label tensor as shorthand);
    ``time_features``: known per-step inputs ``(B, T, F)`` (calendar, covariates) of a series;
    ``scale``: a per-example scale ``(B,)`` (series are modelled in scaled units);
    ``observed``: ``(B, T)`` bool, the positions that count in the likelihood (missing values and the
    lag warm-up are False);
    ``image``: a whole image ``(B, *event_shape)`` of floats in [-1, 1] seen at every position (the low-resolution
    image upsampled for super-resolution, the grey image for colorization), for models with ``takes_image``.
    """

    labels: Tensor | None = None
    time_features: Tensor | None = None
    scale: Tensor | None = None
    observed: Tensor | None = None
    image: Tensor | None = None

    def to(self, device: torch.device | str) -> Condition:
        return self.map(lambda t: t.to(device))

    def map(self, fn: Any) -> Condition:
        """A copy with ``fn`` applied to every tensor field (e.g. slicing or repeating the batch)."""
        return replace(self, **{f.name: fn(v) for f in fields(self) if (v := getattr(self, f.name)) is not None})


class AutoregressiveModel(nn.Module):
    """Base class: ``forward`` / ``log_prob`` / ``sample`` and, where possible, ``init_cache`` / ``step``.

    Args:
        event_shape: ``(C, *S)`` — channels then positions, e.g. ``(1, 28, 28)``.
        head: the output distribution for one position.
        num_classes: number of class labels the model can be conditioned on (0 = unconditional).
    """

    #: registry name, set by each architecture
    name: ClassVar[str] = "base"
    #: the modality it models (its registry key with ``name``): ``image`` (C, H, W) levels, ``text`` (1, T)
    #: tokens, ``series`` (B, T) real values; each modality folder sets it on its models
    modality: ClassVar[str] = "image"
    #: head used when the config says ``auto`` or nothing
    default_head: ClassVar[str] = "auto"
    #: ``exact``: :meth:`log_prob` is log p(x). ``bound``: it is a lower bound on log p(x) (an ELBO or an
    #: importance-weighted bound); evaluation then reports the NLL as an upper bound and says so
    likelihood: ClassVar[str] = "exact"
    #: ``autoregressive`` (the chain rule over positions: the generic property tests apply) or another generative
    #: family on the same contract (``vae``, ``flow``, ``diffusion``, ``gan``: ``network`` is then not causal,
    #: and a ``gan`` has ``likelihood = "none"``: :meth:`log_prob` raises and evaluation reports no NLL)
    family: ClassVar[str] = "autoregressive"
    #: True when :meth:`init_cache` / :meth:`step` give O(1)-per-position sampling
    supports_cache: ClassVar[bool] = False
    #: True when params in image row r depend on rows <= r only and on nothing below (convolutional
    #: models), so sampling may run the network on the rows generated so far
    row_causal: ClassVar[bool] = False
    #: True when the model is conditioned on a whole image (``Condition.image``), e.g. super-resolution
    takes_image: ClassVar[bool] = False

    @classmethod
    def build(cls, event_shape: Sequence[int], levels: int, num_classes: int = 0, head: str | None = None,
              head_options: dict[str, Any] | None = None, **options: Any) -> AutoregressiveModel:
        """Registry constructor: the head from its name and the data's levels, then the architecture."""
        from chainrule.core.heads import build_head

        head_mod = build_head(head or cls.default_head, levels, **(head_options or {}))
        return cls(event_shape=event_shape, head=head_mod, num_classes=num_classes, **options)

    def __init__(self, event_shape: Sequence[int], head: Head, num_classes: int = 0) -> None:
        super().__init__()
        self.event_shape = tuple(int(s) for s in event_shape)
        self.head = head
        self.num_classes = int(num_classes)

    # ----------------------------------------------------------------- shapes
    @property
    def channels(self) -> int:
        return self.event_shape[0]

    @property
    def positions(self) -> tuple[int, ...]:
        return self.event_shape[1:]

    @property
    def num_positions(self) -> int:
        n = 1
        for s in self.positions:
            n *= s
        return n

    @property
    def num_dims(self) -> int:
        """Number of scalar dimensions of one example (for bits/dim)."""
        return self.channels * self.num_positions

    @property
    def num_params_out(self) -> int:
        return self.head.num_params(self.channels)

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    # --------------------------------------------------------------- teacher-forced
    def encode(self, x: Tensor) -> Tensor:
        """Integer levels ``(B, C, *S)`` -> float network input in [-1, 1]."""
        return self.head.mode_input(x)

    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        """Float inputs ``(B, C, *S)`` -> parameters ``(B, P, *S)``; params at a position may depend only
        on inputs at earlier positions in :meth:`ordering`. Architectures implement this."""
        raise NotImplementedError

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Parameters of every conditional, teacher-forced: ``(B, C, *S)`` long -> ``(B, P, *S)``."""
        self.check_input(x, cond)
        return self.network(self.encode(x), cond)

    def log_prob_positions(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Per-position log-probabilities in nats, ``(B, *S)``."""
        return self.head.log_prob(self(x, cond), x)

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Log-likelihood of each example in nats, ``(B,)``."""
        return self.log_prob_positions(x, cond).flatten(1).sum(1)

    def loss(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Training objective: mean negative log-likelihood in nats per example."""
        return -self.log_prob(x, cond).mean()

    # --------------------------------------------------------------- validation
    def check_input(self, x: Tensor, cond: Any) -> None:
        """The one check of what a model is given (:class:`InputError`, naming the value): the shape, every value
        within the head's support and the class labels. ``forward`` (so ``log_prob``) calls it; :meth:`check_sample`
        applies the same checks to what ``sample`` is given. Inside a ``torch.compile`` trace only the shape is
        checked: the value checks are data-dependent branches that would split the graph and wait for the device,
        so the compiled training step runs them eagerly on its batch first (``Trainer._step``)."""
        self.check_shape(x)
        if torch.compiler.is_compiling():
            return
        self.head.check_support(x)
        self.check_condition(cond, x.shape[0])

    def check_shape(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.event_shape:
            raise InputError(f"{self.name}: expected input of shape (B, {', '.join(map(str, self.event_shape))}), "
                             f"got {tuple(x.shape)}")

    def check_condition(self, cond: Any, batch: int) -> None:
        """Class labels (a bare tensor or ``Condition.labels``): ``(batch,)`` integers in ``0 .. num_classes-1``,
        and none at all for an unconditional model; a conditioning image only for a model that ``takes_image``."""
        if isinstance(cond, Condition) and cond.image is not None:
            self.check_condition_image(cond.image, batch)
        labels = cond.labels if isinstance(cond, Condition) else cond
        if labels is None:
            return
        if self.num_classes == 0:
            raise InputError(f"{self.name}: this model was built without class conditioning; give no class")
        if not isinstance(labels, Tensor) or labels.is_floating_point() or tuple(labels.shape) != (batch,):
            shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise InputError(f"{self.name}: class labels must be {batch} integers, one per example; got {shape}")
        bad = (labels < 0) | (labels >= self.num_classes)
        if bool(bad.any()):
            raise InputError(f"{self.name}: class {int(labels[bad][0])} out of range 0..{self.num_classes - 1}")

    def check_condition_image(self, image: Any, batch: int) -> None:
        """``Condition.image``: ``(batch, *event_shape)`` finite floats in [-1, 1], for a model that takes one."""
        if not self.takes_image:
            raise InputError(f"{self.name}: this model takes no conditioning image")
        want = (batch, *self.event_shape)
        if not isinstance(image, Tensor) or not image.is_floating_point() or tuple(image.shape) != want:
            shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise InputError(f"{self.name}: the conditioning image must be floats of shape {want}; got {shape}")
        if not bool(torch.isfinite(image).all()) or bool((image.abs() > 1).any()):
            raise InputError(f"{self.name}: the conditioning image must hold finite values in [-1, 1]")

    def check_sample(self, n: int, cond: Any = None, x_given: Tensor | None = None, known: Tensor | None = None,
                     temperature: float = 1.0) -> None:
        """What :meth:`sample` is asked: ``n >= 1``, a temperature of 0 (greedy, for every discrete head) or in the
        range of :mod:`chainrule.core.limits`, the labels, and a given part of the input with its mask."""
        check_count(n, "n", InputError)
        check_temperature(temperature, InputError)
        self.check_condition(cond, n)
        if x_given is None:
            return
        if known is None:
            raise InputError("x_given needs a `known` mask of the positions to keep")
        if x_given.shape[0] != n:
            raise InputError(f"{self.name}: x_given holds {x_given.shape[0]} examples, n is {n}")
        self.check_shape(x_given)
        self.head.check_support(x_given, "x_given")
        if tuple(known.shape) != (n, *self.positions):
            raise InputError(f"{self.name}: known must have shape {(n, *self.positions)}, got {tuple(known.shape)}")

    # --------------------------------------------------------------- ordering
    def ordering(self) -> Tensor:
        """Flat position indices in generation order (default: raster order)."""
        return torch.arange(self.num_positions, device=self.device)

    # --------------------------------------------------------------- incremental decoding
    def prefill(self, x: Tensor, cond: Any = None) -> tuple[Tensor, Any]:
        """Consume the first ``L`` positions of each example, ``x`` ``(B, C, L)`` in the model's ordering (``(B, L)``
        for one channel, e.g. token ids), and return the parameters ``(B, P)`` of the next position and the cache
        for :meth:`step`. This default feeds :meth:`step` one position at a time; architectures override it
        with one batched pass where they can (Transformer, RNN, forecasters)."""
        x = x[:, None] if x.dim() == 2 else x
        cache = self.init_cache(x.shape[0], cond)
        params, cache = self.step(None, cache)
        for t in range(x.shape[-1]):
            params, cache = self.step(x[..., t], cache)
        return params, cache

    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> Any:
        """State for :meth:`step` before the first position."""
        raise NotImplementedError(f"{self.name} has no incremental step")

    def step(self, x_prev: Tensor | None, cache: Any) -> tuple[Tensor, Any]:
        """Given the values ``(B, C)`` at the previous position in the ordering (``None`` before the
        first), return the parameters ``(B, P)`` of the next position's conditional and the new cache."""
        raise NotImplementedError(f"{self.name} has no incremental step")

    # --------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        cond: Tensor | None = None,
        x_given: Tensor | None = None,
        known: Tensor | None = None,
        temperature: float = 1.0,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Ancestral sampling in the model's ordering.

        Args:
            n: number of samples.
            cond: class labels ``(n,)`` for a class-conditional model.
            x_given: ``(n, C, *S)`` values to keep where ``known`` is True (completion).
            known: ``(n, *S)`` bool mask of given positions; sampling fills the rest. A true
                conditional sample needs the known positions to come first in the ordering
                (e.g. the top half of an image in raster order).
            temperature: scales the logits / log-scales of each conditional (1 = the model; 0 = the most
                probable value at each position, for every discrete head).
            use_cache: use :meth:`step` when the model supports it.
            generator: a ``torch.Generator`` for reproducible draws.
        """
        self.check_sample(n, cond, x_given, known, temperature)
        return self.draw(n, cond, x_given, known, temperature, use_cache, generator)

    def draw(self, n: int, cond: Tensor | None, x_given: Tensor | None, known: Tensor | None, temperature: float,
             use_cache: bool, generator: torch.Generator | None) -> Tensor:
        """The sampling itself, on arguments :meth:`sample` has already checked: the shared ancestral loop.
        Models override this (not :meth:`sample`) where their distribution allows something better."""
        from chainrule.core.sampling import ancestral_sample

        return ancestral_sample(self, n, cond=cond, x_given=x_given, known=known, temperature=temperature,
                                use_cache=use_cache, generator=generator)

    def cache_bytes_per_sample(self) -> int:
        """Bytes the sampling cache holds per sample beyond what grows with the positions generated (attention
        keys and values, recurrent states: estimated from the layer widths by whoever budgets memory). 0 here;
        models whose cache holds fixed maps (the convolutions' padded inputs) report them."""
        return 0

    # --------------------------------------------------------------- config
    def config(self) -> dict[str, Any]:
        """Keyword arguments (beyond event_shape/head/num_classes) that rebuild this model."""
        return dict(getattr(self, "_config", {}))
