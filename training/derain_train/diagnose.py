"""Where does the error of `full` come from? Runs FullModelV2 (the Rust pipeline's steps,
without the physics veil gate) on renders of `derain synth` (in/, gt/, trans/ and
manifest.jsonl) and replaces one estimate at a time by its ground truth:

    python -m derain_train.diagnose --size quality --veil weights/veil_quality.pt \\
        /tmp/fam/reference /tmp/fam/layered --per-set 10

Columns (mean Y-PSNR in dB against the clean image; frames padded to the networks' multiples
by edge replication, so the absolute figures differ a little from `derain eval`):
  input       the rainy frame
  shipped     the pipeline as it is
  no_refine   J₁, before the refinement stage
  oracle_A    the true atmospheric light, the estimated T (then refinement)
  oracle_T    the true transmission, the estimated A (then refinement)
  oracle_TA   both true, no refinement: what the veil stage could do with perfect estimates
  oracle_Is   the true rain-free image T·J + (1 − T)·A fed to the veil stage: what a perfect
              streak network would be worth
  frame_T     the estimated T with one number per frame from the truth: T^s, s = mean(ln T_true)
              / mean(ln T̂) (the veil's density β; T = exp(−β·d)), the estimated A: what a
              frame-wide correction of T could be worth (model.py Veil `tglobal`)

With `--per-frame` it prints a line per frame as well, with two more columns against the true
rain-free image V = T·J + (1 − T)·A: `in_vs_V` (the input) and `Is_vs_V` (I_s = I − R), where
the streak network's harm shows (an input already close to V and an I_s far from it).
"""

import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .export_full import load_png, load_streak, load_veil_refine
from .guided_filter import downsample, upsample
from .model import FullModelV2, floored, invert, veil_input, work_factor
from .streak import remove_rain
from .train_streak import ypsnr as batch_ypsnr


def load(path, grey=False):
    if not grey:
        return torch.from_numpy(load_png(path))[None]
    return torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255)[None, None]


def ypsnr(x, y):
    """Of one image, scored as the 8-bit output."""
    return batch_ypsnr((x * 255 + 0.5).floor().clamp(0, 255) / 255, y)[0]


def veil_stage(m, i_s, f, t_true=None, a_true=None, refine=True, frame_t=False):
    t_lo, a = m.veil(veil_input(i_s, f))
    t_lo = floored(t_lo, i_s, a, f)
    t = upsample(t_lo, f)
    if t_true is not None and frame_t:
        ln_true = torch.log(downsample(t_true, f).clamp(min=1e-3)).mean()
        s = ln_true / torch.log(t_lo.clamp(min=1e-3)).mean().clamp(max=-1e-4)
        t_lo = (t_lo ** s).clamp(min=0.1, max=1.0)
        t = upsample(t_lo, f)
    elif t_true is not None:
        t, t_lo = t_true, downsample(t_true, f)
    if a_true is not None:
        a = a_true
    j1 = invert(i_s, t, a)
    return m.refine(j1, t_lo, f)[0] if refine else j1


@torch.no_grad()
def diagnose(m, folder, per_set, per_frame=False):
    atm = {}
    for line in open(os.path.join(folder, "manifest.jsonl")):
        rec = json.loads(line)
        atm[rec["name"]] = rec["params"]["atmosphere"]
    names = sorted(os.listdir(os.path.join(folder, "in")))
    names = names[::max(1, len(names) // per_set)][:per_set]
    rows = []
    for n in names:
        img, gt = load(os.path.join(folder, "in", n)), load(os.path.join(folder, "gt", n))
        h, w = img.shape[-2:]
        f = work_factor(h, w)
        mult = 16 * 4 * f // math.gcd(16, 4 * f)
        pad = (0, (-w) % mult, 0, (-h) % mult)
        img, gt = F.pad(img, pad, mode="replicate"), F.pad(gt, pad, mode="replicate")
        t_true = F.pad(load(os.path.join(folder, "trans", n), grey=True), pad, mode="replicate")
        a_true = torch.tensor(atm[n[:-4]])[None]
        i_s, _ = remove_rain(m.streak, img)
        v = t_true * gt + (1 - t_true) * a_true[:, :, None, None]
        rows.append({
            "input": ypsnr(img, gt),
            "shipped": ypsnr(veil_stage(m, i_s, f), gt),
            "no_refine": ypsnr(veil_stage(m, i_s, f, refine=False), gt),
            "oracle_A": ypsnr(veil_stage(m, i_s, f, a_true=a_true), gt),
            "oracle_T": ypsnr(veil_stage(m, i_s, f, t_true=t_true), gt),
            "oracle_TA": ypsnr(veil_stage(m, i_s, f, t_true, a_true, refine=False), gt),
            "oracle_Is": ypsnr(veil_stage(m, v, f), gt),
            "frame_T": ypsnr(veil_stage(m, i_s, f, t_true=t_true, frame_t=True), gt),
        })
        if per_frame:
            extra = {"in_vs_V": ypsnr(img, v), "Is_vs_V": ypsnr(i_s, v)}
            print(n, json.dumps({k: round(float(x), 2) for k, x in {**rows[-1], **extra}.items()}),
                  flush=True)
    return {k: round(float(np.mean([r[k] for r in rows])), 2) for k in rows[0]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="`derain synth` output folders")
    ap.add_argument("--size", default="quality", choices=["fast", "quality"])
    ap.add_argument("--streak", default=None, help="default: weights/streak_SIZE.pt")
    ap.add_argument("--veil", default=None, help="default: weights/veil_SIZE.pt")
    ap.add_argument("--per-set", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--per-frame", action="store_true", help="also print a line per frame")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    here = os.path.join(os.path.dirname(__file__), "..", "weights")
    veil, refine = load_veil_refine(args.veil or os.path.join(here, f"veil_{args.size}.pt"))
    m = FullModelV2(args.size, apool=veil.apool is not None, tglobal=veil.tglobal is not None)
    m.streak = load_streak(args.streak or os.path.join(here, f"streak_{args.size}.pt"), args.size)
    m.veil.load_state_dict(veil.state_dict())
    m.stage2.load_state_dict(refine.state_dict())
    m.eval()
    for folder in args.folders:
        summary = diagnose(m, folder, args.per_set, args.per_frame)
        print(os.path.basename(folder.rstrip("/")), json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
