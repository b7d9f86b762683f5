//! Rule: a cursor pages only its own user's finished result, and a foreign, altered or expired
//! cursor reaches no upstream.
//!
//! `fetch_more` end to end over MCP (streamable HTTP) against the sandbox:
//! a truncated result carries `next_cursor`; walking it returns every row
//! exactly once, in order, read from the finished statement with the user's
//! own cached credential (no new statement, vend or mint); a cursor used by
//! another user, altered, or expired is refused before any upstream request;
//! a credential the platform no longer accepts ends the walk with "run the
//! query again"; and the emulators refuse another user's credential for a
//! finished statement's result.

use crate::support::*;
use immuta_mcp::app;
use immuta_mcp::config::Config;
use immuta_mcp::identity::VerifiedUser;
use immuta_mcp::query::{CallContext, GovernedQuery, PageRequest, QueryError, QueryRequest};
use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::fixture::{Fixture, GrantSpec};
use immuta_mcp::sandbox::state::{Counter, SandboxSettings};
use immuta_mcp::sandbox::{Endpoint, Sandbox, SandboxOptions};
use immuta_mcp::server::UserSource;
use serde_json::{Value, json};
use std::sync::Arc;
use tracing::Level;

const SF_TABLE: &str = "BENCH.PUBLIC.EVENTS";
const DB_TABLE: &str = "main.bench.events";
/// Rows per Snowflake partition / Databricks chunk: alice's 20 rows span 3 of them.
const PAGE_ROWS: usize = 7;

/// The demo fixture plus a 60-row table on each platform; alice sees the 20 EU rows.
fn options() -> SandboxOptions {
    let mut fixture = Fixture::demo()
        .with_generated_table(Platform::Snowflake, SF_TABLE, 60)
        .with_generated_table(Platform::Databricks, DB_TABLE, 60);
    for user in &mut fixture.users {
        for (table, filter) in [(SF_TABLE, "REGION = 'EU'"), (DB_TABLE, "region = 'EU'")] {
            user.grants.push(GrantSpec {
                table: table.into(),
                row_filter: (user.id == ALICE).then(|| filter.into()),
                masked_columns: vec![],
            });
        }
    }
    SandboxOptions {
        fixture,
        settings: SandboxSettings {
            partition_rows: PAGE_ROWS,
            databricks_chunk_rows: PAGE_ROWS,
            ..SandboxSettings::default()
        },
    }
}

async fn start(tweak: impl FnOnce(&mut Config)) -> HttpEnv {
    HttpEnv::start_with_options(options(), tweak).await
}

fn query_tool(platform: Platform) -> &'static str {
    match platform {
        Platform::Snowflake => "query_snowflake",
        Platform::Databricks => "query_databricks",
    }
}

fn sql(platform: Platform) -> String {
    match platform {
        Platform::Snowflake => format!("SELECT ID, REGION FROM {SF_TABLE} ORDER BY ID"),
        Platform::Databricks => format!("SELECT id, region FROM {DB_TABLE} ORDER BY id"),
    }
}

fn structured(result: &rmcp::model::CallToolResult) -> Value {
    result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("no structuredContent in {}", text_of(result)))
}

fn cursor_of(result: &rmcp::model::CallToolResult) -> Option<String> {
    structured(result)["next_cursor"]
        .as_str()
        .map(str::to_string)
}

fn ids(result: &rmcp::model::CallToolResult) -> Vec<i64> {
    Rows::of(result)
        .column("id")
        .iter()
        .map(|v| v.as_i64().expect("integer id"))
        .collect()
}

/// The first page of `platform`'s query for `client`: truncated, with a cursor.
async fn first_page(
    client: &Client,
    platform: Platform,
    max_rows: u64,
) -> (rmcp::model::CallToolResult, String) {
    let result = call_ok(
        client,
        query_tool(platform),
        json!({"sql": sql(platform), "max_rows": max_rows}),
    )
    .await;
    assert_eq!(structured(&result)["truncated"], true);
    let cursor =
        cursor_of(&result).expect("a truncated result the platform still holds has a cursor");
    (result, cursor)
}

