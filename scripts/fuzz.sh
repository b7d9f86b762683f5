#!/usr/bin/env bash
# Fuzz the SQL guard and both result decoders (targets: guard, snowflake_decode, databricks_decode).
#
#   scripts/fuzz.sh                  every target for $FUZZ_SECONDS (default 60) seconds each
#   scripts/fuzz.sh guard            one target
#   FUZZ_STABLE=1 scripts/fuzz.sh    force the stable-toolchain loop
#
# With a nightly toolchain, cargo-fuzz (libFuzzer, coverage-guided) runs the targets in fuzz/
# (installed with `cargo install cargo-fuzz` if missing). Without nightly, or when cargo-fuzz cannot
# be installed or built, the stable fallback examples/fuzz_stable.rs runs the same target bodies
# (fuzz/src/targets.rs) in a bounded mutation loop seeded from fuzz/corpus/. Either way the run is
# bounded in time and the script exits non-zero when an input made a target panic.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
ALL_TARGETS=(guard snowflake_decode databricks_decode)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

run_stable() {
  echo "fuzz.sh: stable mutation loop (examples/fuzz_stable.rs), ${SECONDS_PER_TARGET}s per target"
  local args=()
  for t in "${TARGETS[@]}"; do args+=(--target "$t"); done
  cargo build --release --example fuzz_stable
  exec target/release/examples/fuzz_stable --seconds "$SECONDS_PER_TARGET" "${args[@]}"
}

# The corpus folders are not in git: fill them (built-in seeds + SQL and answers captured from the
# sandbox) the first time.
for t in "${TARGETS[@]}"; do
  if [ -z "$(ls -A "fuzz/corpus/$t" 2>/dev/null)" ]; then
    echo "fuzz.sh: filling fuzz/corpus from the sandbox (fuzz_stable --capture)"
    cargo build --release --example fuzz_stable
    target/release/examples/fuzz_stable --capture --seconds 0
    break
  fi
done

if [ "${FUZZ_STABLE:-0}" = "1" ]; then run_stable; fi
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: no nightly toolchain (cargo-fuzz needs one)"
  run_stable
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  if ! cargo install cargo-fuzz --locked; then
    echo "fuzz.sh: cargo-fuzz could not be installed"
    run_stable
  fi
fi
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "fuzz.sh: cargo +nightly fuzz run $t (${SECONDS_PER_TARGET}s)"
  # The checked-in corpus is read-only input; new inputs go to a scratch directory.
  scratch="fuzz/target/corpus-$t"
  mkdir -p "$scratch"
  dict=()
  if [ -f "fuzz/dictionaries/$t.dict" ]; then dict=(-dict="fuzz/dictionaries/$t.dict"); fi
  if ! cargo +nightly fuzz run "$t" "$scratch" "fuzz/corpus/$t" -- -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 "${dict[@]}"; then
    echo "fuzz.sh: $t found a crash (see fuzz/artifacts/$t/)"
    status=1
  fi
done
exit "$status"
