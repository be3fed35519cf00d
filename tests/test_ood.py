"""Out-of-distribution scores (:mod:`chainrule.ood`): the background model's perturbation replaces the stated
fraction of positions reproducibly, the likelihood ratio is the difference of the two runs' log-likelihoods, and
the typicality test measures the distance to the held-out entropy and rejects batches beyond its threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_features import digit_pngs, digits_run
from test_score import grey_png, image_run

from chainrule import api, cli, ood
from chainrule.core.errors import ConfigError, DataError
from chainrule.runs import open_run


class Levels:
    """A split of constant images: any change is the perturbation's."""

    levels = 16

    def __len__(self) -> int:
        return 100

    def get(self, indices):
        return torch.zeros(len(indices), 1, 20, 20, dtype=torch.long), None


def test_perturbation_replaces_the_stated_fraction_reproducibly():
    split = ood.Perturbed(Levels(), rate=0.3, seed=1)
    x, _ = split.get(torch.arange(50))
    changed = (x != 0).float().mean().item()
    assert changed == pytest.approx(0.3 * 15 / 16, abs=0.02)  # a replacement draws level 0 one time in 16
    assert int(x.max()) == 15 and len(split) == 100 and split.levels == 16
    torch.testing.assert_close(split.get(torch.arange(50))[0], x)  # same indices, same noise: resume is exact
    assert not torch.equal(split.get(torch.arange(50, 100))[0], x)
    assert torch.equal(ood.Perturbed(Levels(), rate=0.0).get(torch.arange(5))[0], torch.zeros(5, 1, 20, 20).long())
    with pytest.raises(ConfigError, match="perturbation rate"):
        ood.Perturbed(Levels(), rate=1.5)


def test_typicality_distance_threshold_and_batch_test():
    rng = np.random.default_rng(0)
    held_out = rng.normal(100.0, 5.0, 5000)
    test = ood.Typicality.fit(held_out, batch=1, alpha=0.01)
    assert test.entropy == pytest.approx(held_out.mean())
    assert test.threshold == pytest.approx(2.576 * 5.0, rel=0.08)  # the 99% two-sided normal quantile
    np.testing.assert_allclose(test.distance(np.array([90.0, 110.0])), np.abs([90, 110] - held_out.mean()))
    batched = ood.Typicality.fit(held_out, batch=10, alpha=0.01)
    assert batched.threshold == pytest.approx(2.576 * 5.0 / np.sqrt(10), rel=0.1)  # means of 10 vary less
    assert not batched.rejects(rng.normal(100.0, 5.0, 10) * 0 + 100.0)
    assert batched.rejects(np.full(10, 92.0))  # each one typical enough, the batch is not
    assert not test.rejects(np.array([92.0]))
    with pytest.raises(ConfigError, match="batches of 10"):
        batched.rejects(np.full(3, 100.0))


def test_score_adds_the_likelihood_ratio_against_a_background_run(tmp_path):
    fg, bg = image_run(tmp_path / "fg", "pixelcnn"), image_run(tmp_path / "bg", "made")
    for i in range(3):
        grey_png(tmp_path / f"p{i}.png", 4, 5, 5, seed=i)
    frame = api.score(fg, tmp_path, background=bg)
    alone = api.score(bg, tmp_path)
    np.testing.assert_allclose(frame["background_log_likelihood"], alone["log_likelihood"])
    np.testing.assert_allclose(frame["likelihood_ratio"], frame["log_likelihood"] - alone["log_likelihood"])
    assert not np.allclose(frame["likelihood_ratio"], frame["log_likelihood"])
    other = image_run(tmp_path / "other", "pixelcnn", levels=8)
    with pytest.raises(DataError, match="levels"):
        api.score(fg, tmp_path, background=other)


def test_score_adds_the_typicality_test_fitted_on_the_validation_split(tmp_path):
    run = digits_run(tmp_path)
    digit_pngs(tmp_path / "in", 3)
    frame = api.score(run, tmp_path / "in", typicality=40)
    held_out = ood.held_out_bits_per_dim(open_run(run), 40)
    val_x, _ = api.load_data({"name": "digits"})["val"].get(torch.arange(40))
    model = open_run(run).load_model("cpu").eval()
    with torch.no_grad():
        expected = (-model.log_prob(val_x).double() / 64 / np.log(2)).numpy()
    np.testing.assert_allclose(held_out, expected, rtol=1e-6)
    np.testing.assert_allclose(frame["typicality_distance"], np.abs(frame["bits_per_dim"] - expected.mean()),
                               rtol=1e-6)
    threshold = ood.Typicality.fit(expected).threshold
    assert list(frame["atypical"]) == list(frame["typicality_distance"] > threshold)


def test_the_background_command_trains_on_perturbed_inputs_and_score_uses_it(tmp_path, capsys):
    fg = api.train("digits", "histogram", run_dir=tmp_path / "fg",
                   overrides=["train.progress=false", "output.samples=0"])
    assert cli.main(["background", str(fg.path), "--out", str(tmp_path / "bg"), "--rate", "0.5"]) == 0
    bg = open_run(tmp_path / "bg")
    assert bg.config["background"]["perturbation_rate"] == 0.5
    assert bg.config["data"] == fg.config["data"] and bg.config["model"] == fg.config["model"]
    digit_pngs(tmp_path / "in", 2)
    fg_model, bg_model = fg.load_model("cpu"), open_run(bg.path).load_model("cpu")
    noise = torch.randint(0, 17, (50, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    assert bg_model.log_prob(noise).mean() > fg_model.log_prob(noise).mean()  # it learnt the noise
    out = tmp_path / "s.csv"
    assert cli.main(["score", str(fg.path), str(tmp_path / "in"), "--background", str(bg.path),
                     "--out", str(out)]) == 0
    assert "likelihood_ratio" in out.read_text().splitlines()[0]
