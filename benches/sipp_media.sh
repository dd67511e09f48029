#!/usr/bin/env bash
# Calls with a media relay: SIPp UAC -> proxy -> SIPp UAS on loopback, the
# proxy running rtpengine_manage (offer on the INVITE, answer on the 200,
# delete on the BYE) against a real rtpengine (Debian rtpengine-daemon,
# userspace, ng on 127.0.0.1:22222, started here). Measured in one run:
#
#   sipc-nomedia  examples/nat-rtpengine.route with every rtpengine_manage(...)
#                 replaced by `true`: the same routing without the relay, the
#                 baseline of the latency the ng round trips add
#   sipc          examples/nat-rtpengine.route as it is
#   kamailio      benches/kamailio/nat-rtpengine.cfg, the same logic with
#                 Kamailio's nathelper and rtpengine modules (skipped, saying
#                 so, when kamailio is not installed)
#   kamailio-nomedia  that cfg with every rtpengine_manage(...) replaced by
#                 `true`, for what the relay costs Kamailio
#
# For each: the proxy's CPU-seconds per 1,000 calls at RATE calls/s (default
# 500 for SECS=10 s) and rtpengine's CPU per 1,000 calls in the same run; for
# sipc, what each ng request (offer, answer, delete: three per call) held its
# routing thread, send to result, as `sipc reload --status` reports it (p50
# and p99 as histogram bucket bounds; goal p99 under 2 ms). Then sipc's CPU
# per call over Kamailio's (goal at most 0.33), and what the relay adds to
# sipc's CPU per call (sipc minus sipc-nomedia). SIPp's own response times
# have a resolution of 1 ms, too coarse for this.
#
# Usage: benches/sipp_media.sh
#   env: TARGETS="sipc-nomedia sipc kamailio-nomedia kamailio" (a subset), RATE, SECS,
#        WORKERS=N (both proxies' -n; default each config's children),
#        KAMAILIO_SHM (its -m in MB; default 1024)
# Needs: sipp (sip-tester), rtpengine (rtpengine-daemon); kamailio optional.
set -euo pipefail
cd "$(dirname "$0")/.."

SIPC_BIN=${SIPC_BIN:-${CARGO_TARGET_DIR:-target}/release/sipc}
RATE=${RATE:-500}
SECS=${SECS:-10}
SCEN=tests/data/sipp
source benches/common.sh
need "$SCEN/uac.xml" "$SCEN/uas.xml" examples/nat-rtpengine.route benches/kamailio/nat-rtpengine.cfg
command -v rtpengine >/dev/null || { echo "rtpengine not found: apt-get install rtpengine-daemon" >&2; exit 2; }

# The example and the Kamailio cfg without the relay: every
# rtpengine_manage(...) is `true`.
sed -E 's/rtpengine_manage\([^)]*\)/true/' examples/nat-rtpengine.route >"$TMP/nomedia.route"
sed -E 's/rtpengine_manage\("[^"]*"\)/true/' benches/kamailio/nat-rtpengine.cfg >"$TMP/k-nomedia.cfg"

start_uas() {
  sipp -sf "$SCEN/uas.xml" -i 127.0.0.1 -p 5080 -nostdin >"$TMP/uas.log" 2>&1 &
  UAS_PID=$!
  PIDS+=("$UAS_PID")
  sleep 0.5
}

start_proxy() {
  case "$1" in
    sipc-nomedia) "$SIPC_BIN" run "$TMP/nomedia.route" ${WORKERS:+-n "$WORKERS"} \
                    --control "$TMP/ctl.sock" >"$TMP/proxy.log" 2>&1 &
                  PROXY_PID=$! ;;
    sipc) "$SIPC_BIN" run examples/nat-rtpengine.route ${WORKERS:+-n "$WORKERS"} \
            --control "$TMP/ctl.sock" >"$TMP/proxy.log" 2>&1 &
          PROXY_PID=$! ;;
    kamailio) kamailio -f benches/kamailio/nat-rtpengine.cfg -m "${KAMAILIO_SHM:-1024}" \
                ${WORKERS:+-n "$WORKERS"} -DD -E -w "$TMP" >"$TMP/proxy.log" 2>&1 &
              PROXY_PID=$! ;;
    kamailio-nomedia) kamailio -f "$TMP/k-nomedia.cfg" -m "${KAMAILIO_SHM:-1024}" \
                ${WORKERS:+-n "$WORKERS"} -DD -E -w "$TMP" >"$TMP/proxy.log" 2>&1 &
              PROXY_PID=$! ;;
  esac
  PIDS+=("$PROXY_PID")
  sleep 1
}

