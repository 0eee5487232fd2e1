"""Train the full-resolution streak network on pairs composed on the fly (rain.py).

One script for the GPU machine and the CPU, unattended and resumable:

    # GPU (H200): 9-minute budget, bf16 autocast, channels_last, large batches
    python -m derain_train.train_streak --banks BANK/* --clean CLEAN --size quality \\
        --out $OUT/quality --minutes 9 --batch 48 --crop 256 --device cuda
    # CPU (2 cores): the fast size, or fine-tuning
    python -m derain_train.train_streak --banks BANK/* --clean CLEAN --size fast \\
        --out runs/fast --minutes 120 --batch 16 --crop 128 --threads 2

Every `--every-min` minutes (and at the end) it writes ckpt.pt (resumable: model, optimiser,
step, elapsed time), weights.pt and a validation line in log.jsonl and on stdout, so a run cut
short still leaves usable weights. Re-running the same command resumes; the learning rate
follows a cosine on the larger of step/steps and elapsed/minutes.

With `--ema D` it also keeps an exponential moving average of the weights (after every step,
ema ← D·ema + (1 − D)·w, starting from the initial weights), validates it beside the raw
weights (`val_ema`, `val_gain_db_ema` in the log) and writes it as weights_ema.pt: small
CPU batches make the last raw weights noisy, and on the CPU fine-tunes the weight soups of a
run's start and end scored above both ends (models/README.md, "Training runs").

Loss: L1(I_s, V) + 0.5·perceptual substitute (two-scale 1 − SSIM_Y with a 7×7 box window +
gradient L1), where
I_s = I − R is the network's rain-free image and V = T·J + (1 − T)·A the rendered rain-free
veiled image. Validation: Y-PSNR of I_s against V on fixed renders of every family from the
validation clean images (never the test images).
"""

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .losses import luma, perceptual_fast
from .rain import FAMILY_WEIGHTS, CleanImages, Composer, RainBank, clean_paths
from .streak import StreakNet, remove_rain


