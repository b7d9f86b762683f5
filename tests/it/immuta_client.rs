//! Rule: every Immuta variant is either spoken correctly or refused with one message naming the
//! setting to change.
//!
//! The production Immuta client against the emulator's private-preview
//! variants: `immuta.auth` (auto-detection, fixed forms, the bearer-token
//! exchange and its renewal after a 401), `immuta.poll_id` (matching and
//! mismatching the emulator's poll variant), every `vend_answer` spelling,
//! a lost vend answer (the vend happens once, the caller gets a clear error),
//! and the `check` line naming the auth form that answered.

use immuta_mcp::app;
use immuta_mcp::config::{Config, ImmutaAuth, ImmutaPollId, SecretRef};
use immuta_mcp::immuta::ImmutaClient;
use immuta_mcp::immuta::ImmutaError;
use immuta_mcp::immuta::wire::VendStatus;
use immuta_mcp::query::CallContext;
use immuta_mcp::query::ProgressSink;
use immuta_mcp::retry::RetryPolicy;
use immuta_mcp::sandbox::variants::{
    ImmutaAuthVariant, ImmutaPollVariant, SandboxVariants, VendAnswerVariant,
};
use immuta_mcp::sandbox::{Counter, Endpoint, Fault, Sandbox, SandboxOptions, SandboxSettings};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

async fn sandbox(variants: SandboxVariants) -> Sandbox {
    immuta_mcp::http_client::install_crypto_provider();
    Sandbox::start(SandboxOptions {
        settings: SandboxSettings {
            variants,
            ..SandboxSettings::default()
        },
        ..SandboxOptions::default()
    })
    .await
    .expect("sandbox starts")
}

fn client_with(
    sb: &Sandbox,
    tweak: impl FnOnce(&mut immuta_mcp::config::ImmutaConfig),
) -> ImmutaClient {
    let mut cfg = sb.client_config().immuta.expect("immuta config");
    tweak(&mut cfg);
    let http = immuta_mcp::http_client::build(&Default::default()).expect("http client");
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        observer: None,
    };
    ImmutaClient::new(&cfg, http, retry).expect("client")
}

fn ctx(user: &str) -> CallContext {
    CallContext::new(user, "query_snowflake")
}

fn auth_variant(v: ImmutaAuthVariant) -> SandboxVariants {
    SandboxVariants {
        immuta_auth: v,
        ..SandboxVariants::default()
    }
}

#[tokio::test]
async fn auto_finds_the_form_each_variant_accepts_and_keeps_it() {
    // (variant, form auto settles on, vend POSTs the first call needs: one per form tried)
    for (variant, settles, first_posts) in [
        (ImmutaAuthVariant::Any, ImmutaAuth::RawKey, 1),
        (ImmutaAuthVariant::RawKey, ImmutaAuth::RawKey, 1),
        (ImmutaAuthVariant::Exchange, ImmutaAuth::Exchange, 2),
        (ImmutaAuthVariant::BearerKey, ImmutaAuth::BearerKey, 2),
    ] {
        let sb = sandbox(auth_variant(variant)).await;
        let client = client_with(&sb, |_| {});
        assert_eq!(client.auth_in_use(), ImmutaAuth::Auto);
        let v = client
            .vend(&ctx(ALICE))
            .await
            .unwrap_or_else(|e| panic!("{variant:?}: {e}"));
        assert_eq!(v.user_id, ALICE);
        assert_eq!(client.auth_in_use(), settles, "{variant:?}");
        assert_eq!(
            sb.state.count(Endpoint::ImmutaVend),
            first_posts,
            "{variant:?}"
        );
        // Remembered: the next vend is one request in the form that worked.
        let clone = client.clone();
        clone.vend(&ctx(BOB)).await.unwrap();
        assert_eq!(
            sb.state.count(Endpoint::ImmutaVend),
            first_posts + 1,
            "{variant:?}"
        );
        assert_eq!(sb.state.counter(Counter::VendsCreated), 2, "{variant:?}");
    }
}

