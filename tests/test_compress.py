"""Lossless compression driven by a run's model: byte-identical round trips for every text and image model, the
payload costs what the quantised probabilities say, and a wrong run or a damaged file is a one-line error that
writes nothing."""

from __future__ import annotations

import hashlib
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from compress_helpers import (
    IMAGE_KINDS,
    SAMPLE_TEXT,
    image_run,
    random_picture,
    read_back,
    save_picture,
    series_run,
    text_run,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from chainrule import api
from chainrule.compression import RunCoder, compress, decompress, run_fingerprint
from chainrule.core.compression.coder import Decoder, Encoder, coding_mode, fixed_threads
from chainrule.core.compression.container import CompressedFileError, Container
from chainrule.core.compression.quantise import PRECISION, TOTAL, frequencies
from chainrule.core.errors import ConfigError, DataError
from chainrule.core.heads import Bernoulli, Categorical
from chainrule.core.heads.logistic_mixture import DiscretizedLogisticMixture
from chainrule.modalities.image.codec import Picture, Pictures
from chainrule.modalities.registry import model_class, model_names
from chainrule.modalities.text.codec import TextFile

pytest.importorskip("constriction")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------- quantisation
@settings(max_examples=60, deadline=None)
@given(st.integers(2, 300), st.integers(1, 4), st.floats(0.1, 40.0), st.integers(0, 2**31))
def test_frequencies_keep_every_symbol_sum_exactly_and_follow_the_model(k, rows, spread, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, k)) * spread
    logits[0, rng.integers(k)] = -np.inf  # an impossible symbol must stay codable
    q = frequencies(torch.from_numpy(logits).float())
    assert q.dtype == np.float64 and np.array_equal(q, np.floor(q))
    assert (q >= 0).all() and (q.sum(1) == TOTAL - k).all()
    p = torch.softmax(torch.from_numpy(logits).float().double(), 1).numpy()
    # apart from the most probable symbol (which takes the rounding leftovers), q_k = floor(p_k (2^24 - K)), so
    # each coded probability is within 1 + K p_k units of 2^-24 of the model's
    off = np.abs((q + 1) - p * TOTAL)
    off[np.arange(rows), p.argmax(1)] = 0
    assert (off <= 1.0 + k * p + 1e-6).all()
    assert np.array_equal(frequencies(torch.from_numpy(logits).float()), q)  # deterministic


def test_frequencies_of_broken_rows_are_uniform():
    """A model that outputs NaN or infinities still gives a codable (uniform) distribution, the same on both sides."""
    q = frequencies(np.array([[np.nan, 0.0, 1.0], [np.inf, 0.0, 0.0], [-np.inf] * 3, [0.0, 5.0, 0.0]]))
    assert (np.ptp(q[:3], axis=1) <= 2).all()  # equal up to the leftover units
    assert q[3].argmax() == 1 and (q.sum(1) == TOTAL - 3).all()


@pytest.mark.parametrize(("head", "channels"), [(Bernoulli(), 3), (Categorical(7), 3), (Categorical(5), 1),
                                                (DiscretizedLogisticMixture(256, 4), 3),
                                                (DiscretizedLogisticMixture(9, 2), 1)])
def test_channel_conditionals_are_normalised_and_chain_to_the_joint(head, channels):
    """What the coder uses (p(x_c | x_<c) per channel) multiplies to what evaluation scores."""
    g = torch.Generator().manual_seed(0)
    params = torch.randn(6, head.num_params(channels), generator=g) * 2
    x = torch.randint(0, head.levels, (6, channels), generator=g)
    total = torch.zeros(6)
    for c in range(channels):
        lp = head.level_log_probs(params, x, c)
        assert lp.shape == (6, head.levels)
        assert torch.allclose(lp.exp().sum(1), torch.ones(6), atol=1e-5)
        total += lp.gather(1, x[:, c:c + 1])[:, 0]
    joint = head.log_prob(params[..., None], x[..., None])[:, 0]
    assert torch.allclose(total, joint, atol=1e-4)


