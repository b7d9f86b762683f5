#!/usr/bin/env bash
# Benchmark immuta-mcp against the sandbox on loopback and print one report (issue 7).
#
#   scripts/bench.sh                 quick run (a few minutes)
#   scripts/bench.sh --full          the issue's sizes (1,000,000-row table, more samples)
#   scripts/bench.sh --only 2,5      some sections; see `--help` for every size flag
#   scripts/bench.sh --report notes/bench.md   also write the report to a file
#   scripts/bench.sh --only 6,7,8    issue 11: 1 vs 8 agents (100 Snowflake users), 1 vs 3 replicas
#                                    sharing Redis (needs redis-server), first call with/without pre-warm
#
# Builds the server binary and the harness in release (the first build of the dependency tree
# takes several minutes on 2 cores), then runs target/release/examples/loadgen, which spawns
# target/release/immuta-mcp for the stdio and child-process sections.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin immuta-mcp --example loadgen
exec target/release/examples/loadgen --binary target/release/immuta-mcp "$@"
