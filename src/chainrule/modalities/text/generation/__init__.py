"""Text generation: logits processors, the token loop (cached or recomputed) and streamed decoding."""

from chainrule.modalities.text.generation.config import GenerationConfig
from chainrule.modalities.text.generation.loop import TokenContext, generate_tokens
from chainrule.modalities.text.generation.processors import (
    apply_temperature,
    banned_ngram_mask,
    choose_tokens,
    no_repeat_ngram,
    process_logits,
    repetition_penalty,
    top_k_filter,
    top_p_filter,
)
from chainrule.modalities.text.generation.text import TextStream, decode_stream, generate_strings, stream_texts

__all__ = [
    "GenerationConfig", "TokenContext", "TextStream", "apply_temperature", "banned_ngram_mask", "choose_tokens",
    "decode_stream", "generate_strings", "generate_tokens", "no_repeat_ngram", "process_logits",
    "repetition_penalty", "stream_texts", "top_k_filter", "top_p_filter",
]
