"""One training epoch of each stage, and evaluation, following RLNet's loops.

Robust (RLNet) batches are split in halves as in ``helper/loops.py``/``loops_robust.py``: the
first half is seen clean and as AugMix through ``BN_c``; the second half is attacked with PGD
through ``BN_a`` and seen adversarially through ``BN_a``. The teacher always gives its *clean*
(``BN_c``) logits of the whole batch (RSLAD's soft labels for the adversarial half).

- ``teacher_epoch`` (robust): ``(CE(clean) + CE(augmix) + CE(pgd))/3`` (``train_adversarial``,
  ``use2BN``, AugMix); PGD on cross-entropy. Clean (SeNet): plain CE (``train_vanilla``).
- ``stage1_epoch`` (robust, ``rslad+ce``): ``gamma*(CE_c + CE_aug + CE_adv)/3 +
  alpha*(KD_c + KD_aug + KD_adv)/3`` with PGD on the KD loss against the teacher's clean logits
  (``train_distill_stage1_2BN``); clean: ``gamma*CE + alpha*KD`` (``train_distill_stage1``).
  Either way it accumulates ``|teacher - student|`` of the clean post-ReLU features per site
  over the epoch and returns the next masks: the top ``k_i`` elements of each site.
- ``stage2_epoch`` (robust, ``rslad+attn+augattn+ce``): the stage-1 terms plus
  ``beta*(AT(clean) + AT(augmix))/2``, attention transfer at the four layer outputs, masks frozen
  and shared by both BN paths (``train_distill_stage2_2BN``); clean: ``gamma*CE + alpha*KD +
  beta*AT`` (``train_distill_stage2``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import attack, augment, losses
from .data import DatasetInfo, Split, batches
from .masks import top_k
from .nets import Normalizer, layer_sites, run


@dataclass
class Hyper:
    """Hyperparameters of one stage (RLNet's names in comments)."""

    epochs: int
    lr: float  # --learning_rate
    lr_decay_epochs: List[int] = field(default_factory=list)  # --lr_decay_epochs
    lr_decay_rate: float = 0.1
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eps: float = 8 / 255
    pgd_alpha: float = 2 / 255
    pgd_steps: int = 7  # --steps
    kd_t: float = 4.0  # --kd_T
    gamma: float = 0.5  # weight of CE
    alpha: float = 0.5  # weight of KD
    beta: float = 1000.0  # weight of attention transfer
    max_batches: Optional[int] = None  # smoke runs: stop an epoch after this many batches


def lr_at(h: Hyper, epoch: int) -> float:
    """RLNet's ``adjust_learning_rate``: ``lr * rate^(number of decay epochs < epoch)`` (1-based)."""
    return h.lr * h.lr_decay_rate ** sum(1 for e in h.lr_decay_epochs if epoch > e)


def optimizer(model: nn.Module, h: Hyper) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay, as every RLNet stage uses."""
    return torch.optim.SGD(model.parameters(), lr=h.lr, momentum=h.momentum, weight_decay=h.weight_decay)


class _Meter:
    def __init__(self):
        self.sums: Dict[str, float] = {}
        self.counts: Dict[str, int] = {}

    def add(self, name: str, value: float, n: int = 1) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + value * n
        self.counts[name] = self.counts.get(name, 0) + n

    def correct(self, name: str, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.add(name, 100.0 * float((logits.argmax(1) == y).float().mean()), int(y.shape[0]))

    def means(self) -> Dict[str, float]:
        return {k: round(self.sums[k] / self.counts[k], 4) for k in self.sums}


def _batches(train: Split, info: DatasetInfo, h: Hyper):
    for i, idx in enumerate(batches(len(train), h.batch_size, shuffle=True)):
        if h.max_batches is not None and i >= h.max_batches:
            break
        x = augment.crop_flip(train.images[idx].float() / 255, info.crop_pad, info.hflip)
        yield x, train.labels[idx]


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def teacher_epoch(model, norm: Normalizer, train: Split, info: DatasetInfo, h: Hyper, opt, robust: bool, device) -> Dict[str, float]:
    """One teacher epoch: robust dual-BN (clean + AugMix + PGD) or clean single-BN."""
    model.train()
    meter = _Meter()
    for x, y in _batches(train, info, h):
        if not robust:
            x, y = x.to(device), y.to(device)
            logits, _ = run(model, x, norm)
            loss = F.cross_entropy(logits, y)
            _step(opt, loss)
            meter.add("loss", float(loss.detach()), len(y))
            meter.correct("acc", logits, y)
            continue
        s = x.shape[0] // 2
        xa = augment.augmix(x[:s]).to(device)
        x, y = x.to(device), y.to(device)
        out_c, _ = run(model, x[:s], norm, path="clean")
        out_aug, _ = run(model, xa, norm, path="clean")
        x_adv = attack.pgd(lambda z: run(model, z, norm, path="adv")[0], model, x[s:], y[s:], h.eps, h.pgd_alpha, h.pgd_steps)
        out_adv, _ = run(model, x_adv, norm, path="adv")
        loss = _three_way(F.cross_entropy, out_c, out_aug, out_adv, y[:s], y[s:])
        _step(opt, loss)
        meter.add("loss", float(loss.detach()), len(y))
        meter.correct("acc", out_c, y[:s])
        meter.correct("acc_aug", out_aug, y[:s])
        meter.correct("acc_adv", out_adv, y[s:])
    return meter.means()


def _teacher_view(teacher, norm, x, record=True):
    with torch.no_grad():
        logits, sites = run(teacher, x, norm, path="clean", record=record)
    return logits.detach(), None if sites is None else [f.detach() for f in sites]


@dataclass
class _StudentBatch:
    """One batch of a student epoch, the part every stage computes alike."""

    s: int  # the clean half's size (the whole batch unless robust)
    xa: Optional[torch.Tensor]  # AugMix of the clean half (robust)
    x: torch.Tensor
    y: torch.Tensor
    t_logits: torch.Tensor  # the teacher's clean logits of the whole batch
    t_sites: List[torch.Tensor]
    out_c: torch.Tensor  # the student's logits of the clean half
    s_sites: List[torch.Tensor]


def _student_batches(student, teacher, norm: Normalizer, train: Split, info: DatasetInfo, h: Hyper,
                     masks: Sequence[torch.Tensor], robust: bool, device):
    """The batches of a stage-1 or stage-2 epoch: the student training, the teacher fixed."""
    student.train()
    teacher.eval()
    for x, y in _batches(train, info, h):
        s = x.shape[0] // 2 if robust else x.shape[0]
        xa = augment.augmix(x[:s]).to(device) if robust else None
        x, y = x.to(device), y.to(device)
        t_logits, t_sites = _teacher_view(teacher, norm, x)
        out_c, s_sites = run(student, x[:s], norm, masks, "clean", record=True)
        yield _StudentBatch(s, xa, x, y, t_logits, t_sites, out_c, s_sites)


def _student_adversarial(student, norm: Normalizer, masks, b: _StudentBatch, h: Hyper, kd):
    """The student's ``BN_a`` logits of PGD examples of the second half, crafted on the KD loss
    against the teacher's clean logits (RSLAD)."""
    adv = lambda z: run(student, z, norm, masks, "adv")[0]  # noqa: E731
    x_adv = attack.pgd(adv, student, b.x[b.s:], b.t_logits[b.s:], h.eps, h.pgd_alpha, h.pgd_steps, loss=kd)
    return adv(x_adv)


def _three_way(loss, out_c, out_aug, out_adv, clean_target, adv_target):
    """The mean of ``loss`` over the clean, AugMix and adversarial outputs."""
    return (loss(out_c, clean_target) + loss(out_aug, clean_target) + loss(out_adv, adv_target)) / 3


def stage1_epoch(student, teacher, norm: Normalizer, train: Split, info: DatasetInfo, h: Hyper, opt,
                 masks: Sequence[torch.Tensor], keep: Sequence[int], robust: bool, device) -> Tuple[Dict[str, float], List[torch.Tensor]]:
    """One stage-1 epoch with ``masks``; returns the metrics and the next epoch's masks."""
    meter = _Meter()
    scores = [torch.zeros_like(m) for m in masks]
    kd = lambda s, t: losses.kd(s, t, h.kd_t)  # noqa: E731
    for b in _student_batches(student, teacher, norm, train, info, h, masks, robust, device):
        s, y, t_logits = b.s, b.y, b.t_logits
        if robust:
            out_aug, _ = run(student, b.xa, norm, masks, "clean")
            out_adv = _student_adversarial(student, norm, masks, b, h, kd)
            ce = _three_way(F.cross_entropy, b.out_c, out_aug, out_adv, y[:s], y[s:])
            kl = _three_way(kd, b.out_c, out_aug, out_adv, t_logits[:s], t_logits[s:])
            loss = h.gamma * ce + h.alpha * kl
            meter.correct("acc_adv", out_adv, y[s:])
        else:
            loss = h.gamma * F.cross_entropy(b.out_c, y) + h.alpha * kd(b.out_c, t_logits)
        with torch.no_grad():
            for i, (ft, fs) in enumerate(zip(b.t_sites, b.s_sites, strict=True)):
                scores[i] += (ft[:s] - fs.detach()).abs().sum(0)
        _step(opt, loss)
        meter.add("loss", float(loss.detach()), len(y))
        meter.correct("acc", b.out_c, y[:s])
    new_masks = [top_k(sc, k) for sc, k in zip(scores, keep, strict=True)]
    changed = sum(int((a != b).sum()) for a, b in zip(masks, new_masks))
    total = sum(m.numel() for m in masks)
    metrics = meter.means()
    metrics["mask_hamming"] = round(changed / total, 6)  # RLNet's NHD, normalized over all elements
    return metrics, new_masks


def stage2_epoch(student, teacher, norm: Normalizer, train: Split, info: DatasetInfo, h: Hyper, opt,
                 masks: Sequence[torch.Tensor], robust: bool, device) -> Dict[str, float]:
    """One stage-2 epoch: frozen masks, the three-way distillation (robust) or clean KD + AT."""
    meter = _Meter()
    at_sites = layer_sites()
    layers = lambda sites: [sites[i] for i in at_sites]  # noqa: E731
    kd = lambda s, t: losses.kd(s, t, h.kd_t)  # noqa: E731
    for b in _student_batches(student, teacher, norm, train, info, h, masks, robust, device):
        s, y, t_logits = b.s, b.y, b.t_logits
        at = losses.attention(layers(b.s_sites), [f[:s] for f in layers(b.t_sites)])
        if robust:
            _, ta_sites = _teacher_view(teacher, norm, b.xa)
            out_aug, sa_sites = run(student, b.xa, norm, masks, "clean", record=True)
            at_aug = losses.attention(layers(sa_sites), layers(ta_sites))
            out_adv = _student_adversarial(student, norm, masks, b, h, kd)
            ce = _three_way(F.cross_entropy, b.out_c, out_aug, out_adv, y[:s], y[s:])
            kl = _three_way(kd, b.out_c, out_aug, out_adv, t_logits[:s], t_logits[s:])
            loss = h.gamma * ce + h.alpha * kl + h.beta * (at + at_aug) / 2
            meter.correct("acc_adv", out_adv, y[s:])
        else:
            loss = h.gamma * F.cross_entropy(b.out_c, y) + h.alpha * kd(b.out_c, t_logits) + h.beta * at
        _step(opt, loss)
        meter.add("loss", float(loss.detach()), len(y))
        meter.correct("acc", b.out_c, y[:s])
    return meter.means()


def accuracy(model, norm: Normalizer, test: Split, device, masks=None, path: str = "clean",
             pgd_steps: int = 0, eps: float = 8 / 255, alpha: float = 2 / 255, batch: int = 250) -> Tuple[float, Optional[float]]:
    """(clean accuracy, PGD accuracy or None) in percent on ``path``; PGD with cross-entropy and
    a random start, crafted on the same path (RLNet's ``validate_dualBN``)."""
    model.eval()
    correct = correct_adv = 0
    for idx in batches(len(test), batch, shuffle=False):
        x = (test.images[idx].float() / 255).to(device)
        y = test.labels[idx].to(device)
        with torch.no_grad():
            correct += int((run(model, x, norm, masks, path)[0].argmax(1) == y).sum())
        if pgd_steps:
            fwd = lambda z: run(model, z, norm, masks, path)[0]  # noqa: E731
            x_adv = attack.pgd(fwd, model, x, y, eps, alpha, pgd_steps)
            with torch.no_grad():
                correct_adv += int((fwd(x_adv).argmax(1) == y).sum())
    n = len(test)
    return round(100.0 * correct / n, 4), (round(100.0 * correct_adv / n, 4) if pgd_steps else None)
