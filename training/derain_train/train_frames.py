"""Fine-tune the veil networks (`stage1.onnx`) and the refinement (`stage2.onnx`) on whole
frames, behind a frozen streak network, on the CPU.

Why: train_full.py composes 256² crops and works at f = 2, so the veil networks see 128²
working images that show a fifth to a half of a scene. The held-out renders are whole scenes
(sky, horizon, ground): images brought to 512 on the long side (f = 2) or cropped to 720×480
(f = 3), and a 720p camera frame works at f = 4. The veil's density and the light are
properties of the whole frame, which a crop shows little of. Whole frames cost the streak
network four times the work per sample, which the CPU cannot afford at every step, so this
script runs it once per frame:

    python -m derain_train.train_frames cache --banks BANK/* --clean CLEAN --size quality \\
        --streak weights/streak_quality.pt --out /tmp/frames-q --count 2400 --threads 2
    python -m derain_train.train_frames train --cache /tmp/frames-q --size quality \\
        --init-veil ../models/quality --out runs/frames-q --minutes 60 --threads 2

`cache` renders whole frames (a square window of 75–100 % of a clean image's short side,
resized to `--frame`), composes rain, veil and camera effects
as rain.py's Composer does, runs the frozen streak network and stores I_s (float16), the clean
image (uint8), T (float16) and A, in shards of 64 frames; it also stores a fixed validation
set from the `val` images (every family, a veil-free line and a clear line, as train_full.py).
`train` then fits the veil and refinement networks with train_full.py's losses on batches of
cached frames (a horizontal flip at random), at a working factor drawn per batch from
`--factors` (2, 3 and 4: the 512-wide renders and Rain12, the 720×480 renders, 720p). It
writes ckpt.pt, weights.pt and log.jsonl as train_full.py does; the validation runs at f = 3.
The shards are memory-mapped, so runs beside each other share one copy of a cache in the page
cache (2,880 frames are 8 GB). `--balance` weights each frame's pixel losses towards the frames
the output is already close on (train_full.frame_weights), as a per-frame PSNR does.
`--gate-loss` adds a direct loss on the frame's veil gate (open where the frame has a veil).
`score` prints the same validation record for veil and refinement pairs (the first line of a
run's log is its starting pair's).

`live` is `train` without a cache, for a GPU (training/gpu-train.sh's veil half): each batch
is composed and run through the frozen streak network on the device at every step, and the
validation set is the one `cache` would store from the same banks and clean images:

    python -m derain_train.train_frames live --banks BANK/* --clean CLEAN --size quality \
        --streak STREAK.pt --init-veil weights/veil_quality.pt --out OUT --minutes 1 \
        --batch 16 --lr 1e-4 --clear 0.25 --device cuda
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .export_full import load_streak, load_veil_refine
from .model import FullModelV2
from .rain import CleanImages, Composer, RainBank, clean_paths
from .streak import remove_rain
from .train_full import veil_loss
from .train_streak import RunClock, save_atomic, ypsnr

SHARD = 64
VAL_FACTOR = 3


class FrameImages(CleanImages):
    """Clean images framed as whole scenes: a square window of 75–100 % of the image's short
    side, resized to `size`, flipped at random (the held-out renders show the whole image at
    its own aspect ratio, or a 720×480 crop of it)."""

    def window(self, h, w, size, rng):
        return int(round(min(h, w) * rng.uniform(0.75, 1.0)))


def pack(b, i_s):
    return {"i_s": i_s.half(), "gt": (b["gt"] * 255).round().to(torch.uint8),
            "trans": b["trans"].half(), "atm": b["atm"].float(),
            "family": [str(f) for f in b["family"]]}


def unpack(s, idx=None, flip=None):
    sel = (lambda t: t) if idx is None else (lambda t: t[idx])
    i_s, gt = sel(s["i_s"]).float(), sel(s["gt"]).float() / 255.0
    trans, atm = sel(s["trans"]).float(), sel(s["atm"])
    if flip is not None:
        m = flip.view(-1, 1, 1, 1)
        i_s, gt, trans = (torch.where(m, t.flip(-1), t) for t in (i_s, gt, trans))
    return i_s, gt, trans, atm


def run(model, i_s, f):
    """The pipeline on I_s padded (replicated) to a multiple of 4·f, as src/nets/full.rs pads
    the frame; j, j1 and t_net are cropped back."""
    h, w = i_s.shape[-2:]
    m = 4 * f
    x = F.pad(i_s, (0, (-w) % m, 0, (-h) % m), mode="replicate")
    o = model(None, f, i_s=x)
    return {k: o[k][..., :h, :w] for k in ("j", "j1", "t_net")} | {"a": o["a"]}


@torch.no_grad()
def score(model, val):
    """The validation record of `model` on a cached validation set: {"val": {family: [output,
    input]}, "val_mean_db", "harm": {"veil-free": …, "clear": …}}, Y-PSNR at f = 3."""
    was = model.veil.training
    model.veil.eval()
    model.stage2.eval()
    rows = {}
    for line, s in val.items():
        i_s, gt, _, _ = unpack(s)
        x = s["in"].float() / 255.0
        j = torch.cat([run(model, i_s[i:i + 1], VAL_FACTOR)["j"] for i in range(i_s.shape[0])])
        rows[line] = [round(float(np.mean(ypsnr(j, gt))), 2),
                      round(float(np.mean(ypsnr(x, gt))), 2)]
    model.veil.train(was)
    model.stage2.train(was)
    fams = [k for k in rows if k not in ("veil-free", "clear")]
    return {"val": {k: rows[k] for k in fams},
            "val_mean_db": round(float(np.mean([rows[k][0] for k in fams])), 3),
            "harm": {k: rows[k] for k in ("veil-free", "clear")}}


def load_pair(path, size):
    """FullModelV2 (no streak network) with the veil and refinement of `path` (a state dict or
    a folder with stage1.onnx and stage2.onnx)."""
    veil, refine = load_veil_refine(path)
    model = FullModelV2(size, apool=veil.apool is not None, tglobal=veil.tglobal is not None)
    model.veil.load_state_dict(veil.state_dict())
    model.stage2.load_state_dict(refine.state_dict())
    model.streak = None
    return model


def score_cmd(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    val = torch.load(Path(args.cache) / "val.pt", weights_only=False)
    for path in args.veil:
        print(json.dumps({"veil": path, **score(load_pair(path, args.size), val)}), flush=True)


class Renderer:
    """Whole frames composed as rain.py's Composer does, with I_s from the frozen streak
    network (bf16 autocast on a GPU), packed as the cache stores them."""

    def __init__(self, streak, frame, device):
        self.streak, self.frame, self.device = streak, frame, device
        self.amp = device.type == "cuda"

    @torch.no_grad()
    def __call__(self, comp, n, rng, **kw):
        b = comp.batch(n, self.frame, rng, **kw)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            _, r = remove_rain(self.streak, b["in"])
        i_s = (b["in"] - r.float()).clamp(0, 1)
        rec = pack(b, i_s)
        rec["in"] = (b["in"] * 255).round().to(torch.uint8)
        return rec

    def validation(self, clean, banks, per_family):
        """The fixed validation set (the `val` images, seed 12345): every family, a veil-free
        line and a clear line."""
        comp = Composer(FrameImages(clean_paths(clean, "val"), device=self.device), banks,
                        device=self.device)
        rng = np.random.default_rng(12345)
        torch.manual_seed(12345)
        val = {}
        for fam in comp.families:
            val[fam] = self(comp, per_family, rng, families=[fam] * per_family)
        fams = [f for f in comp.families if f != "reference"]
        n = 2 * per_family
        val["veil-free"] = self(comp, n, rng, families=[fams[i % len(fams)] for i in range(n)],
                                veil=False)
        clear = Composer(FrameImages(clean_paths(clean, "val"), device=self.device), banks,
                         clear=1.0, device=self.device)
        val["clear"] = self(clear, n, rng)
        return val


def cache(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    banks = [RainBank(b, limit=args.bank_limit) for b in args.banks]
    render = Renderer(load_streak(args.streak, args.size).eval(), args.frame,
                      torch.device("cpu"))
    t0 = time.time()

    val_path = out / "val.pt"
    if not val_path.exists():
        val = render.validation(args.clean, banks, args.val_per_family)
        torch.save(val, val_path)
        print(f"val: {sum(len(v['family']) for v in val.values())} frames, "
              f"{time.time() - t0:.0f} s", flush=True)
    comp = Composer(FrameImages(clean_paths(args.clean, "train")), banks, grainy=args.grainy,
                    clear=args.clear)
    shards = math.ceil(args.count / SHARD)
    for k in range(shards):
        p = out / f"shard{k:04d}.pt"
        if p.exists():
            continue
        rng = np.random.default_rng(args.seed * 100003 + k)
        torch.manual_seed(args.seed * 100003 + k)
        recs = [render(comp, 8, rng) for _ in range(SHARD // 8)]
        shard = {key: torch.cat([r[key] for r in recs]) for key in ("i_s", "gt", "trans", "atm")}
        shard["family"] = sum((r["family"] for r in recs), [])
        save_atomic(shard, p)
        print(f"shard {k + 1}/{shards}: {time.time() - t0:.0f} s", flush=True)


def gate_loss(logit, trans, veiled=0.03):
    """Binary cross-entropy of the frame gate (model.py ANet: T = 1 − g·(1 − T_local)) against
    "this frame has a veil", mean(1 − T_true) > `veiled`. The pixel losses reach the gate only
    through T, which a thin veil (1 − T ≈ 0.1–0.2) moves little; on the light family the gate
    stays shut on half of the veiled training frames (models/README.md, "Where the remaining
    error is")."""
    target = ((1 - trans).mean(dim=(1, 2, 3)) > veiled).to(logit.dtype)
    return F.binary_cross_entropy_with_logits(logit.reshape(-1), target)


class Rows:
    """A tensor split over shards, indexed by a vector of rows (`t[idx]`) without joining the
    shards, so memory-mapped shards stay in the page cache, one copy for every run on the
    machine."""

    def __init__(self, parts):
        self.parts = parts
        self.start = np.cumsum([0] + [len(t) for t in parts])
        self.shape = (int(self.start[-1]),) + tuple(parts[0].shape[1:])

    def __getitem__(self, idx):
        idx = np.asarray(idx)
        shard = np.searchsorted(self.start, idx, side="right") - 1
        return torch.stack([self.parts[k][i - self.start[k]] for k, i in zip(shard, idx)])


def load_frames(folder):
    """The cached frames of `folder` as Rows per key, the shards memory-mapped."""
    shards = [torch.load(p, weights_only=False, mmap=True)
              for p in sorted(folder.glob("shard[0-9]*.pt"))]
    if not shards:
        raise FileNotFoundError(f"no cached frames in {folder}")
    return {key: Rows([s[key] for s in shards]) for key in ("i_s", "gt", "trans", "atm")}


def cached_source(args):
    """(draw, val) for `train`: batches of cached frames (a horizontal flip at random; with
    `--extra`, a share of each batch from a second cache)."""
    src = Path(args.cache)
    data = load_frames(src)
    n = data["i_s"].shape[0]
    extra = load_frames(Path(args.extra)) if args.extra else None
    val = torch.load(src / "val.pt", weights_only=False)
    print(f"{n} cached frames", flush=True)

    def draw(rng):
        idx = torch.from_numpy(rng.integers(0, n, args.batch))
        flip = torch.from_numpy(rng.random(args.batch) < 0.5)
        i_s, gt, trans, atm = unpack(data, idx, flip)
        if extra is not None:
            # A share of the batch from the extra cache (e.g. rain-free, veil-free frames).
            take = torch.from_numpy(rng.random(args.batch) < args.extra_share)
            if bool(take.any()):
                m = int(take.sum())
                e_idx = torch.from_numpy(rng.integers(0, extra["i_s"].shape[0], m))
                e = unpack(extra, e_idx, flip[take])
                for dst, src_t in zip((i_s, gt, trans, atm), e):
                    dst[take] = src_t
        return i_s, gt, trans, atm

    return draw, val


def live_source(args, dev):
    """(draw, val) for `train`: frames composed at every step and run through the frozen
    streak network on `dev` (the GPU machine: no cache to build or store)."""
    t0 = time.time()
    banks = [RainBank(b, device=dev, limit=args.bank_limit) for b in args.banks]
    render = Renderer(load_streak(args.streak, args.size).to(dev).eval(), args.frame, dev)
    val = render.validation(args.clean, banks, args.val_per_family)
    comp = Composer(FrameImages(clean_paths(args.clean, "train"), device=dev), banks,
                    grainy=args.grainy, clear=args.clear, device=dev)
    print(f"live frames of {args.frame}²: {sum(len(b) for b in banks)} rain layers, "
          f"{len(comp.clean.images)} clean images, validation in {time.time() - t0:.0f} s",
          flush=True)
    return (lambda rng: unpack(render(comp, args.batch, rng))), val


def train(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(getattr(args, "device", "cpu"))
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    draw, val = live_source(args, dev) if args.cmd == "live" else cached_source(args)

    model = load_pair(args.init_veil, args.size).to(dev)
    params = list(model.veil.parameters()) + list(model.stage2.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)
    factors = [int(f) for f in args.factors.split(",")]
    step, elapsed0 = 0, 0.0
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        st = torch.load(ckpt, weights_only=False, map_location=dev)
        model.load_state_dict(st["model"], strict=False)
        opt.load_state_dict(st["opt"])
        step, elapsed0 = st["step"], st.get("elapsed", 0.0)
        print(f"resumed at step {step}", flush=True)
    rng = np.random.default_rng(args.seed + step)
    torch.manual_seed(args.seed + step)
    log = open(out / "log.jsonl", "a")
    clock = RunClock(args.steps, args.minutes, elapsed0)

    def save(rec):
        st = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()
                        if not k.startswith("streak.")},
              "opt": opt.state_dict(), "step": step, "elapsed": clock.elapsed(), "size": args.size}
        save_atomic(st, ckpt)
        save_atomic(st["model"], out / "weights.pt")
        log.write(json.dumps(rec) + "\n")
        log.flush()

    if step == 0:
        rec = {"step": 0, "minutes": 0.0, **score(model, val)}
        print(json.dumps(rec), flush=True)
        log.write(json.dumps(rec) + "\n")
    model.veil.train()
    model.stage2.train()
    # The frame gate's logit (model.py ANet.gate) of each forward, for `--gate-loss` only.
    logits = []
    if args.gate_loss > 0:
        model.veil.anet.gate.register_forward_hook(lambda mod, inp, out: logits.append(out))
    next_save = clock.elapsed() + args.every_min * 60
    losses = []
    while clock.progress(step) < 1.0:
        p = clock.progress(step)
        warm = min(1.0, (step + 1) / 50)
        lr = args.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))
        for g in opt.param_groups:
            g["lr"] = lr
        i_s, gt, trans, atm = draw(rng)
        f = factors[int(rng.integers(len(factors)))]
        logits.clear()
        o = run(model, i_s, f)
        loss = veil_loss(o, gt, trans, atm, args.balance)
        if args.gate_loss > 0:
            loss = loss + args.gate_loss * gate_loss(logits[0], trans)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        if clock.elapsed() >= next_save or clock.progress(step) >= 1.0:
            rec = {"step": step, "minutes": round(clock.elapsed() / 60, 2), "lr": lr,
                   "loss": float(np.mean(losses)), **score(model, val)}
            losses = []
            print(json.dumps(rec), flush=True)
            save(rec)
            next_save = clock.elapsed() + args.every_min * 60


