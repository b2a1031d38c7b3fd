# SPDX-License-Identifier: MIT
# Shared by the Slurm tests (sourced after setting SRC, the source tree): a one-node Slurm
# cluster of their own (slurm/local-cluster.sh) in a temporary directory, always stopped;
# pass and failure counts; submitting a template and checking what it printed.
#
#   cluster_init <budget s> <step s>  skip (exit 77) where slurm-wlm or munge is missing or
#                                     not root; scrub the environment, make $tmp, start the
#                                     cluster (exit 1 if it fails) and export SLURM_CONF.
#                                     Each step is cut at <step s>, all of them together at
#                                     <budget s>, so that teardown (under 30 s) runs before
#                                     ctest's timeout could kill the script and orphan the
#                                     daemons.
#   cluster_finish                    stop it, check that nothing of it is left, print the
#                                     totals; its status is the test's.

T0=$(date +%s)
pass=0
fail=0
ok() {
	pass=$((pass + 1))
	echo "ok   $*"
}
bad() {
	fail=$((fail + 1))
	echo "FAIL $*"
}
show() { # a file's lines, indented, after a failure
	sed 's/^/     | /' "$1" 2>/dev/null | head -n 40
}

# The seconds the next step may take.
limit() {
	local left=$((DEADLINE - $(date +%s)))
	[ "$left" -gt "$STEP_LIMIT" ] && left=$STEP_LIMIT
	[ "$left" -lt 1 ] && left=1
	echo "$left"
}

cluster_init() {
	local b
	DEADLINE=$((T0 + $1))
	STEP_LIMIT=$2
	for b in munged slurmctld slurmd sbatch srun squeue sinfo scontrol scancel; do
		if ! command -v "$b" >/dev/null 2>&1; then
			echo "skipped: $b not found (tools/install-deps.sh installs slurm-wlm and munge)"
			exit 77
		fi
	done
	if [ "$(id -u)" != 0 ]; then
		echo "skipped: the test cluster's slurmd must run as root (CI runs make test as root)"
		exit 77
	fi

	# This test may itself run inside a Slurm job: nothing of that one may leak into ours.
	while read -r v; do
		unset "$v"
	done < <(env | sed -n 's/^\(\(SLURM\|SBATCH\|SRUN\|SALLOC\|PMI\)_[A-Za-z0-9_]*\)=.*/\1/p')

	# The cluster talks over 127.0.0.1; so do the jobs: libfabric's tcp provider, hydra's
	# proxies and UCX use the loopback interface rather than the machine's address.
	export FI_TCP_IFACE=lo HYDRA_IFACE=lo UCX_NET_DEVICES=lo

	tmp=$(mktemp -d /tmp/dsm-slurm-test.XXXXXX)
	cluster="$tmp/cluster"
	LC="$SRC/slurm/local-cluster.sh"
	trap '"$LC" stop "$cluster"; rm -rf "$tmp"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	if ! "$LC" start "$cluster" >"$tmp/start.log" 2>&1; then
		bad "local cluster starts"
		show "$tmp/start.log"
		for f in "$cluster"/log/*; do
			echo "     $f:"
			tail -n 15 "$f" | sed 's/^/     | /'
		done
		exit 1
	fi
	ok "local cluster starts: $(head -n 1 "$tmp/start.log")"
	export SLURM_CONF="$cluster/slurm.conf"
}

# submit <name> <expected status> <output file> <sbatch args and env assignments...>
# Runs `env <assignments> sbatch --wait -o <output file> <args>` and checks the status.
submit() {
	local name=$1 want=$2 out=$3
	shift 3
	timeout "$(limit)" env "$@" >"$out.sbatch" 2>&1
	rc=$?
	if [ $rc -eq "$want" ]; then
		return 0
	fi
	bad "$name: sbatch --wait exit $rc, expected $want"
	show "$out.sbatch"
	show "$out"
	return 1
}
# expect_lines <name> <output file> <pattern...>: every pattern is in the file
expect_lines() {
	local name=$1 out=$2 p
	shift 2
	for p in "$@"; do
		if ! grep -q -- "$p" "$out" 2>/dev/null; then
			bad "$name: no '$p' in its output"
			show "$out"
			return 1
		fi
	done
	ok "$name"
}
# one_line <name> <file> <pattern>: the file is exactly one line, matching the pattern
one_line() {
	local n
	n=$(wc -l <"$2")
	if [ "$n" -eq 1 ] && grep -q -- "$3" "$2"; then
		ok "$1: $(cat "$2")"
	else
		bad "$1: expected one line with '$3', got $n"
		show "$2"
	fi
}

outside_slurm() { # <name> <template>: run outside a job, it must exit 2 with one line saying so
	env -u SLURM_JOB_ID bash "$2" >"$tmp/out/outside-$1.out" 2>&1
	rc=$?
	if [ $rc -eq 2 ]; then
		one_line "$1 outside Slurm: exit 2" "$tmp/out/outside-$1.out" "^$1: not inside a Slurm job"
	else
		bad "$1 outside Slurm: exit $rc, expected 2"
		show "$tmp/out/outside-$1.out"
	fi
}

cluster_finish() {
	local pids left p
	pids=$(awk '{print $2}' "$cluster/pids")
	"$LC" stop "$cluster"
	left=""
	for p in $pids; do
		[ -d "/proc/$p" ] && left="$left $p"
	done
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		{ tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF" &&
			[ "$p" != $$ ] && left="$left $p"
	done
	if [ -z "$left" ]; then
		ok "cluster stopped: its daemons are gone, no process of its jobs is left"
	else
		bad "processes left after stop:$left"
		ps -o pid,ppid,comm,args -p "${left// /,}" 2>/dev/null | sed 's/^/     | /'
	fi

	echo "$pass passed, $fail failed, $(($(date +%s) - T0)) s"
	[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
}
