"""A tiny reference interpreter of the pibench bundle format (docs/FORMAT.md), in numpy.

It reads only the bundle file (tensors + ``pibench.graph``) and shares no code with the
exporter, so evaluating an exported bundle with it and comparing against the PyTorch module
catches graph mistakes (a missing skip, a misplaced ReLU) before the Rust loader sees them.
Computation is in float64 so that its own rounding does not hide small graph errors.
"""

from __future__ import annotations

import json
from typing import Dict, Tuple

import numpy as np
from safetensors import safe_open


def load_bundle(path: str) -> Tuple[Dict[str, np.ndarray], dict, dict]:
    """Returns (tensors, graph, card) of a bundle file."""
    with safe_open(path, framework="np") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("pibench.format") != "1":
        raise ValueError(f"{path}: unsupported pibench.format {meta.get('pibench.format')!r}")
    return tensors, json.loads(meta["pibench.graph"]), json.loads(meta["pibench.card"])


def _conv2d(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    # x [N,C,H,W], w [O,C,kh,kw] -> [N,O,H',W'] by sliding windows and one contraction.
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    kh, kw = w.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True)


def _pool(x: np.ndarray, kernel: int, stride: int, padding: int, how: str) -> np.ndarray:
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]
    return win.max(axis=(4, 5)) if how == "max" else win.mean(axis=(4, 5))


def walk(graph: dict, x, apply):
    """Evaluates ``graph`` on the input value ``x`` in op order, whatever the array type: ``add``
    here, every other op by ``apply(op, value)`` from the value it reads. Returns the output op's
    value. Shared by :func:`run` (numpy) and ``benches/eval_vs_pytorch.py`` (PyTorch)."""
    values = {graph["input"]["name"]: x}
    last = None
    for op in graph["ops"]:
        if op["op"] == "add":
            a, b = (values[v] for v in op["inputs"])
            values[op["name"]] = a + b
        else:
            values[op["name"]] = apply(op, values[op["input"]])
        last = op["name"]
    return values[graph.get("output") or last]


def run(path_or_bundle, inputs: np.ndarray, bn_path: str = "clean") -> np.ndarray:
    """Evaluates the bundle on ``inputs`` ``[N,C,H,W]``; returns the output ``[N, classes]``."""
    if isinstance(path_or_bundle, str):
        tensors, graph, _ = load_bundle(path_or_bundle)
    else:
        tensors, graph = path_or_bundle[0], path_or_bundle[1]
    t = {k: np.asarray(v, dtype=np.float64) if v.dtype != np.uint8 else v for k, v in tensors.items()}
    x0 = np.asarray(inputs, dtype=np.float64)
    expect = tuple(graph["input"]["shape"])
    if x0.shape[1:] != expect:
        raise ValueError(f"input shape {inputs.shape[1:]} but the graph wants {expect}")

    def apply(op: dict, x):
        kind = op["op"]
        if kind == "conv2d":
            y = _conv2d(x, t[op["weight"]], op["stride"], op["padding"])
            if op.get("bias"):
                y = y + t[op["bias"]][None, :, None, None]
            return y
        if kind in ("batchnorm", "dual_batchnorm"):
            p = op if kind == "batchnorm" else op[bn_path]
            mean, var = t[p["running_mean"]], t[p["running_var"]]
            scale = t[p["weight"]] / np.sqrt(var + op["eps"])
            return (x - mean[None, :, None, None]) * scale[None, :, None, None] + t[p["bias"]][None, :, None, None]
        if kind == "relu":
            if op.get("mask") is None:
                return np.maximum(x, 0)
            keep = t[op["mask"]].astype(bool)
            if keep.shape != x.shape[1:]:
                raise ValueError(f"op {op['name']}: mask {keep.shape} vs activation {x.shape[1:]}")
            return np.where(keep[None], np.maximum(x, 0), x)
        if kind == "avgpool":
            if op.get("global"):
                return x.mean(axis=(2, 3), keepdims=True)
            return _pool(x, op["kernel"], op.get("stride", op["kernel"]), 0, "avg")
        if kind == "maxpool":
            return _pool(x, op["kernel"], op.get("stride", op["kernel"]), op.get("padding", 0), "max")
        if kind == "flatten":
            return x.reshape(x.shape[0], -1)
        if kind == "linear":
            y = x @ t[op["weight"]].T
            if op.get("bias"):
                y = y + t[op["bias"]]
            return y
        raise ValueError(f"unknown op {kind!r}")

    return walk(graph, x0, apply)


def max_rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """``max|got - want| / max|want|``: a scale-free error that stays meaningful near zero logits."""
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
