"""Export a text run as a Hugging Face GPT-2 directory (``chainrule export RUN --format hf --out DIR``).

The inverse of :mod:`chainrule.convert.gpt2`: our ``transformer`` with learned positions is GPT-2, up to the
learned start vector, which becomes the embedding of a BOS token (see :mod:`chainrule.export.hf_tokenizer`), so
``GPT2LMHeadModel`` logits at ``t`` for ``[bos] + x[:-1]`` equal ours at ``t`` for ``x`` on every ordinary token.
The BOS row of the output layer is extra: its logit is suppressed in ``generation_config.json`` and should be
masked when scoring. Options GPT-2 lacks are refused (rotary positions, class conditioning); missing biases
become zeros. Writes ``config.json``, ``generation_config.json``, ``model.safetensors``, ``tokenizer.json``,
``tokenizer_config.json`` and ``special_tokens_map.json`` with ``safetensors`` and ``tokenizers`` only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from chainrule.core.errors import ConfigError
from chainrule.core.runs.atomic import atomic_write_bytes, atomic_write_text
from chainrule.core.runs.kind import RunKind
from chainrule.export.hf_tokenizer import bos_id_of, hf_tokenizer, to_json, tokenizer_config, with_bos
from chainrule.modalities.text.data.tokenizers import CharTokenizer, Tokenizer
from chainrule.modalities.text.models.transformer import Transformer

#: our block's linear layer -> HF GPT-2's Conv1D (stored transposed, (in, out))
_LINEARS = (("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"), ("mlp.0", "mlp.c_fc"), ("mlp.2", "mlp.c_proj"))
WEIGHTS_FILE = "model.safetensors"


def check_expressible(model: Any) -> None:
    """:class:`ConfigError` unless ``model`` is a learned-position, unconditional ``transformer``."""
    if type(model) is not Transformer:
        raise ConfigError(f"model {model.name!r} cannot be written as GPT-2: only the text 'transformer' "
                          "(attention blocks with learned positions) has a Hugging Face equivalent")
    if model.position_embedding is None:
        raise ConfigError("a transformer with rotary positions cannot be written as GPT-2 (GPT-2 learns its "
                          "positions); export it with --format onnx or --format pretrained")
    if model.class_embedding is not None:
        raise ConfigError("a class-conditional transformer cannot be written as GPT-2 (GPT-2 has no class input)")


def gpt2_state_dict(model: Transformer, bos_id: int) -> dict[str, Tensor]:
    """Our weights under HF GPT-2 names, with the start vector as row ``bos_id`` of the token embedding."""
    wte = model.token_embedding.weight.detach().float()
    if bos_id == wte.shape[0]:
        wte = torch.cat([wte, model.start.detach().float()[None]])
    tied = model.lm_head.weight is model.token_embedding.weight
    out = {"transformer.wte.weight": wte, "transformer.wpe.weight": model.position_embedding.weight.detach().float()}

    def norm(prefix: str, ln: torch.nn.LayerNorm) -> None:
        out[f"{prefix}.weight"] = ln.weight.detach().float()
        out[f"{prefix}.bias"] = (torch.zeros_like(ln.weight) if ln.bias is None else ln.bias).detach().float()

    for i, block in enumerate(model.blocks):
        src, dst = block, f"transformer.h.{i}."
        norm(dst + "ln_1", src.ln1)
        norm(dst + "ln_2", src.ln2)
        for ours, theirs in _LINEARS:
            linear = src.get_submodule(ours)
            out[f"{dst}{theirs}.weight"] = linear.weight.detach().float().t()
            bias = linear.bias if linear.bias is not None else linear.weight.new_zeros(linear.out_features)
            out[f"{dst}{theirs}.bias"] = bias.detach().float()
    norm("transformer.ln_f", model.ln_f)
    if not tied:  # the extra BOS row of an untied output layer: logit 0 (suppressed in generation anyway)
        head = model.lm_head.weight.detach().float()
        out["lm_head.weight"] = torch.cat([head, head.new_zeros(wte.shape[0] - head.shape[0], head.shape[1])])
    return {k: v.contiguous().cpu() for k, v in out.items()}


def gpt2_config(model: Transformer, vocab_size: int, bos_id: int) -> dict[str, Any]:
    """``config.json`` of the GPT-2 equal to ``model`` (sizes, epsilon, dropout, tying, BOS)."""
    block = model.blocks[0]
    p = model.drop.p
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": vocab_size,
            "n_positions": model.max_len, "n_embd": model.embed_dim, "n_layer": len(model.blocks),
            "n_head": block.attn.num_heads, "n_inner": block.mlp[0].out_features,
            "activation_function": "gelu_new", "layer_norm_epsilon": model.ln_f.eps, "resid_pdrop": p,
            "embd_pdrop": p, "attn_pdrop": p, "scale_attn_weights": True, "initializer_range": 0.02,
            "tie_word_embeddings": model.lm_head.weight is model.token_embedding.weight,
            "bos_token_id": bos_id, "eos_token_id": None, "use_cache": True, "torch_dtype": "float32"}


def _start_matches(model: Transformer) -> list[int]:
    """Token ids whose embedding equals the start vector exactly."""
    same = (model.token_embedding.weight == model.start).all(dim=1)
    return [int(i) for i in same.nonzero().flatten().tolist()]


def export_hf(model: Any, tokenizer: Tokenizer, out: str | os.PathLike) -> dict[str, Any]:
    """Write the GPT-2 directory of ``model`` and ``tokenizer`` into ``out``; returns its ``config.json``."""
    from safetensors.torch import save

    check_expressible(model)
    if tokenizer.vocab_size != model.vocab_size:
        raise ConfigError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model {model.vocab_size}")
    hf, bos_text, bos_id = with_bos(hf_tokenizer(tokenizer), bos_id_of(tokenizer, _start_matches(model)))
    vocab_size = max(model.vocab_size, bos_id + 1)
    config = gpt2_config(model, vocab_size, bos_id)
    tensors = gpt2_state_dict(model, bos_id)
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory}: exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / WEIGHTS_FILE, save(tensors, metadata={"format": "pt"}))
    special = {"bos_token": bos_text}
    if isinstance(tokenizer, CharTokenizer):
        special["unk_token"] = tokenizer_config(bos_text, 0, True)["unk_token"]
    files = {"tokenizer.json": to_json(hf),
             "tokenizer_config.json": _json(tokenizer_config(bos_text, model.max_len,
                                                             isinstance(tokenizer, CharTokenizer))),
             "special_tokens_map.json": _json(special),
             "generation_config.json": _json({"bos_token_id": bos_id, "suppress_tokens": [bos_id]}),
             "config.json": _json(config)}  # last: a directory with config.json is complete
    for name, text in files.items():
        atomic_write_text(directory / name, text)
    return config


def _json(d: dict[str, Any]) -> str:
    return json.dumps(d, indent=2, ensure_ascii=False) + "\n"


def export_hf_run(run: Any, out: str | os.PathLike) -> dict[str, Any]:
    """:func:`export_hf` for a text run (its best weights and tokenizer)."""
    from chainrule.export import run_tokenizer

    if run.kind is not RunKind.TEXT:
        raise ConfigError(f"{run.path}: --format hf writes text models only (this is a {run.kind.value} run); "
                          "use --format pretrained")
    return export_hf(run.load_model(), run_tokenizer(run.path), out)
