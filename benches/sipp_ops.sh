#!/usr/bin/env bash
# What operations features cost per call, end to end on loopback, in one run:
#
#   off       examples/bench/stateful.route as it is (no metrics, no capture)
#   metrics   the same with `module metrics { listen = "127.0.0.1:9090"; }`,
#             scraped once a second during the round as Prometheus would
#   hep-udp   the same with `module hep { destination = "udp:…"; }`, a
#             datagram per message to a socat sink
#   hep-tcp   the same with `destination = "tcp:…"`, batched writes to a
#             socat sink
#
# Each call (tests/data/sipp/uac.xml) is INVITE, 100, 180, 200, ACK, BYE,
# 200 through the stateful proxy to SIPp's uas.xml on 127.0.0.1:5080. For
# each variant: sipc's CPU-seconds per 1,000 calls at RATE calls/s for SECS
# s, over ROUNDS rounds with the variants alternating, and each variant's
# ratio to `off` in the same round, with the median (goals: metrics under
# 1.03, HEP under 1.15).
#
# Usage: benches/sipp_ops.sh      env: RATE (1000), SECS (10), ROUNDS (3), WORKERS (2), VARIANTS
# Needs: sipp, socat, curl.
set -euo pipefail
cd "$(dirname "$0")/.."

SIPC_BIN=${SIPC_BIN:-${CARGO_TARGET_DIR:-target}/release/sipc}
RATE=${RATE:-1000}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-2}
VARIANTS=${VARIANTS:-off metrics hep-udp hep-tcp}
SCEN=tests/data/sipp
source benches/common.sh
need "$SCEN/uac.xml" "$SCEN/uas.xml" examples/bench/stateful.route
for p in socat curl; do command -v $p >/dev/null || { echo "$p not found" >&2; exit 2; }; done

# One config per variant: the bench config with a module block appended.
for v in $VARIANTS; do
  cp examples/bench/stateful.route "$TMP/$v.route"
  case "$v" in
    off) ;;
    metrics) printf '\nmodule metrics {\n    listen = "127.0.0.1:19090";\n}\n' >>"$TMP/$v.route" ;;
    hep-udp) printf '\nmodule hep {\n    destination = "udp:127.0.0.1:19060";\n}\n' >>"$TMP/$v.route" ;;
    hep-tcp) printf '\nmodule hep {\n    destination = "tcp:127.0.0.1:19061";\n}\n' >>"$TMP/$v.route" ;;
    *) echo "unknown variant $v (off metrics hep-udp hep-tcp)" >&2; exit 2 ;;
  esac
done

# The collectors: sinks that read and throw away.
socat -u UDP-RECV:19060,bind=127.0.0.1 OPEN:/dev/null &
PIDS+=($!)
socat -u TCP-LISTEN:19061,bind=127.0.0.1,reuseaddr,fork OPEN:/dev/null &
PIDS+=($!)

measure() { # VARIANT -> sets CPU (CPU-s per 1,000 calls)
  local v=$1 calls=$(( RATE * SECS )) t0 t1 note="" scraper=""
  sipp -sf "$SCEN/uas.xml" -i 127.0.0.1 -p 5080 -nostdin >"$TMP/uas.log" 2>&1 &
  local uas=$!
  PIDS+=("$uas")
  "$SIPC_BIN" run "$TMP/$v.route" --no-watch --control "$TMP/ctl.sock" -n "$WORKERS" >"$TMP/proxy.log" 2>&1 &
  local proxy=$!
  PIDS+=("$proxy")
  sleep 1
  kill -0 "$proxy" 2>/dev/null || { echo "sipc ($v) did not start: $(tail -3 "$TMP/proxy.log")" >&2; exit 1; }
  if [[ $v == metrics ]]; then
    ( for _ in $(seq 1 $(( SECS + 30 ))); do curl -fsS -o /dev/null http://127.0.0.1:19090/metrics || true; sleep 1; done ) &
    scraper=$!
    PIDS+=("$scraper")
  fi
  t0=$(ticks "$proxy")
  timeout $(( SECS + 60 )) sipp -sf "$SCEN/uac.xml" 127.0.0.1:5060 -i 127.0.0.1 -p 5070 -nostdin \
    -r "$RATE" -m "$calls" -l $(( RATE * 4 )) -recv_timeout 5000 -timeout $(( SECS + 40 )) \
    -timeout_error >"$TMP/uac.log" 2>&1 || note="*"
  t1=$(ticks "$proxy")
  [[ -n $scraper ]] && kill "$scraper" 2>/dev/null
  kill "$proxy" "$uas" 2>/dev/null || true
  wait "$proxy" "$uas" 2>/dev/null || true
  sleep 1
  local fails
  fails=$(grep -E "Failed call" "$TMP/uac.log" | tail -1 | awk -F'|' '{gsub(/ /, "", $3); print $3}')
  CPU=$(awk -v d=$(( t1 - t0 )) -v hz="$hz" -v c="$calls" 'BEGIN { printf "%.3f", d / hz / c * 1000 }')
  printf '  %-8s %8s%s s   failed calls: %s\n' "$v" "$CPU" "$note" "${fails:-?}"
}

declare -A RATIOS
for (( round = 1; round <= ROUNDS; round++ )); do
  echo "round $round of $ROUNDS: sipc CPU-s per 1,000 calls at $RATE/s"
  base=""
  for v in $VARIANTS; do
    measure "$v"
    if [[ $v == off ]]; then base=$CPU; continue; fi
    [[ -n $base ]] || continue
    RATIOS[$v]+="$(awk -v a="$CPU" -v b="$base" 'BEGIN { printf "%.3f", a / b }') "
  done
done
for v in $VARIANTS; do
  [[ $v == off || -z ${RATIOS[$v]:-} ]] && continue
  printf '%s\n' ${RATIOS[$v]} | sort -n | awk -v v="$v" '{ r[NR] = $1 } END {
    m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    printf "%-8s / off over %d rounds: median %.3f (min %.3f, max %.3f)\n", v, NR, m, r[1], r[NR] }'
done
