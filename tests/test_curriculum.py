"""Curriculum learning: training windows follow the [step, context_length] schedule exactly."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.core.errors import ConfigError
from chainrule.core.training import TrainConfig, Trainer
from chainrule.core.training.checkpoint import CheckpointFiles, read_weights
from chainrule.modalities.image.data.base import Discretizer, ImageDataset
from chainrule.modalities.registry import build_model
from chainrule.modalities.text.models.rnn_lm import RNNLM

MAX_LEN, VOCAB = 16, 5
SCHEDULE = [[0, 4], [3, 8], [7, 16]]
EXPECTED = [4, 4, 4, 8, 8, 8, 8, 16, 16, 16]  # the length for each of the 10 steps under SCHEDULE
_NOT_GIVEN = "not given"


class FakeText:
    """The trainer's dataset protocol over random token windows, recording the ``length`` of every ``get``."""

    labels = None
    num_classes = 0
    class_names: list[str] = []
    levels = VOCAB
    event_shape = (1, MAX_LEN)

    def __init__(self, n: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.tokens = torch.randint(0, VOCAB, (n, 1, MAX_LEN), generator=g)
        self.lengths: list = []

    def __len__(self) -> int:
        return len(self.tokens)

    def set_epoch(self, epoch: int) -> None:
        pass

    def get(self, indices: torch.Tensor, length=_NOT_GIVEN):
        self.lengths.append(length)
        n = MAX_LEN if length is _NOT_GIVEN or length is None else length
        return self.tokens[indices.cpu(), :, :n], None

    def describe(self) -> str:
        return "fake text"


def _model():
    torch.manual_seed(0)
    return build_model("rnn_lm", (1, MAX_LEN), VOCAB, head="categorical", **RNNLM.TINY)


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=10, batch_size=4, warmup_steps=0, eval_every=5, checkpoint_every=5, keep_checkpoints=0,
                log_every=1, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def _train_lines(run_dir) -> list[dict]:
    lines = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if r["split"] == "train"]


def test_lengths_follow_schedule(tmp_path):
    train, val = FakeText(), FakeText(8, seed=1)
    Trainer(_model(), train, val, _cfg(curriculum=SCHEDULE), tmp_path).fit()
    assert train.lengths == EXPECTED
    assert val.lengths and set(val.lengths) == {_NOT_GIVEN}  # validation always uses the full context
    lines = _train_lines(tmp_path)
    assert [r["step"] for r in lines] == list(range(1, 11))
    assert [r["context_length"] for r in lines] == EXPECTED
    for r in lines:  # per-token bits under the current context length
        assert r["train_bpd"] == pytest.approx(r["train_nll"] / (r["context_length"] * 0.6931471805599453))


def test_off_by_default(tmp_path):
    assert TrainConfig().curriculum is None and TrainConfig().context_length(123) is None
    train = FakeText()
    Trainer(_model(), train, FakeText(8, seed=1), _cfg(), tmp_path).fit()
    assert train.lengths == [_NOT_GIVEN] * 10  # length never passed
    assert all("context_length" not in r for r in _train_lines(tmp_path))


def test_resume_continues_the_schedule_exactly(tmp_path):
    full = tmp_path / "full"
    Trainer(_model(), FakeText(), FakeText(8, seed=1), _cfg(curriculum=SCHEDULE), full).fit()
    final, _ = read_weights(CheckpointFiles.at(full, 10).weights)
    for path in CheckpointFiles.at(full, 10).paths():  # as if killed after the step-5 checkpoint
        path.unlink(missing_ok=True)
    train = FakeText()
    Trainer(_model(), train, FakeText(8, seed=1), _cfg(curriculum=SCHEDULE), full, resume=True).fit()
    assert train.lengths == EXPECTED[5:]
    resumed, _ = read_weights(CheckpointFiles.at(full, 10).weights)
    for k, v in final.items():
        torch.testing.assert_close(resumed[k], v, atol=0, rtol=0)


@pytest.mark.parametrize("bad", [
    [[1, 4]], [[0, 4], [0, 8]], [[0, 4], [5, 8], [3, 16]], [[0, 0]], [[0, -2]], [[0, 2.5]], [[0, 4, 5]],
    [[0, "x"]], "0:4", 7, [4, 8],
])
def test_bad_schedules_raise(bad):
    with pytest.raises(ConfigError, match="curriculum"):
        TrainConfig.from_dict({"curriculum": bad})


@pytest.mark.parametrize("off", [None, []])
def test_empty_is_off(off):
    assert TrainConfig.from_dict({"curriculum": off}).curriculum is None


def test_length_beyond_the_model_context_raises(tmp_path):
    with pytest.raises(ConfigError, match="context length of 32"):
        Trainer(_model(), FakeText(), None, _cfg(curriculum=[[0, 8], [5, 32]]), tmp_path)


def test_dataset_without_length_raises(tmp_path):
    images = ImageDataset(torch.rand(8, 1, 1, MAX_LEN), None, Discretizer("threshold"), "tiny", "train")
    with pytest.raises(ConfigError, match="curriculum needs a dataset"):
        Trainer(_model(), images, None, _cfg(curriculum=[[0, 8]]), tmp_path)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 64)), min_size=0, max_size=5), st.integers(1, 64))
def test_context_length_is_the_last_started_pair(gaps, first_len):
    steps, lengths = [0], [first_len]
    for gap, length in gaps:
        steps.append(steps[-1] + gap)
        lengths.append(length)
    cfg = TrainConfig(curriculum=[[s, n] for s, n in zip(steps, lengths, strict=True)])
    for i, (start, length) in enumerate(zip(steps, lengths, strict=True)):
        end = steps[i + 1] if i + 1 < len(steps) else start + 10
        assert [cfg.context_length(s) for s in range(start, end)] == [length] * (end - start)
