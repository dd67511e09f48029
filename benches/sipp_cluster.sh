#!/usr/bin/env bash
# The cluster against a lone node, end to end, in one run:
#
#   cluster  two nodes of benches/cluster/node.route (udp 127.0.0.2:5060 and
#            127.0.0.3:5060) sharing their location table in PostgreSQL
#            (127.0.0.1:5432, written through, followed by LISTEN/NOTIFY)
#   single   one node (127.0.0.4:5060), its table in SQLite, written behind
#
# For each:
#   - the highest REGISTER rate with 0 failed registrations for SECS seconds:
#     for the cluster, two SIPps (benches/cluster/reg.xml), each with its own
#     half of the users and half of the rate, one per node;
#   - calls to USERS registered users (all registered through the first node)
#     through the other node at CALL_RATE for CALLS calls: the node's
#     CPU-seconds per 1,000 calls, the 99th percentile of its request route's
#     run time (lookup included; the upper bound of the histogram bucket of
#     sipc_route_duration_seconds it falls in), and the 99th percentile of
#     INVITE -> 200 as SIPp sees it (lookup, relay to the SIPp UAS on
#     127.0.0.1:5080 and back; SIPp counts whole milliseconds).
# The cluster's figures over the single node's are printed last.
#
# Usage: benches/sipp_cluster.sh [--quick]
#   env: USERS (10000), SECS (10), STEPS, CALL_RATE (500), CALLS (10000),
#        PG (postgres://postgres:postgres@127.0.0.1:5432/postgres)
set -euo pipefail
cd "$(dirname "$0")/.."

