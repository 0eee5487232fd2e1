"""The networks of `full` mode and the differentiable pipeline that connects them
(`FullModelV2`; src/nets/full.rs runs the same steps around the three ONNX graphs).

    R = StreakNet(I) at full resolution (streak.py);  I_s = clamp(I − R, 0, 1)
    working resolution: f = max(1, round(short side / WORK_LINES)) (≈180 lines), padded to a
    multiple of 4 (`PAD_MULTIPLE`)
    I_lo = down_f(I_s);  LF = bank(down_f(residue(I_s)), I_lo) (30 ch)
    Veil:     A, g = ANet([I_lo, LF])  (A ∈ [0,1]³, veil gate g ∈ [0,1], one per frame)
              T_lo = 1 − g·(1 − TNet([I_lo, LF])) ∈ [t0, 1]
              (with `tglobal`, the TNet's coarsest level gets a per-frame bias from the
              ANet's pooled features: the veil's density is a whole-frame property)
    full res: T = up_f(T_lo);  J1 = clamp((I_s − (1 − T)·A) / max(T, t0), 0, 1)
    stage 2:  D_lo = −ln max(T_lo, t0)  (depth up to the scale 1/β)
              J = clamp(J1 + up_f(G([down_f(J1), D_lo])), 0, 1)

The veil networks (TNet, ANet) and G are those of the first `full` mode, which estimated the
streaks at the working resolution too (git history up to af0461e: model.py `Stage1`): their
weights load into `Veil` and `Stage2` by name.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .guided_filter import downsample, guided_bank, residue, upsample

T0 = 0.1  # DEFAULT_MIN_TRANSMISSION in src/pipeline/config.rs
WORK_LINES = 180
PAD_MULTIPLE = 4
BANK_CHANNELS = 30


def work_factor(h: int, w: int) -> int:
    """Integer reduction factor for the working resolution (same formula as Rust)."""
    return max(1, int(math.floor(min(h, w) / WORK_LINES + 0.5)))


def act():
    return nn.LeakyReLU(0.1)


def conv(cin, cout, k=3, stride=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class UNet(nn.Module):
    """Two-level U-Net for real time: 1×1 in, 3×3 convs at /1, /2, /4, 1×1 merges at the
    coarse level before nearest upsampling (skips are added, not concatenated).

    About 7.3 k MACs per working-resolution pixel for cin=33, cout=1.
    """

    def __init__(self, cin, cout, c0=12, c1=24, c2=32):
        super().__init__()
        self.inp = nn.Sequential(conv(cin, c0, 1), act())
        self.e0 = nn.Sequential(conv(c0, c0), act())
        self.d1 = nn.Sequential(conv(c0, c1, stride=2), act())
        self.e1 = nn.Sequential(conv(c1, c1), act())
        self.d2 = nn.Sequential(conv(c1, c2, stride=2), act())
        self.e2 = nn.Sequential(conv(c2, c2), act())
        self.m1 = conv(c2, c1, 1)
        self.u1 = nn.Sequential(conv(c1, c1), act())
        self.m0 = conv(c1, c0, 1)
        self.u0 = nn.Sequential(conv(c0, c0), act())
        self.out = conv(c0, cout, 1)

    def forward(self, x, bias2=None):
        """`bias2` ([B, c2]): a per-frame bias added to the coarsest level's first convolution
        before its activation (`Veil`'s global context; the same as a per-frame bias of d2)."""
        x0 = self.e0(self.inp(x))
        x1 = self.e1(self.d1(x0))
        if bias2 is None:
            x2 = self.e2(self.d2(x1))
        else:
            x2 = self.e2(self.d2[1](self.d2[0](x1) + bias2[:, :, None, None]))
        y1 = self.u1(F.interpolate(self.m1(x2), scale_factor=2.0, mode="nearest") + x1)
        y0 = self.u0(F.interpolate(self.m0(y1), scale_factor=2.0, mode="nearest") + x0)
        return self.out(y0)


class ANet(nn.Module):
    """Frame-level heads on globally pooled features (strided convs, global mean and max
    pooling): the atmospheric light A = sigmoid(head(z)) and the veil gate
    g = sigmoid(gate(z)) ∈ [0, 1], "is there a rain veil at all". The transmission is
    T = 1 − g·(1 − T_local): the TNet sees about 30 working pixels around each pixel, but
    whether a grey distance is rain veil or haze that belongs to the scene (light rain over a
    hazy landscape) is a whole-frame question.
    """

    def __init__(self, cin=33):
        super().__init__()
        self.body = nn.Sequential(
            conv(cin, 16, stride=2), act(),
            conv(16, 24, stride=2), act(),
            conv(24, 32, stride=2), act(),
        )
        self.head = nn.Sequential(nn.Linear(64, 32), act(), nn.Linear(32, 3))
        # The gate starts open (g ≈ 0.98: T as the TNet says).
        self.gate = nn.Linear(64, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, 4.0)

    def features(self, x):
        """The frame's pooled features z = [mean, max] of the body (64)."""
        y = self.body(x)
        return torch.cat([y.mean(dim=(2, 3)), y.amax(dim=(2, 3))], dim=1)

    def heads(self, z):
        return torch.sigmoid(self.head(z)), torch.sigmoid(self.gate(z))

    def forward(self, x):
        return self.heads(self.features(x))


class APool(nn.Module):
    """Atmospheric light by attention pooling (optional in `Veil`). Per 4×4 block of the
    working image a candidate colour (the block's mean of I_s plus a learned correction) and a
    logit (learned, less 8·T: where the veil is densest, I_s ≈ A); A_pool = Σ softmax(logit)·
    candidate. Then A = k·A_anet + (1 − k)·A_pool with k = σ(keep(pooled features)): where
    the veil is thin, A barely shows anywhere and the ANet's learned prior is better.

    Why: the ANet's global MLP misses A by ≈ 0.05 on veiled validation crops, and 1/T
    amplifies that error where the veil is dense (an oracle A and T on the held-out reference
    renders is worth +4 dB)."""

    def __init__(self, cin=3 + BANK_CHANNELS + 1):
        super().__init__()
        self.body = nn.Sequential(conv(cin, 16, stride=2), act(), conv(16, 24, stride=2), act(),
                                  conv(24, 24), act())
        self.head = conv(24, 4, 1)
        self.keep = nn.Linear(48, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        nn.init.zeros_(self.keep.weight)
        nn.init.zeros_(self.keep.bias)

    def forward(self, x_lf, t_lo, a_anet, mix=True):
        f = self.body(torch.cat([x_lf, t_lo], 1))
        y = self.head(f)
        logit = y[:, :1] - 8.0 * F.avg_pool2d(t_lo, 4)
        cand = F.avg_pool2d(x_lf[:, :3], 4) + y[:, 1:]
        w = torch.softmax(logit.flatten(2), -1)
        a = (w * cand.flatten(2)).sum(-1)
        if mix:
            k = torch.sigmoid(self.keep(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], 1)))
            a = k * a_anet + (1 - k) * a
        return a.clamp(0.0, 1.0)


