#!/usr/bin/env python3
"""Builds the PyTorch parity fixtures in ``tests/fixtures/`` (see its README.md).

For each small model it: builds the module (``tools/pibench_models.py``) with random weights,
non-trivial batch-norm statistics and random masks; saves a real checkpoint in the original
layout (``torch.save`` with the original dict structure); exports it with
``tools/export_checkpoint.py``; computes PyTorch's logits on a few CIFAR-normalized inputs for
every batch-norm path; and checks that ``tools/bundle_interp.py`` (an independent interpreter of
docs/FORMAT.md reading only the bundle file) reproduces them. Regeneration is deterministic.

    python3 tools/make_fixtures.py            # writes tests/fixtures/
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bundle_interp
import export_checkpoint as exporter
import pibench_models as M
from random_nets import calibrate_bn, random_masks, random_weights, set_alphas

SEED = 20240517
N_INPUTS = 4
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
#: The interpreter (float64) must match PyTorch (float32) to this relative error.
TOLERANCE = 1e-5
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cifar_inputs(n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` random 32x32 RGB images in [0,1], normalized with the CIFAR-10 mean and std."""
    x = torch.rand(n, 3, 32, 32, generator=g)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def decisive_inputs(pool: torch.Tensor, paths) -> torch.Tensor:
    """The first N_INPUTS images of `pool` whose top two logits differ by at least 5% of the
    largest logit on every BN path: a near tie makes "same class" a coin toss at any precision,
    which would test rounding luck rather than the fixed-point implementation."""
    with torch.no_grad():
        outs = [f(pool) for f in paths.values()]
    keep = []
    for i in range(pool.shape[0]):
        ok = True
        for out in outs:
            top = torch.topk(out[i], 2).values
            if float(top[0] - top[1]) < 0.05 * float(out[i].abs().max()):
                ok = False
        if ok:
            keep.append(i)
        if len(keep) == N_INPUTS:
            break
    if len(keep) < N_INPUTS:
        raise SystemExit("not enough decisive inputs in the pool; enlarge it")
    return pool[keep].contiguous()


def build(kind: str, g: torch.Generator, calib: torch.Tensor):
    """Returns (module, checkpoint dict, {bn path: logits function}) for one fixture kind."""
    if kind == "rlnet-resnet18":
        model = M.RLNetResNet(width=8, bn="dual", num_classes=10)
    elif kind == "rlnet-wrn":
        model = M.RLNetWideResNet(depth=16, widen=2, base=4, bn="dual", num_classes=10)
    elif kind == "snl-resnet18":
        model = M.SNLResNet(width=8, num_classes=10, input_size=32)
    elif kind == "snl-wrn":
        model = M.SNLWideResNet(depth=16, widen=2, base=4, num_classes=10, input_size=32)
    elif kind == "plain-resnet18":
        model = M.TorchvisionResNet(width=8, num_classes=10)
    else:
        raise ValueError(kind)
    model.eval()
    random_weights(model, g)
    shapes = M.relu_site_shapes(model, (3, 32, 32))
    n = len(shapes)
    masks = None
    if kind != "plain-resnet18":
        masks = random_masks(shapes, g, ones_site=n - 2, zeros_site=2)
    if kind.startswith("snl"):
        set_alphas(model, masks)

    if kind.startswith("rlnet"):
        # Different statistics per path: the adversarial BNs see perturbed inputs.
        adv_calib = calib + 0.5 * torch.randn(calib.shape, generator=g)
        calibrate_bn(model, lambda x: model(x, masks, "clean"), calib, lambda n_: ".BN_c" in n_, g)
        calibrate_bn(model, lambda x: model(x, masks, "adv"), adv_calib, lambda n_: ".BN_a" in n_, g)
        paths = {"clean": lambda x: model(x, masks, "clean"), "adv": lambda x: model(x, masks, "adv")}
        # RLNet's `<model>_last.pth`: {opt, model, mask_epoch}; opt is its argparse Namespace.
        opt = argparse.Namespace(
            model_s="CustomResNet18" if "resnet" in kind else "Custom_wrn_22_8",
            dataset="cifar10",
            use2BN=True,
            use3BN=False,
        )
        ckpt = {"opt": opt, "model": model.state_dict(), "mask_epoch": masks}
    elif kind.startswith("snl"):
        calibrate_bn(model, model, calib, lambda n_: True, g)
        paths = {"clean": lambda x: model(x)}
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
        arch = "resnet18_in" if "resnet" in kind else "wide_resnet_22_8"
        ckpt = {"arch": arch, "state_dict": model.state_dict(), "optimizer": opt.state_dict()}
    else:
        calibrate_bn(model, lambda x: model(x), calib, lambda n_: True, g)
        paths = {"clean": lambda x: model(x)}
        ckpt = model.state_dict()  # a bare torchvision-style state dict
    return model, ckpt, paths, masks