#[tokio::test]
async fn a_key_refused_in_every_form_is_one_error_naming_immuta_auth() {
    let sb = sandbox(SandboxVariants::default()).await;
    let client = client_with(&sb, |c| c.api_key = SecretRef::Value("imm_wrong".into()));
    let err = client.vend(&ctx(ALICE)).await.unwrap_err().to_string();
    assert!(err.contains("immuta.auth"), "{err}");
    assert!(err.contains("raw_key, exchange, bearer_key"), "{err}");
    assert!(!err.contains("imm_wrong"), "{err}");
    assert_eq!(sb.state.counter(Counter::VendsCreated), 0);

    // A fixed form the tenant does not take: the same clear error, one request.
    let sb = sandbox(auth_variant(ImmutaAuthVariant::RawKey)).await;
    let client = client_with(&sb, |c| c.auth = ImmutaAuth::BearerKey);
    let err = client.vend(&ctx(ALICE)).await.unwrap_err().to_string();
    assert!(err.contains("immuta.auth = bearer_key"), "{err}");
    assert_eq!(sb.state.count(Endpoint::ImmutaVend), 1);
    // And the exchange asked of a tenant without it names the setting too.
    let client = client_with(&sb, |c| c.auth = ImmutaAuth::Exchange);
    let err = client.vend(&ctx(ALICE)).await.unwrap_err().to_string();
    assert!(err.contains("immuta.auth"), "{err}");
}

#[tokio::test]
async fn an_expired_exchanged_token_is_exchanged_again_on_401() {
    let sb = sandbox(auth_variant(ImmutaAuthVariant::Exchange)).await;
    let client = client_with(&sb, |c| c.auth = ImmutaAuth::Exchange);
    client.vend(&ctx(ALICE)).await.unwrap();
    client.vend(&ctx(ALICE)).await.unwrap();
    assert_eq!(
        sb.state.count(Endpoint::ImmutaAuthenticate),
        1,
        "token cached"
    );
    // The token expires mid-session: 401, a new exchange, the vend is resent once.
    sb.state.expire_credentials();
    let posts = sb.state.count(Endpoint::ImmutaVend);
    client.vend(&ctx(BOB)).await.unwrap();
    assert_eq!(sb.state.count(Endpoint::ImmutaAuthenticate), 2);
    assert_eq!(sb.state.count(Endpoint::ImmutaVend), posts + 2);
    assert_eq!(sb.state.counter(Counter::VendsCreated), 3);
}

fn poll_variant(v: ImmutaPollVariant) -> SandboxVariants {
    SandboxVariants {
        immuta_poll: v,
        ..SandboxVariants::default()
    }
}

#[tokio::test]
async fn pending_vends_are_polled_by_the_configured_id() {
    for (variant, setting) in [
        (ImmutaPollVariant::VendId, ImmutaPollId::VendId),
        (ImmutaPollVariant::AgentId, ImmutaPollId::AgentId),
        (ImmutaPollVariant::AgentIdLatest, ImmutaPollId::AgentId),
    ] {
        let sb = sandbox(poll_variant(variant)).await;
        let client = client_with(&sb, |c| c.poll_id = setting);
        sb.faults()
            .add(Endpoint::ImmutaVend, Fault::Pending { polls: 2 });
        let v = client
            .vend(&ctx(ALICE))
            .await
            .unwrap_or_else(|e| panic!("{variant:?}: {e}"));
        assert!(v.roles.snowflake.is_some());
        assert_eq!(sb.state.count(Endpoint::ImmutaStatus), 3, "{variant:?}");
    }
}

#[tokio::test]
async fn an_unknown_user_is_named_with_immutas_own_message() {
    let sb = sandbox(SandboxVariants::default()).await;
    let client = client_with(&sb, |_| {});
    let err = client.vend(&ctx("mallory@example.com")).await.unwrap_err();
    assert!(matches!(err, ImmutaError::UnknownUser { .. }), "{err:?}");
    assert_eq!(err.outcome(), "unknown_user");
    let text = err.to_string();
    assert!(
        text.starts_with("Immuta does not know the user mallory@example.com: ")
            && text.contains("is not known to Immuta"),
        "Immuta's own message is kept: {text}"
    );
    assert_eq!(sb.state.counter(Counter::VendsCreated), 0);
}

