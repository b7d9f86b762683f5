//! Rule: against every Immuta variant a query returns the caller's own rows or one clear error
//! naming the setting to change.
//!
//! End to end over MCP (streamable HTTP, in-process) against every Immuta
//! private-preview variant the sandbox plays: each `immuta_auth` with the
//! default `immuta.auth = "auto"`, each `immuta_poll` with the matching and
//! the mismatching `immuta.poll_id` (a pending vend forces a poll), and each
//! `vend_answer`. For every combination a `query_snowflake` and a
//! `query_databricks` call either return the caller's own rows (row filter
//! and masks) or fail with one clear message naming the setting to change.

use crate::support::*;
use immuta_mcp::config::ImmutaPollId;
use immuta_mcp::sandbox::variants::{
    ImmutaAuthVariant, ImmutaPollVariant, SandboxVariants, VendAnswerVariant,
};
use immuta_mcp::sandbox::{Endpoint, Fault, SandboxOptions, SandboxSettings};
use serde_json::json;

const SF_ORDERS: &str = "SELECT ORDER_ID, REGION, EMAIL FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";
const DB_EMPLOYEES: &str =
    "SELECT employee_id, region, email FROM main.hr.employees ORDER BY employee_id";

async fn start(variants: SandboxVariants, poll_id: ImmutaPollId) -> HttpEnv {
    let options = SandboxOptions {
        settings: SandboxSettings {
            variants,
            ..SandboxSettings::default()
        },
        ..SandboxOptions::default()
    };
    HttpEnv::start_with_options(options, |cfg| {
        if let Some(immuta) = cfg.immuta.as_mut() {
            immuta.poll_id = poll_id;
        }
    })
    .await
}

/// Alice's own view on both platforms: EU rows only, e-mails masked.
async fn alice_sees_her_rows(env: &HttpEnv, pending: bool, what: &str) {
    let alice = env.connect(ALICE).await;
    if pending {
        env.sandbox
            .faults()
            .add(Endpoint::ImmutaVend, Fault::Pending { polls: 1 });
    }
    let sf = Rows::of(&call_ok(&alice, "query_snowflake", json!({"sql": SF_ORDERS})).await);
    assert_eq!(
        sf.strings("ORDER_ID"),
        ["1001", "1002", "1005", "1007"],
        "{what}: Snowflake rows"
    );
    assert!(sf.strings("EMAIL").iter().all(|e| e == "***"), "{what}");
    if pending {
        env.sandbox
            .faults()
            .add(Endpoint::ImmutaVend, Fault::Pending { polls: 1 });
    }
    let db = Rows::of(&call_ok(&alice, "query_databricks", json!({"sql": DB_EMPLOYEES})).await);
    assert_eq!(
        db.strings("employee_id"),
        ["1", "3", "5"],
        "{what}: Databricks rows"
    );
    assert!(db.strings("email").iter().all(|e| e == "***"), "{what}");
    // Every statement ran as a role vended to alice.
    let executed = env.sandbox.state.executed();
    assert!(!executed.is_empty(), "{what}");
    assert!(
        executed.iter().all(|s| s.user == ALICE),
        "{what}: {executed:?}"
    );
    close(alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_immuta_auth_variant_works_with_auth_auto() {
    for auth in [
        ImmutaAuthVariant::Any,
        ImmutaAuthVariant::RawKey,
        ImmutaAuthVariant::BearerKey,
        ImmutaAuthVariant::Exchange,
    ] {
        let variants = SandboxVariants {
            immuta_auth: auth,
            ..SandboxVariants::default()
        };
        let env = start(variants, ImmutaPollId::VendId).await;
        alice_sees_her_rows(&env, false, &format!("immuta_auth = {auth:?}")).await;
        env.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_immuta_poll_variant_works_with_the_matching_poll_id_and_names_it_otherwise() {
    for (poll, matching, mismatching) in [
        (
            ImmutaPollVariant::VendId,
            ImmutaPollId::VendId,
            ImmutaPollId::AgentId,
        ),
        (
            ImmutaPollVariant::AgentId,
            ImmutaPollId::AgentId,
            ImmutaPollId::VendId,
        ),
    ] {
        let variants = SandboxVariants {
            immuta_poll: poll,
            ..SandboxVariants::default()
        };
        let env_ok = start(variants, matching).await;
        alice_sees_her_rows(&env_ok, true, &format!("immuta_poll = {poll:?}")).await;
        assert!(env_ok.sandbox.state.count(Endpoint::ImmutaStatus) >= 1);
        env_ok.shutdown().await;

        let env_bad = start(variants, mismatching).await;
        let alice = env_bad.connect(ALICE).await;
        for (tool, sql) in [
            ("query_snowflake", SF_ORDERS),
            ("query_databricks", DB_EMPLOYEES),
        ] {
            env_bad
                .sandbox
                .faults()
                .add(Endpoint::ImmutaVend, Fault::Pending { polls: 1 });
            let text = call_err(&alice, tool, json!({"sql": sql})).await;
            assert!(
                text.contains(&format!("set immuta.poll_id = \"{}\"", matching.as_str())),
                "{poll:?} with poll_id {}: {text}",
                mismatching.as_str()
            );
            assert!(!text.contains("does not know the user"), "{text}");
        }
        assert!(
            env_bad.sandbox.state.executed().is_empty(),
            "no SQL runs when the vend cannot be polled"
        );
        close(alice).await;
        env_bad.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vend_answer_spelling_works_ready_and_pending() {
    for answer in [
        VendAnswerVariant::Canonical,
        VendAnswerVariant::Ttl,
        VendAnswerVariant::UpperStatus,
        VendAnswerVariant::NoStatus,
    ] {
        let variants = SandboxVariants {
            vend_answer: answer,
            ..SandboxVariants::default()
        };
        let env = start(variants, ImmutaPollId::VendId).await;
        alice_sees_her_rows(&env, false, &format!("vend_answer = {answer:?}")).await;
        env.shutdown().await;
        let env = start(variants, ImmutaPollId::VendId).await;
        alice_sees_her_rows(&env, true, &format!("vend_answer = {answer:?}, pending")).await;
        env.shutdown().await;
    }
}
