"""Tests of ``tools/relu_rounds.py``: the rotation, the summary's arithmetic, failures, and a
real comparison with the ``pibench`` binary named by ``PIBENCH_BIN`` (or ``target/release``).

Run with ``python3 tools/test_relu_rounds.py``; `cargo test --release` runs it through
`tests/python_tools.rs`.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import relu_rounds as R  # noqa: E402
import testing  # noqa: E402


def _result(total: float, offline: float, cpu: float | None = None) -> dict:
    r = {
        "us_per_relu": total,
        "us_per_relu_offline": offline,
        "us_per_relu_online": total - offline,
        "correct": True,
    }
    if cpu is not None:
        r["process"] = {
            "cpu_user_seconds": cpu / 2,
            "cpu_system_seconds": cpu / 2,
            "wall_seconds": 0.5,
            "peak_rss_bytes": 1,
            "machine_steal_seconds": 0.1,
            "machine_cpus": 2,
        }
    return r


def _fake_binary(directory: str, totals: list[float], correct: bool = True) -> str:
    """An executable that answers ``relu-bench ... --json`` with the next of ``totals`` (one
    per call, counted in a file beside it) and records its arguments."""
    path = os.path.join(directory, f"fake{len(os.listdir(directory))}")
    with open(path, "w") as f:
        f.write(
            f"""#!{sys.executable}
import json, os, sys
state = {path!r} + ".calls"
calls = json.load(open(state)) if os.path.exists(state) else []
calls.append(sys.argv[1:])
json.dump(calls, open(state, "w"))
total = {totals!r}[len(calls) - 1]
print(json.dumps({{"us_per_relu": total, "us_per_relu_offline": total - 1,
                  "us_per_relu_online": 1.0, "correct": {correct!r}}}))
"""
        )
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


def test_each_binary_goes_first_equally_often():
    firsts = [R.order(["a", "b", "c"], i)[0] for i in range(6)]
    assert sorted(firsts) == [0, 0, 1, 1, 2, 2], firsts
    for i in range(6):
        assert sorted(R.order(["a", "b", "c"], i)) == [0, 1, 2]


def test_wins_and_summary_figures():
    a = R.Runs("a", [_result(5.0, 4.0, 1.0), _result(6.0, 4.5, 1.2), _result(4.0, 3.0, 0.8)])
    b = R.Runs("b", [_result(5.5, 4.0, 1.1), _result(5.0, 4.0, 1.0), _result(4.0, 3.1, 0.9)])
    # Round 3 is a tie: it counts for both.
    assert R.wins([a, b]) == [2, 2]
    assert R.wins([a, b], "us_per_relu_offline") == [2, 2]
    assert a.figure("cpu") == [1.0, 1.2, 0.8]
    assert a.figure("busy") == [2.0, 2.4, 1.6]
    # 0.1 s stolen over 0.5 s of two CPUs: 10 % of the machine.
    assert [round(x, 9) for x in a.figure("steal")] == [10.0, 10.0, 10.0]
    s = R.summary([a, b])
    assert "a: fastest in 2 of 3 rounds" in s, s
    # a's totals 5, 6, 4: mean 5, median 5, range 4–6.
    assert "mean 5.000  median 5.000  range 4.000–6.000" in s, s
    # A build that does not record the process's usage shows no CPU line, and no error.
    old = R.Runs("old", [_result(5.0, 4.0)])
    assert old.figure("cpu") == []
    assert "process CPU" not in R.summary([old])
    assert "old: 1 rounds" in R.summary([old]) and "fastest" not in R.summary([old])


def test_a_comparison_alternates_and_keeps_every_result():
    with tempfile.TemporaryDirectory() as d:
        fast = _fake_binary(d, [4.0, 4.1, 3.9, 4.2])
        slow = _fake_binary(d, [5.0, 5.1, 4.9, 5.2])
        out = os.path.join(d, "runs.json")
        assert R.main(["--rounds", "4", "--relus", "123", "--json", out, fast, slow,
                       "--", "--ot", "iknp"]) == 0
        kept = json.load(open(out))
        assert [k["binary"] for k in kept] == [fast, slow]
        assert [r["us_per_relu"] for r in kept[0]["results"]] == [4.0, 4.1, 3.9, 4.2]
        calls = json.load(open(fast + ".calls"))
        assert calls[0] == ["relu-bench", "--relus", "123", "--json", "--ot", "iknp"], calls


def test_a_wrong_output_stops_the_comparison_but_keeps_what_ran():
    with tempfile.TemporaryDirectory() as d:
        good = _fake_binary(d, [4.0, 4.0])
        bad = _fake_binary(d, [4.0, 4.0], correct=False)
        out = os.path.join(d, "runs.json")
        assert R.main(["--rounds", "2", "--json", out, good, bad]) == 1
        kept = json.load(open(out))
        assert len(kept[0]["results"]) == 1 and kept[1]["results"] == []


def test_a_real_comparison_of_pibench_with_itself():
    root = os.path.dirname(HERE)
    binary = os.environ.get("PIBENCH_BIN") or os.path.join(root, "target", "release", "pibench")
    assert os.path.exists(binary), f"no pibench binary at {binary}: build it or set PIBENCH_BIN"
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "runs.json")
        assert R.main(["--rounds", "2", "--relus", "300", "--json", out, binary, binary]) == 0
        kept = json.load(open(out))
        for k in kept:
            assert len(k["results"]) == 2
            for r in k["results"]:
                assert r["relus"] == 300 and r["correct"]
                assert r["us_per_relu"] > 0
                # The build records what the process used, so the CPU lines have figures.
                assert r["process"]["cpu_user_seconds"] + r["process"]["cpu_system_seconds"] > 0
                if sys.platform.startswith("linux"):
                    assert r["process"]["machine_steal_seconds"] >= 0


if __name__ == "__main__":
    testing.run_tests(globals())
