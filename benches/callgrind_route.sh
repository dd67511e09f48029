#!/usr/bin/env bash
# User-space instructions per call through sipc, counted by valgrind's
# callgrind: the figure docs/architecture.md tabulates for each route. CPU
# time on a shared machine moves by a fifth between runs; these counts
# repeat to within a fraction of a percent, so they show what a change to
# the per-message path saves before the end-to-end benchmarks can.
#
# SIPp UAC -> sipc (under callgrind, one receive worker) -> SIPp UAS on
# loopback (tests/data/sipp/uac.xml and uas.xml). 100 calls warm up (the JIT,
# the first allocations), the counters are zeroed (`callgrind_control -z`),
# CALLS calls go through at 100 calls/s, and the counters are dumped: their
# total over CALLS is the figure. A route that calls rtpengine gets a real
# one on 127.0.0.1:22222 (Debian rtpengine-daemon), as benches/sipp_media.sh
# starts it.
#
# Usage: benches/callgrind_route.sh [ROUTE]   (default examples/bench/stateful.route)
#   env: CALLS (2000), KEEP=DIR (keep the callgrind output there, for
#        callgrind_annotate --inclusive=yes)
# Needs: sipp (sip-tester), valgrind; rtpengine for routes that use it.
set -euo pipefail
cd "$(dirname "$0")/.."

SIPC_BIN=${SIPC_BIN:-${CARGO_TARGET_DIR:-target}/release/sipc}
ROUTE=${1:-examples/bench/stateful.route}
CALLS=${CALLS:-2000}
SCEN=tests/data/sipp
source benches/common.sh
need "$SCEN/uac.xml" "$SCEN/uas.xml" "$ROUTE"
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install valgrind" >&2; exit 2; }

if grep -q 'rtpengine' "$ROUTE"; then
  command -v rtpengine >/dev/null || { echo "rtpengine not found: apt-get install rtpengine-daemon" >&2; exit 2; }
  start_rtpengine
fi

sipp -sf "$SCEN/uas.xml" -i 127.0.0.1 -p 5080 -nostdin >"$TMP/uas.log" 2>&1 &
PIDS+=("$!")
valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.%p" \
  "$SIPC_BIN" run "$ROUTE" -n 1 >"$TMP/sipc.log" 2>&1 &
SIPC_PID=$!
PIDS+=("$SIPC_PID")
# Under valgrind the JIT and the start take seconds: wait for the socket.
for _ in $(seq 100); do
  ss -Hlun 'sport = :5060' | grep -q . && break
  sleep 0.2
done

uac() { # RATE CALLS
  timeout $(( $2 / $1 + 60 )) sipp -sf "$SCEN/uac.xml" 127.0.0.1:5060 -i 127.0.0.1 -p 5070 \
    -nostdin -r "$1" -m "$2" -l $(( $1 * 4 )) -recv_timeout 10000 >"$TMP/uac.log" 2>&1
}
uac 50 100 || { echo "warm-up calls failed: $(tail -3 "$TMP/sipc.log")" >&2; exit 1; }
callgrind_control -z "$SIPC_PID" >/dev/null 2>&1
uac 100 "$CALLS" || { echo "calls failed: $(grep 'Failed call' "$TMP/uac.log" | tail -1)" >&2; exit 1; }
callgrind_control -d "$SIPC_PID" >/dev/null 2>&1
sleep 1

# The dump made on request is the file numbered .1 (the one written at exit
# holds only what ran after it).
out=$(ls "$TMP"/callgrind.*.1 2>/dev/null | head -1)
[[ -n $out ]] || { echo "no callgrind dump found" >&2; exit 1; }
total=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
printf '%s: %d calls, %d instructions per call\n' "$ROUTE" "$CALLS" $(( total / CALLS ))
if [[ -n ${KEEP:-} ]]; then
  mkdir -p "$KEEP"
  cp "$out" "$KEEP/"
  echo "kept $KEEP/$(basename "$out")"
fi
