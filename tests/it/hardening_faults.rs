//! Rule: every upstream fault ends in the caller's own correct view or one clear error without a
//! secret, never in another identity's result.
//!
//! Fault matrix: every injected upstream fault, on Immuta and on both
//! platforms, driven through the server core ([`GovernedServer::call`] built
//! by `app::build_platforms` + `app::build_server` from the sandbox's client
//! configuration, with `limits.request_timeout_secs = 1`,
//! `limits.retry_attempts = 3` and `immuta.pending_timeout_secs = 1` for the
//! vend that never becomes ready, 30 elsewhere).
//!
//! One row per (platform, endpoint, fault) with the outcome a user should
//! see: the call succeeds after bounded retries, or it fails with a clear
//! tool error (`isError: true`, naming the service and the problem, no
//! secret). For every row, on a fresh sandbox: the injected fault really
//! fired, no statement ran for anyone but the caller or under anything but a
//! vended role, a successful answer is the caller's own view (row filter and
//! masks), and after `faults().clear()` the same server answers a clean
//! follow-up call correctly. The matrix summary prints under `--nocapture`.

use crate::support::hardening::{
    ALICE, BOB, CAROL, args, check_no_secret, check_view, foreign_statements, readable_sql,
    result_set, result_text, tool,
};
use futures::StreamExt;
use immuta_mcp::app;
use immuta_mcp::identity::VerifiedUser;
use immuta_mcp::query::{CallContext, ProgressSink};
use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::{
    Counter, Endpoint, Fault, Fixture, Sandbox, SandboxOptions, SandboxSettings, SandboxState,
};
use immuta_mcp::server::{GovernedServer, UserSource};
use rmcp::model::CallToolResult;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Upper bound of any single tool call in this file (the slowest row needs ~5 s).
const CALL_BOUND: Duration = Duration::from_secs(45);
/// `limits.request_timeout_secs` in the test configuration.
const REQUEST_TIMEOUT_SECS: u64 = 1;
/// `limits.retry_attempts` in the test configuration.
const ATTEMPTS: u32 = 3;
/// Rows run at once (each on its own sandbox).
const PARALLEL_ROWS: usize = 3;

/// Per-row configuration changes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tweak {
    None,
    /// `statement_timeout_secs = 1` on both platforms.
    StatementTimeout1s,
    /// Snowflake partitions of 3 rows, Databricks chunks of 2 rows.
    SmallPages,
}

/// What happens to the upstreams during the row's call.
#[derive(Clone, Debug)]
enum Scenario {
    /// Optionally warm the caller's credential with a clean call, then add
    /// these faults and make one call.
    Faults {
        warm: bool,
        faults: Vec<(Endpoint, Fault)>,
    },
    /// Warm, hold the next statement for `polls` polls, and expire every PAT /
    /// OAuth token as soon as the statement is reported running.
    ExpireMidQuery { polls: u32 },
    /// `pat_limit_per_user = limit`; `cycles` × (call, expire every credential).
    PatChurn { limit: usize, cycles: u32 },
    /// `pat_limit_per_user = 1` and alice holds the only live PAT when the caller asks.
    PatLimitHeldByOther,
    /// `pat_limit_per_user = 1`; alice's PAT took the slot and then expired upstream
    /// (`expire_credentials`) before the caller asks.
    PatLimitHeldByExpired,
}

#[derive(Clone, Debug)]
enum Expect {
    Succeeds,
    /// `isError: true` and the text contains every substring of `has` and none of `lacks`.
    ToolError {
        has: &'static [&'static str],
        lacks: &'static [&'static str],
    },
}

/// A tool error whose text contains every one of `has`.
fn err(has: &'static [&'static str]) -> Expect {
    Expect::ToolError { has, lacks: &[] }
}

#[derive(Clone, Debug)]
struct Row {
    platform: Platform,
    what: String,
    user: &'static str,
    tweak: Tweak,
    scenario: Scenario,
    expect: Expect,
}

fn status(code: u16, times: u32) -> Fault {
    Fault::Status {
        status: code,
        retry_after: None,
        times,
    }
}

fn limited(retry_after: u64, times: u32) -> Fault {
    Fault::Status {
        status: 429,
        retry_after: Some(retry_after),
        times,
    }
}

fn reset(times: u32) -> Fault {
    Fault::ConnectionReset { times }
}

fn lost(times: u32) -> Fault {
    Fault::LostAnswer { times }
}

