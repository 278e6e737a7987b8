#!/usr/bin/env python3
"""pibench's evaluator beside PyTorch on the same network, in one run: throughput (images/s) of
the f32 forward pass, PGD, the fixed-point oracle and the PI-exact arithmetic, and their ratios
to PyTorch's f32 forward pass and PGD (issue 11's targets: ≥ 0.5× for PGD and for PI-exact).

    python3 benches/eval_vs_pytorch.py [--model models/resnet18-c10-rlnet-82k.safetensors]
        [--batch 100] [--threads 2] [--steps 7] [--rounds 3]

1. ``cargo bench --bench eval -- --export`` writes the bundle with its synthetic weights
   materialized, plus a few images and pibench's logits of them;
2. the bundle's graph is built as a PyTorch module (conv2d, batch norm in eval mode on the chosen
   path, masked ReLU as ``where(mask, relu(x), x)``, add, pools, flatten, linear) and checked
   against pibench's logits;
3. PyTorch (``torch.set_num_threads(threads)``, parameters frozen, ``inference_mode`` for the
   forward pass) and ``cargo bench --bench eval`` (``RAYON_NUM_THREADS=threads``) are timed in
   alternation for ``--rounds`` rounds; the best round of each is reported, so that load from
   other processes on a shared machine penalizes both alike as far as possible.

PGD is the same attack on both sides: L∞, eps 8/255, step 2/255, random start, ``--steps``
steps, cross-entropy summed over the batch, gradient with respect to the input only, on the
adversarial BN path of a dual-BN model. The fixed-point oracle (``fixed``) and the PI-exact
arithmetic (``pi_exact``: linear layers on the ring, kept ReLUs as the garbled circuit computes
them, linearized elements truncated locally on fresh seeded shares; ℓ = 64, f = 12) are compared
with PyTorch's f32 forward pass. Every pibench round is a fresh process (``cargo bench`` of an
already built bench binary), which warms up on one batch before it times; the load average of the
machine is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

from bundle_interp import load_bundle, walk  # noqa: E402
from safetensors import safe_open  # noqa: E402

#: Which PyTorch measurement each pibench measurement is compared with.
YARDSTICK = {"f32_forward": "forward", "pgd": "pgd", "fixed": "forward", "pi_exact": "forward"}
#: Issue 11's targets, as wall-clock ratios to the yardstick.
TARGET = {"pgd": 0.5, "pi_exact": 0.5}


class BundleModule(torch.nn.Module):
    """A bundle's graph (docs/FORMAT.md) as a PyTorch module, on one batch-norm path."""

    def __init__(self, path: str, bn_path: str):
        super().__init__()
        tensors, self.graph, _ = load_bundle(path)
        self.bn_path = bn_path
        self.t = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
        for k, v in self.t.items():
            if v.dtype == torch.uint8:
                self.t[k] = v.bool()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return walk(self.graph, x, self._apply)

    def _apply(self, op: dict, x):
        t = self.t
        kind = op["op"]
        if kind == "conv2d":
            bias = t[op["bias"]] if op.get("bias") else None
            return F.conv2d(x, t[op["weight"]], bias, stride=op.get("stride", 1), padding=op.get("padding", 0))
        if kind in ("batchnorm", "dual_batchnorm"):
            p = op if kind == "batchnorm" else op[self.bn_path]
            return F.batch_norm(
                x,
                t[p["running_mean"]],
                t[p["running_var"]],
                t[p["weight"]],
                t[p["bias"]],
                training=False,
                eps=op.get("eps", 1e-5),
            )
        if kind == "relu":
            return F.relu(x) if op.get("mask") is None else torch.where(t[op["mask"]], F.relu(x), x)
        if kind == "avgpool":
            if op.get("global"):
                return x.mean(dim=(2, 3), keepdim=True)
            return F.avg_pool2d(x, op["kernel"], op.get("stride", op["kernel"]))
        if kind == "maxpool":
            return F.max_pool2d(x, op["kernel"], op.get("stride", op["kernel"]), op.get("padding", 0))
        if kind == "flatten":
            return x.flatten(1)
        if kind == "linear":
            return F.linear(x, t[op["weight"]], t[op["bias"]] if op.get("bias") else None)
        raise ValueError(f"unknown op {kind!r}")


