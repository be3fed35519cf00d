"""Import a Hugging Face GPT-2 directory as a chainrule run (``chainrule import gpt2 DIR``).

GPT-2 is exactly chainrule's ``transformer`` with learned positions, tied embeddings, biases and tanh-GELU.
HF's ``Conv1D`` stores weights as (in, out), so they are transposed to ``nn.Linear``'s (out, in). Our
input index 0 holds the learned ``start`` vector and index ``t`` token ``t - 1``; setting ``start`` to the
embedding of ``<|endoftext|>`` makes our logits at ``t`` for tokens ``x`` equal GPT-2's logits at ``t`` for
``[eos] + x[:-1]``. Only ``safetensors``, ``torch`` and ``tokenizers`` are needed (not ``transformers``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch import Tensor

from chainrule.core.errors import ChainruleError, CheckpointError, ConfigError
from chainrule.core.runs.atomic import remove_stale_temporaries
from chainrule.core.runs.checks import MAX_EVENT_DIMS, MAX_LEVELS
from chainrule.core.runs.files import BEST_WEIGHTS, TOKENIZER_FILE
from chainrule.core.runs.kind import RunKind
from chainrule.core.runs.lock import run_lock
from chainrule.core.runs.run import check_new_run_dir
from chainrule.core.training.checkpoint import save_weights
from chainrule.runs import Run, open_run

EOS_TOKEN = "<|endoftext|>"
#: GPT2Config defaults, used for keys a config.json leaves out (as transformers does)
DEFAULTS: dict[str, Any] = {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
                            "n_inner": None, "layer_norm_epsilon": 1e-5, "eos_token_id": 50256}
#: HF GPT-2 Conv1D layer -> our nn.Linear, inside block i
_LINEARS = (("attn.c_attn", "attn.qkv"), ("attn.c_proj", "attn.proj"), ("mlp.c_fc", "mlp.0"),
            ("mlp.c_proj", "mlp.2"))
_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
#: sizes a config.json must give as whole numbers, with bounds far above any GPT-2 (a garbled file must not
#: size a model that exhausts memory before its weights are found not to fit)
_SIZES = {"vocab_size": MAX_LEVELS, "n_positions": MAX_EVENT_DIMS, "n_embd": 1 << 16, "n_layer": 1024,
          "n_head": 1024}


# ------------------------------------------------------------------ config
def read_gpt2_config(hf_dir: Path) -> dict[str, Any]:
    """``config.json`` with defaults filled in; :class:`ChainruleError` for a missing or unsupported one."""
    path = hf_dir / "config.json"
    if not path.is_file():
        raise ChainruleError(f"{hf_dir}: no config.json (expected a Hugging Face GPT-2 directory)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    if raw.get("model_type") != "gpt2":
        raise ConfigError(f"{path}: model_type is {raw.get('model_type')!r}; only 'gpt2' can be imported")
    for key in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        if raw.get(key):
            raise ConfigError(f"{path}: {key}=true is not supported (chainrule's transformer has no such option)")
    if raw.get("scale_attn_weights", True) is False:
        raise ConfigError(f"{path}: scale_attn_weights=false is not supported (attention is scaled by "
                          "1/sqrt(head_dim))")
    if raw.get("tie_word_embeddings", True) is False:
        raise ConfigError(f"{path}: tie_word_embeddings=false is not supported (GPT-2 ties its output layer)")
    act = raw.get("activation_function", "gelu_new")
    if act not in _TANH_GELUS:
        raise ConfigError(f"{path}: activation_function {act!r} is not supported; chainrule's transformer uses "
                          "the tanh approximation of GELU (GPT-2's 'gelu_new')")
    cfg = {**DEFAULTS, **{k: v for k, v in raw.items() if v is not None or k not in DEFAULTS}}
    _check_sizes(path, cfg)
    eos = cfg["eos_token_id"]
    if isinstance(eos, list):
        eos = eos[0] if eos else DEFAULTS["eos_token_id"]
    if eos is None:
        eos = DEFAULTS["eos_token_id"]
    if not isinstance(eos, int) or not 0 <= eos < cfg["vocab_size"]:
        raise ConfigError(f"{path}: eos_token_id {eos!r} is not a token id below vocab_size {cfg['vocab_size']}")
    cfg["eos_token_id"] = eos
    return cfg


def _whole(value: Any, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= high


def _check_sizes(path: Path, cfg: Mapping[str, Any]) -> None:
    """:class:`ConfigError` naming the key for a size that is not a whole number within bounds."""
    for key, high in _SIZES.items():
        if not _whole(cfg[key], high):
            raise ConfigError(f"{path}: {key} must be a whole number from 1 to {high}, not {cfg[key]!r:.40}")
    if cfg["n_embd"] % cfg["n_head"]:
        raise ConfigError(f"{path}: n_embd {cfg['n_embd']} is not divisible by n_head {cfg['n_head']}")
    if cfg["n_inner"] is not None and not _whole(cfg["n_inner"], 1 << 18):
        raise ConfigError(f"{path}: n_inner must be null or a whole number from 1 to {1 << 18}")
    eps = cfg["layer_norm_epsilon"]
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ConfigError(f"{path}: layer_norm_epsilon must be a number in (0, 1), not {eps!r:.40}")


def model_section(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The run's ``model`` section for a GPT-2 config."""
    n_embd, n_inner = int(cfg["n_embd"]), cfg["n_inner"]
    mlp_ratio: float = 4 if n_inner is None else n_inner / n_embd
    if int(mlp_ratio * n_embd) != (4 * n_embd if n_inner is None else n_inner):
        raise ConfigError(f"n_inner={n_inner} with n_embd={n_embd} gives no exact mlp_ratio")
    return {"name": "transformer", "head": "categorical", "embed_dim": n_embd, "num_layers": int(cfg["n_layer"]),
            "num_heads": int(cfg["n_head"]), "mlp_ratio": mlp_ratio, "dropout": 0.0, "positions": "learned",
            "tie_embeddings": True, "bias": True, "norm_eps": float(cfg["layer_norm_epsilon"])}


