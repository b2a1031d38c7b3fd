# SPDX-License-Identifier: MIT
# Shared by the shell tests (sourced): each check counts a pass or a failure and says which;
# finish prints the totals and fails when a check failed or when nothing was checked.
pass=0
fail=0

check() { # check <name> <command...>
	name=$1
	shift
	if "$@"; then
		pass=$((pass + 1))
		echo "ok   $name"
	else
		fail=$((fail + 1))
		echo "FAIL $name"
	fi
}

check_eval() { # check_eval <name> <shell condition>
	check "$1" eval "$2"
}

finish() {
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
}

scratch_dir() { # scratch_dir: $dir, a new directory removed at exit (copied into $KEEP_DIR first if set)
	dir=$(mktemp -d)
	trap '[ -n "${KEEP_DIR:-}" ] && cp -r "$dir" "$KEEP_DIR"; rm -rf "$dir"' EXIT
}
