"""PyTorch definitions of the checkpoint layouts pibench's exporter understands.

Each class mirrors the *computation and state-dict key names* of the original code, written
from reading it (no code copied):

- ``RLNetResNet``: RLNet's ``CustomResNet18`` (``sreetamasarkar/rlnet``,
  ``models/customresnet.py``, ``models/customresnet_3BN.py``; BN in ``models/utils/DualBN.py``).
  Stem conv+BN followed by a masked ReLU site; blocks add a skip connection **only** when they
  have a projection shortcut (``conv_sc``/``bn_sc``); masked ReLU ``relu(x*m) + x*(1-m)``.
- ``RLNetTeacherResNet``: RLNet's teacher ``ResNet18`` (``models/resnetv2.py``): textbook skips
  (``shortcut.0``/``shortcut.1``), dual BN in the stem and blocks with ``use2BN`` but a single BN
  in every projection shortcut.
- ``RLNetWideResNet``: RLNet's ``CustomWideResNet`` (``models/custom_wrn.py``): pre-activation
  WRN with a masked ReLU after every BN, including the final one, then ``avg_pool2d(out, 8)``.
- ``SNLResNet``: SNL's ``ResNet_IN`` with ``BasicBlock_IN`` (``NYU-DICE-Lab/
  selective_network_linearization``, ``archs_unstructured/cifar_resnet.py``): no ReLU after the
  stem, textbook skip connections (``shortcut.0``/``shortcut.1``), ``LearnableAlpha`` masks
  ``relu(x)*a + (1-a)*x`` after ``bn1`` and after the residual add.
- ``SNLWideResNet``: SNL's ``WideResNet`` (same file): pre-activation blocks with an alpha after
  ``bn1`` and ``bn2``, and **no** ReLU after the final BN.
- ``TorchvisionResNet``: a torchvision-style ResNet (``conv1``/``bn1``/``layerN.M``/
  ``downsample``/``fc``), CIFAR stem (3x3, no max-pool) or ImageNet stem (7x7/2 + max-pool),
  with optional per-site masks.

Masks of the RLNet and torchvision models are not module state (RLNet passes them to
``forward`` as a list, in forward order); SNL's are ``alphas`` parameters.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Which batch-norm index RLNet's ``forward(..., idx2BN)`` uses for each path we export.
#: DualBN2d: 0 -> BN_c, 1 -> BN_a. TripleBN2d: 0 -> BN_c, 1 -> BN_r, 2 -> BN_a.
BN_INDEX = {
    "single": {"clean": None, "adv": None},
    "dual": {"clean": 0, "adv": 1},
    "triple": {"clean": 0, "adv": 2},
}


class DualBN2d(nn.Module):
    """RLNet's dual batch norm: ``BN_c`` (clean, idx 0) and ``BN_a`` (adversarial, idx 1)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.BN_c = nn.BatchNorm2d(num_features)
        self.BN_a = nn.BatchNorm2d(num_features)

    def forward(self, x: torch.Tensor, idx: int) -> torch.Tensor:
        if idx == 0:
            return self.BN_c(x)
        if idx == 1:
            return self.BN_a(x)
        raise ValueError(f"DualBN2d index must be 0 or 1, got {idx}")


class TripleBN2d(nn.Module):
    """RLNet's 3-BN variant: ``BN_c`` (idx 0), ``BN_r`` (idx 1), ``BN_a`` (idx 2)."""

    def __init__(self, num_features: int):
        super().__init__()
        self.BN_c = nn.BatchNorm2d(num_features)
        self.BN_r = nn.BatchNorm2d(num_features)
        self.BN_a = nn.BatchNorm2d(num_features)

    def forward(self, x: torch.Tensor, idx: int) -> torch.Tensor:
        if idx not in (0, 1, 2):
            raise ValueError(f"TripleBN2d index must be 0, 1 or 2, got {idx}")
        return (self.BN_c, self.BN_r, self.BN_a)[idx](x)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "single":
        return nn.BatchNorm2d(channels)
    if kind == "dual":
        return DualBN2d(channels)
    if kind == "triple":
        return TripleBN2d(channels)
    raise ValueError(f"unknown batch-norm kind {kind!r}")


