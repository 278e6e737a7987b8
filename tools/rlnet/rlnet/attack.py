"""L-infinity PGD as RLNet's ``helper/attack.py`` runs it.

Random start uniform in the eps-ball (clamped to [0,1]), ``steps`` signed-gradient ascent steps
of size ``alpha``, projection onto the ball and [0,1] after each; the model is put in eval mode
with its parameters frozen while the attack runs (its ``ctx_noparamgrad_and_eval``). The loss is
cross-entropy summed over the batch, or, for RSLAD, the KD loss against the teacher's logits.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[None]:
    """Eval mode and no parameter gradients inside; the previous state restored after."""
    modes = {m: m.training for m in model.modules()}
    grads = {p: p.requires_grad for p in model.parameters()}
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for m, t in modes.items():
            m.training = t
        for p, r in grads.items():
            p.requires_grad_(r)


def ce_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """RLNet's default attack loss: ``CrossEntropyLoss(reduction="sum")``."""
    return F.cross_entropy(logits, labels, reduction="sum")


def pgd(
    forward: Callable[[torch.Tensor], torch.Tensor],
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    eps: float = 8 / 255,
    alpha: float = 2 / 255,
    steps: int = 7,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = ce_sum,
    random_start: bool = True,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Adversarial images for ``x`` (pixels in [0,1]). ``forward(x01)`` returns logits (it
    normalizes and picks the masks and BN path); ``target`` is labels or teacher logits."""
    if steps <= 0 or eps <= 0:
        return x.detach().clone()
    with frozen_eval(model):
        x_adv = x.detach().clone()
        if random_start:
            noise = torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1
            x_adv = (x_adv + eps * noise).clamp(0, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            grad = torch.autograd.grad(loss(forward(x_adv), target), x_adv)[0]
            with torch.no_grad():
                x_adv = x_adv + alpha * grad.sign()
                x_adv = torch.max(torch.min(x_adv, x + eps), x - eps).clamp(0, 1)
    return x_adv.detach()