#[tokio::test]
async fn the_agent_id_comes_from_config_or_else_from_the_vend_answer() {
    let sb = sandbox(poll_variant(ImmutaPollVariant::AgentId)).await;
    // No immuta.agent_id: the vend answer's agentId is used.
    let client = client_with(&sb, |c| {
        c.poll_id = ImmutaPollId::AgentId;
        c.agent_id = None;
    });
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 1 });
    client.vend(&ctx(ALICE)).await.unwrap();
    // immuta.agent_id wins over the answer: a wrong one is what gets polled (404).
    let client = client_with(&sb, |c| {
        c.poll_id = ImmutaPollId::AgentId;
        c.agent_id = Some("agent-not-this-one".into());
    });
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 1 });
    let err = client.vend(&ctx(ALICE)).await.unwrap_err().to_string();
    assert!(err.contains("/agent/obo/roles/agent-not-this-one"), "{err}");
}

#[tokio::test]
async fn a_404_while_polling_names_the_vend_the_url_and_immuta_poll_id() {
    // The tenant polls per agent, the client per vend.
    let sb = sandbox(poll_variant(ImmutaPollVariant::AgentId)).await;
    let client = client_with(&sb, |_| {});
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 2 });
    let err = client.vend(&ctx(ALICE)).await.unwrap_err().to_string();
    assert!(err.contains("immuta.poll_id = \"agent_id\""), "{err}");
    assert!(err.contains("/agent/obo/roles/"), "{err}");
    assert!(err.contains("404"), "{err}");
    assert!(!err.contains("does not know the user"), "{err}");
    // The vend id is named.
    let vend_id = {
        let page: serde_json::Value = reqwest::Client::new()
            .get(format!(
                "{}/agent/{}/activity",
                sb.immuta_url,
                sb.credentials().agent_id
            ))
            .header("Authorization", sb.credentials().immuta_api_key.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["data"][0]["id"].as_str().unwrap().to_string()
    };
    assert!(err.contains(&vend_id), "{err}");

    // The other way round: the tenant polls per vend, the client per agent.
    let sb = sandbox(poll_variant(ImmutaPollVariant::VendId)).await;
    let client = client_with(&sb, |c| c.poll_id = ImmutaPollId::AgentId);
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 2 });
    let err = client.vend(&ctx(ALICE)).await.unwrap_err().to_string();
    assert!(err.contains("immuta.poll_id = \"vend_id\""), "{err}");

    // poll_id = agent_id without an agent id anywhere: a configuration error.
    let client = client_with(&sb, |c| {
        c.poll_id = ImmutaPollId::AgentId;
        c.agent_id = None;
    });
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 2 });
    let err = client.vend(&ctx(ALICE)).await.unwrap_err().to_string();
    assert!(err.contains("immuta.agent_id"), "{err}");
}

#[tokio::test]
async fn every_vend_answer_spelling_is_understood_ready_or_pending() {
    for answer in [
        VendAnswerVariant::Canonical,
        VendAnswerVariant::Ttl,
        VendAnswerVariant::UpperStatus,
        VendAnswerVariant::NoStatus,
        VendAnswerVariant::NoExpiresAt,
    ] {
        let sb = sandbox(SandboxVariants {
            vend_answer: answer,
            ..SandboxVariants::default()
        })
        .await;
        let client = client_with(&sb, |_| {});
        let v = client
            .vend(&ctx(ALICE))
            .await
            .unwrap_or_else(|e| panic!("{answer:?}: {e}"));
        assert!(v.roles.databricks.is_some(), "{answer:?}");
        sb.faults()
            .add(Endpoint::ImmutaVend, Fault::Pending { polls: 1 });
        let v = client
            .vend(&ctx(BOB))
            .await
            .unwrap_or_else(|e| panic!("{answer:?} pending: {e}"));
        assert_eq!(v.user_id, BOB);
        assert!(
            sb.state.count(Endpoint::ImmutaStatus) >= 1,
            "{answer:?}: polled"
        );
    }
}

