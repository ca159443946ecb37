#!/bin/sh
# bench/run.sh BUILD_DIR: every benchmark figure of issue 5 in one sitting.
# For each thread count (THREADS, default "1 2") it runs tgrad's bench
# programs that exist in BUILD_DIR/bench (bench_gemm, bench_conv, bench_lenet,
# bench_tiny; a missing one is skipped), then PyTorch's reference
# ../shared/bench/torch_bench.py twice (plain, and with glibc tuned to keep
# freed memory, as ../shared/bench/README.md says); bench/compare.py then
# prints the ratios for every acceptance figure (the faster PyTorch run counts).
#
#   sh bench/run.sh build                  (what `make bench` runs)
#   THREADS=2 REPS=5 SECS=0.2 sh bench/run.sh build
#   OUT=/tmp/b sh bench/run.sh build       (results folder; default BUILD_DIR/bench/results)
#   TORCH=0 sh bench/run.sh build          (tgrad only, no PyTorch run)
#   PROGS="bench_lenet bench_kernels" sh bench/run.sh build
# Environment: THREADS, REPS (7), SECS (0.3), OUT, TORCH (1), PROGS (the four
# above), SHARED_BENCH (default ../shared/bench next to the repository),
# PYTHON (/usr/bin/python3). Runs from the repository's root folder.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
out=${OUT:-$build/bench/results}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
cd "$root" || exit 1
shared=${SHARED_BENCH:-$root/../shared/bench}
python=${PYTHON:-/usr/bin/python3}
threads=${THREADS:-1 2}
reps=${REPS:-7}
secs=${SECS:-0.3}
torch=${TORCH:-1}
progs=${PROGS:-bench_gemm bench_conv bench_lenet bench_tiny}
tuned="MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824"

mkdir -p "$out" || exit 1
rm -f "$out"/tgrad-t*.txt "$out"/torch-t*.json "$out"/torch-t*.txt "$out"/meta.txt
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "host: $(uname -n) $(uname -m), $(nproc) cores"
    echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "cc: $(${CC:-cc} --version 2>/dev/null | head -1)"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/meta.txt"
cat "$out/meta.txt"
# Other work on the machine makes the figures (the 2-thread ones most) meaningless.
busy=$(awk -v n="$(nproc)" '{ print ($1 > 0.5 * n) ? 1 : 0 }' /proc/loadavg)
if [ "$busy" = 1 ]; then
    warn="WARNING: load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores before the run: other processes will distort the figures (the 2-thread ones most)"
    echo "$warn" >> "$out/meta.txt"
    echo "# $warn" >&2
fi

status=0
for t in $threads; do
    log="$out/tgrad-t$t.txt"
    : > "$log"
    for prog in $progs; do
        bin="$build/bench/$prog"
        if [ ! -x "$bin" ]; then
            echo "# $prog: not built, skipped" | tee -a "$log"
            continue
        fi
        echo "== $prog --threads $t"
        # The table rows as they come; every line (BENCH lines too) into the log.
        { TG_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t \
            "$bin" --threads "$t" --reps "$reps" --secs "$secs" 2>&1; echo $? > "$log.rc"; } |
            tee -a "$log" | grep -v '^BENCH '
        rc=$(cat "$log.rc")
        rm -f "$log.rc"
        if [ $rc -ne 0 ]; then
            echo "# $prog failed (exit $rc)" | tee -a "$log" >&2
            status=1
        fi
    done
    if [ "$torch" = 1 ]; then
        for env in plain tuned; do
            echo "== PyTorch torch_bench.py --threads $t ($env malloc)"
            if [ "$env" = tuned ]; then set -- env $tuned; else set -- env; fi
            { "$@" "$python" "$shared/torch_bench.py" --threads "$t" --reps "$reps" --secs "$secs" \
                --json "$out/torch-t$t-$env.json" 2>&1; echo $? > "$out/torch.rc"; } |
                tee "$out/torch-t$t-$env.txt"
            rc=$(cat "$out/torch.rc")
            rm -f "$out/torch.rc"
            if [ $rc -ne 0 ]; then
                echo "# torch_bench.py failed (exit $rc)" >&2
                status=1
            fi
        done
    fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/meta.txt"

echo
"$python" "$root/bench/compare.py" "$out" --shapes-gemm "$shared/shapes_gemm.txt" || status=1
echo "# results in $out (compare.py $out --markdown prints the table for docs/performance.md)"
exit $status
