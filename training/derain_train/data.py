"""Rendered training pairs from `derain synth` (folders in/ gt/ streak/ trans/ atm/ depth/).

Everything is decoded once into uint8 tensors in memory; batches are random crops with a
random horizontal flip, converted to float32 in [0, 1].
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

LAYERS = ("in", "gt", "streak", "trans", "atm", "depth")


def _load(path: Path, mode: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert(mode))


def _sample(root: Path, stem: str):
    rgb = lambda d: _load(root / d / f"{stem}.png", "RGB")  # noqa: E731
    grey = lambda d: _load(root / d / f"{stem}.png", "L")  # noqa: E731
    a = rgb("atm")[0, 0].astype(np.float32) / 255.0
    img = np.concatenate(
        [rgb("in"), rgb("gt"), grey("streak")[..., None], grey("trans")[..., None],
         grey("depth")[..., None]], axis=2)
    return stem, torch.from_numpy(img.transpose(2, 0, 1).copy()), torch.from_numpy(a)


class Renders:
    """All samples under one or more `derain synth` output roots."""

    def __init__(self, roots, names=None):
        jobs = []
        for root in map(Path, roots):
            stems = sorted(p.stem for p in (root / "in").glob("*.png"))
            if names is not None:
                stems = [s for s in stems if s in names]
            jobs += [(root, stem) for stem in stems]
        # PNG decoding releases the GIL: threads load thousands of samples several times faster.
        with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
            self.samples = list(pool.map(lambda job: _sample(*job), jobs))
        self.keys = jobs  # (root, stem) of each sample
        if not self.samples:
            raise FileNotFoundError(f"no rendered samples (in/*.png) under {list(roots)}")

    def __len__(self):
        return len(self.samples)

    @staticmethod
    def split(t: torch.Tensor, a: torch.Tensor) -> dict:
        x = t.float() / 255.0
        return {"in": x[:, 0:3], "gt": x[:, 3:6], "streak": x[:, 6:7], "trans": x[:, 7:8],
                "depth": x[:, 8:9], "atm": a}

    def batch(self, n: int, crop: int, rng: np.random.Generator) -> dict:
        """`n` random crops of `crop`×`crop` (samples smaller than the crop are skipped)."""
        tiles, atms = [], []
        while len(tiles) < n:
            _, t, a = self.samples[rng.integers(len(self.samples))]
            h, w = t.shape[1:]
            if h < crop or w < crop:
                continue
            y, x = rng.integers(h - crop + 1), rng.integers(w - crop + 1)
            tile = t[:, y:y + crop, x:x + crop]
            if rng.random() < 0.5:
                tile = tile.flip(2)
            tiles.append(tile)
            atms.append(a)
        return self.split(torch.stack(tiles), torch.stack(atms))

    def whole(self, i: int, multiple: int) -> dict:
        """Sample `i` cropped to a multiple of `multiple` (top-left), as a batch of one."""
        _, t, a = self.samples[i]
        h, w = t.shape[1:]
        t = t[:, : h - h % multiple, : w - w % multiple]
        return self.split(t[None], a[None])