/// Latency well inside `limits.request_timeout_secs` (a fifth of it): the
/// request must still succeed on a loaded machine.
fn latency_within_timeout() -> Fault {
    Fault::Latency(Duration::from_millis(REQUEST_TIMEOUT_SECS * 1000 / 5))
}

/// Latency past `limits.request_timeout_secs` (one and a half times it): the
/// request cannot answer in time however fast the machine is.
fn latency_past_timeout() -> Fault {
    Fault::Latency(Duration::from_millis(REQUEST_TIMEOUT_SECS * 1500))
}

/// A vend that stays pending for more polls than any timeout allows.
const NEVER_READY: u32 = u32::MAX;

/// `immuta.pending_timeout_secs` of a row: 1 s where the vend never becomes ready (the timeout is
/// the behaviour under test), 30 s elsewhere, so a vend held for 2 polls on a loaded machine is not
/// mistaken for one that never comes.
fn pending_timeout_secs(scenario: &Scenario) -> u64 {
    match scenario {
        Scenario::Faults { faults, .. }
            if faults
                .iter()
                .any(|(_, f)| matches!(f, Fault::Pending { polls } if *polls == NEVER_READY)) =>
        {
            1
        }
        _ => 30,
    }
}

fn pending(polls: u32) -> Fault {
    Fault::Pending { polls }
}

fn describe(fault: &Fault) -> String {
    match fault {
        Fault::Latency(d) => format!("latency {} ms", d.as_millis()),
        Fault::Status {
            status,
            retry_after: Some(s),
            times,
        } => format!("{status} Retry-After {s} x{times}"),
        Fault::Status { status, times, .. } => format!("{status} x{times}"),
        Fault::ConnectionReset { times } => format!("reset x{times}"),
        Fault::Pending { polls } => format!("pending {polls} polls"),
        Fault::LostAnswer { times } => format!("answer lost after execution x{times}"),
        Fault::Pass { times } => format!("pass x{times}"),
    }
}

fn endpoint_name(ep: Endpoint) -> String {
    format!("{ep:?}")
}

/// A row that injects `faults` (cold or warm) and expects `expect`.
fn fault_row(
    platform: Platform,
    user: &'static str,
    warm: bool,
    faults: Vec<(Endpoint, Fault)>,
    expect: Expect,
) -> Row {
    let what = faults
        .iter()
        .map(|(ep, f)| format!("{} {}", endpoint_name(*ep), describe(f)))
        .collect::<Vec<_>>()
        .join(" + ");
    Row {
        platform,
        what: format!("{}{what}", if warm { "" } else { "cold: " }),
        user,
        tweak: Tweak::None,
        scenario: Scenario::Faults { warm, faults },
        expect,
    }
}

fn with_tweak(mut row: Row, tweak: Tweak) -> Row {
    row.tweak = tweak;
    row
}

/// A statement that never finishes within `statement_timeout_secs = 1`; with
/// `cancel_fails`, the client's cancel request fails too.
///
/// After a failed cancel the message must not claim the statement was
/// cancelled: Snowflake stops it itself (the timeout is sent with it), which
/// the message says; on Databricks nothing else stops it, so the message says
/// it may still be running and names it.
fn statement_timeout_row(platform: Platform, cancel_fails: bool) -> Row {
    let (submit, cancel) = match platform {
        Platform::Snowflake => (Endpoint::SnowflakeSubmit, Endpoint::SnowflakeCancel),
        Platform::Databricks => (Endpoint::DatabricksSubmit, Endpoint::DatabricksCancel),
    };
    let mut faults = vec![(submit, pending(1_000_000))];
    let (user, expect) = if !cancel_fails {
        let has: &'static [&'static str] = match platform {
            Platform::Snowflake => &["Snowflake", "did not finish within 1 s"],
            Platform::Databricks => &["Databricks", "did not finish within 1 s"],
        };
        (BOB, err(has))
    } else {
        faults.push((cancel, status(503, ATTEMPTS)));
        match platform {
            Platform::Snowflake => (
                ALICE,
                Expect::ToolError {
                    has: &[
                        "Snowflake",
                        "did not finish within 1 s",
                        "the cancel request failed",
                        "statement timeout",
                    ],
                    lacks: &["was cancelled"],
                },
            ),
            Platform::Databricks => (
                ALICE,
                Expect::ToolError {
                    has: &[
                        "Databricks",
                        "did not finish within 1 s",
                        "may still be running (statement ",
                    ],
                    lacks: &["was cancelled"],
                },
            ),
        }
    };
    with_tweak(
        fault_row(platform, user, true, faults, expect),
        Tweak::StatementTimeout1s,
    )
}

