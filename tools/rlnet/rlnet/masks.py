"""ReLU budgets: RLNet's per-site keep fractions, the initial random mask and the top-k mask.

RLNet (like SeNet) allocates the budget per ReLU site with a precomputed list of keep fractions
(its ``sensitivity_list.yaml``, one fraction per site in forward order, 17 for ResNet18). Site
``i`` keeps ``int(f_i * C*H*W)`` elements: stage 1 starts from a random mask with those
fractions (drawn per spatial position and repeated over channels) and, after every epoch, keeps
the elements where the teacher's and the student's post-ReLU features differed most over the
epoch. On a reduced-width network the same fractions give a budget reduced in proportion.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import torch

#: RLNet's ResNet18 lists (``sensitivity_list.yaml``; keys without ``_sensitivity``).
ALLOCATIONS: Dict[str, List[float]] = {
    "ResNet18_C10_relu82k": [0.01, 0.11, 0.14, 0.19, 0.21, 0.03, 0.03, 0.03, 0.03, 0.1, 0.14, 0.19, 0.34, 0.35, 0.76, 0.83, 0.85],
    "ResNet18_C10_relu150k": [0.02, 0.055, 0.062, 0.074, 0.081, 0.2, 0.28, 0.30, 0.32, 0.79, 0.96, 0.97, 1.0, 1.0, 1.0, 1.0, 1.0],
    "ResNet18_c100_relu82k": [0.01, 0.11, 0.14, 0.19, 0.21, 0.03, 0.03, 0.03, 0.03, 0.1, 0.14, 0.19, 0.34, 0.35, 0.76, 0.83, 0.85],
    "ResNet18_c100_relu50k": [0.02, 0.025, 0.03, 0.025, 0.025, 0.05, 0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 0.25, 0.5, 0.6, 0.6, 0.6],
    "ResNet18_c100_relu25k": [0.004, 0.01, 0.01, 0.01, 0.011, 0.027, 0.038, 0.04, 0.042, 0.102, 0.124, 0.126, 0.13, 0.28, 0.30, 0.30, 0.30],
    "ResNet18_c100_relu100k": [0.00967, 0.0313, 0.036, 0.04236, 0.0466, 0.12, 0.165, 0.172, 0.188, 0.45555, 0.5505, 0.56, 0.583, 1.0, 1.0, 1.0, 1.0],
    "ResNet18_c100_relu120k": [0.012, 0.040, 0.046, 0.055, 0.060, 0.155, 0.214, 0.223, 0.244, 0.59, 0.714, 0.726, 0.756, 1.0, 1.0, 1.0, 1.0],
}


def fractions(name: Optional[str] = None, explicit: Optional[str] = None, scale: float = 1.0) -> List[float]:
    """Per-site fractions from an allocation ``name`` or an explicit comma list, times ``scale``
    (capped at 1, as RLNet's larger lists cap sites at 1.0)."""
    if (name is None) == (explicit is None):
        raise ValueError("give exactly one of an allocation name and an explicit fraction list")
    if name is not None:
        key = name[: -len("_sensitivity")] if name.endswith("_sensitivity") else name
        if key not in ALLOCATIONS:
            raise ValueError(f"unknown allocation `{name}` (known: {', '.join(ALLOCATIONS)})")
        base = ALLOCATIONS[key]
    else:
        try:
            base = [float(v) for v in explicit.split(",")]
        except ValueError:
            raise ValueError(f"--fractions must be comma-separated numbers, got `{explicit}`") from None
    bad = [f for f in base if not (0.0 <= f <= 1.0)]
    if bad or scale < 0:
        raise ValueError(f"keep fractions must lie in [0,1] and the scale be >= 0, found {bad or scale}")
    return [min(1.0, f * scale) for f in base]


def kept_per_site(fracs: Sequence[float], shapes: Sequence[Sequence[int]]) -> List[int]:
    """``int(f * C*H*W)`` per site (RLNet's count)."""
    if len(fracs) != len(shapes):
        raise ValueError(f"{len(fracs)} keep fractions for a network with {len(shapes)} ReLU sites")
    return [int(f * math.prod(s)) for f, s in zip(fracs, shapes)]


def initial(fracs: Sequence[float], shapes: Sequence[Sequence[int]], g: Optional[torch.Generator] = None) -> List[torch.Tensor]:
    """RLNet's stage-1 start: per spatial position keep with probability f, same for every channel."""
    out = []
    for f, (c, h, w) in zip(fracs, shapes, strict=True):
        m = (torch.rand(h, w, generator=g) > (1 - f)).to(torch.float32)
        out.append(m.expand(c, h, w).contiguous())
    return out


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """A 0/1 float mask keeping exactly ``k`` largest scores (ties broken by position).

    RLNet's ``topkmask`` keeps the scores strictly above the k-th largest, i.e. k-1 elements
    (fewer on ties); exactly k keeps the budget the allocation states."""
    flat = scores.flatten()
    m = torch.zeros_like(flat, dtype=torch.float32)
    if k > 0:
        m[torch.topk(flat, k, sorted=False).indices] = 1.0
    return m.reshape(scores.shape)


def to_checkpoint(masks: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Masks as RLNet saves them in ``mask_epoch``: int64 0/1 ``[C,H,W]`` tensors."""
    return [m.detach().cpu().round().to(torch.int64).contiguous() for m in masks]
