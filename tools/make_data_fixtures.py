#!/usr/bin/env python3
"""Writes the small CIFAR Python-pickle fixtures of tests/fixtures/data/ (read by tests/data_readers.rs).

Real CIFAR pickles were written by Python 2's cPickle (protocol 2): dict keys and the array's
raw bytes are Python 2 ``str`` (``BINSTRING`` opcodes), the array a ``numpy.core.multiarray
._reconstruct`` call. Python 3 cannot emit ``str``-as-bytes, so the CIFAR-10 fixture uses a
pickler that writes ``bytes`` as Python 2 strings, as cPickle did. The CIFAR-100 fixture is a
plain Python 3 protocol-4 pickle (``bytes`` keys, ``BINBYTES``), and a third file uses protocol 5
(``_frombuffer`` with an in-band buffer), so all three ways an ndarray is pickled are covered.

Pixel ``p`` of image ``n`` (C-order index into the 3072 bytes) is ``(7·n + 13·p) mod 256``; labels
are ``(3·n + 1) mod classes``. The Rust test recomputes both. Run from the repository root:

    python3 tools/make_data_fixtures.py
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "data")
N = 12


def images(n: int) -> np.ndarray:
    idx = np.arange(3072, dtype=np.int64)
    return np.stack([((7 * k + 13 * idx) % 256).astype(np.uint8) for k in range(n)])


def labels(n: int, classes: int) -> list:
    return [int((3 * k + 1) % classes) for k in range(n)]


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler lets us override one type
    """Protocol 2, with ``bytes`` written as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    print(f"{os.path.relpath(path)}: {len(data)} bytes")


def main() -> int:
    c10 = {b"batch_label": b"testing batch 1 of 1", b"labels": labels(N, 10), b"data": images(N),
           b"filenames": [b"img_%d.png" % k for k in range(N)]}
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(c10)
    write(os.path.join(OUT, "cifar-10-batches-py", "test_batch"), buf.getvalue())

    c100 = {b"filenames": [b"x_%d.png" % k for k in range(N)], b"batch_label": b"testing batch 1 of 1",
            b"fine_labels": labels(N, 100), b"coarse_labels": [k % 20 for k in range(N)], b"data": images(N)}
    write(os.path.join(OUT, "cifar-100-python", "test"), pickle.dumps(c100, protocol=4))

    write(os.path.join(OUT, "cifar-100-python-p5", "test"), pickle.dumps(c100, protocol=5))
    return 0


if __name__ == "__main__":
    sys.exit(main())
