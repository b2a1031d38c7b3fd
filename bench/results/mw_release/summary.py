#!/usr/bin/env python3
"""Medians [min..max] of run.sh's mw_release results: per setup and figure, the value and
its ratio to its baseline (the plain barrier, or a line at rma_read_bw)."""
import glob, json, statistics
from collections import defaultdict

d = defaultdict(list)
for f in sorted(glob.glob("*.json")):
    setup = f.split(".")[0]
    for line in open(f):
        r = json.loads(line)
        if r.get("workload") != "mw_release" or "value" not in r:
            continue
        d[(setup, r["metric"], "value")].append(r["value"])
        if "ratio" in r:
            d[(setup, r["metric"], "ratio")].append(r["ratio"])

def fmt(v):
    return f"{statistics.median(v):.4g} [{min(v):.4g}..{max(v):.4g}]"

for k in sorted(d):
    print(" ".join(k), fmt(d[k]))
