#!/bin/sh
# check-units: prints `systemd-analyze security --offline=true` for each
# unit in deploy/ (the full table and the overall line) and fails when a
# unit's overall exposure is above its goal. Goals: docs/systemd.md.
set -eu
cd "$(dirname "$0")/../deploy"
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "check-units: systemd-analyze not found (Debian: the systemd package)" >&2
	exit 1
fi
fail=0
summary=""
for spec in portcullis-web.service:1.5 portcullis.service:3.0 portcullis-link.service:2.5; do
	unit=${spec%%:*}
	goal=${spec#*:}
	echo "== $unit (goal: at most $goal)"
	if ! out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1); then
		printf '%s\n' "$out"
		echo "check-units: $unit: systemd-analyze failed" >&2
		fail=1
		continue
	fi
	printf '%s\n\n' "$out"
	score=$(printf '%s\n' "$out" | sed -n 's/^.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*$/\1/p')
	if [ -z "$score" ]; then
		echo "check-units: $unit: no overall exposure line" >&2
		fail=1
		continue
	fi
	if awk -v s="$score" -v g="$goal" 'BEGIN { exit !(s + 0 > g + 0) }'; then
		verdict="ABOVE GOAL"
		fail=1
	else
		verdict="ok"
	fi
	summary="$summary$(printf '%-26s %4s  goal %4s  %s' "$unit" "$score" "$goal" "$verdict")
"
done
printf 'Overall exposure (systemd-analyze security --offline=true):\n%s' "$summary"
if [ "$fail" -ne 0 ]; then
	echo "check-units: FAILED" >&2
fi
exit "$fail"
