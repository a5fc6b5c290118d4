#!/usr/bin/env bash
# Soak benchmark (issue 6, deliverable 4; docs/performance.md, "Soak"): `anisoflow demo` streams
# one long run at 10 frames/s through the real services while this script samples every service
# child's resident memory (VmRSS) and open file descriptors every 10 s. It fails when any
# service's RSS drifts by 5 % or more from the end of the warm-up to the end of the run, when its
# fd count grew, when a service was restarted, or when the final result misses a frame.
#
#   bench/soak.sh [MINUTES] [--keep] [--out-dir DIR] [--rows N] [--cols N] [--distance M]
#
# MINUTES (30) is the stream's length: MINUTES * 60 * 10 frames, half P and half N. The warm-up
# is the first 10 % of it, at least 2 min, at most half the run. The run's directory (configs,
# logs, samples, the run file) is deleted at the end unless --keep. Raw frames are not archived
# (--raw-compression off), but the cakes are: 1.7 MB per frame (1000 x 72 bins, intensity,
# variance and count as float64), ~31 GB for 30 min; the script refuses to start without that
# much free space under --out-dir (default: a new directory in /tmp). Needs the release build
# (scripts/build.sh release).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
anisoflow="${ANISOFLOW:-$root/build/release/apps/anisoflow/anisoflow}"
minutes=30
keep=0
out_dir=""
# 1024 x 1024 at 0.175 m: the demo's smaller documented size (docs/demo.md); the whole chain
# spends about 12 ms of CPU per 2048 x 2048 frame (docs/performance.md), so at a quarter of the
# pixels 10 frames/s leaves most of a 2-core machine to other work. The simulator renders a
# 1024 x 1024 frame in ~0.3 s, too slow for 10 frames/s: it renders 8 per orientation and sends
# them in turn (--distinct). P and N frames alternate (--interleave), so that both orientations'
# buffers exist before the warm-up ends, rather than the N ones appearing half-way.
rows=1024
cols=1024
distance=0.175
distinct=8
fps=10
interval_s=10
drift_limit_percent=5

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while (($#)); do
    case "$1" in
        --keep) keep=1 ;;
        --out-dir) out_dir="$2"; shift ;;
        --rows) rows="$2"; shift ;;
        --cols) cols="$2"; shift ;;
        --distance) distance="$2"; shift ;;
        -h | --help) usage; exit 0 ;;
        [0-9]*) minutes="$1" ;;
        *) echo "soak: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ -x "$anisoflow" ]] || { echo "soak: no $anisoflow; run scripts/build.sh release" >&2; exit 2; }

duration_s=$((minutes * 60))
frames_per_orientation=$((duration_s * fps / 2))
# Warm-up: 10 % of the run, at least 2 min (the services' start, the first run's lookups and
# buffers), but never more than half of a short run.
warm_s=$((duration_s / 10))
((warm_s >= 120)) || warm_s=120
((warm_s <= duration_s / 2)) || warm_s=$((duration_s / 2))
((warm_s >= interval_s)) || warm_s=$interval_s
# The demo's socket paths must stay short (docs/demo.md): a directory under /tmp by default.
# A given --out-dir must be new or empty: it is deleted at the end.
if [[ -n "$out_dir" && -e "$out_dir" && -n "$(ls -A "$out_dir" 2>/dev/null)" ]]; then
    echo "soak: --out-dir $out_dir is not empty (it is deleted at the end)" >&2
    exit 2
fi
[[ -n "$out_dir" ]] || out_dir="$(mktemp -d /tmp/anisoflow-soak.XXXXXX)"
mkdir -p "$out_dir"
samples="$out_dir/samples.tsv"
# The run file: n_q 1000 x n_chi 72 bins (the simulator's RunStart) x 3 float64 per frame.
cake_bytes_per_frame=$((1000 * 72 * 3 * 8))
need_bytes=$((2 * frames_per_orientation * cake_bytes_per_frame + (1 << 30)))
free_bytes="$(df -P -B1 "$out_dir" | awk 'NR == 2 {print $4}')"
if ((free_bytes < need_bytes)); then
    echo "soak: $out_dir has $((free_bytes >> 30)) GiB free; the run file needs about" \
        "$((need_bytes >> 30)) GiB (cakes of every frame): choose another --out-dir" >&2
    rmdir "$out_dir" 2>/dev/null || true
    exit 2
fi

demo_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ -n "$demo_pid" ]] && kill -0 "$demo_pid" 2>/dev/null; then
        kill -TERM "$demo_pid" 2>/dev/null || true  # the demo stops its children itself
        wait "$demo_pid" 2>/dev/null || true
    fi
    if ((keep)); then
        echo "soak: kept $out_dir" >&2
    else
        rm -rf "$out_dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "soak: ${minutes} min at ${fps} frames/s (${frames_per_orientation} P + ${frames_per_orientation} N" \
    "frames of ${rows} x ${cols}), warm-up ${warm_s} s, samples every ${interval_s} s, in $out_dir" >&2
"$anisoflow" demo --out-dir "$out_dir/demo" --frames "$frames_per_orientation" --fps "$fps" \
    --interleave --distinct "$distinct" --rows "$rows" --cols "$cols" --distance "$distance" --raw-compression off \
    --run-timeout $((duration_s + 600)) --json "$out_dir/result.json" \
    >"$out_dir/demo.out" 2>"$out_dir/demo.err" &
demo_pid=$!
start=$SECONDS

