#!/usr/bin/env bash
# Mutation testing (cargo-mutants) of the modules where a silent bug is a security or correctness
# incident: the SQL guard, identity and session binding, the credential cache, the Immuta client,
# PAT / key-pair / OAuth token handling, the audit event and the continuation cursors.
#
#   scripts/mutants.sh                        every module, 120 minutes in all
#   scripts/mutants.sh guard audit            some modules
#   MUTANTS_BUDGET_MIN=30 scripts/mutants.sh  another wall-clock budget (minutes, all modules)
#   scripts/mutants.sh --in-diff my.diff      only mutants in lines the diff touches
#   scripts/mutants.sh --in-place guard       mutate the working tree itself (faster: no copy and
#                                             no rebuild of this crate; do not edit while it runs)
#   scripts/mutants.sh --summary [MODULE...]  print the scores of the last run, run nothing
#
# Each mutant is tested with only the test targets that exercise its module, in two stages: the
# fast ones first (the module's own unit tests, or its one integration target), then the mutants
# those missed (or that timed out) again with every relevant target: all the library's unit tests
# and the slower integration targets (`cargo mutants --iterate`). A mutant is caught when any
# test fails.
# Results go to mutants.out/<module>/mutants.out (stage 2) and mutants.out.old (stage 1); the
# per-module score merges both. Survivors that are equivalent are listed with the reason in
# docs/mutants-equivalent.md. Exit status: 0 when no mutant was missed, 2 when some were, 1 on
# error or when the budget ran out before every module was tested.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_MODULES=(guard audit identity immuta keypair oauth pat broker cursor)
BUDGET_MIN="${MUTANTS_BUDGET_MIN:-120}"
OUT_ROOT="${MUTANTS_OUT:-mutants.out}"
# Per-mutant test timeout (seconds): generous against the slowest target (~30 s on 2 cores) so a
# slow machine is not mistaken for a mutant that hangs.
TEST_TIMEOUT="${MUTANTS_TIMEOUT:-120}"
# Reuse the compiled dependencies: only this crate is rebuilt in cargo-mutants' scratch copy.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

files_of() {
  case "$1" in
    guard) echo "src/guard.rs src/guard/lexical.rs src/guard/words.rs src/guard/classify.rs" ;;
    audit) echo "src/audit.rs" ;;
    identity) echo "src/identity/mod.rs src/identity/jwt.rs src/identity/jwt/jwks.rs src/identity/http.rs src/identity/session.rs" ;;
    immuta) echo "src/immuta/client.rs src/immuta/errors.rs" ;;
    keypair) echo "src/snowflake/keypair.rs" ;;
    oauth) echo "src/databricks/oauth.rs" ;;
    pat) echo "src/snowflake/pat/mod.rs src/snowflake/pat/tokens.rs" ;;
    broker) echo "src/broker.rs" ;;
    cursor) echo "src/cursor.rs" ;;
    *) return 1 ;;
  esac
}

# The integration tests are one binary (`tests/it`) with a module per behaviour, so a target is
# `--test=it` plus test-name filters. libtest filters are substrings and apply to every selected
# target, so a stage that runs all the library's unit tests and some integration modules cannot
# name them positively (`http::` would also pick `e2e_http::`): it skips every other integration
# module instead (skips_except; a library module named like an integration module, i.e. `bridge`,
# is skipped with it).
skips_except() { # wanted integration modules (`name::`)...
  local m
  for m in $(sed -n 's/^mod \([a-z_0-9]*\);$/\1/p' tests/it/main.rs); do
    [ "$m" = support ] && continue
    case " $* " in *" $m:: "*) ;; *) printf -- '--skip %s:: ' "$m" ;; esac
  done
}