def render_args(p):
    """The options of the frames `cache` stores and `live` composes (Renderer, Composer)."""
    p.add_argument("--banks", nargs="+", required=True)
    p.add_argument("--clean", required=True)
    p.add_argument("--streak", required=True)
    p.add_argument("--frame", type=int, default=512)
    p.add_argument("--grainy", type=float, default=0.1)
    p.add_argument("--clear", type=float, default=0.1)
    p.add_argument("--val-per-family", type=int, default=8)
    p.add_argument("--bank-limit", type=int, default=0)


def train_args(t):
    """The options `train` and `live` share."""
    t.add_argument("--size", default="quality", choices=["fast", "quality"])
    t.add_argument("--init-veil", required=True,
                   help="a FullModelV2 state dict or a folder with stage1.onnx and stage2.onnx")
    t.add_argument("--out", required=True)
    t.add_argument("--minutes", type=float, default=0.0)
    t.add_argument("--steps", type=int, default=100000)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--factors", default="2,3,3,4")
    t.add_argument("--balance", type=float, default=0.0,
                   help="weight each frame's L1, T and A losses by 1/its RMS error, mixed in "
                        "at this share (train_full.frame_weights): frames already close (thin "
                        "veils, clear frames) count more, as in a per-frame PSNR")
    t.add_argument("--gate-loss", type=float, default=0.0,
                   help="weight of a direct loss on the frame gate: open where the frame has a "
                        "veil (gate_loss)")
    t.add_argument("--every-min", type=float, default=3.0)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--seed", type=int, default=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache", help="render whole frames and run the frozen streak network")
    render_args(c)
    c.add_argument("--size", default="quality", choices=["fast", "quality"])
    c.add_argument("--out", required=True)
    c.add_argument("--count", type=int, default=2400,
                   help="frames to cache, rounded up to a multiple of 64 (0: the validation set only)")
    c.add_argument("--threads", type=int, default=0)
    c.add_argument("--seed", type=int, default=1)
    t = sub.add_parser("train", help="fit the veil and refinement on the cached frames")
    t.add_argument("--cache", required=True)
    t.add_argument("--extra", default=None,
                   help="a second cache folder that `--extra-share` of each batch comes from")
    t.add_argument("--extra-share", type=float, default=0.0)
    train_args(t)
    lv = sub.add_parser("live", help="the same on frames composed at every step (a GPU)")
    render_args(lv)
    lv.add_argument("--device", default="cuda")
    train_args(lv)
    v = sub.add_parser("score", help="the validation record of veil and refinement pairs")
    v.add_argument("--cache", required=True, help="a cache folder (only its val.pt is read)")
    v.add_argument("--size", default="quality", choices=["fast", "quality"])
    v.add_argument("--threads", type=int, default=0)
    v.add_argument("veil", nargs="+", help="state dicts or folders with stage1/stage2.onnx")
    args = ap.parse_args(argv)
    {"cache": cache, "train": train, "live": train, "score": score_cmd}[args.cmd](args)


if __name__ == "__main__":
    main()
