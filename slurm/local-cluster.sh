#!/bin/bash
# SPDX-License-Identifier: MIT
#
# A one-node Slurm cluster on this machine, for testing the templates.
#
#   local-cluster.sh start <dir>             bring it up; state, logs and slurm.conf go in <dir>
#   local-cluster.sh stop <dir>              cancel its jobs, stop its daemons (by pid)
#   local-cluster.sh run <dir> -- <cmd...>   start, run <cmd> with SLURM_CONF set, always stop;
#                                            exits with <cmd>'s status
#
# Client commands need SLURM_CONF=<dir>/slurm.conf (`run` sets it).
#
# Everything lives in <dir>: a fresh munge key and munged socket (so a system munge, if
# any, is neither used nor disturbed), slurm.conf, the controller's state, slurmd's spool,
# the logs, and <dir>/pids, which lists what `stop` must end. Daemons listen on free ports
# and reach each other on 127.0.0.1 only. Needs root (slurmd starts jobs as their user).
#
# This is a container-friendly configuration: no cgroups (proctrack/linuxproc, task/none),
# no accounting, no resource limits propagated, and cores can be shared between jobs.
set -u

LC_NAME=local-cluster
die() {
	echo "$LC_NAME: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 start <dir> | stop <dir> | run <dir> -- <command> [args...]" >&2
	exit 2
}

# The TCP ports something listens on, from /proc/net/tcp{,6} (state 0A = LISTEN).
used_ports() {
	local hex
	while read -r hex; do
		echo $((16#$hex))
	done < <(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		awk '$4 == "0A" { n = split($2, a, ":"); print a[n] }')
}

# Below the kernel's ephemeral range, so no outgoing connection holds it meanwhile.
free_port() {
	local used p tries=0 top=32768
	read -r top _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
	[ "$top" -gt 21000 ] 2>/dev/null || top=32768
	used=" $(used_ports | tr '\n' ' ') $* "
	while [ $tries -lt 200 ]; do
		p=$((20000 + RANDOM % (top - 20000)))
		case "$used" in
		*" $p "*) ;;
		*)
			echo "$p"
			return 0
			;;
		esac
		tries=$((tries + 1))
	done
	return 1
}

# Is pid $1 alive and running a program whose name contains $2? (pids can be reused)
pid_is() {
	local comm
	[ -r "/proc/$1/comm" ] || return 1
	comm=$(cat "/proc/$1/comm" 2>/dev/null) || return 1
	case "$comm" in *"$2"*) return 0 ;; esac
	return 1
}

