"""Memory estimates of requests before they run, from the request's sizes and the model's widths.

An estimate is the extra memory one request's work may hold at its peak (caches, activations, token buffers,
outputs), not the model's weights, which are loaded once. The widths are read off the model's layers
(:func:`model_widths`), so every architecture gets a formula without naming any: attention layers cache keys
and values per position, recurrent layers keep a state per sample, a model whose sampling cache holds fixed maps
reports their size (``cache_bytes_per_sample``), and a full pass holds a few activations of
the widest hidden layer, plus the outputs, per position. Estimates lean high: ``ACTIVATIONS`` live layers per
position, every copy the sampling loops make, and ``SLACK`` for the allocator keeping freed blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from chainrule.core.nn.attention import CausalSelfAttention
from chainrule.serve.registry import ServedModel

FLOAT, LONG = 4, 8
#: activations of the widest hidden layer alive at once per position in a full pass
ACTIVATIONS = 4
#: measured peaks exceed the live tensors: the allocator keeps freed blocks for reuse
SLACK = 1.25
#: fixed cost of any request: parsing, Python objects, the reply
BASE_BYTES = 2 << 20
#: a Python float in a list, as results are returned
PY_FLOAT = 32
#: output elements of one teacher-forced chunk of the log-prob endpoints (``text.LOGITS_BUDGET``,
#: ``images.PARAMS_BUDGET``)
CHUNK_ELEMENTS = 1 << 25
#: windows scored at once by one-step-ahead series scoring (``anomaly.one_step_log_probs``' ``max_batch``)
SCORE_ROWS = 4096


@dataclass(frozen=True)
class Widths:
    """A model's sizes in floats: ``cache`` per sample per position (attention keys and values, all layers),
    ``state`` per sample (recurrent layers), ``hidden`` per position (the widest layer before the outputs) and
    ``out`` per position (the parameters of each conditional: logits over the vocabulary for text)."""

    cache: int
    state: int
    hidden: int
    out: int


def model_widths(model: nn.Module, out: int) -> Widths:
    """The :class:`Widths` of ``model`` whose output layer is ``out`` wide, from its attention, recurrent, linear,
    convolution and embedding layers."""
    cache = state = 0
    hidden = 1
    for m in model.modules():
        if isinstance(m, CausalSelfAttention):
            cache += 2 * m.num_heads * m.head_dim
        elif isinstance(m, nn.RNNBase):
            per_layer = m.hidden_size * (2 if isinstance(m, nn.LSTM) else 1) * (2 if m.bidirectional else 1)
            state += m.num_layers * per_layer
            hidden = max(hidden, m.hidden_size)
        elif isinstance(m, nn.Linear) and m.out_features != out:
            hidden = max(hidden, m.out_features)
        elif isinstance(m, nn.modules.conv._ConvNd) and m.out_channels != out:
            hidden = max(hidden, m.out_channels)
        elif isinstance(m, nn.Embedding):
            hidden = max(hidden, m.embedding_dim)
    return Widths(cache, state, hidden, out)


def _total(variable: float) -> int:
    return BASE_BYTES + int(SLACK * variable)


def _per_position(w: Widths) -> int:
    """Bytes one position holds in a full pass."""
    return (w.hidden * ACTIVATIONS + w.out) * FLOAT


def generate_bytes(served: ServedModel, prompt: str, num_samples: int, max_new_tokens: int,
                   no_repeat_ngram_size: int) -> int:
    """Text generation: the cache (sized to the context) three times over (the request's own prefilled cache,
    its rows in the model's continuous decode batch, and as many spare rows again in the batch's buffers, which
    grow by doubling; a window jump refills the first while the second is held), the prefill pass, the token
    history (copied as it grows), the n-gram comparison over the whole history, and the per-step logits work."""
    model = served.model
    b, vocab, context = num_samples, int(model.vocab_size), int(model.max_len)
    w = model_widths(model, vocab)
    prompt_tokens = len(prompt.encode("utf-8"))  # a token is at least one byte
    tokens = prompt_tokens + max_new_tokens
    slides = tokens + 1 > context
    if not model.supports_cache:  # every step re-runs the window
        window = min(tokens + 1, context)
    else:
        window = min(max(prompt_tokens + 1, context // 2) if slides else prompt_tokens + 1, context)
    cache = b * (context * w.cache + w.state) * FLOAT * 3
    prefill = b * window * _per_position(w)
    history = 3 * b * tokens * LONG + prompt_tokens * 40  # the (B, L) buffer grown by doubling; the prompt ids
    ngram = b * tokens * (no_repeat_ngram_size + 8) if no_repeat_ngram_size else 0  # bool matches, float hits
    logits = 8 * b * vocab * LONG  # processed copies, sort values and indices
    text = b * max_new_tokens * 64  # decoded pieces and the reply
    return _total(cache + prefill + history + ngram + logits + text)


def sample_bytes(served: ServedModel, num_samples: int) -> int:
    """Image sampling: the samples, a full pass over every position (when the model steps instead: a cache of
    every position, the state, and the fixed maps the model says its cache holds, e.g. convolution inputs), and
    the upscaled PNG grid."""
    model = served.model
    w = model_widths(model, int(model.num_params_out))
    positions = int(model.num_positions)
    if model.supports_cache:
        fixed = int(model.cache_bytes_per_sample())
        work = num_samples * ((w.state + positions * w.cache) * FLOAT + fixed + _per_position(w))
    else:
        work = num_samples * positions * _per_position(w)
    grid = num_samples * positions * 64 * 3
    return _total(num_samples * positions * LONG + work + grid)


def audio_bytes(served: ServedModel, num_samples: int, length: int) -> int:
    """Audio sampling: ``length`` levels per waveform, the model's queues (``cache_bytes_per_sample``: every
    layer's last ``dilation`` inputs), one step's activations and head parameters, the conditioning gates, and
    the WAV's intermediate copies."""
    model = served.model
    w = model_widths(model, int(model.num_params_out))
    queues = int(model.cache_bytes_per_sample())
    gates = w.hidden * 2 * len(getattr(model, "dilations", ())) * FLOAT
    wav = length * 32  # numpy levels, librosa's float64 expansion, the float32 wave and its joined copy, PCM twice
    return _total(num_samples * (length * LONG + queues + gates + _per_position(w) + wav))


