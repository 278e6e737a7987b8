#!/usr/bin/env python3
"""Where the cores went during a `relu-bench` run: each thread's share of each phase, and the
machine's idle share, from a scheduler trace.

The end-to-end time of a fresh ``relu-bench`` on a 2-core machine is bound by how well its five
threads keep both cores busy; ``getrusage`` gives the totals, this gives the shape. Record the
run's context switches on the clock ``relu-bench`` stamps its phases with, then read them::

    perf record -k CLOCK_MONOTONIC -e sched:sched_switch -a -o sched.data -- \\
        target/release/pibench relu-bench --relus 100000 --json > run.json
    perf script -i sched.data -F cpu,time,trace > sched.txt
    python3 tools/sched_timeline.py sched.txt run.json [--bucket-ms 10]

pibench names its threads (``pibench-server``, ``pibench-client``, ``pibench-send``,
``pibench-recv``, ``pibench-rayonN``), so the table is by name. The phases come from the
result's ``process_offline`` and ``process_online`` (their ``start_monotonic_seconds`` and
``wall_seconds``; builds from before session 18 do not record the start). With
``--bucket-ms``, a chart follows: a row per thread and one for the idle machine, a character per
bucket from `` `` (nothing) to ``@`` (a whole core). Only the standard library is needed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass

# `perf script -F cpu,time,trace` of sched:sched_switch (other fields before these are allowed).
SWITCH = re.compile(
    r"\[(?P<cpu>\d+)\]\s+(?P<time>\d+\.\d+):.*?prev_comm=(?P<prev>.*?) prev_pid=\d+ .*?"
    r"==> next_comm=(?P<next>.*?) next_pid=(?P<pid>\d+)"
)
# The name the idle task's time is filed under.
IDLE = "(idle)"
# From nothing to a whole core in one bucket.
SHADES = " .:-=+*#%@"


@dataclass(frozen=True)
class Switch:
    """One context switch: at ``time`` seconds, CPU ``cpu`` starts running ``name``."""

    time: float
    cpu: int
    name: str


def parse(lines) -> list[Switch]:
    """The context switches in a ``perf script`` listing, in time order; the idle task (pid 0)
    is named ``(idle)`` whatever its per-CPU name. Lines of other events are skipped."""
    out = []
    for line in lines:
        m = SWITCH.search(line)
        if not m:
            continue
        name = IDLE if m["pid"] == "0" else m["next"]
        out.append(Switch(float(m["time"]), int(m["cpu"]), name))
    out.sort(key=lambda s: s.time)
    return out


def intervals(switches: list[Switch]):
    """``(name, start, end)`` for every stretch a CPU ran one task: from a switch to the next on
    the same CPU. A CPU's stretch before its first switch is unknown and left out."""
    last: dict[int, Switch] = {}
    for s in switches:
        prev = last.get(s.cpu)
        if prev is not None and s.time > prev.time:
            yield prev.name, prev.time, s.time
        last[s.cpu] = s


def busy(switches: list[Switch], start: float, end: float) -> dict[str, float]:
    """Seconds each name ran within ``[start, end)``, summed over CPUs."""
    out: dict[str, float] = defaultdict(float)
    for name, a, b in intervals(switches):
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            out[name] += hi - lo
    return dict(out)


def buckets(switches: list[Switch], start: float, end: float, width: float) -> dict[str, list[float]]:
    """Per name, the seconds it ran in each bucket of ``width`` seconds from ``start`` (the last
    bucket may be short)."""
    n = max(1, int((end - start) / width + 1 - 1e-9))
    out: dict[str, list[float]] = defaultdict(lambda: [0.0] * n)
    for name, a, b in intervals(switches):
        a, b = max(a, start), min(b, end)
        i = int((a - start) / width) if b > a else n
        while i < n and a < b:
            edge = min(b, start + (i + 1) * width)
            if edge > a:
                out[name][i] += edge - a
                a = edge
            i += 1
    return dict(out)


def phases(result: dict) -> list[tuple[str, float, float]]:
    """``(phase, start, end)`` on the monotonic clock from a ``relu-bench --json`` result; an
    error if the build did not record when its phases started."""
    out = []
    for phase in ("offline", "online"):
        usage = result.get(f"process_{phase}") or {}
        start = usage.get("start_monotonic_seconds")
        if start is None:
            raise ValueError(
                f"the result has no process_{phase}.start_monotonic_seconds: "
                "a pibench from session 18 on records it (on Linux)"
            )
        out.append((phase, start, start + usage["wall_seconds"]))
    return out


def table(switches: list[Switch], spans: list[tuple[str, float, float]], cpus: int) -> str:
    """Per phase: its wall time, the idle share of the machine, and each thread's CPU time and
    share of one core, busiest first."""
    lines = []
    for phase, start, end in spans:
        wall = end - start
        used = busy(switches, start, end)
        idle = used.pop(IDLE, 0.0)
        lines.append(f"{phase}: {wall * 1e3:.1f} ms, machine idle {100 * idle / (wall * cpus):.0f} %")
        for name, secs in sorted(used.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name:<16} {secs * 1e3:8.1f} ms  {100 * secs / wall:5.0f} % of a core")
    return "\n".join(lines)


def chart(switches: list[Switch], start: float, end: float, width: float, names: list[str]) -> str:
    """A row per name: a character per bucket, its shade the share of one core it ran."""
    rows = buckets(switches, start, end, width)
    out = []
    for name in names:
        row = rows.get(name)
        if row is None:
            continue
        shade = "".join(SHADES[min(len(SHADES) - 1, int(len(SHADES) * t / width))] for t in row)
        out.append(f"{name:<16} |{shade}|")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace", help="`perf script -F cpu,time,trace` of sched:sched_switch")
    ap.add_argument("result", help="the run's `relu-bench --json` result")
    ap.add_argument("--bucket-ms", type=float, help="also draw a chart with buckets this wide")
    ap.add_argument("--cpus", type=int, help="the machine's CPUs (default: the result's)")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    with open(args.result) as f:
        result = json.load(f)
    with open(args.trace) as f:
        switches = parse(f)
    if not switches:
        print(f"{args.trace}: no sched_switch events", file=sys.stderr)
        return 1
    try:
        spans = phases(result)
    except ValueError as e:
        print(f"{args.result}: {e}", file=sys.stderr)
        return 1
    cpus = args.cpus or (result.get("process") or {}).get("machine_cpus") or 1
    print(table(switches, spans, cpus))
    if args.bucket_ms:
        width = args.bucket_ms / 1e3
        names = sorted({s.name for s in switches if s.name.startswith("pibench")}) + [IDLE]
        for phase, start, end in spans:
            print(f"\n{phase}, {args.bucket_ms:g} ms a character:")
            print(chart(switches, start, end, width, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
