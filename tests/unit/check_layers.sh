#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The layers' include rules (docs/ARCHITECTURE.md), checked on the sources:
#   - a layer's file includes only headers of the folders its dsm_layer() or dsm_tree()
#     call in CMake SEES (so a lower layer never includes an upper one's header), and the
#     public API (<dsm.h>, <dsm_mpi.h>) only where that call says PUBLIC_API;
#   - a private header (internal.h, or a header in a layer's subfolder such as
#     transport/ofi/) is included only from its own layer's folder, or from that layer's
#     tests (tests/<layer>/), or from the fuzzers (tests/fuzz/), which feed every layer's
#     decoders;
#   - include/ includes nothing of ours (dsm_mpi.h may include dsm.h).
# The build enforces the first rule too (each layer compiles against its own include
# tree); this check also covers the private headers and the tests.
#
#   check_layers.sh <source root>       exit 0 clean, 1 with one line per violation
set -u
root=${1:?usage: check_layers.sh <source root>}
cd "$root" || exit 2

# layer -> "folders it sees", and whether it may include the public API
declare -A sees public
while read -r layer rest; do
	sees[$layer]=$rest
done < <(grep -h -A3 -E '^\s*dsm_(layer|tree)\(' common/CMakeLists.txt coherence/CMakeLists.txt \
	transport/CMakeLists.txt runtime/CMakeLists.txt tools/CMakeLists.txt bench/CMakeLists.txt |
	tr '\n' ' ' | sed 's/dsm_/\ndsm_/g' | grep -E '^dsm_(layer|tree)\(' |
	awk '{
		if ($1 ~ /^dsm_tree/) { name = $2 } else { name = $1; sub(/^dsm_layer\(/, "", name) }
		out = name; pub = 0; on = 0
		for (i = 2; i <= NF; i++) {
			w = $i; last = w ~ /\)$/; gsub(/\)/, "", w)
			if (w == "SEES") { on = 1 }
			else if (w ~ /^[A-Z_]+$/) { on = 0; if (w == "PUBLIC_API") pub = 1 }
			else if (on) { out = out " " w }
			if (last) break
		}
		print out " PUBLIC_API=" pub
	}')
for l in "${!sees[@]}"; do
	case " ${sees[$l]} " in *" PUBLIC_API=1 "*) public[$l]=1 ;; *) public[$l]=0 ;; esac
done
[ "${#sees[@]}" -ge 6 ] || { echo "check_layers: read only ${#sees[@]} layers from CMake" >&2; exit 2; }

violations=0 files=0 includes=0
say() { echo "check_layers: $1"; violations=$((violations + 1)); }

# private: internal.h of a layer, or any header below a layer's subfolder
private_owner() {
	case $1 in
	*/internal.h) echo "${1%%/*}" ;;
	*/*/*.h) echo "${1%%/*}" ;;
	*) echo "" ;;
	esac
}

check_file() { # file, layer (or "" for a test), test's layer
	local f=$1 layer=$2 tlayer=$3 inc owner
	files=$((files + 1))
	while IFS= read -r inc; do
		includes=$((includes + 1))
		case $inc in
		'<dsm.h>' | '<dsm_mpi.h>' | '"dsm.h"' | '"dsm_mpi.h"')
			if [ -n "$layer" ] && [ "${public[$layer]}" != 1 ]; then
				say "$f: the $layer layer includes the public API $inc"
			fi
			continue ;;
		'<'*) # the system's, unless it names one of our folders
			case ${inc#<} in common/* | coherence/* | transport/* | runtime/* | tools/* | bench/*) ;;
			*) continue ;;
			esac ;;
		esac
		inc=${inc#[\"<]}
		inc=${inc%[\">]}
		case $inc in */*) ;; *) continue ;; esac # a file beside it (bench apps, tests)
		owner=$(private_owner "$inc")
		if [ -n "$owner" ]; then
			local from=${layer:-$tlayer}
			if [ "$owner" != "${f%%/*}" ] && [ "$owner" != "$tlayer" ] &&
				[ "$tlayer" != fuzz ]; then
				say "$f: includes $inc, private to the $owner layer"
				continue
			fi
			[ -n "$from" ] || continue
		fi
		[ -n "$layer" ] || continue
		case " ${sees[$layer]} " in
		*" ${inc%%/*} "*) ;;
		*) say "$f: the $layer layer includes $inc (it sees only:${sees[$layer]% PUBLIC_API=*})" ;;
		esac
	done < <(sed -n -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+([<"][^>"]+[>"]).*/\1/p' "$f")
}

for layer in common coherence transport runtime tools bench; do
	while IFS= read -r f; do
		check_file "$f" "$layer" ""
	done < <(find "$layer" -name '*.[ch]' | sort)
done
for f in include/*.h; do
	files=$((files + 1))
	if grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]+"' "$f" | grep -v -q '"dsm.h"'; then
		say "$f: the public API includes a header of ours"
	fi
done
while IFS= read -r f; do
	t=${f#tests/}
	check_file "$f" "" "${t%%/*}"
done < <(find tests -name '*.[ch]' | sort)

echo "check_layers: ${#sees[@]} layers, $files files, $includes includes, $violations violations"
[ "$violations" -eq 0 ]
