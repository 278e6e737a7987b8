"""The stages end to end: load, train epoch by epoch, evaluate, checkpoint, log.

Every stage appends JSON lines to its log: one ``config`` record, one ``epoch`` record per epoch
(training loss/accuracies, the test accuracy on the clean path, the learning rate, seconds), and
one ``final`` record with the test accuracies, the ReLU budget and the wall time (training and
evaluation separately; the process's CPU seconds beside the training wall time, since on a
shared machine the wall time depends on the load, recorded as ``loadavg``). The checkpoint is the *last* epoch's (no model selection on the test
set); its ``best_acc``/``robust_acc`` are that epoch's clean accuracy on ``BN_c`` (or the single
BN) and its PGD accuracy on ``BN_a`` (or the single BN), in percent.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

import torch

from . import data as D
from . import masks as K
from . import nets
from .loops import Hyper, accuracy, lr_at, optimizer, stage1_epoch, stage2_epoch, teacher_epoch

TOOL = "pibench tools/rlnet"


class JsonLog:
    """Appends one JSON object per line (flushed, so a running stage can be followed)."""

    def __init__(self, path: Optional[str], echo: bool = True):
        self.path = path
        self.echo = echo
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(self, record: Dict[str, Any]) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}
        if record.get("event") in ("config", "final") and hasattr(os, "getloadavg"):
            # Timings on a shared machine mean little without the load they ran under.
            record["loadavg"] = [round(v, 2) for v in os.getloadavg()]
        line = json.dumps(record, separators=(",", ":"))
        if self.path:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        if self.echo:
            print(line, flush=True)


@dataclass
class Common:
    """Settings every stage shares."""

    dataset: str
    data_dir: Optional[str] = None
    device: str = "cpu"
    seed: int = 0
    eval_pgd_steps: int = 20  # PGD steps of the final evaluation (RLNet's paper tables: 20)
    limit_test: Optional[int] = None  # evaluate on the first N test images only (smoke runs)
    limit_train: Optional[int] = None  # train on the first N training images only (smoke runs)


def _setup(c: Common):
    torch.manual_seed(c.seed)
    info = D.info(c.dataset)
    train, test = D.load(c.dataset, c.data_dir)
    if c.limit_test is not None:
        test = D.Split(test.images[: c.limit_test], test.labels[: c.limit_test])
    if c.limit_train is not None:
        train = D.Split(train.images[: c.limit_train], train.labels[: c.limit_train])
    return info, train, test, nets.Normalizer.of(info.normalize, c.device)


def _opt(c: Common, h: Hyper, info: D.DatasetInfo, norm: nets.Normalizer, **extra) -> Dict[str, Any]:
    return {
        "tool": TOOL,
        "dataset": c.dataset,
        "num_classes": info.classes,
        "normalize": norm.describe(),
        "seed": c.seed,
        "hyper": asdict(h),
        **extra,
    }


def _final_eval(model, norm, test, c: Common, masks, dual: bool, pgd_steps: int, eps: float, alpha: float) -> Dict[str, Any]:
    clean_c, _ = accuracy(model, norm, test, c.device, masks, "clean")
    res: Dict[str, Any] = {}
    if dual:
        clean_a, adv_a = accuracy(model, norm, test, c.device, masks, "adv", pgd_steps, eps, alpha)
        res.update(clean_bn_c=clean_c, clean_bn_a=clean_a, pgd_bn_a=adv_a)
        res["best_acc"], res["robust_acc"] = clean_c, adv_a
    else:
        _, adv = accuracy(model, norm, test, c.device, masks, "clean", pgd_steps, eps, alpha)
        res.update(clean=clean_c, pgd=adv)
        res["best_acc"], res["robust_acc"] = clean_c, adv
    res["attack"] = f"PGD-{pgd_steps} L-inf, eps {eps * 255:g}/255, step {alpha * 255:g}/255, random start, cross-entropy" + (
        ", on BN_a" if dual else ""
    )
    res["test_images"] = len(test)
    return res


def _budget(shapes, masks) -> Dict[str, Any]:
    kept = [int(m.sum()) for m in masks] if masks is not None else [int(torch.tensor(s).prod()) for s in shapes]
    total = sum(int(torch.tensor(s).prod()) for s in shapes)
    return {"budget": sum(kept), "total_relus": total, "kept_per_site": kept}


def train_teacher(c: Common, h: Hyper, method: str, width: int, out: str, log: JsonLog) -> Dict[str, Any]:
    """RLNet's robust dual-BN teacher (``method='rlnet'``) or SeNet's clean single-BN one."""
    robust = method == "rlnet"
    info, train, test, norm = _setup(c)
    model = nets.build("teacher", width, info.classes, "dual" if robust else "single").to(c.device)
    opt = optimizer(model, h)
    log.write({"stage": "teacher", "event": "config", "method": method, "width": width, "out": out, "hyper": asdict(h),
               "train_images": len(train), "test_images": len(test), "device": c.device, "threads": torch.get_num_threads()})
    t0, c0 = time.time(), time.process_time()
    for epoch in range(1, h.epochs + 1):
        lr = lr_at(h, epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        te = time.time()
        m = teacher_epoch(model, norm, train, info, h, opt, robust, c.device)
        test_acc, _ = accuracy(model, norm, test, c.device)
        log.write({"stage": "teacher", "event": "epoch", "epoch": epoch, "lr": lr, **m, "test_acc_clean": test_acc,
                   "seconds": round(time.time() - te, 2)})
    train_s, train_cpu = time.time() - t0, time.process_time() - c0
    t1 = time.time()
    res = _final_eval(model, norm, test, c, None, robust, c.eval_pgd_steps, h.eps, h.pgd_alpha)
    eval_s = time.time() - t1
    shapes = nets.site_shapes(model)
    summary = {"stage": "teacher", "method": method, "model": "ResNet18 (resnetv2)", "width": width, **res,
               **_budget(shapes, None), "train_seconds": round(train_s, 1),
               "train_cpu_seconds": round(train_cpu, 1), "eval_seconds": round(eval_s, 1)}
    nets.save(out, model, h.epochs, res["best_acc"], res["robust_acc"],
              _opt(c, h, info, norm, model="ResNet18", width=width, bn="dual" if robust else "single", method=method,
                   stage="teacher", results=res))
    log.write({"event": "final", **summary})
    return summary


def _teacher(path: str, c: Common):
    teacher, tmasks, _ = nets.load(path)
    if tmasks is not None:
        raise nets.CheckpointError(f"teacher `{path}` carries masks: the teacher is the all-ReLU network")
    return teacher.to(c.device).eval()


def train_stage1(c: Common, h: Hyper, method: str, teacher_path: str, width: int, fractions: List[float],
                 alloc_name: str, out: str, log: JsonLog, eval_pgd_steps: int = 7) -> Dict[str, Any]:
    """Stage 1: mask identification to the per-site budget, distilling from the teacher."""
    robust = method == "rlnet"
    info, train, test, norm = _setup(c)
    teacher = _teacher(teacher_path, c)
    if robust and teacher.bn_kind != "dual":
        raise nets.CheckpointError(f"RLNet's stage 1 needs the dual-BN robust teacher; `{teacher_path}` has single BN")
    student = nets.build("student", width, info.classes, "dual" if robust else "single").to(c.device)
    shapes = nets.site_shapes(student)
    if nets.site_shapes(teacher) != shapes:
        raise nets.CheckpointError(f"teacher `{teacher_path}` has other site shapes than a width-{width} student")
    keep = K.kept_per_site(fractions, shapes)
    masks = [m.to(c.device) for m in K.initial(fractions, shapes)]
    opt = optimizer(student, h)
    log.write({"stage": "stage1", "event": "config", "method": method, "width": width, "teacher": teacher_path, "out": out,
               "allocation": alloc_name, "fractions": fractions, "keep_per_site": keep, "budget": sum(keep),
               "hyper": asdict(h), "device": c.device, "threads": torch.get_num_threads()})
    t0, c0 = time.time(), time.process_time()
    for epoch in range(1, h.epochs + 1):
        lr = lr_at(h, epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        te = time.time()
        m, masks = stage1_epoch(student, teacher, norm, train, info, h, opt, masks, keep, robust, c.device)
        # RLNet validates (and saves) the epoch's weights with the masks the epoch just chose.
        test_acc, _ = accuracy(student, norm, test, c.device, masks)
        log.write({"stage": "stage1", "event": "epoch", "epoch": epoch, "lr": lr, **m, "test_acc_clean": test_acc,
                   "seconds": round(time.time() - te, 2)})
    train_s, train_cpu = time.time() - t0, time.process_time() - c0
    t1 = time.time()
    res = _final_eval(student, norm, test, c, masks, robust, eval_pgd_steps, h.eps, h.pgd_alpha)
    eval_s = time.time() - t1
    summary = {"stage": "stage1", "method": method, "model": "CustomResNet18", "width": width, "allocation": alloc_name, **res,
               **_budget(shapes, masks), "train_seconds": round(train_s, 1),
               "train_cpu_seconds": round(train_cpu, 1), "eval_seconds": round(eval_s, 1)}
    nets.save(out, student, h.epochs, res["best_acc"], res["robust_acc"],
              _opt(c, h, info, norm, model="CustomResNet18", width=width, bn=student.bn_kind, method=method, stage="stage1",
                   teacher=os.path.basename(teacher_path), allocation=alloc_name, fractions=fractions, results=res),
              masks)
    log.write({"event": "final", **summary})
    return summary


def train_stage2(c: Common, h: Hyper, method: str, teacher_path: str, student_path: str, out: str, log: JsonLog) -> Dict[str, Any]:
    """Stage 2: fine-tuning with the stage-1 masks frozen (shared by both BN paths)."""
    robust = method == "rlnet"
    info, train, test, norm = _setup(c)
    teacher = _teacher(teacher_path, c)
    student, masks, ckpt = nets.load(student_path)
    if masks is None:
        raise nets.CheckpointError(f"`{student_path}` has no `mask_epoch`: stage 2 starts from a stage-1 checkpoint")
    if robust and student.bn_kind != "dual":
        raise nets.CheckpointError(f"RLNet's stage 2 needs a dual-BN student; `{student_path}` has single BN")
    student = student.to(c.device)
    masks = [m.to(c.device) for m in masks]
    prev = ckpt.get("opt") if isinstance(ckpt.get("opt"), dict) else {}
    width = int(student.conv1.weight.shape[0])
    opt = optimizer(student, h)
    log.write({"stage": "stage2", "event": "config", "method": method, "width": width, "teacher": teacher_path,
               "student": student_path, "out": out, "budget": int(sum(int(m.sum()) for m in masks)), "hyper": asdict(h),
               "device": c.device, "threads": torch.get_num_threads()})
    t0, c0 = time.time(), time.process_time()
    for epoch in range(1, h.epochs + 1):
        lr = lr_at(h, epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        te = time.time()
        m = stage2_epoch(student, teacher, norm, train, info, h, opt, masks, robust, c.device)
        test_acc, _ = accuracy(student, norm, test, c.device, masks)
        log.write({"stage": "stage2", "event": "epoch", "epoch": epoch, "lr": lr, **m, "test_acc_clean": test_acc,
                   "seconds": round(time.time() - te, 2)})
    train_s, train_cpu = time.time() - t0, time.process_time() - c0
    t1 = time.time()
    res = _final_eval(student, norm, test, c, masks, robust, c.eval_pgd_steps, h.eps, h.pgd_alpha)
    eval_s = time.time() - t1
    shapes = nets.site_shapes(student)
    summary = {"stage": "stage2", "method": method, "model": "CustomResNet18", "width": width,
               "allocation": prev.get("allocation"), **res, **_budget(shapes, masks),
               "train_seconds": round(train_s, 1),
               "train_cpu_seconds": round(train_cpu, 1), "eval_seconds": round(eval_s, 1)}
    nets.save(out, student, h.epochs, res["best_acc"], res["robust_acc"],
              _opt(c, h, info, norm, model="CustomResNet18", width=width, bn=student.bn_kind, method=method, stage="stage2",
                   teacher=os.path.basename(teacher_path), stage1=os.path.basename(student_path),
                   allocation=prev.get("allocation"), fractions=prev.get("fractions"), results=res),
              masks)
    log.write({"event": "final", **summary})
    return summary


def last_final(log_path: str) -> Optional[Dict[str, Any]]:
    """The last ``final`` record of a log, or None (used to resume a pipeline)."""
    if not os.path.isfile(log_path):
        return None
    final = None
    with open(log_path) as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r.get("event") == "final":
                final = r
    return final
