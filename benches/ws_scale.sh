#!/usr/bin/env bash
# SIP over WebSocket at scale, sipc against Kamailio in one run:
#
#   sipc      benches/ws/ws.route
#   kamailio  benches/kamailio/websocket.cfg (websocket, xhttp, tls,
#             nathelper, usrloc, registrar: the same logic)
#
# For each proxy, the load tool (benches/load/ws_clients.rs) opens COUNT
# connections over ws:// (or wss:// with WSS=1) from 20 loopback addresses,
# each upgraded with the `sip` subprotocol and registered as a browser
# does, and holds them open. With TLS=1 the clients speak SIP straight
# over TLS (port 5061) instead, as desk phones on connections do.
# Measured on the proxy's processes:
#
#   - memory per idle registered connection: the proxy's PSS (summed over
#     Kamailio's processes, whose shared memory PSS splits fairly) with
#     every client connected, less before any, over COUNT;
#   - CPU per connection: accept, upgrade (and TLS) and first REGISTER;
#   - CPU per REGISTER over an open connection (every client again);
#   - CPU per call: CALLS clients each call `service` (INVITE, 200, ACK,
#     BYE through the proxy to SIPp's UAS on 127.0.0.1:5080) at once.
#
# and the ratios sipc / kamailio (goals: CPU at most 1/3; less memory per
# connection).
#
# Usage: benches/ws_scale.sh     env: COUNT (20000), CALLS (2000), WSS (0), TLS (0),
#                                     PROXIES ("sipc kamailio": either alone to try one),
#                                     PARALLEL (256 connections opened at a time; 1 for
#                                     wss:// and TLS: Debian's Kamailio 5.6.3 with OpenSSL 3
#                                     loses a TCP worker to SIGSEGV under concurrent TLS
#                                     handshakes, its issue #3791, mended by the
#                                     `tls_threads_mode` of later versions)
# Needs: kamailio (with its websocket and tls modules), sipp, openssl,
# root (or a hard limit of open files above 2 × COUNT).
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-20000}
CALLS=${CALLS:-2000}
WSS=${WSS:-0}
TLS=${TLS:-0}
PROXIES=${PROXIES:-sipc kamailio}
PARALLEL=${PARALLEL:-256}
SIPC_BIN=${SIPC_BIN:-${CARGO_TARGET_DIR:-target}/release/sipc}
LOAD_BIN=${CARGO_TARGET_DIR:-target}/release/examples/ws_clients
source benches/common.sh
need benches/ws/ws.route benches/kamailio/websocket.cfg tests/data/sipp/uas.xml
cargo build --release --quiet --example ws_clients
command -v kamailio >/dev/null && [[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/websocket.so ]] ||
  { echo "kamailio or its websocket module is not installed" >&2; exit 2; }
# Each side holds one descriptor per client: raise the limit, or say what
# the machine allows (a container without CAP_SYS_RESOURCE keeps its hard
# limit).
want=$(( COUNT + 400 ))
if ! ulimit -n "$want" 2>/dev/null; then
  ulimit -n "$(ulimit -Hn)"
  if (( $(ulimit -n) < want )); then
    echo "open files limited to $(ulimit -n) here: COUNT=$COUNT needs $want (try COUNT=$(( $(ulimit -n) - 400 )))" >&2
    exit 2
  fi
fi

cp benches/ws/ws.route "$TMP/ws.route"
# A CA and the proxies' certificate signed by it: the load tool (rustls)
# refuses a self-signed certificate that is its own CA.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=sipc-bench-ca \
  -keyout "$TMP/ca-key.pem" -out "$TMP/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$TMP/ws-key.pem" \
  -out "$TMP/ws.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$TMP/ws.ext"
openssl x509 -req -in "$TMP/ws.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca-key.pem" -CAcreateserial \
  -days 1 -extfile "$TMP/ws.ext" -out "$TMP/ws-cert.pem" 2>/dev/null
if [[ $TLS == 1 ]]; then URL=tls://127.0.0.1:5061/
elif [[ $WSS == 1 ]]; then URL=wss://127.0.0.1:8443/
else URL=ws://127.0.0.1:8080/; fi

sipp -sf tests/data/sipp/uas.xml -i 127.0.0.1 -p 5080 -nostdin >"$TMP/uas.log" 2>&1 &
PIDS+=($!)

# PSS of a process and its children, in kB.
pss() {
  local t=0 p v
  for p in $1 $(pgrep -P "$1" || true); do
    v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    t=$(( t + ${v:-0} ))
  done
  echo "$t"
}
cpu() {
  local t=0 p
  # A child that ended between pgrep and the read counts nothing.
  for p in $1 $(pgrep -P "$1" || true); do t=$(( t + $(ticks "$p" 2>/dev/null || echo 0) )); done
  echo "$t"
}

