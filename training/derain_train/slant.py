"""Test-time shear for wind-slanted rain: a trial, not part of the shipped pipeline.

The streak networks were trained on streaks within about ±35° of vertical, so rain turned
by the wind to 40–65° mostly survives them (real photos 98, 117, 126, 140). Shearing the
frame row by row (integer shifts: nothing is resampled) turns streaks at angle θ into
vertical ones; the network runs on the sheared canvas and its rain layer is sheared back:

    row y of the canvas = row y of I moved right by d[y] = max(s) − round((y − (h−1)/2)·tan θ)
    R = unshear(StreakNet(shear(I)));  I_s = clamp(I − R, 0, 1)

The canvas outside the image is filled by reflecting each canvas column's own run of image
rows, so the vertical streaks continue across the border (replicating each row's edge pixel
drew horizontal bright lines there and cost up to 3.7 dB near the border).

The angle comes from `orientation`: a histogram of structure-tensor orientations of the luma,
weighted by coherence² × anisotropy over pixels brighter than their 7×7 mean (rain adds
light), peak and the share of the weight within ±10° of it ("confidence").

    python -m derain_train.slant --size quality FOLDER…    (derain synth output or in/ + gt/)

prints, per frame, Y-PSNR of the input and of I_s without and with the shear at the
estimated angle (against the veiled target T·J + (1 − T)·A where the folder has trans/ and
a manifest, else gt/), and the means of the rule "shear when MIN ≤ |θ| ≤ 65° and confidence
≥ C". Findings (2026-12-06, models/README.md "Tried at test time"): it removes most of photo
140's 45° streaks; but the estimate cannot tell lit floor slats from rain (held-out
urban_092: −7 to −14 dB when sheared), so it is not in the pipeline.
"""

import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .export_full import load_png, load_streak
from .guided_filter import box_mean
from .rain import gaussian_blur, luma
from .streak import remove_rain
from .train_streak import ypsnr

MAX_ANGLE = 65.0


def shear_offsets(h, tan_theta):
    """d[y] ≥ 0: how far row y moves right on the canvas; canvas width is w + max(d)."""
    sh = [int(round((y - (h - 1) / 2) * tan_theta)) for y in range(h)]
    hi = max(sh)
    return torch.tensor([hi - v for v in sh])


def shear(img, tan_theta):
    """[B, C, H, W] → ([B, C, H, W + D], d): streaks x = x0 + y·tanθ become vertical."""
    b, c, h, w = img.shape
    d = shear_offsets(h, tan_theta)
    big_w = w + int(d.max())
    xs = torch.arange(big_w)
    src = xs[None, :] - d[:, None]                       # image column per canvas (y, x)
    valid = (src >= 0) & (src < w)
    ys = torch.arange(h)[:, None].expand(h, big_w)
    # Each column's valid rows form one run [y0, y1] (d is monotone in y).
    big = h + 1
    y0 = torch.where(valid, ys, torch.full_like(ys, big)).min(0).values
    y1 = torch.where(valid, ys, torch.full_like(ys, -1)).max(0).values
    n = (y1 - y0 + 1).clamp(min=1)
    k = (ys - y0[None, :]) % (2 * n[None, :])
    k = torch.where(k >= n[None, :], 2 * n[None, :] - 1 - k, k)
    yy = y0[None, :] + k
    xx = (xs[None, :] - d[yy]).clamp(0, w - 1)
    idx = (yy * w + xx).flatten()
    return img.reshape(b, c, h * w)[:, :, idx].reshape(b, c, h, big_w), d


def unshear(r, d, w):
    """The canvas layer back on the image grid."""
    b, c, h, _ = r.shape
    cols = torch.arange(w)[None, :] + d[:, None]
    return torch.gather(r, 3, cols[None, None].expand(b, c, h, w))


