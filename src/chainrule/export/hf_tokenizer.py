"""A run's tokenizer as a Hugging Face ``tokenizers`` tokenizer with the same ids, plus a start-of-text token.

Our models read a learned start vector before the first token; a Hugging Face GPT-2 reads a token instead. The
exported tokenizer therefore gets one extra special token (the BOS, id ``vocab_size`` unless the run already has
one, e.g. GPT-2's ``<|endoftext|>``) and a post-processor that puts it first, so ``model(**tokenizer(text))``
scores ``text`` exactly as chainrule does. Ids of ordinary tokens are unchanged:

* char: a ``WordLevel`` model over the run's characters, a pre-tokenizer that cuts every character apart and a
  ``Fuse`` decoder; the unknown id keeps its place (the last one) and its U+FFFD text.
* byte: a ``BPE`` model with no merges over GPT-2's printable image of the 256 bytes, ids = byte values.
* bpe: the run's own byte-level BPE, unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from chainrule.core.errors import ConfigError
from chainrule.modalities.text.data.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    _byte_to_unicode,
)

BOS_TOKEN = "<|startoftext|>"
UNKNOWN_TEXT = "\ufffd"


def hf_tokenizer(tokenizer: Tokenizer) -> Any:  # -> tokenizers.Tokenizer
    """The HF ``tokenizers`` equivalent of ``tokenizer`` (same ids, no BOS yet)."""
    from tokenizers import Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as HFTokenizer

    if isinstance(tokenizer, BPETokenizer):
        return HFTokenizer.from_str(tokenizer.hf.to_str())
    if isinstance(tokenizer, ByteTokenizer):
        alphabet = _byte_to_unicode()
        hf = HFTokenizer(models.BPE(vocab={alphabet[b]: b for b in range(256)}, merges=[]))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        hf.decoder = decoders.ByteLevel()
        return hf
    if isinstance(tokenizer, CharTokenizer):
        if UNKNOWN_TEXT in tokenizer.chars:
            raise ConfigError(f"a char vocabulary holding {UNKNOWN_TEXT!r} cannot be exported: it is the text of "
                              "the unknown id")
        vocab = {c: i for i, c in enumerate(tokenizer.chars)} | {UNKNOWN_TEXT: tokenizer.unk_id}
        hf = HFTokenizer(models.WordLevel(vocab=vocab, unk_token=UNKNOWN_TEXT))
        hf.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        hf.decoder = decoders.Fuse()
        return hf
    raise ConfigError(f"a {tokenizer.kind} tokenizer cannot be exported to Hugging Face")


def bos_id_of(tokenizer: Tokenizer, start_matches: list[int]) -> int | None:
    """An existing id to reuse as the BOS: a special token whose embedding equals the start vector (an imported
    GPT-2's ``<|endoftext|>``), else ``None`` (a new token is added)."""
    if not isinstance(tokenizer, BPETokenizer):
        return None
    special = {i for i, t in tokenizer.hf.get_added_tokens_decoder().items() if t.special}
    return next((i for i in start_matches if i in special), None)


def with_bos(hf: Any, bos_id: int | None) -> tuple[Any, str, int]:
    """``hf`` with a BOS special token put before every encoded text; returns (tokenizer, BOS text, BOS id)."""
    from tokenizers import processors

    if bos_id is None:
        if hf.token_to_id(BOS_TOKEN) is not None:
            raise ConfigError(f"the vocabulary already holds {BOS_TOKEN!r} as an ordinary token")
        size = hf.get_vocab_size(with_added_tokens=True)
        hf.add_special_tokens([BOS_TOKEN])
        bos_text, bos_id = BOS_TOKEN, hf.token_to_id(BOS_TOKEN)
        if bos_id != size:
            raise ConfigError(f"the start token got id {bos_id}, expected {size}")
    else:
        bos_text = hf.id_to_token(bos_id)
    hf.post_processor = processors.TemplateProcessing(single=f"{bos_text} $A", pair=f"{bos_text} $A $B",
                                                      special_tokens=[(bos_text, bos_id)])
    return hf, bos_text, bos_id


def tokenizer_config(bos_text: str, max_len: int, unknown: bool) -> dict[str, Any]:
    """``tokenizer_config.json`` for ``PreTrainedTokenizerFast`` (what ``AutoTokenizer`` opens)."""
    cfg: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos_text,
                           "model_max_length": max_len, "clean_up_tokenization_spaces": False}
    if unknown:
        cfg["unk_token"] = UNKNOWN_TEXT
    return cfg


def to_json(hf: Any) -> str:
    """The tokenizer as ``tokenizer.json`` text (pretty, stable)."""
    return json.dumps(json.loads(hf.to_str()), indent=1, ensure_ascii=False) + "\n"
