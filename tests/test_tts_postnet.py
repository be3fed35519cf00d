"""The text-to-mel post-net: a refiner outside the likelihood, trained by its own L1 term on real frames only."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile
import torch

from chainrule.cli import main
from chainrule.core.contract import Condition
from chainrule.core.errors import ConfigError
from chainrule.modalities.audio.data.prompts import ALPHABET
from chainrule.modalities.audio.data.sources import SPEECH_ROOTS, SPEECH_TRANSCRIPTS
from chainrule.modalities.audio.mel import MelFeatures
from chainrule.modalities.audio.models.tacotron import Tacotron
from chainrule.tts import _build

VOCAB = len(ALPHABET) + 2
ROOT = next((Path(p) for p in SPEECH_ROOTS if Path(p).is_dir()), None)
TRANSCRIPT = next((Path(p) for p in SPEECH_TRANSCRIPTS if Path(p).is_file()), None)
needs_speech = pytest.mark.skipif(ROOT is None or TRANSCRIPT is None, reason="Debian speech packages not installed")


def batch(seed: int = 0) -> tuple[torch.Tensor, Condition]:
    g = torch.Generator().manual_seed(seed)
    frames, ids = torch.randn(2, 9, 8, generator=g), torch.randint(2, VOCAB, (2, 5), generator=g)
    return frames, Condition(labels=ids, observed=torch.arange(9)[None] < torch.tensor([[9], [6]]))


def model_with_postnet(seed: int = 0) -> Tacotron:
    torch.manual_seed(seed)
    model = Tacotron(8, VOCAB, reduction=2, guided_attention=0.5, postnet=16, **Tacotron.TINY)
    with torch.no_grad():  # a post-net that has learnt something (its last layer starts at zero)
        model.postnet.convs[-1].weight.normal_(0, 0.3)
    return model


def decoder_gradients(model: Tacotron, frames: torch.Tensor, cond: Condition) -> dict[str, torch.Tensor]:
    model.zero_grad()
    torch.manual_seed(5)  # the prenet's dropout
    model.loss(frames, cond).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if not n.startswith("postnet")}


def test_postnet_changes_neither_the_likelihood_nor_the_decoders_gradients():
    """``log_prob`` is the decoder's density whatever the post-net's weights, and the post-net's L1 term sends no
    gradient into the decoder: the decoder learns exactly as it would without a post-net."""
    frames, cond = batch()
    model = model_with_postnet()
    torch.manual_seed(3)
    before = model.log_prob(frames, cond)
    with torch.no_grad():
        model.postnet.convs[0].weight.mul_(-2)
    torch.manual_seed(3)
    assert torch.equal(model.log_prob(frames, cond), before)
    with_postnet = decoder_gradients(model, frames, cond)
    model.postnet = None
    without = decoder_gradients(model, frames, cond)
    assert all(torch.allclose(with_postnet[n], without[n], atol=1e-6) for n in without)


def test_postnet_term_is_the_l1_of_refined_real_frames_per_frame():
    """Untrained (last layer zero) the post-net returns its input, so its loss term is the decoder's L1 distance
    per real frame; values in padded frames never count."""
    frames, cond = batch()
    torch.manual_seed(0)
    model = Tacotron(8, VOCAB, reduction=2, guided_attention=0.0, postnet=16, **Tacotron.TINY)
    torch.manual_seed(5)
    with_postnet = model.loss(frames, cond)
    torch.manual_seed(5)
    predicted, _, _ = model.network(frames, cond.labels)
    observed = cond.observed[..., None]
    l1 = ((predicted - frames).abs() * observed).sum() / observed.sum()
    postnet, model.postnet = model.postnet, None
    torch.manual_seed(5)
    assert (with_postnet - model.loss(frames, cond)).item() == pytest.approx(l1.item(), rel=1e-5)
    model.postnet = postnet
    padded = frames.clone()
    padded[1, 6:] = 100.0  # beyond the second prompt's end
    torch.manual_seed(5)
    assert model.loss(padded, cond).item() == pytest.approx(with_postnet.item(), rel=1e-6)


def test_synthesis_returns_refined_frames_beside_the_decoders():
    model = model_with_postnet().eval()
    with torch.no_grad():
        model.stop_out.bias.fill_(-20.0)
    ids = torch.randint(2, VOCAB, (7,))
    torch.manual_seed(1)
    said = model.synthesise(ids, max_steps=5)
    assert said.decoder_frames.shape == said.frames.shape == (10, 8)
    with torch.no_grad():
        assert torch.allclose(said.frames, model.postnet(said.decoder_frames[None])[0], atol=1e-6)
    assert not torch.allclose(said.frames, said.decoder_frames)
    plain = Tacotron(8, VOCAB, reduction=2, **Tacotron.TINY).eval()
    torch.manual_seed(1)
    said = plain.synthesise(ids, max_steps=3)
    assert said.decoder_frames is not None and torch.equal(said.frames, said.decoder_frames)


def test_a_negative_postnet_size_is_a_config_error():
    with pytest.raises(ConfigError, match="postnet"):
        _build(MelFeatures(rate=8000, n_mels=8, hop=100, win=400, n_fft=512), {"postnet": -1})


TINY_SETS = [f"model.{k}={v}" for k, v in Tacotron.TINY.items()]


@needs_speech
def test_tts_train_writes_a_run_that_speaks_through_its_postnet(tmp_path, capsys):
    """``chainrule tts-train`` end to end on the real prompts (a few steps of a tiny model with a post-net); the
    run speaks, and a bad model option fails in one line before anything is written."""
    run = tmp_path / "tts"
    sets = [*TINY_SETS, "model.postnet=8", "data.max_seconds=1.5", "train.steps=2", "train.batch_size=4",
            "train.eval_every=2", "train.progress=false"]
    assert main(["tts-train", "--run", str(run), *[a for s in sets for a in ("--set", s)]]) == 0
    assert (run / "best.safetensors").is_file() and "postnet: 8" in (run / "config.yaml").read_text()
    out = tmp_path / "hi.wav"
    assert main(["speak", str(run), "Hello.", "--out", str(out), "--max-seconds", "0.3"]) == 0
    assert soundfile.info(str(out)).samplerate == 8000
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main(["tts-train", "--run", str(bad), "--set", "model.postnet=-1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "postnet" in err and not bad.exists()
