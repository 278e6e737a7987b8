"""Random masks, batch-norm statistics, weights and SNL alphas for the small networks that the
parity fixtures (``make_fixtures.py``) and the exporter tests (``test_export.py``) are made of.

Every function draws from the ``torch.Generator`` it is given, in a fixed order, so a seed gives
the same network on every run (the committed fixtures depend on it).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn

import pibench_models as M


def seeded(seed: int) -> torch.Generator:
    """A generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def random_masks(
    shapes: Sequence[tuple],
    g: torch.Generator,
    p: float = 0.3,
    ones_site: Optional[int] = None,
    zeros_site: Optional[int] = None,
) -> List[torch.Tensor]:
    """One 0/1 mask per shape, each element kept with probability ``p``; ``ones_site`` keeps all
    its elements and ``zeros_site`` none (no draw is made for either). int64, like RLNet's."""
    masks = []
    for i, s in enumerate(shapes):
        if i == ones_site:
            m = torch.ones(s, dtype=torch.int64)
        elif i == zeros_site:
            m = torch.zeros(s, dtype=torch.int64)
        else:
            m = (torch.rand(s, generator=g) < p).to(torch.int64)
        masks.append(m)
    return masks


def set_alphas(model: nn.Module, masks: Sequence[torch.Tensor]) -> None:
    """SNL's ``LearnableAlpha`` parameters, in module order, set to the 0/1 ``masks`` (as SNL
    stores them after binarizing: float)."""
    alphas = [m for m in model.modules() if isinstance(m, M.LearnableAlpha)]
    assert len(alphas) == len(masks)
    with torch.no_grad():
        for a, m in zip(alphas, masks, strict=True):
            a.alphas.copy_(m.to(torch.float32).reshape(a.alphas.shape))


def random_alphas(model: nn.Module, g: torch.Generator, p: float = 0.3) -> None:
    """SNL's alphas set to random 0/1 masks, each element kept with probability ``p``."""
    shapes = [tuple(m.alphas.shape) for m in model.modules() if isinstance(m, M.LearnableAlpha)]
    set_alphas(model, random_masks(shapes, g, p))


def random_weights(model: nn.Module, g: torch.Generator) -> None:
    """He-normal convolutions and a random classifier."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features**0.5)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


def random_bn(model: nn.Module, g: torch.Generator) -> nn.Module:
    """Every batch norm's running statistics and affine parameters drawn at random (no data),
    and the classifier's bias; returns the model in eval mode."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
            elif isinstance(m, nn.Linear):
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model.eval()


def calibrate_bn(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    bn_filter: Callable[[str], bool],
    g: torch.Generator,
) -> None:
    """Sets the running statistics of the selected BNs to the batch statistics of ``x`` (so
    activations stay well scaled through 17 layers), then perturbs them and draws random
    affine parameters, so that folding and the choice of BN path really matter."""
    bns = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and bn_filter(n)]
    for _, m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch gives exactly its statistics
    model.train()
    with torch.no_grad():
        forward(x)
    model.eval()
    with torch.no_grad():
        for _, m in bns:
            c = m.num_features
            std = m.running_var.sqrt()
            m.running_mean += 0.2 * std * torch.randn(c, generator=g)
            m.running_var *= 0.6 + 0.8 * torch.rand(c, generator=g)
            m.weight.copy_(0.6 + 0.8 * torch.rand(c, generator=g))
            m.bias.copy_(0.2 * torch.randn(c, generator=g))
            m.momentum = 0.1
