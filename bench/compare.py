#!/usr/bin/python3
"""Issue 5's acceptance figures as one table of ratios, from one sitting's results.

Usage:  compare.py RESULTS_DIR... [--markdown] [--strict] [--items 1,2,..] [--shapes-gemm PATH]
   e.g. compare.py build/bench/results build/bench/fmnist   (make bench, then the fmnist script)

Reads from each RESULTS_DIR (bench/run.sh and bench/fmnist_compare.sh write them):
  *.txt          lines  BENCH name=N impl=I unit=U median=X [min=.. max=.. gflops=..] threads=T
                 (impl tgrad, openblas or torch; any other text is ignored); in files named
                 tgrad-tN.txt also torch_bench.py-style table rows
                   NAME UNIT MEDIAN MIN - MAX [GFLOP/s]
                 (impl tgrad, N threads) for figures that have no BENCH line
  torch-*.json   torch_bench.py --json output (impl torch); the environment is the
                 last part of the file name (torch-t1-plain.json, torch-t1-tuned.json)
When a figure was measured more than once for the same impl and thread count (the
plain and the tuned-malloc PyTorch runs), the faster one counts.

ratio = tgrad's speed / the reference's speed (>1: tgrad faster), computed from the
medians: tgrad/ref for img/s and GFLOP/s, ref/tgrad for times (ms, us, s).
--markdown prints the table as Markdown (for docs/performance.md); --items limits the
table to those acceptance items (1..5; "-" for the informative rows); --strict exits 1
when a shown acceptance figure misses its target or was not measured.
"""
import argparse, glob, json, os, re, sys

HIGHER = {"img/s", "GFLOP/s", "gflops", "GB/s", "%"}  # higher is better; times lower


def parse_bench_line(line):
    kv = dict(re.findall(r"(\w+)=(\S+)", line[len("BENCH "):]))
    if "name" not in kv or "median" not in kv:
        return None
    row = {"name": kv["name"], "impl": kv.get("impl", "tgrad"), "unit": kv.get("unit", ""),
           "threads": int(kv.get("threads", "0") or 0), "env": kv.get("env", "")}
    for k in ("median", "min", "max", "gflops"):
        if k in kv:
            try:
                row[k] = float(kv[k])
            except ValueError:
                pass
    return row


TABLE_ROW = re.compile(r"^(\w+)\s+(ms|us|s|img/s|GFLOP/s|GB/s)\s+([-+.\deE]+)\s+([-+.\deE]+)\s+-\s+"
                       r"([-+.\deE]+)(?:\s+([-+.\deE]+))?\s*$")


def parse_table_row(line, threads):
    m = TABLE_ROW.match(line)
    if not m:
        return None
    try:
        row = {"name": m.group(1), "impl": "tgrad", "unit": m.group(2), "threads": threads, "env": "",
               "median": float(m.group(3)), "min": float(m.group(4)), "max": float(m.group(5))}
        if m.group(6):
            row["gflops"] = float(m.group(6))
    except ValueError:
        return None
    return row


def better(a, b):
    """True if row a is faster than row b (same unit)."""
    if a["unit"] in HIGHER:
        return a["median"] > b["median"]
    return a["median"] < b["median"]


def load(folders):
    rows = {}

    def add(r):
        key = (r["name"], r["impl"], r["threads"])
        if key not in rows or better(r, rows[key]):
            rows[key] = r

    txt = [p for d in folders for p in sorted(glob.glob(os.path.join(d, "*.txt")))]
    js = [p for d in folders for p in sorted(glob.glob(os.path.join(d, "torch-*.json")))]
    table_rows = []
    for path in txt:
        m = re.match(r"tgrad-t(\d+)", os.path.basename(path))
        with open(path) as f:
            for line in f:
                if line.startswith("BENCH "):
                    r = parse_bench_line(line.strip())
                    if r:
                        add(r)
                elif m:
                    r = parse_table_row(line.strip(), int(m.group(1)))
                    if r:
                        table_rows.append(r)
    for r in table_rows:  # only where no BENCH line gave the figure
        if (r["name"], r["impl"], r["threads"]) not in rows:
            add(r)
    for path in js:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            print(f"# compare.py: skipping {path}: {e}", file=sys.stderr)
            continue
        env = os.path.basename(path)[:-5].split("-")[-1]
        for r in data.get("results", []):
            r = dict(r, impl="torch", env=env, threads=int(r.get("threads", data.get("threads", 0))))
            add(r)
    return rows


def speed_ratio(t, ref):
    if t["unit"] != ref["unit"]:
        # A GEMM bench may print ms while the other prints GFLOP/s: use GFLOP/s if both have it.
        if "gflops" in t and "gflops" in ref:
            return t["gflops"] / ref["gflops"]
        return None
    if t["median"] <= 0 or ref["median"] <= 0:
        return None
    return t["median"] / ref["median"] if t["unit"] in HIGHER else ref["median"] / t["median"]


def fmt(r):
    if r is None:
        return "-"
    v = r["median"]
    s = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    if r.get("env") and r["impl"] == "torch":
        s += f" ({r['env']})"
    return s


