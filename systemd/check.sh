#!/usr/bin/env bash
# Checks systemd/tidings.service: `systemd-analyze security --offline=true` must rate it 2.0 or
# lower (the table is printed), and `systemd-analyze verify` must find nothing wrong with it.
# verify insists that ExecStart's binary exists, so it checks a copy of the unit whose ExecStart
# points at the built binary (target/release or target/debug) or, without one, at /bin/true.
set -euo pipefail
cd "$(dirname "$0")/.."

unit=systemd/tidings.service
limit=2.0

if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze not found (install systemd)" >&2
  exit 1
fi

table="$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)" || true
echo "$table"
score="$(printf '%s\n' "$table" | sed -n -E 's/.*Overall exposure level for [^:]*: ([0-9]+\.[0-9]+).*/\1/p' | tail -n1)"
if [ -z "$score" ]; then
  echo "no exposure score in systemd-analyze's output" >&2
  exit 1
fi
if awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s > l) }'; then
  echo "$unit: exposure $score is over $limit" >&2
  exit 1
fi
echo "$unit: exposure $score (limit $limit)"

binary=/bin/true
for b in target/release/tidings target/debug/tidings; do
  if [ -x "$b" ]; then binary="$PWD/$b"; break; fi
done
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
sed -E "s#^ExecStart=/usr/local/bin/tidings#ExecStart=$binary#" "$unit" >"$dir/tidings.service"
if ! systemd-analyze verify --man=no "$dir/tidings.service"; then
  echo "$unit: systemd-analyze verify failed" >&2
  exit 1
fi
echo "$unit: verify passed"
