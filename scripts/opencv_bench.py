#!/usr/bin/env python3
"""Speed baseline: OpenCV cv2.ximgproc.guidedFilter (and a DCP dehaze) on float32.

Serves as the reference point for the Rust guided filter. All images are float32
RGB in [0,1]; the guide is the 1-channel residue max(R,G,B) - min(R,G,B).

Workloads (median of N timed runs after one warm-up, per thread count):
  gf_r8          guidedFilter(residue, rgb, 8, 1e-3)          at 720p and 1080p
  bank10         radii {2,4,8,16,32} x eps {1e-3,1e-4}, 10 calls, one unit, 1080p
  dcp_dehaze     dark-channel-prior dehaze (erode 15x15, guided refine r=60), 1080p

--accuracy: max |OpenCV - float64 numpy reference| for a single-channel guided
filter (r=32 and r=8, eps=1e-4) on a 256x256 image. The reference uses box means
over the in-image part of each window (window sum / in-image count, via
cumulative sums); reflect-padded references are reported too, for diagnosis.

Usage: .venv/bin/python scripts/opencv_bench.py [--threads 1,2] [--runs 7]
                                                 [--json PATH] [--accuracy]
"""
import argparse
import json
import statistics
import sys
import time

import cv2
import numpy as np

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
BANK_RADII = (2, 4, 8, 16, 32)
BANK_EPS = (1e-3, 1e-4)


