"""Training pairs composed on the fly: rain layers from `derain synth-bank` over clean crops.

The Rust renderer (`derain::synth`) is the one place that knows how rain looks: it draws the
rain layers R of every family (streak seeds, bicubic rescale, motion-blur kernels, levels)
into banks (`derain synth-bank --style S --out DIR`: rain/NNNNN.png, 16-bit, and
manifest.jsonl). This module blends them over clean crops with the formulas of
`derain::synth::compose` (checked against Rust renders by training/tests/test_rain.py), with
a fresh veil, A and camera effects per sample, so that every batch is new and everything runs
on whichever device trains (CPU or GPU):

    J' = gauss(J, σ_bg)                          reference family only (GT J stays sharp)
    K  = blend(J', R)                            achromatic | add_clip | screen (rust Blend)
    D  = edge-aware proxy depth (vertical prior, guided by luma), blurred σ_D
    T  = exp(−β D);  I = T K + (1 − T) A;  S = K − J
    camera: rescale (of the rain layer), gamma (I and targets), noise and JPEG (I only)
    (optional) the rain layer turned by 20–65° (wind), scene bars painted into J
    (optional) short, soft, uneven rain instead of the bank's (`grainy_rain`, the Rust
    family (f) drawn on the training device; models/README.md, fgrainy)
    (optional) fine scene texture painted into J (`scene_grain`, the counterweight)

Targets per sample: J (clean), V = T J + (1 − T) A (the rain-free veiled image: what the
streak network must leave), T, A.
"""

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .guided_filter import box_mean

LUMA = (0.299, 0.587, 0.114)
BLENDS = ("achromatic", "add_clip", "screen")
# Family → probability in a mixed batch (Rust Style::Mixed uses the same weights).
FAMILY_WEIGHTS = {"reference": 0.20, "dense": 0.25, "screen": 0.20, "layered": 0.20,
                  "light": 0.15}


# --------------------------------------------------------------------------------------------
# Data in memory
# --------------------------------------------------------------------------------------------

def load_threads():
    """Threads that decode images: every core, at most 32 (DERAIN_LOAD_THREADS overrides)."""
    n = int(os.environ.get("DERAIN_LOAD_THREADS", "0") or 0)
    return max(1, n or min(32, os.cpu_count() or 1))


THIN = (0.4, 0.67)  # the rain layer's scale range for `thin` crops (RainBank.crops)


