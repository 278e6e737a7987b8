#!/usr/bin/env bash
# Sharded `pibench eval` on Slurm: one job array of N shards, then one job that merges them.
# Documented in docs/SLURM.md.
#
#   tools/slurm/pibench-eval-array.sh --shards N --out DIR [options] -- MODEL [EVAL FLAGS...]
#
# Array task K (1..N) runs
#   pibench eval MODEL [EVAL FLAGS...] --shard K/N --json DIR/shard-K.json
# and a job that starts only when every task succeeded (--dependency=afterok) runs
#   pibench eval-merge DIR/shard-1.json ... DIR/shard-N.json --json DIR/merged.json
# whose result is the JSON an unsharded `pibench eval MODEL [EVAL FLAGS...]` writes.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: pibench-eval-array.sh --shards N --out DIR [options] -- MODEL [EVAL FLAGS...]

  --shards N            number of shards = array tasks (required)
  --out DIR             shard-K.json, merged.json, the two job scripts and logs/ go here (required);
                        it must be on a file system the compute nodes share, as must MODEL and --data
  --pibench PATH        the pibench binary (default: `pibench` found on PATH), as the nodes see it
  --partition P         sbatch --partition for both jobs
  --time T              time limit of each shard (sbatch --time, e.g. 02:00:00)
  --merge-time T        time limit of the merge job (default 00:10:00)
  --cpus-per-task C     CPUs per shard (default 1); the shard's thread pool gets C threads
  --mem M               memory per shard (sbatch --mem, e.g. 4G)
  --account A           sbatch --account for both jobs
  --max-running R       run at most R shards at once (--array=...%R)
  --job-name NAME       job name (default pibench-eval; the merge job gets NAME-merge)
  --sbatch-arg ARG      one more sbatch option for both jobs, e.g. --sbatch-arg=--qos=short (repeatable)
  --resume              submit only the shards whose shard-K.json is missing (after a failure)
  --wait                block until the merge job ends; exit 0 only if merged.json was written
  --poll S              seconds between checks while waiting (default 2)
  --dry-run             write the job scripts and print the sbatch commands; submit nothing

Everything after `--` goes to `pibench eval` unchanged (relative paths are resolved from the
directory you submit from: both jobs run there). Prints the two job ids and the merged JSON's path.
EOF
}

die() {
    echo "pibench-eval-array: $*" >&2
    exit 2
}

shards='' out='' pibench='' partition='' time_limit='' merge_time=00:10:00 cpus=1 mem='' account=''
max_running='' job_name=pibench-eval resume=0 wait=0 poll=2 dry_run=0
extra=()
while [ $# -gt 0 ]; do
    # --opt=value and --opt value both work.
    case "$1" in
        --*=*)
            opt=${1%%=*}
            val=${1#*=}
            shift
            set -- "$opt" "$val" "$@"
            ;;
    esac
    case "$1" in
        --shards) shards=${2:?--shards needs a value}; shift 2 ;;
        --out) out=${2:?--out needs a value}; shift 2 ;;
        --pibench) pibench=${2:?--pibench needs a value}; shift 2 ;;
        --partition) partition=${2:?}; shift 2 ;;
        --time) time_limit=${2:?}; shift 2 ;;
        --merge-time) merge_time=${2:?}; shift 2 ;;
        --cpus-per-task) cpus=${2:?}; shift 2 ;;
        --mem) mem=${2:?}; shift 2 ;;
        --account) account=${2:?}; shift 2 ;;
        --max-running) max_running=${2:?}; shift 2 ;;
        --job-name) job_name=${2:?}; shift 2 ;;
        --sbatch-arg) extra+=("${2:?}"); shift 2 ;;
        --resume) resume=1; shift ;;
        --wait) wait=1; shift ;;
        --poll) poll=${2:?}; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; break ;;
        *) usage >&2; die "unknown option '$1' (the model and eval flags go after --)" ;;
    esac
