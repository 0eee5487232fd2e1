"""The full-resolution streak network of `full` mode (`streak.onnx`), in two sizes of one
architecture.

    x  = [I, res(I)]                       4 ch, full resolution (res = max − min of RGB: the
                                           rain-free guide of the physics stage)
    u  = pixel_unshuffle(x, 2)             16 ch at 1/2 (every input pixel kept)
    U-Net over u: levels 1/2, 1/4, 1/8 (stride-2 3×3 convolutions), dilated 3×3
    convolutions at 1/8 (dilations 2, 4[, 8]) for a receptive field of ≈150–250 px, so whole
    60-px streaks and their surroundings are seen; nearest ×2 upsampling with additive skips
    R  = pixel_shuffle(conv(·), 2)         3 ch at full resolution: the visible rain layer
    I_s = I − R                            the rain-free, still veiled image T·J + (1 − T)·A

The veil (T, A) is then estimated on I_s at the working resolution and inverted
(src/nets/full.rs); R relates to the model's streak layer by R = T·S.

Sizes (`SIZES`): `fast` for real time on the CPU, `quality` for real time on a GPU. H and W
must be multiples of `MULTIPLE` (the Rust side pads by edge replication).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .guided_filter import residue

FACTOR = 2          # pixel (un)shuffle factor
MULTIPLE = 16       # FACTOR · 2 · 2 · 2: H, W must be multiples of this
SLOPE = 0.1         # LeakyReLU slope of every activation

# name: (c0, c1, c2, blocks at 1/2, blocks at 1/4, dilations at 1/8)
SIZES = {
    "fast": (16, 24, 32, 1, 1, (2, 4)),
    "quality": (32, 48, 64, 2, 2, (2, 4, 8, 2)),
}


def act():
    return nn.LeakyReLU(SLOPE)


def conv(cin, cout, k=3, stride=1, dilation=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation)


def stack(c, n, dilations=None):
    dil = dilations or [1] * n
    return nn.Sequential(*[m for d in dil for m in (conv(c, c, dilation=d), act())])


class StreakNet(nn.Module):
    """Full-resolution rain-layer estimator (see the module doc). Input [B,3,H,W] RGB in
    [0,1]; output R [B,3,H,W]."""

    def __init__(self, size="fast"):
        super().__init__()
        c0, c1, c2, n0, n1, dil = SIZES[size]
        self.size_name = size
        cin = 4 * FACTOR * FACTOR
        self.head = nn.Sequential(conv(cin, c0), act())
        self.enc0 = stack(c0, n0)
        self.down1 = nn.Sequential(conv(c0, c1, stride=2), act())
        self.enc1 = stack(c1, n1)
        self.down2 = nn.Sequential(conv(c1, c2, stride=2), act())
        self.mid = stack(c2, len(dil), list(dil))
        self.lat1 = conv(c2, c1, 1)
        self.dec1 = stack(c1, 1)
        self.lat0 = conv(c1, c0, 1)
        self.dec0 = stack(c0, 1)
        self.out = conv(c0, 3 * FACTOR * FACTOR)
        # Start from "no rain": R = 0.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, img):
        x = torch.cat([img, residue(img)], 1)
        u = F.pixel_unshuffle(x, FACTOR)
        e0 = self.enc0(self.head(u))
        e1 = self.enc1(self.down1(e0))
        m = self.mid(self.down2(e1))
        d1 = self.dec1(F.interpolate(self.lat1(m), scale_factor=2.0, mode="nearest") + e1)
        d0 = self.dec0(F.interpolate(self.lat0(d1), scale_factor=2.0, mode="nearest") + e0)
        return F.pixel_shuffle(self.out(d0), FACTOR)


def macs_per_pixel(size):
    """Multiply-accumulates per full-resolution pixel (convolutions only)."""
    net = StreakNet(size)
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total += out.numel() * mod.in_channels * k // mod.groups

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(torch.zeros(1, 3, 64, 64))
    for h in hs:
        h.remove()
    return total / (64 * 64)


def pad_to_multiple(img, m=MULTIPLE):
    """Edge-replicates the bottom and right of [B,C,H,W] up to multiples of `m` (as Rust does)."""
    h, w = img.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph == 0 and pw == 0:
        return img
    return F.pad(img, (0, pw, 0, ph), mode="replicate")


def remove_rain(net, img):
    """I_s = I − R on any size (padded to `MULTIPLE`, cropped back), clamped to [0, 1]."""
    h, w = img.shape[-2:]
    r = net(pad_to_multiple(img))[..., :h, :w]
    return (img - r).clamp(0, 1), r
