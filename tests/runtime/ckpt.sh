#!/bin/sh
# SPDX-License-Identifier: MIT
# Live checkpoint and restart (mr_ckpt.c says what each run checks):
#  - 2 ranks fill the heap, checkpoint, overwrite it from every thread while the snapshot
#    streams, checkpoint twice more (the last after a tenth of the heap was rewritten, which
#    alone its pause write-protects), keep writing and are killed; a restart on 2 ranks
#    sees exactly the last checkpoint's values, the root and the dsm_alloc memory;
#  - damaged snapshots are refused on every rank with their message: a flipped byte in a
#    line, in the allocation table, a missing file, a truncated file, a truncated manifest,
#    another line size, a missing directory, dsm_alloc memory on another number of ranks;
#  - 4 ranks -> 2 and 2 -> 4 (lines re-homed), with "%r" in the directory (ranks 2 and 3
#    of the restart have no directory of their own: rank 0's manifest names the snapshot);
#  - node-local disks, without "%r": each rank in a mount namespace of its own sees only
#    its "node's" disk; the restart reads each rank's own file, and refuses a lost one;
#  - the same take and restart under a cache of 16 lines (DSM_CACHE_SIZE=64K): copies are
#    evicted while the snapshot streams, each saved first; this take and the one of 4 ranks
#    track multiple-writer memory with twins (DSM_MW_TRACK=twin), the others as the kernel
#    allows (async here);
#  - dsm-info --checkpoint finds the snapshot intact, and the damaged line in a copy.
# usage: ckpt.sh <mpiexec> <mr_ckpt> <dsm-info>
set -u
. "$(dirname "$0")/../lib.sh"
MPIEXEC=$1
PROG=$2
INFO=$3
scratch_dir
export DSM_PROVIDER=${DSM_PROVIDER:-shm} DSM_HEAP_SIZE=${DSM_HEAP_SIZE:-64G}

run() { # run <name> <ranks> <args...>: output in $dir/<name>.out, status in $dir/<name>.rc
	out=$1
	np=$2
	shift 2
	timeout 120 "$MPIEXEC" -n "$np" ${WRAP:-} "$PROG" "$@" >"$dir/$out.out" 2>&1
	echo $? >"$dir/$out.rc"
}
rc() { cat "$dir/$1.rc"; }
passed() { grep -q '^[1-9][0-9]* passed, 0 failed' "$dir/$1.out"; }

# Taken, overwritten while a slow writer (3 MB/s) streams it, twice more, killed; restarted
# from the third snapshot.
DSM_CKPT_RATE=3M MR_CKPT_SLOW=1 run take 2 take "$dir/ck" kill
cat "$dir/take.out"
check_eval "both ranks were killed after the checkpoint" "[ \$(grep -c '^\[rank [01]\] killed' '$dir/take.out') -eq 2 ]"
check_eval "mpiexec exited non-zero: the ranks were killed (it exited $(rc take))" "[ $(rc take) -ne 0 ] && [ $(rc take) -ne 124 ]"
check_eval "the snapshot is complete (its manifest is there)" "[ -s '$dir/ck/MANIFEST' ]"
DSM_RESTART="$dir/ck" run restart 2 restart
cat "$dir/restart.out"
check_eval "the restart on 2 ranks saw the checkpoint's heap" "passed restart && [ $(rc restart) -eq 0 ]"