# ------------------------------------------------------------------ weights
def read_gpt2_weights(hf_dir: Path) -> dict[str, Tensor]:
    """Tensors from ``model.safetensors`` (single or sharded) or ``pytorch_model.bin``."""
    from safetensors.torch import load_file

    single, index, pt = (hf_dir / "model.safetensors", hf_dir / "model.safetensors.index.json",
                         hf_dir / "pytorch_model.bin")
    try:
        if single.is_file():
            return load_file(str(single))
        if index.is_file():
            out: dict[str, Tensor] = {}
            for name in _shard_names(index):
                out.update(load_file(str(hf_dir / name)))
            return out
        if pt.is_file():
            state = torch.load(pt, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise CheckpointError(f"{pt}: not a state dict")
            return state
    except ChainruleError:
        raise
    except Exception as e:  # safetensors / torch.load / json raise their own types for damaged files
        raise CheckpointError(f"{hf_dir}: unreadable GPT-2 weights ({e})") from None
    raise ChainruleError(f"{hf_dir}: no GPT-2 weights (model.safetensors or pytorch_model.bin)")


def _shard_names(index: Path) -> list[str]:
    """The shard files an index names, each confined to the model directory (no absolute path, no ``..``;
    symbolic links are followed, as the Hugging Face cache links every file to a blob outside the directory)."""
    weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index}: weight_map must map tensor names to shard file names")
    names = sorted(set(weight_map.values()))
    for name in names:
        parts = PurePosixPath(name.replace("\\", "/"))
        if not name or parts.is_absolute() or ".." in parts.parts or ":" in name:
            raise CheckpointError(f"{index}: shard {name!r} is outside the model directory")
    return names


def convert_state_dict(hf: Mapping[str, Tensor], num_layers: int, eos_id: int) -> dict[str, Tensor]:
    """HF GPT-2 tensors (with or without the ``transformer.`` prefix) -> our Transformer's state dict."""
    sd = {k.removeprefix("transformer."): v for k, v in hf.items()}

    def take(name: str) -> Tensor:
        if name not in sd:
            raise CheckpointError(f"GPT-2 weights lack {name!r}; is this a GPT-2 checkpoint?")
        return sd[name].detach().to(torch.float32)

    wte = take("wte.weight")
    out = {"token_embedding.weight": wte, "start": wte[eos_id].clone(),
           "position_embedding.weight": take("wpe.weight")}
    for i in range(num_layers):
        src, dst = f"h.{i}.", f"blocks.{i}."
        for ln_src, ln_dst in (("ln_1", "ln1"), ("ln_2", "ln2")):
            out[f"{dst}{ln_dst}.weight"] = take(f"{src}{ln_src}.weight")
            out[f"{dst}{ln_dst}.bias"] = take(f"{src}{ln_src}.bias")
        for hf_name, ours in _LINEARS:
            out[f"{dst}{ours}.weight"] = take(f"{src}{hf_name}.weight").t().contiguous()  # Conv1D (in, out)
            out[f"{dst}{ours}.bias"] = take(f"{src}{hf_name}.bias")
    out["ln_f.weight"], out["ln_f.bias"] = take("ln_f.weight"), take("ln_f.bias")
    out["lm_head.weight"] = wte  # tied
    return out