class RainBank:
    """All rain layers of one `derain synth-bank` folder, as uint16 tensors plus their scale."""

    def __init__(self, root, device="cpu", limit=0):
        root = Path(root)
        lines = [json.loads(l) for l in (root / "manifest.jsonl").read_text().splitlines() if l]
        if limit:
            lines = lines[:limit]
        if not lines:
            raise FileNotFoundError(f"no rain layers in {root}")
        self.family = lines[0]["params"]["style"]
        self.blend = lines[0]["params"]["blend"]
        if any(l["params"]["style"] != self.family or l["params"]["blend"] != self.blend
               for l in lines):
            raise ValueError(f"{root}: one family per bank (render each with its own --style)")
        def decode(rec):
            with Image.open(root / "rain" / f"{rec['name']}.png") as im:
                a = np.asarray(im, dtype=np.uint16)
            # R/scale in [0, 1] as float16 (2 bytes a sample, 5e-4 relative precision).
            return torch.from_numpy((a.astype(np.float32) / 65535.0).astype(np.float16))

        # PNG decoding and the conversion release the GIL: one thread per core (the banks of
        # a GPU lease, 6,000 layers, took 54 s to load one at a time).
        with ThreadPoolExecutor(max_workers=load_threads()) as pool:
            layers = list(pool.map(decode, lines))
        scales = [rec["scale"] for rec in lines]
        meta = [rec["params"] for rec in lines]
        self.layers = torch.stack(layers).to(device)
        self.scales = torch.tensor(scales, dtype=torch.float32, device=device)
        self.meta = meta

    def __len__(self):
        return self.layers.shape[0]

    def crops(self, idx, size, out, rng, rotate=0.0, thin=0.0, grainy=0.0):
        """Rain layers `idx` cropped at a random place and scale (×0.67–1.5 of the streaks,
        the camera rescale), resized to `size`² into `out` ([n,1,size,size]). With probability
        `rotate` a layer is also turned by 20–65° either way about the crop's centre (wind:
        every streak of the layer turns together; the families themselves are mostly within
        ±35° of vertical). With probability `thin` the scale is ×0.4–0.67 instead (`THIN`:
        a photo downscaled for the web, whose streaks are a pixel wide and dense; the bank's
        size bounds it, at ×0.5 for a 256² crop of 512² layers). With probability `grainy`
        the crop gets `grainy_rain` instead of the layer."""
        hs, ws = self.layers.shape[-2:]
        for k, i in enumerate(idx):
            if grainy > 0 and rng.random() < grainy:
                out[k] = grainy_rain(size, rng, out.device)
                continue
            lo, hi = THIN if thin > 0 and rng.random() < thin else (0.67, 1.5)
            z = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            win = min(hs, ws, max(8, int(round(size / z))))
            turn = rotate > 0 and rng.random() < rotate
            if turn:
                th = math.radians(rng.uniform(20.0, 65.0) * rng.choice((-1.0, 1.0)))
                c, s = math.cos(th), math.sin(th)
                # The window whose turned copy covers the crop (reflected where the bank
                # is too small for it).
                big = min(hs, ws, int(math.ceil(win * (abs(c) + abs(s)))))
            else:
                big = win
            y, x = rng.integers(0, hs - big + 1), rng.integers(0, ws - big + 1)
            r = self.layers[i, y:y + big, x:x + big].float() * self.scales[i]
            r = r[None, None]
            # To the output's pixel density (the whole crop when not turned).
            b = int(round(big * size / win))
            if b != big:
                r = F.interpolate(r, size=(b, b), mode="bilinear", align_corners=False,
                                  antialias=big > b)
            if turn:
                f = size / b
                rot = torch.tensor([[[c * f, -s * f, 0.0], [s * f, c * f, 0.0]]],
                                   dtype=r.dtype, device=r.device)
                # Sampled bicubically at twice the density and box-averaged: a thin streak
                # turned by plain bilinear sampling comes out dashed.
                grid = F.affine_grid(rot, (1, 1, 2 * size, 2 * size), align_corners=False)
                r = F.grid_sample(r, grid, mode="bicubic", padding_mode="reflection",
                                  align_corners=False)
                r = F.avg_pool2d(r, 2).clamp(min=0.0)
            if rng.random() < 0.5:
                r = r.flip(-1)
            out[k] = r[0]


def _line_kernel(length, angle_deg, fwhm, device):
    """A streak of `length` px along `angle_deg` from vertical, Gaussian across (`fwhm` px),
    peak 1, as a square odd-sized kernel."""
    k = int(math.ceil(length + 3 * fwhm)) | 1
    t = torch.arange(k, dtype=torch.float32, device=device) - k // 2
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    th = math.radians(angle_deg)
    along = xx * math.sin(th) + yy * math.cos(th)
    across = -xx * math.cos(th) + yy * math.sin(th)
    sd = max(fwhm / 2.355, 0.3)
    return torch.exp(-0.5 * (across / sd) ** 2) * (along.abs() <= length / 2).float()


