#!/usr/bin/env python3
"""Medians (min..max) of run.sh's results: each version's time, the dsm_mw version's ratio to
MPI and to default-memory DSM, and its counters."""
import glob, json, statistics, sys
from collections import defaultdict

d = defaultdict(list)
for track in ("async", "twin"):
    for f in sorted(glob.glob(f"{track}.*.json")):
        for line in open(f):
            r = json.loads(line)
            if r.get("workload") == "mw_rounds":
                for k in ("value", "baseline", "ratio", "faults_per_round"):
                    d[("mw_rounds", track, "round", k)].append(r[k])
                continue
            if r.get("metric") != "time":
                continue
            d[(r["workload"], track, r["version"], "s")].append(r["value"])
            if r["version"] == "dsm_mw":
                for k in ("ratio", "ratio_dsm", "mw_faults", "diffs", "diff_bytes",
                          "mw_invalidations"):
                    d[(r["workload"], track, r["version"], k)].append(r[k])

def fmt(v):
    m = statistics.median(v)
    return f"{m:.4g} [{min(v):.4g}..{max(v):.4g}] (n={len(v)})"

for k in sorted(d):
    print(" ".join(k), fmt(d[k]))
