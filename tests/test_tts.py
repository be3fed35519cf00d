"""Text-to-speech: the mel decoder is causal over frames, attention becomes monotone on real prompts after brief
training, Griffin-Lim inverts a real prompt's mel closely, ``chainrule speak`` writes a WAV and two PNGs at the
run's rate, and bad input fails in one line writing nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml

from chainrule.cli import main
from chainrule.core.contract import Condition
from chainrule.core.training.checkpoint import save_weights
from chainrule.modalities.audio.alignment import alignment_figures
from chainrule.modalities.audio.data.dataset import build_split
from chainrule.modalities.audio.data.files import read_audio, read_transcripts
from chainrule.modalities.audio.data.mel_frames import MelConditioned
from chainrule.modalities.audio.data.prompts import ALPHABET, Prompt, PromptDataset
from chainrule.modalities.audio.data.quantize import quantizer_for
from chainrule.modalities.audio.data.sources import SPEECH_ROOTS, SPEECH_TRANSCRIPTS
from chainrule.modalities.audio.mel import MelFeatures, spectral_convergence
from chainrule.modalities.audio.models.tacotron import Tacotron, guided_attention_penalty
from chainrule.modalities.audio.models.wavenet import WaveNet
from chainrule.tts import DEFAULTS, new_tts_run

VOCAB = len(ALPHABET) + 2
ROOT = next((Path(p) for p in SPEECH_ROOTS if Path(p).is_dir()), None)
TRANSCRIPT = next((Path(p) for p in SPEECH_TRANSCRIPTS if Path(p).is_file()), None)
needs_speech = pytest.mark.skipif(ROOT is None or TRANSCRIPT is None, reason="Debian speech packages not installed")


def real_prompts(*names: str) -> list[Prompt]:
    said = read_transcripts(TRANSCRIPT)
    return [Prompt(n, said[n], read_audio(ROOT / f"{n}.wav", 8000)) for n in names]


@pytest.mark.parametrize("reduction", [1, 2])
def test_decoder_is_causal_over_frames(reduction):
    """Under teacher forcing, frame t's prediction (and each step's stop flag) depends on frames < t only."""
    torch.manual_seed(0)
    model = Tacotron(8, VOCAB, reduction=reduction, **Tacotron.TINY)
    frames = torch.randn(2, 7, 8, requires_grad=True)
    ids = torch.randint(2, VOCAB, (2, 5))
    predicted, stops, _ = model.network(frames, ids)
    for t in range(7):
        (grad,) = torch.autograd.grad(predicted[:, t].sum(), frames, retain_graph=True)
        assert grad[:, t:].abs().max() == 0, f"frame {t} sees frames >= {t}"
        if t >= reduction:  # the first step's frames are predicted from the text alone
            assert grad[:, :t].abs().max() > 0, f"frame {t} sees no earlier frame"
    for k in range(stops.shape[1]):
        (grad,) = torch.autograd.grad(stops[:, k].sum(), frames, retain_graph=True)
        assert grad[:, k * reduction:].abs().max() == 0


@needs_speech
def test_attention_is_monotone_after_brief_training():
    """Two real prompts, 80 steps of a tiny model: on each, the attended character (argmax) never moves back on at
    least 90% of the decoder steps, starts in the first third of the text and ends in its last three characters
    (the last word, the full stop or the end mark)."""
    torch.manual_seed(0)
    prompts = real_prompts("activated", "added")
    analysis = MelFeatures(n_mels=20, hop=200, win=400, n_fft=512)
    mel = analysis.fit([analysis.log_mel(p.wave) for p in prompts])
    data = PromptDataset(prompts, mel, "train")
    model = Tacotron(20, VOCAB, reduction=2, guided_attention=1.0, **Tacotron.TINY)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, cond = data.get(torch.arange(2))
    for _ in range(80):
        optimiser.zero_grad()
        model.loss(x, cond).backward()
        optimiser.step()
    with torch.no_grad():
        _, _, alignments = model.network(x, cond.labels)
    for j in range(2):
        steps, chars = -(-int(cond.observed[j].sum()) // 2), int((cond.labels[j] != 0).sum())
        best = alignments[j, :steps, :chars].argmax(-1)
        forward = (best[1:] >= best[:-1]).float().mean().item()
        assert forward >= 0.9, best.tolist()
        assert best[0] <= chars // 3 and best[-1] >= chars - 3, best.tolist()


@needs_speech
def test_griffin_lim_inverts_a_real_prompt():
    """Spectral convergence of Griffin-Lim from the prompt's own normalised log-mel, against the recording:
    0.45 measured (40 bands, 32 iterations); above 0.6 means the analysis and the inversion disagree."""
    (prompt,) = real_prompts("agent-pass")
    mel = MelFeatures()
    mel.fit([mel.log_mel(prompt.wave)])
    wave = mel.griffin_lim(mel.features(prompt.wave), n_iter=32)
    assert abs(len(wave) - len(prompt.wave)) <= mel.hop
    assert spectral_convergence(prompt.wave, wave) < 0.6


def write_tiny_run(path: Path) -> Path:
    """A TTS run with an untrained tiny model whose stop flag never fires (so it speaks for --max-seconds)."""
    mel = MelFeatures(n_mels=16, mean=[-4.0] * 16, std=[2.0] * 16)
    cfg = {**DEFAULTS, "model": {"name": "tacotron", "reduction": 2, **Tacotron.TINY}}
    new_tts_run(path, cfg, mel)
    torch.manual_seed(0)
    model = Tacotron(16, VOCAB, reduction=2, **Tacotron.TINY)
    with torch.no_grad():
        model.stop_out.bias.fill_(-20.0)
    save_weights(model, path / "best.safetensors")
    return path


def test_speak_writes_a_wav_at_the_runs_rate_and_two_pngs(tmp_path, capsys):
    run = write_tiny_run(tmp_path / "tts")
    out = tmp_path / "said" / "hello.wav"
    assert main(["speak", str(run), "Hello, world!", "--out", str(out), "--max-seconds", "0.5"]) == 0
    info = soundfile.info(str(out))
    assert info.samplerate == 8000 and info.channels == 1
    assert abs(info.frames - 4000) <= 200  # 0.5 s: 20 decoder steps of 2 frames of 100 samples
    for png in (out.with_suffix(".alignment.png"), out.with_suffix(".spectrogram.png")):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "hello.wav" in capsys.readouterr().out


def test_unknown_characters_are_dropped_with_a_warning(tmp_path, caplog):
    run = write_tiny_run(tmp_path / "tts")
    assert main(["speak", str(run), "naïve café", "--out", str(tmp_path / "a.wav"), "--max-seconds", "0.2"]) == 0
    assert "dropped characters" in caplog.text and "ï" in caplog.text


@pytest.mark.parametrize("case", ["no_run", "not_tts", "unspeakable", "not_wav", "bad_max", "bad_window"])
def test_bad_input_fails_in_one_line_and_writes_nothing(tmp_path, capsys, case):
    run = write_tiny_run(tmp_path / "tts")
    out = tmp_path / "x.wav"
    text, extra = "hello", []
    if case == "no_run":
        run = tmp_path / "nowhere"
    elif case == "not_tts":
        cfg = (run / "config.yaml").read_text().replace("kind: tts", "kind: audio")
        (run / "config.yaml").write_text(cfg)
    elif case == "unspeakable":
        text = "€€€"
    elif case == "not_wav":
        out = tmp_path / "x.mp3"
    elif case == "bad_window":
        extra = ["--window", "-1"]
    else:
        extra = ["--max-seconds", "0"]
    assert main(["speak", str(run), text, "--out", str(out), *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert not out.exists() and not out.with_suffix(".alignment.png").exists()


def test_prompt_batches_pad_frames_and_text():
    mel = MelFeatures(n_mels=8, mean=[0.0] * 8, std=[1.0] * 8)
    t = np.linspace(0, 1, 8000, dtype=np.float32)
    prompts = [Prompt("a", "Hi.", np.sin(2 * np.pi * 440 * t)), Prompt("b", "Hello there", np.sin(t)[:4000])]
    x, cond = PromptDataset(prompts, mel, "train").get(torch.tensor([0, 1]))
    assert x.shape == (2, 81, 8) and cond.observed.sum(1).tolist() == [81, 41]
    assert cond.labels.shape == (2, 12) and (cond.labels[0, 4:] == 0).all() and cond.labels[0, 3] == 1  # EOS


def write_tiny_vocoder(path: Path, mel: MelFeatures) -> Path:
    """A WaveNet run locally conditioned on ``mel``'s frames (untrained), as ``chainrule train speech-mel`` writes."""
    from chainrule.modalities.registry import build_model

    opts = {**WaveNet.TINY, "local_channels": mel.n_mels, "local_hop": mel.hop}
    spec = {"kind": "audio", "event_shape": [1, 256], "levels": 256, "num_classes": 0, "class_names": [],
            "sample_rate": mel.rate, "quantization": "mulaw8", "mel": mel.to_dict()}
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"data": {"name": "speech-mel"}, "model": {"name": "wavenet",
                                                      **opts}, "train": {}, "output": {}, "spec": spec}))
    torch.manual_seed(0)
    save_weights(build_model("wavenet", (1, 256), 256, modality="audio", **opts), path / "best.safetensors")
    return path