measure() { # NAME -> sets KB_NAME, CONN_NAME, REG_NAME, CALL_NAME
  local name=$1 proxy
  case "$name" in
    sipc) "$SIPC_BIN" run "$TMP/ws.route" --no-watch --control "$TMP/ctl.sock" >"$TMP/proxy.log" 2>&1 & ;;
    kamailio) kamailio -f benches/kamailio/websocket.cfg -A "TLSCERT=\"$TMP/ws-cert.pem\"" \
                -A "TLSKEY=\"$TMP/ws-key.pem\"" -m 2048 -M 64 -DD -E -w "$TMP" >"$TMP/proxy.log" 2>&1 & ;;
  esac
  proxy=$!
  PIDS+=("$proxy")
  sleep 2
  kill -0 "$proxy" 2>/dev/null || { echo "$name did not start: $(tail -5 "$TMP/proxy.log")" >&2; exit 1; }
  local m0 m1 t0 t1 t2 t3 line held refreshed called failed
  m0=$(pss "$proxy")
  t0=$(cpu "$proxy")
  coproc LOAD { "$LOAD_BIN" "$URL" "$COUNT" --from 127.0.0.2-127.0.0.21 --ca "$TMP/ca.pem" \
                  --domain example.com --parallel "$PARALLEL" 2>"$TMP/load.err"; }
  read -r -t 600 line <&"${LOAD[0]}" || { echo "the load tool gave up: $(tail -3 "$TMP/load.err")" >&2; exit 1; }
  t1=$(cpu "$proxy")
  sleep 2
  m1=$(pss "$proxy")
  held=$(awk '{ print $2 }' <<<"$line")
  if (( ${held:-0} == 0 )); then
    echo "$name: no client connected: $line; $(tail -3 "$TMP/load.err"); $(tail -3 "$TMP/proxy.log")" >&2
    exit 1
  fi
  echo refresh >&"${LOAD[1]}"
  read -r -t 600 line <&"${LOAD[0]}"
  refreshed=$(awk '{ print $2 }' <<<"$line")
  if (( ${refreshed:-0} == 0 )); then
    echo "$name: no client registered again: $line; $(grep -m3 -E 'CRITICAL|ALERT|panic' "$TMP/proxy.log")" >&2
    exit 1
  fi
  t2=$(cpu "$proxy")
  echo "call $CALLS" >&"${LOAD[1]}"
  read -r -t 600 line <&"${LOAD[0]}"
  failed=$(awk '{ print $3 }' <<<"$line")
  t3=$(cpu "$proxy")
  exec {LOAD[1]}>&-
  wait "$LOAD_PID" 2>/dev/null || true
  kill "$proxy" 2>/dev/null || true
  wait "$proxy" 2>/dev/null || true
  sleep 2
  local kb conn reg call
  kb=$(awk -v a="$m0" -v b="$m1" -v n="$held" 'BEGIN { printf "%.1f", (b - a) / n }')
  conn=$(awk -v d=$(( t1 - t0 )) -v hz="$hz" -v n="$held" 'BEGIN { printf "%.1f", d / hz / n * 1e6 }')
  reg=$(awk -v d=$(( t2 - t1 )) -v hz="$hz" -v n="$refreshed" 'BEGIN { printf "%.1f", d / hz / n * 1e6 }')
  call=$(awk -v d=$(( t3 - t2 )) -v hz="$hz" -v n="$CALLS" 'BEGIN { printf "%.1f", d / hz / n * 1e6 }')
  printf '%-9s held %6s   %6s kB/conn   CPU µs: connect+REGISTER %7s   REGISTER %6s   call %6s (failed %s)\n' \
    "$name" "$held" "$kb" "$conn" "$reg" "$call" "$failed"
  eval "KB_$name=$kb CONN_$name=$conn REG_$name=$reg CALL_$name=$call"
}

echo "$COUNT clients over $URL; $CALLS calls"
for p in $PROXIES; do measure "$p"; done
[[ $PROXIES == "sipc kamailio" ]] || exit 0
awk -v a="$KB_sipc" -v b="$KB_kamailio" -v c="$CONN_sipc" -v d="$CONN_kamailio" \
    -v e="$REG_sipc" -v f="$REG_kamailio" -v g="$CALL_sipc" -v h="$CALL_kamailio" 'BEGIN {
  printf "sipc / kamailio: memory per connection %.2f, CPU per connection %.2f, per REGISTER %.2f, per call %.2f\n",
    a / b, c / d, e / f, g / h }'
