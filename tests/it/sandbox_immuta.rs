//! Rule: the Immuta emulator answers and refuses as Immuta's OBO API does.
//!
//! The Immuta OBO emulator over HTTP: authentication, vending, pending
//! vends, dropping roles, the activity log, and every fault knob.
//!
//! Uses a plain reqwest client against `Sandbox::start` on loopback.

use immuta_mcp::immuta::wire::{ActivityPage, VendResponse, VendStatus};
use immuta_mcp::result::Platform;
use immuta_mcp::sandbox::variants::{ImmutaAuthVariant, ImmutaPollVariant, VendAnswerVariant};
use immuta_mcp::sandbox::{Counter, Endpoint, Fault, Sandbox, SandboxOptions, SandboxSettings};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

/// A plain client (reqwest needs the process's rustls provider even for http://).
fn client(timeout: Option<Duration>) -> reqwest::Client {
    immuta_mcp::http_client::install_crypto_provider();
    let mut builder = reqwest::Client::builder();
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    builder.build().expect("http client")
}

async fn start() -> (Sandbox, reqwest::Client) {
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let http = client(None);
    (sandbox, http)
}

fn key(sb: &Sandbox) -> String {
    sb.credentials().immuta_api_key.clone()
}

async fn vend(sb: &Sandbox, http: &reqwest::Client, user: &str, ttl: u32) -> reqwest::Response {
    http.post(format!("{}/agent/obo/roles", sb.immuta_url))
        .bearer_auth(key(sb))
        .json(&json!({ "userId": user, "ttlMinutes": ttl }))
        .send()
        .await
        .unwrap()
}

async fn vend_ok(sb: &Sandbox, http: &reqwest::Client, user: &str, ttl: u32) -> VendResponse {
    let resp = vend(sb, http, user, ttl).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.unwrap()
}

