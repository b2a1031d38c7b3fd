#!/usr/bin/env python3
"""Medians [min-max] of interleaved runs, one column per build or setting.

usage: ab_summary.py DIR LABELS CONFIGS
  DIR holds LABEL.CONFIG.ROUND.json files of dsm-bench lines (as bench/results/*/run.sh
  write them); LABELS and CONFIGS are comma-separated, in the order of the columns and of
  the tables, e.g.
    ab_summary.py bench/results/bulk before,off,auto shm4k,shm64k,tcp4k
    ab_summary.py bench/results/batch before,after shm4k,tcp4k,shm64k
"""
import glob, json, statistics as st, sys

APPS = ('matmul', 'jacobi', 'histogram', 'mutex_sum', 'radix', 'fft')

if len(sys.argv) != 4:
    sys.exit(__doc__)
d, labs, cfgs = sys.argv[1], sys.argv[2].split(','), sys.argv[3].split(',')
for cfg in cfgs:
    print('##', cfg, '|', ' | '.join(labs))
    data = {}
    for lab in labs:
        for f in glob.glob('%s/%s.%s.*.json' % (d, lab, cfg)):
            for l in open(f):
                r = json.loads(l)
                if 'value' not in r or r.get('stat') == 'p99' or r['workload'] == 'meta':
                    continue
                k = r['workload'] + '/' + r['metric']
                if r['workload'] == 'threads':
                    k += '/x%d' % r['threads']
                app = r['workload'] in APPS
                if app:
                    k += '/' + r.get('version', 'dsm' if r.get('baseline_name') else 'mpi')
                data.setdefault(k, {}).setdefault(lab, []).append(r['value'])
                if (r['workload'] == 'bandwidth' or app) and r.get('ratio'):
                    data.setdefault(k + '/ratio', {}).setdefault(lab, []).append(r['ratio'])
                if r.get('ratio_pthreads'):
                    data.setdefault(k + '/ratio_pthreads', {}).setdefault(lab, []).append(
                        r['ratio_pthreads'])
    for k in sorted(data):
        if k.startswith('floor/rma_read_bw'):
            continue
        cells = []
        for lab in labs:
            v = data[k].get(lab)
            cells.append('%.4g [%.4g-%.4g]' % (st.median(v), min(v), max(v)) if v else '-')
        print(k, '|', ' | '.join(cells))
