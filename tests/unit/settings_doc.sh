#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Every DSM_* setting is declared once, in the registry (common/settings.c), read only
# through it, and documented:
#   1. no source of the library or its tools calls getenv() on a DSM_* name outside the
#      registry;
#   2. every DSM_* name that a library or tool source spells out in a string (a log line
#      saying "raise DSM_HEAP_SIZE", say) is a setting of the registry, unless it is one
#      of our own macros (DSM_CONFIG_INIT);
#   3. README's settings table lists exactly the registry's settings, each with the
#      default that `dsm-info --settings` reports.
#
#   settings_doc.sh <source root> <dsm-info>
set -u
src=${1:?usage: settings_doc.sh <source root> <dsm-info>}
info=${2:?}
cd "$src" || exit 2
fail=0
dirs="common coherence transport runtime tools"
# Example programs under tools/ are applications: they read the Slurm templates' variables
# (DSM_CKPT_DIR) and may show libdsm's (DSM_RESTART) as any program would, so 1 and 2 leave
# them out.
apps='tools/dsm-ckpt-demo.c'

registry=$("$info" --settings --json | jq -r '.settings[].name' | sort)
[ "$(wc -l <<<"$registry")" -ge 10 ] || { echo "settings_doc: FAILED: dsm-info listed: $registry"; exit 1; }

# 1. getenv of a DSM_ name outside the registry
bad=$(grep -rnE '(secure_)?getenv[[:space:]]*\([[:space:]]*"DSM_' $dirs --include='*.[ch]' |
	grep -v '^common/settings' | grep -vF "$apps")
if [ -n "$bad" ]; then
	echo "settings_doc: FAILED: DSM_* read outside the registry:"
	echo "$bad" | sed 's/^/  /'
	fail=1
fi

# 2. names in strings
macros=$(grep -rhoE '#define (DSM_[A-Z0-9_]+)' include common coherence transport runtime |
	awk '{print $2}' | sort -u)
# string literals, taken left to right as C reads them
named=$(find $dirs -name '*.[ch]' ! -path "$apps" -exec perl -ne 'while (/"((?:[^"\\]|\\.)*)"/g) { print "$1\n" }' {} + |
	grep -oE '\bDSM_[A-Z][A-Z0-9_]*' | sort -u)
for n in $named; do
	grep -qx "$n" <<<"$registry" && continue
	grep -qx "$n" <<<"$macros" && continue
	echo "settings_doc: FAILED: the sources name $n, which is no setting of the registry"
	fail=1
done

# 3. the README's table (the rows between "## Settings" and the next "## ")
rows=$(awk '/^## Settings/{on=1; next} /^## /{on=0} on && /^\| `DSM_/' README.md)
documented=$(sed -E 's/^\| `([A-Z0-9_]+)`.*/\1/' <<<"$rows" | sort)
if [ "$documented" != "$registry" ]; then
	echo "settings_doc: FAILED: README's settings table and the registry differ:"
	diff <(echo "$registry") <(echo "$documented") | sed 's/^/  /'
	fail=1
fi
while IFS=$'\t' read -r name def; do
	row=$(grep -F "| \`$name\` |" <<<"$rows")
	[ -n "$row" ] || continue
	cell=$(awk -F'|' '{print $(NF-1)}' <<<"$row" | sed -E 's/`//g; s/^ +| +$//g')
	if [ "$cell" != "$def" ]; then
		echo "settings_doc: FAILED: README says the default of $name is '$cell', the registry '$def'"
		fail=1
	fi
done < <("$info" --settings --json | jq -r '.settings[] | [.name, .default] | @tsv')

[ $fail -eq 0 ] && echo "settings_doc: $(wc -l <<<"$registry") settings: read only through the registry, each in README with its default; $(wc -w <<<"$named") DSM_ names in strings checked"
exit $fail
