"""Datasets as uint8 ``[N,3,H,W]`` tensors with labels, and the CIFAR file formats.

- ``digits-32``: scikit-learn's bundled UCI handwritten digits (1,797 8x8 scans, values 0..16),
  upsampled to 32x32x3 (``digits32_images``) with a fixed stratified split (``digits32_split``).
- ``cifar10`` / ``cifar100``: read from disk, binary (``cifar-10-batches-bin``,
  ``cifar-100-binary``) or python-pickle (``cifar-10-batches-py``, ``cifar-100-python``) versions.
- ``synthetic``: a tiny seeded set of class-coloured blobs for smoke tests.

``write_cifar10_binary`` writes the CIFAR-10 binary record format (1 label byte, then 1024 bytes
per R, G, B plane, row-major), which ``pibench eval`` and ``read_cifar_binary`` read.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F


class DataError(Exception):
    """A dataset that cannot be read; the message names the file and the problem."""


@dataclass
class Split:
    """Images ``uint8 [N,3,H,W]`` and labels ``int64 [N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class DatasetInfo:
    """What the training code needs to know about a dataset."""

    name: str
    classes: int
    #: Whether random horizontal flips preserve the labels (not for digits).
    hflip: bool
    #: Padding of the random crop (RLNet: RandomCrop(32, padding=4) on CIFAR).
    crop_pad: int
    #: Input normalization (mean, std) applied inside training, as RLNet's loaders and its
    #: attacker's ``normalize`` do for CIFAR; None feeds pixels in [0,1] unchanged.
    normalize: Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]]


#: RLNet's CIFAR statistics (``helper/attack.py``'s ``normalize`` and its loaders).
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
CIFAR100_MEAN_STD = ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))

INFO: Dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 10, True, 4, CIFAR10_MEAN_STD),
    "cifar100": DatasetInfo("cifar100", 100, True, 4, CIFAR100_MEAN_STD),
    # Digits fill their frame and are not mirror-symmetric: a 2-pixel crop jitter and no flip;
    # pixels are fed as x/255 (their mean/std are not CIFAR's, and a BN follows the stem anyway).
    "digits-32": DatasetInfo("digits-32", 10, False, 2, None),
    "synthetic": DatasetInfo("synthetic", 4, False, 2, None),
}

#: The fixed digits-32 split: a stratified ``train_test_split`` with these settings.
DIGITS_TEST_SIZE = 500
DIGITS_SPLIT_SEED = 0


def info(name: str) -> DatasetInfo:
    """The ``DatasetInfo`` of ``name``, or a ``DataError`` listing the known names."""
    if name not in INFO:
        raise DataError(f"unknown dataset `{name}` (expected one of {', '.join(INFO)})")
    return INFO[name]


# ---------------------------------------------------------------------------------------------
# digits-32
# ---------------------------------------------------------------------------------------------