/// Snowflake, `pat_limit_per_user = 1`: alice's PAT holds the slot and then
/// expires upstream; bob's call should reclaim the dead token's slot.
fn pat_limit_held_by_expired_row() -> Row {
    Row {
        platform: Platform::Snowflake,
        what: "PAT limit 1 held by another user's PAT that expired upstream".into(),
        user: BOB,
        tweak: Tweak::None,
        scenario: Scenario::PatLimitHeldByExpired,
        expect: OK,
    }
}

const OK: Expect = Expect::Succeeds;

/// The whole matrix.
fn matrix() -> Vec<Row> {
    use Endpoint::*;
    use Platform::{Databricks as Db, Snowflake as Sf};
    let mut rows = Vec::new();

    // Immuta, reached through each platform's path (cold: the vend happens in the call).
    for p in [Sf, Db] {
        rows.extend([
            fault_row(p, ALICE, false, vec![(ImmutaVend, limited(1, 2))], OK),
            fault_row(
                p,
                BOB,
                false,
                vec![(ImmutaVend, limited(0, ATTEMPTS))],
                err(&["Immuta", "429"]),
            ),
            // The vend POST is not idempotent: after a 500 or a broken answer it
            // may have created a vend, so it is not sent again.
            fault_row(
                p,
                CAROL,
                false,
                vec![(ImmutaVend, status(500, 1))],
                err(&["Immuta", "HTTP 500", "not repeated"]),
            ),
            fault_row(p, ALICE, false, vec![(ImmutaVend, status(503, 2))], OK),
            fault_row(
                p,
                BOB,
                false,
                vec![(ImmutaVend, status(503, ATTEMPTS))],
                err(&["Immuta", "503"]),
            ),
            fault_row(
                p,
                ALICE,
                false,
                vec![(ImmutaVend, reset(1))],
                err(&["Immuta", "unavailable", "not repeated"]),
            ),
            fault_row(
                p,
                CAROL,
                false,
                vec![(ImmutaVend, lost(1))],
                err(&["Immuta", "after the request was sent", "not repeated"]),
            ),
            fault_row(
                p,
                BOB,
                false,
                vec![(ImmutaVend, latency_within_timeout())],
                OK,
            ),
            fault_row(
                p,
                ALICE,
                false,
                vec![(ImmutaVend, latency_past_timeout())],
                err(&["Immuta", "timed out"]),
            ),
            fault_row(p, BOB, false, vec![(ImmutaVend, pending(2))], OK),
            fault_row(
                p,
                ALICE,
                false,
                vec![(ImmutaVend, pending(NEVER_READY))],
                err(&["Immuta", "still pending"]),
            ),
            fault_row(
                p,
                CAROL,
                false,
                vec![(ImmutaVend, pending(2)), (ImmutaStatus, status(503, 1))],
                OK,
            ),
            fault_row(
                p,
                BOB,
                false,
                vec![(ImmutaVend, pending(2)), (ImmutaStatus, reset(ATTEMPTS))],
                err(&["Immuta", "unavailable"]),
            ),
        ]);
    }

    // Snowflake SQL API.
    rows.extend([
        fault_row(Sf, ALICE, true, vec![(SnowflakeSubmit, limited(1, 2))], OK),
        fault_row(
            Sf,
            BOB,
            true,
            vec![(SnowflakeSubmit, limited(0, ATTEMPTS))],
            err(&["Snowflake", "429"]),
        ),
        fault_row(Sf, CAROL, true, vec![(SnowflakeSubmit, status(500, 1))], OK),
        fault_row(
            Sf,
            ALICE,
            true,
            vec![(SnowflakeSubmit, status(500, ATTEMPTS))],
            err(&["Snowflake", "500"]),
        ),
        fault_row(Sf, BOB, true, vec![(SnowflakeSubmit, status(503, 2))], OK),
        fault_row(Sf, ALICE, true, vec![(SnowflakeSubmit, reset(2))], OK),
        fault_row(
            Sf,
            CAROL,
            true,
            vec![(SnowflakeSubmit, reset(ATTEMPTS))],
            err(&["Snowflake", "unavailable"]),
        ),
        fault_row(
            Sf,
            BOB,
            true,
            vec![(SnowflakeSubmit, latency_within_timeout())],
            OK,
        ),
        fault_row(
            Sf,
            ALICE,
            true,
            vec![(SnowflakeSubmit, latency_past_timeout())],
            err(&["Snowflake", "timed out"]),
        ),
        // Cold: the faults hit the PAT creation (ALTER USER ... ADD PAT) first.
        fault_row(Sf, BOB, false, vec![(SnowflakeSubmit, status(503, 2))], OK),
        fault_row(Sf, CAROL, false, vec![(SnowflakeSubmit, limited(1, 1))], OK),
        fault_row(Sf, ALICE, false, vec![(SnowflakeSubmit, reset(1))], OK),
        fault_row(
            Sf,
            BOB,
            false,
            vec![(SnowflakeSubmit, status(500, ATTEMPTS))],
            err(&["Snowflake", "500"]),
        ),
        // Slow and failing polls of a running statement.
        fault_row(Sf, ALICE, true, vec![(SnowflakeSubmit, pending(4))], OK),
        fault_row(
            Sf,
            BOB,
            true,
            vec![
                (SnowflakeSubmit, pending(2)),
                (SnowflakeStatus, status(503, 2)),
            ],
            OK,
        ),
        fault_row(
            Sf,
            CAROL,
            true,
            vec![(SnowflakeSubmit, pending(2)), (SnowflakeStatus, reset(1))],
            OK,
        ),
        fault_row(
            Sf,
            ALICE,
            true,
            vec![
                (SnowflakeSubmit, pending(2)),
                (SnowflakeStatus, limited(0, ATTEMPTS)),
            ],
            err(&["Snowflake", "429"]),
        ),
        fault_row(
            Sf,
            BOB,
            true,
            vec![
                (SnowflakeSubmit, pending(2)),
                (SnowflakeStatus, latency_past_timeout()),
            ],
            err(&["Snowflake", "timed out"]),
        ),
        // Result partitions (3 rows each: bob's 8 rows are 3 partitions).
        with_tweak(
            fault_row(Sf, BOB, true, vec![(SnowflakeStatus, status(503, 1))], OK),
            Tweak::SmallPages,
        ),
        with_tweak(
            fault_row(
                Sf,
                BOB,
                true,
                vec![(SnowflakeStatus, reset(ATTEMPTS))],
                err(&["Snowflake", "unavailable"]),
            ),
            Tweak::SmallPages,
        ),
        statement_timeout_row(Sf, false),
        statement_timeout_row(Sf, true),
        // The statement was accepted before the PAT died: it may have run, so
        // it is not submitted again (a write would be applied twice).
        Row {
            platform: Sf,
            what: "PAT expires while the statement runs".into(),
            user: ALICE,
            tweak: Tweak::None,
            scenario: Scenario::ExpireMidQuery { polls: 3 },
            expect: err(&["Snowflake", "rejected the PAT", "not submitted again"]),
        },
        Row {
            platform: Sf,
            what: "PAT limit 2, 4 x (call, expire every PAT)".into(),
            user: BOB,
            tweak: Tweak::None,
            scenario: Scenario::PatChurn {
                limit: 2,
                cycles: 4,
            },
            expect: OK,
        },
        Row {
            platform: Sf,
            what: "PAT limit 1 held by another user's idle PAT (evicted)".into(),
            user: BOB,
            tweak: Tweak::None,
            scenario: Scenario::PatLimitHeldByOther,
            expect: OK,
        },
        pat_limit_held_by_expired_row(),
    ]);

    // Databricks OAuth and Statement Execution API.
    rows.extend([
        fault_row(Db, ALICE, false, vec![(DatabricksToken, limited(1, 2))], OK),
        fault_row(
            Db,
            BOB,
            false,
            vec![(DatabricksToken, status(503, ATTEMPTS))],
            err(&["Databricks", "503"]),
        ),
        fault_row(
            Db,
            CAROL,
            false,
            vec![(DatabricksToken, status(500, 1))],
            OK,
        ),
        fault_row(Db, ALICE, false, vec![(DatabricksToken, reset(1))], OK),
        fault_row(
            Db,
            BOB,
            false,
            vec![(DatabricksToken, latency_past_timeout())],
            err(&["Databricks", "timed out"]),
        ),
        fault_row(Db, ALICE, true, vec![(DatabricksSubmit, limited(1, 2))], OK),
        fault_row(
            Db,
            BOB,
            true,
            vec![(DatabricksSubmit, limited(0, ATTEMPTS))],
            err(&["Databricks", "429"]),
        ),
        // The submit is not idempotent: after a 500 or a broken answer the
        // statement may have run, so it is not submitted again.
        fault_row(
            Db,
            CAROL,
            true,
            vec![(DatabricksSubmit, status(500, 1))],
            err(&["Databricks", "HTTP 500", "not repeated"]),
        ),
        fault_row(
            Db,
            ALICE,
            true,
            vec![(DatabricksSubmit, status(503, ATTEMPTS))],
            err(&["Databricks", "503"]),
        ),
        fault_row(
            Db,
            BOB,
            true,
            vec![(DatabricksSubmit, reset(1))],
            err(&["Databricks", "unavailable", "not repeated"]),
        ),
        fault_row(
            Db,
            CAROL,
            true,
            vec![(DatabricksSubmit, lost(1))],
            err(&["Databricks", "after the request was sent", "not repeated"]),
        ),
        fault_row(
            Db,
            ALICE,
            true,
            vec![(DatabricksSubmit, latency_within_timeout())],
            OK,
        ),
        fault_row(
            Db,
            BOB,
            true,
            vec![(DatabricksSubmit, latency_past_timeout())],
            err(&["Databricks", "timed out"]),
        ),
        fault_row(Db, ALICE, true, vec![(DatabricksSubmit, pending(4))], OK),
        fault_row(
            Db,
            BOB,
            true,
            vec![
                (DatabricksSubmit, pending(2)),
                (DatabricksStatus, status(503, 2)),
            ],
            OK,
        ),
        fault_row(
            Db,
            CAROL,
            true,
            vec![(DatabricksSubmit, pending(2)), (DatabricksStatus, reset(1))],
            OK,
        ),
        fault_row(
            Db,
            ALICE,
            true,
            vec![
                (DatabricksSubmit, pending(2)),
                (DatabricksStatus, limited(0, ATTEMPTS)),
            ],
            err(&["Databricks", "429"]),
        ),
        fault_row(
            Db,
            BOB,
            true,
            vec![
                (DatabricksSubmit, pending(2)),
                (DatabricksStatus, latency_past_timeout()),
            ],
            err(&["Databricks", "timed out"]),
        ),
        // Result chunks (2 rows each: bob's 6 rows are 3 chunks).
        with_tweak(
            fault_row(Db, BOB, true, vec![(DatabricksChunk, status(503, 1))], OK),
            Tweak::SmallPages,
        ),
        with_tweak(
            fault_row(
                Db,
                BOB,
                true,
                vec![(DatabricksChunk, reset(ATTEMPTS))],
                err(&["Databricks", "unavailable"]),
            ),
            Tweak::SmallPages,
        ),
        statement_timeout_row(Db, false),
        statement_timeout_row(Db, true),
        Row {
            platform: Db,
            what: "OAuth token expires while the statement runs".into(),
            user: ALICE,
            tweak: Tweak::None,
            scenario: Scenario::ExpireMidQuery { polls: 3 },
            expect: err(&["Databricks", "rejected the token"]),
        },
    ]);
    rows
}

