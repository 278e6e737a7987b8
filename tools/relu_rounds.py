#!/usr/bin/env python3
"""Compare pibench builds on `relu-bench` fairly on a machine whose speed drifts.

This project's development VM changes speed by a third within an hour, so two builds measured
one after the other compare the hours, not the builds. This runs ``BIN relu-bench --relus N
--json`` for every binary in each round, each run a fresh process (what a user runs), the
binaries' order rotating from round to round so that each goes first equally often, and prints
every run, each binary's mean, median and range (with the process's CPU and the share of the
machine the hypervisor stole, when the build reports them), and in how many rounds each was
fastest::

    python3 tools/relu_rounds.py --rounds 10 target/release/pibench /tmp/pibench-old
    python3 tools/relu_rounds.py --rounds 5 BIN -- --garbling half-gates --ot iknp

A run that fails or reports a wrong output stops the comparison with its error. ``--json OUT``
keeps every run's full result (``relu-bench --json``) for later plots. Only the standard
library is needed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass, field


@dataclass
class Runs:
    """Every result of one binary, in the order they ran."""

    binary: str
    results: list[dict] = field(default_factory=list)

    def figure(self, key: str) -> list[float]:
        """One number of every run: a key of the result, or ``cpu`` / ``busy`` / ``steal``
        (the process's CPU seconds and cores busy over the run, and the percentage of the
        machine's CPU time the hypervisor took meanwhile, when the build records them)."""
        out = []
        for r in self.results:
            if key in ("cpu", "busy", "steal"):
                p = r.get("process")
                if not p or (key == "steal" and p.get("machine_steal_seconds") is None):
                    continue
                cpu = p["cpu_user_seconds"] + p["cpu_system_seconds"]
                if key == "cpu":
                    out.append(cpu)
                elif key == "busy":
                    out.append(cpu / p["wall_seconds"])
                else:
                    cpus = p.get("machine_cpus") or 1
                    out.append(100 * p["machine_steal_seconds"] / (p["wall_seconds"] * cpus))
            else:
                out.append(float(r[key]))
        return out


def order(binaries: list[str], round_index: int) -> list[int]:
    """The binaries' indices in the order they run in round ``round_index``: rotated by one
    each round, so that over ``len(binaries)`` rounds each runs first once."""
    k = len(binaries)
    return [(round_index + i) % k for i in range(k)]


def run_once(binary: str, relus: int, extra: list[str]) -> dict:
    """One fresh ``relu-bench`` process; its JSON result, checked."""
    cmd = [binary, "relu-bench", "--relus", str(relus), "--json", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    try:
        r = json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise RuntimeError(f"{' '.join(cmd)} printed no JSON result: {e}") from e
    if not r.get("correct", False):
        raise RuntimeError(f"{' '.join(cmd)} reported wrong outputs")
    return r


def wins(runs: list[Runs], key: str = "us_per_relu") -> list[int]:
    """In how many rounds each binary had the lowest ``key`` (ties count for each)."""
    counts = [0] * len(runs)
    rounds = min(len(r.results) for r in runs)
    for i in range(rounds):
        values = [r.figure(key)[i] for r in runs]
        best = min(values)
        for j, v in enumerate(values):
            if v == best:
                counts[j] += 1
    return counts


def summary(runs: list[Runs]) -> str:
    """Each binary's mean, median and range of the total, offline and online µs per ReLU, its
    CPU and cores busy, and its wins."""
    lines = []
    won = wins(runs)
    rounds = min(len(r.results) for r in runs)
    for r, w in zip(runs, won):
        # Alone, a binary wins every round: say only how many it ran.
        verdict = f"fastest in {w} of {rounds} rounds" if len(runs) > 1 else f"{rounds} rounds"
        lines.append(f"{r.binary}: {verdict}")
        for key, name in [
            ("us_per_relu", "µs/ReLU total  "),
            ("us_per_relu_offline", "        offline"),
            ("us_per_relu_online", "        online "),
            ("cpu", "process CPU, s "),
            ("busy", "cores busy     "),
            ("steal", "stolen, %      "),
        ]:
            v = r.figure(key)
            if not v:
                continue
            lines.append(
                f"  {name} mean {statistics.fmean(v):.3f}  median {statistics.median(v):.3f}"
                f"  range {min(v):.3f}–{max(v):.3f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binaries", nargs="+", help="pibench binaries to compare")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--relus", type=int, default=100_000)
    ap.add_argument("--json", metavar="OUT", help="write every run's result here")
    argv = sys.argv[1:] if argv is None else argv
    # What follows `--` goes to every relu-bench run as it is.
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = ap.parse_args(argv[:cut]), argv[cut + 1 :]
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    runs = [Runs(b) for b in args.binaries]
    for j, b in enumerate(args.binaries):
        print(f"{j}: {b}")
    try:
        for i in range(args.rounds):
            line = []
            for j in order(args.binaries, i):
                r = run_once(args.binaries[j], args.relus, extra)
                runs[j].results.append(r)
                line.append(f"{j}: {r['us_per_relu']:.3f}")
            print(f"round {i + 1:>3}  " + "  ".join(line) + "  µs/ReLU", flush=True)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if args.json:
            with open(args.json, "w") as f:
                json.dump([{"binary": r.binary, "results": r.results} for r in runs], f, indent=1)
    print(summary(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
