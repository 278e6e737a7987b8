"""Developer tests for the exporter, the model definitions and the committed fixtures.

Run with ``python3 -m pytest tools`` or, without pytest, ``python3 tools/test_export.py``.
They need PyTorch, numpy and safetensors (`tools/requirements.txt`); `cargo test --release` runs them
through `tests/python_tools.rs`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bundle_interp  # noqa: E402
import export_checkpoint as E  # noqa: E402
import pibench_models as M  # noqa: E402
import random_nets as RN  # noqa: E402
import testing  # noqa: E402

EXPORTER = os.path.join(HERE, "export_checkpoint.py")
FIXTURES = os.path.join(os.path.dirname(HERE), "tests", "fixtures")


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def _randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    return RN.random_bn(model, RN.seeded(seed))


def _random_masks(model, input_shape, seed, p=0.3):
    return RN.random_masks(M.relu_site_shapes(model, input_shape), RN.seeded(seed), p)


def _set_alphas(model, seed, p=0.3):
    RN.random_alphas(model, RN.seeded(seed), p)


def _run_cli(ckpt, *extra):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ckpt.pth")
        torch.save(ckpt, path)
        out = os.path.join(d, "out.safetensors")
        r = subprocess.run([sys.executable, EXPORTER, path, "-o", out, *extra], capture_output=True, text=True)
        meta = None
        if r.returncode == 0:
            from safetensors import safe_open

            with safe_open(out, framework="np") as f:
                meta = dict(f.metadata())
                meta["_dtypes"] = {k: str(f.get_tensor(k).dtype) for k in f.keys()}
        return r, meta


def _expect_error(ckpt, *needles, **kwargs):
    try:
        E.export(ckpt, **kwargs)
    except E.ExportError as e:
        msg = str(e)
        for n in needles:
            assert n in msg, f"{n!r} not in error message: {msg}"
        return msg
    raise AssertionError("export should have been refused")


def _interp(bundle, x, path="clean"):
    tensors = {k: v.numpy() for k, v in bundle.tensors.items()}
    return bundle_interp.run((tensors, bundle.graph), x.numpy(), path)


def _close(bundle, x, ref, path="clean"):
    err = bundle_interp.max_rel_error(_interp(bundle, x, path), ref.detach().double().numpy())
    assert err < 1e-5, f"interpreter vs PyTorch relative error {err}"


def _small_rlnet(bn="dual", seed=0):
    torch.manual_seed(seed)
    m = _randomize_bn(M.RLNetResNet(width=8, bn=bn), seed)
    return m, _random_masks(m, (3, 32, 32), seed)


# ------------------------------------------------------------------------------------------
# refusals
# ------------------------------------------------------------------------------------------


def test_unknown_layout_refused_with_key_list():
    vgg = {
        "features.0.weight": torch.zeros(8, 3, 3, 3),
        "features.1.running_mean": torch.zeros(8),
        "classifier.weight": torch.zeros(10, 8),
    }
    r, _ = _run_cli({"state_dict": vgg, "arch": "vgg"})
    assert r.returncode == 2, r
    assert "unknown checkpoint layout" in r.stderr
    for k in vgg:
        assert k in r.stderr
    assert "Traceback" not in r.stderr


def test_extra_key_refused_with_key_list():
    m, masks = _small_rlnet()
    sd = m.state_dict()
    sd["layer1.0.se.fc.weight"] = torch.zeros(4, 8)
    sd["layer3.1.bn2.BN_x.weight"] = torch.zeros(32)
    msg = _expect_error(
        {"model": sd, "mask_epoch": masks}, "not understood", "layer1.0.se.fc.weight", "layer3.1.bn2.BN_x.weight"
    )
    assert "conv1.weight" not in msg.split(":", 1)[1]  # only the unknown keys are listed
    r, _ = _run_cli({"model": sd, "mask_epoch": masks})
    assert r.returncode == 2 and "layer1.0.se.fc.weight" in r.stderr and "Traceback" not in r.stderr


def test_no_state_dict_refused_with_top_level_keys():
    _expect_error({"weights_blob": 3, "foo": "bar"}, "weights_blob", "foo")


def test_mask_shape_mismatch_refused():
    m, masks = _small_rlnet()
    bad = list(masks)
    bad[5] = bad[5].transpose(1, 2).contiguous()[:, :, :-1]
    r, _ = _run_cli({"model": m.state_dict(), "mask_epoch": bad})
    assert r.returncode == 2
    assert "ReLU site 5" in r.stderr and "mask_epoch[5]" in r.stderr
    assert str(list(bad[5].shape)) in r.stderr and str(list(masks[5].shape)) in r.stderr
    assert "Traceback" not in r.stderr


def test_mask_count_mismatch_refused():
    m, masks = _small_rlnet()
    _expect_error({"model": m.state_dict(), "mask_epoch": masks[:-1]}, "16 masks", "more ReLU sites")
    _expect_error({"model": m.state_dict(), "mask_epoch": masks + [masks[-1]]}, "18 masks", "17 ReLU sites")


def test_non_binary_masks_refused():
    m, masks = _small_rlnet()
    bad = [t.clone() for t in masks]
    bad[3].view(-1)[7] = 2
    _expect_error({"model": m.state_dict(), "mask_epoch": bad}, "ReLU site 3", "not 0/1")
    snl = _randomize_bn(M.SNLResNet(width=8), 1)
    _set_alphas(snl, 1)
    with torch.no_grad():
        snl.layer2[0].alpha1.alphas[0, 0, 0, 0] = 0.5
    _expect_error({"state_dict": snl.state_dict()}, "layer2.0.alpha1.alphas", "--snl-threshold")


def test_snl_threshold_binarizes_like_snl():
    snl = _randomize_bn(M.SNLResNet(width=8), 2)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for a in snl.modules():
            if isinstance(a, M.LearnableAlpha):
                a.alphas.copy_(torch.rand(a.alphas.shape, generator=g) * 0.04 - 0.01)
    expected = sum(int((a.alphas > 0.01).sum()) for a in snl.modules() if isinstance(a, M.LearnableAlpha))
    b = E.export({"state_dict": snl.state_dict()}, snl_threshold=0.01)
    assert b.budget == expected


def test_arch_and_dataset_checks():
    m, masks = _small_rlnet()
    ck = {"model": m.state_dict(), "mask_epoch": masks}
    _expect_error(ck, "--arch wrn-22-8", "resnet18", arch="wrn-22-8")
    _expect_error(ck, "unknown --dataset", dataset="mnist")
    # Tiny-ImageNet input: the CIFAR masks no longer fit the sites.
    _expect_error(ck, "ReLU site 0", "[8, 32, 32]", "[8, 64, 64]", dataset="tiny-imagenet")


def test_rlnet_wrn_needs_32x32_input():
    torch.manual_seed(3)
    w = _randomize_bn(M.RLNetWideResNet(depth=10, widen=1, base=4, num_classes=200), 3)
    _expect_error({"model": w.state_dict()}, "fixed 8x8 window", dataset="tiny-imagenet")


def test_cli_refuses_missing_file():
    r = subprocess.run(
        [sys.executable, EXPORTER, "/nonexistent/x.pth", "-o", "/tmp/never.safetensors"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------
# counting
# ------------------------------------------------------------------------------------------


def test_budget_counted_right():
    m = _randomize_bn(M.RLNetResNet(width=8, bn="dual"), 4)
    shapes = M.relu_site_shapes(m, (3, 32, 32))
    # Exactly `k_i` ones at site i, placed by a permutation: the budget is known by construction.
    g = torch.Generator().manual_seed(4)
    want = []
    masks = []
    for i, s in enumerate(shapes):
        n = math.prod(s)
        k = (i * 997) % (n + 1) if i not in (0, 16) else (0 if i == 0 else n)
        flat = torch.zeros(n, dtype=torch.int64)
        flat[torch.randperm(n, generator=g)[:k]] = 1
        masks.append(flat.view(s))
        want.append(k)
    b = E.export({"model": m.state_dict(), "mask_epoch": masks})
    assert [s.kept for s in b.sites] == want
    assert b.card["budget"] == sum(want)
    assert b.card["total_relus"] == sum(math.prod(s) for s in shapes) == 557056 // 8
    # The bundle's mask tensors hold the same ones, as U8.
    assert [int(b.tensors[f"mask.{i}"].sum()) for i in range(17)] == want
    assert all(b.tensors[f"mask.{i}"].dtype == torch.uint8 for i in range(17))


def test_full_width_resnet18_site_counts():
    rl = M.RLNetResNet(bn="dual", num_classes=10).eval()
    b = E.export({"model": rl.state_dict(), "mask_epoch": _random_masks(rl, (3, 32, 32), 5)})
    assert len(b.sites) == 17 and b.total_relus == 557_056
    assert [s.elements for s in b.sites] == [65536] * 5 + [32768] * 4 + [16384] * 4 + [8192] * 4
    snl = M.SNLResNet(num_classes=100).eval()
    b = E.export({"arch": "resnet18_in", "state_dict": snl.state_dict(), "optimizer": {}})
    assert len(b.sites) == 16 and b.total_relus == 491_520
    assert b.card["method"] == "dense" and b.budget == 491_520  # untouched alphas are all ones
    tv = M.TorchvisionResNet().eval()
    b = E.export(tv.state_dict())
    assert len(b.sites) == 17 and b.total_relus == 557_056 and b.card["method"] == "dense"
    # Tiny-ImageNet: 64x64 input, 4x every site.
    snl_t = M.SNLResNet(num_classes=200, input_size=64).eval()
    b = E.export({"state_dict": snl_t.state_dict()})
    assert b.card["dataset"] == "tiny-imagenet" and b.card["input_shape"] == [3, 64, 64]
    assert len(b.sites) == 16 and b.total_relus == 4 * 491_520
    rl_t = M.RLNetResNet(num_classes=200).eval()
    b = E.export({"model": rl_t.state_dict()})
    assert len(b.sites) == 17 and b.total_relus == 4 * 557_056


def test_full_width_wrn_22_8_site_counts():
    rl = M.RLNetWideResNet(depth=22, widen=8, bn="dual", num_classes=100).eval()
    b = E.export({"model": rl.state_dict()}, arch="wrn-22-8")
    assert b.card["architecture"] == "wrn-22-8"
    assert len(b.sites) == 19 and b.total_relus == 1_392_640
    del rl, b
    snl = M.SNLWideResNet(depth=22, widen=8, num_classes=100).eval()
    b = E.export({"state_dict": snl.state_dict()}, arch="wrn-22-8")
    assert len(b.sites) == 18 and b.total_relus == 1_359_872


# ------------------------------------------------------------------------------------------
# graph structure and parity
# ------------------------------------------------------------------------------------------


def _ops(b, kind):
    return [op for op in b.graph["ops"] if op["op"] == kind]


def test_rlnet_graph_has_stem_site_and_projection_only_skips():
    m, masks = _small_rlnet()
    b = E.export({"model": m.state_dict(), "mask_epoch": masks})
    relus = _ops(b, "relu")
    assert relus[0]["input"] == "bn1"  # the stem ReLU site
    adds = _ops(b, "add")
    assert [a["name"] for a in adds] == ["layer2.0.add", "layer3.0.add", "layer4.0.add"]
    snl = _randomize_bn(M.SNLResNet(width=8), 6)
    b = E.export({"state_dict": snl.state_dict()})
    assert _ops(b, "relu")[0]["name"] == "layer1.0.relu1"  # no stem site
    assert len(_ops(b, "add")) == 8
    assert _ops(b, "add")[0]["inputs"] == ["layer1.0.bn2", "bn1"]  # identity skip from the stem BN


def test_parity_every_layout():
    torch.manual_seed(7)
    x = torch.randn(3, 3, 32, 32)
    x64 = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for bn in ("dual", "triple", "single"):
            m, masks = _small_rlnet(bn, seed=8)
            b = E.export({"model": m.state_dict(), "mask_epoch": masks})
            assert b.card["layout"] == f"rlnet-{bn}-bn"
            for path in ("clean", "adv"):
                if bn == "single" and path == "adv":
                    continue
                _close(b, x, m(x, masks, path), path)
            if bn == "triple":
                assert "BN_r" in b.card["notes"] and any(k.endswith("BN_r.weight") for k in b.ignored)
                assert not any("BN_r" in k for k in b.tensors)
        snl = _randomize_bn(M.SNLResNet(width=8, num_classes=100), 9)
        _set_alphas(snl, 9)
        b = E.export({"arch": "resnet18_in", "state_dict": snl.state_dict(), "optimizer": {}})
        _close(b, x, snl(x))
        snl_t = _randomize_bn(M.SNLResNet(width=8, num_classes=200, input_size=64), 10)
        _set_alphas(snl_t, 10)
        _close(E.export({"state_dict": snl_t.state_dict()}), x64, snl_t(x64))
        tv = _randomize_bn(M.TorchvisionResNet(width=8), 11)
        _close(E.export(tv.state_dict()), x, tv(x))
        tvi = _randomize_bn(M.TorchvisionResNet(width=8, num_classes=200, imagenet_stem=True), 12)
        tv_masks = _random_masks(tvi, (3, 64, 64), 12)
        b = E.export({"state_dict": tvi.state_dict(), "mask_epoch": tv_masks})
        assert _ops(b, "maxpool") and b.card["method"] == "senet"
        _close(b, x64, tvi(x64, tv_masks))
        for bn in ("dual", "single"):
            w = _randomize_bn(M.RLNetWideResNet(depth=16, widen=2, base=4, bn=bn), 13)
            wm = _random_masks(w, (3, 32, 32), 13)
            b = E.export({"model": w.state_dict(), "mask_epoch": wm})
            _close(b, x, w(x, wm, "clean"))
            if bn == "dual":
                _close(b, x, w(x, wm, "adv"), "adv")
        sw = _randomize_bn(M.SNLWideResNet(depth=16, widen=2, base=4), 14)
        _set_alphas(sw, 14)
        _close(E.export({"state_dict": sw.state_dict()}), x, sw(x))


def test_dual_bn_paths_really_differ():
    m, masks = _small_rlnet("dual", seed=15)
    b = E.export({"model": m.state_dict(), "mask_epoch": masks})
    x = torch.randn(2, 3, 32, 32)
    assert not np.allclose(_interp(b, x, "clean"), _interp(b, x, "adv"))


def test_rlnet_resnetv2_dual_bn_teacher_exports_with_its_single_shortcut_bn():
    # RLNet's teacher (models/resnetv2.py, use2BN) keeps a plain BatchNorm2d in its shortcuts.
    torch.manual_seed(16)
    m = _randomize_bn(M.RLNetTeacherResNet(width=8, bn="dual"), 16)
    sd = m.state_dict()
    assert "layer2.0.shortcut.1.running_mean" in sd and "layer2.0.bn1.BN_c.running_mean" in sd
    b = E.export({"model": sd}, dataset="digits-32")
    assert b.card["layout"] == "torchvision-dual-bn" and b.card["method"] == "dense"
    assert b.card["dataset"] == "digits-32" and "shortcut" in b.card["notes"]
    x = torch.rand(2, 3, 32, 32)
    for path in ("clean", "adv"):
        _close(b, x, m(x, path=path), path)
    assert sum(op["op"] == "add" for op in b.graph["ops"]) == 8  # textbook skips, unlike CustomResNet18
    # A single BN anywhere else in a dual-BN network is still refused.
    bad = dict(sd)
    for f in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        bad[f"layer1.0.bn1.{f}"] = bad.pop(f"layer1.0.bn1.BN_c.{f}")
        bad.pop(f"layer1.0.bn1.BN_a.{f}")
    _expect_error({"model": bad}, "mixed batch-norm kinds", dataset="cifar10")


def test_card_fields():
    m, masks = _small_rlnet()
    ck = {
        "epoch": 99,
        "model": m.state_dict(),
        "best_acc": torch.tensor(91.25),
        "robust_acc": 43.5,
        "mask_epoch": masks,
    }
    b = E.export(ck, source="/x/CustomResNet18_stage2_best_TA0.0.pth", attack="PGD-20, eps 8/255", npa=80.0)
    c = b.card
    assert c["accuracy"] == {"clean": 91.25, "adv": 43.5, "npa": 80.0, "attack": "PGD-20, eps 8/255"}
    assert c["name"] == "CustomResNet18_stage2_best_TA0.0" and c["source"] == "CustomResNet18_stage2_best_TA0.0.pth"
    assert c["method"] == "rlnet" and c["layout"] == "rlnet-dual-bn" and c["classes"] == 10
    assert c["dataset"] == "cifar10" and c["input_shape"] == [3, 32, 32] and c["synthetic"] is False
    assert c["budget"] == sum(int(t.sum()) for t in masks)
    assert "clean (BN_c) path" in c["notes"]
    b = E.export(ck, source="CustomResNet18_stage2_best_ATA1.0.pth")
    assert "adv (BN_a) path" in b.card["notes"]
    single = _randomize_bn(M.RLNetResNet(width=8, num_classes=100), 16)
    b = E.export({"model": single.state_dict(), "mask_epoch": _random_masks(single, (3, 32, 32), 16)})
    assert b.card["method"] == "senet" and b.card["layout"] == "rlnet-single-bn" and b.card["dataset"] == "cifar100"
    assert E.export({"model": single.state_dict()}).card["method"] == "dense"


def test_module_prefix_stripped():
    m, masks = _small_rlnet()
    sd = {"module." + k: v for k, v in m.state_dict().items()}
    b = E.export({"model": sd, "mask_epoch": masks})
    assert "conv1.weight" in b.tensors and not any(k.startswith("module.") for k in b.tensors)


def test_cli_writes_format_v1_bundle():
    m, masks = _small_rlnet()
    r, meta = _run_cli({"model": m.state_dict(), "mask_epoch": masks, "best_acc": 90.0}, "--name", "t1")
    assert r.returncode == 0, r.stderr
    assert meta["pibench.format"] == "1"
    graph, card = json.loads(meta["pibench.graph"]), json.loads(meta["pibench.card"])
    assert card["name"] == "t1" and card["accuracy"]["clean"] == 90.0
    assert graph["input"]["shape"] == [3, 32, 32] and graph["output"] == "linear"
    names = {op["name"] for op in graph["ops"]}
    assert len(names) == len(graph["ops"])
    dtypes = meta["_dtypes"]
    assert all(dtypes[f"mask.{i}"] == "uint8" for i in range(17))
    assert all(v == "float32" for k, v in dtypes.items() if not k.startswith("mask."))
    # Every tensor the graph names is in the file.
    named = set()
    for op in graph["ops"]:
        for f in ("weight", "bias", "mask"):
            if op.get(f):
                named.add(op[f])
        for p in ("clean", "adv"):
            if p in op:
                named.update(op[p].values())
    assert named <= set(dtypes)


# ------------------------------------------------------------------------------------------
# input preprocessing (--normalize)
# ------------------------------------------------------------------------------------------


def test_normalize_defaults_follow_each_training_code():
    c10 = {"scale": "unit", "mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010], "name": "cifar10"}
    m, masks = _small_rlnet()
    b = E.export({"model": m.state_dict(), "mask_epoch": masks})
    # RLNet normalizes CIFAR inside its training and attack loops (helper/attack.py).
    assert b.card["preprocessing"] == c10 and not b.warnings
    single = _randomize_bn(M.RLNetResNet(width=8, num_classes=100), 16)
    pre = E.export({"model": single.state_dict()}).card["preprocessing"]
    assert pre["name"] == "cifar100" and pre["mean"] == [0.5071, 0.4867, 0.4408]
    snl = _randomize_bn(M.SNLResNet(width=8, num_classes=100), 9)
    _set_alphas(snl, 9)
    assert E.export({"state_dict": snl.state_dict()}).card["preprocessing"]["name"] == "cifar100"
    snl_t = _randomize_bn(M.SNLResNet(width=8, num_classes=200, input_size=64), 10)
    _set_alphas(snl_t, 10)
    pre = E.export({"state_dict": snl_t.state_dict()}).card["preprocessing"]
    assert pre["name"] == "tiny-imagenet" and pre["std"] == [0.277, 0.269, 0.282]
    # RLNet feeds Tiny-ImageNet unnormalized (attack.py: mean 0, std 1).
    assert E.default_normalize("rlnet", "tiny-imagenet") == ("none", None)
    # Unknown training code: the dataset's usual values, with a warning saying so.
    tv = _randomize_bn(M.TorchvisionResNet(width=8), 11)
    b = E.export(tv.state_dict())
    assert b.card["preprocessing"] == c10 and any("--normalize" in w for w in b.warnings)


def test_normalize_explicit_values_and_refusals():
    m, masks = _small_rlnet()
    ck = {"model": m.state_dict(), "mask_epoch": masks}
    assert E.export(ck, normalize="none").card["preprocessing"] == {"scale": "unit", "name": "none"}
    pre = E.export(ck, normalize="0.5,0.5,0.5/0.25,0.25,0.25").card["preprocessing"]
    assert pre == {"scale": "unit", "mean": [0.5] * 3, "std": [0.25] * 3}
    for bad, needle in [
        ("cifar", "expected none"),
        ("0.5,0.5/0.2,0.2", "2 mean and 2 std values for 3 channels"),
        ("a,b,c/1,1,1", "comma-separated numbers"),
        ("0,0,0/0,1,1", "positive"),
    ]:
        _expect_error(ck, needle, normalize=bad)


def test_cli_records_normalize_in_the_card():
    m, masks = _small_rlnet()
    ck = {"model": m.state_dict(), "mask_epoch": masks}
    r, meta = _run_cli(ck, "--normalize", "cifar100")
    assert r.returncode == 0, r.stderr
    pre = json.loads(meta["pibench.card"])["preprocessing"]
    assert pre["name"] == "cifar100" and len(pre["mean"]) == 3 and pre["scale"] == "unit"
    assert "cifar100" in r.stdout
    r, _ = _run_cli(ck, "--normalize", "1,2/3")
    assert r.returncode == 2 and "--normalize" in r.stderr


# ------------------------------------------------------------------------------------------
# committed fixtures
# ------------------------------------------------------------------------------------------


def test_committed_fixtures_are_consistent():
    from safetensors import safe_open

    names = sorted(f[: -len(".io.safetensors")] for f in os.listdir(FIXTURES) if f.endswith(".io.safetensors"))
    assert len(names) >= 3, names
    for name in names:
        tensors, graph, card = bundle_interp.load_bundle(os.path.join(FIXTURES, f"{name}.safetensors"))
        with safe_open(os.path.join(FIXTURES, f"{name}.io.safetensors"), framework="np") as f:
            meta = f.metadata()
            io = {k: f.get_tensor(k) for k in f.keys()}
        assert io["inputs"].shape == (4, 3, 32, 32) and io["inputs"].dtype == np.float32
        paths = json.loads(meta["bn_paths"])
        assert ("logits_adv" in io) == ("adv" in paths)
        for p in paths:
            want = io[f"logits_{p}"]
            assert want.shape == (4, card["classes"])
            got = bundle_interp.run((tensors, graph), io["inputs"], p)
            assert bundle_interp.max_rel_error(got, want.astype(np.float64)) < 1e-5, name
        relus = [op for op in graph["ops"] if op["op"] == "relu"]
        kept = [int(tensors[op["mask"]].sum()) if op["mask"] else None for op in relus]
        meta_kept = json.loads(meta["kept"])
        assert [
            k if k is not None else s["elements"] for k, s in zip(kept, json.loads(meta["sites"]), strict=True)
        ] == meta_kept
        assert sum(meta_kept) == card["budget"] == int(meta["budget"])
        if card["method"] != "dense":
            assert 0 in meta_kept  # an all-zeros site
            assert any(s["kept"] == s["elements"] for s in json.loads(meta["sites"]))  # an all-ones site


if __name__ == "__main__":
    testing.run_tests(globals())