# End pid $1 (named $2): SIGTERM, up to $3 seconds, then SIGKILL.
end_pid() {
	local pid=$1 name=$2 wait_s=${3:-10} i=0
	pid_is "$pid" "$name" || return 0
	kill -TERM "$pid" 2>/dev/null
	while pid_is "$pid" "$name" && [ $i -lt $((wait_s * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if pid_is "$pid" "$name"; then
		echo "$LC_NAME: $name (pid $pid) ignored SIGTERM for ${wait_s}s; killing it" >&2
		kill -KILL "$pid" 2>/dev/null
		sleep 0.2
	fi
}

# The pids of the job steps of this cluster: slurmstepd binds a socket named
# <spool>/<node>_<job>.<step>; /proc/net/unix maps its path to an inode, and the
# process holding that inode is the step daemon.
stepd_pids() {
	local spool=$1 inodes pid fd
	inodes=$(awk -v s="$spool/" 'index($8, s) == 1 { printf " %s ", $7 }' /proc/net/unix 2>/dev/null)
	[ -n "$inodes" ] || return 0
	for pid in /proc/[0-9]*; do
		pid=${pid#/proc/}
		pid_is "$pid" slurmstepd || continue
		for fd in /proc/"$pid"/fd/*; do
			case "$inodes" in
			*" $(readlink "$fd" 2>/dev/null | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p') "*)
				echo "$pid"
				break
				;;
			esac
		done
	done
}

# The processes of this cluster's jobs that outlived their steps: they carry
# SLURM_JOB_ID and this cluster's SLURM_CONF in their environment.
job_pids() {
	local conf=$1 pid env
	for pid in /proc/[0-9]*; do
		pid=${pid#/proc/}
		[ "$pid" = $$ ] && continue
		env=$( { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null) || continue
		case "$env" in *"SLURM_CONF=$conf"*) ;; *) continue ;; esac
		echo "$env" | grep -q '^SLURM_JOB_ID=' && echo "$pid"
	done
}

cmd_stop() {
	local dir=$1 conf jobs i name pid enders stepds
	[ -f "$dir/pids" ] || return 0
	conf="$dir/slurm.conf"
	export SLURM_CONF="$conf"
	# Jobs first, while the controller can still cancel them and slurmstepd can end
	# their tasks.
	if [ -f "$conf" ] && pid_is "$(awk '$1 == "slurmctld" { print $2 }' "$dir/pids")" slurmctld; then
		jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | tr '\n' ' ')
		if [ -n "${jobs// /}" ]; then
			# shellcheck disable=SC2086
			timeout 10 scancel $jobs 2>/dev/null
			i=0
			while [ $i -lt 100 ] && [ -n "$(timeout 5 squeue -h -o %A 2>/dev/null)" ]; do
				sleep 0.1
				i=$((i + 1))
			done
		fi
	fi
	# What cancelling did not end (or could not: controller gone) is killed: the steps'
	# processes first, then their step daemons, which ignore SIGTERM.
	stepds=$(stepd_pids "$dir/spool")
	for pid in $(job_pids "$conf"); do
		echo "$LC_NAME: killing leftover job process $pid ($(cat /proc/"$pid"/comm 2>/dev/null))" >&2
		kill -KILL "$pid" 2>/dev/null
	done
	for pid in $stepds; do
		pid_is "$pid" slurmstepd || continue
		echo "$LC_NAME: killing leftover slurmstepd $pid" >&2
		kill -KILL "$pid" 2>/dev/null
	done
	# The Slurm daemons together, then munged, which they use until they exit.
	enders=""
	while read -r name pid; do
		end_pid "$pid" "$name" 10 &
		enders="$enders $!"
	done < <(grep -v '^munged ' "$dir/pids")
	# shellcheck disable=SC2086
	[ -n "$enders" ] && wait $enders
	grep '^munged ' "$dir/pids" | while read -r name pid; do
		end_pid "$pid" "$name" 10
	done
	rm -f "$dir/pids"
}

write_conf() {
	local dir=$1 node=$2 ctld_port=$3 slurmd_port=$4 hw
	# CPUs, sockets, cores, threads and memory as slurmd sees them.
	hw=$(slurmd -C 2>/dev/null | sed -n 's/^NodeName=[^ ]* \(.*\)$/\1/p' | head -n 1)
	hw=${hw%%UpTime=*}
	[ -n "$hw" ] || hw="CPUs=$(nproc)"
	cat >"$dir/slurm.conf" <<EOF
# Generated by $0 for a one-node test cluster; do not use in production.
ClusterName=dsmlocal
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
CommunicationParameters=NoCtldInAddrAny
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=pmi2
PropagateResourceLimits=NONE
ReturnToService=2
MailProg=/bin/true
InactiveLimit=0
KillWait=2
# sbatch --wait polls every 2 s while MinJobAge < 6, every 8 s otherwise.
MinJobAge=5
MessageTimeout=10
SlurmdTimeout=60
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node $hw State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

cmd_start() {
	local dir=$1 node ctld_port slurmd_port i state
	for b in munged slurmctld slurmd sinfo squeue scancel scontrol; do
		command -v "$b" >/dev/null 2>&1 || die "$b not found (install slurm-wlm and munge)"
	done
	[ "$(id -u)" = 0 ] || die "needs root (slurmd runs jobs as their user)"
	mkdir -p "$dir" || die "cannot create $dir"
	dir=$(cd "$dir" && pwd)
	[ -e "$dir/pids" ] && die "$dir already holds a running cluster (stop it first)"
	mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log" || die "cannot populate $dir"
	chmod 700 "$dir/munge"
	: >"$dir/pids"
	# From here on, a failure stops whatever was started.
	trap 'cmd_stop "$dir"' EXIT

	if ! head -c 1024 /dev/urandom >"$dir/munge/munge.key" || ! chmod 400 "$dir/munge/munge.key"; then
		die "cannot write a munge key"
	fi
	munged --foreground --force --key-file="$dir/munge/munge.key" \
		--socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
		--log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
		</dev/null >>"$dir/log/munged.out" 2>&1 &
	echo "munged $!" >>"$dir/pids"
	i=0
	while [ ! -S "$dir/munge/munge.socket" ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -S "$dir/munge/munge.socket" ] ||
		die "munged did not start: $(tail -n 5 "$dir/log/munged.log" "$dir/log/munged.out" 2>/dev/null | grep -v -e '^$' -e '^==> ' | tail -n 3 | tr '\n' ' ')"

	node=$(hostname -s)
	ctld_port=$(free_port) || die "no free TCP port"
	slurmd_port=$(free_port "$ctld_port") || die "no free TCP port"
	write_conf "$dir" "$node" "$ctld_port" "$slurmd_port"
	export SLURM_CONF="$dir/slurm.conf"

	slurmctld -D -i -f "$SLURM_CONF" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
	echo "slurmctld $!" >>"$dir/pids"
	slurmd -D -f "$SLURM_CONF" -N "$node" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
	echo "slurmd $!" >>"$dir/pids"

	# Up when the node is idle (or mixed/allocated, if someone was quick).
	i=0
	while [ $i -lt 300 ]; do
		state=$(timeout 5 sinfo -h -n "$node" -o %T 2>/dev/null)
		case "$state" in idle* | mixed* | allocated*) break ;; esac
		while read -r name pid; do
			pid_is "$pid" "$name" ||
				die "$name exited during start-up: $(tail -n 5 "$dir/log/$name.log" "$dir/log/$name.out" 2>/dev/null | grep -v -e '^$' -e '^==> ' | tail -n 3 | tr '\n' ' ')"
		done <"$dir/pids"
		sleep 0.1
		i=$((i + 1))
	done
	case "$state" in
	idle* | mixed* | allocated*) ;;
	*) die "node $node not ready after 30s (state '${state:-unknown}'); logs in $dir/log" ;;
	esac
	trap - EXIT
	echo "$LC_NAME: up in $dir (controller 127.0.0.1:$ctld_port, node $node, $(sed -n 's/.*\(CPUs=[0-9]*\).*/\1/p' "$dir/slurm.conf" | head -n 1))"
	echo "$LC_NAME: export SLURM_CONF=$dir/slurm.conf"
}

cmd_run() {
	local dir=$1 rc
	shift
	[ "${1:-}" = "--" ] && shift
	[ $# -gt 0 ] || usage
	(cmd_start "$dir") || exit 1
	dir=$(cd "$dir" && pwd)
	trap 'cmd_stop "$dir"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	SLURM_CONF="$dir/slurm.conf" "$@"
	rc=$?
	cmd_stop "$dir"
	trap - EXIT
	exit $rc
}

[ $# -ge 2 ] || usage
case "$1" in
start) cmd_start "$2" ;;
stop)
	[ -d "$2" ] || die "no such directory: $2"
	cmd_stop "$(cd "$2" && pwd)"
	;;
run)
	shift
	cmd_run "$@"
	;;
*) usage ;;
esac
