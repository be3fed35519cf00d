"""The leaderboard's sample-quality measures on feature sets whose answers are known."""

from __future__ import annotations

import torch

from chainrule.leaderboard import format_table, frechet_distance, precision_recall


def test_frechet_distance_of_gaussians_is_the_closed_form():
    """Same covariance, means apart by d: the distance is |d|^2; a set against itself: 0."""
    x = torch.randn(4000, 3, generator=torch.Generator().manual_seed(0))
    shift = torch.tensor([1.0, -2.0, 0.5])
    assert abs(frechet_distance(x, x)) < 1e-4
    assert abs(frechet_distance(x, x + shift) - float(shift.pow(2).sum())) < 1e-3
    assert frechet_distance(x, 2 * x) > 1.0  # a wider spread counts too


def test_precision_and_recall_separate_quality_from_coverage():
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(500, 2, generator=gen)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    far = precision_recall(real, torch.randn(500, 2, generator=gen) + 100.0)
    assert far == (0.0, 0.0)
    collapsed = precision_recall(real, real[:1].repeat(500, 1) + 1e-3 * torch.randn(500, 2, generator=gen))
    assert collapsed[0] > 0.9 and collapsed[1] < 0.1  # mode collapse: precise, no coverage


def test_the_table_marks_bounds_and_missing_likelihoods():
    rows = [{"model": "vae", "family": "vae", "likelihood": "bound", "nll_nats": 80.0, "bpd": 1.8, "frechet": 1.0,
             "precision": 0.5, "recall": 0.5, "samples_per_s": 10.0, "params": 10, "train_seconds": 3.0},
            {"model": "gan", "family": "gan", "likelihood": "none", "frechet": 1.0, "precision": 0.5,
             "recall": 0.5, "samples_per_s": 10.0, "params": 10, "train_seconds": None}]
    table = format_table(rows)
    assert "<= 80.000" in table and "| none | none |" in table