fn verified(user: &str) -> VerifiedUser {
    VerifiedUser::configured(user)
}

/// Expires every credential the first time a statement is reported running.
struct ExpireWhenRunning {
    state: Arc<SandboxState>,
    fired: AtomicBool,
}

impl ProgressSink for ExpireWhenRunning {
    fn progress(&self, _step: u32, message: &str) {
        if message.contains("statement") && !self.fired.swap(true, Ordering::SeqCst) {
            self.state.expire_credentials();
        }
    }
}

/// A fresh sandbox and the server core built from its client configuration.
struct Harness {
    sandbox: Sandbox,
    server: GovernedServer,
    platform: Platform,
    /// Users who made a call in this row.
    callers: Vec<&'static str>,
}

impl Harness {
    async fn start(row: &Row) -> Result<Harness, String> {
        let mut settings = SandboxSettings::default();
        match row.scenario {
            Scenario::PatChurn { limit, .. } => settings.pat_limit_per_user = limit,
            Scenario::PatLimitHeldByOther | Scenario::PatLimitHeldByExpired => {
                settings.pat_limit_per_user = 1
            }
            _ => {}
        }
        if row.tweak == Tweak::SmallPages {
            settings.partition_rows = 3;
            settings.databricks_chunk_rows = 2;
        }
        let sandbox = Sandbox::start(SandboxOptions {
            fixture: Fixture::demo(),
            settings,
        })
        .await
        .map_err(|e| format!("sandbox: {e}"))?;
        let mut cfg = sandbox.client_config();
        cfg.limits.request_timeout_secs = REQUEST_TIMEOUT_SECS;
        cfg.limits.retry_attempts = ATTEMPTS;
        if let Some(immuta) = cfg.immuta.as_mut() {
            immuta.pending_timeout_secs = pending_timeout_secs(&row.scenario);
        }
        if row.tweak == Tweak::StatementTimeout1s {
            if let Some(s) = cfg.snowflake.as_mut() {
                s.statement_timeout_secs = 1;
            }
            if let Some(d) = cfg.databricks.as_mut() {
                d.statement_timeout_secs = 1;
            }
        }
        let platforms = app::build_platforms(&cfg).map_err(|e| format!("platforms: {e}"))?;
        let server = app::build_server(&cfg, &platforms, UserSource::PerRequest);
        Ok(Harness {
            sandbox,
            server,
            platform: row.platform,
            callers: Vec::new(),
        })
    }

