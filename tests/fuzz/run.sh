#!/usr/bin/env bash
# The OpenAPI-driven fuzz run: starts the daemon on a temporary SQLite database with sample
# members (127.0.0.1 only), points schemathesis (from PyPI, in a virtualenv under target/) at
# /api/openapi.json and fails on any 5xx, any answer that breaks its schema and any wrong content
# type. Bounded: a fixed number of examples per operation and a time budget. Run by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/../.."

examples="${FUZZ_EXAMPLES:-30}"
budget="${FUZZ_SECONDS:-120}"
venv="target/fuzz-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1; then
    echo "installing python3-venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  fi
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4.32,<5'
fi

cargo build --locked --quiet --bin tidings
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$work/tidings.toml" <<TOML
[database]
url = "sqlite://$work/tidings.db"

[http]
addr = "127.0.0.1:$port"

[outbox]
path = "$work/outbox.jsonl"

[log]
level = "warn"
TOML

# An admin key, so every operation is reached (the access table itself is tested in tests/it/auth.rs).
key="$(./target/debug/tidings --config "$work/tidings.toml" keys create --name fuzz --role admin 2>/dev/null)"
./target/debug/tidings --config "$work/tidings.toml" serve --demo > "$work/daemon.log" 2>&1 &
daemon=$!
stop() {
  kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/daemon.log"; echo "the daemon did not become ready" >&2; exit 1; }

set +e
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/openapi.json" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --max-examples "$examples" --max-time "$budget" --seed 20261124 --workers 2 \
  --request-timeout 10 --no-color --suppress-health-check all \
  -H "Authorization: Bearer $key"
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "--- daemon log (last 80 lines)"; tail -n 80 "$work/daemon.log"
fi
exit "$status"
