#!/bin/sh
# SPDX-License-Identifier: MIT
# dsm-info as a user sees it: the text report, the JSON object, the exit codes.
# usage: dsm_info_cli.sh <path to dsm-info>
set -u
INFO=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../lib.sh"

"$INFO" >"$tmp/out" 2>"$tmp/err"
check "text report exits 0" test $? -eq 0
check "text report has a verdict" grep -q "^verdict: libdsm can run here" "$tmp/out"
check "text report names the uffd mode" grep -Eq "^userfaultfd +(full|user-mode-only) via" "$tmp/out"

"$INFO" --json >"$tmp/json" 2>"$tmp/err"
check "--json exits 0" test $? -eq 0
check "--json is one valid JSON object" jq -e 'type == "object"' "$tmp/json"
check "--json says ok with a working probe" jq -e \
	'.ok == true and .userfaultfd.probe.ok == true and .userfaultfd.probe.wp_faults > 0' "$tmp/json"
check "--json lists features by name" jq -e '.userfaultfd.features | index("PAGEFAULT_FLAG_WP") != null' "$tmp/json"
check "--json lists an RDM provider" jq -e '.libfabric.providers | length > 0' "$tmp/json"
check "--json has hwloc and MPI" jq -e '.hwloc.pus >= 1 and (.mpi.library | length > 0)' "$tmp/json"

"$INFO" --bogus >"$tmp/out" 2>"$tmp/err"
check "unknown option exits 2" test $? -eq 2
check "unknown option prints usage" grep -q "^usage: dsm-info" "$tmp/err"
"$INFO" extra >"$tmp/out" 2>"$tmp/err"
check "stray argument exits 2" test $? -eq 2

# A machine where libdsm cannot run: no provider passes libfabric's filter.
FI_PROVIDER=no_such_provider "$INFO" >"$tmp/out" 2>"$tmp/err"
check "no provider exits 1" test $? -eq 1
check "no provider: one line with the reason and the fix" sh -c \
	"test \$(wc -l <'$tmp/err') -eq 1 && grep -q 'cannot run here: no libfabric provider.*Fix: ' '$tmp/err'"
FI_PROVIDER=no_such_provider "$INFO" --json >"$tmp/json" 2>/dev/null
check "no provider: --json says ok=false with a fix" jq -e '.ok == false and (.fix | length > 0)' "$tmp/json"

# The settings: listed with defaults; a malformed one fails the listing and the verdict.
"$INFO" --settings >"$tmp/out" 2>"$tmp/err"
check "--settings exits 0" test $? -eq 0
check "--settings lists DSM_LINE_SIZE with its default" grep -Eq "^DSM_LINE_SIZE +\(default\) +the page size" "$tmp/out"
DSM_HOLD_US=350 "$INFO" --settings --json >"$tmp/json" 2>"$tmp/err"
check "--settings --json shows a value set" jq -e >/dev/null \
	'.settings[] | select(.name == "DSM_HOLD_US") | .set and .valid and .value == "350"' "$tmp/json"
DSM_HOLD_US=abc "$INFO" --settings >"$tmp/out" 2>"$tmp/err"
check "a malformed setting: --settings exits 1" test $? -eq 1
check "a malformed setting: named, with what is allowed" grep -q \
	"DSM_HOLD_US='abc' is not valid: want an integer from 0 to 10000000 (us)" "$tmp/err"
DSM_HOLD_US=abc "$INFO" >"$tmp/out" 2>"$tmp/err"
check "a malformed setting: the report exits 1" test $? -eq 1
check "a malformed setting: the verdict names it" grep -q "cannot run here: DSM_HOLD_US='abc'" "$tmp/err"

finish
