#!/usr/bin/env python3
"""Charts from ssmkit-bench's JSON and the HiPPO basis CSV (examples/hippo_basis.cpp).

    plot_benchmarks.py --json build/default/benchmark.json --basis build/default/hippo_basis.csv \
                       --out build/default/plots

Writes, with matplotlib (Debian: python3-matplotlib):
  - throughput_<family>.png: items/s against L for each kernel family measured at several L, one
    line per implementation and thread count, and the machine's limit for that kernel drawn as a
    dashed line (items/s at 100 % of the limit measured in the same run: items/s divided by the
    fraction of the limit reached, from the counters that ssm_bench::describe sets);
  - hippo_basis.png: the impulse responses e^{tA} B of the first states of LegS, LegT and FouT.
Exits with 77 (ctest's skip code here) when matplotlib is missing.
"""
import argparse
import collections
import csv
import json
import os
import re
import sys

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("plot_benchmarks.py: matplotlib is missing (Debian: apt-get install python3-matplotlib); no plots")
    sys.exit(77)

LIMIT_COUNTER = {"fma": "flop/s", "exp": "exp/s", "dram": "bytes/s", "l2": "bytes/s"}


def tags_of(label):
    return dict(item.split("=", 1) for item in label.split(";") if "=" in item)


def plot_throughput(rows, out_dir):
    """One chart per family of kernels measured at two or more sequence lengths L."""
    limits = {}
    for r in rows:
        t = tags_of(r.get("label", ""))
        if t.get("limit_of") in LIMIT_COUNTER:
            limits[(t["limit_of"], t.get("threads", "1"))] = r.get(LIMIT_COUNTER[t["limit_of"]], 0.0)
    families = collections.defaultdict(lambda: collections.defaultdict(list))
    ceilings = collections.defaultdict(list)
    for r in rows:
        t = tags_of(r.get("label", ""))
        if "op" not in t or "items_per_second" not in r:
            continue
        m = re.search(r"\bL=(\d+)", t["op"])
        if not m:
            continue
        family = re.sub(r"\s*\bL=\d+", "", t["op"]).strip()
        threads = t.get("threads", "1")
        L = int(m.group(1))
        families[family][(t.get("impl", "?"), threads)].append((L, r["items_per_second"]))
        limit = limits.get((t.get("limit", "none"), threads))
        if limit and r.get("limit_rate"):
            # items/s this kernel would reach at 100 % of its limit.
            ceilings[(family, threads)].append((L, r["items_per_second"] * limit / r["limit_rate"]))
    written = []
    for family, lines in sorted(families.items()):
        if max(len(points) for points in lines.values()) < 2:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for (impl, threads), points in sorted(lines.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"{impl}, {threads} thread(s)")
        for (fam, threads), points in sorted(ceilings.items()):
            if fam != family or len(points) < 2:
                continue
            best = {}
            for L, ceiling in points:  # one ceiling per L: the ssmkit row's
                best[L] = max(best.get(L, 0.0), ceiling)
            xs = sorted(best)
            ax.plot(xs, [best[x] for x in xs], linestyle="--" if threads == "1" else ":", color="grey",
                    label=f"machine limit, {threads} thread(s)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length L")
        ax.set_ylabel("items/s")
        ax.set_title(family, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        slug = re.sub(r"[^a-z0-9]+", "_", family.lower()).strip("_")
        path = os.path.join(out_dir, f"throughput_{slug}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def plot_basis(path, out_dir):
    curves = collections.defaultdict(lambda: ([], []))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            xs, ys = curves[(row["measure"], int(row["state"]))]
            xs.append(float(row["t"]))
            ys.append(float(row["value"]))
    measures = sorted({m for m, _ in curves}, key=["legs", "legt", "fout"].index)
    fig, axes = plt.subplots(1, len(measures), figsize=(10, 3.2), sharex=True)
    for ax, measure in zip(axes, measures):
        for (m, n), (xs, ys) in sorted(curves.items()):
            if m == measure:
                ax.plot(xs, ys, label=f"state {n}")
        ax.set_title(f"HiPPO-{measure} (N = 64): e^(tA) B", fontsize=10)
        ax.set_xlabel("t")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out = os.path.join(out_dir, "hippo_basis.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", required=True, help="ssmkit-bench --benchmark_out=FILE --benchmark_out_format=json")
    parser.add_argument("--basis", help="CSV written by hippo_basis --csv FILE")
    parser.add_argument("--out", required=True, help="directory for the PNG files")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.json) as f:
        rows = json.load(f)["benchmarks"]
    written = plot_throughput(rows, args.out)
    if args.basis:
        written.append(plot_basis(args.basis, args.out))
    for path in written:
        print("wrote", path)
    if not written:
        print("plot_benchmarks.py: nothing to plot")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
