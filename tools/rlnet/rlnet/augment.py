"""Training augmentation: random crop and flip, and AugMix, on batches of float images in [0,1].

AugMix follows Hendrycks et al. 2020 as RLNet's ``dataset/augmix.py`` uses it (its defaults:
mixture width 3, depth 1..3 chosen per chain, severity 3, Dirichlet(1,1,1) chain weights, a
Beta(1,1) skip mix) over the nine operations of its ``augmentations`` list (autocontrast,
equalize, posterize, rotate, solarize, shear x/y, translate x/y). The operations are written on
tensors here rather than with PIL (no PIL dependency, batched): the same parameter ranges, images
quantized to 8 bits after every operation as PIL's uint8 images are, bilinear resampling and zero
fill for the geometric ones. Each image draws its own operations and parameters.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F

#: AugMix settings RLNet uses (``dataset/augmix.py``).
MIXTURE_WIDTH = 3
MAX_DEPTH = 3
SEVERITY = 3


def crop_flip(x: torch.Tensor, pad: int, hflip: bool, g: Optional[torch.Generator] = None) -> torch.Tensor:
    """RandomCrop(size, padding=pad) with zero padding, then RandomHorizontalFlip if ``hflip``."""
    n, _, h, w = x.shape
    if pad:
        xp = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
        rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * pad)
        x = torch.gather(xp, 2, rows)
        cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, x.shape[1], h, w)
        x = torch.gather(x, 3, cols)
    if hflip:
        flip = torch.rand(n, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.clamp(0, 1) * 255) / 255


def _level(n: int, g: Optional[torch.Generator]) -> torch.Tensor:
    # sample_level: uniform in [0.1, severity)
    return 0.1 + (SEVERITY - 0.1) * torch.rand(n, generator=g)


def _sign(n: int, g: Optional[torch.Generator]) -> torch.Tensor:
    return torch.where(torch.rand(n, generator=g) > 0.5, -1.0, 1.0)


def _affine(x: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
    """Resamples ``x`` so that output pixel (u, v) reads input ``mats @ (u, v, 1)``, in pixel
    coordinates (x right, y down, pixel centres at +0.5), bilinear, zero outside."""
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    ones = torch.ones_like(xs)
    pts = torch.stack([xs, ys, ones], -1).reshape(1, -1, 3)  # [1,HW,3]
    src = pts @ mats.transpose(1, 2)  # [N,HW,2]
    grid = torch.stack([2 * src[..., 0] / w - 1, 2 * src[..., 1] / h - 1], -1).reshape(n, h, w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _autocontrast(x, g):
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-12), x)


def _equalize(x, g):
    # PIL's per-channel histogram equalization on 256 levels.
    n, c, h, w = x.shape
    v = torch.round(x * 255).to(torch.int64).reshape(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.int64).scatter_add_(1, v, torch.ones_like(v))
    idx = torch.arange(256).expand(n * c, 256)
    last = torch.where(hist > 0, idx, torch.full_like(idx, -1)).amax(1, keepdim=True)
    step = (hist.sum(1, keepdim=True) - hist.gather(1, last)) // 255
    before = torch.cumsum(hist, 1) - hist
    lut = (step // 2 + before) // step.clamp_min(1)
    lut = torch.where(step > 0, lut.clamp(0, 255), idx)
    return (lut.gather(1, v).reshape(n, c, h, w).to(x.dtype)) / 255


def _posterize(x, g):
    bits = 4 - (_level(x.shape[0], g) * 4 / 10).floor()
    keep = (2.0 ** (8 - bits))[:, None, None, None]
    return torch.floor(torch.round(x * 255) / keep) * keep / 255


def _solarize(x, g):
    thr = 256 - (_level(x.shape[0], g) * 256 / 10).floor()
    v = torch.round(x * 255)
    return torch.where(v >= thr[:, None, None, None], 255 - v, v) / 255


def _rotate(x, g):
    n, _, h, w = x.shape
    deg = (_level(n, g) * 30 / 10).floor() * _sign(n, g)
    t = deg * math.pi / 180
    cx, cy = w / 2, h / 2
    cos, sin = torch.cos(t), torch.sin(t)
    # Output (u,v) reads the input rotated back about the centre.
    m = torch.zeros(n, 2, 3)
    m[:, 0, 0], m[:, 0, 1] = cos, sin
    m[:, 1, 0], m[:, 1, 1] = -sin, cos
    m[:, 0, 2] = cx - cos * cx - sin * cy
    m[:, 1, 2] = cy + sin * cx - cos * cy
    return _affine(x, m)


def _shear(axis: int) -> Callable:
    def op(x, g):
        n = x.shape[0]
        s = _level(n, g) * 0.3 / 10 * _sign(n, g)
        m = torch.zeros(n, 2, 3)
        m[:, 0, 0] = m[:, 1, 1] = 1
        if axis == 0:
            m[:, 0, 1] = s  # x_in = x + s*y
        else:
            m[:, 1, 0] = s  # y_in = s*x + y
        return _affine(x, m)

    return op


def _translate(axis: int) -> Callable:
    def op(x, g):
        n, _, h, w = x.shape
        size = w if axis == 0 else h
        d = (_level(n, g) * (size / 3) / 10).floor() * _sign(n, g)
        m = torch.zeros(n, 2, 3)
        m[:, 0, 0] = m[:, 1, 1] = 1
        m[:, axis, 2] = d
        return _affine(x, m)

    return op


#: RLNet's ``augmentations`` list (the nine operations AugMix mixes).
OPS: List[Callable] = [
    _autocontrast,
    _equalize,
    _posterize,
    _rotate,
    _solarize,
    _shear(0),
    _shear(1),
    _translate(0),
    _translate(1),
]


def augmix(x: torch.Tensor, g: Optional[torch.Generator] = None) -> torch.Tensor:
    """AugMix of a batch of images in [0,1]: ``(1-m) x + m * sum_i w_i chain_i(x)``."""
    n = x.shape[0]
    # Dirichlet(1,...,1) weights are normalized Exp(1) draws; Beta(1,1) is Uniform(0,1).
    ws = -torch.log(torch.rand(n, MIXTURE_WIDTH, generator=g).clamp_min(1e-12))
    ws = ws / ws.sum(1, keepdim=True)
    m = torch.rand(n, generator=g)
    mix = torch.zeros_like(x)
    for i in range(MIXTURE_WIDTH):
        img = x.clone()
        depth = torch.randint(1, MAX_DEPTH + 1, (n,), generator=g)
        for step in range(MAX_DEPTH):
            op = torch.randint(0, len(OPS), (n,), generator=g)
            for k, fn in enumerate(OPS):
                sel = ((depth > step) & (op == k)).nonzero().flatten()
                if sel.numel():
                    img[sel] = _quantize(fn(img[sel], g))
        mix += ws[:, i, None, None, None] * img
    return (1 - m)[:, None, None, None] * x + m[:, None, None, None] * mix
