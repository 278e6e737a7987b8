"""The distillation losses RLNet uses (``distiller_zoo``).

- ``kd``: Hinton's KL distillation with temperature T, ``KL(p_t || p_s) * T^2 / batch``; RSLAD
  (robust soft-label adversarial distillation) is this loss on adversarial inputs against the
  teacher's *clean* soft labels.
- ``attention``: attention transfer (Zagoruyko & Komodakis): per layer, the batch-mean squared
  difference of the L2-normalized spatial maps ``mean_c(f^2)``, summed over the given layers.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, t: float) -> torch.Tensor:
    """``KL(softmax(t_l/T) || softmax(s_l/T)) * T^2``, summed over classes, averaged over the batch."""
    log_ps = F.log_softmax(student_logits / t, dim=1)
    pt = F.softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_ps, pt, reduction="sum") * (t * t) / student_logits.shape[0]


def _attention_map(f: torch.Tensor) -> torch.Tensor:
    return F.normalize(f.pow(2).mean(1).flatten(1))


def attention(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
    """Attention-transfer loss summed over layer pairs (maps pooled to the smaller size)."""
    total = student[0].new_zeros(())
    for fs, ft in zip(student, teacher, strict=True):
        hs, ht = fs.shape[2], ft.shape[2]
        if hs > ht:
            fs = F.adaptive_avg_pool2d(fs, (ht, ht))
        elif ht > hs:
            ft = F.adaptive_avg_pool2d(ft, (hs, hs))
        total = total + (_attention_map(fs) - _attention_map(ft)).pow(2).mean()
    return total
