#!/usr/bin/env python3
"""Export RLNet / SNL / torchvision-style PyTorch checkpoints to pibench model bundles.

The bundle format is specified in ``docs/FORMAT.md``; usage is in ``docs/EXPORT.md``.

The exporter writes an explicit graph that reproduces what the checkpoint's *own* code computes
(see ``tools/pibench_models.py`` for the module definitions it mirrors):

==============  ==============================================================================
layout          what it means
==============  ==============================================================================
rlnet           RLNet ``CustomResNet18``/``CustomWideResNet``: ``torch.save`` dict with
                ``model`` and ``mask_epoch``; dual (``BN_c``/``BN_a``), triple (``BN_r`` is
                ignored) or single BN. ResNet blocks add a skip only through ``conv_sc``.
snl             SNL ``resnet18_in`` / ``wide_resnet_22_8``: ``{arch, state_dict, optimizer}``,
                masks are the ``*.alphas`` parameters.
torchvision     plain torchvision-style ResNet (``downsample``/``fc``; also the CIFAR
                ``shortcut``/``linear`` naming), optional ``mask_epoch``-style masks.
==============  ==============================================================================

Every state-dict key must be used by the graph or be known-ignorable; anything else is refused
with the list of keys not understood (exit status 2, no traceback).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

FORMAT_VERSION = "1"

#: Input ``[C,H,W]`` and class count for each dataset name we accept.
DATASETS: Dict[str, Tuple[Tuple[int, int, int], int]] = {
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "tiny-imagenet": ((3, 64, 64), 200),
    "imagenet": ((3, 224, 224), 1000),
    # scikit-learn's UCI digits upsampled to 32x32x3 (tools/rlnet/data.py)
    "digits-32": ((3, 32, 32), 10),
}
_DATASET_ALIASES = {
    "tiny_imagenet": "tiny-imagenet",
    "tinyimagenet": "tiny-imagenet",
    "c10": "cifar10",
    "c100": "cifar100",
    "digits32": "digits-32",
    "digits": "digits-32",
}

#: ``--normalize`` presets: per-channel (mean, std) applied after ``x/255`` by the training code.
#: ``cifar10`` / ``cifar100``: RLNet (``dataset/cifar10.py``, ``dataset/cifar100.py``, and
#: ``helper/attack.py``'s ``normalize``, which its robust loops apply to ``x/255`` batches) and
#: SNL (``datasets.py``); ``tiny-imagenet``: SNL's ``_TINY_MEAN``/``_TINY_STD`` (RLNet feeds
#: Tiny-ImageNet unnormalized: ``none``); ``imagenet``: torchvision's.
NORMALIZE_PRESETS: Dict[str, Tuple[Tuple[float, float, float], Tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "tiny-imagenet": ((0.480, 0.448, 0.398), (0.277, 0.269, 0.282)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def parse_normalize(spec: str, channels: int = 3) -> Dict[str, Any]:
    """The card's ``preprocessing`` record for ``--normalize``: ``none``, a preset name, or
    ``R,G,B/R,G,B`` (mean/std, one value per input channel)."""
    spec = spec.strip()
    if spec == "none":
        return {"scale": "unit", "name": "none"}
    if spec in NORMALIZE_PRESETS:
        mean, std = NORMALIZE_PRESETS[spec]
        return {"scale": "unit", "mean": list(mean), "std": list(std), "name": spec}
    if "/" not in spec:
        raise ExportError(
            f"--normalize `{spec}`: expected none, one of {', '.join(NORMALIZE_PRESETS)}, or MEAN/STD "
            "such as 0.5,0.5,0.5/0.25,0.25,0.25"
        )
    try:
        mean, std = ([float(v) for v in part.split(",")] for part in spec.split("/", 1))
    except ValueError:
        raise ExportError(f"--normalize `{spec}`: mean and std must be comma-separated numbers") from None
    if len(mean) != channels or len(std) != channels:
        raise ExportError(f"--normalize `{spec}`: {len(mean)} mean and {len(std)} std values for {channels} channels")
    if not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
        raise ExportError(f"--normalize `{spec}`: mean must be finite and std finite and positive")
    return {"scale": "unit", "mean": mean, "std": std}


def default_normalize(layout: str, dataset: str) -> Tuple[str, Optional[str]]:
    """What the training code of ``layout`` feeds its models on ``dataset``: (spec, warning or None)."""
    if layout == "rlnet":
        # RLNet normalizes CIFAR inside its loops (attacker.normalize) and not Tiny-ImageNet.
        if dataset in ("cifar10", "cifar100"):
            return dataset, None
        if dataset == "tiny-imagenet":
            return "none", None
    if layout == "snl" and dataset in NORMALIZE_PRESETS:
        return dataset, None
    if dataset in NORMALIZE_PRESETS:
        return dataset, (
            f"assumed the usual {dataset} input normalization for a {layout} checkpoint; "
            "pass --normalize to record what the model was trained on"
        )
    return "none", f"no known input normalization for {dataset}: recorded none (x/255); pass --normalize"


#: Top-level checkpoint entries that carry no tensors the network computes with.
_IGNORABLE_TOP = {
    "epoch",
    "opt",
    "optimizer",
    "arch",
    "args",
    "scheduler",
    "lr_scheduler",
    "scaler",
    "amp",
    "best_acc",
    "robust_acc",
    "best_robust_acc",
    "natural acc",
    "best_prec1",
    "acc",
    "mask_epoch",
}
_STATE_DICT_KEYS = ("model", "state_dict", "net", "model_state_dict")


class ExportError(Exception):
    """A checkpoint the exporter cannot turn into a bundle; the message says why and where."""


# ---------------------------------------------------------------------------------------------
# Graph building with shape checking
# ---------------------------------------------------------------------------------------------


@dataclass
class Site:
    """One ReLU site of the exported graph."""

    index: int
    op: str
    shape: Tuple[int, ...]
    kept: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass
class Bundle:
    """An exported model: tensors to write plus the graph and card (JSON-able dicts)."""

    tensors: Dict[str, torch.Tensor]
    graph: Dict[str, Any]
    card: Dict[str, Any]
    sites: List[Site]
    ignored: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def budget(self) -> int:
        return sum(s.kept for s in self.sites)

    @property
    def total_relus(self) -> int:
        return sum(s.elements for s in self.sites)


class GraphBuilder:
    """Emits FORMAT.md ops while tracking value shapes and which state-dict keys are used."""

    def __init__(self, sd: Dict[str, torch.Tensor], input_shape: Sequence[int]):
        self.sd = sd
        self.used: set = set()
        self.ignored: set = set()
        self.ops: List[Dict[str, Any]] = []
        self.shapes: Dict[str, Tuple[int, ...]] = {"input": tuple(input_shape)}
        self.tensors: Dict[str, torch.Tensor] = {}
        self.sites: List[Site] = []
        self.bn_kinds: set = set()
        self.single_bn: List[str] = []

    # -- tensors -----------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        return key in self.sd

    def take(self, key: str, dims: Optional[int] = None) -> torch.Tensor:
        """Marks ``key`` used and stores it as an F32 bundle tensor."""
        if key not in self.sd:
            raise ExportError(f"tensor `{key}` is missing from the state dict")
        t = self.sd[key]
        if not torch.is_tensor(t) or not t.is_floating_point():
            raise ExportError(f"tensor `{key}` should be floating point, found {getattr(t, 'dtype', type(t))}")
        if dims is not None and t.dim() != dims:
            raise ExportError(f"tensor `{key}` should have {dims} dimensions, has shape {list(t.shape)}")
        self.used.add(key)
        self.tensors[key] = t.detach().to(torch.float32).contiguous().clone()
        return t

    def _add(self, op: Dict[str, Any], shape: Tuple[int, ...]) -> str:
        name = op["name"]
        if name in self.shapes:
            raise ExportError(f"internal: duplicate op name `{name}`")
        self.ops.append(op)
        self.shapes[name] = tuple(shape)
        return name

    def shape(self, value: str) -> Tuple[int, ...]:
        return self.shapes[value]

    # -- ops ---------------------------------------------------------------------------------

    def conv(self, name: str, inp: str, weight: str, stride: int, padding: int, bias: Optional[str] = None) -> str:
        w = self.take(weight, 4)
        c, h, wd = self.shape(inp)
        o, i, kh, kw = w.shape
        if i != c:
            raise ExportError(f"op `{name}`: `{weight}` expects {i} input channels, its input `{inp}` has {c}")
        if bias is not None:
            b = self.take(bias, 1)
            if b.shape[0] != o:
                raise ExportError(f"op `{name}`: bias `{bias}` has {b.shape[0]} entries, expected {o}")
        oh = (h + 2 * padding - kh) // stride + 1
        ow = (wd + 2 * padding - kw) // stride + 1
        if oh < 1 or ow < 1:
            raise ExportError(f"op `{name}`: a {kh}x{kw} kernel does not fit a {h}x{wd} input")
        op = {
            "op": "conv2d",
            "name": name,
            "input": inp,
            "weight": weight,
            "bias": bias,
            "stride": stride,
            "padding": padding,
        }
        return self._add(op, (o, oh, ow))

    def bn(self, name: str, inp: str, prefix: str) -> str:
        """A batch norm at ``prefix``: dual when ``prefix.BN_c`` exists (``BN_r`` ignored)."""
        c = self.shape(inp)[0]

        def params(p: str) -> Dict[str, str]:
            out = {}
            for f in ("weight", "bias", "running_mean", "running_var"):
                t = self.take(f"{p}.{f}", 1)
                if t.shape[0] != c:
                    raise ExportError(f"op `{name}`: `{p}.{f}` has {t.shape[0]} channels, input `{inp}` has {c}")
                out[f] = f"{p}.{f}"
            self._ignore(f"{p}.num_batches_tracked")
            return out

        if self.has(f"{prefix}.BN_c.weight"):
            if self.has(f"{prefix}.BN_r.weight"):
                self.bn_kinds.add("triple")
                for k in [k for k in self.sd if k.startswith(f"{prefix}.BN_r.")]:
                    self._ignore(k)
            else:
                self.bn_kinds.add("dual")
            op = {
                "op": "dual_batchnorm",
                "name": name,
                "input": inp,
                "eps": 1e-5,
                "clean": params(f"{prefix}.BN_c"),
                "adv": params(f"{prefix}.BN_a"),
            }
        else:
            self.bn_kinds.add("single")
            self.single_bn.append(prefix)
            op = {"op": "batchnorm", "name": name, "input": inp, "eps": 1e-5, **params(prefix)}
        return self._add(op, self.shape(inp))

    def relu(self, name: str, inp: str, mask: Optional[torch.Tensor], mask_origin: str = "") -> str:
        """A ReLU site; ``mask`` is ``[C,H,W]`` (or ``[1,C,H,W]``) of 0/1, or None for all-ReLU."""
        shape = self.shape(inp)
        site = len(self.sites)
        where = f"ReLU site {site} (op `{name}`{', ' + mask_origin if mask_origin else ''})"
        mask_name = None
        kept = math.prod(shape)
        if mask is not None:
            m = torch.as_tensor(mask).detach().cpu()
            if m.dim() == len(shape) + 1 and m.shape[0] == 1:
                m = m[0]
            if tuple(m.shape) != shape:
                raise ExportError(f"mask for {where} has shape {list(m.shape)}, the activation is {list(shape)}")
            if m.dtype == torch.bool:
                m = m.to(torch.uint8)
            ones = m == 1
            if not bool((ones | (m == 0)).all()):
                bad = m[~(ones | (m == 0))].flatten()[:3].tolist()
                raise ExportError(f"mask for {where} is not 0/1 (found values such as {bad})")
            mask_name = f"mask.{site}"
            self.tensors[mask_name] = ones.to(torch.uint8).contiguous()
            kept = int(ones.sum())
        self.sites.append(Site(site, name, shape, kept))
        return self._add({"op": "relu", "name": name, "input": inp, "mask": mask_name}, shape)

    def add(self, name: str, a: str, b: str) -> str:
        if self.shape(a) != self.shape(b):
            raise ExportError(f"op `{name}`: cannot add `{a}` {list(self.shape(a))} and `{b}` {list(self.shape(b))}")
        return self._add({"op": "add", "name": name, "inputs": [a, b]}, self.shape(a))

    def avgpool(self, name: str, inp: str, kernel: Optional[int] = None) -> str:
        """Average pool; ``kernel=None`` or a kernel equal to the map size is written as global."""
        c, h, w = self.shape(inp)
        if kernel is None or (kernel == h == w):
            return self._add({"op": "avgpool", "name": name, "input": inp, "global": True}, (c, 1, 1))
        if kernel > h or kernel > w:
            raise ExportError(f"op `{name}`: a {kernel}x{kernel} pool does not fit a {h}x{w} input")
        op = {"op": "avgpool", "name": name, "input": inp, "kernel": kernel, "stride": kernel}
        return self._add(op, (c, (h - kernel) // kernel + 1, (w - kernel) // kernel + 1))

    def maxpool(self, name: str, inp: str, kernel: int, stride: int, padding: int) -> str:
        c, h, w = self.shape(inp)
        oh = (h + 2 * padding - kernel) // stride + 1
        ow = (w + 2 * padding - kernel) // stride + 1
        op = {"op": "maxpool", "name": name, "input": inp, "kernel": kernel, "stride": stride, "padding": padding}
        return self._add(op, (c, oh, ow))

    def flatten(self, name: str, inp: str) -> str:
        return self._add({"op": "flatten", "name": name, "input": inp}, (math.prod(self.shape(inp)),))

    def linear(self, name: str, inp: str, weight: str, bias: Optional[str], hint: str = "") -> str:
        w = self.take(weight, 2)
        (n,) = self.shape(inp)
        if w.shape[1] != n:
            raise ExportError(f"op `{name}`: `{weight}` expects {w.shape[1]} inputs, `{inp}` has {n}{hint}")
        if bias is not None:
            self.take(bias, 1)
        op = {"op": "linear", "name": name, "input": inp, "weight": weight, "bias": bias}
        return self._add(op, (w.shape[0],))

    def _ignore(self, key: str) -> None:
        if key in self.sd:
            self.ignored.add(key)

    def unused_keys(self) -> List[str]:
        return sorted(
            k for k in self.sd if k not in self.used and k not in self.ignored and not k.endswith("num_batches_tracked")
        )

    def graph(self, output: str) -> Dict[str, Any]:
        return {"input": {"name": "input", "shape": list(self.shapes["input"])}, "output": output, "ops": self.ops}


# ---------------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------------


class MaskList:
    """RLNet-style masks: a list in forward order, consumed one per ReLU site."""

    def __init__(self, masks: Optional[Sequence[Any]]):
        self.masks = None if masks is None else list(masks)
        self.next = 0

    def take(self) -> Tuple[Optional[torch.Tensor], str]:
        if self.masks is None:
            return None, ""
        if self.next >= len(self.masks):
            raise ExportError(
                f"the checkpoint has {len(self.masks)} masks in `mask_epoch`, but the network has more ReLU sites"
            )
        m = self.masks[self.next]
        origin = f"mask_epoch[{self.next}]"
        self.next += 1
        try:
            return torch.as_tensor(m), origin
        except Exception as e:
            raise ExportError(f"{origin} is not a tensor ({type(m).__name__}): {e}") from None

    def finish(self, sites: int) -> None:
        if self.masks is not None and self.next != len(self.masks):
            raise ExportError(
                f"the checkpoint has {len(self.masks)} masks in `mask_epoch`, but the network has {sites} ReLU sites"
            )


# ---------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------

_RESNET_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.conv1\.weight$")
_WRN_BLOCK = re.compile(r"^block([1-3])\.layer\.(\d+)\.conv1\.weight$")


def _resnet_blocks(sd) -> List[int]:
    counts = [0, 0, 0, 0]
    for k in sd:
        m = _RESNET_BLOCK.match(k)
        if m:
            counts[int(m.group(1)) - 1] = max(counts[int(m.group(1)) - 1], int(m.group(2)) + 1)
    return counts


def _wrn_blocks(sd) -> List[int]:
    counts = [0, 0, 0]
    for k in sd:
        m = _WRN_BLOCK.match(k)
        if m:
            counts[int(m.group(1)) - 1] = max(counts[int(m.group(1)) - 1], int(m.group(2)) + 1)
    return counts


def _site(
    b: GraphBuilder,
    sd,
    style: str,
    masks: MaskList,
    binarize: Optional[float],
    name: str,
    inp: str,
    alpha_key: Optional[str] = None,
) -> str:
    """One ReLU site: SNL's mask is its binarized alpha parameter ``alpha_key``; the other styles
    take the next mask of ``masks``."""
    if style == "snl":
        if alpha_key not in sd:
            raise ExportError(f"SNL mask parameter `{alpha_key}` is missing")
        b.used.add(alpha_key)
        return b.relu(name, inp, _binarize(sd[alpha_key], alpha_key, binarize), f"from `{alpha_key}`")
    m, origin = masks.take()
    return b.relu(name, inp, m, origin)


def _snl_stem_stride(sd, alpha_key: str, in_w: int) -> int:
    """SNL's first-conv stride is a run-time option (its ``args.stride``), so the checkpoint does
    not say it; the first site's alphas fix the map size after it. 1 when they do not tell."""
    a = sd.get(alpha_key)
    if a is not None and a.dim() == 4 and a.shape[-1] and in_w % a.shape[-1] == 0:
        return in_w // a.shape[-1]
    return 1


