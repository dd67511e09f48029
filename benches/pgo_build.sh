#!/usr/bin/env bash
# A release build of sipc optimised with profiles of its own SIP load
# (profile-guided optimisation: rustc's -Cprofile-generate and -Cprofile-use).
#
#   1. build an instrumented sipc (target dir $BASE/pgo-generate);
#   2. run it through the loads the end-to-end benchmarks drive, a few
#      seconds each: stateful and stateless calls (benches/sipp_proxy.sh),
#      calls through rtpengine with and without the media relay
#      (benches/sipp_media.sh) and REGISTER with digest authentication
#      (benches/sipp_register.sh);
#   3. merge the counts with the llvm-profdata of rustc's own LLVM version;
#   4. build sipc again with them (target dir $BASE/pgo-use) and print the
#      binary's path.
#
# The compiler then lays out the per-message path (parsing, validation,
# routing, forwarding) by how often each branch was taken and inlines by
# it: on the stateful benchmark route about a sixth fewer instructions per
# call and about a tenth less CPU (docs/architecture.md, "Built with
# profiles of its load", has the figures and how they were measured).
# Every benchmark script takes the binary as SIPC_BIN, e.g.
#
#   SIPC_BIN=$(benches/pgo_build.sh | tail -1) benches/sipp_proxy.sh --stateful
#
# The profiles describe the code they were taken from, so the script
# builds both binaries from the working tree each time it runs (two release
# builds, about 15 minutes on 2 cores, and about a minute of load).
#
# Needs: sipp (sip-tester), rtpengine (rtpengine-daemon), and llvm-profdata
# of the LLVM major version `rustc -vV` prints: Debian's llvm-N package
# (llvm-profdata-N) or rustup's llvm-tools component.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${CARGO_TARGET_DIR:-target}
[[ $BASE == /* ]] || BASE=$PWD/$BASE
HOST=$(rustc -vV | sed -n 's/^host: //p')
LLVM_MAJOR=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
PROFDATA=""
for c in "llvm-profdata-$LLVM_MAJOR" \
  "$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata" \
  llvm-profdata; do
  command -v "$c" >/dev/null 2>&1 || continue
  # A plain llvm-profdata serves only if it is of rustc's LLVM version: an
  # older one cannot read the newer raw format.
  if [[ $c == llvm-profdata ]] && ! "$c" --version | grep -q "LLVM version $LLVM_MAJOR\."; then
    continue
  fi
  PROFDATA=$c
  break
done
if [[ -z $PROFDATA ]]; then
  echo "llvm-profdata for LLVM $LLVM_MAJOR not found: apt-get install llvm-$LLVM_MAJOR" \
    "(or rustup component add llvm-tools)" >&2
  exit 2
fi
for tool in sipp rtpengine; do
  command -v "$tool" >/dev/null || { echo "$tool not found (sip-tester, rtpengine-daemon)" >&2; exit 2; }
done

RAW=$BASE/pgo-profiles
rm -rf "$RAW"
mkdir -p "$RAW"
# With --target, RUSTFLAGS reach only what is built for the target (sipc and
# its dependencies), not build scripts or proc macros, which would otherwise
# be instrumented too and write their own counts while building.

echo "== instrumented build" >&2
CARGO_TARGET_DIR=$BASE/pgo-generate RUSTFLAGS="-Cprofile-generate=$RAW" \
  cargo build --release --bin sipc --target "$HOST" >&2

echo "== training load" >&2
# The benchmark scripts run the binary SIPC_BIN names (and build no other);
# every sipc process they start writes its counts on exit.
export SIPC_BIN=$BASE/pgo-generate/$HOST/release/sipc
export LLVM_PROFILE_FILE=$RAW/sipc-%p-%m.profraw
TARGETS=sipc STEPS="" SECS=5 benches/sipp_proxy.sh --stateful >&2
TARGETS=sipc STEPS="" SECS=5 benches/sipp_proxy.sh >&2
TARGETS="sipc-nomedia sipc" SECS=5 benches/sipp_media.sh >&2
TARGETS=sipc STEPS=1000 SECS=5 USERS=2000 benches/sipp_register.sh >&2
unset SIPC_BIN LLVM_PROFILE_FILE

"$PROFDATA" merge -o "$RAW/sipc.profdata" "$RAW"/*.profraw
echo "== optimised build" >&2
# Functions the profile does not cover (never run under the load, or from
# crates built without instrumentation) are optimised as usual; saying so
# for each of them is noise.
CARGO_TARGET_DIR=$BASE/pgo-use \
  RUSTFLAGS="-Cprofile-use=$RAW/sipc.profdata -Cllvm-args=-pgo-warn-missing-function=false" \
  cargo build --release --bin sipc --target "$HOST" >&2
echo "$BASE/pgo-use/$HOST/release/sipc"
