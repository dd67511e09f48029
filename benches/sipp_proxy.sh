#!/usr/bin/env bash
# End-to-end load through the proxy: SIPp UAC -> proxy -> SIPp UAS on
# loopback, with the bench scenarios in tests/data/sipp (proxy 127.0.0.1:5060,
# UAS :5080, UAC :5070). Measured in one run, so the figures compare under the
# same load:
#
#   direct    SIPp UAC -> UAS with no proxy (this machine's ceiling)
#   relay-blocking, relay-tokio
#             a UDP relay that does no SIP work (benches/relay/udp_relay.rs): the
#             kernel and scheduler floor under any proxy's CPU per call, one
#             blocking thread or one task on tokio's multi-thread runtime
#             (not run unless named in TARGETS; the same relay in both modes)
#   sipc      target/release/sipc run examples/bench/MODE.route
#   kamailio  benches/kamailio/MODE.cfg (skipped, saying so, if not installed)
#
# MODE is `stateless` (default), `stateful` (--stateful: transactions,
# record-routing, the same logic in both configs) or `accounting`
# (--accounting: the stateful logic with dialog tracking, a profile per
# source and a call record of every call in SQLite; Kamailio with dialog +
# acc + db_sqlite, its database made fresh from Debian's schema files).
#
# For each: the proxy's CPU-seconds per 1,000 calls at a fixed rate
# (default 1,000 calls/s for 10 s), and the highest rate sustained for 10 s
# with 0 failed calls (stepping up until a step fails).
#
# Usage: benches/sipp_proxy.sh [--stateful|--accounting] [--quick]   (--quick: fewer, shorter steps)
#   env: TARGETS="direct sipc kamailio" (a subset to measure), RATE, SECS, STEPS (empty: no steps),
#        ROUNDS=N (measure the targets N times in turn, without steps, and print each
#        round's ratios and their median: on a shared VM one run's CPU per call moves
#        by a fifth, and alternating rounds puts the proxy and its floor under the
#        same conditions), SIPC_ROUTE (another config for sipc, e.g. to compare a setting),
#        WORKERS=N (both proxies' `-n`: UDP receive workers, default each config's
#        `children`, 2; a fair CPU comparison gives both the same),
#        KAMAILIO_CHILDREN=1 (Kamailio's `-n` alone: one UDP worker does not reorder
#        180/200, which its shared socket does with 2),
#        KAMAILIO_SHM (its `-m`, MB of shared memory; default here 1024)
# Needs: sipp (Debian package sip-tester); kamailio optional. With a relay and
# sipc both measured it also prints sipc's CPU per call over the relay's.
set -euo pipefail
cd "$(dirname "$0")/.."

SIPC_BIN=${SIPC_BIN:-${CARGO_TARGET_DIR:-target}/release/sipc}
RATE=${RATE:-1000}
SECS=${SECS:-10}
STEPS=${STEPS-"1000 2000 3000 4000 5000 6000 8000 10000"}
MODE=stateless
ROUNDS=${ROUNDS:-1}
for arg in "$@"; do
  case "$arg" in
    --quick) SECS=3; STEPS="1000 2000 4000" ;;
    --stateful) MODE=stateful ;;
    --accounting) MODE=accounting ;;
    *) echo "usage: $0 [--stateful|--accounting] [--quick]" >&2; exit 2 ;;
  esac
done
SCEN=tests/data/sipp
SIPC_ROUTE=${SIPC_ROUTE:-examples/bench/$MODE.route}
(( ROUNDS > 1 )) && STEPS=""
KAMAILIO_N=${KAMAILIO_CHILDREN:-${WORKERS:-}}
source benches/common.sh
need "$SCEN/uac.xml" "$SCEN/uas.xml" "$SIPC_ROUTE" "benches/kamailio/$MODE.cfg"

start_uas() {
  sipp -sf "$SCEN/uas.xml" -i 127.0.0.1 -p 5080 -nostdin >"$TMP/uas.log" 2>&1 &
  UAS_PID=$!
  PIDS+=("$UAS_PID")
  sleep 0.5
}

