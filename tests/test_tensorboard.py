"""``output.tensorboard=true`` writes what TensorBoard's own reader finds: the Trainer's scalars (one point per
logged step, also across a resume), the config, sample grids / text samples / fan charts as images or text; off by
default; a non-boolean value is a one-line error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chainrule import api
from chainrule.core.errors import ConfigError
from chainrule.core.runs.files import TENSORBOARD_DIR
from chainrule.modalities.series import api as series_api

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

PIXELCNN = ["train.batch_size=32", "train.log_every=1", "train.eval_every=2", "train.num_threads=1",
            "train.progress=false", "model.hidden_channels=8", "model.num_blocks=1", "model.output_channels=16"]


def events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir / TENSORBOARD_DIR), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def steps(acc: EventAccumulator, tag: str) -> list[int]:
    return [e.step for e in acc.Scalars(tag)]


def text_of(acc: EventAccumulator, tag: str) -> str:
    return acc.Tensors(f"{tag}/text_summary")[-1].tensor_proto.string_val[0].decode()


def test_image_run_writes_scalars_config_and_sample_grid(tmp_path):
    run = api.train("digits", "pixelcnn", run_dir=tmp_path / "run",
                    overrides=[*PIXELCNN, "train.steps=4", "output.samples=4", "output.tensorboard=true"])
    acc = events(run.path)
    tags = acc.Tags()
    for tag in ("train/loss", "train/bits_per_dim", "train/lr", "train/grad_norm", "val/loss", "val/bits_per_dim"):
        assert tag in tags["scalars"], tag
    assert steps(acc, "train/loss") == [1, 2, 3, 4]
    records = [r for r in pd.read_json(run.path / "metrics.jsonl", lines=True).to_dict("records")
               if r["split"] == "train"]
    np.testing.assert_allclose([e.value for e in acc.Scalars("train/loss")], [r["train_nll"] for r in records],
                               rtol=1e-6)  # the Trainer's own numbers, not a second computation
    np.testing.assert_allclose([e.value for e in acc.Scalars("train/grad_norm")],
                               [r["grad_norm"] for r in records], rtol=1e-6)
    assert "samples/final" in tags["images"] and "plots/training_curve" in tags["images"]
    grid = acc.Images("samples/final")[-1]
    assert grid.width > 8 and grid.height > 8
    assert "pixelcnn" in text_of(acc, "config") and "tensorboard: true" in text_of(acc, "config")


def test_resumed_run_shows_one_curve(tmp_path):
    """The second session drops the first one's events after the checkpoint it resumes from."""
    run_dir = tmp_path / "run"
    over = [*PIXELCNN, "train.checkpoint_every=2", "output.samples=0", "output.tensorboard=true"]
    api.train("digits", "pixelcnn", run_dir=run_dir, overrides=[*over, "train.steps=3"])
    assert steps(events(run_dir), "train/loss") == [1, 2, 3]
    for f in (run_dir / "checkpoints").glob("step-*3.*"):  # as if killed after step 3, before its checkpoint
        f.unlink()
    config = run_dir / "config.yaml"  # continue to step 6 from the checkpoint at step 2
    config.write_text(config.read_text().replace("steps: 3", "steps: 6"))
    with pytest.warns(UserWarning, match="changed settings"):
        api.train(run_dir=run_dir, resume=True)
    assert steps(events(run_dir), "train/loss") == [1, 2, 3, 4, 5, 6]


def test_text_run_writes_its_samples_as_text(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    run = api.train(f"textfile:{corpus}", "transformer", run_dir=tmp_path / "run", overrides=[
        "data.context=16", f"data.root={tmp_path}", "model.embed_dim=16", "model.num_layers=1", "model.num_heads=2",
        "train.steps=2", "train.batch_size=8", "train.progress=false", "train.eval_every=0", "output.samples=2",
        "output.tensorboard=true"])
    acc = events(run.path)
    assert "samples/final/text_summary" in acc.Tags()["tensors"]
    assert "=== sample 1 ===" in text_of(acc, "samples/final")
    assert steps(acc, "train/loss")[-1] == 2


def test_forecast_run_writes_a_fan_chart(tmp_path):
    csv = tmp_path / "sales.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"day": np.arange(60), "y": 50 + rng.normal(size=60).cumsum()}).to_csv(csv, index=False)
    run = series_api.train_forecaster(csv, "deepar", horizon=4, time="day", target="y", steps=3, progress=False,
                                      batch_size=8, run_dir=tmp_path / "run", overrides=["output.tensorboard=true",
                                                                                          "train.log_every=1"])
    acc = events(run.path)
    assert steps(acc, "train/loss") == [1, 2, 3]
    assert "plots/forecast" in acc.Tags()["images"]
    assert "deepar" in text_of(acc, "config")


def test_off_by_default_and_checked(tmp_path):
    run = api.train("digits", "histogram", run_dir=tmp_path / "plain", overrides=["output.samples=0"])
    assert not (run.path / TENSORBOARD_DIR).exists()
    with pytest.raises(ConfigError, match="output.tensorboard"):
        api.train("digits", "histogram", run_dir=tmp_path / "bad", overrides=["output.tensorboard=yes please"])
    assert not (tmp_path / "bad").exists()  # checked before the run directory is written
    with pytest.raises(ConfigError, match="output.tensorboard"):
        series_api.train_forecaster("airpassengers", "deepar", steps=1, run_dir=tmp_path / "bad-forecast",
                                    overrides=["output.tensorboard=1"])
    assert not (tmp_path / "bad-forecast").exists()
