#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs libdsm into a temporary prefix, then builds and runs an MPI hello
# program against it twice: with mpicc and pkg-config, and with find_package(dsm).
# usage: test_install.sh <build dir> <source dir of this test> <mpiexec>
# DSM_TEST_CFLAGS: extra compiler flags (a sanitizer build's libdsm needs its runtime)
set -u
BUILD=$1
SRC=$2
MPIEXEC=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../lib.sh"

cmake --install "$BUILD" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1
check "cmake --install into a temporary prefix" test $? -eq 0
pc=$(find "$tmp/prefix" -name dsm.pc | head -n 1)
lib=$(find "$tmp/prefix" -name 'libdsm.so*' | head -n 1)
check "dsm.pc installed" test -n "$pc"
check "libdsm.so installed" test -n "$lib"
check "headers installed" test -f "$tmp/prefix/include/dsm.h" -a -f "$tmp/prefix/include/dsm_mpi.h"
check "dsm-info installed and runs" "$tmp/prefix/bin/dsm-info" --help
libdir=$(dirname "$lib")
# Only the public API leaves the library.
check "only dsm_* symbols exported" sh -c \
	"nm -D --defined-only '$lib' | awk '\$2 ~ /^[TDB]\$/ {print \$3}' | grep -v '^dsm_' | grep -v '^_' | wc -l | grep -qx 0"
check "dsm_strerror exported" sh -c "nm -D --defined-only '$lib' | grep -q ' T dsm_strerror\$'"

export PKG_CONFIG_PATH="$(dirname "$pc")"
cp "$SRC/hello.c" "$tmp/hello.c"
# shellcheck disable=SC2046
mpicc ${DSM_TEST_CFLAGS:-} "$tmp/hello.c" -o "$tmp/hello_pc" $(pkg-config --cflags --libs dsm)
check "mpicc hello.c \$(pkg-config --cflags --libs dsm)" test $? -eq 0
LD_LIBRARY_PATH="$libdir" "$MPIEXEC" -n 2 "$tmp/hello_pc" >"$tmp/out_pc" 2>&1
check "pkg-config build runs under mpiexec -n 2" test $? -eq 0
check "both ranks said hello (pkg-config)" sh -c \
	"grep -q 'hello from rank 0 of 2' '$tmp/out_pc' && grep -q 'hello from rank 1 of 2' '$tmp/out_pc'"
check "the library answered from the install (pkg-config)" grep -q "not initialized" "$tmp/out_pc"

mkdir -p "$tmp/consumer"
cp "$SRC/CMakeLists.txt.consumer" "$tmp/consumer/CMakeLists.txt"
cp "$SRC/hello.c" "$tmp/consumer/hello.c"
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
	-DCMAKE_C_FLAGS="${DSM_TEST_CFLAGS:-}" \
	>"$tmp/consumer.log" 2>&1 && cmake --build "$tmp/consumer/build" >>"$tmp/consumer.log" 2>&1
rc=$?
[ $rc -ne 0 ] && cat "$tmp/consumer.log"
check "find_package(dsm) consumer builds" test $rc -eq 0
LD_LIBRARY_PATH="$libdir" "$MPIEXEC" -n 2 "$tmp/consumer/build/hello" >"$tmp/out_cm" 2>&1
check "find_package build runs under mpiexec -n 2" test $? -eq 0
check "both ranks said hello (CMake)" sh -c \
	"grep -q 'hello from rank 0 of 2' '$tmp/out_cm' && grep -q 'hello from rank 1 of 2' '$tmp/out_cm'"
check "the CMake build links the installed library" sh -c \
	"LD_LIBRARY_PATH='$libdir' ldd '$tmp/consumer/build/hello' | grep -q '$libdir/libdsm.so'"

finish