# Stage 1: the quick targets and their test-name filters. Stage 2: the mutants stage 1 did not
# catch, with every relevant target.
fast_targets_of() {
  case "$1" in
    # pat: its lifecycle (cache, capacity, eviction) is reached only through the Snowflake path
    # (its own unit tests caught 30 of 143 mutants in the first run), its pure token helpers
    # (dead_tokens, the refusal recognisers) only through its unit tests.
    pat) echo "--lib --test=it" ;;
    # immuta: the client through the emulator, and the unit test of its errors' metric labels.
    immuta) echo "--lib --test=it" ;;
    guard | audit) echo "--test=it" ;;
    *) echo "--lib" ;;
  esac
}
fast_filters_of() {
  case "$1" in
    guard) echo "guard_bypass::" ;;
    audit) echo "check_and_audit::" ;;
    immuta) echo "immuta::errors:: immuta_client::" ;;
    identity) echo "identity::" ;;
    keypair) echo "snowflake::keypair::" ;;
    oauth) echo "databricks::oauth::" ;;
    pat) echo "snowflake::pat:: snowflake_path:: agent_pool::" ;;
    broker) echo "broker::" ;;
    cursor) echo "cursor::" ;;
  esac
}
# Stage 2: all the library's unit tests plus these integration modules. audit has no stage 2: its one target already runs in stage 1.
full_it_modules_of() {
  case "$1" in
    guard) echo "guard_bypass::" ;;
    # identity: also the labels a user or operator reads (`whoami`'s identity_source in e2e_stdio,
    # the auth-failure reasons in metrics_health) and the notifications a session forwards
    # (`notifications/cancelled` in e2e_http).
    identity) echo "hardening_http:: hardening_limits:: config_secrets:: scopes:: identity_proof:: e2e_stdio:: metrics_health:: e2e_http::" ;;
    immuta) echo "immuta_client:: snowflake_path:: databricks_path::" ;;
    # pat: the DAYS_TO_EXPIRY path and its scheduled removal (e2e_snowflake_days_only, ~60 s),
    # the session lookups of fetch_more, remove_all at shutdown and in `check --as`, the capacity
    # estimate (agent_pool), the shared cache (shared_cache, needs redis-server) and the gauges.
    pat) echo "snowflake_path:: agent_pool:: fetch_more:: graceful_shutdown:: check_doctor:: e2e_snowflake_days_only:: shared_cache:: metrics_health::" ;;
    keypair | broker) echo "snowflake_path::" ;;
    oauth) echo "databricks_path::" ;;
    cursor) echo "fetch_more::" ;;
  esac
}
has_stage2() { [ "$1" != audit ]; }
summary() {
  local module="$1" dir="$OUT_ROOT/$1"
  if ! command -v python3 >/dev/null 2>&1; then
    echo "$module: see $dir/mutants.out*/outcomes.json (python3 is needed for the score)"
    return 0
  fi
  python3 - "$module" "$dir" <<'EOF'
import json, os, sys
module, d = sys.argv[1], sys.argv[2]
final = {}
# Stage 1 first, then stage 2 (which re-ran the survivors) overrides.
for sub in ("mutants.out.old", "mutants.out"):
    p = os.path.join(d, sub, "outcomes.json")
    if not os.path.exists(p):
        continue
    for o in json.load(open(p))["outcomes"]:
        m = o["scenario"].get("Mutant") if isinstance(o["scenario"], dict) else None
        if m:
            final[m["name"]] = o["summary"]
if not final:
    print(f"{module:9} no results")
    sys.exit(0)
count = lambda s: sum(1 for v in final.values() if v == s)
caught, missed, unviable, timeout = (count(s) for s in ("CaughtMutant", "MissedMutant", "Unviable", "Timeout"))
viable = caught + missed + timeout
score = 100.0 * (caught + timeout) / viable if viable else 100.0
print(f"{module:9} tested {len(final):3}  caught {caught:3}  missed {missed:3}  unviable {unviable:3}  timeout {timeout:2}  score {score:5.1f}%")
for name, s in sorted(final.items()):
    if s == "MissedMutant":
        print(f"          MISSED {name}")
EOF
}