    fn state(&self) -> &Arc<SandboxState> {
        &self.sandbox.state
    }

    /// One bounded tool call as `user`, with `ctx` (or a plain one).
    async fn call(
        &mut self,
        user: &'static str,
        ctx: Option<CallContext>,
    ) -> Result<CallToolResult, String> {
        self.callers.push(user);
        let tool = tool(self.platform);
        let ctx = ctx.unwrap_or_else(|| CallContext::new(user, tool));
        let caller = verified(user);
        let call = self
            .server
            .call(&caller, tool, args(readable_sql(self.platform, user)), ctx);
        let result = match tokio::time::timeout(CALL_BOUND, call).await {
            Err(_) => return Err(format!("no answer within {} s", CALL_BOUND.as_secs())),
            Ok(Err(e)) => return Err(format!("JSON-RPC error instead of a tool result: {e:?}")),
            Ok(Ok(r)) => r,
        };
        check_no_secret(&result, &self.sandbox)?;
        Ok(result)
    }

    /// The result is `user`'s own view, and the statement it names ran for `user`.
    fn check_success(&self, user: &str, result: &CallToolResult) -> Result<(), String> {
        let rs = result_set(result)?;
        check_view(self.platform, user, &rs)?;
        let ran = self
            .state()
            .executed()
            .into_iter()
            .find(|s| s.statement_id == rs.statement_id)
            .ok_or_else(|| format!("statement {} is not in the sandbox log", rs.statement_id))?;
        if ran.user != user {
            return Err(format!(
                "statement {} of {user} ran for {}",
                rs.statement_id, ran.user
            ));
        }
        Ok(())
    }

