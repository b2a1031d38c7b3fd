#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The layer rules hold on this tree, and both the check and the build catch a break:
#   1. check_layers.sh passes on the sources as they are;
#   2. on a copy of the tree, each kind of violation injected in turn makes it fail,
#      naming the file and the header;
#   3. a source compiled with a layer's include tree (as the build compiles it) cannot
#      include another layer's header: the compiler says "No such file".
#
#   layers_test.sh <source root> <build dir> <C compiler>
set -u
src=${1:?usage: layers_test.sh <source root> <build dir> <cc>}
build=${2:?}
cc=${3:?}
here=$(cd "$(dirname "$0")" && pwd)
check=$here/check_layers.sh
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$check" "$src" || { echo "layers_test: FAILED: the tree itself breaks the rules"; exit 1; }

# file | line to add | what the check must say
cases=(
	'coherence/table.c|#include "runtime/rt.h"|coherence/table.c: the coherence layer includes runtime/rt.h'
	'transport/seg.c|#include "coherence/coherence.h"|transport/seg.c: the transport layer includes coherence/coherence.h'
	'common/vec.c|#include "transport/transport.h"|common/vec.c: the common layer includes transport/transport.h'
	'runtime/loop.c|#include "transport/ofi/ofi.h"|runtime/loop.c: includes transport/ofi/ofi.h, private to the transport layer'
	'coherence/layout.c|#include <dsm.h>|coherence/layout.c: the coherence layer includes the public API <dsm.h>'
	'tests/runtime/test_heap.c|#include "transport/internal.h"|tests/runtime/test_heap.c: includes transport/internal.h, private to the transport layer'
	'bench/floor.c|#include "runtime/rt.h"|bench/floor.c: the bench layer includes runtime/rt.h'
	'tests/runtime/test_alloc.c|#include <coherence/internal.h>|tests/runtime/test_alloc.c: includes coherence/internal.h, private to the coherence layer'
)
for c in "${cases[@]}"; do
	IFS='|' read -r file line says <<<"$c"
	rm -rf "$tmp/tree"
	mkdir -p "$tmp/tree"
	(cd "$src" && cp -r common coherence transport runtime tools bench include tests "$tmp/tree/")
	sed -i "1a $line" "$tmp/tree/$file"
	out=$("$check" "$tmp/tree" 2>&1)
	rc=$?
	if [ $rc -ne 1 ] || ! grep -qF "$says" <<<"$out"; then
		echo "layers_test: FAILED: $file with '$line' gave status $rc and:"
		echo "$out" | sed 's/^/  /'
		fail=1
	else
		echo "layers_test: caught: $says"
	fi
done

# The build's half: the coherence layer's include tree holds no runtime.
printf '#include "coherence/coherence.h"\nint f(void);\n' >"$tmp/ok.c"
printf '#include "runtime/rt.h"\n' >"$tmp/bad.c"
if ! "$cc" -fsyntax-only -I "$build/layers/coherence" "$tmp/ok.c" 2>"$tmp/ok.err"; then
	echo "layers_test: FAILED: coherence's own header does not compile with its tree:"
	sed 's/^/  /' "$tmp/ok.err"
	fail=1
fi
if "$cc" -fsyntax-only -I "$build/layers/coherence" "$tmp/bad.c" 2>"$tmp/bad.err" ||
	! grep -q 'runtime/rt.h: No such file' "$tmp/bad.err"; then
	echo "layers_test: FAILED: a coherence source could include runtime/rt.h:"
	sed 's/^/  /' "$tmp/bad.err"
	fail=1
else
	echo "layers_test: the build refuses it: $(grep -m1 'No such file' "$tmp/bad.err")"
fi
[ $fail -eq 0 ] && echo "layers_test: ${#cases[@]} violations caught by the check, 1 by the compiler"
exit $fail