def gemm_shapes(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if p and not p[0].startswith("#"):
                    out.append(p[0])
    except OSError:
        pass
    return out


def find(rows, names, impl, t):
    for n in names:
        if (n, impl, t) in rows:
            return rows[(n, impl, t)]
    return None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--items", default="", help="comma-separated acceptance items to show (1..5, -)")
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--shapes-gemm", default=os.path.join(here, "..", "..", "shared", "bench", "shapes_gemm.txt"))
    args = ap.parse_args()
    rows = load(args.folders)
    items = set(s for s in args.items.split(",") if s)
    threads = sorted({k[2] for k in rows if k[2] > 0}) or [1, 2]

    # (acceptance item, label, tgrad names, reference impl, reference names, check)
    # check: ("ratio", min) on the speed ratio, ("below", x) / ("diff_ge", x) on tgrad's
    # median (absolute, or minus the reference's), ("info", None): no target.
    checks = [
        ("1", "LeNet training step, img/s", ["lenet_train_b64"], "torch", None, ("ratio", 2.0)),
        ("1", "LeNet inference, img/s", ["lenet_infer_b64"], "torch", None, ("ratio", 2.0)),
    ]
    for s in ("lenet_c1", "lenet_c2", "resnet_c"):
        checks.append(("2", f"conv2d fwd+bwd {s}, ms", [f"conv_fwdbwd_{s}"], "torch", None, ("ratio", 1.0)))
    for s in gemm_shapes(args.shapes_gemm):
        checks.append(("3", f"SGEMM {s} vs OpenBLAS", [f"sgemm_{s}", f"gemm_{s}", s], "openblas", None,
                       ("ratio", 0.9)))
    checks += [
        ("4", "tiny add fwd+bwd, us", ["tiny_add_fwdbwd"], "torch", None, ("below", 1.0)),
        ("5", "Fashion-MNIST training loops, s", ["fmnist_train_s"], "torch", None, ("ratio", 2.0)),
        ("5", "Fashion-MNIST whole process, wall s", ["fmnist_wall_s"], "torch", None, ("info", None)),
        ("5", "Fashion-MNIST peak RSS, MiB", ["fmnist_peak_rss"], "torch", None, ("below", 150.0)),
        ("5", "Fashion-MNIST test accuracy, %", ["fmnist_test_acc"], "torch", None, ("diff_ge", -1.0)),
        ("-", "MLP training step, img/s", ["mlp_train_b64"], "torch", None, ("info", None)),
        ("-", "MLP inference, img/s", ["mlp_infer_b64"], "torch", None, ("info", None)),
    ]
    for s in ("lenet_c1", "lenet_c2", "resnet_c"):
        checks.append(("-", f"conv2d fwd {s}, ms", [f"conv_fwd_{s}"], "torch", None, ("info", None)))
    checks += [
        ("-", "matmul fwd+bwd 64x784x128, ms", ["matmul_fwdbwd_64x784x128"], "torch", None, ("info", None)),
        ("-", "tiny add no-grad, us", ["tiny_add_nograd"], "torch", None, ("info", None)),
        ("-", "tiny add fwd (graph), us", ["tiny_add_fwd_graph"], "torch", None, ("info", None)),
        ("-", "per-op cost, 1000-add chain fwd+bwd, us", ["chain_add_fwdbwd_per_op"], None, None, ("info", None)),
    ]
    used = set()
    table = []
    failed = 0
    for item, label, names, ref_impl, ref_names, check in checks:
        if items and item not in items:
            continue
        for t in threads:
            tg = find(rows, names, "tgrad", t)
            ref = find(rows, ref_names or names, ref_impl, t) if ref_impl else None
            if tg:
                used.add((tg["name"], "tgrad", t))
            if tg is None and ref is None and check[0] == "info":
                continue
            ratio = speed_ratio(tg, ref) if tg and ref else None
            kind, target = check
            if kind == "info":
                status, tgt = "", ""
            elif tg is None or (kind in ("ratio", "diff_ge") and ref is None):
                status, tgt = "not measured", ""
            elif kind == "ratio":
                tgt = f">= {target:g}x"
                status = "ok" if ratio is not None and ratio >= target else "MISS"
            elif kind == "below":
                tgt = f"< {target:g} {tg['unit']}"
                status = "ok" if tg["median"] < target else "MISS"
            else:  # diff_ge
                tgt = f">= ref {target:+g}"
                status = "ok" if tg["median"] - ref["median"] >= target else "MISS"
            if status in ("MISS", "not measured") and item != "-":
                failed += 1
            table.append((item, label, str(t), fmt(tg), fmt(ref), f"{ratio:.2f}" if ratio else "-", tgt, status,
                          ref_impl or ""))
    # tgrad figures not covered above, with the same-named reference when there is one
    for (name, impl, t), r in sorted(rows.items()):
        if impl != "tgrad" or (name, impl, t) in used or (items and "-" not in items):
            continue
        ref = rows.get((name, "torch", t)) or rows.get((name, "openblas", t))
        ratio = speed_ratio(r, ref) if ref else None
        table.append(("-", f"{name}, {r['unit']}", str(t), fmt(r), fmt(ref), f"{ratio:.2f}" if ratio else "-",
                      "", "", ref["impl"] if ref else ""))

    head = ("item", "figure", "thr", "tgrad", "reference", "ratio", "target", "status", "ref")
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        w = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w[i]) for i, h in enumerate(head)))
        for row in table:
            print("  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip())
    print(f"\n# ratio = tgrad speed / reference speed (>1: tgrad faster); reference: PyTorch (faster of "
          f"plain and tuned malloc) or OpenBLAS for SGEMM; {failed} acceptance figure(s) missed or not measured")
    for d in args.folders:
        meta = os.path.join(d, "meta.txt")
        if os.path.exists(meta):
            with open(meta) as f:
                print("".join("# " + l for l in f), end="")
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
