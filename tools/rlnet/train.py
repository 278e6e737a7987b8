#!/usr/bin/env python3
"""RLNet's three-stage pipeline and the SeNet-style baseline (PyTorch, CPU or CUDA).

    train.py teacher  --method rlnet|senet --dataset D --width W --out T.pth
    train.py stage1   --method rlnet|senet --dataset D --teacher T.pth --alloc NAME --out S1.pth
    train.py stage2   --method rlnet|senet --dataset D --teacher T.pth --student S1.pth --out S2.pth
    train.py pipeline --dataset D --width W --allocs A,B,C --methods rlnet,senet --out-dir DIR [--export-dir models]
    train.py data     digits-32 --out data/digits32          # the digits-32 test split as CIFAR-10 binary

See tools/rlnet/README.md. Checkpoints are RLNet's format (``model``, ``mask_epoch``, ``best_acc``,
``robust_acc``): ``tools/export_checkpoint.py`` turns them into pibench bundles unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.dirname(HERE)
sys.path.insert(0, TOOLS)

import torch  # noqa: E402

from rlnet import data as D  # noqa: E402
from rlnet import masks as K  # noqa: E402
from rlnet import nets  # noqa: E402
from rlnet.loops import Hyper  # noqa: E402
from rlnet.stages import Common, JsonLog, last_final, train_stage1, train_stage2, train_teacher  # noqa: E402

EXPORTER = os.path.join(TOOLS, "export_checkpoint.py")

# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------

#: RLNet's defaults and README commands: teacher 240 epochs at lr 0.05 (decay x0.1 after 150,
#: 180, 210), stage 1 150 epochs at 0.05 (``--t1_epochs``; its decay epochs are never reached),
#: stage 2 240 epochs at 0.01; batch 128, PGD-7 (eps 8/255, step 2/255), KD temperature 4;
#: RLNet gamma 0.5 / alpha 0.5 / beta 1000 in both stages, SeNet gamma 0.5 / alpha 0.5 in stage 1
#: and gamma 0.1 / alpha 0.5 / beta 1000 in stage 2.
PAPER = {
    "teacher": Hyper(epochs=240, lr=0.05, lr_decay_epochs=[150, 180, 210]),
    "stage1": Hyper(epochs=150, lr=0.05, lr_decay_epochs=[150, 180, 210]),
    "stage2-rlnet": Hyper(epochs=240, lr=0.01, lr_decay_epochs=[150, 180, 210]),
    "stage2-senet": Hyper(epochs=240, lr=0.01, lr_decay_epochs=[150, 180, 210], gamma=0.1),
}

#: The bundled digits models' schedule: RLNet's, cut down to what one thread of a shared 2-core
#: machine trains in about an hour for 1,297 images (the teacher's decays at RLNet's fractions of
#: the run), batch 64 for more steps per epoch.
DIGITS = {
    "teacher": Hyper(epochs=30, lr=0.05, lr_decay_epochs=[19, 23], batch_size=64),
    "stage1": Hyper(epochs=3, lr=0.05, batch_size=64),
    "stage2-rlnet": Hyper(epochs=4, lr=0.01, lr_decay_epochs=[3], batch_size=64),
    "stage2-senet": Hyper(epochs=4, lr=0.01, lr_decay_epochs=[3], batch_size=64, gamma=0.1),
}

#: A few steps per stage (tests).
SMOKE = {
    "teacher": Hyper(epochs=1, lr=0.05, batch_size=16, pgd_steps=2, max_batches=2),
    "stage1": Hyper(epochs=2, lr=0.05, batch_size=16, pgd_steps=2, max_batches=2),
    "stage2-rlnet": Hyper(epochs=1, lr=0.01, batch_size=16, pgd_steps=2, max_batches=2),
    "stage2-senet": Hyper(epochs=1, lr=0.01, batch_size=16, pgd_steps=2, max_batches=2, gamma=0.1),
}

PRESETS = {"paper": PAPER, "digits": DIGITS, "smoke": SMOKE}
#: Final evaluation PGD steps per preset (the teacher's and stage 2's; stage 1 uses RLNet's 7).
EVAL_STEPS = {"paper": 20, "digits": 20, "smoke": 1}
STAGE1_EVAL_STEPS = {"paper": 7, "digits": 7, "smoke": 1}


def hyper_for(args, stage: str) -> Hyper:
    """The preset's hyperparameters for ``stage``, with the command line's overrides."""
    key = f"stage2-{args.method}" if stage == "stage2" else stage
    h = dataclasses.replace(PRESETS[args.preset][key])
    for name, attr in (("epochs", "epochs"), ("lr", "lr"), ("batch_size", "batch_size"), ("pgd_steps", "pgd_steps"),
                       ("kd_t", "kd_t"), ("gamma", "gamma"), ("alpha", "alpha"), ("beta", "beta"),
                       ("max_batches", "max_batches")):
        v = getattr(args, name, None)
        if v is not None:
            setattr(h, attr, v)
    if getattr(args, "lr_decay_epochs", None) is not None:
        h.lr_decay_epochs = [int(e) for e in args.lr_decay_epochs.split(",") if e]
    return h


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=list(D.INFO), help="digits-32 (scikit-learn), cifar10/cifar100 (--data-dir), synthetic")
    p.add_argument("--data-dir", help="directory holding the extracted CIFAR archive (binary or python version)")
    p.add_argument("--preset", default="paper", choices=list(PRESETS), help="schedule defaults (default: paper = RLNet's)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-pgd-steps", type=int, help="PGD steps of the final evaluation (default: 20; stage 1: 7)")
    p.add_argument("--limit-test", type=int, help="evaluate on the first N test images only")
    p.add_argument("--limit-train", type=int, help="train on the first N training images only")


def _hyper_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("hyperparameters (default: the preset's)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--lr-decay-epochs", help="comma-separated epochs after which lr is multiplied by 0.1")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--pgd-steps", type=int, help="PGD steps during training (RLNet: 7)")
    g.add_argument("--kd-t", type=float, help="KD temperature (RLNet: 4)")
    g.add_argument("--gamma", type=float, help="weight of cross-entropy")
    g.add_argument("--alpha", type=float, help="weight of KD / RSLAD")
    g.add_argument("--beta", type=float, help="weight of attention transfer")
    g.add_argument("--max-batches", type=int, help="stop each epoch after this many batches")


def _alloc_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alloc", help=f"RLNet per-site keep fractions by name: {', '.join(K.ALLOCATIONS)}")
    p.add_argument("--fractions", help="explicit per-site keep fractions, comma-separated (17 for ResNet18)")
    p.add_argument("--alloc-scale", type=float, default=1.0, help="multiply the fractions (capped at 1)")


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _common(args, stage1: bool = False) -> Common:
    steps = args.eval_pgd_steps
    if steps is None:
        steps = (STAGE1_EVAL_STEPS if stage1 else EVAL_STEPS)[args.preset]
    return Common(args.dataset, args.data_dir, _device(args.device), args.seed, steps, args.limit_test, args.limit_train)


def _log(args, out: str) -> JsonLog:
    return JsonLog(args.log or os.path.splitext(out)[0] + ".log.jsonl")


def cmd_teacher(args) -> Dict[str, Any]:
    return train_teacher(_common(args), hyper_for(args, "teacher"), args.method, args.width, args.out, _log(args, args.out))


def _fractions(args):
    name = args.alloc if args.fractions is None else None
    fr = K.fractions(name, args.fractions, args.alloc_scale)
    label = (args.alloc or "explicit") + (f"x{args.alloc_scale:g}" if args.alloc_scale != 1.0 else "")
    return fr, label


def cmd_stage1(args) -> Dict[str, Any]:
    fr, label = _fractions(args)
    c = _common(args, stage1=True)
    return train_stage1(c, hyper_for(args, "stage1"), args.method, args.teacher, args.width, fr, label, args.out,
                        _log(args, args.out), c.eval_pgd_steps)


def cmd_stage2(args) -> Dict[str, Any]:
    return train_stage2(_common(args), hyper_for(args, "stage2"), args.method, args.teacher, args.student, args.out,
                        _log(args, args.out))


def budget_label(budget: int) -> str:
    """``6k``-style label of a ReLU budget (exact below 1000)."""
    return f"{round(budget / 1000)}k" if budget >= 1000 else str(budget)


def export(ckpt: str, out: str, dataset: str, name: str, summary: Dict[str, Any], notes: str) -> None:
    """Runs ``tools/export_checkpoint.py`` on the checkpoint as it is."""
    cmd = [sys.executable, EXPORTER, ckpt, "-o", out, "--dataset", dataset, "--name", name,
           "--attack", summary["attack"], "--notes", notes]
    r = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        raise RuntimeError(f"export of `{ckpt}` failed (exit {r.returncode}): {r.stderr.strip()}")


def cmd_pipeline(args) -> Dict[str, Any]:
    """Teachers, then stage 1 and stage 2 of every method at every allocation; optionally export."""
    out_dir = args.out_dir
    log_dir = args.log_dir or os.path.join(out_dir, "logs")
    os.makedirs(out_dir, exist_ok=True)
    allocs = [a for a in args.allocs.split(",") if a]
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in ("rlnet", "senet"):
            raise SystemExit(f"train.py: unknown method `{m}` (rlnet or senet)")
    if args.export_dir and args.dataset == "synthetic":
        raise SystemExit("train.py: synthetic data have no dataset name a bundle card could carry; "
                         "export their checkpoints with tools/export_checkpoint.py yourself")
    summary: Dict[str, Any] = {"dataset": args.dataset, "width": args.width, "preset": args.preset, "device": _device(args.device),
                               "threads": torch.get_num_threads(), "models": {}}
    started = time.time()

    def stage(kind: str, method: str, out: str, log_name: str, run) -> Dict[str, Any]:
        log_path = os.path.join(log_dir, log_name)
        if args.resume and os.path.isfile(out):
            done = last_final(log_path)
            if done is not None:
                print(f"resume: {out} exists, skipping {kind}", flush=True)
                return done
        if os.path.exists(log_path):
            os.remove(log_path)
        a = argparse.Namespace(**vars(args))
        a.method = method
        return run(a, JsonLog(log_path))

    teachers: Dict[str, str] = {}
    for method in methods:
        t_out = os.path.join(out_dir, f"{method}-teacher.pth")
        teachers[method] = t_out
        res = stage("teacher", method, t_out, f"{method}-teacher.jsonl",
                    lambda a, log: train_teacher(_common(a), hyper_for(a, "teacher"), a.method, a.width, t_out, log))
        summary["models"][f"{method}-teacher"] = {"checkpoint": t_out, "stages": {"teacher": res}}
    for method in methods:
        for alloc in allocs:
            fr = K.fractions(alloc, None, args.alloc_scale)
            s1 = os.path.join(out_dir, f"{method}-{alloc}-stage1.pth")
            s2 = os.path.join(out_dir, f"{method}-{alloc}-stage2.pth")
            r1 = stage("stage1", method, s1, f"{method}-{alloc}-stage1.jsonl",
                       lambda a, log: train_stage1(_common(a, True), hyper_for(a, "stage1"), a.method, teachers[method],
                                                   a.width, fr, alloc, s1, log, _common(a, True).eval_pgd_steps))
            r2 = stage("stage2", method, s2, f"{method}-{alloc}-stage2.jsonl",
                       lambda a, log: train_stage2(_common(a), hyper_for(a, "stage2"), a.method, teachers[method], s1, s2, log))
            summary["models"][f"{method}-{alloc}"] = {"checkpoint": s2, "stages": {"stage1": r1, "stage2": r2}}
    summary["this_invocation_seconds"] = round(time.time() - started, 1)  # 0 when every stage was resumed
    finals = [r for e in summary["models"].values() for r in e["stages"].values()]
    summary["stages_train_seconds"] = round(sum(r.get("train_seconds", 0) for r in finals), 1)
    summary["stages_train_cpu_seconds"] = round(sum(r.get("train_cpu_seconds", 0) for r in finals), 1)
    summary["stages_eval_seconds"] = round(sum(r.get("eval_seconds", 0) for r in finals), 1)

    if args.export_dir:
        prefix = args.name_prefix or f"{args.dataset}-resnet18w{args.width}"
        norm = D.info(args.dataset).normalize
        inputs = "pixels/255, no mean/std" if norm is None else f"pixels/255 normalized with mean {list(norm[0])}, std {list(norm[1])}"
        for key, entry in summary["models"].items():
            method, _, rest = key.partition("-")
            final = entry["stages"].get("stage2") or entry["stages"]["teacher"]
            if rest == "teacher":
                if method != "rlnet" and not args.export_senet_teacher:
                    continue
                name = f"{prefix}-teacher" if method == "rlnet" else f"{prefix}-senet-teacher"
                what = "all-ReLU robust teacher (RLNet resnetv2 ResNet18, dual BN)" if method == "rlnet" else "all-ReLU clean teacher (single BN)"
            else:
                name = f"{prefix}-{method}-{budget_label(final['budget'])}"
                what = f"{method} student, allocation {rest} scaled to width {args.width}"
            acc = (f"clean {final['best_acc']} on BN_c, PGD {final['robust_acc']} on BN_a" if "pgd_bn_a" in final
                   else f"clean {final['best_acc']}, PGD {final['robust_acc']}")
            notes = (f"trained by pibench tools/rlnet ({args.preset} schedule) on {args.dataset}: {what}; inputs {inputs}; "
                     f"accuracies reported by training: last epoch on the {final['test_images']}-image test split, {acc}")
            out = os.path.join(args.export_dir, name + ".safetensors")
            export(entry["checkpoint"], out, args.dataset, name, final, notes)
            entry["bundle"] = os.path.relpath(out)
            entry["bundle_bytes"] = os.path.getsize(out)
    with open(os.path.join(log_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def cmd_data(args) -> Dict[str, Any]:
    """Writes digits-32 as CIFAR-10 binary files plus ``split.json``."""
    if args.name != "digits-32":
        raise SystemExit("train.py data: only digits-32 is generated (CIFAR is read from its own files)")
    train, test = D.load_digits32()
    tr_idx, te_idx = D.digits32_split()
    os.makedirs(args.out, exist_ok=True)
    files = {"test_batch.bin": test}
    if args.with_train:
        files["data_batch_1.bin"] = train
    out: Dict[str, Any] = {"dataset": "digits-32", "source": "sklearn.datasets.load_digits", "test_indices": te_idx.tolist(),
                           "files": {}}
    for fname, split in files.items():
        path = os.path.join(args.out, fname)
        D.write_cifar10_binary(split, path)
        with open(path, "rb") as f:
            out["files"][fname] = {"records": len(split), "sha256": hashlib.sha256(f.read()).hexdigest()}
    with open(os.path.join(args.out, "split.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"{args.out}: " + ", ".join(f"{k} ({v['records']} images)" for k, v in out["files"].items()))
    return out


def cmd_summary(args) -> Dict[str, Any]:
    """Prints a Markdown table of the ``final`` records of every log in a directory."""
    rows: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for fname in sorted(os.listdir(args.log_dir)):
        if not fname.endswith(".jsonl"):
            continue
        final = last_final(os.path.join(args.log_dir, fname))
        if final is None:
            continue
        key = fname[: -len(".jsonl")].rsplit("-", 1)[0] if "-stage" in fname else fname[: -len(".jsonl")]
        rows.setdefault(key, {})[final["stage"]] = final

    def mins(r, field):
        return f"{r[field] / 60:.1f}" if r and field in r else "–"

    print("| model | budget | clean % | PGD-20 % | teacher / stage 1 / stage 2: wall min (CPU min) |")
    print("|---|---:|---:|---:|---|")
    order = sorted(rows, key=lambda k: (k.split("-")[0], "teacher" not in k, rows[k].get("stage2", rows[k].get("teacher", {})).get("budget", 0)))
    for key in order:
        st = rows[key]
        final = st.get("stage2") or st.get("teacher") or st.get("stage1")
        times = " / ".join(f"{mins(st.get(s), 'train_seconds')} ({mins(st.get(s), 'train_cpu_seconds')})"
                           for s in ("teacher", "stage1", "stage2") if s in st)
        clean = final.get("clean_bn_c", final.get("clean"))
        adv = final.get("pgd_bn_a", final.get("pgd"))
        print(f"| {key} | {final['budget']:,} | {clean} | {adv} | {times} |")
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See tools/rlnet/README.md.")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("teacher", help="the all-ReLU teacher: robust dual-BN (rlnet) or clean single-BN (senet)")
    t.add_argument("--method", required=True, choices=["rlnet", "senet"])
    t.add_argument("--width", type=int, default=64, help="stem width (ResNet18: 64)")
    t.add_argument("--out", required=True)
    t.add_argument("--log", help="JSON-lines log (default: OUT with .log.jsonl)")
    _common_args(t)
    _hyper_args(t)

    s1 = sub.add_parser("stage1", help="ReLU mask identification to a per-site budget")
    s1.add_argument("--method", required=True, choices=["rlnet", "senet"])
    s1.add_argument("--teacher", required=True)
    s1.add_argument("--width", type=int, default=64)
    s1.add_argument("--out", required=True)
    s1.add_argument("--log")
    _alloc_args(s1)
    _common_args(s1)
    _hyper_args(s1)

    s2 = sub.add_parser("stage2", help="fine-tuning with the stage-1 mask frozen")
    s2.add_argument("--method", required=True, choices=["rlnet", "senet"])
    s2.add_argument("--teacher", required=True)
    s2.add_argument("--student", required=True, help="the stage-1 checkpoint")
    s2.add_argument("--out", required=True)
    s2.add_argument("--log")
    _common_args(s2)
    _hyper_args(s2)

    pl = sub.add_parser("pipeline", help="every stage of every method and allocation, then export")
    pl.add_argument("--methods", default="rlnet,senet")
    pl.add_argument("--allocs", default="ResNet18_c100_relu50k,ResNet18_C10_relu82k,ResNet18_C10_relu150k",
                    help="comma-separated allocation names")
    pl.add_argument("--alloc-scale", type=float, default=1.0)
    pl.add_argument("--width", type=int, default=64)
    pl.add_argument("--out-dir", required=True, help="checkpoints (and logs/ unless --log-dir)")
    pl.add_argument("--log-dir")
    pl.add_argument("--export-dir", help="export the robust teacher and every stage-2 model here")
    pl.add_argument("--export-senet-teacher", action="store_true", help="also export SeNet's clean teacher")
    pl.add_argument("--name-prefix", help="bundle name prefix (default: DATASET-resnet18wWIDTH)")
    pl.add_argument("--resume", action="store_true", help="skip stages whose checkpoint and final log record exist")
    _common_args(pl)
    _hyper_args(pl)

    dp = sub.add_parser("data", help="write digits-32 as CIFAR-10 binary files")
    dp.add_argument("name", choices=["digits-32"])
    dp.add_argument("--out", required=True)
    dp.add_argument("--with-train", action="store_true", help="also write the training split (data_batch_1.bin)")

    sm = sub.add_parser("summary", help="a Markdown table of the final records of a log directory")
    sm.add_argument("log_dir")

    args = p.parse_args(argv)
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    try:
        {"teacher": cmd_teacher, "stage1": cmd_stage1, "stage2": cmd_stage2, "pipeline": cmd_pipeline, "data": cmd_data,
         "summary": cmd_summary}[args.cmd](args)
    except (D.DataError, nets.CheckpointError, ValueError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