#[tokio::test]
async fn a_lost_vend_answer_creates_one_vend_and_a_clear_error() {
    let sb = sandbox(SandboxVariants::default()).await;
    let client = client_with(&sb, |_| {});
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::LostAnswer { times: 1 });
    let err = client.vend(&ctx(ALICE)).await.unwrap_err().to_string();
    assert!(err.contains("after the request was sent"), "{err}");
    assert!(err.contains("not repeated"), "{err}");
    assert_eq!(sb.state.count(Endpoint::ImmutaVend), 1);
    assert_eq!(sb.state.counter(Counter::VendsCreated), 1);
    // 503 says "not processed": retried, one vend.
    sb.faults().add(
        Endpoint::ImmutaVend,
        Fault::Status {
            status: 503,
            retry_after: Some(0),
            times: 1,
        },
    );
    client.vend(&ctx(ALICE)).await.unwrap();
    assert_eq!(sb.state.counter(Counter::VendsCreated), 2);
}

#[tokio::test]
async fn check_names_the_auth_form_that_answered() {
    for (variant, form) in [
        (ImmutaAuthVariant::RawKey, "raw_key"),
        (ImmutaAuthVariant::Exchange, "exchange"),
        (ImmutaAuthVariant::BearerKey, "bearer_key"),
    ] {
        let sb = sandbox(auth_variant(variant)).await;
        let cfg: Config = sb.client_config();
        let lines = app::check(&cfg).await;
        let immuta = lines
            .iter()
            .find(|l| l.component == "immuta")
            .expect("an immuta line");
        assert!(immuta.ok, "{variant:?}: {}", immuta.message);
        assert!(
            immuta.message.contains(&format!("immuta.auth = {form}")),
            "{variant:?}: {}",
            immuta.message
        );
    }
}

#[tokio::test]
async fn while_probing_a_403_moves_on_to_the_next_form_but_not_once_settled() {
    let sb = sandbox(SandboxVariants::default()).await;
    let client = client_with(&sb, |_| {});
    let forbidden = Fault::Status {
        status: 403,
        retry_after: None,
        times: 1,
    };
    sb.faults().add(Endpoint::ImmutaVend, forbidden.clone());
    client.vend(&ctx(ALICE)).await.unwrap();
    assert_eq!(client.auth_in_use(), ImmutaAuth::Exchange);
    // Settled: a 403 is now an answer, not a reason to switch forms.
    sb.faults().add(Endpoint::ImmutaVend, forbidden);
    let err = client.vend(&ctx(ALICE)).await.unwrap_err().to_string();
    assert!(err.contains("HTTP 403"), "{err}");
    assert_eq!(client.auth_in_use(), ImmutaAuth::Exchange);
}

#[tokio::test]
async fn without_expires_at_the_vend_lives_for_its_ttl_from_now() {
    let sb = sandbox(SandboxVariants {
        vend_answer: VendAnswerVariant::NoExpiresAt,
        ..SandboxVariants::default()
    })
    .await;
    let client = client_with(&sb, |c| c.ttl_minutes = 7);
    let before = SystemTime::now();
    let v = client.vend(&ctx(ALICE)).await.expect("vend");
    let after = SystemTime::now();
    let ttl = Duration::from_secs(7 * 60);
    assert!(
        v.expires_at >= before + ttl && v.expires_at <= after + ttl,
        "expires_at {:?} is not 7 minutes after the vend ({before:?}..{after:?})",
        v.expires_at
    );
}

/// Records the progress steps a call reports.
#[derive(Default)]
struct Steps(Mutex<Vec<u32>>);

impl ProgressSink for Steps {
    fn progress(&self, step: u32, _message: &str) {
        self.0.lock().unwrap().push(step);
    }
}

#[tokio::test]
async fn a_pending_vend_is_polled_with_growing_waits_and_numbered_progress() {
    let sb = sandbox(SandboxVariants::default()).await;
    let client = client_with(&sb, |_| {});
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 2 });
    let steps = Arc::new(Steps::default());
    let mut call = ctx(ALICE);
    call.progress = Some(steps.clone());
    let started = Instant::now();
    client.vend(&call).await.expect("vend");
    // Three polls after waits of 200, 400 and 800 ms: Immuta is not hammered
    // while it prepares the role. (A lower bound: sleeping never ends early.)
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "three polls in {:?}",
        started.elapsed()
    );
    assert_eq!(sb.state.count(Endpoint::ImmutaStatus), 3);
    assert_eq!(*steps.0.lock().unwrap(), vec![1, 2, 3]);
}