    /// A clean call by `user` that must succeed.
    async fn call_ok(&mut self, user: &'static str) -> Result<(), String> {
        let result = self.call(user, None).await?;
        self.check_success(user, &result)
    }

    /// Every statement the sandbox ran, ran for one of this row's callers, as a vended role.
    fn check_identities(&self) -> Result<(), String> {
        let executed = self.state().executed();
        let mut foreign = Vec::new();
        for user in [ALICE, BOB, CAROL] {
            let mine: Vec<_> = executed
                .iter()
                .filter(|s| s.user == user)
                .cloned()
                .collect();
            if !mine.is_empty() && !self.callers.contains(&user) {
                foreign.push(format!("{} statement(s) ran for {user}", mine.len()));
            }
            foreign.extend(foreign_statements(&mine, self.platform, user));
        }
        foreign.extend(
            executed
                .iter()
                .filter(|s| s.platform != self.platform)
                .map(|s| format!("{:?} ran on {}", s.sql, s.platform)),
        );
        foreign.extend(
            executed
                .iter()
                .filter(|s| ![ALICE, BOB, CAROL].contains(&s.user.as_str()))
                .map(|s| format!("{:?} ran for {}", s.sql, s.user)),
        );
        if foreign.is_empty() {
            Ok(())
        } else {
            Err(format!("foreign identity: {}", foreign.join("; ")))
        }
    }