/// Walk a result with `fetch_more` to its end; page sizes cycle through
/// `sizes` so pages end inside partitions/chunks, exactly at their ends, and
/// span several of them.
async fn walk(env: &HttpEnv, platform: Platform) {
    let alice = env.connect(ALICE).await;
    let everything = call_ok(
        &alice,
        query_tool(platform),
        json!({"sql": sql(platform), "max_rows": 1000}),
    )
    .await;
    let expected = ids(&everything);
    assert_eq!(expected.len(), 20, "alice sees the 20 EU rows");
    assert_eq!(
        cursor_of(&everything),
        None,
        "a complete result has no cursor"
    );
    assert_eq!(structured(&everything)["truncated"], false);

    let (first, mut cursor) = first_page(&alice, platform, 3).await;
    let columns = structured(&first)["columns"].clone();
    let statement = structured(&first)["statement_id"].clone();
    assert!(
        text_of(&first).contains("fetch_more"),
        "{}",
        text_of(&first)
    );
    let mut seen = ids(&first);
    let submits_before = env.sandbox.state.count(Endpoint::SnowflakeSubmit)
        + env.sandbox.state.count(Endpoint::DatabricksSubmit);
    let tokens_before = env.sandbox.state.count(Endpoint::DatabricksToken);
    let vends_before = env.counter(Counter::VendsCreated);
    let executed_before = env.sandbox.state.executed().len();
    let mut pages = 1;
    for size in [4u64, 7, 3, 4, 4, 4].iter().cycle() {
        let page = call_ok(
            &alice,
            "fetch_more",
            json!({"cursor": cursor, "max_rows": size}),
        )
        .await;
        pages += 1;
        let s = structured(&page);
        assert_eq!(
            s["columns"], columns,
            "every page has the first page's columns"
        );
        assert_eq!(s["statement_id"], statement);
        assert_eq!(s["platform"], platform.as_str());
        let rows = ids(&page);
        assert_eq!(s["row_count"], rows.len());
        assert!(!rows.is_empty() && rows.len() as u64 <= *size, "{rows:?}");
        seen.extend(rows);
        match cursor_of(&page) {
            Some(next) => {
                assert_eq!(s["truncated"], true);
                assert_ne!(next, cursor);
                cursor = next;
            }
            None => {
                assert_eq!(s["truncated"], false, "the last page is complete");
                assert!(s.get("next_cursor").is_none_or(Value::is_null));
                break;
            }
        }
        assert!(pages < 20, "the walk ends");
    }
    assert_eq!(seen, expected, "every row exactly once, in order");
    assert!(pages >= 5, "{pages} pages");
    // Pages were read from the finished statement: nothing ran again, nothing was vended or minted.
    assert_eq!(
        env.sandbox.state.count(Endpoint::SnowflakeSubmit)
            + env.sandbox.state.count(Endpoint::DatabricksSubmit),
        submits_before,
        "no statement was submitted (or PAT minted) for a page"
    );
    assert_eq!(
        env.sandbox.state.count(Endpoint::DatabricksToken),
        tokens_before
    );
    assert_eq!(env.counter(Counter::VendsCreated), vends_before);
    assert_eq!(env.sandbox.state.executed().len(), executed_before);
    close(alice).await;
}

#[tokio::test]
async fn snowflake_pages_walk_to_the_end_from_the_statement_partitions() {
    let env = start(|_| {}).await;
    walk(&env, Platform::Snowflake).await;
    // The pages came from `?partition=N` of alice's statement, partitions 1 and 2 included.
    let partitions: Vec<String> = env
        .sandbox
        .state
        .seen(Endpoint::SnowflakeStatus)
        .iter()
        .filter_map(|r| r.query_param("partition"))
        .collect();
    for p in ["1", "2"] {
        assert!(partitions.iter().any(|q| q == p), "{partitions:?}");
    }
    env.shutdown().await;
}

#[tokio::test]
async fn databricks_pages_walk_to_the_end_from_the_statement_chunks() {
    let env = start(|_| {}).await;
    walk(&env, Platform::Databricks).await;
    // The platform kept more than max_rows + 1 rows (limits.max_continuation_rows)...
    let submits = env.sandbox.state.seen(Endpoint::DatabricksSubmit);
    let limits: Vec<u64> = submits
        .iter()
        .filter_map(|r| r.json()["row_limit"].as_u64())
        .collect();
    assert!(limits.iter().all(|l| *l == 10_000), "{limits:?}");
    // ... and the pages came from its chunks.
    assert!(env.sandbox.state.count(Endpoint::DatabricksChunk) >= 2);
    env.shutdown().await;
}

