#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Installs the Debian packages libdsm needs to build and test, if any are
# missing. As root (or with password-less sudo) it runs apt-get itself;
# otherwise it prints the one apt-get line to run and fails.
set -eu

# slurm-wlm (slurmctld, slurmd, slurm-client) and munge: tests/slurm runs the sbatch
# templates on a one-node Slurm cluster of its own. gnuplot-nox: bench/plot.sh draws the
# benchmark charts (PNG, no X). clang and libclang-rt-14-dev (libFuzzer): tests/fuzz.
PKGS="cmake make gcc pkg-config libfabric-dev libfabric-bin rdma-core libibverbs-dev \
mpich libmpich-dev libhwloc-dev hwloc libcmocka-dev jq slurm-wlm munge gnuplot-nox \
clang libclang-rt-14-dev"

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-deps: not a Debian system; make sure these (or your distribution's" >&2
	echo "equivalents) are installed: $PKGS" >&2
	exit 0
fi

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	SUDO="sudo -n"
else
	echo "install-deps: libdsm needs Debian packages that are missing:$missing" >&2
	echo "install-deps: run: sudo apt-get install -y$missing" >&2
	exit 1
fi

echo "install-deps: installing$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