# ----------------------------------------------------------------- test data
def make_image(w, h, seed=1234, streaks=True):
    """Deterministic float32 RGB in [0,1]: gradients + blocks + noise + streaks."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 0.15 + 0.6 * x / (w - 1)
    img[..., 1] = 0.25 + 0.5 * y / (h - 1)
    img[..., 2] = 0.45 + 0.25 * np.sin(2 * np.pi * (x + 0.5 * y) / (w / 3))
    for _ in range(12):
        bw = int(rng.integers(w // 20, w // 4))
        bh = int(rng.integers(h // 20, h // 4))
        x0 = int(rng.integers(0, w - bw))
        y0 = int(rng.integers(0, h - bh))
        img[y0:y0 + bh, x0:x0 + bw] = rng.uniform(0.05, 0.9, 3).astype(np.float32)
    img += rng.normal(0.0, 0.03, img.shape).astype(np.float32)
    if streaks:
        ncols = max(4, w // 40)
        for c in rng.choice(w, size=ncols, replace=False):
            width = int(rng.integers(1, 3))
            y0 = int(rng.integers(0, h // 3))
            y1 = int(rng.integers(2 * h // 3, h))
            a = np.float32(rng.uniform(0.3, 0.7))
            s = img[y0:y1, c:c + width]
            img[y0:y1, c:c + width] = (1 - a) * s + a
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def to_8bit_grid(img):
    """Rounds to multiples of 1/255, as an 8-bit frame converted to float32."""
    return (np.round(img * 255.0).astype(np.float32) * np.float32(1.0 / 255.0)).astype(np.float32)


def residue(rgb):
    return np.ascontiguousarray(rgb.max(axis=2) - rgb.min(axis=2), dtype=np.float32)


# ----------------------------------------------------------------- workloads
def gf(guide, src, r, eps, dst=None):
    # `dst` is reused across calls, as derain's bench reuses its output planes.
    return cv2.ximgproc.guidedFilter(guide, src, r, eps, dst=dst)


def bank10(guide, src, dsts=None):
    out = []
    k = 0
    for r in BANK_RADII:
        for e in BANK_EPS:
            out.append(gf(guide, src, r, e, None if dsts is None else dsts[k]))
            k += 1
    return out


def dcp_dehaze(img, patch=15, omega=0.95, t0=0.1, r=60, eps=1e-4):
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    dark = cv2.erode(img.min(axis=2), kernel)
    n = max(1, dark.size // 1000)  # top 0.1 %
    idx = np.argpartition(dark.ravel(), dark.size - n)[-n:]
    A = img.reshape(-1, 3)[idx].mean(axis=0).astype(np.float32)
    A = np.maximum(A, 1e-3)
    t = 1.0 - omega * cv2.erode((img / A).min(axis=2), kernel)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    t = cv2.ximgproc.guidedFilter(gray, t.astype(np.float32), r, eps)
    t = np.maximum(t, t0)[..., None]
    return (img - A) / t + A


def time_ms(fn, runs):
    fn()  # warm-up
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


# ----------------------------------------------------------------- accuracy
def _box_mean_count(x, r):
    """Mean over the in-image part of the (2r+1)^2 window (sum / in-image count)."""
    h, w = x.shape
    S = np.zeros((h + 1, w + 1), np.float64)
    S[1:, 1:] = np.cumsum(np.cumsum(x, axis=0), axis=1)
    y0 = np.clip(np.arange(h) - r, 0, h)
    y1 = np.clip(np.arange(h) + r + 1, 0, h)
    x0 = np.clip(np.arange(w) - r, 0, w)
    x1 = np.clip(np.arange(w) + r + 1, 0, w)
    s = (S[y1][:, x1] - S[y0][:, x1] - S[y1][:, x0] + S[y0][:, x0])
    cnt = np.outer(y1 - y0, x1 - x0).astype(np.float64)
    return s / cnt


def _box_mean_pad(x, r, mode):
    """Mean over the full window of a padded image (numpy pad mode)."""
    h, w = x.shape
    p = np.pad(x, r, mode=mode)
    S = np.zeros((h + 2 * r + 1, w + 2 * r + 1), np.float64)
    S[1:, 1:] = np.cumsum(np.cumsum(p, axis=0), axis=1)
    k = 2 * r + 1
    s = S[k:, k:] - S[:-k, k:] - S[k:, :-k] + S[:-k, :-k]
    return s / (k * k)


def guided_ref(I, p, r, eps, box):
    I = I.astype(np.float64)
    p = p.astype(np.float64)
    mI, mp = box(I, r), box(p, r)
    var = box(I * I, r) - mI * mI
    cov = box(I * p, r) - mI * mp
    a = cov / (var + eps)
    b = mp - a * mI
    return box(a, r) * I + box(b, r)


def accuracy():
    img = make_image(256, 256, seed=99)
    guide = residue(img)
    src = np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    boxes = {
        "count": _box_mean_count,
        "reflect(abc|cba)": lambda x, r: _box_mean_pad(x, r, "symmetric"),
        "reflect101(cb|abc)": lambda x, r: _box_mean_pad(x, r, "reflect"),
    }
    print("accuracy: single-channel guided filter, 256x256, eps=1e-4, "
          "guide=residue, src=gray; max |OpenCV(float32) - numpy(float64)|")
    res = []
    for r in (32, 8):
        cvout = cv2.ximgproc.guidedFilter(guide, src, r, 1e-4).astype(np.float64)
        for name, box in boxes.items():
            ref = guided_ref(guide, src, r, 1e-4, box)
            d = np.abs(cvout - ref)
            m = 2 * r  # a,b depend on pixels up to 2r away
            interior = d[m:-m, m:-m].max() if 256 > 2 * m else float("nan")
            print(f"  r={r:2d} ref={name:20s} max_abs_all={d.max():.3e} "
                  f"max_abs_interior(>= {m}px from edge)={interior:.3e}")
            res.append({"r": r, "ref": name, "max_abs_all": float(d.max()),
                        "max_abs_interior": float(interior)})
    return res


# ----------------------------------------------------------------- main
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated cv2 thread counts")
    ap.add_argument("--runs", type=int, default=7, help="timed runs per measurement")
    ap.add_argument("--json", metavar="PATH", help="write results as JSON")
    ap.add_argument("--works", default="",
                    help="comma-separated subset of gf_r8_eps1e-3_3ch,bank10_3ch,dcp_dehaze")
    ap.add_argument("--accuracy", action="store_true",
                    help="also compare against a float64 numpy reference")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t.strip()]

    print(f"cv2 {cv2.__version__}  numpy {np.__version__}")
    print(f"cpu: {cpu_model()}  (logical cpus: {cv2.getNumberOfCPUs()})")
    print(f"runs: median of {args.runs} after 1 warm-up")

    # On the 8-bit grid, as a camera frame is (derain's bench uses 8-bit frames too); the
    # speed of OpenCV's float32 filter does not depend on the values.
    imgs = {k: to_8bit_grid(make_image(w, h)) for k, (w, h) in SIZES.items()}
    guides = {k: residue(v) for k, v in imgs.items()}
    dst = {k: np.empty_like(v) for k, v in imgs.items()}
    bank_dst = [np.empty_like(imgs["1080p"]) for _ in range(len(BANK_RADII) * len(BANK_EPS))]
    # The output really lands in the reused array (no hidden allocation per call).
    assert gf(guides["720p"], imgs["720p"], 8, 1e-3, dst["720p"]) is dst["720p"]
    jobs = [
        ("gf_r8_eps1e-3_3ch", "720p",
         lambda: gf(guides["720p"], imgs["720p"], 8, 1e-3, dst["720p"])),
        ("gf_r8_eps1e-3_3ch", "1080p",
         lambda: gf(guides["1080p"], imgs["1080p"], 8, 1e-3, dst["1080p"])),
        ("bank10_3ch", "1080p", lambda: bank10(guides["1080p"], imgs["1080p"], bank_dst)),
        ("dcp_dehaze", "1080p", lambda: dcp_dehaze(imgs["1080p"])),
    ]

    if args.works:
        keep = {w.strip() for w in args.works.split(",")}
        jobs = [j for j in jobs if j[0] in keep]

    results = []
    print(f"\n{'work':20s} {'size':6s} {'threads':>7s} {'median_ms':>10s}")
    for n in threads:
        cv2.setNumThreads(n)
        for work, size, fn in jobs:
            ms = time_ms(fn, args.runs)
            results.append({"work": work, "size": size, "threads": n,
                            "median_ms": round(ms, 3)})
            print(f"{work:20s} {size:6s} {n:7d} {ms:10.2f}", flush=True)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")

    if args.accuracy:
        print()
        accuracy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
