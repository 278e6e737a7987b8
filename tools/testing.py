"""What the tools' test scripts share: running their ``test_*`` functions without pytest
(``python3 tools/test_export.py``, ``python3 tools/rlnet/test_rlnet.py``)."""

from __future__ import annotations

import sys


def run_tests(namespace: dict) -> None:
    """Run every ``test_*`` function of ``namespace`` (a script's ``globals()``) in name order,
    print one line per test and a summary, and exit with status 1 if any failed."""
    failed = 0
    tests = [(n, f) for n, f in sorted(namespace.items()) if n.startswith("test_") and callable(f)]
    for n, f in tests:
        try:
            f()
            print(f"ok      {n}", flush=True)
        except Exception as e:
            failed += 1
            print(f"FAILED  {n}: {type(e).__name__}: {e}", flush=True)
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