class Veil(nn.Module):
    """`stage1.onnx` of the full-resolution pipeline: T and A from x_lf = [I_s_lo, LF] (the
    rain-free image after the streak network, and its residue-guided bank). The same TNet and
    ANet as `Stage1` (whose weights load into it by name), without the low-resolution streak
    branch. With `apool`, A comes from `APool` on [x_lf, T] (the ANet still gives the gate).

    With `tglobal`, the TNet also sees the whole frame: a linear map of the ANet's pooled
    features z (64) is added, per channel, to its coarsest level (before d2's activation).
    Why: the TNet sees about 30 working pixels around each pixel, and the renders' T is a
    frame-wide depth gradient; on thin veils it kept T too high (mean bias +0.05 on the light
    family, models/README.md "Where the remaining error is"). Zero at initialisation, so a
    veil without it starts where it was."""

    def __init__(self, apool=False, tglobal=False):
        super().__init__()
        self.tnet = UNet(3 + BANK_CHANNELS, 1)
        self.anet = ANet(3 + BANK_CHANNELS)
        nn.init.zeros_(self.tnet.out.weight)
        nn.init.constant_(self.tnet.out.bias, 3.0)
        self.apool = APool() if apool else None
        self.tglobal = None
        if tglobal:
            self.tglobal = nn.Linear(64, self.tnet.d2[0].out_channels)
            nn.init.zeros_(self.tglobal.weight)
            nn.init.zeros_(self.tglobal.bias)

    def local_transmission(self, x_lf, z=None):
        bias2 = self.tglobal(z) if self.tglobal is not None else None
        return T0 + (1.0 - T0) * torch.sigmoid(self.tnet(x_lf, bias2))

    def forward(self, x_lf):
        z = self.anet.features(x_lf)
        a, g = self.anet.heads(z)
        t = gated(self.local_transmission(x_lf, z), g)
        if self.apool is not None:
            a = self.apool(x_lf, t, a)
        return t, a


def veil_input(i_s, f):
    """The veil networks' input from the rain-free image: x_lf = [I_lo, LF] with
    I_lo = down_f(I_s) and LF the residue-guided bank."""
    i_lo = downsample(i_s, f)
    return torch.cat([i_lo, guided_bank(downsample(residue(i_s), f), i_lo)], 1)