def ypsnr(x, y):
    mse = ((luma(x.float()) - luma(y.float())) ** 2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
    return (10 * torch.log10(1 / mse)).tolist()


def make_val(composer, n_per_family, crop, seed=12345):
    """Fixed validation batches, one per family (camera effects included): the same for every
    run and resume (the torch generator that draws the sensor noise is seeded too)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    out = {}
    for fam in composer.families:
        b = composer.batch(n_per_family, crop, rng, families=[fam] * n_per_family)
        out[fam] = {k: b[k] for k in ("in", "veiled", "gt")}
    return out


@torch.no_grad()
def validate(net, val, dev, amp):
    net.eval()
    rows = {}
    for fam, b in val.items():
        x = b["in"].to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            i_s, _ = remove_rain(net, x)
        rows[fam] = (float(np.mean(ypsnr(i_s, b["veiled"].to(dev)))),
                     float(np.mean(ypsnr(x, b["veiled"].to(dev)))))
    net.train()
    return rows


def family_weights(text):
    """`FAMILY=W,...` (argparse type): rain.FAMILY_WEIGHTS with the named families' weights
    replaced."""
    out = dict(FAMILY_WEIGHTS)
    for part in text.split(","):
        name, _, w = part.partition("=")
        name = name.strip()
        if name not in FAMILY_WEIGHTS:
            raise argparse.ArgumentTypeError(
                f"unknown family {name!r} (one of {', '.join(FAMILY_WEIGHTS)})")
        try:
            out[name] = float(w)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: weight is not a number") from None
        if not out[name] >= 0:
            raise argparse.ArgumentTypeError(f"{part!r}: weight must be ≥ 0")
    if sum(out.values()) <= 0:
        raise argparse.ArgumentTypeError("the weights sum to 0")
    return out


def save_atomic(obj, path):
    """`torch.save` into a temporary file beside `path`, then renamed over it: a run killed
    while writing leaves the previous file whole."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def rounded(rows):
    """`validate`'s rows as the log writes them: [output, input] Y-PSNR to the hundredth."""
    return {f: [round(a, 2), round(b, 2)] for f, (a, b) in rows.items()}


def mean_gain(rows):
    """The mean over families of the output − input Y-PSNR that `validate` returns, dB."""
    return float(np.mean([a - b for a, b in rows.values()]))


class RunClock:
    """The time and progress of a run bounded by a step count and, with `minutes` > 0, by
    wall-clock minutes; `elapsed0` is the time a resumed run had already spent. Progress is
    the larger of step/steps and elapsed/minutes, capped at 1 (the cosine's argument)."""

    def __init__(self, steps, minutes, elapsed0=0.0):
        self.steps, self.budget = steps, minutes * 60.0
        self.elapsed0, self.start = elapsed0, time.time()

    def elapsed(self):
        return self.elapsed0 + time.time() - self.start

    def progress(self, step):
        p = step / self.steps
        if self.budget > 0:
            p = max(p, self.elapsed() / self.budget)
        return min(1.0, p)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--banks", nargs="+", required=True, help="derain synth-bank folders")
    ap.add_argument("--clean", required=True, help="folder of clean images (project split)")
    ap.add_argument("--size", default="fast", choices=["fast", "quality"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget (0 = none)")
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--every-min", type=float, default=1.0, help="checkpoint + validation interval")
    ap.add_argument("--val-per-family", type=int, default=6)
    ap.add_argument("--val-crop", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bank-limit", type=int, default=0, help="layers per bank (0 = all)")
    ap.add_argument("--init", default=None, help="start from these weights (a new run)")
    ap.add_argument("--bars", type=float, default=0.0,
                    help="share of training crops with scene bars painted in (rain.scene_bars)")
    ap.add_argument("--rotate", type=float, default=0.0,
                    help="share of training crops whose rain layer is turned by 20–65° "
                         "(rain.RainBank.crops: wind-slanted rain)")
    ap.add_argument("--thin", type=float, default=0.0,
                    help="share of training crops whose rain layer is scaled by ×0.4–0.67 "
                         "(rain.THIN: a photo downscaled for the web)")
    ap.add_argument("--grainy", type=float, default=0.0,
                    help="share of training crops whose rain is short, soft and uneven "
                         "(rain.grainy_rain: heavy rain in a compressed web photo)")
    ap.add_argument("--grain", type=float, default=0.0,
                    help="share of training crops with fine scene texture painted in "
                         "(rain.scene_grain: the counterweight to --grainy)")
    ap.add_argument("--clear", type=float, default=0.0,
                    help="share of training samples without rain or veil (the input is the "
                         "target: the scenes' own texture as the counterweight to --grainy)")
    ap.add_argument("--family-weights", type=family_weights, default=None,
                    metavar="FAMILY=W,...",
                    help="sampling weights of the families in the training batches (the rest "
                         "keep rain.FAMILY_WEIGHTS'; normalised), e.g. screen=0.4,light=0.2")
    ap.add_argument("--distill", default=None,
                    help="real photos and a teacher's rain-free images (distill.py `teach`): "
                         "`--distill-share` of the training samples come from them")
    ap.add_argument("--distill-share", type=float, default=0.0,
                    help="share of training samples that are teacher pairs (distill.TeacherPairs)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="decay of an exponential moving average of the weights, validated "
                         "and written beside them as weights_ema.pt (0 = none; e.g. 0.999)")
    args = ap.parse_args(argv)
    if not 0.0 <= args.ema < 1.0:
        ap.error("--ema must be in [0, 1)")

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    amp = dev.type == "cuda"
    if amp:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_load = time.time()
    banks = [RainBank(b, device=dev, limit=args.bank_limit) for b in args.banks]
    train_c = CleanImages(clean_paths(args.clean, "train"), device=dev)
    val_c = CleanImages(clean_paths(args.clean, "val"), device=dev)
    comp = Composer(train_c, banks, weights=args.family_weights, device=dev, bars=args.bars,
                    rotate=args.rotate, thin=args.thin, grainy=args.grainy,
                    grain=args.grain, clear=args.clear)
    val = make_val(Composer(val_c, banks, device=dev), args.val_per_family, args.val_crop)
    teacher = None
    if args.distill:
        from .distill import TeacherPairs  # distill.py imports this module
        teacher = TeacherPairs(args.distill, device=dev)
    print(f"loaded {sum(len(b) for b in banks)} rain layers ({', '.join(b.family for b in banks)}), "
          f"{len(train_c.images)} clean images in {time.time() - t_load:.0f} s", flush=True)

    net = StreakNet(args.size).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    step, elapsed0 = 0, 0.0
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        st = torch.load(ckpt, map_location=dev)
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, elapsed0 = st["step"], st.get("elapsed", 0.0)
        print(f"resumed at step {step} ({elapsed0 / 60:.1f} min)", flush=True)
    elif args.init:
        st = torch.load(args.init, map_location=dev)
        net.load_state_dict(st.get("model", st))
        print(f"initialised from {args.init}", flush=True)
    ema = None
    if args.ema > 0:
        ema = copy.deepcopy(net)
        if ckpt.exists() and "ema" in st:
            ema.load_state_dict(st["ema"])
        for q in ema.parameters():
            q.requires_grad_(False)
    rng = np.random.default_rng(args.seed + step)
    torch.manual_seed(args.seed + step)
    log = open(out / "log.jsonl", "a")
    clock = RunClock(args.steps, args.minutes, elapsed0)

    def save(rec):
        state = {"model": net.state_dict(), "opt": opt.state_dict(), "step": step,
                 "elapsed": clock.elapsed(), "size": args.size}
        if ema is not None:
            state["ema"] = ema.state_dict()
        save_atomic(state, ckpt)
        save_atomic(net.state_dict(), out / "weights.pt")
        if ema is not None:
            save_atomic(ema.state_dict(), out / "weights_ema.pt")
        log.write(json.dumps(rec) + "\n")
        log.flush()

    next_save = clock.elapsed() + args.every_min * 60
    pixels = 0
    losses = []
    while clock.progress(step) < 1.0:
        p = clock.progress(step)
        warm = min(1.0, (step + 1) / 300)
        lr = args.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))
        for g in opt.param_groups:
            g["lr"] = lr
        b = comp.batch(args.batch, args.crop, rng)
        if teacher is not None:
            # Drawn after the batch, so that runs without it keep their draws.
            m = int((rng.random(args.batch) < args.distill_share).sum())
            if m:
                b["in"][:m], b["veiled"][:m] = teacher.batch(m, args.crop, rng)
        x = b["in"].contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            r = net(x)
        i_s = x - r.float()
        loss = F.l1_loss(i_s, b["veiled"]) + 0.5 * perceptual_fast(i_s, b["veiled"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for q, w in zip(ema.parameters(), net.parameters()):
                    q.lerp_(w, 1.0 - args.ema)
        step += 1
        pixels += x.shape[0] * x.shape[2] * x.shape[3]
        losses.append(loss.item())
        if clock.elapsed() >= next_save or clock.progress(step) >= 1.0:
            v = validate(net, val, dev, amp)
            rec = {"step": step, "minutes": round(clock.elapsed() / 60, 2), "lr": lr,
                   "loss": float(np.mean(losses)), "gpix": pixels / 1e9,
                   "val": rounded(v),
                   "val_gain_db": round(mean_gain(v), 3)}
            if ema is not None:
                ve = validate(ema, val, dev, amp)
                rec["val_ema"] = rounded(ve)
                rec["val_gain_db_ema"] = round(mean_gain(ve), 3)
            losses = []
            print(json.dumps(rec), flush=True)
            save(rec)
            next_save = clock.elapsed() + args.every_min * 60


if __name__ == "__main__":
    main()