def test_fixed_threads_restores_the_thread_count():
    before = torch.get_num_threads()
    with fixed_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# ------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("tokenizer_kind", ["char", "byte", "bpe"])
@pytest.mark.parametrize("name", [n for n in model_names("text") if model_class(n, "text").family == "autoregressive"])
def test_text_round_trip_is_byte_identical_for_every_text_model(tmp_path, name, tokenizer_kind):
    run = text_run(tmp_path / "run", name, tokenizer_kind)
    src = tmp_path / "in.bin"
    src.write_bytes(SAMPLE_TEXT * 3)  # longer than the context: the window slides; invalid UTF-8 and escapes
    compress(run, src, tmp_path / "x.cr", batch_size=2)
    out = decompress(run, tmp_path / "x.cr", tmp_path / "out.bin")
    assert out["outputs"] == [str(tmp_path / "out.bin")]
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()


@pytest.mark.parametrize(("label", "channels", "levels", "head", "mode"), IMAGE_KINDS)
@pytest.mark.parametrize("name", [n for n in model_names("image")
                                  if model_class(n, "image").family == "autoregressive"])
def test_image_round_trip_is_pixel_identical_for_every_image_model(tmp_path, name, label, channels, levels, head,
                                                                  mode):
    run = image_run(tmp_path / "run", name, channels, levels, head)
    picture = random_picture(mode, 9, 7, seed=1)  # not a multiple of the 6 x 6 tile: padded edge tiles
    src = save_picture(picture, tmp_path / "in.png")
    compress(run, src, tmp_path / "x.cr", batch_size=3)
    decompress(run, tmp_path / "x.cr", tmp_path / "out.png")
    got_mode, got_size, got = read_back(tmp_path / "out.png")
    assert (got_mode, got_size) == (mode, (7, 9))
    assert np.array_equal(got, picture.pixels)


def test_folder_round_trip_keeps_names_modes_and_pixels(tmp_path):
    """A grey 256-level run codes a folder of grey images, a JPEG and a colour image whose channels are equal."""
    run = image_run(tmp_path / "run", "pixelcnn", 1, 256, None)
    folder = tmp_path / "pics"
    pics = {"a.png": random_picture("L", 5, 13, 2), "sub/b.png": random_picture("1", 6, 6, 3)}
    for rel, p in pics.items():
        save_picture(p, folder / rel)
    grey = random_picture("L", 8, 4, 4).pixels
    rgb = Picture("sub/deep/c.png", "RGB", np.repeat(grey[..., None], 3, axis=2))
    save_picture(rgb, folder / "sub/deep/c.png")
    save_picture(random_picture("L", 7, 7, 5), folder / "d.jpg", "JPEG")
    (folder / "notes.txt").write_text("not an image")
    _, _, jpeg_pixels = read_back(folder / "d.jpg")
    compress(run, folder, tmp_path / "pics.cr")
    with pytest.raises(ConfigError, match="already exists"):
        decompress(run, tmp_path / "pics.cr")  # the default output is the folder 'pics' itself
    res = decompress(run, tmp_path / "pics.cr", tmp_path / "back")
    back = tmp_path / "back"
    assert sorted(Path(o).relative_to(back).as_posix() for o in res["outputs"]) == [
        "a.png", "d.jpg.png", "sub/b.png", "sub/deep/c.png"]
    for rel, p in {**pics, "sub/deep/c.png": rgb}.items():
        mode, size, pixels = read_back(back / rel)
        assert (mode, size) == (p.mode, p.size) and np.array_equal(pixels, p.pixels), rel
    assert read_back(back / "d.jpg.png")[0] == "L"
    assert np.array_equal(read_back(back / "d.jpg.png")[2], jpeg_pixels)  # the decoded JPEG's pixels