def pgd(model, x, labels, eps=8 / 255, step=2 / 255, steps=7):
    """L∞ PGD with a random start, as src/eval/attack.rs computes it."""
    adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), labels, reduction="sum")
        (g,) = torch.autograd.grad(loss, adv)
        adv = (x + (adv.detach() + step * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    return adv


def timed(f):
    """Wall-clock and CPU seconds (all threads of this process) of ``f()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    f()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_torch(clean, adv, args) -> dict:
    """Images/s of PyTorch's forward pass and PGD: (wall clock, CPU-time based)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, 3, 32, 32, generator=g)
    labels = torch.arange(args.batch) % 10

    def forward():
        with torch.inference_mode():
            for _ in range(args.forward_batches):
                clean(x)

    def attack():
        for _ in range(args.pgd_batches):
            pgd(adv, x, labels, steps=args.steps)

    with torch.inference_mode():
        clean(x)  # warm-up
    pgd(adv, x, labels, steps=1)  # warm-up
    out = {}
    for name, f, batches in [("forward", forward, args.forward_batches), ("pgd", attack, args.pgd_batches)]:
        wall, cpu = timed(f)
        images = args.batch * batches
        out[name] = (images / wall, images / cpu * args.threads)
    return out


def cargo_bench(extra, threads) -> str:
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        ["cargo", "bench", "--quiet", "--bench", "eval", "--", *extra],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def time_pibench(args) -> dict:
    out = cargo_bench(
        [
            "--model",
            args.model,
            "--batch",
            str(args.batch),
            "--forward-batches",
            str(args.forward_batches),
            "--pgd-batches",
            str(args.pgd_batches),
            "--pi-batches",
            str(args.pi_batches),
            "--steps",
            str(args.steps),
            "--json",
        ],
        args.threads,
    )
    line = [ln for ln in out.splitlines() if ln.startswith("{")][-1]
    return {
        r["name"]: (r["images_per_s"], r["images"] / r["cpu_seconds"] * args.threads)
        for r in json.loads(line)["results"]
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="models/resnet18-c10-rlnet-82k.safetensors")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--forward-batches", type=int, default=3)
    p.add_argument("--pgd-batches", type=int, default=1)
    p.add_argument("--pi-batches", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        exported = os.path.join(tmp, "model.safetensors")
        cargo_bench(["--model", args.model, "--export", exported, "--export-only"], args.threads)
        check = {}
        with safe_open(exported.replace(".safetensors", ".check.safetensors"), framework="pt") as f:
            check = {k: f.get_tensor(k) for k in f.keys()}
        modules = {}
        for key in sorted(check):
            if not key.startswith("logits_"):
                continue
            path = key[len("logits_") :]
            m = BundleModule(exported, path).eval()
            with torch.no_grad():
                got = m(check["pixels"].view(-1, 3, 32, 32))
            want = check[key]
            err = float((got - want).abs().max() / want.abs().max())
            print(f"PyTorch vs pibench logits ({path} path): max relative difference {err:.1e}")
            if err > 1e-4:
                raise SystemExit("PyTorch and pibench do not compute the same network")
            modules[path] = m
    clean = modules["clean"]
    adv = modules.get("adv", clean)

    best_torch, best_ours = {}, {}
    fmt = lambda d: ", ".join(f"{k} {v[0]:.2f} ({v[1]:.2f})" for k, v in d.items())  # noqa: E731
    for r in range(args.rounds):
        t = time_torch(clean, adv, args)
        o = time_pibench(args)
        load = os.getloadavg()[0]
        print(f"round {r + 1}: PyTorch {fmt(t)}; pibench {fmt(o)}  (images/s wall clock (CPU-time based)); load {load:.2f}")
        for best, d in ((best_torch, t), (best_ours, o)):
            for k, v in d.items():
                old = best.get(k, (0.0, 0.0))
                best[k] = (max(old[0], v[0]), max(old[1], v[1]))

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{args.model}, batch {args.batch}, {args.threads} threads, PGD-{args.steps}; best of {args.rounds} rounds; "
        f"load average {load} (1, 5, 15 min)"
    )
    print("images/s by wall clock, and by CPU time (images per CPU-second × threads: what an idle machine")
    print("would give if the work spread over all threads; it counts spin-waiting threads as busy)")
    print(f"{'measurement':14s} {'pibench':>9s} {'PyTorch':>9s} {'ratio':>6s}   {'pibench':>9s} {'PyTorch':>9s} {'ratio':>6s}")
    print(f"{'':14s} {'(wall)':>9s} {'(wall)':>9s} {'':>6s}   {'(CPU)':>9s} {'(CPU)':>9s}")
    for name, ours in best_ours.items():
        ref = best_torch[YARDSTICK.get(name, "forward")]
        target = TARGET.get(name)
        verdict = "" if target is None else f"   target ≥ {target} ({'met' if ours[0] / ref[0] >= target else 'NOT met'})"
        print(
            f"{name:14s} {ours[0]:9.2f} {ref[0]:9.2f} {ours[0] / ref[0]:6.2f}   "
            f"{ours[1]:9.2f} {ref[1]:9.2f} {ours[1] / ref[1]:6.2f}{verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
