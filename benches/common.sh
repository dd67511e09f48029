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

# CPU ticks (user + system) of a process, and ticks per second.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
