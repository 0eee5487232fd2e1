"""Train the veil networks (TNet, ANet: `stage1.onnx`) and the depth-guided refinement
(`stage2.onnx`) of the full pipeline behind a trained, frozen streak network, on pairs composed
on the fly (rain.py). Unattended and resumable like train_streak.py:

    python -m derain_train.train_full --banks BANK/* --clean CLEAN --size fast \\
        --streak runs/fast/weights.pt --init-veil ../models/fast --out runs/veil-fast \\
        --minutes 40 --threads 2

Model (model.py `FullModelV2`, the same steps as src/nets/full.rs, without the physics veil
gate k, which the Rust side multiplies in): I_s = I − R(I) (frozen), T and A from the working
image of I_s, inversion, refinement. Working factor f = 2 on crops of `--crop`.

Losses (DESIGN.md §2): L1(J, J_gt) + 0.5·L1(J₁, J_gt) + 0.5·perceptual substitute +
10·(‖T − T_gt‖² + w·‖A − A_gt‖²), w = min(1, mean(1 − T_gt)/0.1) (A is not observable
without a veil), and with `--gan`, LSGAN on the PatchGAN discriminator that also predicts
depth, plus the depth-consistency term for the generator.

Validation (every `--every-min` minutes, log.jsonl and stdout): Y-PSNR of J against the clean
image on fixed renders of every family (`val`, `val_mean_db` their mean), and two harm lines
(`harm`) that must come out as they went in: `veil-free`, renders of every family but the
reference with β = 0 (streaks, camera effects, no veil), and `clear`, validation crops with
nothing added. A candidate whose `val_mean_db` rises while a harm line falls is learning to
dehaze veil-free images. Like the rest of this validation it runs without the physics veil gate
of the Rust side (which opens on 10 of the 12 veil-free crops and 9 of the 12 clear ones at 256²),
and it does not catch every such candidate: the one of 2026-12-05 that dehazed two veil-free
Rain12 photographs (−0.26 dB there, models/README.md) was better on both harm lines, gated or not.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .export_full import load_streak, load_veil_refine
from .losses import perceptual_fast
from .model import Discriminator, FullModelV2
from .rain import CleanImages, Composer, RainBank, clean_paths
from .streak import remove_rain
from .train_streak import RunClock, make_val, rounded, save_atomic, ypsnr

FACTOR = 2


def make_harm_val(composer, n, crop, seed=54321):
    """The fixed harm lines of the validation (module docstring): {"veil-free": …, "clear": …},
    each {"in", "gt"} of n crops; no "veil-free" line when only the reference family is loaded."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    out = {}
    fams = [f for f in composer.families if f != "reference"]
    if fams:
        b = composer.batch(n, crop, rng, families=[fams[i % len(fams)] for i in range(n)],
                           veil=False)
        out["veil-free"] = {"in": b["in"], "gt": b["gt"]}
    plain = composer.clean.batch(n, crop, rng).to(composer.device)
    out["clear"] = {"in": plain, "gt": plain}
    return out


def frame_weights(j, gt, balance, eps=0.01):
    """Per-frame weights with mean 1 that lean towards the frames the output is already close
    on: (1 − balance) + balance · w/mean(w), w = 1/(RMS error of J + eps), detached.

    With L1 each frame pulls with the same strength whatever its error, but the test sets
    score each frame's PSNR, and a frame's PSNR gains more per unit of error taken off where
    the error is already small (d log MSE = dMSE / MSE): a thin-veil frame at 26 dB is worth
    more per unit than a heavy-veil one at 17 dB. Weighting a frame by 1/RMS follows that
    gradient up to the L1/L2 difference; eps (40 dB) bounds a clear frame's weight."""
    if balance <= 0:
        return torch.ones(j.shape[0], dtype=j.dtype, device=j.device)
    rms = ((j.detach() - gt) ** 2).mean(dim=(1, 2, 3)).sqrt()
    w = 1.0 / (rms + eps)
    return (1 - balance) + balance * w / w.mean()


