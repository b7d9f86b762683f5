//! Rule: one user cannot take another user's share of the platform: limits wait, then fail clearly,
//! before reaching it.
//!
//! Fair limits over MCP: one user's calls beyond `limits.max_calls_per_user`
//! wait, then fail with a tool error naming the limit and the wait, without
//! reaching the platform, while another user's call still runs; the process-wide
//! `limits.max_inflight_statements` is shared by all users; a call that waits
//! gets the slot a finished call frees.
//!
//! Statements are held on the platform by the sandbox's latency fault on
//! Snowflake's submit endpoint; credentials are warmed first, so during a burst
//! each admitted call sends exactly one submit.

use crate::support::*;
use immuta_mcp::config::Config;
use immuta_mcp::sandbox::{Endpoint, Fault};
use serde_json::json;
use std::time::Duration;

const SQL: &str = "SELECT ORDER_ID FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";

fn query() -> serde_json::Value {
    json!({ "sql": SQL })
}

async fn env_with(per_user: usize, server: usize, wait_secs: u64) -> HttpEnv {
    HttpEnv::start_with(move |c: &mut Config| {
        c.limits.max_calls_per_user = per_user;
        c.limits.max_inflight_statements = server;
        c.limits.limit_wait_secs = wait_secs;
    })
    .await
}

/// Alice and Bob connected with warm credentials (so a burst sends only its
/// statements), every later Snowflake submit held 3 s, and the submit count so far.
async fn two_warm_users_on_a_slow_platform(
    per_user: usize,
    server: usize,
) -> (HttpEnv, Client, Client, u64) {
    let env = env_with(per_user, server, 1).await;
    let alice = env.connect(ALICE).await;
    let bob = env.connect(BOB).await;
    call_ok(&alice, "query_snowflake", query()).await;
    call_ok(&bob, "query_snowflake", query()).await;
    let before = submits(&env);
    env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::Latency(Duration::from_secs(3)),
    );
    (env, alice, bob, before)
}

fn submits(env: &HttpEnv) -> u64 {
    env.sandbox.state.count(Endpoint::SnowflakeSubmit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_over_the_limit_is_refused_while_another_user_runs() {
    let (env, alice, bob, before) = two_warm_users_on_a_slow_platform(2, 3).await;
    let (a1, a2, a3, b1) = tokio::join!(
        call(&alice, "query_snowflake", query()),
        call(&alice, "query_snowflake", query()),
        call(&alice, "query_snowflake", query()),
        call(&bob, "query_snowflake", query()),
    );
    let alice_results: Vec<_> = [a1, a2, a3]
        .into_iter()
        .map(|r| r.expect("no protocol error"))
        .collect();
    let refused: Vec<String> = alice_results
        .iter()
        .filter(|r| r.is_error == Some(true))
        .map(text_of)
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "exactly one of alice's three calls: {refused:?}"
    );
    assert!(
        refused[0].contains("limits.max_calls_per_user = 2") && refused[0].contains("waited"),
        "{}",
        refused[0]
    );
    let bob_result = b1.expect("no protocol error");
    assert_ne!(bob_result.is_error, Some(true), "{}", text_of(&bob_result));
    // Two of alice's statements and bob's reached Snowflake; the refused one did not.
    assert_eq!(submits(&env) - before, 3);
    close(alice).await;
    close(bob).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_process_wide_limit_is_shared_by_every_user() {
    let (env, alice, bob, before) = two_warm_users_on_a_slow_platform(2, 2).await;
    let busy = async {
        // Once alice's two statements are on the platform, bob finds no slot.
        eventually("alice's statements are running", || {
            submits(&env) - before == 2
        })
        .await;
        call_err(&bob, "query_snowflake", query()).await
    };
    let (a1, a2, bob_refused) = tokio::join!(
        call_ok(&alice, "query_snowflake", query()),
        call_ok(&alice, "query_snowflake", query()),
        busy,
    );
    drop((a1, a2));
    assert!(
        bob_refused.contains("limits.max_inflight_statements = 2"),
        "{bob_refused}"
    );
    assert_eq!(
        submits(&env) - before,
        2,
        "bob's refused call reached Snowflake"
    );
    // The slots are free again.
    env.sandbox.faults().clear();
    call_ok(&bob, "query_snowflake", query()).await;
    close(alice).await;
    close(bob).await;
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_that_waits_runs_when_a_slot_is_freed() {
    let env = env_with(1, 10, 30).await;
    let alice = env.connect(ALICE).await;
    call_ok(&alice, "query_snowflake", query()).await;
    env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::Latency(Duration::from_millis(500)),
    );
    let (a, b) = tokio::join!(
        call_ok(&alice, "query_snowflake", query()),
        call_ok(&alice, "query_snowflake", query()),
    );
    assert_eq!(Rows::of(&a).rows.len(), Rows::of(&b).rows.len());
    close(alice).await;
    env.shutdown().await;
}

#[tokio::test]
async fn a_per_user_limit_above_the_process_limit_is_a_config_error() {
    let env = HttpEnv::start().await;
    let mut cfg = env.sandbox.client_config();
    cfg.limits.max_calls_per_user = 10;
    cfg.limits.max_inflight_statements = 5;
    let err = cfg.validate().expect_err("refused").to_string();
    assert!(err.contains("limits.max_calls_per_user"), "{err}");
    env.shutdown().await;
}