SIPC_BIN=${SIPC_BIN:-${CARGO_TARGET_DIR:-target}/release/sipc}
USERS=${USERS:-10000}
SECS=${SECS:-10}
STEPS=${STEPS:-"4000 8000 12000 16000 20000 24000 32000"}
CALL_RATE=${CALL_RATE:-500}
CALLS=${CALLS:-10000}
PG=${PG:-postgres://postgres:postgres@127.0.0.1:5432/postgres}
if [[ "${1:-}" == "--quick" ]]; then SECS=4; STEPS="1000 2000 4000"; CALLS=3000; fi
source benches/common.sh
need benches/cluster/node.route benches/cluster/reg.xml benches/cluster/uac.xml tests/data/sipp/uas.xml
command -v curl >/dev/null || { echo "curl not found: apt-get install curl" >&2; exit 2; }
command -v psql >/dev/null || { echo "psql not found: apt-get install postgresql-client" >&2; exit 2; }
psql -qtA "$PG" -c 'select 1' >/dev/null || { echo "no PostgreSQL at $PG" >&2; exit 2; }
TABLE=bench_location_$$

# Users: user<i>, contact at the SIPp UAS; halves for the two nodes.
{ echo SEQUENTIAL; for ((i = 0; i < USERS; i++)); do echo "user$i;127.0.0.1:5080"; done; } >"$TMP/users.csv"
{ echo SEQUENTIAL; for ((i = 0; i < USERS; i += 2)); do echo "user$i;127.0.0.1:5080"; done; } >"$TMP/half0.csv"
{ echo SEQUENTIAL; for ((i = 1; i < USERS; i += 2)); do echo "user$i;127.0.0.1:5080"; done; } >"$TMP/half1.csv"

NODE_PIDS=()
start_node() { # IP DEFINES...
  local ip=$1
  shift
  "$SIPC_BIN" run benches/cluster/node.route -D "NODE=$ip" "$@" --control "$TMP/$ip.sock" --no-watch \
    >"$TMP/$ip.log" 2>&1 &
  NODE_PIDS+=($!)
  PIDS+=($!)
  for _ in $(seq 1 100); do
    "$SIPC_BIN" reload --status --control "$TMP/$ip.sock" 2>/dev/null | grep -q generation && return
    sleep 0.1
  done
  echo "node $ip did not start: $(tail -3 "$TMP/$ip.log")" >&2
  exit 1
}
stop_nodes() {
  for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  NODE_PIDS=()
}
node_ticks() { ticks "$1"; }

# reg IP CSV RATE COUNT PORT -> 0 when every registration succeeded
reg() {
  timeout $(( $4 / $3 + 30 )) sipp -sf benches/cluster/reg.xml "$1:5060" -i 127.0.0.1 -p "$5" -nostdin \
    -inf "$2" -r "$3" -m "$4" -l $(( $3 * 4 )) -recv_timeout 5000 \
    -timeout $(( $4 / $3 + 20 )) -timeout_error >"$TMP/sipp-reg-$5.log" 2>&1
}

# max_rate NAME IPS... -> the highest step with no failure, REGISTERs spread
# over the IPs (each its half of the users at half the rate)
max_rate() {
  local best=0 r ok
  for r in $STEPS; do
    ok=1
    if (( $# == 1 )); then
      reg "$1" "$TMP/users.csv" "$r" $(( r * SECS )) 5070 || ok=0
    else
      reg "$1" "$TMP/half0.csv" $(( r / 2 )) $(( r * SECS / 2 )) 5070 & local a=$!
      reg "$2" "$TMP/half1.csv" $(( r / 2 )) $(( r * SECS / 2 )) 5071 & local b=$!
      wait $a || ok=0
      wait $b || ok=0
    fi
    (( ok )) && best=$r || break
  done
  echo "$best"
}

# route_buckets IP -> "le count" lines of request_route's histogram
route_buckets() {
  curl -s "http://$1:9090/metrics" | awk '/^sipc_route_duration_seconds_bucket/ && /route="request_route"/ {
    match($0, /le="[^"]*"/); print substr($0, RSTART + 4, RLENGTH - 5), $NF }'
}

# route_p99 BEFORE AFTER -> the bucket bound (µs) the 99th percentile of
# the runs between the two scrapes falls under (buckets are cumulative)
route_p99() {
  join <(sort "$1") <(sort "$2") | awk '{ print $1, $3 - $2 }' | sort -g |
    awk '{ le[NR] = $1; v[NR] = $2 } END {
      t = v[NR]; for (i = 1; i < NR; i++) if (v[i] >= 0.99 * t) { printf "%g", le[i] * 1e6; exit }
      print "inf" }'
}

# calls IP NODE_PID -> "CPU-s/1000 calls  SIPp p99 ms  route p99 µs" for calls through IP
calls() {
  sipp -sf tests/data/sipp/uas.xml -i 127.0.0.1 -p 5080 -nostdin -bg >/dev/null 2>&1
  sleep 0.5
  local uas
  uas=$(pgrep -n -f "sipp -sf tests/data/sipp/uas.xml" || true)
  [[ -n $uas ]] && PIDS+=("$uas")
  local t0 t1
  route_buckets "$1" >"$TMP/before"
  t0=$(node_ticks "$2")
  (cd "$TMP" && timeout $(( CALLS / CALL_RATE + 60 )) sipp -sf "$OLDPWD/benches/cluster/uac.xml" "$1:5060" \
    -i 127.0.0.1 -p 5072 -nostdin -inf "$TMP/users.csv" -r "$CALL_RATE" -m "$CALLS" \
    -l $(( CALL_RATE * 4 )) -recv_timeout 5000 -trace_rtt -rtt_freq 1 >"$TMP/sipp-uac.log" 2>&1) ||
    echo "  (some calls failed: $(grep -m1 -i 'failed' "$TMP/sipp-uac.log" || true))" >&2
  t1=$(node_ticks "$2")
  route_buckets "$1" >"$TMP/after"
  [[ -n $uas ]] && kill "$uas" 2>/dev/null || true
  local p99
  p99=$(cat "$TMP"/uac_*_rtt.csv 2>/dev/null | awk -F';' 'NR > 1 && $2 != "" { print $2 }' | sort -n |
    awk '{ v[NR] = $1 } END { if (NR) printf "%.2f", v[int(NR * 0.99)] ; else print "-" }')
  rm -f "$TMP"/uac_*_rtt.csv
  awk -v d=$(( t1 - t0 )) -v hz="$hz" -v c="$CALLS" -v p="$p99" -v r="$(route_p99 "$TMP/before" "$TMP/after")" \
    'BEGIN { printf "%.3f %s %s", d / hz / c * 1000, p, r }'
}

psql -qtA "$PG" -c "DROP TABLE IF EXISTS $TABLE" >/dev/null
trap 'psql -qtA "$PG" -c "DROP TABLE IF EXISTS $TABLE; DELETE FROM sipc_schema WHERE name = '"'"'$TABLE'"'"'" >/dev/null 2>&1 || true; cleanup' EXIT

printf '%-30s %15s %17s %13s %15s\n' target "max REGISTER/s" "CPU-s/1000 calls" "INV->200 p99" "route p99 <="

# The cluster: registrations spread, then all through A, calls through B.
start_node 127.0.0.2 -D "DB=$PG" -D "TABLE=$TABLE"
start_node 127.0.0.3 -D "DB=$PG" -D "TABLE=$TABLE"
c_max=$(max_rate 127.0.0.2 127.0.0.3)
reg 127.0.0.2 "$TMP/users.csv" 1000 "$USERS" 5070 || echo "  (registration pass had failures)" >&2
sleep 1
read -r c_cpu c_p99 c_route <<<"$(calls 127.0.0.3 "${NODE_PIDS[1]}")"
rows=$(psql -qtA "$PG" -c "SELECT count(*) FROM $TABLE")
printf '%-30s %15s %17s %13s %15s\n' "cluster: 2 nodes, PostgreSQL" "$c_max" "$c_cpu" "$c_p99 ms" "$c_route µs"
stop_nodes

# The lone node.
start_node 127.0.0.4 -D SQLITE -D "DB_PATH=$TMP/single.db"
s_max=$(max_rate 127.0.0.4)
reg 127.0.0.4 "$TMP/users.csv" 1000 "$USERS" 5070 || echo "  (registration pass had failures)" >&2
sleep 1
read -r s_cpu s_p99 s_route <<<"$(calls 127.0.0.4 "${NODE_PIDS[0]}")"
printf '%-30s %15s %17s %13s %15s\n' "single node: SQLite" "$s_max" "$s_cpu" "$s_p99 ms" "$s_route µs"
stop_nodes

echo "shared table rows after the run: $rows (users: $USERS)"
awk -v cm="$c_max" -v sm="$s_max" -v cc="$c_cpu" -v sc="$s_cpu" -v cp="$c_p99" -v sp="$s_p99" 'BEGIN {
  if (sm > 0) printf "cluster / single: max REGISTER rate %.2f", cm / sm
  if (sc > 0) printf ", CPU per call %.2f", cc / sc
  if (sp > 0) printf ", INVITE->200 p99 %.2f", cp / sp
  print ""
}'