    fn counts(&self) -> HashMap<Endpoint, u64> {
        use Endpoint::*;
        [
            ImmutaVend,
            ImmutaStatus,
            SnowflakeSubmit,
            SnowflakeStatus,
            SnowflakeCancel,
            DatabricksToken,
            DatabricksSubmit,
            DatabricksStatus,
            DatabricksChunk,
            DatabricksCancel,
        ]
        .into_iter()
        .map(|ep| (ep, self.state().count(ep)))
        .collect()
    }
}

/// The injected faults were actually met by the call (requests counted since `before`).
fn check_fired(
    faults: &[(Endpoint, Fault)],
    before: &HashMap<Endpoint, u64>,
    after: &HashMap<Endpoint, u64>,
) -> Result<(), String> {
    let delta = |ep: Endpoint| after[&ep] - before[&ep];
    for (ep, fault) in faults {
        let (seen_at, needed) = match fault {
            Fault::Status { times, .. }
            | Fault::ConnectionReset { times }
            | Fault::LostAnswer { times }
            | Fault::Pass { times } => (*ep, u64::from((*times).min(ATTEMPTS))),
            Fault::Latency(_) => (*ep, 1),
            Fault::Pending { .. } => match ep {
                Endpoint::ImmutaVend => (Endpoint::ImmutaStatus, 1),
                Endpoint::SnowflakeSubmit => (Endpoint::SnowflakeStatus, 1),
                Endpoint::DatabricksSubmit => (Endpoint::DatabricksStatus, 1),
                other => (*other, 1),
            },
        };
        if delta(seen_at) < needed {
            return Err(format!(
                "fault {} on {ep:?} did not fire: {} request(s) to {seen_at:?}, expected at least {needed}",
                describe(fault),
                delta(seen_at)
            ));
        }
    }
    Ok(())
}

/// Compare one call's result with the row's expectation; returns what happened.
fn judge(
    h: &Harness,
    user: &str,
    expect: &Expect,
    result: &CallToolResult,
) -> Result<String, String> {
    match expect {
        Expect::Succeeds => {
            h.check_success(user, result)?;
            Ok("succeeded".into())
        }
        Expect::ToolError { has, lacks } => {
            let text = result_text(result);
            if result.is_error != Some(true) {
                return Err(format!("expected a tool error, got a result: {text:.200}"));
            }
            if let Some(missing) = has.iter().find(|s| !text.contains(*s)) {
                return Err(format!("tool error lacks {missing:?}: {text}"));
            }
            if let Some(wrong) = lacks.iter().find(|s| text.contains(*s)) {
                return Err(format!("tool error says {wrong:?}: {text}"));
            }
            Ok(format!("tool error: {text}"))
        }
    }
}

/// Run one row on a fresh sandbox; Ok(what happened) or Err(why the row failed).
async fn run_row(row: Row) -> (Row, Result<String, String>) {
    let outcome = run_row_inner(&row).await;
    (row, outcome)
}

