"""Request bodies of the OpenAI-compatible endpoints, under the same strict rules as the native ones.

Fields OpenAI defines that chainrule cannot honour are accepted only at their neutral value (a penalty of 0, no
logit bias, no suffix), so a client never gets a silently different behaviour; anything unknown is a 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from chainrule.core import limits
from chainrule.serve.schemas import MAX_NAME, MAX_NEW_TOKENS, MAX_PROMPT_CHARS, MAX_SAMPLES, _Request

#: OpenAI's own cap on returned alternatives per token
MAX_LOGPROBS = 5
MAX_TOKEN_ID = 2**31 - 1

Text = Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
TokenIds = Annotated[list[Annotated[int, Field(ge=0, le=MAX_TOKEN_ID)]], Field(max_length=MAX_PROMPT_CHARS)]
StopText = Annotated[str, Field(min_length=1, max_length=200)]


class CompletionRequest(_Request):
    """``POST /v1/completions``: OpenAI's legacy completions; a prompt is text or token ids, one or a list."""

    model: Annotated[str | None, Field(None, max_length=MAX_NAME)]
    prompt: Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_SAMPLES)] | TokenIds | Annotated[
        list[TokenIds], Field(min_length=1, max_length=MAX_SAMPLES)] = ""
    max_tokens: int | None = Field(16, ge=0, le=MAX_NEW_TOKENS)
    temperature: Annotated[float, AfterValidator(limits.check_temperature)] = Field(1.0, ge=0.0, le=100.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1, le=MAX_SAMPLES)
    stop: StopText | Annotated[list[StopText], Field(max_length=16)] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stream: bool = False
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    # chainrule's own sampling options (an OpenAI client sends them through ``extra_body``)
    top_k: int | None = Field(None, ge=0, le=1_000_000)
    repetition_penalty: Annotated[float, AfterValidator(limits.check_repetition_penalty)] = Field(
        1.0, gt=0.0, le=100.0)
    # OpenAI fields accepted at their neutral value only
    frequency_penalty: float = Field(0.0, ge=0.0, le=0.0, description="not supported: must be 0")
    presence_penalty: float = Field(0.0, ge=0.0, le=0.0, description="not supported: must be 0")
    logit_bias: Annotated[dict[str, float], Field(max_length=0)] | None = None
    best_of: int | None = Field(None, ge=1, le=MAX_SAMPLES)
    suffix: None = None
    user: Annotated[str, Field(max_length=MAX_NAME)] | None = None
    stream_options: dict[str, Any] | None = None

    @field_validator("logprobs")
    @classmethod
    def _not_streamed(cls, logprobs: int | None, info: ValidationInfo) -> int | None:
        if logprobs is not None and info.data.get("stream"):
            raise ValueError("not available with stream; ask without stream")
        return logprobs

    @field_validator("best_of")
    @classmethod
    def _every_sample(cls, best_of: int | None, info: ValidationInfo) -> int | None:
        if best_of is not None and best_of != info.data.get("n"):
            raise ValueError("only best_of equal to n is supported (every sample is returned)")
        return best_of

    def prompts(self) -> list[str | list[int]]:
        """The prompts as a list: each a text or a list of token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and all(isinstance(t, int) for t in p):
            return [list(p)]
        return list(p) if p else [[]]

    @property
    def new_tokens(self) -> int:
        """``max_tokens``, where null means OpenAI's default of 16."""
        return 16 if self.max_tokens is None else self.max_tokens

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def generation_options(self, seed: int) -> dict[str, Any]:
        """The :class:`chainrule.modalities.text.generation.GenerationConfig` fields of one prompt's samples."""
        return {"max_new_tokens": self.new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "top_k": self.top_k, "repetition_penalty": self.repetition_penalty, "stop": self.stops(),
                "seed": seed, "num_samples": self.n}


class TokenizeRequest(_Request):
    """``POST /tokenize`` (vLLM's shape, which lm-evaluation-harness's remote tokenizer speaks)."""

    model: Annotated[str | None, Field(None, max_length=MAX_NAME)]
    prompt: Text
    add_special_tokens: bool = False


class DetokenizeRequest(_Request):
    """``POST /detokenize``: token ids back to text."""

    model: Annotated[str | None, Field(None, max_length=MAX_NAME)]
    tokens: TokenIds
