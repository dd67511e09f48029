#!/usr/bin/env bash
# REGISTER with digest authentication, end to end: SIPp (tests/data/sipp/
# reg_auth.xml: REGISTER -> 401 -> REGISTER with credentials -> 200) against
#
#   sipc      target/release/sipc run benches/register_auth.route
#             (users in SQLite via `sipc user import`, bindings written behind)
#   kamailio  benches/kamailio/register_auth.cfg: auth_db on db_sqlite, usrloc
#             db_mode 2 on the same kind of SQLite database (skipped if absent;
#             apt-get install kamailio kamailio-sqlite-modules)
#
# in one run, proxy on 127.0.0.1:5060, SIPp on :5070. For each: the proxy's
# CPU-seconds per 1,000 successful registrations (each is two REGISTER
# transactions, the challenge and the authenticated one) at a fixed rate
# (default 500 registrations/s for 10 s over USERS users), and the highest
# rate sustained for SECS seconds with 0 failures. Reports sipc/kamailio.
#
# Usage: benches/sipp_register.sh [--quick]
#   env: USERS (10000), RATE, SECS, STEPS, TARGETS="sipc kamailio"
set -euo pipefail
cd "$(dirname "$0")/.."

SIPC_BIN=${SIPC_BIN:-${CARGO_TARGET_DIR:-target}/release/sipc}
USERS=${USERS:-10000}
RATE=${RATE:-500}
SECS=${SECS:-10}
STEPS=${STEPS:-"500 1000 1500 2000 3000 4000"}
if [[ "${1:-}" == "--quick" ]]; then SECS=4; STEPS="500 1000 2000"; fi
SCEN=tests/data/sipp/reg_auth.xml
source benches/common.sh

# Users: user<i>@127.0.0.1 / pw<i>; SIPp CSV with the credentials keyword.
{
  echo SEQUENTIAL
  for ((i = 0; i < USERS; i++)); do
    echo "user$i;[authentication username=user$i password=pw$i];127.0.0.1:5080;127.0.0.1"
  done
} >"$TMP/users.csv"

setup_sipc() {
  mkdir -p "$TMP/sipc"
  cp benches/register_auth.route "$TMP/sipc/"
  for ((i = 0; i < USERS; i++)); do echo "user$i@127.0.0.1;pw$i"; done |
    "$SIPC_BIN" user import --db "$TMP/sipc/sipc.db" 2>/dev/null
}

setup_kamailio() {
  mkdir -p "$TMP/kam"
  python3 - "$TMP/kam/kamailio.db" "$USERS" <<'PY'
import hashlib, sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
base = "/usr/share/kamailio/db_sqlite/"
for f in ("standard-create.sql", "auth_db-create.sql", "usrloc-create.sql"):
    c.executescript(open(base + f).read())
rows = []
for i in range(n):
    u, r, p = f"user{i}", "127.0.0.1", f"pw{i}"
    rows.append((u, r, hashlib.md5(f"{u}:{r}:{p}".encode()).hexdigest()))
c.executemany("INSERT INTO subscriber (username, domain, ha1) VALUES (?, ?, ?)", rows)
c.commit()
PY
}

start_proxy() {
  case "$1" in
    sipc) "$SIPC_BIN" run "$TMP/sipc/register_auth.route" >"$TMP/proxy.log" 2>&1 & PROXY_PID=$! ;;
    kamailio) kamailio -f benches/kamailio/register_auth.cfg -A "DBURL=\"sqlite:///$TMP/kam/kamailio.db\"" \
                -DD -E -w "$TMP" >"$TMP/proxy.log" 2>&1 & PROXY_PID=$! ;;
  esac
  PIDS+=("$PROXY_PID")
  sleep 1.5
}

proxy_cpu_ticks() {
  local t=0 p
  for p in $PROXY_PID $(pgrep -P "$PROXY_PID" || true); do t=$(( t + $(ticks "$p") )); done
  echo "$t"
}

# run_reg RATE COUNT -> 0 when every registration succeeded
run_reg() {
  timeout $(( $2 / $1 + 30 )) sipp -sf "$SCEN" 127.0.0.1:5060 -i 127.0.0.1 -p 5070 -nostdin \
    -inf "$TMP/users.csv" -r "$1" -m "$2" -l $(( $1 * 4 )) -recv_timeout 5000 \
    -timeout $(( $2 / $1 + 20 )) -timeout_error >"$TMP/sipp.log" 2>&1
}

measure() {
  local name=$1 cpu best=0 note=""
  "setup_$name"
  start_proxy "$name"
  if ! kill -0 "$PROXY_PID" 2>/dev/null; then
    printf '%-9s %24s %20s   (did not start: %s)\n' "$name" - - "$(tail -1 "$TMP/proxy.log")"
    eval "CPU_$name=-"
    return
  fi
  local n=$(( RATE * SECS )) t0 t1
  run_reg "$RATE" 200 || true # warm-up: first registrations, caches
  t0=$(proxy_cpu_ticks)
  run_reg "$RATE" "$n" || note="*"
  t1=$(proxy_cpu_ticks)
  cpu=$(awk -v d=$(( t1 - t0 )) -v hz="$hz" -v c="$n" 'BEGIN { printf "%.3f", d / hz / c * 1000 }')
  for r in $STEPS; do
    if run_reg "$r" $(( r * SECS )) || run_reg "$r" $(( r * SECS )); then best=$r; else break; fi
  done
  kill "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  sleep 1
  printf '%-9s %24s %20s\n' "$name" "$cpu$note" "$best"
  eval "CPU_$name=$cpu"
}

printf '%-9s %24s %20s\n' target "CPU-s/1000 reg@$RATE/s" "max reg/s (0 fail)"
TARGETS=${TARGETS:-"sipc kamailio"}
[[ $TARGETS == *sipc* ]] && measure sipc
if [[ $TARGETS == *kamailio* ]]; then
  if command -v kamailio >/dev/null && [[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/db_sqlite.so ]]; then
    measure kamailio
    awk -v s="$CPU_sipc" -v k="$CPU_kamailio" 'BEGIN {
      if (s+0 > 0 && k+0 > 0) printf "sipc CPU per registration / kamailio = %.2f (target <= 0.33)\n", s / k }'
  else
    echo "kamailio or kamailio-sqlite-modules not installed: no comparison"
  fi
fi
echo "(* = some registrations failed in the CPU run; memory per contact: cargo bench --bench location_memory)"