in_place=()
in_diff=()
summary_only=0
modules=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --in-place) in_place=(--in-place) ;;
    --in-diff) in_diff=(--in-diff "$2"); shift ;;
    --summary) summary_only=1 ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *)
      files_of "$1" >/dev/null || { echo "mutants.sh: unknown module $1 (${ALL_MODULES[*]})" >&2; exit 1; }
      modules+=("$1") ;;
  esac
  shift
done
[ "${#modules[@]}" -gt 0 ] || modules=("${ALL_MODULES[@]}")

if [ "$summary_only" = 1 ]; then
  for m in "${modules[@]}"; do summary "$m"; done
  exit 0
fi

if ! cargo mutants --version >/dev/null 2>&1; then
  echo "mutants.sh: installing cargo-mutants" >&2
  cargo install --locked cargo-mutants
fi

deadline=$(( $(date +%s) + BUDGET_MIN * 60 ))
status=0
run_stage() { # module, stage (1|2), test-name filters (space-separated, or ""), targets...
  local module="$1" stage="$2" filters="$3"; shift 3 # filters: e.g. "guard_bypass::" or "--skip x::"
  local left=$(( deadline - $(date +%s) ))
  if [ "$left" -le 30 ]; then
    echo "mutants.sh: budget of ${BUDGET_MIN} min spent before $module stage $stage" >&2
    return 124
  fi
  local args=(--no-shuffle --timeout "$TEST_TIMEOUT" --build-timeout 900 -o "$OUT_ROOT/$module"
    "${in_place[@]}" "${in_diff[@]}")
  if [ "$stage" = 2 ]; then args+=(--iterate); fi
  for f in $(files_of "$module"); do args+=(-f "$f"); done
  for t in "$@"; do args+=(-C "$t"); done
  if [ -n "$filters" ]; then
    args+=(-- --)
    for f in $filters; do args+=("$f"); done
  fi
  echo "== $module stage $stage: cargo mutants ${args[*]}"
  # SIGINT lets cargo-mutants restore the source tree (--in-place) and write its results.
  local rc=0
  timeout -s INT -k 60 "$left" cargo mutants "${args[@]}" || rc=$?
  # An interrupted --in-place run can leave its last mutant in the tree (seen once): a file that
  # still carries cargo-mutants' marker is restored from git.
  if [ "${#in_place[@]}" -gt 0 ]; then
    for f in $(files_of "$module"); do
      if grep -q '~ changed by cargo-mutants ~' "$f"; then
        echo "mutants.sh: $f still held a mutant; restored from git" >&2
        git checkout -- "$f"
      fi
    done
  fi
  return "$rc"
}

for module in "${modules[@]}"; do
  mkdir -p "$OUT_ROOT/$module"
  rm -rf "$OUT_ROOT/$module/mutants.out" "$OUT_ROOT/$module/mutants.out.old"
  started=$(date +%s)
  # cargo-mutants exits 0 (all caught), 2 (missed), 3 (timeouts), 4 (baseline failed).
  rc=0
  # shellcheck disable=SC2046
  run_stage "$module" 1 "$(fast_filters_of "$module")" $(fast_targets_of "$module") || rc=$?
  if { [ "$rc" = 2 ] || [ "$rc" = 3 ]; } && has_stage2 "$module"; then
    rc=0
    # shellcheck disable=SC2046
    run_stage "$module" 2 "$(skips_except $(full_it_modules_of "$module"))" --lib --test=it || rc=$?
  fi
  case "$rc" in
    0) ;;
    2 | 3) if [ "$status" = 0 ]; then status=2; fi ;;
    *) status=1 ;;
  esac
  echo "== $module: $(( $(date +%s) - started )) s (cargo-mutants exit $rc)"
  summary "$module"
  if [ "$rc" = 124 ]; then break; fi
done

echo "== scores"
for m in "${modules[@]}"; do summary "$m"; done
exit "$status"
