#!/bin/sh
# bench/fmnist_compare.sh BUILD_DIR: the main job against PyTorch, in one sitting.
# Trains the LeNet-style CNN on Fashion-MNIST for 3 epochs with tgrad
# (BUILD_DIR/examples/fashion_mnist) and with ../shared/bench/train_fmnist.py,
# same model, batch 64, Adam lr 1e-3 (constant), seed 0, and compares the
# training time (the epoch loops, evaluation excluded, as both programs report
# it), the whole process's wall time and peak resident memory (/usr/bin/time -v)
# and the final test accuracy. PyTorch runs plain and with glibc tuned to keep
# freed memory (../shared/bench/README.md); the faster run's time counts.
# Takes minutes (about 1 min per PyTorch run per thread count).
#
#   sh bench/fmnist_compare.sh build
#   THREADS=2 TORCH_ENVS=tuned sh bench/fmnist_compare.sh build
# Environment: THREADS ("1 2"), EPOCHS (3), TORCH_ENVS ("plain tuned", or none),
# DATA_DIR (build/data/fashion-mnist, filled by examples/fetch_fashion_mnist.sh),
# TORCH_DATA (/usr/share/datasets/fashion-mnist), OUT (BUILD_DIR/bench/fmnist),
# SHARED_BENCH, PYTHON; LIMIT=N trains tgrad on N images only (a dry run of the
# script: the comparison is then meaningless and marked so).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
out=${OUT:-$build/bench/fmnist}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
cd "$root" || exit 1
shared=${SHARED_BENCH:-$root/../shared/bench}
python=${PYTHON:-/usr/bin/python3}
threads=${THREADS:-1 2}
epochs=${EPOCHS:-3}
envs=${TORCH_ENVS:-plain tuned}
[ "$envs" = none ] && envs=
data=${DATA_DIR:-build/data/fashion-mnist}
tdata=${TORCH_DATA:-/usr/share/datasets/fashion-mnist}
limit=${LIMIT:-}
tuned="MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 MALLOC_TOP_PAD_=1073741824"
bin=$build/examples/fashion_mnist

[ -x "$bin" ] || { echo "fmnist_compare: $bin is missing (make examples BUILD=$build)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "fmnist_compare: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
sh "$root/examples/fetch_fashion_mnist.sh" "$data" || exit 1
if [ "$(cat "$data/.source" 2>/dev/null)" != /usr/share/datasets/fashion-mnist ]; then
    echo "fmnist_compare: $data holds the committed subset, not the full dataset" >&2
    exit 1
fi
mkdir -p "$out" || exit 1
rm -f "$out"/fmnist-*.txt "$out"/fmnist-*.json "$out"/meta.txt
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "host: $(uname -n) $(uname -m), $(nproc) cores"
    echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "fmnist: $epochs epochs, batch 64, adam lr 1e-3 constant, seed 0${limit:+, tgrad LIMITED to $limit images (dry run)}"
} > "$out/meta.txt"
if [ "$(awk -v n="$(nproc)" '{ print ($1 > 0.5 * n) ? 1 : 0 }' /proc/loadavg)" = 1 ]; then
    echo "WARNING: load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores before the run: other processes will distort the figures" >> "$out/meta.txt"
fi
cat "$out/meta.txt"

# time_field FILE NAME: a field of /usr/bin/time -v's report.
time_field() { sed -n "s/^[[:space:]]*$2: //p" "$1" | tail -1; }
# wall seconds from "h:mm:ss" or "m:ss.ss"
to_secs() { echo "$1" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }'; }

status=0
for t in $threads; do
    res="$out/fmnist-t$t.txt"
    : > "$res"
    echo "== tgrad fashion_mnist, $t threads"
    TG_NUM_THREADS=$t /usr/bin/time -v -o "$out/time-tgrad-t$t.txt" "$bin" --data "$data" \
        --epochs "$epochs" --batch 64 --optimizer adam --lr 1e-3 --schedule none --seed 0 \
        --threads "$t" --quiet --csv "$out/tgrad-t$t.csv" --checkpoint "$out/tgrad-t$t.safetensors" \
        ${limit:+--limit "$limit"} > "$out/tgrad-t$t.log" 2>&1
    rc=$?
    cat "$out/tgrad-t$t.log"
    if [ $rc -ne 0 ]; then
        echo "# tgrad fashion_mnist failed (exit $rc)" >&2
        status=1
    else
        train=$(awk '/^epoch [0-9]+: train/ { s += $4 } END { printf "%.2f", s }' "$out/tgrad-t$t.log")
        acc=$(awk '/^epoch [0-9]+: train/ { for (i = 1; i <= NF; i++) if ($i == "acc") a = $(i + 1) } END { sub("%", "", a); print a }' "$out/tgrad-t$t.log")
        rss=$(time_field "$out/time-tgrad-t$t.txt" "Maximum resident set size (kbytes)")
        wall=$(to_secs "$(time_field "$out/time-tgrad-t$t.txt" "Elapsed (wall clock) time (h:mm:ss or m:ss)")")
        {
            echo "BENCH name=fmnist_train_s impl=tgrad unit=s median=$train threads=$t"
            echo "BENCH name=fmnist_wall_s impl=tgrad unit=s median=$wall threads=$t"
            echo "BENCH name=fmnist_peak_rss impl=tgrad unit=MiB median=$(awk "BEGIN { printf \"%.1f\", $rss / 1024 }") threads=$t"
            echo "BENCH name=fmnist_test_acc impl=tgrad unit=% median=$acc threads=$t"
        } >> "$res"
    fi
    for env in $envs; do
        echo "== PyTorch train_fmnist.py, $t threads ($env malloc)"
        if [ "$env" = tuned ]; then set -- env $tuned; else set -- env; fi
        "$@" /usr/bin/time -v -o "$out/time-torch-t$t-$env.txt" "$python" "$shared/train_fmnist.py" \
            --threads "$t" --epochs "$epochs" --opt adam --seed 0 --batch 64 --data "$tdata" \
            --json "$out/fmnist-torch-t$t-$env.json" > "$out/torch-t$t-$env.log" 2>&1
        rc=$?
        cat "$out/torch-t$t-$env.log"
        if [ $rc -ne 0 ]; then
            echo "# train_fmnist.py failed (exit $rc)" >&2
            status=1
            continue
        fi
        rss=$(time_field "$out/time-torch-t$t-$env.txt" "Maximum resident set size (kbytes)")
        wall=$(to_secs "$(time_field "$out/time-torch-t$t-$env.txt" "Elapsed (wall clock) time (h:mm:ss or m:ss)")")
        "$python" - "$out/fmnist-torch-t$t-$env.json" "$t" "$env" "$rss" "$wall" >> "$res" <<'EOF'
import json, sys
path, t, env, rss, wall = sys.argv[1:]
d = json.load(open(path))
train = sum(e["train_s"] for e in d["epochs"])
acc = 100 * d["epochs"][-1]["test_acc"]
for name, unit, v in (("fmnist_train_s", "s", train), ("fmnist_wall_s", "s", float(wall)),
                      ("fmnist_peak_rss", "MiB", int(rss) / 1024), ("fmnist_test_acc", "%", acc)):
    print(f"BENCH name={name} impl=torch env={env} unit={unit} median={v:.6g} threads={t}")
EOF
    done
    cat "$res"
done

echo
"$python" "$root/bench/compare.py" "$out" --items 5 || status=1
echo "# results in $out"
exit $status
