#!/usr/bin/env python3
"""Builds the input-gradient fixtures in ``tests/fixtures/grad/`` (see tests/fixtures/README.md).

For three parity fixtures (RLNet dual-BN ResNet18, SNL ResNet18, RLNet dual-BN pre-activation
WRN) it rebuilds the original PyTorch module exactly as ``tools/make_fixtures.py`` built it
(same seeds; checked against the logits stored in ``<name>.io.safetensors``), then, in float64
on every batch-norm path:

- turns the fixture's normalized inputs back into [0,1] pixels ``x`` (CIFAR-10 mean and std);
- computes the logits of ``(x - mean) / std`` and, by autograd, the gradient with respect to
  ``x`` of the summed cross-entropy against fixed labels, and of ``sum(upstream * logits)`` for
  a fixed random ``upstream``.

``tests/grad_parity.rs`` checks pibench's batched f32 forward and backward against them.

    python3 tools/make_grad_fixture.py        # writes tests/fixtures/grad/
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import export_checkpoint as exporter
import make_fixtures as fx
from safetensors import safe_open

#: The parity fixtures (names in make_fixtures.FIXTURES) that get a gradient fixture.
MODELS = ["rlnet-resnet18-w8-c10", "snl-resnet18-w8-c10", "rlnet-wrn16-2-b4-c10"]
#: The rebuilt module must reproduce the stored float32 logits to this relative error.
REBUILD_TOLERANCE = 1e-5


def rebuild(name: str):
    """The module, masks and BN paths of fixture ``name``, rebuilt from its seed."""
    index = [f[0] for f in fx.FIXTURES].index(name)
    kind = fx.FIXTURES[index][1]
    g = torch.Generator().manual_seed(fx.SEED + index)
    calib = fx.cifar_inputs(64, g)
    fx.cifar_inputs(8 * fx.N_INPUTS, g)  # the candidate pool: drawn to keep the stream aligned
    model, _, paths, _ = fx.build(kind, g, calib)
    return model, paths


def load_io(name: str, fixtures: str):
    with safe_open(os.path.join(fixtures, f"{name}.io.safetensors"), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def make(fixtures: str, out_dir: str) -> None:
    torch.manual_seed(fx.SEED)
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    mean = torch.tensor(fx.CIFAR_MEAN, dtype=torch.float32)
    std = torch.tensor(fx.CIFAR_STD, dtype=torch.float32)
    for name in MODELS:
        model, paths = rebuild(name)
        io = load_io(name, fixtures)
        inputs = io["inputs"]
        with torch.no_grad():
            for p, f in paths.items():
                got = f(inputs)
                want = io[f"logits_{p}"]
                err = float((got - want).abs().max() / want.abs().max())
                if err > REBUILD_TOLERANCE:
                    raise SystemExit(f"{name} {p}: rebuilt module differs from the fixture ({err:.2e})")
        model.double()
        m64, s64 = mean.double().view(1, 3, 1, 1), std.double().view(1, 3, 1, 1)
        # Pixels as f32 (what the Rust test feeds), then exactly those values in float64.
        pixels = (inputs.double() * s64 + m64).clamp(0.0, 1.0).to(torch.float32)
        n = pixels.shape[0]
        g = torch.Generator().manual_seed(fx.SEED + 1000)
        tensors = {"pixels": pixels, "mean": mean, "std": std}
        for p, f in paths.items():
            x = pixels.double().requires_grad_(True)
            logits = f((x - m64) / s64)
            classes = logits.shape[1]
            labels = torch.tensor([(3 * i + 1) % classes for i in range(n)], dtype=torch.int64)
            upstream = torch.rand((n, classes), generator=g, dtype=torch.float64) - 0.5
            loss = F.cross_entropy(logits, labels, reduction="sum")
            (grad_ce,) = torch.autograd.grad(loss, x, retain_graph=True)
            (grad_up,) = torch.autograd.grad((upstream * logits).sum(), x)
            tensors["labels"] = labels
            tensors[f"upstream_{p}"] = upstream.to(torch.float32)
            tensors[f"logits_{p}"] = logits.detach().to(torch.float32)
            tensors[f"loss_{p}"] = F.cross_entropy(logits.detach(), labels, reduction="none").to(torch.float32)
            tensors[f"grad_ce_{p}"] = grad_ce.to(torch.float32)
            tensors[f"grad_upstream_{p}"] = grad_up.to(torch.float32)
            print(f"{name:24s} {p:5s} loss {float(loss.detach()):8.4f}  |grad| {float(grad_ce.norm()):.4e}")
        path = os.path.join(out_dir, f"{name}.grad.safetensors")
        exporter.save_safetensors(
            tensors,
            path,
            metadata={
                "pibench.grad": "1",
                "model": f"{name}.safetensors",
                "bn_paths": json.dumps(sorted(paths)),
                "loss": "cross-entropy summed over the batch; gradients with respect to pixels",
                "preprocess": "(pixels - mean) / std per channel",
                "generator": f"tools/make_grad_fixture.py, seed {fx.SEED}, PyTorch float64",
            },
        )
        print(f"  wrote {path} ({os.path.getsize(path) / 1024:.1f} KiB)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fixtures", default=os.path.join(fx.REPO, "tests", "fixtures"), help="the parity fixtures")
    p.add_argument("--out", default=os.path.join(fx.REPO, "tests", "fixtures", "grad"), help="output directory")
    args = p.parse_args()
    make(args.fixtures, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
