"""Fit the frame-level heads (atmospheric light A and the veil gate g) on whole frames, with
every other network frozen.

    python -m derain_train.fit_atm --data synth-train synth-light synth-clear \
        --init runs/ft/weights.pt --out runs/gate --steps 600

Both are one value per frame, so they are fitted on whole frames: crops change which pixels
are the most veiled and how much of the frame is sky, and heads fitted on crops are biased on
frames. With T_local from the frozen TNet, T = 1 − g·(1 − T_local) and S from the frozen
SNet, the loss is
    L1(J1, J_gt) + 10·‖T − T_gt‖² + w·(10·‖A − A_gt‖² + |A − A_gt|),   w = min(1, mean(1 − T_gt)/0.1)
(with --physics-gate, T = 1 − k·g·(1 − T_local), k the Rust `full` mode's physics veil gate of
the frame, read from `veil.json` in each data root: `cargo run --release --example veil_gate`)
where J1 = invert(I, T, A, S) is the stage-1 inversion: through it A is also fitted to the
frozen TNet (their errors are coupled: ΔJ ≈ −ΔA·(1−T)/T). w drops the A terms on frames
without a veil, where A is not observable.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import Renders
from .guided_filter import downsample, residue, upsample
from .model import FullModel, gated, invert, stage1_inputs, streaks
from .train import FACTOR, split_names, trained


def frame_terms(model, v, t_grad=False):
    """Stage-1 terms for one whole frame: x_lf, T_local (working resolution) and
    full-resolution S, all frozen except T_local when `t_grad` (the TNet is being fitted)."""
    with torch.no_grad():
        img = v["in"]
        x_lf, x_hf = stage1_inputs(downsample(img, FACTOR), downsample(residue(img), FACTOR))
        s = streaks(upsample(model.stage1.snet(x_hf), FACTOR), img)
    with torch.set_grad_enabled(t_grad):
        return x_lf, model.stage1.local_transmission(x_lf), s


def physics_gates(ds):
    """k of every sample of `ds` from `veil.json` in its root (written by the Rust example
    `veil_gate`, so k is exactly what `full` mode computes on that frame)."""
    tables, ks = {}, []
    for root, stem in ds.keys:
        if root not in tables:
            path = Path(root) / "veil.json"
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: run `cargo run --release --example "
                                        f"veil_gate -- {root}` first")
            tables[root] = json.loads(path.read_text())
        if stem not in tables[root]:
            raise KeyError(f"{Path(root) / 'veil.json'} has no entry for {stem}")
        ks.append(float(tables[root][stem]["k"]))
    return ks


def heads(anet, x_lf, t_local, img, s, k=1.0):
    """A, the learned gate g, T = 1 − k·g·(1 − T_local) at full resolution and J1."""
    a, g = anet(x_lf)
    t = upsample(gated(t_local, g * k), FACTOR)
    return a, g, t, invert(img, t, a, s)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", required=True, help="derain synth output root(s)")
    ap.add_argument("--init", required=True, help="weights.pt (or ckpt.pt) of the full model")
    ap.add_argument("--out", required=True, help="folder for weights.pt and log.jsonl")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=4, help="whole frames per step")
    ap.add_argument("--lr", type=float, default=3e-4, help="for A's net (a fine-tune)")
    ap.add_argument("--gate-lr-scale", type=float, default=30.0,
                    help="the new gate layer learns this many times faster")
    ap.add_argument("--every", type=int, default=150, help="validation/save interval")
    ap.add_argument("--val-images", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--train", choices=("anet", "heads", "a-head", "tnet-a-head"), default="anet",
                    help="anet: all of ANet (A and the gate); heads: A's MLP head and the gate "
                         "layer on ANet's frozen pooled features; a-head: only A's MLP head, so "
                         "the gate (which reads the same features) stays exactly as it is; "
                         "tnet-a-head: the TNet and A's head together (their errors are coupled), "
                         "the gate as it is")
    ap.add_argument("--physics-gate", action="store_true",
                    help="multiply the learned gate by the physics veil gate k of each frame, as "
                         "`full` mode does (reads veil.json in each --data root)")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train_names, val_names = split_names(args.data, args.val_images)
    train = Renders(args.data, train_names)
    val = Renders(args.data, val_names)
    print(f"{len(train)} training frames, {len(val)} validation", flush=True)
    k_train = physics_gates(train) if args.physics_gate else [1.0] * len(train)
    k_val = physics_gates(val) if args.physics_gate else [1.0] * len(val)

    model = FullModel()
    st = torch.load(args.init, map_location="cpu")
    # strict=False: weights from before the gate lack it; it keeps its initial g ≈ 0.98.
    model.load_state_dict(st.get("model", st), strict=False)
    model.to(dev)
    anet = model.stage1.anet
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = {"anet": [anet], "heads": [anet.head, anet.gate], "a-head": [anet.head],
                 "tnet-a-head": [anet.head, model.stage1.tnet]}[args.train]
    for p in (p for m in trainable for p in m.parameters()):
        p.requires_grad_(True)
    gate = [p for p in anet.gate.parameters() if p.requires_grad]
    rest = [p for p in trained(model) if p.requires_grad]  # all but the gate
    groups = [{"params": rest, "scale": 1.0}, {"params": gate, "scale": args.gate_lr_scale}]
    opt = torch.optim.Adam([g for g in groups if g["params"]], lr=args.lr)
    rng = np.random.default_rng(args.seed)
    log = open(out / "log.jsonl", "a")

    def evaluate():
        da, ps, g_veil, g_clear = [], [], [], []
        for i in range(len(val)):
            v = {k: x.to(dev) for k, x in val.whole(i, 4 * FACTOR).items()}
            x_lf, t_local, s = frame_terms(model, v)
            with torch.no_grad():
                a, g, _, j1 = heads(anet, x_lf, t_local, v["in"], s, k_val[i])
            if 1 - v["trans"].mean().item() >= 0.1:
                g_veil.append(g.item())
                da.append((a - v["atm"]).abs().mean().item())
            else:
                g_clear.append(g.item())
            ps.append(-10 * np.log10(F.mse_loss(j1, v["gt"]).item()))
        return {"val_abs_da": float(np.mean(da)), "val_psnr_j1": float(np.mean(ps)),
                "val_gate_veiled": float(np.mean(g_veil)) if g_veil else None,
                "val_gate_clear": float(np.mean(g_clear)) if g_clear else None}

    print(f"step 0: {evaluate()}", flush=True)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        lr = args.lr * 0.5 * (1 + np.cos(np.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr * g["scale"]
        loss = 0.0
        for _ in range(args.batch):
            i = int(rng.integers(len(train)))
            v = {k: x.to(dev) for k, x in train.whole(i, 4 * FACTOR).items()}
            if rng.random() < 0.5:
                v = {k: (x.flip(3) if x.dim() == 4 else x) for k, x in v.items()}
            x_lf, t_local, s = frame_terms(model, v, t_grad=args.train == "tnet-a-head")
            a, _, t, j1 = heads(anet, x_lf, t_local, v["in"], s, k_train[i])
            w = min(1.0, (1 - v["trans"].mean().item()) / 0.1)
            loss = loss + (F.l1_loss(j1, v["gt"]) + 10 * F.mse_loss(t, v["trans"])
                           + w * (10 * F.mse_loss(a, v["atm"]) + F.l1_loss(a, v["atm"]))) / args.batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rec = {"step": step, "loss": loss.item(), "lr": lr}
        if step % args.every == 0 or step == args.steps:
            rec.update(evaluate())
            print(f"step {step} ({time.time() - t0:.0f} s): loss {loss.item():.4f}, {rec}", flush=True)
            torch.save({k: x.cpu() for k, x in model.state_dict().items()}, out / "weights.pt")
        log.write(json.dumps(rec) + "\n")
        log.flush()


if __name__ == "__main__":
    main()