def orientation(img):
    """(θ in degrees from vertical, positive = down-right; confidence in [0, 1]) of [1, 3, H, W]."""
    y = luma(img)
    hp = y - box_mean(y, 3)
    gx = F.pad(y[..., :, 2:] - y[..., :, :-2], (1, 1, 0, 0), mode="replicate") / 2
    gy = F.pad(y[..., 2:, :] - y[..., :-2, :], (0, 0, 1, 1), mode="replicate") / 2
    jxx, jxy, jyy = (gaussian_blur(v, 2.0) for v in (gx * gx, gx * gy, gy * gy))
    diff = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy ** 2)
    coh = diff / (jxx + jyy + 1e-9)
    theta = -torch.rad2deg(0.5 * torch.atan2(2 * jxy, jxx - jyy))
    wgt = coh ** 2 * diff * (hp > 0)
    bins = ((theta.flatten() + 90) / 2).long().clamp(0, 89)     # bins of 2°
    hist = torch.zeros(90).index_add(0, bins, wgt.flatten())
    kern = torch.tensor([1.0, 2, 3, 4, 5, 4, 3, 2, 1])
    ext = torch.cat([hist[-4:], hist, hist[:4]])
    smooth = F.conv1d(ext[None, None], (kern / kern.sum())[None, None])[0, 0]
    i = int(smooth.argmax())
    near = [(i + j) % 90 for j in range(-5, 6)]
    total = float(hist.sum())
    conf = float(hist[near].sum()) / total if total > 0 else 0.0
    return -89.0 + 2 * i, conf


def remove_rain_sheared(net, img, theta):
    """I_s and R with the network run on the frame sheared by θ degrees."""
    x, d = shear(img, math.tan(math.radians(theta)))
    _, r = remove_rain(net, x)
    r = unshear(r, d, img.shape[-1])
    return (img - r).clamp(0, 1), r


def targets(folder):
    """name → Y-PSNR target loader: T·J + (1 − T)·A where trans/ and the manifest exist."""
    atm = {}
    man = os.path.join(folder, "manifest.jsonl")
    if os.path.exists(man):
        for line in open(man):
            rec = json.loads(line)
            atm[rec["name"]] = rec["params"]["atmosphere"]

    def load(name):
        gt = torch.from_numpy(load_png(os.path.join(folder, "gt", name)))[None]
        tp = os.path.join(folder, "trans", name)
        if os.path.exists(tp) and name[:-4] in atm:
            t = np.asarray(Image.open(tp).convert("L"), np.float32) / 255
            t = torch.from_numpy(t)[None, None]
            a = torch.tensor(atm[name[:-4]])[None, :, None, None]
            return t * gt + (1 - t) * a
        return gt
    return load


@torch.no_grad()
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--size", default="quality", choices=["fast", "quality"])
    ap.add_argument("--weights", help="default weights/streak_SIZE.pt")
    ap.add_argument("--min-angle", type=float, default=40.0)
    ap.add_argument("--min-conf", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    net = load_streak(a.weights or os.path.join(here, "weights", f"streak_{a.size}.pt"), a.size)
    net.eval()
    for folder in a.folders:
        target = targets(folder)
        rows = []
        for name in sorted(os.listdir(os.path.join(folder, "in"))):
            img = torch.from_numpy(load_png(os.path.join(folder, "in", name)))[None]
            ref = target(name)
            theta, conf = orientation(img)
            plain = remove_rain(net, img)[0]
            sheared = remove_rain_sheared(net, img, theta)[0]
            row = [float(ypsnr(v, ref)[0]) for v in (img, plain, sheared)] + [theta, conf]
            print(f"{name}\tin {row[0]:.2f}\tplain {row[1]:.2f}\tsheared {row[2]:.2f}"
                  f"\tangle {theta:+.0f}\tconf {conf:.2f}", flush=True)
            if row[0] < 90:   # a clear frame scores infinity against itself
                rows.append(row)
        r = np.array(rows)
        use = (np.abs(r[:, 3]) >= a.min_angle) & (np.abs(r[:, 3]) <= MAX_ANGLE) \
            & (r[:, 4] >= a.min_conf)
        ruled = np.where(use, r[:, 2], r[:, 1])
        print(f"{folder}: n {len(r)}, input {r[:, 0].mean():.3f}, plain {r[:, 1].mean():.3f}, "
              f"sheared when {a.min_angle:.0f}°–{MAX_ANGLE:.0f}° and conf ≥ {a.min_conf} "
              f"({int(use.sum())} frames) {ruled.mean():.3f}, worst frame "
              f"{(ruled - r[:, 1]).min():+.2f}, best {(ruled - r[:, 1]).max():+.2f}")


if __name__ == "__main__":
    main()
