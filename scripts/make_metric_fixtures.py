#!/usr/bin/env python3
"""Generate reference fixtures for the image-quality metrics (PSNR / SSIM).

Writes tests/fixtures/metrics/:
  <name>_a.png, <name>_b.png   8-bit RGB PNG pairs (b = degraded a)
  expected.json                reference metric values computed with scikit-image

Deterministic (fixed seed). Metrics are computed on the images *as loaded back
from the PNG files*, converted to float64 with R,G,B in [0,1] = byte/255:

  Y        = 16 + 65.481*R + 128.553*G + 24.966*B     (float64, no rounding)
  psnr_y   = peak_signal_noise_ratio(Y_a, Y_b, data_range=255)
  ssim_y   = structural_similarity(Y_a, Y_b, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False, data_range=255)
  psnr_rgb = peak_signal_noise_ratio(rgb_a, rgb_b, data_range=1)  (HxWx3, [0,1])

Usage: .venv/bin/python scripts/make_metric_fixtures.py [--out DIR]
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
import skimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

SEED = 20240521
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "fixtures", "metrics")

# (name, width, height, degradation)
PAIRS = [
    ("noise", 32, 24, "noise"),
    ("blur", 37, 23, "blur"),  # odd dimensions
    ("streaks", 64, 48, "streaks"),
    ("brightness", 11, 11, "brightness"),  # minimum size for 11x11 gaussian SSIM window
]


def natural_image(rng, w, h):
    """Gradients + a few flat colour blocks + mild noise; uint8 HxWx3 RGB."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.empty((h, w, 3), np.float64)
    img[..., 0] = 0.2 + 0.6 * x / max(w - 1, 1)
    img[..., 1] = 0.3 + 0.5 * y / max(h - 1, 1)
    img[..., 2] = 0.5 + 0.3 * np.sin(2 * np.pi * (x + y) / max(w, h))
    for _ in range(3):
        bw = int(rng.integers(max(2, w // 6), max(3, w // 2)))
        bh = int(rng.integers(max(2, h // 6), max(3, h // 2)))
        x0 = int(rng.integers(0, w - bw + 1))
        y0 = int(rng.integers(0, h - bh + 1))
        img[y0:y0 + bh, x0:x0 + bw, :] = rng.uniform(0.05, 0.95, 3)
    img += rng.normal(0.0, 0.02, img.shape)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def degrade(rng, a, kind):
    f = a.astype(np.float64)
    h, w = a.shape[:2]
    if kind == "noise":
        b = f + rng.normal(0.0, 12.0, f.shape)
    elif kind == "blur":
        b = cv2.GaussianBlur(f, (5, 5), 1.2, borderType=cv2.BORDER_REFLECT_101)
    elif kind == "brightness":
        b = f + 25.0
    elif kind == "streaks":
        b = f.copy()
        cols = rng.choice(w, size=max(2, w // 10), replace=False)
        for c in cols:
            alpha = rng.uniform(0.4, 0.8)
            y0 = int(rng.integers(0, h // 3))
            y1 = int(rng.integers(2 * h // 3, h + 1))
            b[y0:y1, c, :] = (1 - alpha) * b[y0:y1, c, :] + alpha * 255.0
    else:
        raise ValueError(kind)
    return np.clip(np.round(b), 0, 255).astype(np.uint8)


def write_png(path, rgb):
    ok = cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("failed to write " + path)


def read_rgb01(path):
    bgr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if bgr is None or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise RuntimeError("unexpected PNG format: " + path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float64) / 255.0


def luma(rgb):
    return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]


def metrics(pa, pb):
    a, b = read_rgb01(pa), read_rgb01(pb)
    ya, yb = luma(a), luma(b)
    return {
        "psnr_y": float(peak_signal_noise_ratio(ya, yb, data_range=255)),
        "ssim_y": float(structural_similarity(
            ya, yb, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=255)),
        "psnr_rgb": float(peak_signal_noise_ratio(a, b, data_range=1)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    rng = np.random.default_rng(SEED)
    pairs = []
    for name, w, h, kind in PAIRS:
        a = natural_image(rng, w, h)
        b = degrade(rng, a, kind)
        fa, fb = name + "_a.png", name + "_b.png"
        write_png(os.path.join(args.out, fa), a)
        write_png(os.path.join(args.out, fb), b)
        m = metrics(os.path.join(args.out, fa), os.path.join(args.out, fb))
        pairs.append({"name": name, "a": fa, "b": fb, **m})
        print(f"{name:10s} {w}x{h} psnr_y={m['psnr_y']:.6f} "
              f"ssim_y={m['ssim_y']:.6f} psnr_rgb={m['psnr_rgb']:.6f}")

    doc = {
        "pairs": pairs,
        "generator": "scripts/make_metric_fixtures.py",
        "skimage_version": skimage.__version__,
    }
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