def test_speak_with_a_wavenet_vocoder(tmp_path, capsys):
    run = write_tiny_run(tmp_path / "tts")
    mel = MelFeatures(**yaml.safe_load((run / "config.yaml").read_text())["spec"]["mel"])
    vocoder = write_tiny_vocoder(tmp_path / "vocoder", mel)
    out = tmp_path / "v.wav"
    assert main(["speak", str(run), "hi", "--out", str(out), "--max-seconds", "0.05", "--vocoder", str(vocoder)]) == 0
    wave, rate = soundfile.read(str(out))
    assert rate == 8000 and len(wave) == 400  # 2 decoder steps x 2 frames x 100 samples, one sample per frame hop
    # trained on frames of another analysis (shorter windows): it would run, and mishear every frame
    other = write_tiny_vocoder(tmp_path / "other", MelFeatures(n_mels=16, win=256, n_fft=256, mean=[0.0] * 16,
                                                               std=[1.0] * 16))
    assert main(["speak", str(run), "hi", "--out", str(tmp_path / "w.wav"), "--vocoder", str(other)]) == 1
    assert "mel analysis" in capsys.readouterr().err and not (tmp_path / "w.wav").exists()


def test_speech_mel_frames_describe_their_own_crop():
    """A crop's frame j covers samples j*hop ..: a tone in the second half of a recording lights up the frames of
    the second half of the crop only, and the frames equal the run's analysis of the crop's samples."""
    rate, hop = 8000, 100
    t = np.arange(rate, dtype=np.float32) / rate
    wave = np.where(t >= 0.5, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    audio = build_split([wave], [0], quantizer_for("mulaw8"), rate=rate, crop=rate, name="t", split="val")
    analysis = MelFeatures(n_mels=16, hop=hop)
    data = MelConditioned(audio, analysis.fit([analysis.log_mel(wave)]))
    x, cond = data.get(torch.tensor([0]))
    frames = cond.time_features[0]
    assert frames.shape == (rate // hop + 1, 16) and x.shape == (1, 1, rate)
    loud = frames.mean(1)
    assert loud[:38].max() < loud[42:-2].min()  # frames 38..42 straddle the onset at sample 4000
    expected = analysis.features(audio.quantizer.to_wave(x[0, 0].numpy()))
    assert torch.allclose(frames, torch.from_numpy(expected))


def test_guided_penalty_is_zero_on_the_diagonal_grows_off_it_and_ignores_padding():
    """The guided-attention penalty: 0 for an alignment on the diagonal, larger the further the attention sits
    from it, and blind to padded decoder steps and padded characters whatever the attention puts there."""
    n = 10
    steps, chars = torch.ones(1, n, dtype=torch.bool), torch.ones(1, n, dtype=torch.bool)
    shifted = [guided_attention_penalty(torch.roll(torch.eye(n), s, dims=1)[None], steps, chars).item()
               for s in range(4)]
    assert shifted[0] == 0 and all(shifted[s] < shifted[s + 1] for s in range(3)), shifted
    assert guided_attention_penalty(torch.full((1, n, n), 1 / n), steps, chars) > shifted[1]  # uniform is diffuse
    padded = torch.rand(1, n + 3, n + 4)  # junk in the padding cells
    padded[0, :n, :n] = torch.eye(n)
    step_mask, char_mask = torch.arange(n + 3)[None] < n, torch.arange(n + 4)[None] < n
    assert guided_attention_penalty(padded, step_mask, char_mask) == 0
    # a batch of a short and a long prompt: each one's diagonal is its own (normalised by its own lengths)
    batch = torch.zeros(2, 2 * n, 2 * n)
    batch[0, :n, :n], batch[1] = torch.eye(n), torch.eye(2 * n)
    masks = torch.arange(2 * n)[None] < torch.tensor([[n], [2 * n]])
    assert guided_attention_penalty(batch, masks, masks) == 0


def test_stop_weight_scales_only_the_positive_stop_term_of_the_loss():
    """``stop_weight`` w adds (w - 1) x the positive stop flag's NLL per frame to the loss; the likelihood and the
    frame and negative-stop terms stay as they are."""
    torch.manual_seed(0)
    frames, ids = torch.randn(2, 7, 8), torch.randint(2, VOCAB, (2, 5))
    cond = Condition(labels=ids, observed=torch.arange(7)[None] < torch.tensor([[7], [4]]))
    losses, log_probs = [], []
    for w in (1.0, 3.0):
        torch.manual_seed(1)
        model = Tacotron(8, VOCAB, reduction=2, guided_attention=0.0, stop_weight=w, **Tacotron.TINY)
        with torch.no_grad():
            model.stop_out.weight.zero_()
            model.stop_out.bias.fill_(-2.0)  # every stop probability sigmoid(-2)
        torch.manual_seed(2)
        losses.append(model.loss(frames, cond).item())
        torch.manual_seed(2)
        log_probs.append(model.log_prob(frames, cond))
    assert torch.allclose(log_probs[0], log_probs[1])
    positive_nll = torch.nn.functional.softplus(torch.tensor(2.0)).item()  # -log sigmoid(-2), one per prompt
    assert losses[1] - losses[0] == pytest.approx(2 * positive_nll * 2 / 11, rel=1e-4)


def test_alignment_figures_tell_a_staircase_from_a_smear():
    stair = alignment_figures(np.repeat(np.eye(6), 2, axis=0))
    assert stair["max_weight"] == stair["forward"] == stair["reaches_end"] == 1.0 and stair["diagonal"] > 0.95
    smear = alignment_figures(np.full((12, 6), 1 / 6))
    assert smear["max_weight"] == pytest.approx(1 / 6) and smear["reaches_end"] == 0.0 and smear["diagonal"] < 0.6
    backwards = alignment_figures(np.eye(6)[::-1])
    assert backwards["forward"] == 0.0 and backwards["reaches_end"] == 0.0 and backwards["diagonal"] < 0.5
    stuck = np.zeros((12, 6))
    stuck[:, -1] = 1  # jumps to the end mark and stays: forward, reaches the end, far from the diagonal
    assert alignment_figures(stuck)["forward"] == 1.0 and alignment_figures(stuck)["diagonal"] < 0.4


def test_forward_window_keeps_synthesis_attention_from_moving_back():
    """With ``window`` w, each synthesis step attends only from the previous most attended character to w after it;
    an untrained model's attention wanders otherwise."""
    torch.manual_seed(0)
    model = Tacotron(8, VOCAB, reduction=2, **Tacotron.TINY).eval()
    with torch.no_grad():
        model.stop_out.bias.fill_(-20.0)
    ids = torch.randint(2, VOCAB, (12,))
    result = model.synthesise(ids, max_steps=30, window=2)
    best = result.alignment.argmax(1)
    assert (best[1:] >= best[:-1]).all() and (best[1:] - best[:-1]).max() <= 2
    assert (result.alignment[1:][torch.arange(12)[None] < best[:-1, None]] == 0).all()


@pytest.mark.parametrize("reduction", [1, 3])
def test_teacher_forcing_on_its_own_synthesis_reproduces_it(reduction):
    """Training and synthesis share one frame layout: fed its own synthesised frames, the teacher-forced network
    predicts exactly those frames with the same alignments (same seed for the prenet's dropout)."""
    torch.manual_seed(0)
    model = Tacotron(8, VOCAB, reduction=reduction, **Tacotron.TINY).eval()
    with torch.no_grad():
        model.stop_out.bias.fill_(-20.0)
    ids = torch.randint(2, VOCAB, (9,))
    torch.manual_seed(1)
    said = model.synthesise(ids, max_steps=6)
    torch.manual_seed(1)
    with torch.no_grad():
        predicted, _, alignments = model.network(said.frames[None], ids[None])
    assert torch.allclose(predicted[0], said.frames, atol=1e-5)
    assert torch.allclose(alignments[0], said.alignment, atol=1e-6)