async fn get_vend(sb: &Sandbox, http: &reqwest::Client, id: &str) -> VendResponse {
    let resp = http
        .get(format!("{}/agent/obo/roles/{id}", sb.immuta_url))
        .bearer_auth(key(sb))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn activity(sb: &Sandbox, http: &reqwest::Client, query: &str) -> reqwest::Response {
    let agent = &sb.credentials().agent_id;
    http.get(format!("{}/agent/{agent}/activity{query}", sb.immuta_url))
        .bearer_auth(key(sb))
        .send()
        .await
        .unwrap()
}

async fn message(resp: reqwest::Response) -> String {
    let body: Value = resp.json().await.unwrap();
    body["message"]
        .as_str()
        .expect("error body has a message")
        .to_string()
}

#[tokio::test]
async fn missing_or_wrong_api_key_is_401_with_a_message() {
    let (sb, http) = start().await;
    let url = format!("{}/agent/obo/roles", sb.immuta_url);
    let body = json!({ "userId": ALICE, "ttlMinutes": 5 });
    let none = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(message(none).await.contains("Authorization: <API key>"));
    let wrong = http
        .post(&url)
        .bearer_auth("not-the-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(message(wrong).await.contains("not valid"));
    let activity = http
        .get(format!(
            "{}/agent/{}/activity",
            sb.immuta_url,
            sb.credentials().agent_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(activity.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sb.state.counter(Counter::VendsCreated), 0);
    assert_eq!(
        sb.state.count(Endpoint::ImmutaVend),
        2,
        "refused requests are counted too"
    );
}

#[tokio::test]
async fn each_vend_gets_fresh_roles_bound_for_the_ttl() {
    let (sb, http) = start().await;
    let first = vend_ok(&sb, &http, ALICE, 30).await;
    let second = vend_ok(&sb, &http, ALICE, 30).await;
    assert_eq!(first.state(), VendStatus::Ready);
    assert_eq!(first.user_id, ALICE);
    let (sf1, sf2) = (
        first.roles.snowflake.unwrap(),
        second.roles.snowflake.unwrap(),
    );
    let (db1, db2) = (
        first.roles.databricks.unwrap(),
        second.roles.databricks.unwrap(),
    );
    assert_ne!(sf1.role_name, sf2.role_name);
    assert_ne!(db1.native_role_id, db2.native_role_id);
    assert!(
        sf1.role_name.starts_with("IMMUTA_OBO_"),
        "{}",
        sf1.role_name
    );
    assert_eq!(sf1.account_locator(), "sandbox01");
    assert!(db1.native_role_id.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(
        db1.connection_key.as_deref(),
        sb.databricks_url.strip_prefix("http://")
    );

    // Both roles are bound to alice until expiresAt = now + 30 minutes.
    let engine = &sb.state.engine;
    assert_eq!(
        engine
            .role_user(Platform::Snowflake, &sf1.role_name)
            .as_deref(),
        Some(ALICE)
    );
    assert_eq!(
        engine
            .role_user(Platform::Databricks, &db2.native_role_id)
            .as_deref(),
        Some(ALICE)
    );
    let expires: SystemTime =
        chrono::DateTime::parse_from_rfc3339(first.expires_at.as_deref().unwrap())
            .unwrap()
            .into();
    let ttl_left = expires.duration_since(SystemTime::now()).unwrap();
    assert!(ttl_left > Duration::from_secs(29 * 60) && ttl_left <= Duration::from_secs(30 * 60));
    let bound = engine
        .role_binding(Platform::Snowflake, &sf1.role_name)
        .unwrap();
    let skew = bound
        .expires_at
        .duration_since(expires)
        .unwrap_or_else(|e| e.duration());
    assert!(
        skew < Duration::from_secs(1),
        "binding expiry matches expiresAt"
    );
    assert_eq!(sb.state.counter(Counter::VendsCreated), 2);
}

#[tokio::test]
async fn unknown_users_and_bad_bodies_get_clear_errors() {
    let (sb, http) = start().await;
    let unknown = vend(&sb, &http, "mallory@example.com", 10).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let text = message(unknown).await;
    assert!(
        text.contains("mallory@example.com") && text.contains("is not known to Immuta"),
        "{text}"
    );

    let url = format!("{}/agent/obo/roles", sb.immuta_url);
    let no_user = http
        .post(&url)
        .bearer_auth(key(&sb))
        .json(&json!({ "ttlMinutes": 10 }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_user.status(), StatusCode::BAD_REQUEST);
    assert!(message(no_user).await.contains("userId"));
    let not_json = http
        .post(&url)
        .bearer_auth(key(&sb))
        .body("userId=alice")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let zero_ttl = vend(&sb, &http, ALICE, 0).await;
    assert_eq!(zero_ttl.status(), StatusCode::BAD_REQUEST);
    assert!(message(zero_ttl).await.contains("ttlMinutes"));
    assert_eq!(sb.state.counter(Counter::VendsCreated), 0);
}

#[tokio::test]
async fn pending_vends_turn_ready_after_the_configured_polls() {
    let (sb, http) = start().await;
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 2 });
    let created = vend_ok(&sb, &http, BOB, 10).await;
    assert_eq!(created.state(), VendStatus::Pending);
    assert!(
        created.roles.snowflake.is_none(),
        "no usable role while pending"
    );
    assert_eq!(
        get_vend(&sb, &http, &created.id).await.state(),
        VendStatus::Pending
    );
    assert_eq!(
        get_vend(&sb, &http, &created.id).await.state(),
        VendStatus::Pending
    );
    let ready = get_vend(&sb, &http, &created.id).await;
    assert_eq!(ready.state(), VendStatus::Ready);
    let role = ready.roles.snowflake.unwrap().role_name;
    assert_eq!(
        sb.state
            .engine
            .role_user(Platform::Snowflake, &role)
            .as_deref(),
        Some(BOB)
    );
    assert_eq!(sb.state.count(Endpoint::ImmutaStatus), 3);
    // The knob applies to one vend only.
    assert_eq!(
        vend_ok(&sb, &http, BOB, 10).await.state(),
        VendStatus::Ready
    );
}

#[tokio::test]
async fn delete_drops_the_vended_roles() {
    let (sb, http) = start().await;
    let v = vend_ok(&sb, &http, ALICE, 10).await;
    let role = v.roles.snowflake.clone().unwrap().role_name;
    let group = v.roles.databricks.clone().unwrap().native_role_id;
    let url = format!("{}/agent/obo/roles/{}", sb.immuta_url, v.id);
    let resp = http
        .delete(&url)
        .bearer_auth(key(&sb))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let dropped: VendResponse = resp.json().await.unwrap();
    assert_eq!(dropped.state(), VendStatus::Expired);
    assert_eq!(sb.state.engine.role_user(Platform::Snowflake, &role), None);
    assert_eq!(
        sb.state.engine.role_user(Platform::Databricks, &group),
        None
    );
    assert_eq!(
        get_vend(&sb, &http, &v.id).await.state(),
        VendStatus::Expired
    );

    let missing = http
        .delete(format!("{}/agent/obo/roles/no-such-vend", sb.immuta_url))
        .bearer_auth(key(&sb))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // With the agent id, every vend of the agent is dropped.
    let a = vend_ok(&sb, &http, ALICE, 10)
        .await
        .roles
        .snowflake
        .unwrap()
        .role_name;
    let b = vend_ok(&sb, &http, BOB, 10)
        .await
        .roles
        .snowflake
        .unwrap()
        .role_name;
    let all = http
        .delete(format!(
            "{}/agent/obo/roles/{}",
            sb.immuta_url,
            sb.credentials().agent_id
        ))
        .bearer_auth(key(&sb))
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), StatusCode::OK);
    assert_eq!(sb.state.engine.role_user(Platform::Snowflake, &a), None);
    assert_eq!(sb.state.engine.role_user(Platform::Snowflake, &b), None);
    assert_eq!(sb.state.count(Endpoint::ImmutaDelete), 3);
}

#[tokio::test]
async fn activity_lists_vends_with_paging_search_and_dates() {
    let (sb, http) = start().await;
    // The UTC days the vends happened on (two when the test crosses midnight).
    let first_day = chrono::Utc::now().date_naive();
    let first = vend_ok(&sb, &http, ALICE, 10).await;
    let bob = vend_ok(&sb, &http, BOB, 10).await;
    let third = vend_ok(&sb, &http, ALICE, 10).await;
    let last_day = chrono::Utc::now().date_naive();
    let page = |resp: reqwest::Response| async move {
        assert_eq!(resp.status(), StatusCode::OK);
        let page: ActivityPage = resp.json().await.unwrap();
        page.data.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    assert_eq!(
        page(activity(&sb, &http, "").await).await,
        [first.id.as_str(), bob.id.as_str(), third.id.as_str()]
    );
    assert_eq!(
        page(activity(&sb, &http, "?size=2").await).await,
        [first.id.as_str(), bob.id.as_str()]
    );
    assert_eq!(
        page(activity(&sb, &http, "?offset=2&size=2").await).await,
        [third.id.as_str()]
    );
    assert_eq!(
        page(activity(&sb, &http, "?search=BOB@").await).await,
        [bob.id.as_str()]
    );
    // `search` looks in user names only (Immuta: "the usernames of human users").
    let role = third.roles.snowflake.unwrap().role_name;
    assert!(
        page(activity(&sb, &http, &format!("?search={role}")).await)
            .await
            .is_empty()
    );
    assert!(
        page(activity(&sb, &http, &format!("?search={}", third.id)).await)
            .await
            .is_empty()
    );

    let yesterday = first_day.pred_opt().unwrap();
    let tomorrow = last_day.succ_opt().unwrap();
    let q = format!("?startDate={first_day}&endDate={last_day}");
    assert_eq!(page(activity(&sb, &http, &q).await).await.len(), 3);
    assert!(
        page(activity(&sb, &http, &format!("?endDate={yesterday}")).await)
            .await
            .is_empty()
    );
    let q = format!("?startDate={tomorrow}T00:00:00Z");
    assert!(page(activity(&sb, &http, &q).await).await.is_empty());

    let bad = activity(&sb, &http, "?startDate=last-tuesday").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(message(bad).await.contains("startDate"));
    let bad_size = activity(&sb, &http, "?size=lots").await;
    assert_eq!(bad_size.status(), StatusCode::BAD_REQUEST);
    let other_agent = http
        .get(format!("{}/agent/someone-else/activity", sb.immuta_url))
        .bearer_auth(key(&sb))
        .send()
        .await
        .unwrap();
    assert_eq!(other_agent.status(), StatusCode::NOT_FOUND);
    assert_eq!(sb.state.count(Endpoint::ImmutaActivity), 12);
}

#[tokio::test]
async fn status_faults_answer_with_retry_after_then_recover() {
    let (sb, http) = start().await;
    sb.faults().add(
        Endpoint::ImmutaVend,
        Fault::Status {
            status: 429,
            retry_after: Some(7),
            times: 2,
        },
    );
    for _ in 0..2 {
        let resp = vend(&sb, &http, ALICE, 10).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "7");
        assert!(!message(resp).await.is_empty());
    }
    let v = vend_ok(&sb, &http, ALICE, 10).await;
    assert_eq!(sb.state.count(Endpoint::ImmutaVend), 3);
    assert_eq!(sb.state.counter(Counter::VendsCreated), 1);

    sb.faults().add(
        Endpoint::ImmutaStatus,
        Fault::Status {
            status: 500,
            retry_after: None,
            times: 1,
        },
    );
    sb.faults().add(
        Endpoint::ImmutaStatus,
        Fault::Status {
            status: 503,
            retry_after: Some(1),
            times: 1,
        },
    );
    let url = format!("{}/agent/obo/roles/{}", sb.immuta_url, v.id);
    let r500 = http.get(&url).bearer_auth(key(&sb)).send().await.unwrap();
    assert_eq!(r500.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r500.headers().get("retry-after").is_none());
    let r503 = http.get(&url).bearer_auth(key(&sb)).send().await.unwrap();
    assert_eq!(r503.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get_vend(&sb, &http, &v.id).await.state(), VendStatus::Ready);
    assert_eq!(sb.state.count(Endpoint::ImmutaStatus), 3);
}

#[tokio::test]
async fn connection_reset_breaks_the_answer_once() {
    let (sb, http) = start().await;
    sb.faults().add(
        Endpoint::ImmutaActivity,
        Fault::ConnectionReset { times: 1 },
    );
    let url = format!(
        "{}/agent/{}/activity",
        sb.immuta_url,
        sb.credentials().agent_id
    );
    // Depending on timing the break shows while reading the head or the body.
    let broken = match http.get(&url).bearer_auth(key(&sb)).send().await {
        Ok(resp) => resp.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(broken.is_err(), "the reset answer cannot be read");
    assert_eq!(activity(&sb, &http, "").await.status(), StatusCode::OK);
    assert_eq!(sb.state.count(Endpoint::ImmutaActivity), 2);

    // After shutdown nothing answers any more.
    let url = sb.immuta_url.clone();
    sb.shutdown().await;
    let fresh = client(None);
    assert!(
        fresh
            .get(format!("{url}/agent/obo/roles/x"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn latency_makes_a_short_client_timeout_fire_until_cleared() {
    let (sb, http) = start().await;
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::Latency(Duration::from_secs(5)));
    let impatient = client(Some(Duration::from_millis(100)));
    let err = impatient
        .post(format!("{}/agent/obo/roles", sb.immuta_url))
        .bearer_auth(key(&sb))
        .json(&json!({ "userId": ALICE, "ttlMinutes": 10 }))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    sb.faults().clear();
    vend_ok(&sb, &http, ALICE, 10).await;
    assert_eq!(sb.state.count(Endpoint::ImmutaVend), 2);
}

#[tokio::test]
async fn client_config_points_the_production_clients_at_the_sandbox() {
    let (sb, _) = start().await;
    let cfg = sb.client_config();
    cfg.validate().expect("a valid configuration");
    let immuta = cfg.immuta.as_ref().unwrap();
    assert_eq!(immuta.url, sb.immuta_url);
    assert_eq!(
        immuta.api_key.resolve("immuta.api_key").unwrap().expose(),
        key(&sb)
    );
    let snowflake = cfg.snowflake.as_ref().unwrap();
    // No base_url: the client derives https://<vended host>, which the
    // network settings route to the HTTPS emulator.
    assert_eq!(snowflake.base_url, None);
    assert_eq!(snowflake.account.as_deref(), Some("sandbox01.us-east-1"));
    assert_eq!(cfg.network.resolve, vec![sb.snowflake_resolve()]);
    assert_eq!(cfg.network.extra_ca_file.as_deref(), Some(sb.ca_file()));
    let pem = snowflake
        .private_key
        .resolve("snowflake.private_key")
        .unwrap();
    assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
    let databricks = cfg.databricks.as_ref().unwrap();
    assert_eq!(databricks.host, sb.databricks_url);
    assert_eq!(databricks.warehouse_id, sb.credentials().warehouse_id);
    assert_eq!(databricks.default_catalog.as_deref(), Some("main"));
    assert_eq!(cfg.identity.stdio_user.as_deref(), Some(ALICE));
    assert!(
        !format!("{cfg:?}").contains(&key(&sb)),
        "secrets stay out of Debug"
    );
}

async fn start_with(settings: SandboxSettings) -> (Sandbox, reqwest::Client) {
    let sandbox = Sandbox::start(SandboxOptions {
        settings,
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts");
    (sandbox, client(None))
}

fn settings_with(f: impl FnOnce(&mut SandboxSettings)) -> SandboxSettings {
    let mut s = SandboxSettings::default();
    f(&mut s);
    s
}

/// `POST /bim/apikey/authenticate` with the key in the body: (status, token).
async fn exchange(sb: &Sandbox, http: &reqwest::Client) -> (StatusCode, Option<String>) {
    let resp = http
        .post(format!("{}/bim/apikey/authenticate", sb.immuta_url))
        .json(&json!({ "apikey": key(sb) }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let token = if status.is_success() {
        let body: Value = resp.json().await.unwrap();
        assert!(body["tokenExpiration"].is_string(), "{body}");
        body["token"].as_str().map(str::to_string)
    } else {
        None
    };
    (status, token)
}

/// `GET /agent/obo/roles/<unknown>` with this `Authorization` value: 404 = authenticated.
async fn probe(sb: &Sandbox, http: &reqwest::Client, authorization: &str) -> StatusCode {
    http.get(format!("{}/agent/obo/roles/no-such-vend", sb.immuta_url))
        .header("Authorization", authorization)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn accepted_authorization_forms_follow_the_immuta_auth_variant() {
    use ImmutaAuthVariant::*;
    // (variant, raw key, Bearer key, exchanged token)
    for (variant, raw, bearer, exchanged) in [
        (Any, true, true, true),
        (RawKey, true, false, false),
        (BearerKey, false, true, false),
        (Exchange, false, false, true),
    ] {
        let (sb, http) = start_with(settings_with(|s| s.variants.immuta_auth = variant)).await;
        let ok = |s: StatusCode| s == StatusCode::NOT_FOUND;
        assert_eq!(
            ok(probe(&sb, &http, &key(&sb)).await),
            raw,
            "{variant:?} raw"
        );
        assert_eq!(
            ok(probe(&sb, &http, &format!("Bearer {}", key(&sb))).await),
            bearer,
            "{variant:?} bearer key"
        );
        let (status, token) = exchange(&sb, &http).await;
        assert_eq!(
            status.is_success(),
            exchanged,
            "{variant:?} exchange: {status}"
        );
        if let Some(token) = token {
            assert!(ok(probe(&sb, &http, &format!("Bearer {token}")).await));
            // A token is not the key: the raw-token form is refused.
            assert_eq!(probe(&sb, &http, &token).await, StatusCode::UNAUTHORIZED);
        } else {
            assert_eq!(status, StatusCode::NOT_FOUND, "{variant:?}");
        }
        assert_eq!(
            probe(&sb, &http, "Bearer not-the-key").await,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn the_exchange_takes_the_key_in_the_header_too_and_refuses_a_wrong_key() {
    let (sb, http) = start().await;
    let url = format!("{}/bim/apikey/authenticate", sb.immuta_url);
    let resp = http
        .post(&url)
        .header("Authorization", key(&sb))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let wrong = http
        .post(&url)
        .json(&json!({"apikey": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn exchanged_tokens_expire_after_their_lifetime_or_an_expiry_knob() {
    let (sb, http) = start_with(settings_with(|s| {
        s.variants.immuta_auth = ImmutaAuthVariant::Exchange;
        s.immuta_token_lifetime = Duration::ZERO;
    }))
    .await;
    let (_, token) = exchange(&sb, &http).await;
    let resp = http
        .get(format!("{}/agent/obo/roles/x", sb.immuta_url))
        .bearer_auth(token.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(message(resp).await.contains("expired"));

    let (sb, http) = start_with(settings_with(|s| {
        s.variants.immuta_auth = ImmutaAuthVariant::Exchange
    }))
    .await;
    let token = exchange(&sb, &http).await.1.unwrap();
    assert_eq!(
        probe(&sb, &http, &format!("Bearer {token}")).await,
        StatusCode::NOT_FOUND
    );
    sb.state.expire_credentials();
    assert_eq!(
        probe(&sb, &http, &format!("Bearer {token}")).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn agent_id_polling_lists_the_agents_vends_and_a_vend_id_is_404() {
    let (sb, http) = start_with(settings_with(|s| {
        s.variants.immuta_poll = ImmutaPollVariant::AgentId
    }))
    .await;
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 1 });
    let created = vend_ok(&sb, &http, ALICE, 10).await;
    assert_eq!(created.state(), VendStatus::Pending);
    let by_vend = http
        .get(format!("{}/agent/obo/roles/{}", sb.immuta_url, created.id))
        .bearer_auth(key(&sb))
        .send()
        .await
        .unwrap();
    assert_eq!(by_vend.status(), StatusCode::NOT_FOUND);
    let agent = sb.credentials().agent_id.clone();
    let poll = || async {
        let resp = http
            .get(format!("{}/agent/obo/roles/{agent}", sb.immuta_url))
            .bearer_auth(key(&sb))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        let entry = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == created.id.as_str())
            .cloned()
            .expect("the vend is listed");
        serde_json::from_value::<VendResponse>(entry).unwrap()
    };
    assert_eq!(poll().await.state(), VendStatus::Pending);
    let ready = poll().await;
    assert_eq!(ready.state(), VendStatus::Ready);
    assert!(ready.roles.snowflake.is_some());
}

#[tokio::test]
async fn vend_answers_are_spelled_per_the_vend_answer_variant() {
    use VendAnswerVariant::*;
    for variant in [Canonical, Ttl, UpperStatus, NoStatus, NoExpiresAt] {
        let (sb, http) = start_with(settings_with(|s| s.variants.vend_answer = variant)).await;
        let resp = vend(&sb, &http, ALICE, 10).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        match variant {
            Canonical => {
                assert_eq!(body["status"], "ready", "{body}");
                assert_eq!(body["ttlMinutes"], 10, "{body}");
            }
            Ttl => {
                assert_eq!(body["ttl"], 10, "{body}");
                assert!(body.get("ttlMinutes").is_none(), "{body}");
            }
            UpperStatus => assert_eq!(body["status"], "READY", "{body}"),
            NoStatus => {
                assert!(body.get("status").is_none(), "{body}");
                assert!(body["roles"]["Snowflake"].is_object(), "{body}");
            }
            NoExpiresAt => {
                assert!(body.get("expiresAt").is_none(), "{body}");
                assert_eq!(body["ttlMinutes"], 10, "{body}");
            }
        }
        let parsed: VendResponse = serde_json::from_value(body).unwrap();
        assert_eq!(parsed.state(), VendStatus::Ready, "{variant:?}");
    }
}

#[tokio::test]
async fn a_lost_vend_answer_still_creates_the_vend_once() {
    let (sb, http) = start().await;
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::LostAnswer { times: 1 });
    let resp = http
        .post(format!("{}/agent/obo/roles", sb.immuta_url))
        .bearer_auth(key(&sb))
        .json(&json!({ "userId": ALICE, "ttlMinutes": 5 }))
        .send()
        .await;
    let broken = match resp {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(broken, "the answer must not arrive");
    assert_eq!(sb.state.counter(Counter::VendsCreated), 1);
    assert_eq!(
        vend_ok(&sb, &http, ALICE, 5).await.state(),
        VendStatus::Ready
    );
}