proxy_cpu_ticks() { # the proxy and its children (kamailio forks workers)
  local t=0 p
  for p in $PROXY_PID $(pgrep -P "$PROXY_PID" || true); do t=$(( t + $(ticks "$p") )); done
  echo "$t"
}

measure() { # TARGET
  local name=$1 calls=$(( RATE * SECS )) note=""
  start_rtpengine
  start_uas
  start_proxy "$name"
  if ! kill -0 "$PROXY_PID" 2>/dev/null; then
    printf '%-13s (did not start: %s)\n' "$name" "$(tail -1 "$TMP/proxy.log")"
    kill "$UAS_PID" "$RTPE_PID" 2>/dev/null || true
    return
  fi
  local t0 t1 r0 r1
  t0=$(proxy_cpu_ticks)
  r0=$(ticks "$RTPE_PID")
  timeout $(( SECS + 60 )) sipp -sf "$SCEN/uac.xml" 127.0.0.1:5060 \
    -i 127.0.0.1 -p 5070 -nostdin -r "$RATE" -m "$calls" -l $(( RATE * 4 )) \
    -recv_timeout 5000 -timeout $(( SECS + 30 )) -timeout_error >"$TMP/uac.log" 2>&1 || note="*"
  t1=$(proxy_cpu_ticks)
  r1=$(ticks "$RTPE_PID")
  local cpu rcpu ng=""
  cpu=$(awk -v d=$(( t1 - t0 )) -v hz="$hz" -v c="$calls" 'BEGIN { printf "%.3f", d / hz / c * 1000 }')
  rcpu=$(awk -v d=$(( r1 - r0 )) -v hz="$hz" -v c="$calls" 'BEGIN { printf "%.3f", d / hz / c * 1000 }')
  if [[ $name == sipc ]]; then
    ng=$("$SIPC_BIN" reload --control "$TMP/ctl.sock" --status | sed -n 's/^rtpengine: .*; //p')
  fi
  printf '%-13s %16s %16s   %s\n' "$name" "$cpu$note" "$rcpu" "$ng"
  eval "CPU_${name//-/_}=$cpu"
  if [[ -n $note ]]; then
    echo "              * failed calls: $(grep -E 'Failed call' "$TMP/uac.log" | tail -1 | tr -s ' ')"
  fi
  kill "$PROXY_PID" "$UAS_PID" "$RTPE_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  PROXY_PID=""
  sleep 1
}

command -v socat >/dev/null || { echo "socat not found: apt-get install socat" >&2; exit 2; }
echo "calls: $RATE/s for ${SECS}s; CPU-s per 1,000 calls"
printf '%-13s %16s %16s   %s\n' target "proxy CPU" "rtpengine CPU" "ng requests as the routing thread waits for them"
TARGETS=${TARGETS:-"sipc-nomedia sipc kamailio-nomedia kamailio"}
[[ $TARGETS == *sipc-nomedia* ]] && measure sipc-nomedia
[[ " $TARGETS " == *" sipc "* ]] && measure sipc
if [[ $TARGETS == *kamailio* ]]; then
  if command -v kamailio >/dev/null; then
    [[ $TARGETS == *kamailio-nomedia* ]] && measure kamailio-nomedia
    [[ " $TARGETS " == *" kamailio "* ]] && measure kamailio
  else
    echo "kamailio not installed: no comparison (apt-get install kamailio)"
  fi
fi
awk -v s="${CPU_sipc:-}" -v k="${CPU_kamailio:-}" 'BEGIN {
  if (s+0 > 0 && k+0 > 0) printf "sipc CPU per call / kamailio CPU per call = %.2f (goal <= 0.33)\n", s / k }'
awk -v s="${CPU_sipc:-}" -v n="${CPU_sipc_nomedia:-}" 'BEGIN {
  if (s+0 > 0 && n+0 > 0) printf "the relay adds %.3f CPU-s per 1,000 calls to sipc (%.2fx the routing alone)\n", s - n, s / n }'
awk -v s="${CPU_kamailio:-}" -v n="${CPU_kamailio_nomedia:-}" 'BEGIN {
  if (s+0 > 0 && n+0 > 0) printf "the relay adds %.3f CPU-s per 1,000 calls to kamailio (%.2fx the routing alone)\n", s - n, s / n }'