done
[ $# -ge 1 ] || { usage >&2; die "no MODEL after --"; }
is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
is_count "$shards" || die "--shards must be a positive integer, got '${shards}'"
[ -n "$out" ] || die "--out DIR is required"
is_count "$cpus" || die "--cpus-per-task must be a positive integer, got '$cpus'"
[ -z "$max_running" ] || is_count "$max_running" || die "--max-running must be a positive integer"
[[ $poll =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--poll must be a number of seconds, got '$poll'"
for a in "$@"; do
    case "$a" in
        --shard | --shard=* | --json | --json=*) die "'$a' is set by the launcher; leave it out of the eval flags" ;;
    esac
done

# The nodes run the binary we were given, wherever they are: an absolute path, fixed now.
if [ -z "$pibench" ]; then
    pibench=$(command -v pibench) || die "no pibench on PATH; give --pibench PATH"
fi
[ -x "$pibench" ] || die "--pibench '$pibench' is not an executable file"
pibench=$(cd "$(dirname "$pibench")" && pwd)/$(basename "$pibench")
if [ "$dry_run" = 0 ]; then
    command -v sbatch >/dev/null || die "sbatch not found: is this a Slurm submit host?"
fi

mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
submit_dir=$(pwd)

# Options common to both jobs, as #SBATCH lines so a job script can be resubmitted by hand.
common=("--chdir=$submit_dir")
[ -n "$partition" ] && common+=("--partition=$partition")
[ -n "$account" ] && common+=("--account=$account")
common+=("${extra[@]}")
directives() {
    local o
    for o in "$@"; do
        [[ $o == *[[:space:]]* ]] && die "sbatch option '$o' has a space: #SBATCH lines cannot hold it"
        printf '#SBATCH %s\n' "$o"
    done
}

shard_opts=("--job-name=$job_name" "--output=$out/logs/shard-%a.out" "--cpus-per-task=$cpus" "${common[@]}")
[ -n "$time_limit" ] && shard_opts+=("--time=$time_limit")
[ -n "$mem" ] && shard_opts+=("--mem=$mem")

eval_cmd=$(printf '%q ' "$pibench" eval "$@")
# shellcheck disable=SC2016 # the $ lines are for the job script to expand
{
    echo '#!/usr/bin/env bash'
    echo "# Written by tools/slurm/pibench-eval-array.sh: shard \$SLURM_ARRAY_TASK_ID of $shards."
    echo "# Rerun shard K alone with: sbatch --array=K $out/eval-shard.sbatch"
    directives "${shard_opts[@]}"
    echo 'set -euo pipefail'
    echo 'k=${SLURM_ARRAY_TASK_ID:?run this as a Slurm array task (sbatch --array=...)}'
    # Without cgroups a process sees every core of the node: size the thread pool to the grant.
    echo 'export RAYON_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}'
    # Written under another name and renamed, so a shard JSON present is a shard JSON complete.
    echo "$eval_cmd--shard \"\$k/$shards\" --json $(printf '%q' "$out")/shard-\$k.json.part"
    echo "mv -f $(printf '%q' "$out")/shard-\$k.json.part $(printf '%q' "$out")/shard-\$k.json"
} >"$out/eval-shard.sbatch"

merge_opts=("--job-name=$job_name-merge" "--output=$out/logs/merge.out" "--cpus-per-task=1" "--time=$merge_time" "${common[@]}")
shard_files=()
for k in $(seq "$shards"); do shard_files+=("$out/shard-$k.json"); done
{
    echo '#!/usr/bin/env bash'
    echo "# Written by tools/slurm/pibench-eval-array.sh: merges the $shards shards."
    directives "${merge_opts[@]}"
    echo 'set -euo pipefail'
    printf '%q ' "$pibench" eval-merge "${shard_files[@]}" --json "$out/merged.json.part"
    echo
    echo "mv -f $(printf '%q' "$out")/merged.json.part $(printf '%q' "$out")/merged.json"
} >"$out/eval-merge.sbatch"
chmod +x "$out/eval-shard.sbatch" "$out/eval-merge.sbatch"

# Which shards to run: all, or with --resume those without a result.
todo=()
for k in $(seq "$shards"); do
    if [ "$resume" = 1 ] && [ -s "$out/shard-$k.json" ]; then continue; fi
    todo+=("$k")
done
if [ ${#todo[@]} -eq "$shards" ]; then
    array_spec="1-$shards"
else
    array_spec=$(IFS=,; echo "${todo[*]}")
fi
[ -n "$max_running" ] && array_spec="$array_spec%$max_running"

if [ "$dry_run" = 1 ]; then
    if [ ${#todo[@]} -gt 0 ]; then
        echo "sbatch --parsable --array=$array_spec $out/eval-shard.sbatch"
        echo "sbatch --parsable --dependency=afterok:<array job id> --kill-on-invalid-dep=yes $out/eval-merge.sbatch"
    else
        echo "sbatch --parsable $out/eval-merge.sbatch"
    fi
    exit 0
fi

rm -f "$out/merged.json"
job_id() { local id; id=$(cat); echo "${id%%;*}"; }
array_id=
merge_dep=()
if [ ${#todo[@]} -gt 0 ]; then
    array_id=$(sbatch --parsable --array="$array_spec" "$out/eval-shard.sbatch" | job_id)
    [[ $array_id =~ ^[0-9]+$ ]] || die "sbatch gave no job id for the array: '$array_id'"
    merge_dep=("--dependency=afterok:$array_id" "--kill-on-invalid-dep=yes")
fi
merge_id=$(sbatch --parsable "${merge_dep[@]}" "$out/eval-merge.sbatch" | job_id)
[[ $merge_id =~ ^[0-9]+$ ]] || die "sbatch gave no job id for the merge: '$merge_id'"
echo "array job: ${array_id:-none (every shard already done)} (tasks $array_spec of 1-$shards)"
echo "merge job: $merge_id"
echo "result:    $out/merged.json"
echo "logs:      $out/logs/"

[ "$wait" = 1 ] || exit 0

# The state of job ID from scontrol (empty once Slurm has forgotten it, MinJobAge after its end).
job_state() { scontrol -o show job "$1" 2>/dev/null | sed -n 's/.* JobState=\([A-Z_]*\).*/\1/p' | head -n1; }
active() {
    case "$1" in
        PENDING | RUNNING | CONFIGURING | COMPLETING | REQUEUED | RESIZING | SUSPENDED) return 0 ;;
        *) return 1 ;;
    esac
}
state=$(job_state "$merge_id")
while active "$state"; do
    sleep "$poll"
    state=$(job_state "$merge_id")
done
if [ -s "$out/merged.json" ]; then
    echo "merged:    $out/merged.json"
    exit 0
fi
echo "pibench-eval-array: the merge job ended ${state:-(forgotten by Slurm)} without $out/merged.json" >&2
missing=()
for k in $(seq "$shards"); do [ -s "$out/shard-$k.json" ] || missing+=("$k"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "  shards without a result: ${missing[*]}; their logs: $out/logs/shard-K.out" >&2
    for k in "${missing[@]}"; do
        echo "  --- $out/logs/shard-$k.out (last lines)" >&2
        tail -n 5 "$out/logs/shard-$k.out" >&2 2>/dev/null || echo "  (no log)" >&2
    done
    echo "  after fixing the cause, rerun with the same arguments plus --resume" >&2
else
    echo "  --- $out/logs/merge.out (last lines)" >&2
    tail -n 10 "$out/logs/merge.out" >&2 2>/dev/null || true
fi
exit 1
