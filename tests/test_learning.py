"""Every model, trained briefly on binarized digits, beats the independent-pixel histogram on test NLL."""

from __future__ import annotations

import pytest
import torch

from chainrule.core.evaluation.metrics import dataset_nll
from chainrule.core.training import TrainConfig, Trainer
from chainrule.modalities.datasets import load_splits
from chainrule.modalities.registry import build_model

#: small settings that train in seconds on two CPU cores (steps, lr, model options)
BRIEF = {
    "made": (300, 2e-3, {"hidden_sizes": [256], "num_masks": 4}),
    "pixelcnn": (250, 2e-3, {"hidden_channels": 32, "num_blocks": 3, "output_channels": 64}),
    "gated_pixelcnn": (250, 2e-3, {"hidden_channels": 16, "num_layers": 4, "output_channels": 64}),
    "pixel_lstm": (250, 5e-3, {"hidden_size": 64, "num_layers": 1}),
    "pixelcnn_pp": (250, 2e-3, {"num_filters": 16, "num_resnet": 2, "dropout": 0.0}),
}
#: the histogram's test NLL is ~24-25 nats/image on this split; each model must beat it by this margin
MARGIN_NATS = 2.0


@pytest.fixture(scope="module")
def digits():
    return load_splits("digits", binarize="threshold")


@pytest.fixture(scope="module")
def histogram_nll(digits, tmp_path_factory) -> float:
    model = build_model("histogram", digits["train"].event_shape, 2)
    Trainer(model, digits["train"], digits["val"], TrainConfig(progress=False),
            tmp_path_factory.mktemp("hist")).fit()
    return dataset_nll(model, digits["test"])["nll"]


def test_histogram_nll_is_the_laplace_smoothed_count(digits, histogram_nll):
    """The baseline itself, by hand: each pixel is on with probability (ones + 1) / (N + 2) over the train split,
    independently, and the test NLL is the mean over test images of the summed -log p of their pixels."""
    train, _ = digits["train"].all()
    test, _ = digits["test"].all()
    p_on = (train.double().sum(0) + 1) / (len(train) + 2)
    expected = -(test * p_on.log() + (1 - test) * (1 - p_on).log()).flatten(1).sum(1).mean()
    assert histogram_nll == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("name", sorted(BRIEF))
def test_brief_training_beats_histogram(name, digits, histogram_nll, tmp_path):
    steps, lr, options = BRIEF[name]
    torch.manual_seed(0)
    model = build_model(name, digits["train"].event_shape, 2, **options)
    cfg = TrainConfig(steps=steps, lr=lr, batch_size=64, warmup_steps=20, eval_every=0, checkpoint_every=0,
                      progress=False)
    Trainer(model, digits["train"], digits["val"], cfg, tmp_path).fit()
    nll = dataset_nll(model, digits["test"])["nll"]
    assert nll < histogram_nll - MARGIN_NATS, f"{name}: test NLL {nll:.2f} vs histogram {histogram_nll:.2f}"
