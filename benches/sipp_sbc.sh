#!/usr/bin/env bash
# CPU per call of the SBC example against Kamailio doing the same with
# pike, htable and permissions, end to end on loopback, in one run:
#
#   sipc      examples/sbc.route (a copy whose per-source limit is raised to
#             100,000/s, so the one SIPp source is not banned, and whose
#             challenges are MD5 alone, which SIPp needs; everything else as
#             shipped), alice in its subscriber table
#   kamailio  benches/kamailio/sbc.cfg: the same logic with pike (density
#             raised alike), htable bans and failure counts, permissions
#             for the trusted inside and auth_db for the digest checks, on
#             a SQLite database made from Debian's schema files
#
# Each call (tests/data/sipp/uac_auth.xml, from 127.0.0.1) is an INVITE
# challenged 407, the INVITE again with credentials, relayed to the media
# server (SIPp's uas.xml on 127.0.0.10:5080), answered, then BYE. For each
# proxy: CPU-seconds per 1,000 calls at RATE calls/s for SECS s, over
# ROUNDS alternating rounds, and the ratio sipc/kamailio (goal: at most
# 1/3) with its median.
#
# Topology hiding is on in both (the example's topology_hide(), Kamailio's
# topoh); HIDE=0 takes it out of both, to compare the rest alone.
#
# Usage: benches/sipp_sbc.sh      env: RATE (500), SECS (10), ROUNDS (3), WORKERS (both `-n`, 2), HIDE (1)
# Needs: sipp, kamailio and kamailio-sqlite-modules.
set -euo pipefail
cd "$(dirname "$0")/.."

SIPC_BIN=${SIPC_BIN:-${CARGO_TARGET_DIR:-target}/release/sipc}
RATE=${RATE:-500}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-2}
HIDE=${HIDE:-1}
SCEN=tests/data/sipp
source benches/common.sh
need "$SCEN/uac_auth.xml" "$SCEN/uas.xml" examples/sbc.route benches/kamailio/sbc.cfg
command -v kamailio >/dev/null && [[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/db_sqlite.so ]] ||
  { echo "kamailio or kamailio-sqlite-modules not installed" >&2; exit 2; }

# sipc: the example beside its subscriber table.
mkdir -p "$TMP/sipc" "$TMP/kam"
# SIPp answers MD5 challenges only: sipc challenges with MD5 alone here, as
# Kamailio does (the example offers SHA-256 first, then MD5).
sed -e 's/limit per_source by $si rate 30 per 1s burst 60 ban 5m;/limit per_source by $si rate 100000 per 1s burst 100000 ban 5m;/' \
    -e 's/    realm = "sbc.example.com";/    realm = "sbc.example.com";\n    algorithms = "MD5";/' \
  examples/sbc.route >"$TMP/sipc/sbc.route"
grep -q 'rate 100000 per 1s' "$TMP/sipc/sbc.route" && grep -q 'algorithms = "MD5"' "$TMP/sipc/sbc.route" ||
  { echo "the example's limit or auth block changed" >&2; exit 2; }
if [[ "$HIDE" == 0 ]]; then
  grep -q '^    topology_hide();$' "$TMP/sipc/sbc.route" || { echo "the example no longer hides topology" >&2; exit 2; }
  sed -i '/^    topology_hide();$/d' "$TMP/sipc/sbc.route"
  KAM_TOPOH=()
else
  KAM_TOPOH=(-A WITH_TOPOH)
fi
cp examples/sbc-blocklist.txt "$TMP/sipc/"
echo wonderland | "$SIPC_BIN" user add alice@sbc.example.com --password-stdin --db "$TMP/sipc/sipc.db" >/dev/null

# Kamailio: alice and the inside group in SQLite.
python3 - "$TMP/kam/kamailio.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
base = "/usr/share/kamailio/db_sqlite/"
for f in ("standard-create.sql", "auth_db-create.sql", "permissions-create.sql"):
    c.executescript(open(base + f).read())
c.execute("INSERT INTO subscriber (username, domain, password) VALUES ('alice', 'sbc.example.com', 'wonderland')")
c.execute("INSERT INTO address (grp, ip_addr, mask, port) VALUES (1, '127.0.0.10', 32, 0)")
c.commit()
PY

start_uas() {
  sipp -sf "$SCEN/uas.xml" -i 127.0.0.10 -p 5080 -nostdin >"$TMP/uas.log" 2>&1 &
  UAS_PID=$!
  PIDS+=("$UAS_PID")
  sleep 0.5
}

start_proxy() {
  case "$1" in
    sipc) "$SIPC_BIN" run "$TMP/sipc/sbc.route" --no-watch --control "$TMP/ctl.sock" -n "$WORKERS" \
            >"$TMP/proxy.log" 2>&1 & ;;
    kamailio) kamailio -f benches/kamailio/sbc.cfg -A "DBURL=\"sqlite:///$TMP/kam/kamailio.db\"" "${KAM_TOPOH[@]}" \
                -m 1024 -n "$WORKERS" -DD -E -w "$TMP/kam" >"$TMP/proxy.log" 2>&1 & ;;
  esac
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  sleep 1
}

proxy_cpu_ticks() {
  local t=0 p
  for p in $PROXY_PID $(pgrep -P "$PROXY_PID" || true); do t=$(( t + $(ticks "$p") )); done
  echo "$t"
}

measure() { # NAME -> sets CPU_NAME (CPU-s per 1,000 calls)
  local name=$1 calls=$(( RATE * SECS )) t0 t1 note=""
  start_uas
  start_proxy "$name"
  if ! kill -0 "$PROXY_PID" 2>/dev/null; then
    echo "$name did not start: $(tail -3 "$TMP/proxy.log")" >&2
    exit 1
  fi
  t0=$(proxy_cpu_ticks)
  timeout $(( SECS + 60 )) sipp -sf "$SCEN/uac_auth.xml" 127.0.0.1:5060 -i 127.0.0.1 -p 5070 -nostdin \
    -r "$RATE" -m "$calls" -l $(( RATE * 4 )) -recv_timeout 5000 -timeout $(( SECS + 40 )) \
    -timeout_error >"$TMP/uac.log" 2>&1 || note="*"
  t1=$(proxy_cpu_ticks)
  local fails
  fails=$(grep -E "Failed call" "$TMP/uac.log" | tail -1 | awk -F'|' '{gsub(/ /, "", $3); print $3}')
  kill "$PROXY_PID" "$UAS_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  sleep 1
  local cpu
  cpu=$(awk -v d=$(( t1 - t0 )) -v hz="$hz" -v c="$calls" 'BEGIN { printf "%.3f", d / hz / c * 1000 }')
  printf '%-10s %10s%s   failed calls: %s\n' "$name" "$cpu" "$note" "${fails:-?}"
  eval "CPU_$name=$cpu"
}

RATIOS=()
for (( round = 1; round <= ROUNDS; round++ )); do
  echo "round $round of $ROUNDS: CPU-s per 1,000 authenticated calls at $RATE/s"
  measure sipc
  measure kamailio
  ratio=$(awk -v s="$CPU_sipc" -v k="$CPU_kamailio" 'BEGIN { printf "%.2f", s / k }')
  echo "sipc / kamailio = $ratio (goal <= 0.33)"
  RATIOS+=("$ratio")
done
printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{ r[NR] = $1 } END {
  m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
  printf "sipc / kamailio over %d rounds: median %.2f (min %.2f, max %.2f)\n", NR, m, r[1], r[NR] }'
