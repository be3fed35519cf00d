"""Decode engines: how a cached token loop runs one step of an attention model.

- ``eager``: the model's own ``step`` (a cache that grows one slot per token; the default, every model).
- ``static``: one step of fixed shapes against the cache's full-size key/value buffers: the position is a 0-d
  tensor, earlier slots are read under a mask, the new key/value joins the attention directly and is written
  into the buffers after the step. The step is a pure function of tensors (the model's weights gathered once
  per cache, linear layers pre-transposed), so it can be captured.
- ``compiled``: the ``static`` step through ``torch.compile`` (inductor), so Python and per-operator dispatch
  leave the loop: a decode step of a small model is dozens of tiny operators whose dispatch costs more than
  their arithmetic. Compiled once per process and shape (tens of seconds, paid by the first generation).

The static engines need a model whose cache is the key/value buffers of :func:`chainrule.core.nn.attention.
kv_buffers` over ``blocks`` of :class:`~chainrule.core.nn.attention.Block` fed by token and learned or rotary
position embeddings (``static_decoding = True`` on the class); prefill stays the model's own batched pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from chainrule.core import engines
from chainrule.core.engines import ENGINES
from chainrule.core.nn.attention import apply_rotary, row_linear

__all__ = ["ENGINES", "Decoder", "check_engine", "compiled_step", "static_step", "step_tensors"]


def check_engine(model: Any, engine: str) -> None:
    """:class:`~chainrule.core.errors.ConfigError` unless ``engine`` is known and ``model`` can run it."""
    engines.check_engine(engine, model, getattr(model, "static_decoding", False),
                         "a model with a static key/value cache (the attention-only models)")


def step_tensors(model: Any, cache: dict[str, Any]) -> dict[str, Any]:
    """Every tensor a static step reads, gathered once per cache (detached; linear layers in the cache's
    pre-transposed decode layout). The compiled step takes these as inputs rather than the module, so its
    guards check a few tensor shapes instead of every attribute of every submodule."""
    def ln(m: Any) -> tuple[Tensor, Tensor | None]:
        return m.weight.detach(), None if m.bias is None else m.bias.detach()

    pos = model.position_embedding
    return {"tok": model.token_embedding.weight.detach(), "pos": None if pos is None else pos.weight.detach(),
            "rope": cache.get("rope"), "ln1": [ln(b.ln1) for b in model.blocks],
            "ln2": [ln(b.ln2) for b in model.blocks], "w": cache["w"], "ln_f": ln(model.ln_f),
            "head": model.lm_head.weight.detach().t().contiguous()}


def static_step(t: dict[str, Any], heads: int, eps: float, token: Tensor, position: Tensor, keys: list[Tensor],
                values: list[Tensor]) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Logits ``(B, V)`` after ``token`` (B,) at ``position`` (0-d long tensor, >= 1), and each layer's new key and
    value ``(B, H, 1, Dh)``: attention reads the earlier slots of the ``(B, H, max_len, Dh)`` buffers under a
    mask plus the new key/value, so the buffers are only read here (the caller writes the new slot)."""
    where = position.reshape(1)  # a 0-d index would become a data-dependent integer under torch.compile
    h = t["tok"].index_select(0, token)
    if t["pos"] is not None:
        h = h + t["pos"].index_select(0, where)
    b, d = h.shape
    rope = None if t["rope"] is None else (t["rope"][0].index_select(0, where), t["rope"][1].index_select(0, where))
    earlier = (torch.arange(keys[0].shape[2], device=h.device) < position).view(1, 1, 1, -1)
    scale = (d // heads) ** -0.5
    new_keys, new_values = [], []
    for ln1, ln2, w, ks, vs in zip(t["ln1"], t["ln2"], t["w"], keys, values, strict=True):
        qkv = row_linear(F.layer_norm(h, (d,), *ln1, eps), *w["qkv"])
        q, k, v = qkv.view(b, 1, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        old = (q @ ks.transpose(-1, -2) * scale).masked_fill(~earlier, float("-inf"))
        p = torch.cat([old, (q * k).sum(-1, keepdim=True) * scale], dim=-1).softmax(-1)
        y = p[..., :-1] @ vs + p[..., -1:] * v
        h = h + row_linear(y.reshape(b, d), *w["proj"])
        hidden = F.gelu(row_linear(F.layer_norm(h, (d,), *ln2, eps), *w["fc"]), approximate="tanh")
        h = h + row_linear(hidden, *w["out"])
        new_keys.append(k)
        new_values.append(v)
    return F.layer_norm(h, (d,), *t["ln_f"], eps) @ t["head"], new_keys, new_values


def compiled_step() -> Callable[..., tuple[Tensor, list[Tensor], list[Tensor]]]:
    """:func:`static_step` compiled once per process (inputs are tensors: any model of the same shapes reuses it;
    a new shape or batch size compiles again)."""
    return engines.compile_once(static_step)


class Decoder:
    """Runs the cached steps of a token loop with one engine; ``step`` has the model's ``step`` signature."""

    def __init__(self, model: Any, engine: str = "eager") -> None:
        check_engine(model, engine)
        self.model, self.engine = model, engine
        self._static = compiled_step() if engine == "compiled" else static_step if engine == "static" else None
        block = model.blocks[0] if engine != "eager" else None
        self._heads, self._eps = (block.attn.num_heads, block.ln1.eps) if block is not None else (0, 0.0)

    def step(self, token: Tensor, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Logits after ``token`` (B, 1) and the cache advanced by one position."""
        if self._static is None:
            return self.model.step(token, cache)
        pos = cache["pos"]
        if pos >= self.model.max_len:
            raise ValueError(f"{self.model.name}: context of {self.model.max_len} positions is full")
        tensors = cache.get("static")
        if tensors is None:
            tensors = cache["static"] = step_tensors(self.model, cache)
        position = torch.tensor(pos, device=token.device)
        logits, keys, values = self._static(tensors, self._heads, self._eps, token[:, 0], position, cache["k"],
                                            cache["v"])
        for ks, vs, k, v in zip(cache["k"], cache["v"], keys, values, strict=True):
            ks[:, :, pos:pos + 1], vs[:, :, pos:pos + 1] = k, v
        cache["pos"] = pos + 1
        return logits, cache