def _build_resnet(b: GraphBuilder, sd, style: str, masks: MaskList, binarize: Optional[float]) -> Tuple[str, str]:
    """ResNet with BasicBlocks. ``style``: ``rlnet`` (skip only via projection, stem ReLU),
    ``snl`` (no stem ReLU, alphas), ``torchvision`` (textbook). Returns (output, architecture)."""
    blocks = _resnet_blocks(sd)
    if 0 in blocks:
        raise ExportError(f"ResNet layout needs blocks in layer1..layer4, found counts {blocks}")
    arch = {(2, 2, 2, 2): "resnet18", (3, 4, 6, 3): "resnet34"}.get(
        tuple(blocks), "resnet-" + "-".join(map(str, blocks))
    )
    in_w = b.shape("input")[2]
    site = functools.partial(_site, b, sd, style, masks, binarize)

    w = b.sd.get("conv1.weight")
    if w is None:
        raise ExportError("tensor `conv1.weight` (the stem convolution) is missing")
    k = w.shape[-1]
    if k == 7:
        stem_stride, stem_pad = 2, 3
    elif k == 3:
        stem_stride, stem_pad = 1, 1
        if style == "snl":
            stem_stride = _snl_stem_stride(sd, "layer1.0.alpha1.alphas", in_w)
    else:
        raise ExportError(f"stem `conv1.weight` is {k}x{k}; only 3x3 (CIFAR) and 7x7 (ImageNet) stems are known")
    x = b.conv("conv1", "input", "conv1.weight", stem_stride, stem_pad)
    x = b.bn("bn1", x, "bn1")
    if style != "snl":
        x = site("relu", x)
    if k == 7:
        # torchvision always pools after a 7x7 stem; RLNet's/CIFAR code only for 224x224 inputs.
        tv_names = any(".downsample." in kk for kk in sd) or "fc.weight" in sd
        if (style == "torchvision" and tv_names) or in_w == 224:
            x = b.maxpool("maxpool", x, 3, 2, 1)
    for li in range(4):
        for bi in range(blocks[li]):
            p = f"layer{li + 1}.{bi}"
            stride = 2 if (li > 0 and bi == 0) else 1
            inp = x
            h = b.conv(f"{p}.conv1", inp, f"{p}.conv1.weight", stride, 1)
            h = b.bn(f"{p}.bn1", h, f"{p}.bn1")
            h = site(f"{p}.relu1", h, f"{p}.alpha1.alphas")
            h = b.conv(f"{p}.conv2", h, f"{p}.conv2.weight", 1, 1)
            h = b.bn(f"{p}.bn2", h, f"{p}.bn2")
            proj = None
            for conv_k, bn_k in (
                (f"{p}.conv_sc", f"{p}.bn_sc"),
                (f"{p}.shortcut.0", f"{p}.shortcut.1"),
                (f"{p}.downsample.0", f"{p}.downsample.1"),
            ):
                if f"{conv_k}.weight" in sd:
                    proj = (conv_k, bn_k)
                    break
            if proj is not None:
                s = b.conv(f"{p}.shortcut_conv", inp, f"{proj[0]}.weight", stride, 0)
                s = b.bn(f"{p}.shortcut_bn", s, proj[1])
                h = b.add(f"{p}.add", h, s)
            elif style != "rlnet":
                if b.shape(inp) != b.shape(h):
                    raise ExportError(
                        f"block `{p}` changes shape {list(b.shape(inp))} -> {list(b.shape(h))} "
                        f"but has no projection shortcut"
                    )
                h = b.add(f"{p}.add", h, inp)
            # style == "rlnet" without projection: CustomResNet adds no skip connection at all.
            x = site(f"{p}.relu2", h, f"{p}.alpha2.alphas")
    if style == "snl":
        # SNL pools with a window of input/8 (its `last_dim`), global at its native sizes.
        x = b.avgpool("avgpool", x, in_w // (8 * stem_stride) if in_w >= 8 * stem_stride else None)
    else:
        x = b.avgpool("avgpool", x, None)
    x = b.flatten("flatten", x)
    fc = "linear" if "linear.weight" in sd else "fc"
    out = b.linear(fc, x, f"{fc}.weight", f"{fc}.bias" if f"{fc}.bias" in sd else None)
    return out, arch


def _build_wrn(b: GraphBuilder, sd, style: str, masks: MaskList, binarize: Optional[float]) -> Tuple[str, str]:
    """Pre-activation wide ResNet, RLNet (final masked ReLU, 8x8 pool) or SNL (no final ReLU)."""
    blocks = _wrn_blocks(sd)
    if 0 in blocks or len(set(blocks)) != 1:
        raise ExportError(f"wide-ResNet layout needs equal block counts in block1..block3, found {blocks}")
    n = blocks[0]
    c0 = sd["conv1.weight"].shape[0] if "conv1.weight" in sd else 0
    c1 = sd["block1.layer.0.conv1.weight"].shape[0]
    widen = c1 // c0 if c0 and c1 % c0 == 0 else 0
    arch = f"wrn-{6 * n + 4}-{widen}"
    in_w = b.shape("input")[2]
    site = functools.partial(_site, b, sd, style, masks, binarize)

    stride0 = _snl_stem_stride(sd, "block1.layer.0.alpha1.alphas", in_w) if style == "snl" else 1
    x = b.conv("conv1", "input", "conv1.weight", stride0, 1)
    for g in range(3):
        for i in range(n):
            p = f"block{g + 1}.layer.{i}"
            stride = 2 if (g > 0 and i == 0) else 1
            cin = b.shape(x)[0]
            cout = sd[f"{p}.conv1.weight"].shape[0] if f"{p}.conv1.weight" in sd else -1
            equal = cin == cout
            if not equal:
                # The shortcut reads the activated input in this branch of the original.
                x = site(f"{p}.relu1", b.bn(f"{p}.bn1", x, f"{p}.bn1"), f"{p}.alpha1.alphas")
                h = x
            else:
                h = site(f"{p}.relu1", b.bn(f"{p}.bn1", x, f"{p}.bn1"), f"{p}.alpha1.alphas")
            h = b.conv(f"{p}.conv1", h, f"{p}.conv1.weight", stride, 1)
            h = site(f"{p}.relu2", b.bn(f"{p}.bn2", h, f"{p}.bn2"), f"{p}.alpha2.alphas")
            h = b.conv(f"{p}.conv2", h, f"{p}.conv2.weight", 1, 1)
            if equal:
                x = b.add(f"{p}.add", x, h)
            else:
                s = b.conv(f"{p}.shortcut", x, f"{p}.convShortcut.weight", stride, 0)
                x = b.add(f"{p}.add", s, h)
    x = b.bn("bn1", x, "bn1")
    hint = ""
    if style == "rlnet":
        x = site("relu", x, None)
        x = b.avgpool("avgpool", x, 8)
        hint = " (RLNet's WRN pools with a fixed 8x8 window, so only 32x32 inputs work in its code)"
    else:
        x = b.avgpool("avgpool", x, in_w // (4 * stride0))
    x = b.flatten("flatten", x)
    out = b.linear("fc", x, "fc.weight", "fc.bias" if "fc.bias" in sd else None, hint)
    return out, arch


def _binarize(alpha: torch.Tensor, key: str, threshold: Optional[float]) -> torch.Tensor:
    """SNL stores binarized alphas (``(a > threshold).float()``); re-binarize only on request."""
    if threshold is None:
        if not bool(((alpha == 0) | (alpha == 1)).all()):
            raise ExportError(
                f"SNL mask `{key}` is not binary (values such as "
                f"{alpha[(alpha != 0) & (alpha != 1)].flatten()[:3].tolist()}); a checkpoint saved "
                f"before SNL's final thresholding needs --snl-threshold (SNL uses 0.01)"
            )
        return alpha
    return (alpha > threshold).to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# Checkpoint reading and layout detection
# ---------------------------------------------------------------------------------------------


def load_checkpoint(path: str) -> Any:
    """``torch.load`` on CPU; retries without ``weights_only`` for checkpoints that pickle
    non-tensor objects (RLNet saves its argparse ``opt``)."""
    if not os.path.isfile(path):
        raise ExportError(f"checkpoint `{path}` does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise ExportError(f"cannot read `{path}` as a PyTorch checkpoint: {e}") from None
        print(
            f"note: `{path}` pickles objects besides tensors (e.g. RLNet's argparse `opt`); loaded it with "
            f"torch.load(weights_only=False), which runs pickle code: only export checkpoints you trust",
            file=sys.stderr,
        )
        return obj


def split_checkpoint(ckpt: Any) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any], List[str]]:
    """Returns (state dict with any ``module.`` prefix removed, other top-level entries, warnings)."""
    if hasattr(ckpt, "state_dict") and callable(ckpt.state_dict) and not isinstance(ckpt, dict):
        ckpt = ckpt.state_dict()
    if not isinstance(ckpt, dict):
        raise ExportError(f"checkpoint is a {type(ckpt).__name__}, expected a dict or a state dict")
    warnings: List[str] = []
    if ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
        sd, rest = dict(ckpt), {}
    else:
        found = [k for k in _STATE_DICT_KEYS if isinstance(ckpt.get(k), dict)]
        if not found:
            raise ExportError(
                "unknown checkpoint layout: no state dict found; top-level keys not understood: "
                + ", ".join(map(str, ckpt.keys()))
            )
        sd = dict(ckpt[found[0]])
        rest = {k: v for k, v in ckpt.items() if k != found[0]}
        unknown = [k for k in rest if k not in _IGNORABLE_TOP]
        if unknown:
            warnings.append("ignored top-level checkpoint entries: " + ", ".join(map(str, unknown)))
    non_tensor = [k for k, v in sd.items() if not torch.is_tensor(v)]
    if non_tensor:
        raise ExportError("state dict entries that are not tensors: " + ", ".join(non_tensor))
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd, rest, warnings


#: Key patterns some known layout uses; used to name the keys of an unknown checkpoint.
_KNOWN_KEY = re.compile(
    r"^(conv1\.weight|bn1\.|linear\.|fc\.|"
    r"layer\d+\.\d+\.(conv[12]|bn[12]|conv_sc|bn_sc|shortcut\.[01]|downsample\.[01]|alpha[12])\.|"
    r"block\d\.layer\.\d+\.(conv[12]|bn[12]|convShortcut|alpha[12])\.)"
)


def detect_layout(sd: Dict[str, torch.Tensor]) -> Tuple[str, str]:
    """Returns (layout, family) with family ``resnet`` or ``wrn``; refuses unknown key sets."""
    keys = list(sd)
    is_wrn = any(_WRN_BLOCK.match(k) for k in keys)
    is_resnet = any(_RESNET_BLOCK.match(k) for k in keys)
    if is_wrn == is_resnet or "conv1.weight" not in sd:
        unknown = [k for k in keys if not _KNOWN_KEY.match(k)] or keys
        raise ExportError("unknown checkpoint layout; state-dict keys not understood: " + _list(unknown))
    family = "wrn" if is_wrn else "resnet"
    if any(k.endswith(".alphas") for k in keys):
        return "snl", family
    if family == "wrn" or any(".conv_sc." in k for k in keys):
        return "rlnet", family
    return "torchvision", family


def _list(keys: Sequence[str], limit: int = 40) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def _accuracy(rest: Dict[str, Any]) -> Dict[str, float]:
    acc: Dict[str, float] = {}
    for key, field_ in (
        ("best_acc", "clean"),
        ("natural acc", "clean"),
        ("robust_acc", "adv"),
        ("best_robust_acc", "adv"),
    ):
        if key in rest and field_ not in acc:
            try:
                acc[field_] = round(float(rest[key]), 4)
            except (TypeError, ValueError):
                pass
    return acc


def _dataset_from(rest: Dict[str, Any], classes: int) -> str:
    opt = rest.get("opt")
    name = (
        getattr(opt, "dataset", None) if opt is not None and not isinstance(opt, dict) else (opt or {}).get("dataset")
    )
    if isinstance(name, str):
        name = _DATASET_ALIASES.get(name.lower(), name.lower())
        if name in DATASETS:
            return name
    for ds, (_, c) in DATASETS.items():
        if c == classes:
            return ds
    raise ExportError(f"cannot tell the dataset of a {classes}-class model; pass --dataset")


def export(
    ckpt: Any,
    layout: str = "auto",
    arch: Optional[str] = None,
    dataset: Optional[str] = None,
    name: Optional[str] = None,
    source: Optional[str] = None,
    method: Optional[str] = None,
    snl_threshold: Optional[float] = None,
    attack: Optional[str] = None,
    npa: Optional[float] = None,
    notes: Optional[str] = None,
    normalize: Optional[str] = None,
) -> Bundle:
    """Turns a loaded checkpoint into a :class:`Bundle` (nothing written)."""
    sd, rest, warnings = split_checkpoint(ckpt)
    detected, family = detect_layout(sd)
    if layout == "auto":
        layout = detected
    elif layout not in ("rlnet", "snl", "torchvision"):
        raise ExportError(f"unknown --layout `{layout}` (expected auto, rlnet, snl or torchvision)")
    if layout == "torchvision" and family == "wrn":
        raise ExportError("the torchvision layout is a ResNet; this checkpoint is a wide ResNet (use rlnet or snl)")

    fc = "linear.weight" if "linear.weight" in sd else "fc.weight"
    if fc not in sd:
        raise ExportError("no classifier weight (`linear.weight` or `fc.weight`) in the state dict")
    classes = int(sd[fc].shape[0])
    if dataset is not None:
        dataset = _DATASET_ALIASES.get(dataset.lower(), dataset.lower())
        if dataset not in DATASETS:
            raise ExportError(f"unknown --dataset `{dataset}` (expected one of {', '.join(DATASETS)})")
    else:
        dataset = _dataset_from(rest, classes)
    input_shape = DATASETS[dataset][0]

    raw_masks = rest.get("mask_epoch")
    if layout == "snl" and raw_masks is not None:
        raise ExportError("an SNL checkpoint keeps its masks in `*.alphas`; it should not carry `mask_epoch`")
    if layout != "snl" and any(k.endswith(".alphas") for k in sd):
        raise ExportError("`*.alphas` keys are SNL masks; use --layout snl (or auto)")
    if raw_masks is not None and not isinstance(raw_masks, (list, tuple)):
        raise ExportError(f"`mask_epoch` should be a list of [C,H,W] tensors, found {type(raw_masks).__name__}")
    masks = MaskList(raw_masks)

    b = GraphBuilder(sd, input_shape)
    if family == "resnet":
        out, found_arch = _build_resnet(b, sd, layout, masks, snl_threshold)
    else:
        out, found_arch = _build_wrn(b, sd, layout, masks, snl_threshold)
    masks.finish(len(b.sites))
    if arch is not None and arch != found_arch:
        raise ExportError(f"--arch {arch} given, but the checkpoint is a {found_arch}")
    unused = b.unused_keys()
    if unused:
        raise ExportError(f"state-dict keys not understood by the {layout} {found_arch} layout: " + _list(unused))

    bn = "triple" if "triple" in b.bn_kinds else "dual" if "dual" in b.bn_kinds else "single"
    kinds = set(b.bn_kinds)
    shared_shortcut_bn = (
        layout == "torchvision"
        and kinds == {"dual", "single"}
        and all(p.endswith(".shortcut.1") for p in b.single_bn)
    )
    if shared_shortcut_bn:
        # RLNet's teacher (models/resnetv2.py) with use2BN keeps a plain BatchNorm2d in its
        # projection shortcuts: one parameter set that both paths use.
        kinds = {"dual"}
    if len(kinds) > 1:
        raise ExportError(f"mixed batch-norm kinds in one network: {sorted(b.bn_kinds)}")
    card_layout = {"rlnet": f"rlnet-{bn}-bn", "snl": "snl", "torchvision": "torchvision"}[layout]
    if layout == "torchvision" and bn != "single":
        card_layout = f"torchvision-{bn}-bn"
    budget = sum(s.kept for s in b.sites)
    total = sum(s.elements for s in b.sites)
    if method is None:
        if budget == total:
            method = "dense"
        elif layout == "snl":
            method = "snl"
        elif bn in ("dual", "triple"):
            method = "rlnet"
        else:
            method = "senet"
    note_parts = []
    if bn == "triple":
        note_parts.append("3-BN checkpoint: clean = BN_c, adv = BN_a, BN_r ignored")
        warnings.append("3-BN checkpoint: exported clean = BN_c and adv = BN_a; the BN_r tensors are ignored")
    if shared_shortcut_bn:
        note_parts.append("dual BN except the projection shortcuts' single BN, used on both paths (RLNet resnetv2)")
    if layout == "rlnet" and raw_masks is None:
        warnings.append("no `mask_epoch` in the checkpoint: every ReLU site is kept whole")
    lam = re.search(r"_A?TA(\d+(?:\.\d+)?)\.pth", os.path.basename(source or ""))
    if lam and bn in ("dual", "triple") and _accuracy(rest):
        # RLNet's validate_dualBN runs each val_lambda through BN index lambda and saves
        # `{model}_stage2_best_TA{lambda}.pth`: its accuracies belong to that path.
        path = "clean (BN_c)" if float(lam.group(1)) == 0 else "adv (BN_a)"
        note_parts.append(f"accuracies measured on the {path} path (val_lambda {lam.group(1)} in the file name)")
    if notes:
        note_parts.append(notes)
    accuracy = _accuracy(rest)
    if npa is not None:
        accuracy["npa"] = npa
    if attack is not None:
        accuracy["attack"] = attack
    card: Dict[str, Any] = {
        "name": name
        or (os.path.splitext(os.path.basename(source))[0] if source else f"{found_arch}-{dataset}-{method}"),
        "architecture": found_arch,
        "dataset": dataset,
        "input_shape": list(input_shape),
        "classes": classes,
        "method": method,
        "layout": card_layout,
        "budget": budget,
        "total_relus": total,
    }
    if accuracy:
        card["accuracy"] = accuracy
    if source:
        card["source"] = os.path.basename(source)
    card["synthetic"] = False
    if normalize is None:
        normalize, why = default_normalize(layout, dataset)
        if why:
            warnings.append(why)
    card["preprocessing"] = parse_normalize(normalize, input_shape[0])
    if note_parts:
        card["notes"] = "; ".join(note_parts)
    return Bundle(b.tensors, b.graph(out), card, b.sites, sorted(b.ignored), warnings)


_ST_DTYPES = {torch.float32: "F32", torch.uint8: "U8", torch.float64: "F64", torch.int64: "I64"}


def save_safetensors(tensors: Dict[str, torch.Tensor], path: str, metadata: Dict[str, str]) -> None:
    """Writes a safetensors file byte-for-byte deterministically: header keys sorted, tensors
    laid out contiguously in name order, header padded with spaces to 8 bytes (the official
    writer's header order varies from run to run, which would make regenerated files differ)."""
    header: Dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _ST_DTYPES:
            raise ExportError(f"tensor `{name}` has dtype {t.dtype}, which the bundle writer does not handle")
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _ST_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":"), sort_keys=False).encode("utf-8")
    head += b" " * (-len(head) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def write_bundle(bundle: Bundle, path: str) -> None:
    """Writes ``bundle`` as a safetensors file with the FORMAT.md metadata."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_safetensors(
        bundle.tensors,
        path,
        {
            "pibench.format": FORMAT_VERSION,
            "pibench.graph": json.dumps(bundle.graph, separators=(",", ":")),
            "pibench.card": json.dumps(bundle.card, separators=(",", ":")),
        },
    )


def _describe_pre(pre: Dict[str, Any]) -> str:
    if "mean" not in pre:
        return "no normalization"
    label = f" ({pre['name']})" if "name" in pre else ""
    return f"(x - {pre['mean']}) / {pre['std']}{label}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    p = argparse.ArgumentParser(description="Export an RLNet / SNL / torchvision-style checkpoint to a pibench bundle.")
    p.add_argument("checkpoint", help="a torch.save file")
    p.add_argument("-o", "--output", required=True, help="the bundle to write (.safetensors)")
    p.add_argument(
        "--layout",
        default="auto",
        choices=["auto", "rlnet", "snl", "torchvision"],
        help="checkpoint layout (default: recognised from the state-dict keys)",
    )
    p.add_argument("--arch", choices=["resnet18", "resnet34", "wrn-22-8"], help="check the architecture is this one")
    p.add_argument(
        "--dataset",
        help="cifar10, cifar100, tiny-imagenet, imagenet or digits-32 (sets the input size; "
        "default: from the checkpoint's opt.dataset or its class count)",
    )
    p.add_argument("--name", help="model name for the card (default: the checkpoint's file name)")
    p.add_argument("--method", help="override the card's method (rlnet, senet, snl, dense, ...)")
    p.add_argument(
        "--snl-threshold",
        type=float,
        default=None,
        help="binarize SNL alphas as SNL does, alpha > T (only for checkpoints saved before binarization)",
    )
    p.add_argument("--attack", help="card: the attack behind the adversarial accuracy, e.g. 'PGD-20, eps 8/255'")
    p.add_argument("--npa", type=float, help="card: natural-perturbation accuracy (percent)")
    p.add_argument("--notes", help="card: free text")
    p.add_argument(
        "--normalize",
        help="the input preprocessing the model was trained with, after x/255: none, cifar10, cifar100, "
        "tiny-imagenet (SNL's values), imagenet, or MEAN/STD as R,G,B/R,G,B (default: what the "
        "checkpoint's training code does: RLNet and SNL normalize CIFAR with the dataset's mean/std, "
        "RLNet feeds Tiny-ImageNet unnormalized, SNL normalizes it; see docs/EXPORT.md)",
    )
    args = p.parse_args(argv)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        bundle = export(
            ckpt,
            layout=args.layout,
            arch=args.arch,
            dataset=args.dataset,
            name=args.name,
            source=args.checkpoint,
            method=args.method,
            snl_threshold=args.snl_threshold,
            attack=args.attack,
            npa=args.npa,
            notes=args.notes,
            normalize=args.normalize,
        )
        write_bundle(bundle, args.output)
    except ExportError as e:
        print(f"export_checkpoint: error: {e}", file=sys.stderr)
        return 2
    for w in bundle.warnings:
        print(f"warning: {w}", file=sys.stderr)
    c = bundle.card
    print(
        f"{args.output}: {c['architecture']} {c['dataset']} layout {c['layout']} method {c['method']}: "
        f"{len(bundle.sites)} ReLU sites, {c['budget']:,} of {c['total_relus']:,} ReLUs kept; "
        f"input x/255 then {_describe_pre(c['preprocessing'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