#[tokio::test]
async fn a_vend_that_stays_pending_fails_after_pending_timeout_secs() {
    let sb = sandbox(SandboxVariants::default()).await;
    let client = client_with(&sb, |c| c.pending_timeout_secs = 1);
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 1000 });
    let err = tokio::time::timeout(Duration::from_secs(30), client.vend(&ctx(ALICE)))
        .await
        .expect("the pending timeout ends the wait")
        .unwrap_err();
    assert!(matches!(err, ImmutaError::StillPending { .. }), "{err}");
    assert!(sb.state.count(Endpoint::ImmutaStatus) <= 4);
}

#[tokio::test]
async fn a_cancelled_call_stops_waiting_for_a_pending_vend() {
    let sb = sandbox(SandboxVariants::default()).await;
    let client = client_with(&sb, |c| c.pending_timeout_secs = 600);
    sb.faults()
        .add(Endpoint::ImmutaVend, Fault::Pending { polls: 1000 });
    let call = ctx(ALICE);
    let cancel = call.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let err = tokio::time::timeout(Duration::from_secs(30), client.vend(&call))
        .await
        .expect("cancellation ends the wait")
        .unwrap_err();
    assert!(matches!(err, ImmutaError::StillPending { .. }), "{err}");
}

#[tokio::test]
async fn drop_roles_deletes_the_vend_and_accepts_one_already_gone() {
    let sb = sandbox(SandboxVariants::default()).await;
    let client = client_with(&sb, |_| {});
    let v = client.vend(&ctx(ALICE)).await.expect("vend");
    client.drop_roles(&v.id).await.expect("drop");
    assert_eq!(sb.state.count(Endpoint::ImmutaDelete), 1);
    let status = client.status(&v.id).await.expect("status");
    assert_eq!(status.state(), VendStatus::Expired);
    // A vend that is already gone (404) is what dropping wanted.
    client
        .drop_roles("no-such-vend")
        .await
        .expect("404 is fine");
    // Any other refusal is an error.
    sb.faults().add(
        Endpoint::ImmutaDelete,
        Fault::Status {
            status: 400,
            retry_after: None,
            times: 1,
        },
    );
    let v = client.vend(&ctx(BOB)).await.expect("vend");
    assert!(client.drop_roles(&v.id).await.is_err());
}

#[tokio::test]
async fn unused_vends_are_dropped_in_the_background_only_when_configured() {
    for drop in [true, false] {
        let sb = sandbox(SandboxVariants::default()).await;
        let client = client_with(&sb, |c| c.drop_unused_vends = drop);
        let v = client.vend(&ctx(ALICE)).await.expect("vend");
        client.drop_roles_in_background(&v.id, ALICE, "test");
        client.drop_roles_in_background("  ", ALICE, "an empty id is never sent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while drop && sb.state.count(Endpoint::ImmutaDelete) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !drop {
            // Give a wrongly spawned drop the time to arrive.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(
            sb.state.count(Endpoint::ImmutaDelete),
            u64::from(drop),
            "drop={drop}"
        );
        let status = client.status(&v.id).await.expect("status").state();
        let expected = if drop {
            VendStatus::Expired
        } else {
            VendStatus::Ready
        };
        assert_eq!(status, expected, "drop={drop}");
    }
}

#[tokio::test]
async fn debug_shows_the_tenant_and_never_the_key() {
    let sb = sandbox(SandboxVariants::default()).await;
    let mut cfg = sb.client_config().immuta.expect("immuta config");
    cfg.url = "https://tenant.example.com/".into();
    cfg.api_key = SecretRef::Value("key-that-must-not-show".into());
    let http = immuta_mcp::http_client::build(&Default::default()).expect("http client");
    let client = ImmutaClient::new(&cfg, http, RetryPolicy::default()).expect("client");
    let shown = format!("{client:?}");
    assert!(shown.contains("https://tenant.example.com"), "{shown}");
    assert!(!shown.contains("key-that-must-not-show"), "{shown}");
    assert_eq!(client.base_url(), "https://tenant.example.com");
    assert_eq!(client.ttl_minutes(), cfg.ttl_minutes);
}
