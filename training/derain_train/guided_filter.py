"""Box filter, guided filter and the residue-guided bank, as in src/physics/guided_filter.rs.

Border policy (written down once, in the Rust file): a window is the mean over its in-image
part, i.e. box sums normalised by N = box(1). The bank is ordered [radius][eps][channel], like
`guided_bank` in Rust.
"""

import torch
import torch.nn.functional as F

BANK_RADII = (2, 4, 8, 16, 32)
BANK_EPS = (1e-3, 1e-4)


def _window_sum_1d(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Sum over [i-r, i+r] ∩ [0, n) along `dim`, by a cumulative sum (O(1) per element)."""
    n = x.shape[dim]
    c = torch.cumsum(x, dim=dim)
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    c = torch.cat([zero, c], dim=dim)  # c[k] = sum of x[0..k)
    idx = torch.arange(n, device=x.device)
    hi = (idx + r + 1).clamp(max=n)
    lo = (idx - r).clamp(min=0)
    return c.index_select(dim, hi) - c.index_select(dim, lo)


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Window mean of radius `r` over the last two dims, border = mean over the in-image part."""
    h, w = x.shape[-2:]
    ones = torch.ones((h, w), dtype=x.dtype, device=x.device)
    n = _window_sum_1d(_window_sum_1d(ones, r, 0), r, 1)
    s = _window_sum_1d(_window_sum_1d(x, r, x.dim() - 2), r, x.dim() - 1)
    return s / n


def residue(img: torch.Tensor) -> torch.Tensor:
    """max(R,G,B) − min(R,G,B): [B,3,H,W] → [B,1,H,W]."""
    return img.amax(dim=1, keepdim=True) - img.amin(dim=1, keepdim=True)


def guided_bank(guide: torch.Tensor, inp: torch.Tensor, radii=BANK_RADII, eps=BANK_EPS):
    """Low-frequency layers of `inp` ([B,C,H,W]) guided by `guide` ([B,1,H,W]).

    Returns [B, len(radii)·len(eps)·C, H, W] ordered [radius][eps][channel]; the guide
    statistics are shared across channels and eps values.
    """
    out = []
    for r in radii:
        mi = box_mean(guide, r)
        var = box_mean(guide * guide, r) - mi * mi
        mp = box_mean(inp, r)
        cov = box_mean(guide * inp, r) - mi * mp
        for e in eps:
            a = cov / (var + e)
            b = mp - a * mi
            out.append(box_mean(a, r) * guide + box_mean(b, r))
    return torch.cat(out, dim=1)


def downsample(x: torch.Tensor, f: int) -> torch.Tensor:
    """Box average by an integer factor (sizes divisible by f), like Rust `downsample`."""
    return x if f == 1 else F.avg_pool2d(x, f)


def upsample(x: torch.Tensor, f: int) -> torch.Tensor:
    """Bilinear ×f with half-pixel centres, like Rust `Upsampler` (align_corners=False)."""
    if f == 1:
        return x
    return F.interpolate(x, scale_factor=f, mode="bilinear", align_corners=False)