def invert(i_s, t, a):
    """J₁ = clamp((I_s − (1 − T)·A) / max(T, t0), 0, 1), A per image ([B, 3])."""
    return ((i_s - (1.0 - t) * a[:, :, None, None]) / t.clamp(min=T0)).clamp(0.0, 1.0)


def transmission_floor(i_lo, a):
    """The smallest T at which each block keeps J₁ ≥ 0 in every channel, 1 − min_c I_lo,c / A_c
    (I = T·J + (1 − T)·A with J ≥ 0), as src/engine/cpu/full.rs `transmission_floor`."""
    ratio = i_lo / a[:, :, None, None].clamp(min=1e-3)
    return (1.0 - ratio.amin(1, keepdim=True)).clamp(0.0, 1.0)


def floored(t_lo, i_s, a, f):
    """T_lo raised to `transmission_floor` of the working image down_f(I_s) (FullModelV2)."""
    return torch.maximum(t_lo, transmission_floor(downsample(i_s, f), a))


def gated(t_local, g):
    """T = 1 − g·(1 − T_local): the frame's veil gate g ([B, 1]) applied to T_local."""
    return 1.0 - g[:, :, None, None] * (1.0 - t_local)


class Stage2(nn.Module):
    """Depth-guided refinement G(J, D): input [J1_lo, D_lo] (4 ch), output a residual ΔJ_lo."""

    def __init__(self):
        super().__init__()
        self.g = UNet(4, 3, c0=12, c1=24, c2=32)
        nn.init.zeros_(self.g.out.weight)
        nn.init.zeros_(self.g.out.bias)

    def forward(self, x):
        return self.g(x)


class Discriminator(nn.Module):
    """PatchGAN on full-resolution images with a second head that predicts depth (at 1/8)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 4, 2, 1), act(),
            nn.Conv2d(16, 32, 4, 2, 1), act(),
            nn.Conv2d(32, 64, 4, 2, 1), act(),
            conv(64, 64), act(),
        )
        self.adv = conv(64, 1)
        self.depth = conv(64, 1)

    def forward(self, x):
        y = self.body(x)
        return self.adv(y), torch.sigmoid(self.depth(y))


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


class FullModelV2(nn.Module):
    """The `full` pipeline with the full-resolution streak network (src/nets/full.rs):

        R = StreakNet(I);  I_s = clamp(I − R, 0, 1)
        T_lo, A = Veil([down_f(I_s), bank(down_f(res(I_s)), down_f(I_s))]);  T_lo ← 1 − k(1 − T_lo)
        T_lo ← max(T_lo, 1 − min_c down_f(I_s)_c / A_c)   (the floor: no block's J1 below zero)
        J1 = clamp((I_s − (1 − T)A) / max(T, t0), 0, 1),  T = up_f(T_lo)
        J = clamp(J1 + up_f(Stage2([down_f(J1), −ln max(T_lo, t0)])), 0, 1)
    """

    def __init__(self, size="fast", apool=False, tglobal=False):
        super().__init__()
        from .streak import StreakNet
        self.streak = StreakNet(size)
        self.veil = Veil(apool, tglobal)
        self.stage2 = Stage2()

    def forward(self, img, f, k=None, i_s=None):
        """`i_s`: the streak network's output if already computed (e.g. frozen, in no_grad)."""
        from .streak import remove_rain
        r = None
        if i_s is None:
            i_s, r = remove_rain(self.streak, img)
        t_lo, a = self.veil(veil_input(i_s, f))
        if k is not None:
            k = torch.as_tensor(k, dtype=t_lo.dtype, device=t_lo.device).reshape(-1, 1)
            t_lo = gated(t_lo, k.expand(t_lo.shape[0], 1))
        t_net = t_lo
        t_lo = floored(t_lo, i_s, a, f)
        t = upsample(t_lo, f)
        j1 = invert(i_s, t, a)
        j, d_lo = self.refine(j1, t_lo, f)
        return {"j": j, "j1": j1, "i_s": i_s, "r": r, "t": t, "a": a, "t_lo": t_lo, "d_lo": d_lo,
                "t_net": upsample(t_net, f)}

    def refine(self, j1, t_lo, f):
        """Stage 2: (J, D_lo) with D_lo = −ln max(T_lo, t0) and J = clamp(J₁ + up_f(G(…)))."""
        d_lo = -torch.log(t_lo.clamp(min=T0))
        dj = self.stage2(torch.cat([downsample(j1, f), d_lo], 1))
        return (j1 + upsample(dj, f)).clamp(0.0, 1.0), d_lo