async fn run_row_inner(row: &Row) -> Result<String, String> {
    let mut h = Harness::start(row).await?;
    let user = row.user;
    let outcome = match &row.scenario {
        Scenario::Faults { warm, faults } => {
            if *warm {
                h.call_ok(user).await.map_err(|e| format!("warm-up: {e}"))?;
            }
            let before = h.counts();
            for (ep, fault) in faults {
                h.sandbox.faults().add(*ep, fault.clone());
            }
            let result = h.call(user, None).await?;
            check_fired(faults, &before, &h.counts())?;
            judge(&h, user, &row.expect, &result)?
        }
        Scenario::ExpireMidQuery { polls } => {
            h.call_ok(user).await.map_err(|e| format!("warm-up: {e}"))?;
            let submit = match row.platform {
                Platform::Snowflake => Endpoint::SnowflakeSubmit,
                Platform::Databricks => Endpoint::DatabricksSubmit,
            };
            h.sandbox.faults().add(submit, pending(*polls));
            let sink = Arc::new(ExpireWhenRunning {
                state: h.state().clone(),
                fired: AtomicBool::new(false),
            });
            let mut ctx = CallContext::new(user, tool(row.platform));
            ctx.progress = Some(sink.clone() as Arc<dyn ProgressSink>);
            let result = h.call(user, Some(ctx)).await?;
            if !sink.fired.load(Ordering::SeqCst) {
                return Err("the statement was never reported running".into());
            }
            let sql = readable_sql(row.platform, user);
            let runs = h.state().executed().iter().filter(|s| s.sql == sql).count() - 1;
            if runs > 1 {
                return Err(format!("the statement ran {runs}x: it was submitted again"));
            }
            format!(
                "{} (the statement ran {runs}x)",
                judge(&h, user, &row.expect, &result)?
            )
        }
        Scenario::PatChurn { cycles, .. } => {
            let mut last = String::new();
            for cycle in 1..=*cycles {
                let result = h.call(user, None).await?;
                last = judge(&h, user, &row.expect, &result)
                    .map_err(|e| format!("cycle {cycle}: {e}"))?;
                h.state().expire_credentials();
            }
            format!("{cycles} cycles: {last}")
        }
        Scenario::PatLimitHeldByOther => {
            h.call_ok(ALICE)
                .await
                .map_err(|e| format!("alice takes the slot: {e}"))?;
            let result = h.call(user, None).await?;
            let verdict = judge(&h, user, &row.expect, &result)?;
            let removed = h.state().counter(Counter::PatsRemoved);
            if removed != 1 {
                return Err(format!(
                    "alice's idle PAT should have been removed once, removed {removed}"
                ));
            }
            verdict
        }
        Scenario::PatLimitHeldByExpired => {
            h.call_ok(ALICE)
                .await
                .map_err(|e| format!("alice takes the slot: {e}"))?;
            h.state().expire_credentials();
            let result = h.call(user, None).await?;
            judge(&h, user, &row.expect, &result)?
        }
    };
    h.check_identities()?;

    // The server stays up: clear the faults and make a clean call. After an
    // eviction, alice's next call vends and mints again (evicting bob's idle PAT).
    h.sandbox.faults().clear();
    let follow_up = match row.scenario {
        Scenario::PatLimitHeldByOther => ALICE,
        _ => user,
    };
    h.call_ok(follow_up)
        .await
        .map_err(|e| format!("follow-up call after clearing the faults: {e}"))?;
    h.check_identities()?;
    Ok(outcome)
}

fn expect_name(e: &Expect) -> String {
    match e {
        Expect::Succeeds => "Succeeds".into(),
        Expect::ToolError { has, lacks: [] } => {
            format!("ToolError({})", has.join(", "))
        }
        Expect::ToolError { has, lacks } => {
            format!("ToolError({}; not {})", has.join(", "), lacks.join(", "))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix_succeeds_or_fails_clearly_and_never_crosses_identities() {
    let rows = matrix();
    let tried = rows.len();
    let results: Vec<(Row, Result<String, String>)> = futures::stream::iter(rows)
        .map(run_row)
        .buffer_unordered(PARALLEL_ROWS)
        .collect()
        .await;
    let mut results = results;
    results.sort_by(|a, b| {
        (a.0.platform.as_str(), &a.0.what).cmp(&(b.0.platform.as_str(), &b.0.what))
    });

    println!("\nfault matrix (platform | user | fault | expected -> outcome)");
    let mut failed = Vec::new();
    for (row, outcome) in &results {
        let (mark, detail) = match outcome {
            Ok(what) => ("PASS", what.clone()),
            Err(why) => ("FAIL", why.clone()),
        };
        let detail: String = detail.chars().take(160).collect();
        println!(
            "{mark} {:<10} | {:<17} | {:<62} | {} -> {detail}",
            row.platform.as_str(),
            row.user,
            row.what,
            expect_name(&row.expect),
        );
        if outcome.is_err() {
            failed.push(format!("{} {}: {detail}", row.platform.as_str(), row.what));
        }
    }
    let passed = tried - failed.len();
    println!(
        "fault matrix: {tried} cases tried, {passed} passed, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {tried} fault cases failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Run one row on its own and fail on any deviation.
async fn assert_row(row: Row) {
    let (row, outcome) = run_row(row).await;
    if let Err(why) = outcome {
        panic!("{} {}: {why}", row.platform.as_str(), row.what);
    }
}

#[tokio::test]
async fn statement_timeout_error_names_the_platform() {
    assert_row(statement_timeout_row(Platform::Snowflake, false)).await;
    assert_row(statement_timeout_row(Platform::Databricks, false)).await;
}

#[tokio::test]
async fn failed_cancel_after_a_timeout_is_not_reported_as_cancelled() {
    assert_row(statement_timeout_row(Platform::Databricks, true)).await;
    assert_row(statement_timeout_row(Platform::Snowflake, true)).await;
}

#[tokio::test]
async fn pat_limit_reclaims_a_token_that_expired_upstream() {
    assert_row(pat_limit_held_by_expired_row()).await;
}
