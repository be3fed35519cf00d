"""Compression across the registry and for count series: every registered model of a kind that can compress
round-trips byte for byte, any values file round-trips through a series run, the payload costs the model's own
one-step surprisal, and files a series run cannot code are refused naming the line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from compress_helpers import SAMPLE_TEXT, image_run, random_picture, read_back, save_picture, series_run, text_run
from compress_helpers import values_text as values_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.compression import CODED_KINDS, RunCoder, compress, decompress
from chainrule.core.compression.container import CompressedFileError, Container
from chainrule.core.errors import DataError
from chainrule.modalities.registry import MODELS, model_class
from chainrule.modalities.series.anomaly import one_step_log_probs
from chainrule.modalities.series.codec import MAX_COUNT, ValuesFile, parse_values
from chainrule.modalities.series.features import FeatureSpec
from chainrule.modalities.series.table import SeriesSet

pytest.importorskip("constriction")

CODED = sorted(key for key in MODELS if key[0] in {kind.modality for kind in CODED_KINDS}
               and model_class(key[1], key[0]).family == "autoregressive")


def test_every_modality_of_the_current_kinds_is_coded():
    assert {m for m, _ in CODED} >= {"text", "image", "series"}


@pytest.mark.parametrize(("modality", "name"), CODED)
def test_every_registered_model_that_can_compress_round_trips_byte_for_byte(tmp_path, modality, name):
    """One file per model: bytes with invalid UTF-8 (text), a grey image with padded tiles, counts with gaps and
    an escape far outside the conditional's window (series)."""
    if modality == "text":
        run, src = text_run(tmp_path / "run", name, "byte"), tmp_path / "in.bin"
        src.write_bytes(SAMPLE_TEXT)
    elif modality == "image":
        run = image_run(tmp_path / "run", name, 1, 256, None)
        src = save_picture(random_picture("L", 7, 8, seed=2), tmp_path / "in.png")
    else:
        run, src = series_run(tmp_path / "run", name), tmp_path / "in.txt"
        src.write_bytes(values_file([3, 12, None, 9, 0, 10**15, 11, None, None, 7, 14]))
    compress(run, src, tmp_path / "x.cr")
    out = tmp_path / ("out.png" if modality == "image" else "out.bin")
    decompress(run, tmp_path / "x.cr", out)
    if modality == "image":
        assert np.array_equal(read_back(out)[2], read_back(src)[2])
    else:
        assert out.read_bytes() == src.read_bytes()


@pytest.fixture(scope="module")
def series_coder(tmp_path_factory) -> RunCoder:
    return RunCoder(series_run(tmp_path_factory.mktemp("s") / "run", "deepar"))


counts = st.one_of(st.none(), st.integers(0, 40), st.integers(0, MAX_COUNT))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(counts, max_size=30), st.sampled_from([None, "count", "visitors per day"]), st.booleans())
def test_any_values_file_round_trips_through_a_count_run(series_coder, values, header, final_newline):
    data = values_file(values, header, final_newline)
    content = parse_values("v.txt", data, "v.txt")
    container, _ = series_coder.encode(content)
    assert series_coder.decode(Container.from_bytes(container.to_bytes())).data == data


def test_series_payload_is_the_models_one_step_surprisal(series_coder):
    """The coder spends sum -log2 q within a few bytes, and q is the model's conditional: the steps after the first
    cost the anomaly scorer's one-step surprisal (its batched, float32 pass) within quantisation error."""
    values = [9, 11, 14, 12, 8, 6, 9, 13, 15, 12, 7, 5, 10, 12, 16, 13]
    full, bits = series_coder.encode(parse_values("v", values_file(values), "v"))
    _, first_bits = series_coder.encode(parse_values("v", values_file(values[:1]), "v"))
    assert abs(4 * len(full.words) - bits / 8) <= 8
    codec = series_coder.codec
    ss = SeriesSet(name="v", ids=["v"], values=[np.array(values, dtype=np.float64)], times=[codec.times(len(values))],
                   freq=codec.spec.freq, season=codec.spec.season)
    lp = one_step_log_probs(series_coder.model, FeatureSpec.from_dict(series_coder.run.spec), ss)
    surprisal_bits = -np.nansum(lp) / math.log(2)
    assert np.isnan(lp[0]) and np.isfinite(lp[1:]).all()
    assert bits - first_bits == pytest.approx(surprisal_bits, rel=2e-3, abs=0.05)


@pytest.mark.parametrize(("text", "line"), [(b"count\n1\n2.5\n", "line 3: '2.5'"), (b"4\n-3\n", "line 2: '-3'"),
                                            (b"7\n007\n", "line 2: '007'"), (b"1\r\n2\r\n", "carriage returns"),
                                            (b"\xff\n", "not UTF-8"), (b"1\n 2\n", "line 2: ' 2'")])
def test_files_a_count_run_cannot_restore_exactly_are_refused_naming_the_line(tmp_path, text, line):
    run = series_run(tmp_path / "run", "lstm")
    (tmp_path / "in.txt").write_bytes(text)
    with pytest.raises(DataError, match=line):
        compress(run, tmp_path / "in.txt", tmp_path / "x.cr")
    assert not (tmp_path / "x.cr").exists()


def test_series_file_from_another_run_or_damaged_is_a_clear_error(tmp_path):
    run, other = series_run(tmp_path / "run", "transformer"), series_run(tmp_path / "other", "transformer", seed=1)
    src = tmp_path / "in.txt"
    src.write_bytes(values_file([1, 2, 3, None, 5]))
    compress(run, src, tmp_path / "x.cr")
    with pytest.raises(CompressedFileError, match="different run"):
        decompress(other, tmp_path / "x.cr", tmp_path / "out.txt")
    c = Container.from_bytes((tmp_path / "x.cr").read_bytes())
    bad = Container(c.fingerprint, c.checksum, {**c.metadata, "values": 7}, c.words)  # a consistent CRC, wrong length
    (tmp_path / "bad.cr").write_bytes(bad.to_bytes())
    with pytest.raises(CompressedFileError, match="checksum"):
        decompress(run, tmp_path / "bad.cr", tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()


def test_values_file_parsing_keeps_header_gaps_and_final_newline():
    parsed = parse_values("f", b"visits\n3\n\n12", "f")
    assert isinstance(parsed, ValuesFile) and parsed.header == "visits"
    assert parsed.values.tolist() == [3, -1, 12]
    assert parse_values("f", b"", "f").values.tolist() == []
    assert parse_values("f", b"\n", "f").values.tolist() == [-1]
    assert Path("f").name == "f"
