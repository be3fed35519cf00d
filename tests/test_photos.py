"""The ``photos`` dataset: 32x32 RGB patches of bundled photographs, non-overlapping, split by photo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from chainrule.modalities.datasets import load_splits
from chainrule.modalities.image.data.photos import PHOTOS, patch_grid, photos_source, read_photo

SIZES = {"train": 260, "val": 260, "test": 288}


def test_shapes_range_and_split_sizes():
    splits = load_splits("photos")
    assert {s: len(d) for s, d in splits.items()} == SIZES
    for data in splits.values():
        x, labels = data.all()
        assert data.event_shape == (3, 32, 32) and data.levels == 256 and labels is None
        assert x.shape == (len(data), 3, 32, 32) and x.dtype == torch.long
        assert int(x.min()) >= 0 and int(x.max()) <= 255
        assert int(x.max()) - int(x.min()) > 200, "a photo spans most of the 8-bit range"


def test_each_split_is_the_patches_of_its_own_photos_only():
    """A split holds exactly the patches of its photos, no photo is in two splits, and no patch repeats across
    splits (so nothing evaluated was trained on)."""
    named = [file for photos in PHOTOS.values() for _, file in photos]
    assert len(named) == len(set(named)), "a photo is listed in two splits"
    source = photos_source()
    seen: dict[bytes, str] = {}
    for split, photos in PHOTOS.items():
        pixels = source.pixels[source.splits[split]]
        expected = np.concatenate([patch_grid(read_photo(package, file)) for package, file in photos])
        np.testing.assert_array_equal(pixels, expected)
        for patch in pixels:
            other = seen.setdefault(patch.tobytes(), split)
            assert other == split, f"a {split} patch also appears in {other}"


def test_patches_do_not_overlap_and_follow_the_image():
    """Every pixel of the centred grid lands in exactly one patch, at its place, channels first."""
    height, width = 70, 100  # a 2 x 3 grid; 6 rows and 4 columns cropped off, centred
    image = np.arange(height * width * 3, dtype=np.int64).reshape(height, width, 3)
    patches = patch_grid(image)
    assert patches.shape == (6, 3, 32, 32)
    grid = image[3:67, 2:98]
    assert np.array_equal(np.sort(patches.ravel()), np.sort(grid.ravel()))
    np.testing.assert_array_equal(patches[4].transpose(1, 2, 0), grid[32:64, 32:64])


def test_cli_trains_a_model_on_photos(tmp_path: Path):
    env = {**os.environ, "CHAINRULE_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    args = ["train", "photos", "pixelcnn_pp", "--run", str(tmp_path / "run"), "--set", "train.steps=2",
            "--set", "train.batch_size=8", "--set", "train.progress=false", "--set", "model.num_filters=4",
            "--set", "model.num_resnet=1", "--set", "output.samples=0"]
    res = subprocess.run([sys.executable, "-m", "chainrule", *args], cwd=tmp_path, capture_output=True, text=True,
                         env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "run" / "best.safetensors").is_file()
    assert "photos" in (tmp_path / "run" / "config.yaml").read_text(encoding="utf-8")
