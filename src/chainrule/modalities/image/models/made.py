"""MADE (Germain et al. 2015, "Masked Autoencoder for Distribution Estimation").

An MLP over the flattened event whose weight masks enforce the autoregressive property: every position
gets a degree (its rank in the ordering; all channels of a position share it), hidden units get random
degrees, and a unit connects only to units of lower (output layer: strictly lower) degree. With
``num_masks > 1`` the model is trained order- and connectivity-agnostically: K orderings and hidden
connectivities, drawn once from ``mask_seed`` (mask 0 keeps raster order), and a random one is used per
training batch. In eval mode :meth:`log_prob` and :meth:`sample` use the uniform mixture of all K models,
which is still a normalised distribution.

Sampling is incremental (:meth:`MADE.step`): a hidden unit reaches, through its mask, only inputs up to its
degree, so once those are known its value is final. Each step adds the new pixel's column of the first layer to
its pre-activations, passes the units that just became final on to the next layer, and computes the outputs of
the next position alone: every weight is used once per image instead of once per pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.contract import AutoregressiveModel
from chainrule.core.errors import InputError
from chainrule.core.heads.base import Head
from chainrule.core.nn.conv_cache import cache_bytes_per_sample
from chainrule.core.nn.masked import MaskedLinear, class_bias
from chainrule.core.sampling import ancestral_sample


def made_degrees(
    num_positions: int, hidden_sizes: Sequence[int], num_masks: int, seed: int, order_agnostic: bool = True,
) -> tuple[Tensor, list[Tensor]]:
    """Orderings ``(K, N)`` and hidden degrees (one ``(K, h)`` tensor per layer), deterministic in ``seed``.

    Mask 0 (and every mask when ``order_agnostic`` is False) uses raster order. Degrees run 1..N-1 and
    never fall below the previous layer's minimum, so no hidden unit is disconnected from its inputs.
    """
    gen = torch.Generator().manual_seed(int(seed))
    n = num_positions
    orders, hidden = [], [[] for _ in hidden_sizes]
    for k in range(num_masks):
        order = torch.randperm(n, generator=gen) if order_agnostic and k > 0 else torch.arange(n)
        orders.append(order)
        low = 1
        for layer, size in enumerate(hidden_sizes):
            deg = torch.randint(min(low, max(n - 1, 1)), max(n, 2), (size,), generator=gen)
            hidden[layer].append(deg)
            low = int(deg.min())
    return torch.stack(orders), [torch.stack(h) for h in hidden]


def _rows(t: Tensor | None, idx: Tensor) -> Tensor | None:
    return None if t is None else t[idx.to(t.device)]


class MADE(AutoregressiveModel):
    """Masked autoencoder over the flattened positions.

    Options:
        hidden_sizes: widths of the hidden layers.
        num_masks: number of orderings/connectivities trained jointly and ensembled at evaluation.
        mask_seed: seed for drawing the masks.
        order_agnostic: vary the ordering across masks (False: raster order, only connectivity varies).
        direct: add a masked direct input-to-output connection.
    """

    name: ClassVar[str] = "made"
    supports_cache: ClassVar[bool] = True
    #: one mask, so train-mode `network` and `ordering()` agree in generic tests
    TINY: ClassVar[dict] = {"hidden_sizes": [32], "num_masks": 1}

    def __init__(
        self,
        event_shape: Sequence[int],
        head: Head,
        num_classes: int = 0,
        hidden_sizes: Sequence[int] = (512, 512),
        num_masks: int = 8,
        mask_seed: int = 0,
        order_agnostic: bool = True,
        direct: bool = True,
    ) -> None:
        super().__init__(event_shape, head, num_classes)
        if num_masks < 1:
            raise ValueError(f"num_masks must be at least 1, got {num_masks}")
        n, c, p = self.num_positions, self.channels, self.num_params_out
        sizes = [int(s) for s in hidden_sizes]
        self.num_masks = int(num_masks)
        orders, hidden_deg = made_degrees(n, sizes, self.num_masks, mask_seed, order_agnostic)
        self.register_buffer("orders", orders)
        self.current_mask = 0

        # degree of input unit (ch, pos) = rank of pos + 1, laid out as ch * N + pos (likewise outputs)
        ranks = torch.argsort(orders, dim=1) + 1  # (K, N)
        in_deg, out_deg = ranks.repeat(1, c), ranks.repeat(1, p)
        degs = [in_deg, *hidden_deg]
        self.hidden = nn.ModuleList()
        for d_in, d_out in zip(degs[:-1], degs[1:], strict=True):
            layer = MaskedLinear(d_in.shape[1], d_out.shape[1], self.num_masks)
            layer.set_masks(d_out[:, :, None] >= d_in[:, None, :])
            self.hidden.append(layer)
        self.out = MaskedLinear(degs[-1].shape[1], p * n, self.num_masks)
        self.out.set_masks(out_deg[:, :, None] > degs[-1][:, None, :])
        self.direct = None
        if direct:
            self.direct = MaskedLinear(c * n, p * n, self.num_masks, bias=False)
            self.direct.set_masks(out_deg[:, :, None] > in_deg[:, None, :])
        self.cond_hidden = class_bias(num_classes, sizes[0]) if sizes else None
        self.cond_out = class_bias(num_classes, p * n)

    # ------------------------------------------------------------------ masks
    def use_mask(self, k: int) -> None:
        """Make mask ``k`` current (used by :meth:`network` in eval mode and by :meth:`ordering`)."""
        if not 0 <= k < self.num_masks:
            raise IndexError(f"mask index {k} out of range for {self.num_masks} masks")
        self.current_mask = int(k)

    def ordering(self) -> Tensor:
        return self.orders[self.current_mask]

    # ------------------------------------------------------------------ network
    def network(self, inputs: Tensor, cond: Tensor | None = None) -> Tensor:
        k = self.current_mask
        if self.training and self.num_masks > 1:
            k = int(torch.randint(self.num_masks, (1,)).item())
        x = inputs.flatten(1)
        h = x
        for i, layer in enumerate(self.hidden):
            h = layer(h, k)
            if i == 0 and cond is not None and self.cond_hidden is not None:
                h = h + self.cond_hidden(cond)
            h = F.relu(h)
        out = self.out(h, k)
        if self.direct is not None:
            out = out + self.direct(x, k)
        if cond is not None and self.cond_out is not None:
            out = out + self.cond_out(cond)
        return out.reshape(inputs.shape[0], self.num_params_out, *self.positions)

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Training: one random mask's log-likelihood. Eval: the ensemble ``log mean_k p_k(x)``."""
        if self.training or self.num_masks == 1:
            return super().log_prob(x, cond)
        saved = self.current_mask
        try:
            per_mask = []
            for k in range(self.num_masks):
                self.use_mask(k)
                per_mask.append(super().log_prob(x, cond))
        finally:
            self.use_mask(saved)
        return torch.logsumexp(torch.stack(per_mask), dim=0) - math.log(self.num_masks)

    # ------------------------------------------------------------------ incremental decoding
    def cache_bytes_per_sample(self) -> int:
        """The fixed maps :meth:`init_cache` allocates per sample."""
        return cache_bytes_per_sample(self)

    @torch.no_grad()
    def init_cache(self, batch_size: int, cond: Tensor | None = None) -> dict[str, Any]:
        """Under the current mask: the masked weights, every hidden layer's pre-activations (biases and the class
        bias), and each layer's units grouped by *effective degree*, the largest input degree a unit reaches
        through the masks (0 when it reaches none): the step after which the unit's value is final."""
        k, n, c, b = self.current_mask, self.num_positions, self.channels, batch_size
        order = self.orders[k]
        weights = [(layer.weight * layer.masks[k]).detach() for layer in self.hidden]
        groups, degree = [], (torch.argsort(order) + 1).repeat(c)  # input unit ch * N + pos
        for layer in self.hidden:
            degree = (layer.masks[k].long() * degree[None]).amax(1)
            by_degree = torch.argsort(degree, stable=True)
            groups.append(by_degree.split(torch.bincount(degree, minlength=n + 1).tolist()))
        pre = [layer.bias.detach().expand(b, -1).clone() for layer in self.hidden]
        if pre and cond is not None and self.cond_hidden is not None:
            pre[0] += self.cond_hidden(cond)
        x = pre[0].new_zeros(b, c * n) if pre else self.out.weight.new_zeros(b, c * n)
        cache = {"t": 0, "order": order.tolist(), "weights": weights, "groups": groups, "pre": pre, "x": x,
                 "last": x if not pre else x.new_zeros(b, pre[-1].shape[1]),
                 "out_weight": (self.out.weight * self.out.masks[k]).detach(),
                 "direct_weight": None if self.direct is None else (self.direct.weight * self.direct.masks[k]),
                 "cond_out": None if cond is None or self.cond_out is None else self.cond_out(cond),
                 "channel_index": torch.arange(c, device=x.device) * n,
                 "param_index": torch.arange(self.num_params_out, device=x.device) * n}
        self._finalise(0, cache)
        return cache

    def _finalise(self, degree: int, cache: dict[str, Any]) -> None:
        """Pass the hidden units of this effective degree (final now) on to the next layer, in layer order."""
        weights, pre = cache["weights"], cache["pre"]
        for layer, units in enumerate(g[degree] for g in cache["groups"]):
            if units.numel() == 0:
                continue
            value = F.relu(pre[layer][:, units])
            if layer + 1 < len(pre):
                pre[layer + 1] += value @ weights[layer + 1][:, units].t()
            else:
                cache["last"][:, units] = value

    @torch.no_grad()
    def step(self, x_prev: Tensor | None, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Take in the previous position's values, then compute the next position's outputs only."""
        t, n = cache["t"], self.num_positions
        if x_prev is not None:
            inputs = cache["channel_index"] + cache["order"][t - 1]
            value = self.encode(x_prev.to(self.device))
            cache["x"][:, inputs] = value
            if cache["pre"]:
                cache["pre"][0] += value @ cache["weights"][0][:, inputs].t()
            self._finalise(t, cache)
        if t >= n:
            raise InputError(f"{self.name}: every one of the {n} positions is already generated")
        rows = cache["param_index"] + cache["order"][t]
        out = cache["last"] @ cache["out_weight"][rows].t() + self.out.bias[rows]
        if cache["direct_weight"] is not None:
            out = out + cache["x"] @ cache["direct_weight"][rows].t()
        if cache["cond_out"] is not None:
            out = out + cache["cond_out"][:, rows]
        return out, {**cache, "t": t + 1}

    # ------------------------------------------------------------------ sampling
    def draw(self, n: int, cond: Tensor | None, x_given: Tensor | None, known: Tensor | None, temperature: float,
             use_cache: bool, generator: torch.Generator | None) -> Tensor:
        """Ancestral samples from the ensemble: each example draws its mask uniformly, then examples
        sharing a mask are sampled together in that mask's ordering.

        Completion (``known`` given) needs the known positions first in the ordering, so each example draws its
        mask among those that order its known positions first, with probability proportional to that mask's
        likelihood of the known values (:meth:`completion_masks`): an exact sample of ``p(x_unknown | x_known)``
        under the ensemble of those masks (all of them when ``order_agnostic`` is False)."""
        kwargs = dict(temperature=temperature, use_cache=use_cache, generator=generator)
        if self.num_masks == 1:
            return ancestral_sample(self, n, cond=cond, x_given=x_given, known=known, **kwargs)
        gen_device = generator.device if generator is not None else self.device
        if known is not None and x_given is not None:
            which = self.completion_masks(x_given, known, cond, generator)
        else:
            which = torch.randint(self.num_masks, (n,), generator=generator, device=gen_device).to(self.device)
        x = torch.zeros(n, *self.event_shape, dtype=torch.long, device=self.device)
        saved = self.current_mask
        try:
            for k in range(self.num_masks):
                idx = (which == k).nonzero().squeeze(1)
                if idx.numel() == 0:
                    continue
                self.use_mask(k)
                x[idx] = ancestral_sample(self, idx.numel(), cond=_rows(cond, idx),
                                          x_given=_rows(x_given, idx), known=_rows(known, idx), **kwargs)
        finally:
            self.use_mask(saved)
        return x

    @torch.no_grad()
    def completion_masks(self, x_given: Tensor, known: Tensor, cond: Tensor | None = None,
                         generator: torch.Generator | None = None) -> Tensor:
        """One mask per example for completing ``x_given`` where ``known`` ``(n, *S)``: drawn among the masks whose
        ordering puts every known position before every unknown one, with probability proportional to
        ``p_k(x_known)`` (the mask's conditionals of the known positions, which see only known values)."""
        n = known.shape[0]
        known_flat = known.to(self.device).reshape(n, -1).bool()
        ranks = torch.argsort(self.orders, dim=1)[None]  # (1, K, N): rank of each position in each ordering
        last_known = torch.where(known_flat[:, None], ranks, -1).amax(-1)
        first_unknown = torch.where(known_flat[:, None], ranks.shape[-1], ranks).amin(-1)
        usable = last_known < first_unknown  # (n, K)
        if not usable.any(1).all():
            raise ValueError("made: no mask of this ensemble orders the known positions before the others; "
                             "complete with a model trained with order_agnostic=false")
        x = x_given.to(self.device).long()
        saved, was_training = self.current_mask, self.training
        self.eval()
        try:
            log_w = []
            for k in range(self.num_masks):
                self.use_mask(k)
                per_position = self.log_prob_positions(x, cond).reshape(n, -1)
                log_w.append(torch.where(known_flat, per_position, 0.0).sum(1))
        finally:
            self.use_mask(saved)
            self.train(was_training)
        weights = torch.softmax(torch.stack(log_w, 1).masked_fill(~usable, -math.inf).double(), dim=1)
        gen_device = generator.device if generator is not None else self.device
        return torch.multinomial(weights.to(gen_device), 1, generator=generator).squeeze(1).to(self.device)
