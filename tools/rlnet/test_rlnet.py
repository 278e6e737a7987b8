"""Tests of the RLNet / SeNet training pipeline (``tools/rlnet``), run in CI by
``tests/python_tools.rs`` (``cargo test --release``).

Run with ``python3 tools/rlnet/test_rlnet.py`` (or pytest). The end-to-end test trains every
stage of both methods for a few steps on a tiny synthetic set, exports the checkpoints with
``tools/export_checkpoint.py`` unchanged, checks the bundles compute what the PyTorch modules
compute, and loads them with pibench (``$PIBENCH_BIN``, else ``target/release/pibench``).
Needs torch, numpy, scikit-learn and safetensors (``tools/requirements.txt``).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.dirname(HERE)
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
sys.path.insert(0, HERE)
torch.set_num_threads(1)

import bundle_interp  # noqa: E402
import testing  # noqa: E402
from rlnet import attack, augment, losses, nets  # noqa: E402
from rlnet import data as D  # noqa: E402
from rlnet import masks as K  # noqa: E402

TRAIN = os.path.join(HERE, "train.py")
EXPORTER = os.path.join(TOOLS, "export_checkpoint.py")
DIGITS_TEST_FILE = os.path.join(ROOT, "data", "digits32", "test_batch.bin")


def _pibench():
    path = os.environ.get("PIBENCH_BIN") or os.path.join(ROOT, "target", "release", "pibench")
    return path if os.path.isfile(path) else None


def _run(*cmd, check=True):
    r = subprocess.run([sys.executable, *cmd], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd[:2])} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


# ------------------------------------------------------------------------------------------
# pieces
# ------------------------------------------------------------------------------------------


def test_top_k_keeps_exactly_k_largest():
    s = torch.tensor([[[0.5, 0.1], [0.9, 0.1]], [[0.1, 0.7], [0.0, 0.3]]])
    m = K.top_k(s, 3)
    assert m.dtype == torch.float32 and int(m.sum()) == 3
    assert m.flatten().tolist() == [1, 0, 1, 0, 0, 1, 0, 0]
    assert int(K.top_k(s, 0).sum()) == 0 and int(K.top_k(s, 8).sum()) == 8


def test_fractions_and_budget_counts():
    fr = K.fractions("ResNet18_C10_relu82k")
    assert len(fr) == 17 and fr[0] == 0.01 and fr[-1] == 0.85
    assert K.fractions("ResNet18_C10_relu82k_sensitivity") == fr  # RLNet's yaml key works too
    assert max(K.fractions("ResNet18_C10_relu150k", scale=2.0)) == 1.0  # capped
    model = nets.build("student", 64, 10, "dual")
    shapes = nets.site_shapes(model)
    assert sum(int(np.prod(s)) for s in shapes) == 557_056  # REFERENCES.md: ResNet18 on CIFAR
    # RLNet's 82k list on the full-width network is RLNet's 82k budget.
    assert 81_000 < sum(K.kept_per_site(fr, shapes)) < 83_000
    for bad in ("nope", None):
        try:
            K.fractions(bad, None if bad else "0.5,1.5")
            raise AssertionError("should have been refused")
        except ValueError:
            pass


def test_initial_mask_is_spatial_and_repeated_over_channels():
    masks = K.initial([0.3, 1.0, 0.0], [(4, 8, 8), (2, 4, 4), (2, 4, 4)], torch.Generator().manual_seed(1))
    assert all(bool((m[0] == m[c]).all()) for m in masks for c in range(m.shape[0]))
    assert int(masks[1].sum()) == 32 and int(masks[2].sum()) == 0
    assert 0 < int(masks[0][0].sum()) < 64


def test_losses():
    torch.manual_seed(3)
    a = torch.randn(4, 10)
    assert abs(float(losses.kd(a, a, 4.0))) < 1e-5  # float32 rounding of a zero KL, times T^2
    assert float(losses.kd(a, torch.randn(4, 10), 4.0)) > 0
    fs = [torch.rand(2, 8, 8, 8), torch.rand(2, 16, 4, 4)]
    assert float(losses.attention(fs, fs)) == 0.0
    # Attention maps are per-sample L2-normalized: a scaled feature map has the same attention.
    assert float(losses.attention([3 * f for f in fs], fs)) < 1e-10
    assert float(losses.attention(fs, [torch.rand_like(f) for f in fs])) > 0


def test_pgd_stays_in_the_ball_and_raises_the_loss():
    torch.manual_seed(0)
    model = nets.build("teacher", 4, 4, "single").eval()
    norm = nets.Normalizer()
    x = torch.rand(8, 3, 32, 32)
    y = torch.randint(0, 4, (8,))
    fwd = lambda z: nets.run(model, z, norm)[0]  # noqa: E731
    adv = attack.pgd(fwd, model, x, y, eps=8 / 255, alpha=2 / 255, steps=5)
    assert float((adv - x).abs().max()) <= 8 / 255 + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.no_grad():
        assert float(attack.ce_sum(fwd(adv), y)) > float(attack.ce_sum(fwd(x), y))
    assert all(p.requires_grad for p in model.parameters())  # restored after the attack


def test_augmentation_shapes_ranges_and_chains():
    x = torch.rand(16, 3, 32, 32)
    for op in augment.OPS:
        y = op(x.clone(), None)
        assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1 + 1e-6, op
    y = augment.augmix(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1 + 1e-6
    assert torch.equal(y, augment.augmix(x, torch.Generator().manual_seed(0)))  # seeded
    assert not torch.equal(y, x)
    c = augment.crop_flip(x, 4, True, torch.Generator().manual_seed(0))
    assert c.shape == x.shape
    assert torch.equal(augment.crop_flip(x, 0, False), x)
    # A crop shifts content: some image moved, and nothing came from outside but zeros.
    assert not torch.equal(c, x)


def test_cifar_binary_and_pickle_readers():
    tr, te = D.synthetic(n_train=6, n_test=5, classes=4)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "test_batch.bin")
        D.write_cifar10_binary(te, path)
        assert os.path.getsize(path) == 5 * 3073
        back = D.read_cifar_binary(path)
        assert torch.equal(back.images, te.images) and torch.equal(back.labels, te.labels)
        with open(path, "ab") as f:
            f.write(b"\0")
        try:
            D.read_cifar_binary(path)
            raise AssertionError("a truncated file should be refused")
        except D.DataError as e:
            assert "3073-byte" in str(e)
        # CIFAR-100 binary: coarse then fine label byte.
        raw = np.concatenate([np.full((5, 1), 7, np.uint8), te.labels.numpy().astype(np.uint8)[:, None],
                              te.images.reshape(5, -1).numpy()], 1)
        raw.tofile(os.path.join(d, "c100.bin"))
        fine = D.read_cifar_binary(os.path.join(d, "c100.bin"), 2)
        assert torch.equal(fine.labels, te.labels) and torch.equal(fine.images, te.images)
        # The python version: a pickled dict per batch.
        py = os.path.join(d, "cifar-10-batches-py")
        os.makedirs(py)
        for name, split in [(f"data_batch_{i}", tr) for i in range(1, 6)] + [("test_batch", te)]:
            with open(os.path.join(py, name), "wb") as f:
                pickle.dump({b"data": split.images.reshape(len(split), -1).numpy(), b"labels": split.labels.tolist()}, f)
        train, test = D.load_cifar("cifar10", d)
        assert len(train) == 30 and torch.equal(test.images, te.images) and torch.equal(test.labels, te.labels)
        try:
            D.load_cifar("cifar100", d)
            raise AssertionError("missing CIFAR-100 files should be refused")
        except D.DataError as e:
            assert "CIFAR-100" in str(e)


def test_digits_split_and_committed_test_file():
    train, test = D.load_digits32()
    assert (len(train), len(test)) == (1297, 500)
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8
    counts = torch.bincount(test.labels, minlength=10)
    assert int(counts.min()) >= 48 and int(counts.max()) <= 51  # stratified
    tr_idx, te_idx = D.digits32_split()
    assert len(set(tr_idx.tolist()) | set(te_idx.tolist())) == 1797 and not set(tr_idx.tolist()) & set(te_idx.tolist())
    # The committed CIFAR-10-format test split is exactly what the code generates.
    committed = D.read_cifar_binary(DIGITS_TEST_FILE)
    assert torch.equal(committed.images, test.images) and torch.equal(committed.labels, test.labels)
    with open(os.path.join(os.path.dirname(DIGITS_TEST_FILE), "split.json")) as f:
        assert json.load(f)["test_indices"] == te_idx.tolist()


def test_checkpoint_round_trip_in_rlnet_format():
    model = nets.build("student", 4, 10, "dual")
    shapes = nets.site_shapes(model)
    masks = K.initial([0.5] * 17, shapes, torch.Generator().manual_seed(2))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "s.pth")
        nets.save(path, model, 3, 91.5, 40.25, {"dataset": "digits-32", "fractions": [0.5] * 17}, masks)
        ck = torch.load(path, map_location="cpu", weights_only=True)  # no pickled objects
        assert set(ck) == {"epoch", "model", "best_acc", "robust_acc", "mask_epoch", "opt"}
        assert "layer2.0.bn1.BN_c.running_mean" in ck["model"] and "layer2.0.conv_sc.weight" in ck["model"]
        assert "layer2.0.bn_sc.BN_a.weight" in ck["model"] and "layer1.0.shortcut.0.weight" not in ck["model"]
        assert all(m.dtype == torch.int64 and tuple(m.shape) == s for m, s in zip(ck["mask_epoch"], shapes))
        loaded, lmasks, _ = nets.load(path)
        assert loaded.bn_kind == "dual" and all(torch.equal(a, b) for a, b in zip(lmasks, masks))
        # Loading leaves every tensor as saved (finding the site shapes must not touch BN stats).
        assert loaded.training and all(torch.equal(v, ck["model"][k]) for k, v in loaded.state_dict().items())
        ck["mask_epoch"] = ck["mask_epoch"][:-1]
        torch.save(ck, path)
        try:
            nets.load(path)
            raise AssertionError("a mask list of the wrong length should be refused")
        except nets.CheckpointError as e:
            assert "16 masks for 17" in str(e)


# ------------------------------------------------------------------------------------------
# end to end
# ------------------------------------------------------------------------------------------


def _bundle_matches_pytorch(bundle_path, ckpt_path):
    tensors, graph, card = bundle_interp.load_bundle(bundle_path)
    model, masks, _ = nets.load(ckpt_path)
    model.eval()
    x = torch.rand(3, 3, 32, 32)
    paths = ["clean", "adv"] if model.bn_kind == "dual" else ["clean"]
    for p in paths:
        with torch.no_grad():
            want = model(x, masks, p).double().numpy()
        got = bundle_interp.run((tensors, graph), x.numpy(), p)
        assert bundle_interp.max_rel_error(got, want) < 1e-5, (bundle_path, p)
    return card


def _pibench_loads(bundle_path, card):
    exe = _pibench()
    if exe is None:
        print("  (no pibench binary: set PIBENCH_BIN or build with cargo build --release; pibench checks skipped)")
        return
    r = subprocess.run([exe, "inspect", bundle_path, "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ins = json.loads(r.stdout)
    assert ins["kept_relus"] == card["budget"] and ins["total_relus"] == card["total_relus"]
    assert len(ins["sites"]) == 17 and ins["card"]["dataset"] == card["dataset"]
    r = subprocess.run([exe, "plain", bundle_path, "--inputs", "2", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    plain = json.loads(r.stdout)
    assert plain["inputs"] == 2 and plain["same_class"] >= 1


def test_smoke_pipeline_on_synthetic_data_exports_and_loads():
    d = tempfile.mkdtemp()
    try:
        _run(TRAIN, "pipeline", "--dataset", "synthetic", "--width", "4", "--preset", "smoke", "--threads", "1",
             "--out-dir", d)
        with open(os.path.join(d, "logs", "summary.json")) as f:
            summary = json.load(f)
        assert set(summary["models"]) == {"rlnet-teacher", "senet-teacher"} | {
            f"{m}-{a}" for m in ("rlnet", "senet") for a in ("ResNet18_c100_relu50k", "ResNet18_C10_relu82k", "ResNet18_C10_relu150k")
        }
        # Every stage logged its epochs and a final record with the wall and CPU time.
        for log in os.listdir(os.path.join(d, "logs")):
            if log.endswith(".jsonl"):
                recs = [json.loads(line) for line in open(os.path.join(d, "logs", log))]
                assert recs[0]["event"] == "config" and recs[-1]["event"] == "final", log
                assert any(r["event"] == "epoch" for r in recs) and recs[-1]["train_cpu_seconds"] >= 0
        for name in ("rlnet-teacher.pth", "rlnet-ResNet18_C10_relu82k-stage2.pth", "senet-ResNet18_C10_relu82k-stage2.pth"):
            ckpt = os.path.join(d, name)
            ck = torch.load(ckpt, map_location="cpu", weights_only=True)
            if "stage2" in name:
                # Stage 2 keeps stage 1's mask, at the allocation's exact per-site counts.
                s1 = torch.load(ckpt.replace("stage2", "stage1"), map_location="cpu", weights_only=True)
                assert all(torch.equal(a, b) for a, b in zip(ck["mask_epoch"], s1["mask_epoch"]))
                shapes = [tuple(m.shape) for m in ck["mask_epoch"]]
                want = K.kept_per_site(K.fractions("ResNet18_C10_relu82k"), shapes)
                assert [int(m.sum()) for m in ck["mask_epoch"]] == want
                assert all(bool(((m == 0) | (m == 1)).all()) for m in ck["mask_epoch"])
            out = os.path.join(d, name.replace(".pth", ".safetensors"))
            # The exporter takes the checkpoint unchanged. Synthetic data have no dataset name of
            # their own: the card is given CIFAR-10's 32x32x3 input.
            _run(EXPORTER, ckpt, "-o", out, "--dataset", "cifar10", "--notes", "synthetic smoke-test data")
            card = _bundle_matches_pytorch(out, ckpt)
            method = {"teacher": "dense", "rlnet": "rlnet", "senet": "senet"}["teacher" if "teacher" in name else name[:5]]
            assert card["method"] == method and card["synthetic"] is False
            assert card["accuracy"]["clean"] == round(ck["best_acc"], 4)
            _pibench_loads(out, card)
        # The pipeline refuses to export synthetic data under a dataset name.
        r = _run(TRAIN, "pipeline", "--dataset", "synthetic", "--preset", "smoke", "--out-dir", d, "--export-dir", d, check=False)
        assert r.returncode != 0 and "synthetic data" in r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_digits_pipeline_export_writes_digits_cards():
    d = tempfile.mkdtemp()
    try:
        _run(TRAIN, "pipeline", "--dataset", "digits-32", "--width", "4", "--preset", "smoke", "--threads", "1",
             "--limit-train", "48", "--limit-test", "20", "--allocs", "ResNet18_C10_relu82k", "--out-dir", d,
             "--export-dir", os.path.join(d, "models"), "--name-prefix", "digits-resnet18w4")
        names = sorted(os.listdir(os.path.join(d, "models")))
        assert names == ["digits-resnet18w4-rlnet-5k.safetensors", "digits-resnet18w4-senet-5k.safetensors",
                         "digits-resnet18w4-teacher.safetensors"], names
        for n in names:
            path = os.path.join(d, "models", n)
            _, _, card = bundle_interp.load_bundle(path)
            assert card["dataset"] == "digits-32" and card["synthetic"] is False
            assert card["method"] == ("dense" if "teacher" in n else n.split("-")[2])
            assert set(card["accuracy"]) == {"clean", "adv", "attack"} and "PGD-1" in card["accuracy"]["attack"]
            assert "pixels/255" in card["notes"] and "CIFAR" not in json.dumps(card)
            _pibench_loads(path, card)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_cli_errors_are_one_line():
    r = _run(TRAIN, "stage2", "--method", "rlnet", "--dataset", "synthetic", "--teacher", "/nonexistent.pth",
             "--student", "/nonexistent.pth", "--out", "/tmp/x.pth", check=False)
    assert r.returncode == 2 and r.stderr.startswith("train.py: error: ") and "does not exist" in r.stderr
    r = _run(TRAIN, "teacher", "--method", "rlnet", "--dataset", "cifar10", "--out", "/tmp/x.pth", check=False)
    assert r.returncode == 2 and "--data-dir" in r.stderr


if __name__ == "__main__":
    testing.run_tests(globals())
