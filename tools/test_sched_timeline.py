"""Tests of ``tools/sched_timeline.py``: parsing ``perf script`` lines, each thread's time per
phase and per bucket on a hand-made trace whose answers are known, the chart, the errors, and
the phases of a real ``relu-bench`` result of the ``pibench`` binary named by ``PIBENCH_BIN``
(or ``target/release``). (Recording a trace needs ``perf`` and the right to trace the
scheduler, which CI lacks; the hand-made trace is in ``perf script``'s own format.)

Run with ``python3 tools/test_sched_timeline.py``; `cargo test --release` runs it through
`tests/python_tools.rs`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import sched_timeline as T  # noqa: E402
import testing  # noqa: E402


def _line(cpu: int, time: float, prev: str, nxt: str, pid: int) -> str:
    """A sched_switch line as ``perf script -F cpu,time,trace`` prints it."""
    return (
        f"[{cpu:03d}] {time:.6f}: sched:sched_switch: prev_comm={prev} prev_pid=7 prev_prio=120 "
        f"prev_state=S ==> next_comm={nxt} next_pid={pid} next_prio=120"
    )


# Two CPUs over [100.0, 100.4): CPU 0 runs the client for 0.1 s, is idle 0.1 s, runs a
# rayon worker 0.2 s; CPU 1 runs the server 0.3 s, then is idle. Every stretch ends with a
# switch at 100.4 so that it is known.
TRACE = [
    _line(0, 100.0, "swapper/0", "pibench-client", 11),
    _line(1, 100.0, "swapper/1", "pibench-server", 10),
    _line(0, 100.1, "pibench-client", "swapper/0", 0),
    _line(0, 100.2, "swapper/0", "pibench-rayon0", 12),
    _line(1, 100.3, "pibench-server", "swapper/1", 0),
    "   some other event line that is not a switch",
    _line(0, 100.4, "pibench-rayon0", "swapper/0", 0),
    _line(1, 100.4, "swapper/1", "pibench-server", 10),
]


def _close(a: float, b: float) -> bool:
    return abs(a - b) < 1e-9


def test_switches_are_parsed_in_time_order_and_idle_is_one_name():
    lines = list(reversed(TRACE))
    s = T.parse(lines)
    assert len(s) == 7, s
    assert [x.time for x in s] == sorted(x.time for x in s)
    assert {x.name for x in s} == {"pibench-client", "pibench-server", "pibench-rayon0", T.IDLE}
    # `perf script` with the command and thread id in front parses the same.
    prefixed = ["     pibench-client  4242 " + line for line in TRACE]
    assert T.parse(prefixed) == T.parse(TRACE)


def test_busy_time_per_thread_within_a_window():
    s = T.parse(TRACE)
    whole = T.busy(s, 100.0, 100.4)
    assert _close(whole["pibench-client"], 0.1)
    assert _close(whole["pibench-server"], 0.3)
    assert _close(whole["pibench-rayon0"], 0.2)
    assert _close(whole[T.IDLE], 0.2)
    # A window cuts the stretches it overlaps.
    part = T.busy(s, 100.05, 100.25)
    assert _close(part["pibench-client"], 0.05)
    assert _close(part["pibench-server"], 0.2)
    assert _close(part["pibench-rayon0"], 0.05)
    assert _close(part[T.IDLE], 0.1)


def test_buckets_split_stretches_at_their_edges():
    s = T.parse(TRACE)
    rows = T.buckets(s, 100.0, 100.4, 0.1)
    assert [round(x, 9) for x in rows["pibench-client"]] == [0.1, 0.0, 0.0, 0.0]
    assert [round(x, 9) for x in rows["pibench-server"]] == [0.1, 0.1, 0.1, 0.0]
    assert [round(x, 9) for x in rows["pibench-rayon0"]] == [0.0, 0.0, 0.1, 0.1]
    assert [round(x, 9) for x in rows[T.IDLE]] == [0.0, 0.1, 0.0, 0.1]
    # Buckets that do not line up with the switches share a stretch between them.
    rows = T.buckets(s, 100.0, 100.4, 0.15)
    assert len(rows["pibench-server"]) == 3
    assert [round(x, 9) for x in rows["pibench-server"]] == [0.15, 0.15, 0.0]


def test_phases_come_from_the_result_and_old_results_are_refused():
    result = {
        "process_offline": {"start_monotonic_seconds": 100.0, "wall_seconds": 0.3},
        "process_online": {"start_monotonic_seconds": 100.3, "wall_seconds": 0.1},
    }
    spans = T.phases(result)
    assert [p for p, _, _ in spans] == ["offline", "online"]
    assert _close(spans[0][2], 100.3) and _close(spans[1][2], 100.4)
    old = {"process_offline": {"wall_seconds": 0.3}, "process_online": {"wall_seconds": 0.1}}
    try:
        T.phases(old)
    except ValueError as e:
        assert "start_monotonic_seconds" in str(e)
    else:
        raise AssertionError("a result without phase starts was accepted")


def test_table_and_chart():
    s = T.parse(TRACE)
    spans = [("offline", 100.0, 100.3), ("online", 100.3, 100.4)]
    text = T.table(s, spans, cpus=2)
    # Offline: 0.1 s idle of 2 × 0.3 s; the server ran the whole phase.
    assert "offline: 300.0 ms, machine idle 17 %" in text, text
    assert "pibench-server      300.0 ms    100 % of a core" in text, text
    # Online: CPU 0 ran the worker, CPU 1 was idle: half the machine.
    assert "online: 100.0 ms, machine idle 50 %" in text, text
    # Busiest first.
    offline = text.split("online:")[0]
    assert offline.index("pibench-server") < offline.index("pibench-rayon0")
    art = T.chart(s, 100.0, 100.4, 0.1, ["pibench-server", "pibench-rayon0", "absent", T.IDLE])
    assert art.splitlines() == [
        "pibench-server   |@@@ |",
        "pibench-rayon0   |  @@|",
        f"{T.IDLE:<16} | @ @|",
    ], art


def test_the_command_reads_files_and_reports_errors():
    with tempfile.TemporaryDirectory() as d:
        trace, result = os.path.join(d, "t.txt"), os.path.join(d, "r.json")
        with open(trace, "w") as f:
            f.write("\n".join(TRACE) + "\n")
        with open(result, "w") as f:
            json.dump(
                {
                    "process": {"machine_cpus": 2},
                    "process_offline": {"start_monotonic_seconds": 100.0, "wall_seconds": 0.3},
                    "process_online": {"start_monotonic_seconds": 100.3, "wall_seconds": 0.1},
                },
                f,
            )
        assert T.main([trace, result, "--bucket-ms", "100"]) == 0
        empty = os.path.join(d, "empty.txt")
        open(empty, "w").close()
        assert T.main([empty, result]) == 1
        with open(result, "w") as f:
            json.dump({"process_offline": {"wall_seconds": 1}}, f)
        assert T.main([trace, result]) == 1


def test_a_real_result_gives_its_phases():
    """The ``pibench`` binary's ``relu-bench --json`` records where its phases start on the
    monotonic clock, in order, the online phase after the offline one, both within this
    process's reading of that clock."""
    binary = os.environ.get("PIBENCH_BIN") or os.path.join(
        HERE, "..", "target", "release", "pibench"
    )
    before = time.clock_gettime(time.CLOCK_MONOTONIC)
    run = subprocess.run(
        [binary, "relu-bench", "--relus", "2000", "--json"],
        capture_output=True, text=True, check=True,
    )
    after = time.clock_gettime(time.CLOCK_MONOTONIC)
    r = json.loads(run.stdout)
    assert r["correct"], r
    (off, off_start, off_end), (on, on_start, on_end) = T.phases(r)
    assert (off, on) == ("offline", "online")
    # The online phase starts where the offline one ends: `start + wall` of the one and the
    # start of the next are read microseconds apart, in either order.
    assert before < off_start < off_end < on_end < after, (
        before, off_start, off_end, on_end, after)
    assert off_start < on_start < on_end and abs(on_start - off_end) < 1e-3, (
        off_start, off_end, on_start, on_end)


if __name__ == "__main__":
    testing.run_tests(globals())