def grainy_rain(size, rng, device="cpu"):
    """A rain layer [1, size, size] as heavy rain looks in a compressed web photo (real photo 1:
    drops 5–8 px long, 1–2 px wide, soft-edged, of uneven brightness, over every pixel), which
    the bank families do not make (their streaks stay crisp, continuous lines when scaled down,
    blurred or made faint; BENCHMARKS.md §7, thirty-fourth session). Drawn at twice the
    resolution and box-averaged: 1–3 layers of drops seeded at 0.3–2 % of the pixels with
    brightness U(0.2, 1) each, 8–40 px long (4–20 after the averaging), 1.5–5 px wide at half
    height, within ±6° of one angle (±35° of vertical), each layer of mean brightness
    0.01–0.08.
    The Rust renderer's family (f), `grainy`, draws the same look (tests/test_rain.py compares
    their drop length, width and brightness); this port draws it on the training device,
    where a bank would have to be rendered and loaded first (`--grainy`)."""
    big = 2 * size
    dev = torch.device(device)
    # Drawn where it is used (a GPU lease draws it on the device: 21 ms a 256² crop on one CPU
    # core); the same seed gives the same layer on one kind of device.
    gen = torch.Generator(device=dev).manual_seed(int(rng.integers(2 ** 62)))
    r = torch.zeros(big, big, device=dev)
    base = rng.uniform(-35.0, 35.0)
    for _ in range(int(rng.integers(1, 4))):
        d = rng.uniform(0.003, 0.02)
        ker = _line_kernel(rng.uniform(8.0, 40.0), base + rng.uniform(-6.0, 6.0),
                           rng.uniform(1.5, 5.0), dev)
        r += _drops((big, big), d, ker, rng.uniform(0.01, 0.08), gen)
    return F.avg_pool2d(r[None, None], 2)[0].clamp(0.0, 1.0)


def _drops(shape, density, ker, mean, gen):
    """A plane [H, W] of drops: seeds on a share `density` of the pixels, brightness U(0.2, 1)
    each (drawn from the torch generator `gen`), spread by the centred square kernel `ker`
    (circularly, by FFT), ≥ 0, scaled so that its mean brightness is `mean` whatever the
    density and the kernel (0.6: the seeds' mean brightness)."""
    h, w = shape
    dev = ker.device
    u = torch.rand(h, w, generator=gen, device=dev)
    seeds = (u < density).float() * (0.2 + 0.8 * torch.rand(h, w, generator=gen, device=dev))
    kp = torch.zeros(h, w, device=dev)
    c = ker.shape[0] // 2
    kp[:ker.shape[0], :ker.shape[1]] = ker
    kp = torch.roll(kp, shifts=(-c, -c), dims=(0, 1))
    layer = torch.fft.irfft2(torch.fft.rfft2(seeds) * torch.fft.rfft2(kp), s=(h, w))
    return layer.clamp(min=0.0) * (mean / (density * 0.6 * float(ker.sum())))


def scene_grain(j, rng, p):
    """Counterweight to `grainy_rain`: fine scene texture painted into the clean crops (in the
    input and in every target), so that a network taught to take short soft marks away learns
    which marks are rain. A `fast` network fine-tuned with a quarter of its crops grainy
    (fgrainy, models/README.md) took such texture off rain-free frames (clear test set −1.3
    dB): foliage, gravel, grass and wet asphalt are short soft marks too. They differ from
    rain in what this paints: marks at every angle (4–8 sub-layers, each at its own angle in
    0–180°), darker as well as brighter than the scene, and coloured (a tint per sub-layer),
    where rain is light only, achromatic and shares one angle. Each sample, with probability
    `p`: marks 2–12 px long, 1–3 px wide, drawn at twice the resolution and box-averaged as
    `grainy_rain` draws its drops, of mean magnitude 0.01–0.06. Returns a new tensor.
    On the CPU it kept 0.2 of those 1.3 dB (fgrain): the clear frames lose bright white spray,
    which this texture does not resemble; off unless a run shows it pays (`--grain`)."""
    n, _, h, w = j.shape
    if p <= 0:
        return j
    out = j.clone()
    dev = j.device
    for i in range(n):
        if rng.random() >= p:
            continue
        gen = torch.Generator(device=dev).manual_seed(int(rng.integers(2 ** 62)))
        tex = torch.zeros(3, 2 * h, 2 * w, device=dev)
        level = rng.uniform(0.01, 0.06)
        subs = int(rng.integers(4, 9))
        for _ in range(subs):
            d = rng.uniform(0.002, 0.01)
            ker = _line_kernel(rng.uniform(4.0, 24.0), rng.uniform(0.0, 180.0),
                               rng.uniform(2.0, 6.0), dev)
            layer = _drops((2 * h, 2 * w), d, ker, level / subs, gen)
            sign = -1.0 if rng.random() < 0.5 else 1.0
            tint = torch.tensor([rng.uniform(0.3, 1.0) for _ in range(3)], device=dev)
            tex += sign * layer[None] * (tint / tint.max()).view(3, 1, 1)
        out[i] = (out[i] + F.avg_pool2d(tex[None], 2)[0]).clamp(0.0, 1.0)
    return out


