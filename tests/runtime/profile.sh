#!/bin/bash
# SPDX-License-Identifier: MIT
# The line profile, end to end: mr_profile runs under DSM_PROFILE on NP ranks, then dsm-prof
# reads the ranks' files and must name each allocation's call site and sharing pattern
# (false, true, private), the ranks its lines moved between, and hint at multiple-writer
# memory for the false sharing only; the heat map must be a well-formed PNG. Then what
# must be refused is: a truncated file, a file of another job, a rank twice, a
# DSM_PROFILE in a directory that does not exist (dsm_init fails on every rank, with the
# reason, and leaves no file). Without DSM_PROFILE no file is written.
# usage: profile.sh <mpiexec> <mr_profile> <dsm-prof> <np>
set -u
. "$(dirname "$0")/../lib.sh"
MPIEXEC=$1
PROG=$2
PROF=$3
NP=${4:-2}
scratch_dir

out=$(DSM_PROFILE=$dir/run timeout 120 "$MPIEXEC" -n "$NP" "$PROG" 2>&1)
rc=$?
echo "$out" | tail -n 3
check "the profiled program passes its own checks" test $rc -eq 0
n=$(ls "$dir"/run.*.dsmprof 2>/dev/null | wc -l)
check "one file per rank ($n of $NP)" test "$n" -eq "$NP"

rep=$("$PROF" --top 20 "$dir/run" 2>&1)
rc=$?
echo "$rep" | head -n 40
check "dsm-prof reads them" test $rc -eq 0
check_eval "it counts every rank" 'grep -q "^dsm-prof: $NP of $NP ranks" <<<"$rep"'

# The report's paragraph of the allocation made in function $1 of mr_profile.c.
section() {
	awk -v f="from $1 (mr_profile.c" '
		/^ *[0-9]+\. / { on = index($0, f) > 0 }
		/^lines, hottest first/ { on = 0 }
		on' <<<"$rep"
}
fs=$(section alloc_false)
ts=$(section alloc_true)
pv=$(section alloc_private)
mw=$(section alloc_mw)
one=$(section alloc_one)
check_eval "alloc_false is named by its call site" '[ -n "$fs" ]'
check_eval "alloc_false: false sharing" 'grep -q "pattern: false sharing" <<<"$fs"'
check_eval "alloc_false: the hint at multiple-writer memory" 'grep -q "dsm_all_alloc_mw" <<<"$fs"'
check_eval "alloc_false: its line moved from rank 0 to 1 and back" \
	'grep -Eq "0->1 [0-9]+" <<<"$fs" && grep -Eq "1->0 [0-9]+" <<<"$fs"'
check_eval "alloc_true: true sharing, no multiple-writer hint" \
	'grep -q "pattern: true sharing" <<<"$ts" && ! grep -q dsm_all_alloc_mw <<<"$ts"'
check_eval "alloc_private: private, nothing moved" \
	'grep -q "pattern: private" <<<"$pv" && grep -q "moves between ranks (from->to lines): none" <<<"$pv"'
check_eval "alloc_mw: multiple-writer memory, false sharing, no hint to use it" \
	'grep -q "^ *[0-9]*\. all_alloc_mw" <<<"$mw" && grep -q "pattern: false sharing" <<<"$mw" && ! grep -q "hint:" <<<"$mw"'
check_eval "alloc_one: one writer, no multiple-writer hint" \
	'grep -q "pattern: one writer" <<<"$one" && ! grep -q "hint:" <<<"$one"'
faults=$(sed -n 's/^    1 lines touched, [0-9]* events: \([0-9]*\) faults.*/\1/p' <<<"$fs")
check "alloc_false's line faulted at least once a round (${faults:-none})" \
	test "${faults:-0}" -ge 100

png=$dir/run.png
check "the heat map is written" test -s "$png"
check "the heat map is a well-formed PNG (chunks, CRCs, image data)" python3 - "$png" <<'EOF'
import struct, sys, zlib
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n', 'signature'
at, idat, w = 8, b'', 0
while at < len(d):
    n, t = struct.unpack('>I4s', d[at:at + 8])
    body = d[at + 8:at + 8 + n]
    assert struct.unpack('>I', d[at + 8 + n:at + 12 + n])[0] == zlib.crc32(t + body), t
    if t == b'IHDR':
        w, h, depth, kind = struct.unpack('>IIBB', body[:10])
        assert depth == 8 and kind == 2, 'RGB'
    idat += body if t == b'IDAT' else b''
    at += 12 + n
raw = zlib.decompress(idat)
assert w > 0 and len(raw) == h * (1 + 3 * w), 'size'
assert any(raw[y * (1 + 3 * w) + 1 + x] > 100 for y in range(h) for x in range(3 * w)), 'heat'
EOF

# What must be refused.
f0=$dir/run.0.dsmprof
head -n -1 "$f0" >"$dir/cut.0.dsmprof"
msg=$("$PROF" --no-png "$dir/cut.0.dsmprof" 2>&1)
check "a truncated file is refused ($msg)" sh -c '[ $1 -eq 1 ] && echo "$2" | grep -q truncated' sh $? "$msg"
sed 's/^rank 1 nranks [0-9]*/rank 1 nranks 9/' "$dir/run.1.dsmprof" >"$dir/other.1.dsmprof"
msg=$("$PROF" --no-png "$f0" "$dir/other.1.dsmprof" 2>&1)
check "a file of another job is refused ($msg)" sh -c '[ $1 -eq 1 ] && echo "$2" | grep -q "another job"' sh $? "$msg"
{ head -n 2 "$f0"; echo "alloc 0 0x1000 18446744073708503040 all_alloc 0 0x0"; echo "end 0"; } \
	>"$dir/bad.0.dsmprof"
msg=$("$PROF" --no-png "$dir/bad.0.dsmprof" 2>&1)
check "an allocation outside the heap is refused ($msg)" sh -c '[ $1 -eq 1 ] && echo "$2" | grep -q malformed' sh $? "$msg"
{ head -n 2 "$f0"; echo "line 99999999999999 1 0 0 0 0 0 0 0 0r -"; echo "end 1"; } >"$dir/bad.0.dsmprof"
msg=$("$PROF" --no-png "$dir/bad.0.dsmprof" 2>&1)
check "a line outside the heap is refused ($msg)" sh -c '[ $1 -eq 1 ] && echo "$2" | grep -q malformed' sh $? "$msg"
msg=$("$PROF" --no-png "$f0" "$f0" 2>&1)
check "a rank twice is refused ($msg)" sh -c '[ $1 -eq 1 ] && echo "$2" | grep -q twice' sh $? "$msg"

out=$(DSM_PROFILE=$dir/none/run timeout 120 "$MPIEXEC" -n "$NP" "$PROG" 2>&1)
rc=$?
check "DSM_PROFILE in a missing directory fails the run" test $rc -ne 0 -a $rc -ne 124
check_eval "with the reason" 'grep -q "DSM_PROFILE: cannot write $dir/none/run" <<<"$out"'

mkdir "$dir/off"
touch "$dir/off/mark"
out=$(cd "$dir/off" && timeout 120 "$MPIEXEC" -n "$NP" "$PROG" 2>&1)
check "without DSM_PROFILE the program runs" test $? -eq 0
check "and writes no profile" test -z "$(find "$dir" -name '*.dsmprof' -newer "$dir/off/mark")"
finish
