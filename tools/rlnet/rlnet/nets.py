"""Building, running and checkpointing the networks.

The modules are ``tools/pibench_models.py``'s, the definitions the exporter mirrors:

- student: ``RLNetResNet``, RLNet's ``CustomResNet18`` (masked ReLU at 17 sites, a skip only
  through ``conv_sc``/``bn_sc``), dual BN (``BN_c``/``BN_a``) for RLNet, single BN for SeNet;
- teacher: ``RLNetTeacherResNet``, RLNet's ``ResNet18`` from ``models/resnetv2.py`` (all-ReLU,
  textbook skips), dual BN for RLNet's robust teacher, single BN for SeNet's clean one.

Checkpoints are RLNet's ``torch.save`` dicts: ``epoch``, ``model`` (the state dict, RLNet's key
names), ``best_acc``, ``robust_acc``, ``mask_epoch`` (students: int64 0/1 ``[C,H,W]`` per site in
forward order) and ``opt`` (here a plain dict of the settings and results, so the file loads with
``torch.load(weights_only=True)``; RLNet pickles its argparse namespace there).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

_TOOLS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)

import pibench_models as M  # noqa: E402

#: ResNet18's blocks per layer.
RESNET18 = (2, 2, 2, 2)


class CheckpointError(Exception):
    """A checkpoint this pipeline cannot use; the message says which and why."""


def rlnet_init(model: nn.Module) -> nn.Module:
    """RLNet's ResNet initialization: Kaiming-normal (fan-out, ReLU) convolutions, BN weight 1
    and bias 0 (the linear layer keeps PyTorch's default)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def build(role: str, width: int, classes: int, bn: str) -> nn.Module:
    """A fresh ``student`` (CustomResNet18) or ``teacher`` (resnetv2 ResNet18)."""
    if role == "student":
        return rlnet_init(M.RLNetResNet(RESNET18, classes, width, bn))
    if role == "teacher":
        return rlnet_init(M.RLNetTeacherResNet(RESNET18, classes, width, bn))
    raise ValueError(f"unknown role {role!r}")


def site_shapes(model: nn.Module, input_shape: Sequence[int] = (3, 32, 32)) -> List[Tuple[int, ...]]:
    """``[C,H,W]`` of every ReLU site in forward order (one forward pass in eval mode: the
    batch-norm running statistics stay as they are)."""
    return M.relu_site_shapes(model, input_shape)


def layer_sites(blocks: Sequence[int] = RESNET18) -> List[int]:
    """Indices of the sites whose outputs are the outputs of layer1..layer4 (RLNet's
    ``feature_eachlayer[1:-1]``, what attention transfer compares): the last block's second ReLU."""
    out, n = [], 0
    for b in blocks:
        n += 2 * b
        out.append(n)
    return out


@dataclass
class Normalizer:
    """``(x - mean) / std`` applied to pixels in [0,1] before the network, or nothing."""

    mean: Optional[torch.Tensor] = None
    std: Optional[torch.Tensor] = None

    @classmethod
    def of(cls, mean_std, device) -> "Normalizer":
        if mean_std is None:
            return cls()
        mean, std = mean_std
        return cls(torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.mean is None else (x - self.mean) / self.std

    def describe(self) -> Optional[Dict[str, List[float]]]:
        if self.mean is None:
            return None
        return {"mean": [round(v, 6) for v in self.mean.flatten().tolist()], "std": [round(v, 6) for v in self.std.flatten().tolist()]}


def run(
    model: nn.Module,
    x01: torch.Tensor,
    norm: Normalizer,
    masks: Optional[Sequence[torch.Tensor]] = None,
    path: str = "clean",
    record: bool = False,
) -> Tuple[torch.Tensor, Optional[List[torch.Tensor]]]:
    """(logits, every site's output if ``record``) for pixels ``x01`` in [0,1]."""
    feed = M._MaskFeed(masks, record=record)
    logits = model(norm(x01), path=path, feed=feed)
    return logits, feed.outputs


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------


def save(path: str, model: nn.Module, epoch: int, best_acc: float, robust_acc: Optional[float],
         opt: Dict[str, Any], masks: Optional[Sequence[torch.Tensor]] = None) -> None:
    """Writes an RLNet-format checkpoint (atomically)."""
    from .masks import to_checkpoint

    state: Dict[str, Any] = {
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "best_acc": float(best_acc),
        "robust_acc": None if robust_acc is None else float(robust_acc),
    }
    if masks is not None:
        state["mask_epoch"] = to_checkpoint(masks)
    state["opt"] = opt
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def read(path: str) -> Dict[str, Any]:
    """Loads a checkpoint dict on CPU (RLNet's own files pickle ``opt``: retried without
    ``weights_only``, which runs pickle code: only load files you trust)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint `{path}` does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise CheckpointError(f"cannot read `{path}` as a PyTorch checkpoint: {e}") from None
        print(f"note: `{path}` pickles non-tensor objects; loaded with weights_only=False", file=sys.stderr)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"`{path}` is not an RLNet checkpoint (no `model` state dict)")
    return ckpt


def load(path: str) -> Tuple[nn.Module, Optional[List[torch.Tensor]], Dict[str, Any]]:
    """(network with the checkpoint's weights, its masks as float tensors or None, the dict).

    The layout is read from the keys (``conv_sc`` → CustomResNet18 student, ``shortcut.0`` →
    resnetv2 teacher), the width from ``conv1``, the classes from ``linear``, the BN kind from
    ``BN_c`` keys, so RLNet's own checkpoints load as well as ours."""
    ckpt = read(path)
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in ckpt["model"].items()}
    if "conv1.weight" not in sd or "linear.weight" not in sd:
        raise CheckpointError(f"`{path}`: not a ResNet18 in RLNet's layout (no conv1/linear weights)")
    if any(".conv_sc." in k for k in sd):
        role = "student"
    elif any(".shortcut.0." in k for k in sd):
        role = "teacher"
    else:
        raise CheckpointError(f"`{path}`: neither `conv_sc` (CustomResNet18) nor `shortcut.0` (resnetv2) keys")
    bn = "dual" if any(".BN_c." in k for k in sd) else "single"
    if any(".BN_r." in k for k in sd):
        raise CheckpointError(f"`{path}`: 3-BN checkpoints are not supported by this pipeline")
    width = int(sd["conv1.weight"].shape[0])
    classes = int(sd["linear.weight"].shape[0])
    model = M.RLNetResNet(RESNET18, classes, width, bn) if role == "student" else M.RLNetTeacherResNet(RESNET18, classes, width, bn)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"`{path}` does not fit a width-{width} {role} ResNet18: {e}") from None
    masks = ckpt.get("mask_epoch")
    if masks is not None:
        shapes = site_shapes(model)
        if len(masks) != len(shapes):
            raise CheckpointError(f"`{path}`: {len(masks)} masks for {len(shapes)} ReLU sites")
        masks = [torch.as_tensor(m).to(torch.float32) for m in masks]
        for i, (m, s) in enumerate(zip(masks, shapes)):
            if tuple(m.shape) != tuple(s):
                raise CheckpointError(f"`{path}`: mask_epoch[{i}] has shape {list(m.shape)}, site {i} is {list(s)}")
    return model, masks, ckpt