def test_conditional_image_run_round_trip(tmp_path):
    run = image_run(tmp_path / "run", "gated_pixelcnn", 1, 2, None, num_classes=3)
    picture = random_picture("1", 12, 12, seed=6)
    src = save_picture(picture, tmp_path / "in.png")
    compress(run, src, tmp_path / "x.cr")
    decompress(run, tmp_path / "x.cr", tmp_path / "out.png")
    assert np.array_equal(read_back(tmp_path / "out.png")[2], picture.pixels)


@pytest.fixture(scope="module")
def char_coder(tmp_path_factory) -> RunCoder:
    return RunCoder(text_run(tmp_path_factory.mktemp("c") / "run", "transformer", "char", max_len=16), batch_size=3)


@pytest.fixture(scope="module")
def rgb_coder(tmp_path_factory) -> RunCoder:
    return RunCoder(image_run(tmp_path_factory.mktemp("i") / "run", "pixel_lstm", 3, 256, "logistic_mixture",
                              size=4), batch_size=2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_any_bytes_round_trip_through_a_char_model(char_coder, data):
    container, _ = char_coder.encode(TextFile("f", data))
    again = Container.from_bytes(container.to_bytes())
    assert char_coder.decode(again).data == data


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["1", "L", "RGB"]), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31))
def test_any_small_image_round_trips_through_an_rgb_model(rgb_coder, mode, height, width, seed):
    picture = random_picture(mode, height, width, seed)
    container, _ = rgb_coder.encode(Pictures((picture,), folder=False))
    (got,) = rgb_coder.decode(Container.from_bytes(container.to_bytes())).items
    assert (got.mode, got.size) == (mode, picture.size) and np.array_equal(got.pixels, picture.pixels)


# ------------------------------------------------------------------------------------------- cost
def test_payload_is_the_information_of_the_quantised_probabilities_and_matches_the_model_nll(char_coder):
    """The range coder spends sum -log2 q within a few bytes, and q is the model's own conditionals: the cost is
    the teacher-forced NLL of the same tokens (one stream, shorter than the context) within quantisation error."""
    data = b"hello world, this is a test. hello"[:15]
    container, bits = char_coder.encode(TextFile("f", data))
    assert abs(4 * len(container.words) - bits / 8) <= 8
    model, tok = char_coder.model, char_coder.codec.tokenizer
    ids = torch.tensor(tok.encode(data.decode()))[None, None]
    with torch.no_grad():
        nll_bits = -model.log_prob(ids).item() / math.log(2)
    assert bits == pytest.approx(nll_bits, rel=2e-3, abs=0.05)


def test_image_payload_matches_the_model_nll(rgb_coder):
    picture = random_picture("RGB", 4, 4, seed=3)  # exactly one tile: no padding
    container, bits = rgb_coder.encode(Pictures((picture,), folder=False))
    assert abs(4 * len(container.words) - bits / 8) <= 8
    x = torch.from_numpy(picture.pixels.transpose(2, 0, 1)[None].astype(np.int64))
    with torch.no_grad():
        nll_bits = -rgb_coder.model.log_prob(x).item() / math.log(2)
    assert bits == pytest.approx(nll_bits, rel=2e-3, abs=0.05)