def _apply_norm(bn: nn.Module, x: torch.Tensor, idx: Optional[int]) -> torch.Tensor:
    return bn(x) if idx is None else bn(x, idx)


def rlnet_masked_relu(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RLNet's masked ReLU: ``relu(x*m) + x*(1-m)`` (the mask broadcasts over the batch)."""
    mask = mask.to(x.dtype)
    return F.relu(x * mask) + x * (1 - mask)


class _MaskFeed:
    """Hands out per-site masks in forward order, like RLNet's ``mask.pop(0)``.

    With ``record=True`` it also keeps every site's output in ``outputs`` (RLNet's ``features``
    list, which its training code uses for the mask search and attention transfer).
    """

    def __init__(self, masks: Optional[Sequence[torch.Tensor]], record: bool = False):
        self._masks = None if masks is None else list(masks)
        self._next = 0
        self.shapes: List[tuple] = []
        self.outputs: Optional[List[torch.Tensor]] = [] if record else None

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        out = self._relu(x)
        if self.outputs is not None:
            self.outputs.append(out)
        return out

    def _relu(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape[1:]))
        if self._masks is None:
            return F.relu(x)
        if self._next >= len(self._masks):
            raise ValueError(f"too few masks: site {self._next} has none")
        m = self._masks[self._next]
        self._next += 1
        if tuple(m.shape) != tuple(x.shape[1:]):
            raise ValueError(f"mask {self._next - 1} has shape {tuple(m.shape)}, activation {tuple(x.shape[1:])}")
        return rlnet_masked_relu(x, m)

    def finish(self, owner: nn.Module) -> None:
        owner.last_site_shapes = self.shapes
        if self._masks is not None and self._next != len(self._masks):
            raise ValueError(f"{len(self._masks)} masks for {self._next} ReLU sites")


# --------------------------------------------------------------------------------------------
# RLNet
# --------------------------------------------------------------------------------------------


