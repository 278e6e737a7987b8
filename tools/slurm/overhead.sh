#!/usr/bin/env bash
# Benchmark (not a test): what Slurm adds per shard on this machine.
#
#   tools/slurm/overhead.sh [--shards N] [--work SECONDS] [--repeats R]
#
# Runs the launcher (tools/slurm/pibench-eval-array.sh --wait) on the local one-node cluster
# (tools/slurm/local-cluster.sh, started here if it is not running, and stopped again) with a
# trivial worker in place of pibench: each shard sleeps SECONDS (default 0) and writes its JSON,
# the merge writes one more. The same N + 1 commands are then run directly, as many at a time as
# the node has CPUs (what the array may run at once with one CPU per shard). Reported:
# the wall time of each (submission to merged JSON present; the launcher polls every 0.2 s), and
#   overhead per shard = (wall through Slurm − wall direct) / N.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shards=10 work=0 repeats=3
while [ $# -gt 0 ]; do
    case "$1" in
        --shards) shards=${2:?}; shift 2 ;;
        --work) work=${2:?}; shift 2 ;;
        --repeats) repeats=${2:?}; shift 2 ;;
        *) echo "usage: $0 [--shards N] [--work SECONDS] [--repeats R]" >&2; exit 64 ;;
    esac
done

started_here=0
if ! "$here/local-cluster.sh" status >/dev/null 2>&1; then
    "$here/local-cluster.sh" start >/dev/null
    started_here=1
fi
eval "$("$here/local-cluster.sh" env)"
tmp=$(mktemp -d)
cleanup() {
    rm -rf "$tmp"
    if [ "$started_here" = 1 ]; then "$here/local-cluster.sh" stop >/dev/null; fi
}
trap cleanup EXIT

# The trivial worker: `eval ... --json F` and `eval-merge ... --json F` both sleep and write F.
cat >"$tmp/worker" <<EOF
#!/bin/sh
while [ \$# -gt 1 ]; do [ "\$1" = --json ] && out=\$2; shift; done
sleep $work
echo '{}' > "\$out"
EOF
chmod +x "$tmp/worker"
cpus=$(sinfo -h -N -n localhost -o %c)

now() { date +%s.%N; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
engine=() direct=()
for r in $(seq "$repeats"); do
    t0=$(now)
    "$here/pibench-eval-array.sh" --shards "$shards" --out "$tmp/run$r" --pibench "$tmp/worker" \
        --wait --poll 0.2 -- model >/dev/null
    t1=$(now)
    engine+=("$(minus "$t1" "$t0")")

    t0=$(now)
    seq "$shards" | xargs -P "$cpus" -I{} "$tmp/worker" eval model --shard "{}/$shards" --json "$tmp/direct-{}.json"
    "$tmp/worker" eval-merge --json "$tmp/direct-merged.json"
    t1=$(now)
    direct+=("$(minus "$t1" "$t0")")
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
me=$(median "${engine[@]}")
md=$(median "${direct[@]}")
printf 'shards %d, work %s s per shard, %d CPUs, %d repeats (medians)\n' "$shards" "$work" "$cpus" "$repeats"
printf 'through Slurm (array + afterok merge): %.2f s   [%s]\n' "$me" "$(printf '%.2f ' "${engine[@]}")"
printf 'direct (%d at a time, then merge):      %.2f s   [%s]\n' "$cpus" "$md" "$(printf '%.2f ' "${direct[@]}")"
awk -v e="$me" -v d="$md" -v n="$shards" 'BEGIN { printf "overhead per shard: %.2f s\n", (e - d) / n }'