# Refused, each on every rank with its message.
refused() { # refused <snapshot> <ranks> <message> [env...]
	snap=$1
	np=$2
	msg=$3
	shift 3
	env DSM_RESTART="$dir/$snap" "$@" timeout 120 "$MPIEXEC" -n "$np" "$PROG" restart \
		>"$dir/$snap.out" 2>&1
	r=$?
	check_eval "$snap: refused ($r), saying '$msg'" \
		"[ $r -ne 0 ] && [ $r -ne 124 ] && grep -q '$msg' '$dir/$snap.out' && ! grep -q 'passed' '$dir/$snap.out'"
	[ $r -ne 0 ] && grep -q "$msg" "$dir/$snap.out" || cat "$dir/$snap.out"
}
copy() { rm -rf "$dir/$1" && cp -r "$dir/ck" "$dir/$1"; }
flip() { # flip <file> <offset>: one byte inverted
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((255 - b)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
size() { stat -c %s "$1"; }

"$INFO" --checkpoint "$dir/ck" >"$dir/info.out" 2>&1
check_eval "dsm-info --checkpoint: the snapshot of 2 ranks is intact" \
	"[ $? -eq 0 ] && grep -q 'of 2 ranks' '$dir/info.out' && grep -q 'complete and intact' '$dir/info.out'"
copy bad_line
# A byte of rank 1's first line (the header's data_off, a u64 at offset 112).
flip "$dir/bad_line/rank-1.dsmckpt" $(($(od -An -tu8 -j 112 -N8 "$dir/bad_line/rank-1.dsmckpt" | tr -d ' ') + 100))
"$INFO" --checkpoint "$dir/bad_line" >"$dir/info_bad.out" 2>&1
check_eval "dsm-info --checkpoint: the flipped byte's line fails its checksum" \
	"[ $? -eq 1 ] && grep -q 'rank 1 line .*fails its checksum' '$dir/info_bad.out'"
refused bad_line 2 "fails its checksum"
copy bad_table
flip "$dir/bad_table/rank-0.dsmckpt" 4100
refused bad_table 2 "fails its checksum (damaged)"
copy no_file
rm "$dir/no_file/rank-1.dsmckpt"
refused no_file 2 "rank-1.dsmckpt: No such file"
copy short_file
truncate -s $(($(size "$dir/short_file/rank-0.dsmckpt") - 4096)) "$dir/short_file/rank-0.dsmckpt"
refused short_file 2 "truncated or damaged"
copy short_manifest
truncate -s 40 "$dir/short_manifest/MANIFEST"
refused short_manifest 2 "truncated or malformed"
copy other_line
refused other_line 2 "the snapshot has [0-9]*-byte lines and this run 8192" DSM_LINE_SIZE=8192
refused nowhere 2 "no snapshot directory"
copy other_ranks
refused other_ranks 3 "restarts on 2 ranks only"

# Re-homed: 4 ranks to 2 and 2 to 4, one directory per rank ("%r").
DSM_MW_TRACK=twin run take4 4 take "$dir/four/r%r" nolocal
check_eval "4 ranks took a snapshot in 4 directories" "passed take4 && [ -s '$dir/four/r3/MANIFEST' ] && [ -s '$dir/four/r3/rank-3.dsmckpt' ]"
DSM_RESTART="$dir/four/r%r" run four_on_two 2 restart
check_eval "a snapshot of 4 ranks restarted on 2" "passed four_on_two && grep -q 'snapshot of 4 ranks on 2' '$dir/four_on_two.out'"
passed four_on_two || cat "$dir/four_on_two.out"
# The same in rounds of one line per rank pair (DSM_RESTART_ROUND=4K): hundreds of rounds.
DSM_LOG=info DSM_RESTART_ROUND=4K DSM_RESTART="$dir/four/r%r" run four_on_two_rounds 2 restart
check_eval "... and again, one line to each rank a round: $(grep -o 'in [0-9]* rounds' "$dir/four_on_two_rounds.out" | head -1)" \
	"passed four_on_two_rounds && [ \$(grep -o 'in [0-9]* rounds' '$dir/four_on_two_rounds.out' | awk '{print \$2}' | sort -n | tail -1) -gt 100 ]"
passed four_on_two_rounds || cat "$dir/four_on_two_rounds.out"
run take2 2 take "$dir/two/r%r" nolocal
DSM_RESTART="$dir/two/r%r" run two_on_four 4 restart
check_eval "a snapshot of 2 ranks restarted on 4" "passed two_on_four && grep -q 'snapshot of 2 ranks on 4' '$dir/two_on_four.out'"
passed two_on_four || cat "$dir/two_on_four.out"
# Rank 1's directory holding another snapshot's manifest: refused on every rank.
rm -rf "$dir/mixed" && cp -r "$dir/four" "$dir/mixed" && cp "$dir/two/r1/MANIFEST" "$dir/mixed/r1/MANIFEST"
refused "mixed/r%r" 4 "holds snapshot [0-9a-f]* (#1) and rank 0"

# Node-local disks: each rank in a mount namespace of its own, where $dir/local is its
# "node's" disk ($dir/node<rank>), which no other rank sees. The manifest is on rank 0's only;
# each rank reads its own file, and the lines go to their homes.
if unshare -m --propagation private true 2>/dev/null; then
	cat >"$dir/node.sh" <<EOF
#!/bin/sh
n=\${PMI_RANK:?}
mkdir -p "$dir/node\$n" "$dir/local"
exec unshare -m --propagation private sh -c 'mount --bind "\$1" "\$2" && shift 2 && exec "\$@"' \\
	sh "$dir/node\$n" "$dir/local" "\$@"
EOF
	WRAP="sh $dir/node.sh" run take_node 2 take "$dir/local/ck"
	check_eval "a snapshot to node-local disks: the manifest on rank 0's, each file on its own" \
		"passed take_node && [ -s '$dir/node0/ck/MANIFEST' ] && [ -s '$dir/node0/ck/rank-0.dsmckpt' ] && [ -s '$dir/node1/ck/rank-1.dsmckpt' ] && [ ! -e '$dir/node1/ck/MANIFEST' ] && [ ! -e '$dir/node1/ck/rank-0.dsmckpt' ] && [ ! -e '$dir/local/ck' ]"
	passed take_node || cat "$dir/take_node.out"
	DSM_RESTART="$dir/local/ck" WRAP="sh $dir/node.sh" run restart_node 2 restart
	check_eval "... restarted, each rank reading its own disk only" "passed restart_node"
	passed restart_node || cat "$dir/restart_node.out"
	mv "$dir/node1/ck/rank-1.dsmckpt" "$dir/node1/rank-1.away"
	DSM_RESTART="$dir/local/ck" WRAP="sh $dir/node.sh" run restart_node_lost 2 restart
	check_eval "... refused when rank 1's disk lost its file" \
		"[ $(rc restart_node_lost) -ne 0 ] && [ $(rc restart_node_lost) -ne 124 ] && grep -q 'rank-1.dsmckpt: No such file' '$dir/restart_node_lost.out' && ! grep -q passed '$dir/restart_node_lost.out'"
else
	echo "SKIP node-local disks: this machine cannot make a mount namespace (unshare -m)"
fi

# Under cache pressure: evictions zap copies the snapshot has not saved yet.
DSM_MW_TRACK=twin DSM_CACHE_SIZE=64K DSM_CKPT_RATE=1M MR_CKPT_SLOW=1 run take_cache 2 take "$dir/cache"
check_eval "a snapshot taken under a 16-line cache" "passed take_cache && [ -s '$dir/cache/MANIFEST' ]"
passed take_cache || cat "$dir/take_cache.out"
DSM_CACHE_SIZE=64K DSM_RESTART="$dir/cache" run restart_cache 2 restart
check_eval "... restarted under it, exactly" "passed restart_cache"
passed restart_cache || cat "$dir/restart_cache.out"
finish