def veil_loss(o, gt, trans, atm, balance=0.0):
    """The loss of the veil and refinement networks (module docstring, without the GAN):
    L1(J) + 0.5·L1(J₁) + 0.5·perceptual + 10·(‖T − T_gt‖² + w·‖A − A_gt‖²) on the pipeline's
    outputs `o` (FullModelV2's "j", "j1", "t_net", "a"); with `balance` > 0 the L1, T and A
    terms are weighted per frame by `frame_weights`."""
    w_a = ((1 - trans).mean(dim=(1, 2, 3)) / 0.1).clamp(max=1)
    fw = frame_weights(o["j"], gt, balance)

    def per_frame(x):
        return (fw * x.mean(dim=tuple(range(1, x.dim())))).mean()
    # The veil network's own T is what is supervised (o["t"] is floored, model.py).
    l_phys = (per_frame((o["t_net"] - trans) ** 2)
              + (w_a * fw * ((o["a"] - atm) ** 2).mean(1)).mean())
    return (per_frame((o["j"] - gt).abs()) + 0.5 * per_frame((o["j1"] - gt).abs())
            + 0.5 * perceptual_fast(o["j"], gt) + 10 * l_phys)


def frame_loss(t_est, t_true, floor=0.05):
    """Squared error of each frame's mean ln T, averaged over the batch.

    The veil's density β scales ln T over the whole frame, so this is the part of T's error
    that one number per frame corrects (diagnose's frame_T column); a pixel loss on T weighs
    it little where the veil is thin (T near 1)."""
    def m(t):
        return torch.log(t.clamp(min=floor)).mean(dim=(1, 2, 3))
    return ((m(t_est) - m(t_true)) ** 2).mean()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--banks", nargs="+", required=True)
    ap.add_argument("--clean", required=True)
    ap.add_argument("--size", default="fast", choices=["fast", "quality"])
    ap.add_argument("--streak", required=True, help="trained streak weights (frozen)")
    ap.add_argument("--init-veil", default=None,
                    help="start the veil and refinement networks from a FullModelV2 state dict or "
                         "a folder with stage1.onnx and stage2.onnx")
    ap.add_argument("--apool", action="store_true",
                    help="estimate A by attention pooling (model.py APool): a fresh one unless "
                         "--init-veil has one (then it is kept without this flag)")
    ap.add_argument("--tglobal", action="store_true",
                    help="give the TNet the frame's pooled features (model.py Veil); an initial "
                         "veil that has them keeps them")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--gan", action="store_true", help="add the GAN and depth losses")
    ap.add_argument("--frame-t", type=float, default=0.0,
                    help="weight of a per-frame loss on mean ln T (the veil's density, frame_loss)")
    ap.add_argument("--every-min", type=float, default=2.0)
    ap.add_argument("--val-per-family", type=int, default=6)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bank-limit", type=int, default=0)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    banks = [RainBank(b, device=dev, limit=args.bank_limit) for b in args.banks]
    comp = Composer(CleanImages(clean_paths(args.clean, "train"), device=dev), banks, device=dev)
    val_comp = Composer(CleanImages(clean_paths(args.clean, "val"), device=dev), banks, device=dev)
    val = make_val(val_comp, args.val_per_family, 256)
    harm_val = make_harm_val(val_comp, 2 * args.val_per_family, 256)

    init = load_veil_refine(args.init_veil) if args.init_veil else None
    # An initial veil with an APool keeps it; --apool adds a fresh one to a veil without.
    apool = args.apool or (init is not None and init[0].apool is not None)
    tglobal = args.tglobal or (init is not None and init[0].tglobal is not None)
    model = FullModelV2(args.size, apool=apool, tglobal=tglobal).to(dev)
    model.streak = load_streak(args.streak, args.size).to(dev).eval()
    for p in model.streak.parameters():
        p.requires_grad_(False)
    if init is not None:
        veil, refine = init
        model.veil.load_state_dict(veil.state_dict(), strict=(veil.apool is not None) == apool
                                   and (veil.tglobal is not None) == tglobal)
        model.stage2.load_state_dict(refine.state_dict())
    params = list(model.veil.parameters()) + list(model.stage2.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)
    disc = Discriminator().to(dev) if args.gan else None
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr * 0.5, betas=(0.5, 0.999)) if disc else None
    step, elapsed0 = 0, 0.0
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        st = torch.load(ckpt, map_location=dev)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        if disc is not None and "disc" in st:
            disc.load_state_dict(st["disc"])
            opt_d.load_state_dict(st["opt_d"])
        step, elapsed0 = st["step"], st.get("elapsed", 0.0)
        print(f"resumed at step {step}", flush=True)
    rng = np.random.default_rng(args.seed + step)
    torch.manual_seed(args.seed + step)
    log = open(out / "log.jsonl", "a")
    clock = RunClock(args.steps, args.minutes, elapsed0)

    @torch.no_grad()
    def validate(sets):
        model.eval()
        rows = {}
        for fam, b in sets.items():
            x = b["in"].to(dev)
            j = torch.cat([model(x[i:i + 1], FACTOR)["j"] for i in range(x.shape[0])])
            rows[fam] = (float(np.mean(ypsnr(j, b["gt"].to(dev)))),
                         float(np.mean(ypsnr(x, b["gt"].to(dev)))))
        model.veil.train()
        model.stage2.train()
        return rows

    def validation_record():
        """`val` and `harm` as {line: [output, input]} and `val_mean_db` (the rain families)."""
        v, h = validate(val), validate(harm_val)
        return {"val": rounded(v),
                "val_mean_db": round(float(np.mean([a for a, _ in v.values()])), 3),
                "harm": rounded(h)}

    def save(rec):
        st = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
              "elapsed": clock.elapsed(), "size": args.size}
        if disc is not None:
            st.update(disc=disc.state_dict(), opt_d=opt_d.state_dict())
        save_atomic(st, ckpt)
        save_atomic(model.state_dict(), out / "weights.pt")
        log.write(json.dumps(rec) + "\n")
        log.flush()

    if step == 0:
        rec = {"step": 0, "minutes": 0.0, **validation_record()}
        print(json.dumps(rec), flush=True)
        log.write(json.dumps(rec) + "\n")
    model.veil.train()
    model.stage2.train()
    next_save = clock.elapsed() + args.every_min * 60
    losses = []
    while clock.progress(step) < 1.0:
        p = clock.progress(step)
        warm = min(1.0, (step + 1) / 100)
        lr = args.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))
        for g in opt.param_groups:
            g["lr"] = lr
        b = comp.batch(args.batch, args.crop, rng)
        with torch.no_grad():  # float32, as it runs in Rust
            i_s, _ = remove_rain(model.streak, b["in"])
        o = model(b["in"], FACTOR, i_s=i_s)
        gt = b["gt"]
        loss = veil_loss(o, gt, b["trans"], b["atm"])
        if args.frame_t > 0:
            loss = loss + args.frame_t * frame_loss(o["t_net"], b["trans"])
        if disc is not None:
            adv, dpred = disc(o["j"])
            depth_gt = F.avg_pool2d(-torch.log(b["trans"].clamp(min=1e-3)), 8)
            depth_gt = depth_gt / depth_gt.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)
            loss = loss + 0.01 * ((adv - 1) ** 2).mean() + 0.05 * F.mse_loss(dpred, depth_gt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if disc is not None:
            adv_r, dep_r = disc(gt)
            adv_f, _ = disc(o["j"].detach())
            l_d = ((adv_r - 1) ** 2).mean() + (adv_f ** 2).mean() + F.mse_loss(dep_r, depth_gt)
            opt_d.zero_grad(set_to_none=True)
            l_d.backward()
            opt_d.step()
        step += 1
        losses.append(loss.item())
        if clock.elapsed() >= next_save or clock.progress(step) >= 1.0:
            rec = {"step": step, "minutes": round(clock.elapsed() / 60, 2), "lr": lr,
                   "loss": float(np.mean(losses)), **validation_record()}
            losses = []
            print(json.dumps(rec), flush=True)
            save(rec)
            next_save = clock.elapsed() + args.every_min * 60


if __name__ == "__main__":
    main()
