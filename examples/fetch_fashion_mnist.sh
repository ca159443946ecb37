#!/bin/sh
# Puts Fashion-MNIST, raw IDX as gunzip leaves it, into the folder given ($1).
# Uses Debian's dataset-fashion-mnist (installed with apt-get when running as
# root and it is missing); falls back to the subset committed in
# examples/data/fashion-mnist-subset when the package cannot be had.
set -u
out=${1:-build/data/fashion-mnist}
pkg=/usr/share/datasets/fashion-mnist
sub=$(dirname "$0")/data/fashion-mnist-subset
files="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

have_pkg() { for f in $files; do [ -f "$pkg/$f.gz" ] || return 1; done; }

if ! have_pkg && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing dataset-fashion-mnist with apt-get" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } >&2 ||
        echo "could not install dataset-fashion-mnist" >&2
fi
if have_pkg; then src=$pkg; what="the full dataset ($pkg)"; else src=$sub; what="the committed subset (5,000 train / 1,000 test images)"; fi

mkdir -p "$out" || exit 1
stamp="$out/.source"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$src" ]; then
    echo "Fashion-MNIST: $what, already in $out" >&2
    exit 0
fi
for f in $files; do
    gzip -dc "$src/$f.gz" > "$out/$f.tmp" && mv "$out/$f.tmp" "$out/$f" || { echo "failed to decompress $src/$f.gz" >&2; exit 1; }
done
echo "$src" > "$stamp"
echo "Fashion-MNIST: $what, decompressed into $out" >&2
