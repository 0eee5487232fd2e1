"""Train stage 1 and stage 2 on rendered pairs; resumable from the checkpoint in --out.

CPU (background, resumable):
    python -m derain_train.train --data /path/synth-out --out runs/main --steps 6000
GPU (a few minutes on an H100-class card, data copied next to it):
    python -m derain_train.train --data synth-train --out $OUT/run --steps 20000 --minutes 4 --batch 16 --device cuda
    (--minutes: a wall-clock budget for a lease; the learning-rate schedule runs on whichever of
    steps and minutes is used up first, so a run cut by time still ends at the low learning rate)

Losses (DESIGN.md §2): L_phys = ‖S−S_gt‖² + ‖T−T_gt‖² + ‖A−A_gt‖²; reconstruction L1 on J
(and on the stage-1 inversion J1); the substitute perceptual loss (losses.py); after
--gan-start steps, LSGAN on a PatchGAN discriminator that also predicts depth, and the depth
consistency L_depth = ‖D(J) − D_gt‖² for the generator.
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import Renders
from .losses import perceptual, psnr
from .model import Discriminator, FullModel

FACTOR = 2  # renders are ≈384 lines: work_factor(384, 512) == 2


def trained(model):
    """The parameters this loop trains: all but the veil gate, which is a whole-frame
    decision fitted afterwards on whole frames (fit_atm.py); here it stays at its initial
    g ≈ 0.98."""
    return [p for n, p in model.named_parameters() if not n.startswith("stage1.anet.gate.")]


def split_names(data, val_images):
    stems = sorted({p.stem for root in data for p in (Path(root) / "in").glob("*.png")})
    clean = sorted({s.rsplit("_", 1)[0] for s in stems})
    val_clean = set(clean[-val_images:]) if val_images else set()
    train = {s for s in stems if s.rsplit("_", 1)[0] not in val_clean}
    return train, set(stems) - train


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", required=True, help="derain synth output root(s)")
    ap.add_argument("--out", required=True, help="run folder: ckpt.pt, weights.pt, log.jsonl")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--gan-start", type=int, default=1500)
    ap.add_argument("--w-gan", type=float, default=0.01)
    ap.add_argument("--w-depth", type=float, default=0.05)
    ap.add_argument("--val-images", type=int, default=4, help="clean images held out for validation")
    ap.add_argument("--every", type=int, default=250, help="checkpoint/validation interval")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="wall-clock budget of this process (0 = none): the schedule's progress is "
                         "the larger of step/steps and elapsed/budget, and the run ends with a "
                         "checkpoint when either is used up")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default=None,
                    help="start a new run (step 0, fresh optimiser) from these weights: a ckpt.pt "
                         "(model and discriminator) or a weights.pt; parameters the file lacks "
                         "keep their initial values")
    ap.add_argument("--reinit-streak-head", action="store_true",
                    help="after resuming, reset the streak head to its initial state (for "
                         "checkpoints made before the ReLU-offset fix, whose head never learned)")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_names, val_names = split_names(args.data, args.val_images)
    t0 = time.time()
    train = Renders(args.data, train_names)
    val = Renders(args.data, val_names) if val_names else None
    print(f"loaded {len(train)} training / {len(val) if val else 0} validation samples "
          f"in {time.time() - t0:.0f} s", flush=True)

    model = FullModel().to(dev)
    disc = Discriminator().to(dev)
    params = trained(model)
    opt = torch.optim.Adam(params, lr=args.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr * 0.5, betas=(0.5, 0.999))
    step = 0
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        st = torch.load(ckpt, map_location=dev)
        missing, _ = model.load_state_dict(st["model"], strict=False)
        if [k for k in missing if not k.startswith("stage1.anet.gate.")]:
            raise RuntimeError(f"{ckpt} lacks {missing}")
        disc.load_state_dict(st["disc"])
        opt.load_state_dict(st["opt"]), opt_d.load_state_dict(st["opt_d"])
        step = st["step"]
        print(f"resumed at step {step}", flush=True)
        if args.reinit_streak_head:
            model.stage1.reinit_streak_head()
            opt = torch.optim.Adam(params, lr=args.lr)  # fresh moments
            print("streak head re-initialised", flush=True)
    elif args.init:
        st = torch.load(args.init, map_location=dev)
        missing, unexpected = model.load_state_dict(st.get("model", st), strict=False)
        if "disc" in st:
            disc.load_state_dict(st["disc"])
        print(f"initialised from {args.init}; new parameters: {missing}; dropped: {unexpected}",
              flush=True)
    rng = np.random.default_rng(args.seed + step)
    log = open(out / "log.jsonl", "a")

    start = time.time()
    budget = args.minutes * 60.0
    first = step

    def progress(s):
        p = s / args.steps
        if budget > 0:
            # Time counts only this process's steps; a resumed run keeps its step-based share.
            p = max(p, first / args.steps + (1 - first / args.steps) * (time.time() - start) / budget)
        return min(1.0, p)

    def lr_at(s, p):
        warm = min(1.0, (s + 1) / 200)
        return args.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))

    done = step >= args.steps  # a finished run resumed with the same --steps does nothing
    while not done:
        p = progress(step)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, p)
        b = {k: v.to(dev) for k, v in train.batch(args.batch, args.crop, rng).items()}
        o = model(b["in"], FACTOR)
        l_phys = (F.mse_loss(o["s"], b["streak"]) + F.mse_loss(o["t"], b["trans"])
                  + F.mse_loss(o["a"], b["atm"]))
        l_rec = F.l1_loss(o["j"], b["gt"]) + 0.5 * F.l1_loss(o["j1"], b["gt"])
        l_perc = perceptual(o["j"], b["gt"])
        loss = 10 * l_phys + l_rec + 0.5 * l_perc
        gan = step >= args.gan_start
        depth_gt = F.avg_pool2d(b["depth"], 8)
        if gan:
            adv, dpred = disc(o["j"])
            l_gan = ((adv - 1) ** 2).mean()
            l_depth = F.mse_loss(dpred, depth_gt)
            loss = loss + args.w_gan * l_gan + args.w_depth * l_depth
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        rec = {"step": step, "loss": loss.item(), "phys": l_phys.item(), "rec": l_rec.item(),
               "perc": l_perc.item(), "psnr_j": psnr(o["j"].detach(), b["gt"])}
        if gan:
            adv_r, dep_r = disc(b["gt"])
            adv_f, _ = disc(o["j"].detach())
            l_d = ((adv_r - 1) ** 2).mean() + (adv_f ** 2).mean() + F.mse_loss(dep_r, depth_gt)
            opt_d.zero_grad(set_to_none=True)
            l_d.backward()
            opt_d.step()
            rec.update(gan=l_gan.item(), depth=l_depth.item(), d=l_d.item())
        step += 1
        done = step >= args.steps or (budget > 0 and progress(step) >= 1.0)
        if step % 25 == 0:
            rec["lr"] = opt.param_groups[0]["lr"]
            print(json.dumps(rec), flush=True)
        if step % args.every == 0 or done:
            if val is not None:
                model.eval()
                with torch.no_grad():
                    vals = []
                    for i in range(0, len(val), max(1, len(val) // 12)):
                        v = {k: x.to(dev) for k, x in val.whole(i, 4 * FACTOR).items()}
                        vals.append((psnr(model(v["in"], FACTOR)["j"], v["gt"]), psnr(v["in"], v["gt"])))
                model.train()
                rec["val_psnr_rgb"] = float(np.mean([a for a, _ in vals]))
                rec["val_input_psnr_rgb"] = float(np.mean([b_ for _, b_ in vals]))
                print(f"step {step}: val RGB-PSNR {rec['val_psnr_rgb']:.2f} "
                      f"(input {rec['val_input_psnr_rgb']:.2f})", flush=True)
            tmp = out / "ckpt.tmp"
            torch.save({"model": model.state_dict(), "disc": disc.state_dict(), "opt": opt.state_dict(),
                        "opt_d": opt_d.state_dict(), "step": step}, tmp)
            tmp.replace(ckpt)
            torch.save(model.state_dict(), out / "weights.pt")
        log.write(json.dumps(rec) + "\n")
        log.flush()


if __name__ == "__main__":
    main()