# The demo's service children, as "PID INSTANCE": the instance is the name of the --config file
# (DIR/config/<instance>.toml); the simulator (no --config) is not a service.
services() {
    local stat pid rest ppid config
    for stat in /proc/[0-9]*/stat; do
        pid="${stat#/proc/}"
        pid="${pid%/stat}"
        rest="$(cat "$stat" 2>/dev/null)" || continue
        rest="${rest##*) }"  # after the command name, which may hold spaces
        ppid="$(cut -d' ' -f2 <<<"$rest")"
        [[ "$ppid" == "$demo_pid" ]] || continue
        config="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -A1 -x -- --config |
            tail -n1)" || continue
        [[ -n "$config" ]] && echo "$pid $(basename "$config" .toml)"
    done
}

printf 't_s\tinstance\tpid\trss_kb\tfds\n' >"$samples"
while kill -0 "$demo_pid" 2>/dev/null; do
    t=$((SECONDS - start))
    while read -r pid instance; do
        rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" || continue
        fds="$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
        [[ -n "$rss" ]] && printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$instance" "$pid" "$rss" "$fds" >>"$samples"
    done < <(services)
    # Sleep in steps, so that the demo's end is noticed at once.
    for _ in $(seq "$interval_s"); do
        kill -0 "$demo_pid" 2>/dev/null || break
        sleep 1
    done
done
demo_status=0
wait "$demo_pid" || demo_status=$?
demo_pid=""
elapsed_s=$((SECONDS - start))

status=0
if ((demo_status != 0)); then
    echo "soak: FAIL: anisoflow demo exited $demo_status; its stderr ends:" >&2
    tail -n 15 "$out_dir/demo.err" >&2
    status=1
fi
frames="$(/usr/bin/python3 -c '
import json, sys
try:
    received = json.load(open(sys.argv[1]))["frames_received"]
    print(received["data_p"], received["data_n"])
except (OSError, ValueError, KeyError) as error:
    print("none none", error)
' "$out_dir/result.json")"
read -r got_p got_n _ <<<"$frames"
if [[ "$got_p" != "$frames_per_orientation" || "$got_n" != "$frames_per_orientation" ]]; then
    echo "soak: FAIL: the final result came with P $got_p N $got_n frames, expected" \
        "$frames_per_orientation each ($frames)" >&2
    status=1
else
    echo "soak: final result with every frame: P $got_p/$frames_per_orientation N $got_n/$frames_per_orientation" >&2
fi

# One row per service. "warm" is the median RSS of the first minute after the warm-up, "end" the
# median of the last minute (6 samples each, fewer in a short run), so that one transient peak
# (analyze's recompute) neither hides nor fakes a drift; max is over every sample. fds: at the
# first sample after the warm-up and at the last one.
awk -F'\t' -v load="$(cut -d' ' -f1-3 /proc/loadavg)" -v warm_s="$warm_s" \
    -v limit="$drift_limit_percent" -v elapsed="$elapsed_s" -v interval="$interval_s" '
function median(values, count,    i, j, v) {  # sorts values[1..count] in place
    for (i = 2; i <= count; i++) {
        v = values[i]
        for (j = i - 1; j >= 1 && values[j] > v; j--) values[j + 1] = values[j]
        values[j + 1] = v
    }
    return count % 2 ? values[(count + 1) / 2] : (values[count / 2] + values[count / 2 + 1]) / 2
}
NR == 1 { next }
{
    i = $2
    if (!(i in n)) { order[++count] = i; first_pid[i] = $3; n[i] = 0; m[i] = 0 }
    n[i]++
    if ($3 != first_pid[i]) restarted[i] = 1
    if ($4 > max_rss[i]) max_rss[i] = $4
    if ($1 >= warm_s) {
        m[i]++
        rss[i, m[i]] = $4
        if (m[i] == 1) warm_fds[i] = $5
        end_fds[i] = $5
    }
}
END {
    printf "%-12s %9s %9s %9s %8s %9s %8s %8s  %s\n", "service", "warm MiB", "end MiB", \
        "max MiB", "drift %", "fds warm", "fds end", "samples", "verdict"
    bad = 0
    for (k = 1; k <= count; k++) {
        i = order[k]
        if (m[i] < 2) {
            printf "%-12s fewer than 2 samples after the warm-up (%d s): FAIL\n", i, warm_s
            bad = 1
            continue
        }
        window = int(60 / interval)
        if (window > int(m[i] / 2)) window = int(m[i] / 2)
        for (j = 1; j <= window; j++) { a[j] = rss[i, j]; b[j] = rss[i, m[i] - window + j] }
        warm = median(a, window)
        end_rss = median(b, window)
        drift = 100 * (end_rss - warm) / warm
        verdict = "ok"
        if (drift >= limit) verdict = "FAIL: RSS drift"
        if (end_fds[i] > warm_fds[i]) verdict = (verdict == "ok" ? "FAIL" : verdict) ": fds grew"
        if (i in restarted) verdict = "FAIL: restarted"
        if (verdict != "ok") bad = 1
        printf "%-12s %9.1f %9.1f %9.1f %8.2f %9d %8d %8d  %s\n", i, warm / 1024, \
            end_rss / 1024, max_rss[i] / 1024, drift, warm_fds[i], end_fds[i], n[i], verdict
    }
    if (count == 0) { print "no service was sampled"; bad = 1 }
    printf "warm-up end at %d s, demo ran %d s, RSS medians of %d-sample windows, drift limit %d %%, load average at the end %s\n", \
        warm_s, elapsed, window, limit, load
    exit bad
}' "$samples" || status=1

if ((status == 0)); then
    echo "soak: PASS" >&2
else
    echo "soak: FAIL" >&2
fi
exit "$status"
