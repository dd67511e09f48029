#!/usr/bin/env bash
# What a banned source's datagram costs the proxy against an OPTIONS it
# routes and answers, end to end on loopback, in one run:
#
#   routed   SIPp (tests/data/sipp/options.xml) from 127.0.0.2 sends OPTIONS
#            at RATE/s for SECS s; sipc (benches/security/ban.route) answers
#            each 200
#   dropped  SIPp (options_send.xml) from 127.0.0.3, which the route bans on
#            its first datagram, sends OPTIONS at the same rate; sipc drops
#            each before parsing it
#
# Prints sipc's CPU-microseconds per datagram in each case and the ratio
# dropped/routed (goal: at most 1/5), over ROUNDS alternating rounds.
#
# Usage: benches/sipp_ban.sh      env: RATE (5000), SECS (10), ROUNDS (3)
set -euo pipefail
cd "$(dirname "$0")/.."

SIPC_BIN=${SIPC_BIN:-${CARGO_TARGET_DIR:-target}/release/sipc}
RATE=${RATE:-5000}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-3}
SCEN=tests/data/sipp
source benches/common.sh
need "$SCEN/options.xml" "$SCEN/options_send.xml" benches/security/ban.route

"$SIPC_BIN" run benches/security/ban.route --no-watch >"$TMP/sipc.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
sleep 1
kill -0 "$PROXY_PID" 2>/dev/null || { echo "sipc did not start: $(tail -3 "$TMP/sipc.log")" >&2; exit 1; }

# blast SCENARIO IP -> CPU microseconds of sipc per datagram sent
blast() {
  local calls=$(( RATE * SECS )) t0 t1
  t0=$(ticks "$PROXY_PID")
  timeout $(( SECS + 30 )) sipp -sf "$1" 127.0.0.1:5060 -i "$2" -p 5090 -nostdin \
    -r "$RATE" -m "$calls" -l $(( RATE * 2 )) -recv_timeout 2000 >"$TMP/sipp.log" 2>&1 || true
  t1=$(ticks "$PROXY_PID")
  awk -v d=$(( t1 - t0 )) -v hz="$hz" -v c="$calls" 'BEGIN { printf "%.2f", d / hz / c * 1e6 }'
}

RATIOS=()
printf '%-6s %22s %22s %8s\n' round "routed µs/datagram" "dropped µs/datagram" ratio
for (( r = 1; r <= ROUNDS; r++ )); do
  routed=$(blast "$SCEN/options.xml" 127.0.0.2)
  dropped=$(blast "$SCEN/options_send.xml" 127.0.0.3)
  ratio=$(awk -v a="$dropped" -v b="$routed" 'BEGIN { if (b > 0) printf "%.3f", a / b }')
  printf '%-6s %22s %22s %8s\n' "$r" "$routed" "$dropped" "$ratio"
  RATIOS+=("$ratio")
done
printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{ r[NR] = $1 } END {
  m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
  printf "dropped/routed CPU per datagram, median of %d rounds: %.3f (goal <= 0.2)\n", NR, m }'
"$SIPC_BIN" reload --status --control "${XDG_RUNTIME_DIR:-/tmp}/sipc.sock" 2>/dev/null | grep '^bans:' || true
