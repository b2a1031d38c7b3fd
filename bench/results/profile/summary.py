#!/usr/bin/env python3
"""run.sh's results: per figure, the median [min..max] with the profile off and on, and the
median of the runs' on/off ratios (pairs run one after the other)."""
import glob, json, statistics
from collections import defaultdict

d = defaultdict(dict)  # key -> {(mode, i): value}
for f in glob.glob("*.json"):
    mode, i = f.split(".")[:2]
    for line in open(f):
        r = json.loads(line)
        if r.get("workload") in (None, "meta") or "value" not in r:
            continue
        if r.get("stat") == "p99":
            continue
        key = (r["workload"], r["metric"], r.get("version", "-"), r["unit"])
        d[key][(mode, int(i))] = r["value"]

def fmt(v):
    return f"{statistics.median(v):.4g} [{min(v):.4g}..{max(v):.4g}]"

print("workload metric version unit | off | on | on/off (median of pairs)")
for k in sorted(d):
    v = d[k]
    off = [v[m] for m in v if m[0] == "off"]
    on = [v[m] for m in v if m[0] == "on"]
    pairs = [v[("on", i)] / v[("off", i)] for (m, i) in v
             if m == "off" and ("on", i) in v and v[("off", i)]]
    if off and on and pairs:
        print(" ".join(map(str, k)), "|", fmt(off), "|", fmt(on), "|",
              f"{statistics.median(pairs):.3f} [{min(pairs):.3f}..{max(pairs):.3f}] (n={len(pairs)})")