#[tokio::test]
async fn without_continuation_rows_databricks_gives_no_cursor() {
    let env = start(|c| c.limits.max_continuation_rows = 0).await;
    let alice = env.connect(ALICE).await;
    let result = call_ok(
        &alice,
        "query_databricks",
        json!({"sql": sql(Platform::Databricks), "max_rows": 3}),
    )
    .await;
    assert_eq!(structured(&result)["truncated"], true);
    assert_eq!(cursor_of(&result), None, "the platform kept nothing more");
    let submit = env.sandbox.state.seen(Endpoint::DatabricksSubmit);
    assert_eq!(submit.last().unwrap().json()["row_limit"], 4);
    close(alice).await;
    env.shutdown().await;
}

/// `fetch_more` with `cursor` must fail with a message containing `expect`
/// and send nothing upstream.
async fn refused_without_upstream(env: &HttpEnv, client: &Client, cursor: &str, expect: &str) {
    let before = env.sandbox.state.total_requests();
    let message = call_err(client, "fetch_more", json!({"cursor": cursor})).await;
    assert!(message.contains(expect), "{message}");
    assert!(
        message.contains("run the query"),
        "says what to do: {message}"
    );
    assert_eq!(
        env.sandbox.state.total_requests(),
        before,
        "a refused cursor costs no upstream request ({message})"
    );
}

#[tokio::test]
async fn another_users_altered_or_truncated_cursor_is_refused_before_any_request() {
    let env = start(|_| {}).await;
    let alice = env.connect(ALICE).await;
    let bob = env.connect(BOB).await;
    for platform in [Platform::Snowflake, Platform::Databricks] {
        let (_, cursor) = first_page(&alice, platform, 3).await;
        // bob may read every row of the table himself, but not through alice's cursor.
        refused_without_upstream(&env, &bob, &cursor, "another user's result").await;
        let mid = cursor.len() / 3;
        let mut altered = cursor.clone().into_bytes();
        altered[mid] = if altered[mid] == b'x' { b'y' } else { b'x' };
        let altered = String::from_utf8(altered).unwrap();
        refused_without_upstream(&env, &alice, &altered, "integrity check").await;
        refused_without_upstream(&env, &alice, &cursor[..cursor.len() - 4], "").await;
        refused_without_upstream(&env, &alice, "not-a-cursor", "malformed").await;
        // The genuine cursor still works for alice.
        let page = call_ok(&alice, "fetch_more", json!({"cursor": cursor})).await;
        assert!(!ids(&page).is_empty());
    }
    close(alice).await;
    close(bob).await;
    env.shutdown().await;
}

#[tokio::test]
async fn an_expired_cursor_is_refused_before_any_request() {
    // A zero lifetime: every cursor has expired by the time it is used.
    let env = start(|c| c.limits.cursor_ttl_secs = 0).await;
    let alice = env.connect(ALICE).await;
    for platform in [Platform::Snowflake, Platform::Databricks] {
        let (_, cursor) = first_page(&alice, platform, 3).await;
        refused_without_upstream(&env, &alice, &cursor, "expired").await;
    }
    close(alice).await;
    env.shutdown().await;
}

#[tokio::test]
async fn a_credential_the_platform_dropped_ends_the_walk_without_a_new_vend() {
    let env = start(|_| {}).await;
    let alice = env.connect(ALICE).await;
    for platform in [Platform::Snowflake, Platform::Databricks] {
        let (_, cursor) = first_page(&alice, platform, 3).await;
        env.sandbox.state.expire_credentials();
        let vends = env.counter(Counter::VendsCreated);
        let message = call_err(&alice, "fetch_more", json!({"cursor": cursor})).await;
        assert!(message.contains("run the query again"), "{message}");
        assert_eq!(
            env.counter(Counter::VendsCreated),
            vends,
            "no vend just for a page"
        );
        // The rejected credential left the cache: the same cursor now fails at once.
        refused_without_upstream(&env, &alice, &cursor, "expired or was replaced").await;
        // Running the query again works (a fresh vend) and gives a fresh cursor.
        let (_, fresh) = first_page(&alice, platform, 3).await;
        call_ok(&alice, "fetch_more", json!({"cursor": fresh})).await;
    }
    close(alice).await;
    env.shutdown().await;
}

fn verified(user: &str) -> VerifiedUser {
    VerifiedUser::configured(user)
}