class CleanImages:
    """Clean images as uint8 tensors; crops at a random scale (0.6–1.6 of the image's own)."""

    def __init__(self, paths, device="cpu", max_side=1024):
        def decode(p):
            with Image.open(p) as im:
                im = im.convert("RGB")
                if max(im.size) > max_side:
                    s = max_side / max(im.size)
                    im = im.resize((round(im.width * s), round(im.height * s)), Image.BICUBIC)
                return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()

        with ThreadPoolExecutor(max_workers=load_threads()) as pool:
            self.images = [t.to(device) for t in pool.map(decode, paths)]
        if not self.images:
            raise FileNotFoundError("no clean images")

    def window(self, h, w, size, rng):
        """The side of the square window a crop of `size` is taken from (a random scale)."""
        z = math.exp(rng.uniform(math.log(0.6), math.log(1.6)))
        return max(8, min(int(round(size / z)), h, w))

    def batch(self, n, size, rng):
        out = []
        for _ in range(n):
            img = self.images[rng.integers(len(self.images))]
            h, w = img.shape[1:]
            win = self.window(h, w, size, rng)
            y, x = rng.integers(0, h - win + 1), rng.integers(0, w - win + 1)
            c = img[:, y:y + win, x:x + win].float()[None] / 255.0
            if win != size:
                c = F.interpolate(c, size=(size, size), mode="bilinear", align_corners=False,
                                  antialias=win > size)
            if rng.random() < 0.5:
                c = c.flip(-1)
            out.append(c.clamp(0, 1))
        return torch.cat(out)


def clean_paths(folder, split):
    """The project's split of ../shared/data/clean: training `sun_000`–`sun_069` and
    `urban_000`–`urban_089`; held out (test) `sun_070`–`sun_079` and `urban_090`–`urban_099`;
    `val` is the last four training images (validation inside training)."""
    folder = Path(folder)
    train = [folder / f"sun_{i:03d}.jpg" for i in range(70)] + \
            [folder / f"urban_{i:03d}.jpg" for i in range(90)]
    test = [folder / f"sun_{i:03d}.jpg" for i in range(70, 80)] + \
           [folder / f"urban_{i:03d}.jpg" for i in range(90, 100)]
    val = train[-4:]
    sets = {"train": train[:-4], "val": val, "test": test, "train+val": train}
    return [p for p in sets[split] if p.exists()]


# --------------------------------------------------------------------------------------------
# The model's parts (ports of derain::synth)
# --------------------------------------------------------------------------------------------