FIXTURES = [
    # (fixture name, kind, note)
    ("rlnet-resnet18-w8-c10", "rlnet-resnet18", "RLNet CustomResNet18, dual BN, base width 8"),
    ("snl-resnet18-w8-c10", "snl-resnet18", "SNL resnet18_in, base width 8"),
    ("plain-resnet18-w8-c10", "plain-resnet18", "torchvision-style ResNet18 (CIFAR stem), all ReLU, base width 8"),
    ("rlnet-wrn16-2-b4-c10", "rlnet-wrn", "RLNet CustomWideResNet depth 16 widen 2, dual BN, base width 4"),
    ("snl-wrn16-2-b4-c10", "snl-wrn", "SNL WideResNet depth 16 widen 2, base width 4"),
]


def make(out_dir: str, keep_checkpoints: Optional[str]) -> float:
    """Writes every fixture; returns the worst interpreter-vs-PyTorch relative error."""
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # same summation order on every run
    os.makedirs(out_dir, exist_ok=True)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        ckpt_dir = keep_checkpoints or tmp
        os.makedirs(ckpt_dir, exist_ok=True)
        for i, (name, kind, note) in enumerate(FIXTURES):
            g = torch.Generator().manual_seed(SEED + i)
            calib = cifar_inputs(64, g)
            pool = cifar_inputs(8 * N_INPUTS, g)
            _, ckpt, paths, _ = build(kind, g, calib)
            inputs = decisive_inputs(pool, paths)
            ckpt_path = os.path.join(ckpt_dir, f"{name}.pth")
            torch.save(ckpt, ckpt_path)

            # Export from the file, as a user would.
            bundle = exporter.export(
                exporter.load_checkpoint(ckpt_path),
                name=name,
                source=ckpt_path,
                dataset="cifar10",
                notes=f"pibench parity fixture: {note}, random weights",
            )
            bundle.card["synthetic"] = True  # weights are random, not trained
            bundle_path = os.path.join(out_dir, f"{name}.safetensors")
            exporter.write_bundle(bundle, bundle_path)

            with torch.no_grad():
                logits = {p: f(inputs).detach().to(torch.float32).contiguous() for p, f in paths.items()}
            errors = {}
            for p, ref in logits.items():
                got = bundle_interp.run(bundle_path, inputs.numpy(), p)
                errors[p] = bundle_interp.max_rel_error(got, ref.double().numpy())
                worst = max(worst, errors[p])

            sites = [
                {"site": s.index, "name": s.op, "shape": list(s.shape), "elements": s.elements, "kept": s.kept}
                for s in bundle.sites
            ]
            io = {"inputs": inputs.contiguous(), "logits_clean": logits["clean"]}
            if "adv" in logits:
                io["logits_adv"] = logits["adv"]
            exporter.save_safetensors(
                io,
                os.path.join(out_dir, f"{name}.io.safetensors"),
                metadata={
                    "pibench.io": "1",
                    "model": f"{name}.safetensors",
                    "bn_paths": json.dumps(sorted(logits)),
                    "kept": json.dumps([s["kept"] for s in sites]),
                    "sites": json.dumps(sites, separators=(",", ":")),
                    "budget": str(bundle.budget),
                    "total_relus": str(bundle.total_relus),
                    "interp_max_rel_error": json.dumps({p: float(f"{e:.3e}") for p, e in errors.items()}),
                    "generator": f"tools/make_fixtures.py, seed {SEED}",
                },
            )
            size = sum(
                os.path.getsize(os.path.join(out_dir, f)) for f in (f"{name}.safetensors", f"{name}.io.safetensors")
            )
            errs = ", ".join(f"{p} {e:.2e}" for p, e in errors.items())
            print(
                f"{name:26s} {len(sites):2d} sites  budget {bundle.budget:6d}/{bundle.total_relus:6d}  "
                f"{size / 1024:7.1f} KiB  interpreter vs PyTorch max rel err: {errs}"
            )
            if max(errors.values()) > TOLERANCE:
                raise SystemExit(f"{name}: the bundle's graph does not reproduce PyTorch ({errs} > {TOLERANCE})")
    print(f"worst max relative error {worst:.2e} (tolerance {TOLERANCE})")
    return worst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures"), help="output directory")
    p.add_argument("--keep-checkpoints", metavar="DIR", help="also keep the PyTorch checkpoints in DIR")
    args = p.parse_args()
    make(args.out, args.keep_checkpoints)
    return 0


if __name__ == "__main__":
    sys.exit(main())