/// The emulators keep a finished statement's partitions/chunks for its owner
/// only: the platform path, handed bob's own credential and alice's statement,
/// gets "no longer holds the result", and alice's credential gets the rows.
#[tokio::test]
async fn emulators_refuse_another_users_credential_for_a_finished_result() {
    let sandbox = Sandbox::start(options()).await.unwrap();
    let cfg = sandbox.client_config();
    let platforms = app::build_platforms(&cfg).unwrap();
    let paths: [(Platform, Arc<dyn GovernedQuery>); 2] = [
        (Platform::Snowflake, platforms.snowflake.clone().unwrap()),
        (Platform::Databricks, platforms.databricks.clone().unwrap()),
    ];
    for (platform, path) in paths {
        let request = QueryRequest {
            sql: sql(platform),
            database: None,
            schema: None,
            warehouse: None,
            max_rows: 3,
            max_bytes: 1 << 20,
            parameters: Vec::new(),
        };
        let alice_ctx = CallContext::new(ALICE, "query");
        let first = path.query(&alice_ctx, &request).await.unwrap();
        let position = first.next_position.expect("alice's result continues");
        let alice_credential = alice_ctx.facts().credential.unwrap().fingerprint;
        let bob_ctx = CallContext::new(BOB, "query");
        path.query(&bob_ctx, &request).await.unwrap();
        let bob_credential = bob_ctx.facts().credential.unwrap().fingerprint;
        assert_ne!(alice_credential, bob_credential);

        let page = |credential: &str| PageRequest {
            statement_id: first.statement_id.clone(),
            position,
            credential: credential.to_string(),
            max_rows: 3,
            max_bytes: 1 << 20,
        };
        let before = sandbox.state.total_requests();
        let err = path
            .fetch_page(&CallContext::new(BOB, "fetch_more"), &page(&bob_credential))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, QueryError::ContinuationRefused(m) if m.contains("no longer holds the result")),
            "{platform}: {err}"
        );
        assert!(
            sandbox.state.total_requests() > before,
            "{platform}: the emulator itself refused bob's credential"
        );
        // bob's cache never hands out alice's credential: a mismatch is refused locally.
        let before = sandbox.state.total_requests();
        let err = path
            .fetch_page(
                &CallContext::new(BOB, "fetch_more"),
                &page(&alice_credential),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, QueryError::ContinuationRefused(_)), "{err}");
        assert_eq!(sandbox.state.total_requests(), before);
        let rows = path
            .fetch_page(
                &CallContext::new(ALICE, "fetch_more"),
                &page(&alice_credential),
            )
            .await
            .unwrap();
        assert_eq!(rows.row_count, 3);
        assert_eq!(rows.statement_id, first.statement_id);
    }
    sandbox.shutdown().await;
}

#[test]
fn each_fetch_more_call_leaves_one_audit_event() {
    with_logs(Level::INFO, Threads::Current, |buffer| async move {
        let sandbox = Sandbox::start(options()).await.unwrap();
        let cfg = sandbox.client_config();
        let platforms = app::build_platforms(&cfg).unwrap();
        let alice = verified(ALICE);
        let server = app::build_server(&cfg, &platforms, UserSource::Fixed(alice.clone()));

        let ctx = || CallContext::new(ALICE, "test");
        let first = server
            .call(
                &alice,
                "query_databricks",
                json!({"sql": sql(Platform::Databricks), "max_rows": 5}),
                ctx(),
            )
            .await
            .unwrap();
        let structured = first.structured_content.unwrap();
        let cursor = structured["next_cursor"].as_str().unwrap().to_string();
        let statement = structured["statement_id"].as_str().unwrap().to_string();
        let page = server
            .call(
                &alice,
                "fetch_more",
                json!({"cursor": cursor, "max_rows": 4}),
                ctx(),
            )
            .await
            .unwrap();
        assert_ne!(page.is_error, Some(true));
        let refused = server
            .call(&alice, "fetch_more", json!({"cursor": "x.y"}), ctx())
            .await
            .unwrap();
        assert_eq!(refused.is_error, Some(true));

        let text = buffer.json_text();
        let events: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["target"] == "immuta_mcp::audit" && e["fields"]["tool"] == "fetch_more")
            .map(|e| e["fields"].clone())
            .collect();
        assert_eq!(events.len(), 2, "{text}");
        let ok = &events[0];
        assert_eq!(ok["user"], ALICE);
        assert_eq!(ok["platform"], "databricks");
        assert_eq!(ok["outcome"], "ok");
        assert_eq!(ok["rows"], 4);
        assert_eq!(ok["statement_id"], statement);
        assert!(ok["vended_role"].as_str().is_some_and(|r| r != "-"), "{ok}");
        assert!(ok["upstream_requests"].as_u64().unwrap() >= 1, "{ok}");
        assert!(ok.get("duration_ms").is_some(), "{ok}");
        let bad = &events[1];
        assert_eq!(bad["outcome"], "cursor_refused");
        assert_eq!(bad["upstream_requests"], 0);
        assert!(!text.contains(&cursor), "the cursor is not logged");
        sandbox.shutdown().await;
    });
}