def test_a_different_quantisation_on_the_decoder_side_is_caught_by_the_checksum(tmp_path, monkeypatch):
    """If the decoder's probabilities differ from the encoder's by a hair, the result is refused, never written."""
    run = text_run(tmp_path / "run", "rnn_lm", "byte")
    src = tmp_path / "in.txt"
    src.write_bytes(SAMPLE_TEXT)
    compress(run, src, tmp_path / "x.cr")
    original = Decoder.categorical
    monkeypatch.setattr(Decoder, "categorical", lambda self, lp: original(self, lp * 1.01))
    with pytest.raises(CompressedFileError, match="checksum"):
        decompress(run, tmp_path / "x.cr", tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()


def test_decoding_is_independent_of_the_callers_thread_count(tmp_path):
    run = image_run(tmp_path / "run", "pixelcnn", 1, 256, None)
    src = save_picture(random_picture("L", 12, 12, 8), tmp_path / "in.png")
    with fixed_threads(2):
        compress(run, src, tmp_path / "x.cr")
    with fixed_threads(1):
        decompress(run, tmp_path / "x.cr", tmp_path / "out.png")
    assert np.array_equal(read_back(tmp_path / "out.png")[2], read_back(src)[2])


# ------------------------------------------------------------------------------------------- errors
@pytest.fixture
def compressed(tmp_path) -> tuple[Path, Path, Path]:
    run = text_run(tmp_path / "run", "transformer", "byte")
    src = tmp_path / "in.txt"
    src.write_bytes(SAMPLE_TEXT)
    compress(run, src, tmp_path / "x.cr")
    return run, src, tmp_path / "x.cr"


def test_wrong_run_is_refused_before_decoding(tmp_path, compressed):
    _, _, cr = compressed
    other = text_run(tmp_path / "other", "transformer", "byte", seed=1)
    with pytest.raises(CompressedFileError, match="different run"):
        decompress(other, cr, tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()


def test_the_fingerprint_covers_weights_config_and_tokenizer(tmp_path, compressed):
    run, _, _ = compressed
    base = run_fingerprint(api.open_run(run))
    (run / api.TOKENIZER_FILE).write_text((run / api.TOKENIZER_FILE).read_text() + " ")
    assert run_fingerprint(api.open_run(run)) != base


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "version", "empty", "trailing"])
def test_damaged_files_are_clear_errors(tmp_path, compressed, damage):
    run, _, cr = compressed
    data = bytearray(cr.read_bytes())
    if damage == "truncate":
        data = data[:-7]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x10
    elif damage == "magic":
        data[:4] = b"PK\x03\x04"
    elif damage == "version":
        data[4] = 99
    elif damage == "empty":
        data = bytearray()
    else:
        data += b"\0"
    cr.write_bytes(bytes(data))
    expected = {"truncate": "truncated", "flip": "corrupt", "magic": "not a chainrule", "version": "format version",
                "empty": "not a chainrule", "trailing": "corrupt"}[damage]
    with pytest.raises(CompressedFileError, match=expected):
        decompress(run, cr, tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()


def test_stored_names_cannot_escape_the_output_folder(tmp_path):
    run = image_run(tmp_path / "run", "histogram", 1, 2, None)
    folder = tmp_path / "pics"
    save_picture(random_picture("1", 6, 6, 1), folder / "a.png")
    compress(run, folder, tmp_path / "pics.cr")
    c = Container.from_bytes((tmp_path / "pics.cr").read_bytes())
    meta = {**c.metadata, "pictures": [{**c.metadata["pictures"][0], "name": "../evil.png"}]}
    (tmp_path / "evil.cr").write_bytes(Container(c.fingerprint, c.checksum, meta, c.words).to_bytes())
    with pytest.raises(CompressedFileError, match="not a plain relative path"):
        decompress(run, tmp_path / "evil.cr", tmp_path / "out")
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "out").exists()