def _history(served: ServedModel) -> int:
    """Points before the forecast origin the forecaster reads (``max(lags) + context``)."""
    spec = served.run.spec
    return int(spec["context"]) + max(int(v) for v in spec["lags"])


def forecast_bytes(served: ServedModel, horizon: int | None, num_samples: int, num_quantiles: int) -> int:
    """A forecast: ``num_samples`` paths over the model's history window plus the horizon, each with its own copy
    of the cache (keys/values, recurrent state, value buffers and time features), the per-step work, and the
    sample paths and their quantiles."""
    model = served.forecaster
    w = model_widths(model, int(model.num_params_out))
    steps = int(horizon or served.run.spec["horizon"])
    history = _history(served)
    length, n = history + steps, num_samples
    per_path = length * (w.cache * FLOAT + FLOAT + 1 + model.num_time_features * FLOAT) + w.state * FLOAT
    if model.supports_cache:
        work = n * (per_path + _per_position(w) + length * FLOAT) + history * _per_position(w)
    else:  # the whole window is re-run for every step
        work = n * (per_path + length * (_per_position(w) + model.num_inputs * FLOAT))
    paths = n * steps * (3 * FLOAT + 4 * LONG)  # draws, stacked, float64 copy, quantile sorts
    reply = steps * (2 + num_quantiles) * PY_FLOAT * 2
    return _total(work + paths + reply)


def series_log_prob_bytes(served: ServedModel, lengths: list[int]) -> int:
    """One-step-ahead scores of series (one at a time): windows of the model's history, ``SCORE_ROWS`` at once."""
    model = served.forecaster
    w = model_widths(model, int(model.num_params_out))
    rows = min(max(lengths, default=1), SCORE_ROWS)
    inputs = (model.num_inputs + model.num_time_features) * FLOAT
    return _total(rows * (_history(served) + 1) * (_per_position(w) + inputs) + sum(lengths) * PY_FLOAT * 2)


def log_prob_bytes(served: ServedModel, num_examples: int, length: int) -> int:
    """Teacher-forced scoring of ``num_examples`` texts or images of ``length`` positions each, in chunks whose
    outputs stay under ``CHUNK_ELEMENTS`` elements."""
    model = served.model
    out = int(getattr(model, "vocab_size", 0)) or int(model.num_params_out)
    w = model_widths(model, out)
    rows = max(1, min(num_examples, CHUNK_ELEMENTS // max(length * out, 1)))
    return _total(rows * length * _per_position(w) + num_examples * length * PY_FLOAT * 2)


def megabytes(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.0f} MB"