/// The payload of a cursor (opaque to clients; decoded here to check its bounds).
fn payload(cursor: &str) -> Value {
    use base64::Engine as _;
    let body = cursor.split('.').next().unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

#[tokio::test]
async fn a_cursor_never_outlives_the_credential_its_query_ran_under() {
    // A cursor lifetime of ten days: the credential (a 60-minute vend, used until
    // `credential_expiry_margin_secs` before its end) is what bounds the cursor.
    let env = start(|c| c.limits.cursor_ttl_secs = 10 * 24 * 3600).await;
    let margin = env.config.limits.credential_expiry_margin_secs;
    let vend_secs = u64::from(env.config.immuta.as_ref().unwrap().ttl_minutes) * 60;
    let alice = env.connect(ALICE).await;
    for platform in [Platform::Snowflake, Platform::Databricks] {
        let now = immuta_mcp::cursor::unix_secs(std::time::SystemTime::now());
        let (first, cursor) = first_page(&alice, platform, 3).await;
        let p = payload(&cursor);
        assert_eq!(p["s"], structured(&first)["statement_id"]);
        let expires = p["e"].as_u64().unwrap();
        assert!(
            expires <= now + vend_secs - margin + 5,
            "{platform}: expires {} s from now",
            expires - now
        );
        assert!(expires > now + 60, "{platform}: {p}");
        assert!(
            !p.to_string().contains(ALICE),
            "the user is not readable: {p}"
        );
    }
    close(alice).await;
    env.shutdown().await;
}

#[tokio::test]
async fn a_configured_cursor_key_outlives_the_process_a_random_one_does_not() {
    use immuta_mcp::config::SecretRef;
    let sandbox = Sandbox::start(options()).await.unwrap();
    let mut cfg = sandbox.client_config();
    let too_short = {
        let mut c = cfg.clone();
        c.server.cursor_key = Some(SecretRef::Value("short".into()));
        c
    };
    let err = app::build_platforms(&too_short)
        .err()
        .expect("a short key is refused");
    assert!(err.to_string().contains("cursor_key"), "{err}");
    assert!(!err.to_string().contains("short\""), "{err}");

    cfg.server.cursor_key = Some(SecretRef::Value("0123456789abcdef".repeat(4)));
    let alice = verified(ALICE);
    let server_for = |cfg: &Config| {
        let platforms = app::build_platforms(cfg).unwrap();
        app::build_server(cfg, &platforms, UserSource::Fixed(alice.clone()))
    };
    let first = server_for(&cfg);
    let result = first
        .call(
            &alice,
            "query_snowflake",
            json!({"sql": sql(Platform::Snowflake), "max_rows": 3}),
            CallContext::new(ALICE, "t"),
        )
        .await
        .unwrap();
    let cursor = result.structured_content.unwrap()["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let text = |r: rmcp::model::CallToolResult| text_of(&r);
    // "After a restart" with the same key: the cursor is authentic, but the new
    // process holds no credential of alice's, so it asks for the query again.
    let restarted = server_for(&cfg);
    let again = restarted
        .call(
            &alice,
            "fetch_more",
            json!({"cursor": cursor}),
            CallContext::new(ALICE, "t"),
        )
        .await
        .unwrap();
    assert_eq!(again.is_error, Some(true));
    let message = text(again);
    assert!(message.contains("expired or was replaced"), "{message}");
    // Without a configured key, another process refuses the cursor outright.
    cfg.server.cursor_key = None;
    let random = server_for(&cfg);
    let refused = random
        .call(
            &alice,
            "fetch_more",
            json!({"cursor": cursor}),
            CallContext::new(ALICE, "t"),
        )
        .await
        .unwrap();
    let message = text(refused);
    assert!(message.contains("integrity check"), "{message}");
    sandbox.shutdown().await;
}
