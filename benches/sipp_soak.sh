#!/usr/bin/env bash
# Memory soak of the stateful proxy: SIPp UAC -> proxy -> SIPp UAS (answers at
# once, tests/data/sipp/uac.xml and uas.xml) on loopback, ROUNDS rounds of
# CALLS calls at RATE calls/s, back to back, through
#
#   sipc      target/release/sipc run examples/bench/stateful.route
#   kamailio  kamailio -f benches/kamailio/stateful.cfg (skipped, saying so,
#             if not installed)
#
# in one run. After each round it reads the proxy's resident memory: VmRSS
# for sipc (one process); for Kamailio the sum of Pss over its processes
# (they share one segment, which plain RSS would count once per process),
# and its RSS sum beside it. A round ends with the transactions of its last
# 32 s still alive (RFC 6026 keeps a 2xx'd INVITE 64·T1, a completed
# non-INVITE Timer J), so the figure after a round is the steady state at
# that rate.
#
# Fails (exit 1) when sipc failed a call, when its RSS after a round exceeds
# LIMIT_MB, or when it grows round over round (the last round more than
# GROWTH_PCT above the first).
#
# Usage: benches/sipp_soak.sh
#   env: CALLS (60000), RATE (2000), ROUNDS (3), LIMIT_MB (150), GROWTH_PCT (10),
#        TARGETS ("sipc kamailio"), WORKERS=N (both proxies' -n),
#        KAMAILIO_SHM (its -m in MB; default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."

SIPC_BIN=${SIPC_BIN:-${CARGO_TARGET_DIR:-target}/release/sipc}
CALLS=${CALLS:-60000}
RATE=${RATE:-2000}
ROUNDS=${ROUNDS:-3}
LIMIT_MB=${LIMIT_MB:-150}
GROWTH_PCT=${GROWTH_PCT:-10}
TARGETS=${TARGETS:-"sipc kamailio"}
SCEN=tests/data/sipp
source benches/common.sh
need "$SCEN/uac.xml" "$SCEN/uas.xml" examples/bench/stateful.route benches/kamailio/stateful.cfg

# Resident KiB of the proxy: "PSS RSS" summed over it and its children.
resident() {
  local pss=0 rss=0 p
  for p in $PROXY_PID $(pgrep -P "$PROXY_PID" || true); do
    pss=$(( pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0) ))
    rss=$(( rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0) ))
  done
  echo "$pss $rss"
}

# CPU ticks of the proxy and its children (Kamailio forks its workers).
proxy_ticks() {
  local t=0 p
  for p in $PROXY_PID $(pgrep -P "$PROXY_PID" || true); do t=$(( t + $(ticks "$p") )); done
  echo "$t"
}

STATUS=0
soak() { # TARGET
  local name=$1 r
  sipp -sf "$SCEN/uas.xml" -i 127.0.0.1 -p 5080 -nostdin >"$TMP/uas.log" 2>&1 &
  local uas=$!
  PIDS+=("$uas")
  case "$name" in
    sipc) "$SIPC_BIN" run examples/bench/stateful.route --control "$TMP/ctl.sock" \
            ${WORKERS:+-n "$WORKERS"} >"$TMP/proxy.log" 2>&1 & ;;
    kamailio) kamailio -f benches/kamailio/stateful.cfg -m "${KAMAILIO_SHM:-1024}" \
                ${WORKERS:+-n "$WORKERS"} -DD -E -w "$TMP" >"$TMP/proxy.log" 2>&1 & ;;
  esac
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  sleep 1
  if ! kill -0 "$PROXY_PID" 2>/dev/null; then
    echo "$name did not start: $(tail -1 "$TMP/proxy.log")"
    STATUS=1
    kill "$uas" 2>/dev/null || true
    return
  fi
  local first=0 t0 t1
  t0=$(proxy_ticks)
  for ((r = 1; r <= ROUNDS; r++)); do
    timeout $(( CALLS / RATE + 60 )) sipp -sf "$SCEN/uac.xml" 127.0.0.1:5060 -i 127.0.0.1 \
      -p 5070 -nostdin -r "$RATE" -m "$CALLS" -l $(( RATE * 4 )) -recv_timeout 5000 \
      -timeout $(( CALLS / RATE + 40 )) -timeout_error >"$TMP/uac.log" 2>&1 || true
    local failed mem pss rss
    failed=$(grep -E "Failed call" "$TMP/uac.log" | tail -1 | awk -F'|' '{gsub(/ /, "", $3); print $3}')
    mem=$(resident)
    pss=${mem% *}
    rss=${mem#* }
    if [[ $name == sipc ]]; then
      local txns
      txns=$("$SIPC_BIN" reload --control "$TMP/ctl.sock" --status |
        awk '/^transactions:/ {print $2}')
      printf '%-9s round %d: %6d calls, %s failed, RSS %4d MiB, %s live transactions\n' \
        "$name" "$r" "$CALLS" "${failed:-?}" $(( rss / 1024 )) "${txns:-?}"
      (( r == 1 )) && first=$rss
      if [[ ${failed:-1} != 0 ]]; then echo "  FAIL: failed calls"; STATUS=1; fi
      if (( rss > LIMIT_MB * 1024 )); then echo "  FAIL: over ${LIMIT_MB} MiB"; STATUS=1; fi
      if (( r == ROUNDS && rss * 100 > first * (100 + GROWTH_PCT) )); then
        echo "  FAIL: grew from $(( first / 1024 )) MiB in round 1 (more than ${GROWTH_PCT}%)"
        STATUS=1
      fi
    else
      printf '%-9s round %d: %6d calls, %s failed, PSS %4d MiB (RSS summed over processes %d MiB)\n' \
        "$name" "$r" "$CALLS" "${failed:-?}" $(( pss / 1024 )) $(( rss / 1024 ))
    fi
  done
  t1=$(proxy_ticks)
  awk -v d=$(( t1 - t0 )) -v hz="$hz" -v c=$(( CALLS * ROUNDS )) -v n="$name" 'BEGIN {
    printf "%-9s CPU-s per 1,000 calls over the soak: %.3f\n", n, d / hz / c * 1000 }'
  kill "$PROXY_PID" "$uas" 2>/dev/null || true
  wait "$PROXY_PID" "$uas" 2>/dev/null || true
  sleep 1
}

echo "soak: $ROUNDS rounds of $CALLS calls at $RATE calls/s (limit ${LIMIT_MB} MiB for sipc)"
[[ $TARGETS == *sipc* ]] && soak sipc
if [[ $TARGETS == *kamailio* ]]; then
  if command -v kamailio >/dev/null; then
    soak kamailio
  else
    echo "kamailio not installed: no comparison (apt-get install kamailio)"
  fi
fi
exit "$STATUS"