def _check_against(run: Run, tensors: Mapping[str, Tensor]) -> None:
    """Keys and shapes must match the model the run config builds (built on the meta device: no memory)."""
    with torch.device("meta"):
        expected = run.build_model().state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    bad = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
           if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)]
    if missing or extra or bad:
        raise CheckpointError(f"GPT-2 weights do not fit its config.json (missing {missing[:3]}, unexpected "
                              f"{extra[:3]}, shapes {bad[:3]})")


# ------------------------------------------------------------------ tokenizer
def read_gpt2_tokenizer(hf_dir: Path):
    """The byte-level BPE as a chainrule ``BPETokenizer``, from tokenizer.json or vocab.json + merges.txt."""
    from chainrule.modalities.text.data.tokenizers import BPETokenizer

    tj, vocab, merges = hf_dir / "tokenizer.json", hf_dir / "vocab.json", hf_dir / "merges.txt"
    try:
        if tj.is_file():
            return BPETokenizer.from_file(tj)
        if vocab.is_file() and merges.is_file():
            return BPETokenizer(_bpe_from_vocab_merges(vocab, merges))
    except ChainruleError:
        raise
    except Exception as e:  # tokenizers raises plain Exceptions for malformed files
        raise ChainruleError(f"{hf_dir}: unreadable GPT-2 tokenizer ({e})") from None
    raise ChainruleError(f"{hf_dir}: no tokenizer (tokenizer.json, or vocab.json + merges.txt)")


def _bpe_from_vocab_merges(vocab: Path, merges: Path):
    """GPT-2's byte-level BPE (as GPT2TokenizerFast builds it) from the slow tokenizer's two files."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    hf = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    hf.post_processor = processors.ByteLevel(trim_offsets=False)
    if hf.token_to_id(EOS_TOKEN) is not None:
        hf.add_special_tokens([EOS_TOKEN])
    return hf


# ------------------------------------------------------------------ entry point
def import_gpt2(hf_dir: str | Path, run_dir: str | Path) -> Run:
    """Convert a Hugging Face GPT-2 directory into a chainrule run directory and open it.

    Writes ``config.yaml``, ``best.safetensors`` and ``tokenizer.json`` (chainrule format) into ``run_dir``,
    which must not exist or be empty.
    """
    src, out = Path(hf_dir), Path(run_dir)
    if not src.is_dir():
        raise ChainruleError(f"{src}: directory not found")
    check_new_run_dir(out, "choose another --run")
    cfg = read_gpt2_config(src)
    tokenizer = read_gpt2_tokenizer(src)
    if tokenizer.vocab_size > int(cfg["vocab_size"]):
        raise ConfigError(f"{src}: the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                          f"{cfg['vocab_size']}")
    name = src.resolve().name
    run = Run(path=out, config={
        "data": {"name": None, "note": f"imported GPT-2 weights ({name}); no training data"},
        "model": model_section(cfg),
        "train": {},
        "spec": {"kind": RunKind.TEXT.value, "event_shape": [1, int(cfg["n_positions"])],
                 "levels": int(cfg["vocab_size"]), "num_classes": 0, "class_names": [],
                 "data": f"imported GPT-2 ({name})"},
    })
    hf_tensors = read_gpt2_weights(src)
    try:
        tensors = convert_state_dict(hf_tensors, int(cfg["n_layer"]), int(cfg["eos_token_id"]))
        _check_against(run, tensors)
    except CheckpointError as e:
        raise CheckpointError(f"{src}: {e}") from None
    with run_lock(out, create=True):
        check_new_run_dir(out, "choose another --run")  # again, now that no other writer can fill it
        remove_stale_temporaries(out)
        save_weights(tensors, out / BEST_WEIGHTS, {"source": "gpt2", "imported_from": name,
                                                   "eos_token_id": str(cfg["eos_token_id"])})
        tokenizer.save(out / TOKENIZER_FILE)
        run.save_config()  # last: a directory with config.yaml is a complete run
    return open_run(out)
