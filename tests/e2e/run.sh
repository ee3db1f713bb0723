#!/usr/bin/env bash
# The console's end-to-end browser test: builds the daemon, starts it on a temporary SQLite
# database with members whose birthdays fall in the coming week and a marketer's key, drives
# Debian's Chromium (headless) through tests/e2e/console.mjs with playwright-core, saves a
# screenshot of every page to target/e2e/, and stops the daemon.
#
#   tests/e2e/run.sh            # screenshots in target/e2e/
#   tests/e2e/run.sh --docs     # and copy them to docs/console-*.png for the README
#
# Needs: chromium and a CJK font (apt), node and npm (apt: nodejs, npm); playwright-core is installed into
# tests/e2e/node_modules from npm without downloading browsers.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"

docs=false
[ "${1:-}" = "--docs" ] && docs=true

apt_install() {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "installing chromium"
  apt_install chromium
fi
# Chinese text in the screenshots needs a CJK font (the console itself uses the system's fonts).
if command -v fc-list >/dev/null && [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then
  echo "installing a CJK font"
  apt_install fonts-wqy-microhei
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing nodejs and npm"
  apt_install nodejs npm
fi
if [ ! -d tests/e2e/node_modules/playwright-core ]; then
  echo "installing playwright-core"
  (cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --ignore-scripts)
fi

cargo build --locked
bin="$root/target/debug/tidings"

work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  if [ "${KEEP:-}" = "1" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
cat > "$work/tidings.toml" <<TOML
[database]
url = "sqlite://$work/tidings.db"

[http]
addr = "127.0.0.1:$port"

[programme]
name = "Jade Club"
default_locale = "zh-CN"
time_zone = "Asia/Shanghai"

[outbox]
path = "$work/outbox.jsonl"
TOML
tidings() { "$bin" --config "$work/tidings.toml" "$@"; }

# Twenty-one members, three a day with their birthday in each of the next seven days (Shanghai),
# who agreed to SMS and email marketing: the birthday rule's forecast has rows to show.
node - "$work/members.csv" <<'JS'
const fs = require('fs');
const rows = ['external_id,name,phone,email,locale,time_zone,birth_date,member_since,tier,points,consent.sms,consent.email'];
const today = new Date(Date.now() + 8 * 3600e3);
for (let d = 0; d < 7; d++) {
  for (let i = 0; i < 3; i++) {
    const n = d * 3 + i + 1;
    const day = new Date(today.getTime() + d * 86400e3);
    const mmdd = day.toISOString().slice(5, 10);
    const zh = i !== 2;
    rows.push([`e2e-${n}`, zh ? `测试会员${n}` : `Test Member ${n}`, `+86138${String(n).padStart(8, '0')}`,
      `m${n}@example.com`, zh ? 'zh-CN' : 'en', 'Asia/Shanghai', `199${n % 10}-${mmdd}`, '2020-01-15',
      'gold', 1000 * n, 'granted', 'granted'].join(','));
  }
}
fs.writeFileSync(process.argv[2], rows.join('\n') + '\n');
JS
tidings migrate
tidings import "$work/members.csv"
key="$(tidings keys create --name e2e --role marketer)"

tidings serve >"$work/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/daemon.log" >&2; echo "the daemon stopped" >&2; exit 1; }
  sleep 0.2
done

mkdir -p target/e2e
status=0
TIDINGS_URL="http://127.0.0.1:$port" TIDINGS_KEY="$key" CHROMIUM="$chromium" SCREENSHOTS="$root/target/e2e" \
  node tests/e2e/console.mjs || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- daemon log" >&2
  tail -n 50 "$work/daemon.log" >&2
  exit "$status"
fi
if $docs; then
  mkdir -p docs
  for shot in login dashboard templates template-editor publish-dialog history rules rule-edit forecast member forecast-zh dashboard-narrow; do
    cp "target/e2e/console-$shot.png" "docs/console-$shot.png"
  done
  echo "screenshots copied to docs/"
fi
echo "console e2e passed; screenshots in target/e2e/"
