"""Shared fixtures: small real data (scikit-learn's bundled digits) and tiny models."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("CHAINRULE_OFFLINE", "1")  # tests never touch the network
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def binary_digits():
    """Binarized (threshold 0.5) 8x8 digits: train and test tensors (N, 1, 8, 8) long, fixed split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images / 16.0 > 0.5).astype("int64")).unsqueeze(1)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    return x[perm[300:]], x[perm[:300]]
