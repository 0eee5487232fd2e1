"""Real rain photographs as training pairs for the `fast` streak network, with the `quality`
network as the teacher (knowledge distillation).

Why: on some real photos `quality` visibly takes more rain off than `fast` (the long streaks of
photos 10 and 57; models/README.md, "Training runs", qsoup), and `fast` is what a CPU user gets
by default. The renders have ground truth but only our renderer's look; real photos have the
real look but no ground truth. The teacher's rain-free image I_s (its mirror ensemble,
ensemble.py) is a target on them that the student can learn from beside the renders. Tried once
(fdistill, forty-first session, not shipped): on average `fast` takes more off the held-out
photos than `quality` (6.8 against 6.2 levels of 255), and the student learned to take less.

    python -m derain_train.distill teach --teacher weights/streak_quality.pt \\
        --photos ../../shared/data/real-rain/photos --out /tmp/teach.pt
    python -m derain_train.train_streak ... --distill /tmp/teach.pt --distill-share 0.25
    python -m derain_train.distill agree --teacher weights/streak_quality.pt \\
        --photos ../../shared/data/real-rain/photos weights/streak_fast.pt runs/x/weights.pt

`teach` runs the teacher on the training split of the photos (`split`: never the photos that
the model card and BENCHMARKS.md look at, nor every fifth one) and stores each photo and the
teacher's I_s as uint8. `TeacherPairs.batch` draws random crops of both at the same place,
flipped at random. `agree` scores students on the held-out photos: Y-PSNR of the student's I_s
against the teacher's (how close it came) and the mean |R| in levels of 255 (how much rain it
takes off), with the mirror ensemble as shipped.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .ensemble import mirror_ensemble
from .export_full import load_streak
from .train_streak import ypsnr

# Photos the model card and BENCHMARKS.md describe (looked at, measured): always held out.
LOOKED_AT = {1, 5, 10, 21, 23, 32, 40, 57, 60, 95, 100, 117, 140, 146, 147}
PHOTO_EXT = (".jpg", ".jpeg", ".png")


def photo_number(path):
    """The photo's number (its file stem), or None for a name that is not a number."""
    stem = Path(path).stem
    return int(stem) if stem.isdigit() else None


def split(paths):
    """(train, held_out) of the photo files: held out are the looked-at photos, every fifth
    number and any name that is not a number; the rest train. Both in name order."""
    train, held = [], []
    for p in sorted(paths, key=lambda q: Path(q).name):
        n = photo_number(p)
        (held if n is None or n in LOOKED_AT or n % 5 == 0 else train).append(p)
    return train, held


def photo_paths(folder):
    return [p for p in sorted(Path(folder).iterdir()) if p.suffix.lower() in PHOTO_EXT]


def load_photo(path):
    """[1,3,H,W] float in [0, 1], the EXIF orientation applied (as the CLI does)."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)[None].float() / 255.0


def to_u8(x):
    return (x[0].clamp(0, 1) * 255).round().to(torch.uint8)


@torch.no_grad()
def teach(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher = load_streak(args.teacher, args.teacher_size).eval()
    train, held = split(photo_paths(args.photos))
    recs = {"names": [], "in": [], "target": []}
    for p in train:
        x = load_photo(p)
        recs["names"].append(Path(p).name)
        recs["in"].append(to_u8(x))
        recs["target"].append(to_u8(mirror_ensemble(teacher, x)))
        print(f"{Path(p).name} {tuple(x.shape[-2:])}", flush=True)
    torch.save(recs, args.out)
    print(f"{len(train)} photos taught ({len(held)} held out) -> {args.out}", flush=True)


class TeacherPairs:
    """The pairs `teach` stored: `batch(n, size, rng)` returns (input, target), [n,3,size,size]
    floats, crops of one photo and its teacher I_s at the same place, flipped left to right at
    random; a photo smaller than `size` is cropped square and resized."""

    def __init__(self, path, device="cpu"):
        recs = torch.load(path, weights_only=False)
        self.names = recs["names"]
        self.inputs = [t.to(device) for t in recs["in"]]
        self.targets = [t.to(device) for t in recs["target"]]
        if not self.inputs:
            raise ValueError(f"{path}: no photos")
        for n, a, b in zip(self.names, self.inputs, self.targets):
            if a.shape != b.shape:
                raise ValueError(f"{path}: {n}: input {tuple(a.shape)} and target "
                                 f"{tuple(b.shape)} differ")

    def __len__(self):
        return len(self.inputs)

    def batch(self, n, size, rng):
        xs, ys = [], []
        for _ in range(n):
            k = int(rng.integers(len(self.inputs)))
            h, w = self.inputs[k].shape[1:]
            win = min(size, h, w)
            y, x = int(rng.integers(0, h - win + 1)), int(rng.integers(0, w - win + 1))
            flip = rng.random() < 0.5
            pair = []
            for src in (self.inputs[k], self.targets[k]):
                c = src[:, y:y + win, x:x + win].float()[None] / 255.0
                if win != size:
                    c = F.interpolate(c, size=(size, size), mode="bilinear", align_corners=False)
                pair.append(c.flip(-1) if flip else c)
            xs.append(pair[0])
            ys.append(pair[1])
        return torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def agree(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher = load_streak(args.teacher, "quality").eval()
    _, held = split(photo_paths(args.photos))
    photos = [load_photo(p) for p in held]
    targets = [mirror_ensemble(teacher, x) for x in photos]
    t_removed = np.mean([float((x - t).abs().mean()) * 255 for x, t in zip(photos, targets)])
    print(json.dumps({"teacher": args.teacher, "photos": len(held),
                      "removed_levels": round(float(t_removed), 3)}), flush=True)
    for path in args.student:
        net = load_streak(path, args.size).eval()
        db, removed = [], []
        for x, t in zip(photos, targets):
            s = mirror_ensemble(net, x)
            db += ypsnr(s, t)
            removed.append(float((x - s).abs().mean()) * 255)
        print(json.dumps({"student": path, "agree_db": round(float(np.mean(db)), 3),
                          "removed_levels": round(float(np.mean(removed)), 3)}), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("teach", help="run the teacher on the training split of the photos")
    t.add_argument("--teacher", required=True)
    t.add_argument("--teacher-size", default="quality", choices=["fast", "quality"],
                   help="the teacher's architecture")
    t.add_argument("--photos", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--threads", type=int, default=0)
    a = sub.add_parser("agree", help="students against the teacher on the held-out photos")
    a.add_argument("--teacher", required=True)
    a.add_argument("--photos", required=True)
    a.add_argument("--size", default="fast", choices=["fast", "quality"])
    a.add_argument("--threads", type=int, default=0)
    a.add_argument("student", nargs="+")
    args = ap.parse_args(argv)
    {"teach": teach, "agree": agree}[args.cmd](args)


if __name__ == "__main__":
    main()
