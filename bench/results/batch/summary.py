#!/usr/bin/env python3
"""Medians [min-max] of the batching runs: summary.py [DIR] (default: this folder)."""
import glob, json, os, statistics as st, sys

d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
labs = ['before', 'after']
for cfg in ['shm4k', 'tcp4k', 'shm64k']:
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
                if r['workload'] in ('matmul', 'jacobi', 'histogram', 'mutex_sum'):
                    k += '/dsm' if r.get('baseline_name') else '/mpi'
                data.setdefault(k, {}).setdefault(lab, []).append(r['value'])
                if r['workload'] == 'bandwidth' and r.get('ratio'):
                    data.setdefault(k + '/ratio', {}).setdefault(lab, []).append(r['ratio'])
    for k in sorted(data):
        if k.startswith('floor/rma_read_bw'):
            continue
        cells = []
        for lab in labs:
            v = data[k].get(lab)
            cells.append('%.4g [%.4g-%.4g]' % (st.median(v), min(v), max(v)) if v else '-')
        print(k, '|', ' | '.join(cells))
