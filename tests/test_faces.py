"""The LFW face subset scikit-image ships: grey 25x25, the documented split, disjoint and complete."""

from __future__ import annotations

import torch

from chainrule.modalities.datasets import load_splits


def test_faces_split_and_levels():
    splits = load_splits("faces")
    assert {k: len(v) for k, v in splits.items()} == {"train": 140, "val": 20, "test": 40}
    train = splits["train"]
    assert train.event_shape == (1, 25, 25) and train.levels == 256 and train.class_names == ["face", "non-face"]
    rows = [tuple(v.all()[0].flatten(1).tolist()) for v in splits.values()]
    flat = [tuple(r) for split in rows for r in split]
    assert len(set(flat)) == 200  # every image once, no image in two splits
    x, y = splits["test"].all()
    assert 0 < int(y.sum()) < 40 and int(x.max()) > 200 and x.dtype == torch.long