def luma(x):
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def gaussian_blur(x, sigma):
    """`imgaussfilt`: separable Gaussian of size 2⌈2σ⌉+1, replicated borders; `sigma` is a
    [B] tensor (0 = unchanged) or a float."""
    b = x.shape[0]
    sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1).expand(b)
    out = x.clone()
    for i in range(b):
        s = float(sig[i])
        if s <= 0:
            continue
        r = int(math.ceil(2 * s))
        t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
        k = torch.exp(-t * t / (2 * s * s))
        k = k / k.sum()
        c = x.shape[1]
        xi = F.pad(x[i:i + 1], (r, r, r, r), mode="replicate")
        xi = F.conv2d(xi, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        xi = F.conv2d(xi, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
        out[i:i + 1] = xi
    return out


def blend(rained_on, rain, kind):
    """K = blend(J', R) per `derain::synth::blend_rain`; `kind` is a list of blend names."""
    r = rain.clamp(min=0)
    j = rained_on
    sel = lambda name: torch.tensor([k == name for k in kind], device=j.device).view(-1, 1, 1, 1)  # noqa: E731
    if not all(k in BLENDS for k in kind):
        raise ValueError(kind)
    ach = j + torch.minimum(r, 1 - j.amax(1, keepdim=True)).clamp(min=0)
    add = (j + r).clamp(max=1)
    scr = j + r.clamp(max=1) * (1 - j)  # 1 − (1 − J')(1 − R), exact at R = 0
    return torch.where(sel("achromatic"), ach, torch.where(sel("add_clip"), add, scr))


def depth_prior(b, h, w, horizon, offset, gamma, tilt, wobble, grid):
    """`derain::synth::veil::depth_prior` for a batch: [B] parameters, `grid` [B,5,5] of
    uniform [−1, 1] wobble values. Returns depth ε/(δ + ε) of shape [B,1,h,w]."""
    dev = horizon.device
    v = (torch.arange(h, device=dev, dtype=torch.float32) / max(h - 1, 1)).view(1, h, 1)
    u = (torch.arange(w, device=dev, dtype=torch.float32) / max(w - 1, 1)).view(1, 1, w) \
        if w > 1 else torch.full((1, 1, 1), 0.5, device=dev)
    hor = horizon.view(b, 1, 1)
    ramp = ((v - hor) / (1 - hor).clamp(min=1e-3)).clamp(0, 1) ** gamma.view(b, 1, 1)
    ramp = torch.where(v <= hor, torch.zeros_like(ramp), ramp)
    # Bilinear 4×4-cell grid, as the Rust loop does it.
    wob = F.interpolate(grid[:, None], size=(h, w), mode="bilinear", align_corners=True)[:, 0]
    disp = (ramp + tilt.view(b, 1, 1) * (u - 0.5) + wobble.view(b, 1, 1) * wob).clamp(0, 1.5)
    eps = offset.view(b, 1, 1)
    return (eps / (disp + eps))[:, None]


def guided_filter(guide, src, r, eps):
    mi, mp = box_mean(guide, r), box_mean(src, r)
    var = box_mean(guide * guide, r) - mi * mi
    cov = box_mean(guide * src, r) - mi * mp
    a = cov / (var + eps)
    bb = mp - a * mi
    return box_mean(a, r) * guide + box_mean(bb, r)


def proxy_depth(clean, prior):
    """`derain::synth::proxy_depth`: the prior made edge-aware by a luma-guided filter of
    radius max(w,h)/12 and eps 1e-2, clamped to [ε/(1.5+ε), 1]."""
    b, _, h, w = clean.shape
    base = depth_prior(b, h, w, **prior)
    r = max(max(w, h) // 12, 1)
    d = guided_filter(luma(clean), base, r, 1e-2)
    lo = (prior["offset"] / (1.5 + prior["offset"])).view(b, 1, 1, 1)
    return torch.maximum(d, lo).clamp(max=1)


# --------------------------------------------------------------------------------------------
# Per-family draws of the veil, A and pre-blur (the ranges of src/synth/styles.rs)
# --------------------------------------------------------------------------------------------

def _tinted_a(rng):
    grey = 0.25 + 0.35 * (rng.random() + rng.random())
    blue = rng.uniform(0, 0.04)
    tint = [rng.uniform(-0.03, 0.03) - 0.5 * blue, rng.uniform(-0.03, 0.03),
            rng.uniform(-0.03, 0.03) + blue]
    return [min(1.0, max(0.0, grey * (1 + t))) for t in tint]


def _random_prior(rng):
    return dict(horizon=rng.uniform(0.05, 0.5), offset=rng.uniform(0.06, 0.16),
                gamma=rng.uniform(0.7, 1.6), tilt=rng.uniform(-0.25, 0.25),
                wobble=rng.uniform(0, 0.15))


def draw_scene(family, meta, rng):
    """β, A, depth prior, depth blur and background blur for one sample of `family`; layered
    and light layers keep the β their Rust draw had (it depends on the drawn intensity)."""
    if family == "reference":
        z = rng.normal(0.5, 0.5)
        return dict(beta=rng.uniform(2.6, 4.6), a=[rng.uniform(0.25, 0.95)] * 3,
                    prior=dict(horizon=0.3, offset=0.1, gamma=1.0, tilt=0.0, wobble=0.0),
                    depth_blur=5.0, bg_blur=min(1.0, abs(z)), grid=np.zeros(25))
    if family == "dense":
        beta = rng.uniform(2.6, 4.6) * rng.uniform(0.2, 0.8) if rng.random() < 0.5 else 0.0
    elif family == "screen":
        beta = rng.uniform(2.6, 4.6) * rng.uniform(0.2, 0.7) if rng.random() < 1 / 3 else 0.0
    else:  # layered, light: the intensity-dependent β of the Rust draw
        beta = float(meta["beta"])
    return dict(beta=beta, a=_tinted_a(rng), prior=_random_prior(rng), depth_blur=0.0,
                bg_blur=0.0, grid=rng.uniform(-1, 1, 25))


# --------------------------------------------------------------------------------------------
# Camera effects (src/synth/camera.rs ranges; JPEG simulated by 8×8 DCT quantisation)
# --------------------------------------------------------------------------------------------

_JPEG_Y = torch.tensor([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=torch.float32)
_JPEG_C = torch.tensor([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32, dtype=torch.float32)


def _dct_matrix(device):
    n = torch.arange(8, dtype=torch.float32, device=device)
    k = n.view(8, 1)
    m = torch.cos(math.pi * (2 * n + 1) * k / 16)
    m[0] *= 1 / math.sqrt(2)
    return m * 0.5


def jpeg_tables(quality, device):
    """IJG-scaled luma and chroma tables for each quality in the list: two [N,8,8] tensors."""
    out = []
    for base in (_JPEG_Y, _JPEG_C):
        rows = []
        for q in quality:
            q = max(1, min(100, int(q)))
            s = 5000 / q if q < 50 else 200 - 2 * q
            rows.append(((base * s + 50) // 100).clamp(1, 255))
        out.append(torch.stack(rows).view(-1, 8, 8).to(device))
    return out


def jpeg_sim(x, quality):
    """Baseline JPEG (IJG table scaling): YCbCr, 4:2:0 chroma, 8×8 DCT, quantisation with
    rounding, and back. x: [N,3,H,W] in [0,1] with H, W multiples of 16; `quality` one value
    per image."""
    dev = x.device
    ty, tc = jpeg_tables(quality, dev)
    d = _dct_matrix(dev)
    r, g, b = x[:, 0] * 255, x[:, 1] * 255, x[:, 2] * 255
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128

    def code(p, tab):
        n, h, w = p.shape
        blk = (p - 128).reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)
        c = d @ blk @ d.T
        t = tab.view(n, 1, 1, 8, 8)
        c = torch.round(c / t) * t
        out = d.T @ c @ d + 128
        return out.permute(0, 1, 3, 2, 4).reshape(n, h, w)

    y = code(y, ty)
    sub = lambda p: F.avg_pool2d(p[:, None], 2)[:, 0]  # noqa: E731
    up = lambda p: F.interpolate(p[:, None], scale_factor=2, mode="bilinear",  # noqa: E731
                                 align_corners=False)[:, 0]
    cb, cr = up(code(sub(cb), tc)), up(code(sub(cr), tc))
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    return (torch.stack([r, g, b], 1) / 255).clamp(0, 1)


def camera(batch, rng, p=1.0):
    """Gamma on I and the targets, then noise and JPEG on I (each with its probability of
    src/synth/camera.rs; `p` scales them all, 0 = none)."""
    x = batch["in"]
    n, _, h, w = x.shape
    dev = x.device
    gam = torch.tensor([rng.uniform(0.8, 1.25) if rng.random() < 0.5 * p else 1.0
                        for _ in range(n)], device=dev).view(n, 1, 1, 1)
    if bool((gam != 1).any()):
        for k in ("in", "gt", "veiled"):
            batch[k] = batch[k].clamp(0, 1) ** gam
    noisy = [rng.random() < 0.5 * p for _ in range(n)]
    rn = torch.tensor([rng.uniform(0, 0.01) if z else 0.0 for z in noisy], device=dev)
    sn = torch.tensor([rng.uniform(0, 0.03) if z else 0.0 for z in noisy], device=dev)
    if any(noisy):
        x = batch["in"]
        var = rn.view(n, 1, 1, 1) ** 2 + sn.view(n, 1, 1, 1) ** 2 * x.clamp(min=0)
        batch["in"] = (x + torch.randn_like(x) * var.sqrt()).clamp(0, 1)
    jpg = [i for i in range(n) if rng.random() < 0.6 * p]
    if jpg and h % 16 == 0 and w % 16 == 0:
        q = [int(rng.integers(55, 96)) for _ in jpg]
        batch["in"][jpg] = jpeg_sim(batch["in"][jpg], q)
    return batch


def scene_bars(j, rng, p):
    """Hard negatives: opaque bars painted into the clean crops, so that they are part of the
    scene (in the input and in every target). Lane markings, zebra crossings, railings,
    fences, blinds, window slats and lit floor panels look like streaks to a local network
    (long, bright, straight, parallel) and the networks trained without these erased them
    (validation crops with 15–40 parallel bars: 22–26 dB against 34 dB on the same crops
    plain); but they occlude what is behind them, repeat at one period and end squarely,
    where rain is additive, scattered and tapered. Each sample, with probability `p`, gets
    one group of parallel bars at one period: half the groups 1–10 bars 15–220 px long, half
    10–40 bars 60–400 px long; at any angle or, 40 % of them, within 35° of vertical (as rain
    falls); 1.5–14 px wide; bright (a light grey, white or a tint) or dark; 0.8–1 opaque;
    anti-aliased, and half of them softened by a blur of σ 0.5–2 px (optics, glow). Returns
    a new tensor."""
    n, _, h, w = j.shape
    if p <= 0:
        return j
    out = j.clone()
    yy, xx = torch.meshgrid(torch.arange(h, device=j.device, dtype=torch.float32),
                            torch.arange(w, device=j.device, dtype=torch.float32),
                            indexing="ij")
    for i in range(n):
        if rng.random() >= p:
            continue
        if rng.random() < 0.4:
            ang = math.radians(90 + rng.uniform(-35, 35))
        else:
            ang = rng.uniform(0, math.pi)
        c, s = math.cos(ang), math.sin(ang)
        width = math.exp(rng.uniform(math.log(1.5), math.log(14)))
        if rng.random() < 0.5:
            count = int(rng.integers(1, 11))
            length = math.exp(rng.uniform(math.log(15), math.log(220)))
        else:
            count = int(rng.integers(10, 41))
            length = math.exp(rng.uniform(math.log(60), math.log(400)))
        period = width * rng.uniform(1.6, 4.0)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        u = (xx - cx) * c + (yy - cy) * s          # along the bars
        v = -(xx - cx) * s + (yy - cy) * c         # across
        v = v + period * (count - 1) / 2
        k = torch.round(v / period).clamp(0, count - 1)
        d = (v - k * period).abs()
        m = ((width / 2 - d + 0.5).clamp(0, 1) * (length / 2 - u.abs() + 0.5).clamp(0, 1))
        if rng.random() < 0.5:
            m = gaussian_blur(m[None, None], rng.uniform(0.5, 2.0))[0, 0]
        if rng.random() < 0.7:
            level = rng.uniform(0.65, 1.0)
            tint = torch.tensor([rng.uniform(0.85, 1.0) for _ in range(3)], device=j.device)
            colour = (level * tint / tint.max()).view(3, 1, 1)
        else:
            colour = torch.full((3, 1, 1), rng.uniform(0.0, 0.25), device=j.device)
        m = m * rng.uniform(0.8, 1.0)
        out[i] = out[i] * (1 - m) + colour * m
    return out


# --------------------------------------------------------------------------------------------
# The composer
# --------------------------------------------------------------------------------------------

class Composer:
    """Makes batches of rainy/clean pairs from clean images and rain banks. `bars`: share of
    samples with scene bars painted into the clean crop (`scene_bars`); `rotate`: share whose
    rain layer is turned by 20–65° (`RainBank.crops`); `thin`: share whose rain layer is
    scaled by ×0.4–0.67 (`THIN`) instead of ×0.67–1.5; `grainy`: share whose rain is short,
    soft and uneven instead of the bank's (`grainy_rain`); `grain`: share with fine scene
    texture painted into the clean crop (`scene_grain`, its counterweight); `clear`: share of
    rain-free, veil-free samples (I = J before the camera effects: what the network must
    leave alone, a counterweight that uses the scenes' own texture)."""

    def __init__(self, clean, banks, weights=None, device="cpu", bars=0.0, rotate=0.0,
                 thin=0.0, grainy=0.0, grain=0.0, clear=0.0):
        self.clean = clean
        self.grain = grain
        self.clear = clear
        self.bars = bars
        self.rotate = rotate
        self.thin = thin
        self.grainy = grainy
        self.banks = {b.family: b for b in banks}
        w = weights or FAMILY_WEIGHTS
        self.families = [f for f in w if f in self.banks]
        p = np.array([w[f] for f in self.families], dtype=np.float64)
        self.p = p / p.sum()
        self.device = device

    def batch(self, n, size, rng, camera_p=1.0, families=None, veil=True):
        """`veil=False`: the same draws with β = 0 (T = 1, no veil), for the veil-free
        validation line of train_full."""
        dev = self.device
        j = self.clean.batch(n, size, rng).to(dev)
        if self.bars > 0:
            j = scene_bars(j, rng, self.bars)
        if self.grain > 0:
            j = scene_grain(j, rng, self.grain)
        fams = families or list(rng.choice(self.families, size=n, p=self.p))
        rain = torch.zeros(n, 1, size, size, device=dev)
        scenes, blends = [], []
        for i, f in enumerate(fams):
            bank = self.banks[f]
            k = int(rng.integers(len(bank)))
            bank.crops([k], size, rain[i:i + 1], rng, self.rotate, self.thin, self.grainy)
            scenes.append(draw_scene(f, bank.meta[k], rng))
            if not veil:
                scenes[-1]["beta"] = 0.0
            # Drawn only when asked for, so that runs without it keep their draws.
            if self.clear > 0 and rng.random() < self.clear:
                rain[i].zero_()
                scenes[-1].update(beta=0.0, bg_blur=0.0)
            blends.append(bank.blend)
        t, k_img, a = compose(j, rain, scenes, blends)
        batch = {"in": None, "gt": j, "trans": t, "atm": a, "family": fams}
        at = a[:, :, None, None]
        batch["veiled"] = t * j + (1 - t) * at
        batch["in"] = (t * k_img + (1 - t) * at).clamp(0, 1)
        return camera(batch, rng, camera_p)


def compose(j, rain, scenes, blends):
    """The pure part of the composition for a batch: returns T [B,1,H,W], K [B,3,H,W] and
    A [B,3] from clean J, rain R and per-sample scene draws (see `draw_scene`)."""
    b = j.shape[0]
    dev = j.device
    bg = torch.tensor([s["bg_blur"] for s in scenes], device=dev)
    rained_on = gaussian_blur(j, bg) if bool((bg > 0).any()) else j
    k_img = blend(rained_on, rain, blends)
    prior = {key: torch.tensor([s["prior"][key] for s in scenes], dtype=torch.float32, device=dev)
             for key in ("horizon", "offset", "gamma", "tilt", "wobble")}
    prior["grid"] = torch.stack([torch.as_tensor(np.asarray(s["grid"], dtype=np.float32))
                                 .view(5, 5) for s in scenes]).to(dev)
    d = proxy_depth(j, prior)
    db = torch.tensor([s["depth_blur"] for s in scenes], device=dev)
    if bool((db > 0).any()):
        d = gaussian_blur(d, db)
    beta = torch.tensor([s["beta"] for s in scenes], dtype=torch.float32, device=dev)
    t = torch.exp(-beta.view(b, 1, 1, 1) * d)
    a = torch.tensor([s["a"] for s in scenes], dtype=torch.float32, device=dev)
    return t, k_img, a
