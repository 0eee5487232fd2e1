"""Losses. No pretrained VGG is reachable, so the perceptual term is a substitute: 1 − SSIM on
luma (11×11 Gaussian, σ = 1.5, as the metric) at two scales plus an L1 loss on image gradients,
which penalises what VGG features mostly catch here (lost edges, left-over streak edges)."""

import torch
import torch.nn.functional as F

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def luma(x):
    return (x * _LUMA.to(x)).sum(1, keepdim=True)


def _gauss(x, sigma=1.5, size=11):
    """Depthwise Gaussian blur of every channel of [B,C,H,W] (zero padding)."""
    c = x.shape[1]
    g = torch.exp(-((torch.arange(size, dtype=x.dtype, device=x.device) - size // 2) ** 2)
                  / (2 * sigma * sigma))
    g = g / g.sum()
    x = F.conv2d(x, g.view(1, 1, 1, size).repeat(c, 1, 1, 1), padding=(0, size // 2), groups=c)
    return F.conv2d(x, g.view(1, 1, size, 1).repeat(c, 1, 1, 1), padding=(size // 2, 0), groups=c)


def ssim(x, y, c1=0.01 ** 2, c2=0.03 ** 2):
    """Mean SSIM of one-channel images in [0, 1] (the five local statistics in one pass)."""
    x, y = x.contiguous(), y.contiguous()
    m = _gauss(torch.cat([x, y, x * x, y * y, x * y], 1))
    mx, my = m[:, 0:1], m[:, 1:2]
    vx = m[:, 2:3] - mx * mx
    vy = m[:, 3:4] - my * my
    cxy = m[:, 4:5] - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean()


def ssim_box(x, y, r=3, c1=0.01 ** 2, c2=0.03 ** 2):
    """Mean SSIM of one-channel images with a (2r+1)² box window: the training loss's cheap
    stand-in for [`ssim`] (five box means by average pooling instead of 11-tap Gaussians)."""
    m = F.avg_pool2d(torch.cat([x, y, x * x, y * y, x * y], 1), 2 * r + 1, stride=1,
                     padding=r, count_include_pad=False)
    mx, my = m[:, 0:1], m[:, 1:2]
    vx, vy, cxy = m[:, 2:3] - mx * mx, m[:, 3:4] - my * my, m[:, 4:5] - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean()


def gradient_l1(x, y):
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return (dx(x) - dx(y)).abs().mean() + (dy(x) - dy(y)).abs().mean()


def perceptual_fast(x, y):
    """[`perceptual`] with box-window SSIM (`ssim_box`): the streak network's loss."""
    lx, ly = luma(x), luma(y)
    s = 1 - ssim_box(lx, ly)
    s = s + 1 - ssim_box(F.avg_pool2d(lx, 2), F.avg_pool2d(ly, 2))
    return 0.5 * s + gradient_l1(x, y)


def perceptual(x, y):
    """Substitute perceptual loss: two-scale (1 − SSIM_Y) + gradient L1."""
    lx, ly = luma(x), luma(y)
    s = 1 - ssim(lx, ly)
    s = s + 1 - ssim(F.avg_pool2d(lx, 2), F.avg_pool2d(ly, 2))
    return 0.5 * s + gradient_l1(x, y)


def psnr(x, y):
    mse = ((x - y) ** 2).mean().clamp(min=1e-10)
    return float(10 * torch.log10(1 / mse))
