#!/usr/bin/env python3
"""Medians [min..max] of run.sh's results, per setup and figure: the bounded cache's value,
the unlimited cache's (the baseline), their ratio, and the fields beside them."""
import glob, json, statistics
from collections import defaultdict

d = defaultdict(list)
for f in sorted(glob.glob("*.json")):
    setup = f.split(".")[0]
    for line in open(f):
        r = json.loads(line)
        if r.get("workload") != "cache":
            continue
        for k in ("value", "baseline", "ratio", "evictions", "misses_per_read",
                  "misses_per_read_unlimited", "rss_growth_unlimited_MiB"):
            if k in r:
                d[(setup, r["metric"], k)].append(r[k])

def fmt(v):
    return f"{statistics.median(v):.4g} [{min(v):.4g}..{max(v):.4g}] (n={len(v)})"

for k in sorted(d):
    print(" ".join(k), fmt(d[k]))
