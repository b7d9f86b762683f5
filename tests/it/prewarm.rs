//! Rule: a session's pre-warm shares the first query's vend and mint instead of adding its own.
//!
//! Pre-warm (`cache.prewarm`, on by default): an MCP session's initialize
//! starts the user's vend and credential mint in the background, single-flighted
//! with the first query, so that query needs no vend of its own.

use crate::support::{ALICE, BOB, HttpEnv, call_ok, close};
use immuta_mcp::sandbox::{Counter, Endpoint, Fault};
use serde_json::json;
use std::time::Duration;

const ORDERS_SQL: &str = "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_warms_the_users_credentials_so_the_first_query_vends_nothing() {
    let env = HttpEnv::start_with(|cfg| {
        cfg.cache.prewarm = true;
        cfg.databricks = None;
    })
    .await;
    let client = env.connect(ALICE).await;
    // No tool was called: the session's initialize alone vends and mints.
    crate::support::eventually("the session's credentials are warmed", || {
        env.counter(Counter::PatsCreated) == 1
    })
    .await;
    let vends = env.sandbox.state.count(Endpoint::ImmutaVend);
    assert_eq!(env.counter(Counter::VendsCreated), 1);
    call_ok(&client, "query_snowflake", json!({ "sql": ORDERS_SQL })).await;
    assert_eq!(
        env.sandbox.state.count(Endpoint::ImmutaVend),
        vends,
        "the first query sent no vend request of its own"
    );
    assert_eq!(env.counter(Counter::PatsCreated), 1);
    let executed = env.sandbox.state.executed();
    let mine: Vec<_> = executed.iter().filter(|s| s.sql == ORDERS_SQL).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].user, ALICE);
    close(client).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_right_after_initialize_shares_the_warming_vend() {
    let env = HttpEnv::start_with(|cfg| {
        cfg.cache.prewarm = true;
        cfg.databricks = None;
    })
    .await;
    // A slow vend: the query arrives while the warm-up is still waiting for it.
    env.sandbox.faults().add(
        Endpoint::ImmutaVend,
        Fault::Latency(Duration::from_millis(400)),
    );
    let client = env.connect(BOB).await;
    call_ok(&client, "query_snowflake", json!({ "sql": ORDERS_SQL })).await;
    assert_eq!(
        env.sandbox.state.count(Endpoint::ImmutaVend),
        1,
        "one vend, shared"
    );
    assert_eq!(env.counter(Counter::PatsCreated), 1);
    close(client).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_prewarm_off_initialize_sends_nothing_upstream() {
    let env = HttpEnv::start_with(|cfg| cfg.cache.prewarm = false).await;
    let client = env.connect(ALICE).await;
    // Give a background warm-up (if one were started) time to reach the sandbox.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.sandbox.state.count(Endpoint::ImmutaVend), 0);
    call_ok(&client, "query_snowflake", json!({ "sql": ORDERS_SQL })).await;
    assert_eq!(
        env.sandbox.state.count(Endpoint::ImmutaVend),
        1,
        "the query vends itself"
    );
    close(client).await;
    env.shutdown().await;
}
