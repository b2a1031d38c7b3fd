# SPDX-License-Identifier: MIT
# The figures of dsm-bench runs as one Markdown table: jq -s -r -f bench/summary.jq *.jsonl
# rows: a metric; columns: provider x line size; medians (p99 in brackets), ratio to the baseline
def key: "\(.provider | sub(";ofi_rxm"; "")) \(.line_size / 1024) KiB";
def fmt: if . >= 100 then round | tostring elif . >= 10 then (. * 10 | round / 10 | tostring) elif . >= 0.1 then (. * 100 | round / 100 | tostring) else (. * 1000000 | round / 1000000 | tostring) end;
# the row a result belongs to (applications report a dsm and an mpi version of one metric)
def rowname: "\(.workload) \(.metric)\(if .workload == "threads" then " x\(.threads)" else "" end)\(if .version then " \(.version)" else "" end)\(if .prefetch then " prefetch \(.prefetch)" else "" end) (\(.unit))";
map(select(.metric and (.stat // "") != "p99" and .metric != "rma_read_bw"))
| (map(key) | unique) as $cols
| (map(rowname) | unique) as $rows0
| ["latency", "random", "floor", "bandwidth", "threads", "pingpong", "scale"] as $order
| ($rows0 | sort_by(split(" ")[0] as $w | ($order | index($w)) // 9)) as $rows
| "| | " + ($cols | join(" | ")) + " |",
  "| --- |" + ($cols | map(" ---: |") | join("")),
  ($rows[] as $r | "| \($r) | " + ([$cols[] as $c | (first(.[] | select(key == $c and rowname == $r)) // null)
     | if . == null then "" else (.value | fmt) + (if .p99_us then " (p99 \(.p99_us | fmt))" else "" end) + (if .ratio then " [x\(.ratio | fmt)]" else "" end) end] | join(" | ")) + " |")