# run_uac TARGET RATE CALLS -> exit status 0 when every call succeeded
run_uac() {
  timeout $(( $3 / $2 + 30 )) sipp -sf "$SCEN/uac.xml" "$1" -i 127.0.0.1 -p 5070 -nostdin \
    -r "$2" -m "$3" -l $(( $2 * 4 )) -recv_timeout 5000 -timeout $(( $3 / $2 + 20 )) \
    -timeout_error >"$TMP/uac.log" 2>&1
}

# The SQLite database benches/kamailio/accounting.cfg writes to, made from
# Debian's schema files (kamailio-sqlite-modules), in WAL mode.
kamailio_acc_db() {
  local db=/tmp/sipc-bench-kamailio-acc.db dir=/usr/share/kamailio/db_sqlite
  rm -f "$db" "$db"-wal "$db"-shm
  python3 - "$db" "$dir/standard-create.sql" "$dir/acc-create.sql" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("PRAGMA journal_mode=WAL")
for f in sys.argv[2:]:
    c.executescript(open(f).read())
c.commit()
PY
}

start_proxy() {
  case "$1" in
    relay-*) "${RELAY_BIN:-${CARGO_TARGET_DIR:-target}/release/examples/udp_relay}" "${1#relay-}" \
               >"$TMP/proxy.log" 2>&1 &
             PROXY_PID=$! ;;
    sipc) local route=$SIPC_ROUTE
          if [[ $MODE == accounting ]]; then
            # Its record store is written beside the config: a fresh one in $TMP.
            cp "$SIPC_ROUTE" "$TMP/bench.route"; rm -f "$TMP"/bench-cdr.db*
            route=$TMP/bench.route
          fi
          "$SIPC_BIN" run "$route" --control "$TMP/ctl.sock" \
            ${WORKERS:+-n "$WORKERS"} >"$TMP/proxy.log" 2>&1 &
          PROXY_PID=$! ;;
    # -m: Kamailio's 64 MB default shared memory runs out under tm at 1,000 calls/s
    # ("could not allocate shared memory"), failing calls; 1 GB measures it working.
    kamailio) [[ $MODE == accounting ]] && kamailio_acc_db
              kamailio -f "benches/kamailio/$MODE.cfg" -m "${KAMAILIO_SHM:-1024}" \
                ${KAMAILIO_N:+-n "$KAMAILIO_N"} \
                -DD -E -w "$TMP" >"$TMP/proxy.log" 2>&1 &
              PROXY_PID=$! ;;
  esac
  PIDS+=("$PROXY_PID")
  sleep 1
}

proxy_cpu_ticks() { # total ticks of the proxy and its children (kamailio forks workers)
  local t=0 p
  for p in $PROXY_PID $(pgrep -P "$PROXY_PID" || true); do t=$(( t + $(ticks "$p") )); done
  echo "$t"
}

