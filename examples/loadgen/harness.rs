//! What the benchmark sections share: the in-process stack and its MCP clients
//! ([`stack`]), the query probes and user fixtures ([`probe`], [`fixtures`]), one
//! "N users × M calls" level ([`load`]), the direct HTTP path to the emulators
//! ([`direct`]), upstream request counters ([`upstream`]), child processes and
//! `/proc` readings ([`process`]), a `redis-server` ([`redis_server`]), percentiles
//! ([`stats`]) and the Markdown report ([`report`]). No module here measures
//! anything on its own; the sections decide what to time and what to compare.

use std::time::Duration;

pub(crate) mod direct;
pub(crate) mod fixtures;
pub(crate) mod load;
pub(crate) mod probe;
pub(crate) mod process;
// One file with the tests (`tests/it/support/redis_server.rs`), so both start Redis the same way.
#[path = "../../tests/it/support/redis_server.rs"]
pub(crate) mod redis_server;
pub(crate) mod report;
pub(crate) mod stack;
pub(crate) mod stats;
pub(crate) mod upstream;

/// No single call may take longer than this (the harness reports it as an error).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Starting a child process and its first MCP handshake.
pub(crate) const SPAWN_TIMEOUT: Duration = Duration::from_secs(60);
