# Shared setup of the end-to-end load scripts (sourced): SIPp present, the
# release binary built (cargo skips the work when it is current) unless
# SIPC_BIN names another that exists (a build made otherwise, such as
# benches/pgo_build.sh's), a temp dir, and cleanup of every process started
# (their pids go into PIDS).
command -v sipp >/dev/null || { echo "sipp not found: apt-get install sip-tester" >&2; exit 2; }
# need FILE...: every file a benchmark reads is in the repository; say which is missing.
need() {
  local f
  for f in "$@"; do
    [[ -e $f ]] || { echo "$0: missing $f (run from a full clone of the repository)" >&2; exit 2; }
  done
}
if [[ -z ${SIPC_BIN:-} || ${SIPC_BIN} == "${CARGO_TARGET_DIR:-target}/release/sipc" || ! -x ${SIPC_BIN} ]]; then
  cargo build --release --quiet
fi
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

# start_rtpengine: a real rtpengine (Debian rtpengine-daemon) on loopback with
# no config file, userspace forwarding and its ng socket on 127.0.0.1:22222,
# as examples/nat-rtpengine.route expects; returns once it answers a ping
# (RTPE_PID is its pid).
start_rtpengine() {
  rtpengine --config-file=none --table=-1 --foreground --log-stderr --log-level=3 \
    --interface=127.0.0.1 --listen-ng=127.0.0.1:22222 --port-min=30000 --port-max=40000 \
    --delete-delay=0 >"$TMP/rtpengine.log" 2>&1 &
  RTPE_PID=$!
  PIDS+=("$RTPE_PID")
  local i
  for i in $(seq 50); do
    if printf 'b d7:command4:pinge' | timeout 0.2 socat -T0.2 - UDP:127.0.0.1:22222 2>/dev/null |
      grep -q pong; then
      return
    fi
    sleep 0.1
  done
  sleep 1
}

# CPU ticks (user + system) of a process, and ticks per second.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