measure() { # TARGET_NAME
  local name=$1 target=127.0.0.1:5060 cpu="-" best=0
  [[ $name == direct ]] && target=127.0.0.1:5080
  start_uas
  if [[ $name != direct ]]; then
    start_proxy "$name"
    if ! kill -0 "$PROXY_PID" 2>/dev/null; then
      kill "$UAS_PID" 2>/dev/null || true
      printf '%-14s %22s %18s   (did not start: %s)\n' "$name" - - "$(tail -1 "$TMP/proxy.log")"
      eval "CPU_${name//-/_}=-"
      return
    fi
  fi
  local calls=$(( RATE * SECS ))
  if [[ $name != direct ]]; then
    local t0 t1 note=""
    local rss0 rss1 txns
    rss0=$(awk '/VmRSS/ {print $2}' "/proc/$PROXY_PID/status")
    t0=$(proxy_cpu_ticks)
    run_uac "$target" "$RATE" "$calls" || note="*"
    t1=$(proxy_cpu_ticks)
    rss1=$(awk '/VmRSS/ {print $2}' "/proc/$PROXY_PID/status")
    if [[ $name == sipc && $MODE == accounting ]]; then
      sleep 2 # the writer's last batch
      MEM_NOTE=$("$SIPC_BIN" reload --control "$TMP/ctl.sock" --status | grep -E '^(dialogs|accounting)' | tr '\n' ';')
    fi
    if [[ $name == kamailio && $MODE == accounting ]]; then
      sleep 2
      MEM_NOTE=$(python3 -c "import sqlite3; c = sqlite3.connect('/tmp/sipc-bench-kamailio-acc.db')
print('records written: acc', c.execute('select count(*) from acc').fetchone()[0], 'acc_cdrs', c.execute('select count(*) from acc_cdrs').fetchone()[0])")
    fi
    if [[ $name == sipc && $MODE == stateful ]]; then
      # Transactions still alive (RFC 6026 keeps a 2xx'd INVITE 32 s): memory per transaction.
      txns=$("$SIPC_BIN" reload --control "$TMP/ctl.sock" --status | awk '/^transactions:/ {print $2}')
      MEM_NOTE=$(awk -v a="$rss0" -v b="$rss1" -v t="$txns" 'BEGIN {
        if (t > 0) printf "RSS %d -> %d KiB with %d live transactions: %.0f bytes per transaction", a, b, t, (b - a) * 1024 / t }')
    fi
    # CPU per call is measured whatever happened; `*` marks a run with failed calls
    # (a multi-process proxy reorders 180/200 under load, which SIPp counts as failed).
    cpu=$(awk -v d=$(( t1 - t0 )) -v hz="$hz" -v c="$calls" 'BEGIN { printf "%.3f", d / hz / c * 1000 }')
    FAILS=$(grep -E "Failed call" "$TMP/uac.log" | tail -1 | awk -F'|' '{gsub(/ /, "", $3); print $3}')
    cpu="$cpu$note"
  fi
  for r in $STEPS; do
    # Two tries per step: one stray failure on a shared machine is not a limit.
    if run_uac "$target" "$r" $(( r * SECS )) || run_uac "$target" "$r" $(( r * SECS )); then
      best=$r
    else
      break
    fi
  done
  for p in ${PROXY_PID:-} $UAS_PID; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PROXY_PID=""
  sleep 1
  printf '%-14s %22s %18s   %s\n' "$name" "$cpu" "$best" "${FAILS:+failed calls in the CPU run: $FAILS}"
  [[ -n "${MEM_NOTE:-}" ]] && echo "          $MEM_NOTE"
  FAILS=""
  MEM_NOTE=""
  eval "CPU_${name//-/_}=${cpu%\*}"
}

echo "mode: $MODE"
TARGETS=${TARGETS:-"direct sipc kamailio"}
if [[ $TARGETS == *relay* ]]; then
  [[ -x ${RELAY_BIN:-${CARGO_TARGET_DIR:-target}/release/examples/udp_relay} ]] ||
    cargo build --release --example udp_relay >/dev/null 2>&1
fi
RATIOS=()
for (( round = 1; round <= ROUNDS; round++ )); do
  (( ROUNDS > 1 )) && echo "round $round of $ROUNDS"
  printf '%-14s %22s %18s\n' target "CPU-s/1000 calls@$RATE" "max calls/s (0 fail)"
  [[ $TARGETS == *direct* ]] && measure direct
  [[ $TARGETS == *relay-blocking* ]] && measure relay-blocking
  [[ $TARGETS == *relay-tokio* ]] && measure relay-tokio
  [[ $TARGETS == *sipc* ]] && measure sipc
  for relay in relay_blocking relay_tokio; do
    eval "floor=\${CPU_$relay:-}"
    ratio=$(awk -v s="${CPU_sipc:-}" -v f="$floor" 'BEGIN { if (s+0 > 0 && f+0 > 0) printf "%.2f", s / f }')
    [[ -z $ratio ]] && continue
    echo "sipc ($MODE) CPU per call / ${relay/_/-} CPU per call = $ratio"
    [[ $relay == relay_blocking ]] && RATIOS+=("$ratio")
  done
  if [[ $TARGETS != *kamailio* ]]; then
    :
  elif command -v kamailio >/dev/null; then
    measure kamailio
    awk -v s="${CPU_sipc:-}" -v k="${CPU_kamailio:-}" 'BEGIN {
      if (s+0 > 0 && k+0 > 0) printf "sipc CPU per call / kamailio CPU per call = %.2f (target <= 0.33)\n", s / k }'
  else
    echo "kamailio not installed: no comparison (apt-get install kamailio)"
  fi
done
if (( ${#RATIOS[@]} > 1 )); then
  printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{ r[NR] = $1 } END {
    m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    printf "sipc / relay-blocking over %d rounds: median %.2f (min %.2f, max %.2f)\n", NR, m, r[1], r[NR] }'
fi