def test_images_a_run_cannot_code_losslessly_are_refused(tmp_path):
    binary = image_run(tmp_path / "bin", "histogram", 1, 2, None)
    src = save_picture(random_picture("L", 6, 6, 1), tmp_path / "grey.png")
    with pytest.raises(DataError, match="no exact level"):
        compress(binary, src, tmp_path / "x.cr")
    grey = image_run(tmp_path / "grey", "histogram", 1, 256, None)
    src = save_picture(random_picture("RGB", 6, 6, 1), tmp_path / "rgb.png")
    with pytest.raises(DataError, match="colour image"):
        compress(grey, src, tmp_path / "x.cr")
    Image.new("RGBA", (4, 4)).save(tmp_path / "alpha.png")
    with pytest.raises(DataError, match="mode RGBA"):
        compress(grey, tmp_path / "alpha.png", tmp_path / "x.cr")
    frames = [Image.new("L", (4, 4), v) for v in (0, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match="2 frames"):
        compress(grey, tmp_path / "anim.gif", tmp_path / "x.cr")
    assert not (tmp_path / "x.cr").exists()


@pytest.mark.parametrize("head", ["gaussian", "student_t", "squared_error"])
def test_series_runs_with_a_density_head_are_refused_with_the_reason(tmp_path, head):
    run = series_run(tmp_path / "series", "deepar", head=head)
    (tmp_path / "in.txt").write_text("1\n2\n3\n")
    with pytest.raises(ConfigError, match=f"a {head} run has a density.*--head negative_binomial"):
        compress(run, tmp_path / "in.txt", tmp_path / "x.cr")
    assert not (tmp_path / "x.cr").exists()


def test_defaults_never_overwrite(tmp_path, compressed):
    run, src, cr = compressed
    with pytest.raises(ConfigError, match="already exists"):
        decompress(run, cr)  # the original name beside x.cr is 'in.txt', which exists
    res = compress(run, src)  # default output: in.txt.cr
    assert res["output"] == str(src) + ".cr"
    with pytest.raises(ConfigError, match="already exists"):
        compress(run, src)


def chainrule(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHAINRULE_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "chainrule", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def test_cli_round_trip_and_one_line_errors(tmp_path, compressed):
    run, src, _ = compressed
    res = chainrule("compress", str(run), str(src), "--out", "cli.cr", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "bits/char" in res.stdout
    res = chainrule("decompress", str(run), "cli.cr", "--out", "back.txt", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "back.txt").read_bytes() == src.read_bytes()
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    before = digest(keep)
    other = text_run(tmp_path / "other", "transformer", "byte", seed=3)
    (tmp_path / "cut.cr").write_bytes((tmp_path / "cli.cr").read_bytes()[:-5])
    for args, needle in [((str(other), "cli.cr"), "different run"), ((str(run), "cut.cr"), "truncated"),
                         ((str(run), "missing.cr"), "no such file")]:
        res = chainrule("decompress", *args, "--out", "keep.txt", cwd=tmp_path)
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("chainrule: error:") and needle in lines[0], res.stderr
        assert digest(keep) == before


def test_container_layout_is_what_the_docs_say(compressed):
    """magic, version, fingerprint, checksum, metadata, payload, CRC-32 of everything before it."""
    run, src, cr = compressed
    data = cr.read_bytes()
    assert data[:5] == b"\x89CR\x1a\x01"
    assert data[5:37] == run_fingerprint(api.open_run(run))
    assert data[37:69] == hashlib.sha256(src.read_bytes()).digest()
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
    container = Container.from_bytes(data)
    assert container.header_bytes == len(data) - 4 * len(container.words)
    assert PRECISION == 24


def test_encoder_and_decoder_agree_on_uniform_and_categorical_symbols():
    enc = Encoder()
    logits = torch.randn(50, 6)
    symbols = np.random.default_rng(0).integers(0, 6, 50)
    enc.categorical(symbols, logits)
    enc.uniform(np.array([0, 0x10FFFF, 7]), 0x110000)
    dec = Decoder(enc.words())
    with coding_mode(torch.nn.Linear(1, 1)):
        assert np.array_equal(dec.categorical(logits), symbols)
    assert dec.uniform(3, 0x110000).tolist() == [0, 0x10FFFF, 7]


@pytest.mark.parametrize("name", [n for n in model_names("image")
                                  if model_class(n, "image").family != "autoregressive"])
def test_models_without_chain_rule_conditionals_are_refused_in_one_line(tmp_path, name):
    run = image_run(tmp_path / name, name, 1, 2, None)
    src = save_picture(random_picture("L", 8, 8, 1), tmp_path / "x.png")
    with pytest.raises(ConfigError, match=f"{name}.*cannot compress"):
        compress(run, src, tmp_path / "x.cr")
    assert not (tmp_path / "x.cr").exists()