class _RLNetBlockBody(nn.Module):
    """The residual branch both RLNet blocks share: ``conv1``/``bn1``, a masked ReLU,
    ``conv2``/``bn2``."""

    def __init__(self, in_planes: int, planes: int, stride: int, bn: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _norm(bn, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = _norm(bn, planes)

    def body(self, x: torch.Tensor, feed: _MaskFeed, idx: Optional[int]) -> torch.Tensor:
        out = feed.relu(_apply_norm(self.bn1, self.conv1(x), idx))
        return _apply_norm(self.bn2, self.conv2(out), idx)


class RLNetBasicBlock(_RLNetBlockBody):
    """RLNet ``BasicBlock``: skip connection only through a projection (``conv_sc``/``bn_sc``)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, bn: str = "single"):
        super().__init__(in_planes, planes, stride, bn)
        self.mismatch = stride != 1 or in_planes != planes
        if self.mismatch:
            self.conv_sc = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
            self.bn_sc = _norm(bn, planes)

    def forward(self, x: torch.Tensor, feed: _MaskFeed, idx: Optional[int]) -> torch.Tensor:
        out = self.body(x, feed, idx)
        # The original adds nothing when there is no projection: no identity skip.
        if self.mismatch:
            out = out + _apply_norm(self.bn_sc, self.conv_sc(x), idx)
        return feed.relu(out)


def _add_stages(model: nn.Module, width: int, num_blocks, make_block) -> None:
    """Give ``model`` the four ResNet stages ``layer1``..``layer4`` (widths w, 2w, 4w, 8w, first
    strides 1, 2, 2, 2) of ``make_block(in_planes, planes, stride)``, named as every original
    names them, so that its checkpoints load unchanged."""
    in_planes = width
    for i, (n, stride) in enumerate(zip(num_blocks, (1, 2, 2, 2))):
        planes = width << i
        blocks = []
        for s in [stride] + [1] * (n - 1):
            blocks.append(make_block(in_planes, planes, s))
            in_planes = planes
        setattr(model, f"layer{i + 1}", nn.Sequential(*blocks))


class _ResNetTrunk(nn.Module):
    """The CIFAR ResNet trunk RLNet's student and teacher share: stem conv + BN + masked ReLU
    (an ImageNet stem with max-pool when ``imagenet_stem``), four stages of ``block``, average
    pool, linear. Parameter names are RLNet's own, so its checkpoints load unchanged."""

    block: type

    def __init__(self, num_blocks, num_classes, width, bn, imagenet_stem=False):
        super().__init__()
        self.bn_kind = bn
        w = width
        if imagenet_stem:
            self.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(3, w, 3, stride=1, padding=1, bias=False)
        self.bn1 = _norm(bn, w)
        _add_stages(self, w, num_blocks, lambda i, p, s: self.block(i, p, s, bn))
        self.linear = nn.Linear(8 * w, num_classes)

    def forward(self, x, masks: Optional[Sequence[torch.Tensor]] = None, path: str = "clean", feed=None):
        """``feed`` (a ``_MaskFeed``, e.g. one that records site outputs) replaces ``masks``."""
        idx = BN_INDEX[self.bn_kind][path]
        feed = _MaskFeed(masks) if feed is None else feed
        out = feed.relu(_apply_norm(self.bn1, self.conv1(x), idx))
        if hasattr(self, "maxpool") and x.shape[-1] == 224:  # the original's ImageNet test
            out = self.maxpool(out)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                out = block(out, feed, idx)
        feed.finish(self)
        out = F.adaptive_avg_pool2d(out, (1, 1)).flatten(1)
        return self.linear(out)


class RLNetResNet(_ResNetTrunk):
    """RLNet ``CustomResNet18``/``34`` (``use2BN``/``use3BN`` as ``bn='dual'``/``'triple'``).

    ``width`` is the stem width (64 in the original; smaller for test fixtures).
    ``forward(x, masks, path)`` takes one ``[C,H,W]`` 0/1 mask per ReLU site in forward order
    (17 for ResNet18) and ``path`` ``'clean'`` or ``'adv'``.
    """

    block = RLNetBasicBlock

    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes=10, width=64, bn="single"):
        super().__init__(num_blocks, num_classes, width, bn, imagenet_stem=num_classes == 1000)


class RLNetTeacherBlock(_RLNetBlockBody):
    """RLNet's teacher ``BasicBlock`` (``models/resnetv2.py``): textbook identity or projection
    skip (``shortcut.0`` conv, ``shortcut.1`` BN). With ``use2BN`` only ``bn1``/``bn2`` become
    ``DualBN2d``: the shortcut's BN stays a single ``BatchNorm2d`` shared by both paths."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, bn: str = "single"):
        super().__init__(in_planes, planes, stride, bn)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor, feed: _MaskFeed, idx: Optional[int]) -> torch.Tensor:
        return feed.relu(self.body(x, feed, idx) + self.shortcut(x))


class RLNetTeacherResNet(_ResNetTrunk):
    """RLNet's all-ReLU teacher ``ResNet18`` (``models/resnetv2.py``, ``use2BN`` as ``bn='dual'``).

    Same 17 ReLU sites as ``RLNetResNet`` (stem, then ``relu1``/``relu2`` of every block) but
    every block adds its skip. ``forward(x, masks, path, feed)`` as in ``RLNetResNet`` (the
    original takes no masks; they are accepted so one training loop drives both).
    """

    block = RLNetTeacherBlock

    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes=10, width=64, bn="single"):
        if bn == "triple":
            raise ValueError("RLNet's 3-BN teacher is another module (resnetv2_3BN); not modelled here")
        super().__init__(num_blocks, num_classes, width, bn)


class RLNetWideBlock(nn.Module):
    """RLNet's pre-activation WRN ``BasicBlock`` with masked ReLUs after ``bn1`` and ``bn2``."""

    def __init__(self, in_planes, out_planes, stride, bn="single"):
        super().__init__()
        self.bn1 = _norm(bn, in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _norm(bn, out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.equalInOut = in_planes == out_planes
        if not self.equalInOut:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x, feed: _MaskFeed, idx):
        if not self.equalInOut:
            # The shortcut reads the *activated* input in this branch.
            x = feed.relu(_apply_norm(self.bn1, x, idx))
            h = x
        else:
            h = feed.relu(_apply_norm(self.bn1, x, idx))
        out = feed.relu(_apply_norm(self.bn2, self.conv1(h), idx))
        out = self.conv2(out)
        return (x if self.equalInOut else self.convShortcut(x)) + out


class _BlockGroup(nn.Module):
    """Holds a group's blocks under ``.layer`` so keys read ``block1.layer.0...``."""

    def __init__(self, blocks):
        super().__init__()
        self.layer = nn.Sequential(*blocks)

    def forward(self, x):
        return self.layer(x)


class RLNetWideResNet(nn.Module):
    """RLNet ``CustomWideResNet`` (``Custom_wrn_22_8``): 19 ReLU sites for WRN-22-8.

    ``base`` is the stem width (16 in the original). ``forward(x, masks, path)``.
    """

    def __init__(self, depth=22, widen=8, num_classes=10, base=16, bn="single"):
        super().__init__()
        assert (depth - 4) % 6 == 0
        n = (depth - 4) // 6
        self.bn_kind = bn
        ch = [base, base * widen, 2 * base * widen, 4 * base * widen]
        self.conv1 = nn.Conv2d(3, ch[0], 3, stride=1, padding=1, bias=False)
        self.block1 = _BlockGroup(self._blocks(n, ch[0], ch[1], 1, bn))
        self.block2 = _BlockGroup(self._blocks(n, ch[1], ch[2], 2, bn))
        self.block3 = _BlockGroup(self._blocks(n, ch[2], ch[3], 2, bn))
        self.bn1 = _norm(bn, ch[3])
        self.fc = nn.Linear(ch[3], num_classes)
        self.nChannels = ch[3]

    @staticmethod
    def _blocks(n, cin, cout, stride, bn):
        return [RLNetWideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, bn) for i in range(n)]

    def forward(self, x, masks=None, path="clean"):
        idx = BN_INDEX[self.bn_kind][path]
        feed = _MaskFeed(masks)
        out = self.conv1(x)
        for group in (self.block1, self.block2, self.block3):
            for block in group.layer:
                out = block(out, feed, idx)
        out = feed.relu(_apply_norm(self.bn1, out, idx))
        feed.finish(self)
        out = F.avg_pool2d(out, 8)  # fixed 8x8 window in the original
        return self.fc(out.view(-1, self.nChannels))


# --------------------------------------------------------------------------------------------
# SNL
# --------------------------------------------------------------------------------------------


class LearnableAlpha(nn.Module):
    """SNL's per-element mask parameter ``alphas`` ``[1,C,H,W]``: ``relu(x)*a + (1-a)*x``."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.alphas = nn.Parameter(torch.ones(1, channels, size, size))

    def forward(self, x):
        a = self.alphas.expand_as(x)
        return F.relu(x) * a + (1 - a) * x


class SNLBasicBlock(nn.Module):
    """SNL ``BasicBlock_IN``: alpha after ``bn1`` and after the (always present) skip add."""

    def __init__(self, in_planes, planes, stride, size):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.alpha1 = LearnableAlpha(planes, size)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.alpha2 = LearnableAlpha(planes, size)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = self.alpha1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return self.alpha2(out)


class SNLResNet(nn.Module):
    """SNL ``resnet18_in``: no ReLU after the stem, 16 alpha sites for ResNet18.

    ``input_size`` is 32 (CIFAR) or 64 (Tiny-ImageNet), as SNL's ``args.dataset`` sets it.
    """

    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes=10, width=64, input_size=32):
        super().__init__()
        self.size = input_size
        self.last_dim = input_size // 8
        w = width
        self.conv1 = nn.Conv2d(3, w, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)

        def block(in_planes, planes, s):
            # The blocks' alphas are sized for the feature map they see.
            if s == 2:
                self.size //= 2
            return SNLBasicBlock(in_planes, planes, s, self.size)

        _add_stages(self, w, num_blocks, block)
        self.linear = nn.Linear(8 * w, num_classes)

    def forward(self, x):
        out = self.bn1(self.conv1(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, self.last_dim)
        return self.linear(out.view(out.size(0), -1))


class SNLWideBlock(nn.Module):
    """SNL ``WideBasicBlock``: pre-activation with ``alpha1`` after ``bn1``, ``alpha2`` after ``bn2``."""

    def __init__(self, in_planes, out_planes, stride, size):
        super().__init__()
        self.equalInOut = in_planes == out_planes
        self.bn1 = nn.BatchNorm2d(in_planes)
        # The alpha before a strided conv sees the un-downsampled map.
        self.alpha1 = LearnableAlpha(in_planes, 2 * size if (not self.equalInOut and stride != 1) else size)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.alpha2 = LearnableAlpha(out_planes, size)
        if not self.equalInOut:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x):
        if not self.equalInOut:
            x = self.alpha1(self.bn1(x))
            h = x
        else:
            h = self.alpha1(self.bn1(x))
        out = self.conv2(self.alpha2(self.bn2(self.conv1(h))))
        return (x if self.equalInOut else self.convShortcut(x)) + out


class SNLWideResNet(nn.Module):
    """SNL ``wide_resnet_22_8``: 18 alpha sites, no ReLU after the final BN."""

    def __init__(self, depth=22, widen=8, num_classes=10, base=16, input_size=32):
        super().__init__()
        n = (depth - 4) // 6
        ch = [base, base * widen, 2 * base * widen, 4 * base * widen]
        self.last_dim = input_size // 4
        size = input_size
        self.conv1 = nn.Conv2d(3, ch[0], 3, stride=1, padding=1, bias=False)
        self.block1 = _BlockGroup(self._blocks(n, ch[0], ch[1], 1, size))
        size //= 2
        self.block2 = _BlockGroup(self._blocks(n, ch[1], ch[2], 2, size))
        size //= 2
        self.block3 = _BlockGroup(self._blocks(n, ch[2], ch[3], 2, size))
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.fc = nn.Linear(ch[3], num_classes)
        self.nChannels = ch[3]

    @staticmethod
    def _blocks(n, cin, cout, stride, size):
        return [SNLWideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, size) for i in range(n)]

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.avg_pool2d(self.bn1(out), self.last_dim)
        return self.fc(out.view(-1, self.nChannels))


# --------------------------------------------------------------------------------------------
# torchvision-style
# --------------------------------------------------------------------------------------------


class TorchvisionBlock(nn.Module):
    """torchvision ``BasicBlock`` (``downsample.0``/``downsample.1`` projection), optional masks."""

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x, feed: _MaskFeed):
        out = feed.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + (x if self.downsample is None else self.downsample(x))
        return feed.relu(out)


class TorchvisionResNet(nn.Module):
    """torchvision-style ResNet18; ``imagenet_stem`` picks 7x7/2 conv + 3x3/2 max-pool.

    ``forward(x, masks=None)``: ``masks`` is an optional list of 17 ``[C,H,W]`` masks.
    """

    def __init__(self, num_blocks=(2, 2, 2, 2), num_classes=10, width=64, imagenet_stem=False):
        super().__init__()
        w = width
        self.imagenet_stem = imagenet_stem
        if imagenet_stem:
            self.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(3, w, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        _add_stages(self, w, num_blocks, TorchvisionBlock)
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x, masks=None):
        feed = _MaskFeed(masks)
        out = feed.relu(self.bn1(self.conv1(x)))
        if self.imagenet_stem:
            out = self.maxpool(out)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                out = block(out, feed)
        feed.finish(self)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


# --------------------------------------------------------------------------------------------
# Helpers shared by the fixture generator and the tests
# --------------------------------------------------------------------------------------------


def relu_site_shapes(model: nn.Module, input_shape: Sequence[int], **forward_kwargs) -> List[tuple]:
    """The ``[C,H,W]`` shape of every ReLU site of ``model`` in forward order.

    Found by running one all-ReLU forward pass, so it follows the module's own code; the pass runs
    in eval mode, so a model in training mode keeps its batch-norm running statistics.
    """
    x = torch.zeros(1, *input_shape)
    was = model.training
    model.eval()
    try:
        return _site_shapes(model, x, forward_kwargs)
    finally:
        model.train(was)


def _site_shapes(model: nn.Module, x: torch.Tensor, forward_kwargs) -> List[tuple]:
    with torch.no_grad():
        if isinstance(model, (SNLResNet, SNLWideResNet)):
            shapes: List[tuple] = []
            alphas = [m for m in model.modules() if isinstance(m, LearnableAlpha)]
            hooks = [a.register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape[1:]))) for a in alphas]
            try:
                model(x, **forward_kwargs)
            finally:
                for h in hooks:
                    h.remove()
            return shapes
        model(x, None, **forward_kwargs)
        return list(model.last_site_shapes)