def digits32_images() -> Tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as uint8 ``[N,3,32,32]`` and their labels.

    Resampling, exactly: the 8x8 scans (integers 0..16) are scaled to [0,1] by /16, upsampled to
    32x32 with ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` (float32),
    rounded to uint8 by ``round(x*255)`` (half to even, clamped to 0..255), and the grey plane is
    copied to R, G and B.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)  # [N,1,8,8]
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x = torch.round(x * 255.0).clamp(0, 255).to(torch.uint8)
    return x.repeat(1, 3, 1, 1).contiguous(), torch.from_numpy(d.target.astype(np.int64))


def digits32_split() -> Tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) into ``load_digits()``: scikit-learn's
    ``train_test_split(arange(1797), test_size=500, stratify=target, random_state=0)``, each sorted."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    y = load_digits().target
    train, test = train_test_split(
        np.arange(len(y)), test_size=DIGITS_TEST_SIZE, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    return np.sort(train), np.sort(test)


def load_digits32() -> Tuple[Split, Split]:
    """(train, test) of digits-32: 1,297 and 500 images."""
    x, y = digits32_images()
    tr, te = digits32_split()
    tr_t, te_t = torch.from_numpy(tr), torch.from_numpy(te)
    return Split(x[tr_t], y[tr_t]), Split(x[te_t], y[te_t])


# ---------------------------------------------------------------------------------------------
# CIFAR files
# ---------------------------------------------------------------------------------------------


def write_cifar10_binary(split: Split, path: str) -> None:
    """Writes ``split`` (32x32x3, labels < 256) in the CIFAR-10 binary record format."""
    n, c, h, w = split.images.shape
    if (c, h, w) != (3, 32, 32):
        raise DataError(f"CIFAR-10 binary records hold 3x32x32 images, not {c}x{h}x{w}")
    if n and int(split.labels.max()) > 255:
        raise DataError("CIFAR-10 binary labels are one byte")
    rec = np.empty((n, 1 + 3 * 32 * 32), dtype=np.uint8)
    rec[:, 0] = split.labels.numpy().astype(np.uint8)
    rec[:, 1:] = split.images.reshape(n, -1).numpy()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(rec.tobytes())


def read_cifar_binary(path: str, label_bytes: int = 1, label_index: Optional[int] = None) -> Split:
    """Reads CIFAR binary records: ``label_bytes`` label bytes (1 for CIFAR-10, 2 = coarse, fine
    for CIFAR-100), then 3072 pixel bytes. ``label_index`` picks the label byte (default: last)."""
    rec_len = label_bytes + 3072
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DataError(f"cannot read `{path}`: {e}") from None
    if raw.size == 0 or raw.size % rec_len:
        raise DataError(
            f"`{path}` has {raw.size} bytes, not a positive multiple of the {rec_len}-byte CIFAR record"
        )
    rec = raw.reshape(-1, rec_len)
    li = label_bytes - 1 if label_index is None else label_index
    labels = torch.from_numpy(rec[:, li].astype(np.int64))
    images = torch.from_numpy(rec[:, label_bytes:].reshape(-1, 3, 32, 32).copy())
    return Split(images, labels)


def _read_cifar_pickle(path: str, label_key: bytes) -> Split:
    # The official python versions are pickles (trusted files only: unpickling runs code).
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:
        raise DataError(f"cannot read `{path}` as a CIFAR python batch: {e}") from None
    if not isinstance(d, dict) or b"data" not in d or label_key not in d:
        keys = list(d.keys()) if isinstance(d, dict) else type(d).__name__
        raise DataError(f"`{path}` has no `data`/`{label_key.decode()}` entries (found {keys})")
    data = np.asarray(d[b"data"], dtype=np.uint8)
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise DataError(f"`{path}`: data {data.shape} and {labels.shape[0]} labels do not fit 3x32x32 images")
    return Split(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels))


def _cat(parts: Sequence[Split]) -> Split:
    return Split(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))


def _first_dir(root: str, names: Sequence[str], markers: Sequence[str]) -> Optional[str]:
    """The first of ``root/<name>`` that exists, else ``root`` itself if it holds a marker file."""
    for n in names:
        p = os.path.join(root, n)
        if os.path.isdir(p):
            return p
    return root if any(os.path.exists(os.path.join(root, f)) for f in markers) else None


def load_cifar(name: str, root: str) -> Tuple[Split, Split]:
    """(train, test) of CIFAR-10 or CIFAR-100 under ``root``: the extracted official archive
    directory (binary or python version) or its parent."""
    if name == "cifar10":
        d = _first_dir(root, ["cifar-10-batches-bin", "cifar-10-batches-py"], ["test_batch.bin", "test_batch"])
        if d is None:
            raise DataError(f"no CIFAR-10 files under `{root}` (expected cifar-10-batches-bin/ or cifar-10-batches-py/)")
        if os.path.exists(os.path.join(d, "test_batch.bin")):
            train = _cat([read_cifar_binary(os.path.join(d, f"data_batch_{i}.bin")) for i in range(1, 6)])
            return train, read_cifar_binary(os.path.join(d, "test_batch.bin"))
        train = _cat([_read_cifar_pickle(os.path.join(d, f"data_batch_{i}"), b"labels") for i in range(1, 6)])
        return train, _read_cifar_pickle(os.path.join(d, "test_batch"), b"labels")
    if name == "cifar100":
        d = _first_dir(root, ["cifar-100-binary", "cifar-100-python"], ["test.bin", "test"])
        if d is None:
            raise DataError(f"no CIFAR-100 files under `{root}` (expected cifar-100-binary/ or cifar-100-python/)")
        if os.path.exists(os.path.join(d, "test.bin")):
            return read_cifar_binary(os.path.join(d, "train.bin"), 2), read_cifar_binary(os.path.join(d, "test.bin"), 2)
        return _read_cifar_pickle(os.path.join(d, "train"), b"fine_labels"), _read_cifar_pickle(
            os.path.join(d, "test"), b"fine_labels"
        )
    raise DataError(f"`{name}` is not a CIFAR dataset")


# ---------------------------------------------------------------------------------------------
# synthetic (smoke tests)
# ---------------------------------------------------------------------------------------------


def synthetic(n_train: int = 64, n_test: int = 32, classes: int = 4, seed: int = 0) -> Tuple[Split, Split]:
    """A tiny learnable set: each class is a bright square at its own place, with noise."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> Split:
        y = torch.arange(n) % classes
        x = torch.rand(n, 3, 32, 32, generator=g) * 0.3
        for i in range(n):
            r, c = divmod(int(y[i]) % 4, 2)
            x[i, :, 4 + 14 * r : 14 + 14 * r, 4 + 14 * c : 14 + 14 * c] += 0.6
        return Split((x.clamp(0, 1) * 255).round().to(torch.uint8), y.to(torch.int64))

    return make(n_train), make(n_test)


def load(name: str, data_dir: Optional[str] = None) -> Tuple[Split, Split]:
    """(train, test) of a dataset by name; CIFAR needs ``data_dir``."""
    info(name)
    if name == "digits-32":
        return load_digits32()
    if name == "synthetic":
        return synthetic()
    if data_dir is None:
        raise DataError(f"dataset `{name}` is read from disk: pass --data-dir")
    return load_cifar(name, data_dir)


def batches(n: int, batch_size: int, shuffle: bool, generator: Optional[torch.Generator] = None) -> List[torch.Tensor]:
    """Index batches over ``n`` items (the last one may be smaller, as a DataLoader's)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]
