"""The leaderboard's class accuracy of class-conditional samples, its test subset and its DDPM / DDIM table,
on planted models and tiny runs whose answers are known."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from chainrule.leaderboard import Reference, feature_classifier, frechet_distance, score_samples

PER_CLASS = 20  # the digits test split has at least 21 images of every class


class PlantedSampler(nn.Module):
    """A "class-conditional model" that returns real images: of the class asked for, or (``blind``) ignoring it."""

    def __init__(self, images: Tensor, labels: Tensor, blind: bool) -> None:
        super().__init__()
        self.images, self.labels, self.blind = images, labels, blind
        self.num_classes = int(labels.max()) + 1
        self.weight = nn.Parameter(torch.zeros(1))

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def sample(self, n: int, cond: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        if self.blind:
            return self.images[torch.randint(len(self.images), (n,), generator=generator)]
        asked = [0] * self.num_classes  # the k-th request of class c gets the k-th image of class c
        out = []
        for c in cond.tolist():
            out.append(self.images[self.labels == c][asked[c]])
            asked[c] += 1
        return torch.stack(out)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits test split cut to PER_CLASS images of each class, its classifier and a Reference on it."""
    from chainrule.api import load_data

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHAINRULE_DATA", str(tmp_path_factory.mktemp("cache")))
        splits = load_data({"name": "digits"})
        (tx, ty), (ex, ey) = splits["train"].all(), splits["test"].all()
        levels = splits["train"].levels
        clf = feature_classifier("digits-test", tx, ty, levels)
    keep = torch.cat([torch.nonzero(ey == c).flatten()[:PER_CLASS] for c in range(10)])
    x, y = ex[keep], ey[keep]
    with torch.no_grad():
        accuracy = float((clf(x.float() / (levels - 1)).argmax(1) == y).float().mean())
        ref = Reference(None, clf, clf.features(x.float() / (levels - 1)), levels, accuracy)
    return x, y, ref


@torch.no_grad()
def test_samples_of_the_asked_class_score_the_classifiers_own_accuracy(digits):
    """Real images of the class asked for, each once: the class accuracy is the classifier's accuracy on them."""
    x, y, ref = digits
    assert ref.classifier_accuracy > 0.5  # a classifier worth the name, else the ceiling says nothing
    scores, samples = score_samples(PlantedSampler(x, y, blind=False), ref, 10 * PER_CLASS)
    assert scores["class_accuracy"] == pytest.approx(ref.classifier_accuracy, abs=1e-9)
    assert scores["classifier_accuracy"] == ref.classifier_accuracy
    assert scores["frechet"] == pytest.approx(frechet_distance(ref.real, ref.real), abs=1e-3)  # the same set


@torch.no_grad()
def test_a_model_that_ignores_its_label_scores_chance(digits):
    x, y, ref = digits
    scores, _ = score_samples(PlantedSampler(x, y, blind=True), ref, 1000)
    assert abs(scores["class_accuracy"] - 0.1) < 0.05  # 10 balanced classes; 4 standard errors is 0.04


def test_an_unconditional_run_has_no_class_accuracy_and_the_test_subset_is_the_first_images(tmp_path, monkeypatch):
    """``test_limit`` scores the NLL of exactly the first N test images; unconditional rows leave class acc blank."""
    from chainrule import api
    from chainrule.leaderboard import format_table, leaderboard

    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "cache"))
    run = tmp_path / "made"
    api.train("digits", "made", overrides=["train.steps=2", "train.batch_size=16", "train.progress=false",
                                           "model.hidden_sizes=[8]", "output.samples=0"], run_dir=run)
    (row,) = leaderboard("digits", [run], samples=16, test_limit=40)
    model = api.open_run(run).load_model().eval()
    x, _ = api.load_data({"name": "digits"})["test"].all()
    with torch.no_grad():
        expected = float(-model.log_prob(x[:40]).double().mean())
    assert row["test_images"] == 40 and row["nll_nats"] == pytest.approx(expected, rel=1e-6)
    assert row["class_accuracy"] is None and row["conditional"] is False
    assert "| - |" in format_table([row])


def test_the_sampler_table_runs_ddpm_over_every_step_and_ddim_over_the_asked_steps(tmp_path, monkeypatch):
    """Each row's "network passes" is what its sampler ran: every step for DDPM, the asked number for DDIM."""
    from chainrule import api, leaderboard
    from chainrule.modalities.image.models.ddpm import DDPM

    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "cache"))
    run = tmp_path / "ddpm"
    api.train("digits", "ddpm", overrides=["train.steps=2", "train.batch_size=16", "train.progress=false",
                                           "model.steps=6", "model.hidden=4", "model.num_blocks=1",
                                           "output.samples=0"], run_dir=run)
    passes: list[int] = []
    predict_noise, score_samples = DDPM.predict_noise, leaderboard.score_samples

    def counted_predict_noise(self, x, t):
        passes[-1] += 1
        return predict_noise(self, x, t)

    def counted_score_samples(*args, **kwargs):
        passes.append(0)
        return score_samples(*args, **kwargs)

    monkeypatch.setattr(DDPM, "predict_noise", counted_predict_noise)
    monkeypatch.setattr(leaderboard, "score_samples", counted_score_samples)
    rows = leaderboard.diffusion_samplers("digits", run, (3, 1), samples=8)
    assert [(r["sampler"], r["steps"]) for r in rows] == [("ddpm", 6), ("ddim", 3), ("ddim", 1)]
    assert passes == [6, 3, 1]


def test_a_test_limit_below_one_is_refused_in_one_line(tmp_path, capsys):
    from chainrule import cli

    assert cli.main(["leaderboard", "digits", "--root", str(tmp_path), "--test-limit", "0"]) == 1
    assert "--test-limit must be a positive integer" in capsys.readouterr().err
