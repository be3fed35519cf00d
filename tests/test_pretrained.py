"""``config.json`` + ``model.safetensors``: a run of each modality saved and loaded again scores data exactly as
before; the directory is all that is needed (the run may be gone), and bad directories fail in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from chainrule import cli
from chainrule.core.contract import Condition
from chainrule.core.errors import CheckpointError
from chainrule.core.training.checkpoint import save_weights
from chainrule.modalities.registry import build_model, model_class
from chainrule.modalities.text.data.tokenizers import CharTokenizer, load_tokenizer
from chainrule.pretrained import from_pretrained, open_pretrained, save_pretrained
from chainrule.runs import Run

LAGS = [1, 3]


def randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Weights far from any default, so a model rebuilt but not loaded scores differently."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def image_case():
    model = randomise(build_model("gated_pixelcnn", (1, 4, 4), 4, num_classes=2, **model_class("gated_pixelcnn",
                                                                                                 "image").TINY))
    cfg = {"spec": {"kind": "image", "event_shape": [1, 4, 4], "levels": 4, "num_classes": 2},
           "model": {"name": "gated_pixelcnn", **model_class("gated_pixelcnn", "image").TINY}}
    g = torch.Generator().manual_seed(1)
    return model, cfg, (torch.randint(0, 4, (3, 1, 4, 4), generator=g), torch.tensor([0, 1, 1]))


def text_case():
    model = randomise(build_model("transformer", (1, 10), 6, head="categorical", positions="rotary",
                                  **model_class("transformer", "text").TINY))
    cfg = {"spec": {"kind": "text", "event_shape": [1, 10], "levels": 6, "num_classes": 0},
           "model": {"name": "transformer", "head": "categorical", "positions": "rotary",
                     **model_class("transformer", "text").TINY}}
    return model, cfg, (torch.randint(0, 6, (3, 1, 10), generator=torch.Generator().manual_seed(2)), None)


def series_case():
    model = randomise(build_model("deepar", modality="series", lags=LAGS, num_time_features=2,
                                  **model_class("deepar", "series").TINY))
    cfg = {"spec": {"kind": "timeseries", "context": 6, "horizon": 3, "lags": LAGS, "freq": "D"},
           "model": {"name": "deepar", **model.config()}}
    g = torch.Generator().manual_seed(3)
    y = torch.rand(2, 12, generator=g) * 10
    cond = Condition(time_features=torch.randn(2, 12, 2, generator=g), scale=torch.tensor([1.0, 4.0]))
    return model, cfg, (y, cond)


def audio_case():
    tiny = model_class("wavenet", "audio").TINY
    model = randomise(build_model("wavenet", (1, 32), 16, modality="audio", **tiny))
    cfg = {"spec": {"kind": "audio", "event_shape": [1, 32], "levels": 16, "num_classes": 0},
           "model": {"name": "wavenet", **tiny}}
    return model, cfg, (torch.randint(0, 16, (2, 1, 32), generator=torch.Generator().manual_seed(4)), None)


CASES = {"image": image_case, "text": text_case, "series": series_case, "audio": audio_case}


def make_run(path: Path, model, cfg) -> Run:
    path.mkdir(parents=True)
    run = Run(path=path, config=cfg)
    run.save_config()
    save_weights(model, path / "best.safetensors")
    if cfg["spec"]["kind"] == "text":
        CharTokenizer(list("abcde")).save(path / "tokenizer.json")
    return run


@pytest.mark.parametrize("modality", sorted(CASES))
def test_round_trip_gives_identical_log_prob(modality, tmp_path):
    model, cfg, (x, cond) = CASES[modality]()
    run = make_run(tmp_path / "run", model, cfg)
    save_pretrained(run, tmp_path / "hub")
    shutil.rmtree(tmp_path / "run")  # the directory alone must be enough
    assert sorted(p.name for p in (tmp_path / "hub").iterdir()) == sorted(
        ["config.json", "model.safetensors", *(["tokenizer.json"] if modality == "text" else [])])
    loaded = from_pretrained(tmp_path / "hub")
    assert type(loaded) is type(model) and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x, cond), model.log_prob(x, cond))


def test_text_directory_keeps_the_tokenizer(tmp_path):
    model, cfg, _ = text_case()
    save_pretrained(make_run(tmp_path / "run", model, cfg), tmp_path / "hub")
    assert load_tokenizer(tmp_path / "hub" / "tokenizer.json") == CharTokenizer(list("abcde"))
    assert open_pretrained(tmp_path / "hub").spec["levels"] == 6


def test_cli_format_pretrained(tmp_path, capsys):
    model, cfg, (x, cond) = image_case()
    run = make_run(tmp_path / "run", model, cfg)
    assert cli.main(["export", str(run.path), "--format", "pretrained", "--out", str(tmp_path / "hub")]) == 0
    assert "gated_pixelcnn image model" in capsys.readouterr().out
    assert json.loads((tmp_path / "hub" / "config.json").read_text())["model"]["name"] == "gated_pixelcnn"
    with torch.no_grad():
        assert torch.equal(from_pretrained(tmp_path / "hub").log_prob(x, cond), model.log_prob(x, cond))


def test_a_hub_name_is_downloaded_with_huggingface_hub(tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    model, cfg, (x, cond) = image_case()
    save_pretrained(make_run(tmp_path / "run", model, cfg), tmp_path / "snapshot")
    asked = []

    def fake_download(repo_id, **kwargs):
        asked.append(repo_id)
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(hub, "snapshot_download", fake_download)
    monkeypatch.chdir(tmp_path)
    with torch.no_grad():
        assert torch.equal(from_pretrained("someone/digits").log_prob(x, cond), model.log_prob(x, cond))
    assert asked == ["someone/digits"]


def test_bad_directories_fail_in_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="directory not found"):
        from_pretrained(tmp_path / "missing")
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(CheckpointError, match="not a chainrule config"):
        from_pretrained(tmp_path / "gpt2")
    model, cfg, _ = image_case()
    save_pretrained(make_run(tmp_path / "run", model, cfg), tmp_path / "hub")
    (tmp_path / "hub" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        from_pretrained(tmp_path / "hub")
