//! Unit tests of [`super::JwtVerifier`] against a loopback test issuer:
//! which tokens are accepted, which are refused and why, and how the JWKS
//! cache fetches, refetches and backs off.

use super::*;
use crate::sandbox::issuer::TestIssuer;

fn test_http() -> reqwest::Client {
    crate::http_client::install_crypto_provider();
    reqwest::Client::new()
}
use jsonwebtoken::Header;
use serde_json::json;

const AUDIENCE: &str = "http://127.0.0.1:9/mcp";

async fn serve_issuer() -> Arc<TestIssuer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let issuer = Arc::new(TestIssuer::new(url));
    let app = Arc::clone(&issuer).router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    issuer
}

fn verifier_for(issuer: &TestIssuer, user_claim: &str) -> JwtVerifier {
    let mut cfg = issuer.oauth_config();
    cfg.user_claim = user_claim.into();
    cfg.leeway_secs = 5;
    JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims(issuer: &TestIssuer) -> Value {
    json!({
        "iss": issuer.issuer_url(),
        "sub": "00u-alice",
        "aud": AUDIENCE,
        "exp": now() + 300,
        "iat": now(),
        "email": "alice@example.com",
        "preferred_username": "alice",
        "upn": "ALICE@CORP",
        "email_verified": true,
    })
}

#[tokio::test]
async fn valid_token_names_the_user_by_the_configured_claim() {
    let issuer = serve_issuer().await;
    let token = issuer.mint_claims(claims(&issuer));
    for (claim, expected) in [
        ("email", "alice@example.com"),
        ("preferred_username", "alice"),
        ("sub", "00u-alice"),
        ("upn", "ALICE@CORP"),
    ] {
        let user = verifier_for(&issuer, claim).verify(&token).await.unwrap();
        assert_eq!(user.user_id, expected);
        assert_eq!(user.subject, "00u-alice");
        assert_eq!(user.issuer, issuer.issuer_url());
        assert_eq!(user.source, IdentitySource::HttpBearer);
    }
}

/// The errors no signed test token can produce (a payload that is not base64url under a valid
/// signature, a key of another family) still say what is wrong, not "invalid signature": the 401
/// description and the metrics reason tell the operator where to look.
#[test]
fn decoding_errors_are_reported_as_what_they_are() {
    let base64 = base64::DecodeError::InvalidByte(0, b'!');
    for (kind, expected) in [
        (
            ErrorKind::Base64(base64),
            AuthError::Malformed("a part is not base64url".into()),
        ),
        (
            ErrorKind::InvalidToken,
            AuthError::Malformed("not a valid JWT".into()),
        ),
        (
            ErrorKind::InvalidAlgorithm,
            AuthError::UnsupportedAlgorithm("(does not match the key)".into()),
        ),
        (
            ErrorKind::UnsupportedAlgorithm,
            AuthError::UnsupportedAlgorithm("(does not match the key)".into()),
        ),
        (
            ErrorKind::Utf8(String::from_utf8(vec![0xff]).unwrap_err()),
            AuthError::Malformed("the claims are not a JSON object".into()),
        ),
        (ErrorKind::InvalidSignature, AuthError::InvalidSignature),
    ] {
        assert_eq!(map_jwt_error(kind), expected);
    }
}

#[tokio::test]
async fn debug_names_what_an_operator_checks_and_nothing_else() {
    let issuer = serve_issuer().await;
    let v = verifier_for(&issuer, "email");
    // Load the key cache so that there is something it must leave out.
    v.verify(&issuer.mint_claims(claims(&issuer)))
        .await
        .unwrap();
    let shown = format!("{v:?}");
    for part in [
        issuer.issuer_url().to_string(),
        AUDIENCE.into(),
        issuer.jwks_url(),
    ] {
        assert!(shown.contains(&part), "{part} missing from {shown}");
    }
    assert!(
        !shown.contains("Jwk"),
        "the key cache is not dumped: {shown}"
    );
}

#[tokio::test]
async fn audience_array_containing_this_server_is_accepted() {
    let issuer = serve_issuer().await;
    let mut c = claims(&issuer);
    c["aud"] = json!(["other-api", AUDIENCE]);
    let user = verifier_for(&issuer, "email")
        .verify(&issuer.mint_claims(c))
        .await
        .unwrap();
    assert_eq!(user.user_id, "alice@example.com");
}

#[tokio::test]
async fn forged_and_invalid_tokens_are_refused_with_the_right_error() {
    let issuer = serve_issuer().await;
    let v = verifier_for(&issuer, "email");
    let good = claims(&issuer);
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c[key] = value;
        c
    };
    let other_issuer = TestIssuer::new(issuer.issuer_url().to_string());
    // Flip one character in the middle of the signature.
    let signed = issuer.mint_claims(good.clone());
    let at = signed.rfind('.').unwrap() + 100;
    let flipped = if &signed[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &signed[..at], &signed[at + 1..]);
    let mut no_user = good.clone();
    no_user.as_object_mut().unwrap().remove("email");
    let mut no_kid = Header::new(Algorithm::RS256);
    no_kid.kid = Some("not-published".into());

    let cases: Vec<(&str, String, AuthError)> = vec![
        ("empty", String::new(), AuthError::Missing),
        (
            "garbage",
            "not-a-jwt".into(),
            AuthError::Malformed("expected three dot-separated parts (a signed JWT)".into()),
        ),
        (
            "alg none",
            issuer.unsigned_token(&good),
            AuthError::UnsupportedAlgorithm("none".into()),
        ),
        (
            "HS256 keyed with the public key",
            issuer.hs256_with_public_key(&good),
            AuthError::UnsupportedAlgorithm("HS256".into()),
        ),
        (
            "RS384 not configured",
            issuer.sign_with_header(
                {
                    let mut h = Header::new(Algorithm::RS384);
                    h.kid = Some(issuer.kid());
                    h
                },
                &good,
            ),
            AuthError::UnsupportedAlgorithm("RS384".into()),
        ),
        (
            "unknown kid",
            issuer.sign_with_header(no_kid, &good),
            AuthError::UnknownKey("not-published".into()),
        ),
        (
            "signed by another key with the same kid",
            other_issuer.sign_with_header(
                {
                    let mut h = Header::new(Algorithm::RS256);
                    h.kid = Some(issuer.kid());
                    h
                },
                &good,
            ),
            AuthError::InvalidSignature,
        ),
        ("tampered signature", tampered, AuthError::InvalidSignature),
        (
            "wrong issuer",
            issuer.mint_claims(with("iss", json!("https://evil.example"))),
            AuthError::WrongIssuer,
        ),
        (
            "no issuer",
            {
                let mut c = good.clone();
                c.as_object_mut().unwrap().remove("iss");
                issuer.mint_claims(c)
            },
            AuthError::WrongIssuer,
        ),
        (
            "wrong audience",
            issuer.mint_claims(with("aud", json!("https://other.example/mcp"))),
            AuthError::WrongAudience,
        ),
        (
            "no audience",
            {
                let mut c = good.clone();
                c.as_object_mut().unwrap().remove("aud");
                issuer.mint_claims(c)
            },
            AuthError::WrongAudience,
        ),
        (
            "expired",
            issuer.mint_claims(with("exp", json!(now() - 60))),
            AuthError::Expired,
        ),
        (
            "no exp",
            {
                let mut c = good.clone();
                c.as_object_mut().unwrap().remove("exp");
                issuer.mint_claims(c)
            },
            AuthError::Malformed("the `exp` claim is missing".into()),
        ),
        (
            "not yet valid",
            issuer.mint_claims(with("nbf", json!(now() + 600))),
            AuthError::NotYetValid,
        ),
        (
            "nbf of the wrong type",
            issuer.mint_claims(with("nbf", json!("tomorrow"))),
            AuthError::Malformed("the `nbf` claim has the wrong type".into()),
        ),
        (
            "claims that are not an object",
            issuer.sign_with_header(
                {
                    let mut h = Header::new(Algorithm::RS256);
                    h.kid = Some(issuer.kid());
                    h
                },
                &json!(["alice@example.com"]),
            ),
            AuthError::Malformed("the claims are not a JSON object".into()),
        ),
        (
            "no user claim",
            issuer.mint_claims(no_user),
            AuthError::MissingUserClaim("email".into()),
        ),
        (
            "empty user claim",
            issuer.mint_claims(with("email", json!("  "))),
            AuthError::MissingUserClaim("email".into()),
        ),
        (
            "numeric user claim",
            issuer.mint_claims(with("email", json!(42))),
            AuthError::MissingUserClaim("email".into()),
        ),
    ];
    for (name, token, expected) in cases {
        let got = v.verify(&token).await;
        assert_eq!(got, Err(expected), "case {name}");
        if let Err(e) = got
            && token.len() > 20
        {
            assert!(
                !e.to_string().contains(&token[token.len() - 20..]),
                "{name}: error leaks the token"
            );
        }
    }
}

#[tokio::test]
async fn leeway_accepts_small_clock_skew() {
    let issuer = serve_issuer().await;
    let mut c = claims(&issuer);
    c["exp"] = json!(now() - 2);
    c["nbf"] = json!(now() + 2);
    assert!(
        verifier_for(&issuer, "email")
            .verify(&issuer.mint_claims(c))
            .await
            .is_ok()
    );
}

/// The readiness probe's check: a fetch only when no fresh keys are cached, and an error when
/// the keys cannot be had.
#[tokio::test]
async fn ensure_keys_fetches_only_when_no_fresh_keys_are_cached() {
    let issuer = serve_issuer().await;
    let v = verifier_for(&issuer, "email");
    assert_eq!(v.ensure_keys().await, Ok(()));
    assert_eq!(issuer.jwks_requests(), 1, "the first probe fetches");
    assert_eq!(v.ensure_keys().await, Ok(()));
    v.verify(&issuer.mint_claims(claims(&issuer)))
        .await
        .unwrap();
    assert_eq!(issuer.jwks_requests(), 1, "fresh keys are reused");

    // Keys past their cache time are fetched again, though some are cached.
    let mut cfg = issuer.oauth_config();
    cfg.jwks_cache_secs = 0;
    let stale = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap();
    assert_eq!(stale.ensure_keys().await, Ok(()));
    assert_eq!(stale.ensure_keys().await, Ok(()));
    assert_eq!(issuer.jwks_requests(), 3);

    // No issuer listening: not ready, and the reason names the JWKS.
    cfg.jwks_url = "http://127.0.0.1:9/keys".into();
    let unreachable = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap();
    assert!(
        matches!(unreachable.ensure_keys().await, Err(AuthError::JwksUnavailable(ref why)) if why.contains("127.0.0.1:9/keys")),
        "{:?}",
        unreachable.ensure_keys().await
    );
}

#[tokio::test]
async fn jwks_is_cached_and_refetched_once_for_an_unknown_kid() {
    let issuer = serve_issuer().await;
    let v = verifier_for(&issuer, "email");
    for _ in 0..20 {
        v.verify(&issuer.mint_claims(claims(&issuer)))
            .await
            .unwrap();
    }
    assert_eq!(
        issuer.jwks_requests(),
        1,
        "one fetch serves many verifications"
    );

    // Key rotation: the new kid is unknown to the cache, one refetch finds it.
    issuer.rotate_key();
    v.verify(&issuer.mint_claims(claims(&issuer)))
        .await
        .unwrap();
    assert_eq!(issuer.jwks_requests(), 2);

    // A flood of unknown kids does not reach the issuer again (rate limit).
    for i in 0..20 {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(format!("random-{i}"));
        let err = v
            .verify(&issuer.sign_with_header(h, &claims(&issuer)))
            .await;
        assert_eq!(err, Err(AuthError::UnknownKey(format!("random-{i}"))));
    }
    assert_eq!(issuer.jwks_requests(), 2);
}

#[tokio::test]
async fn user_claim_is_taken_verbatim_and_email_must_be_verified() {
    let issuer = serve_issuer().await;
    let v = verifier_for(&issuer, "email");
    let with = |pairs: &[(&str, Value)]| {
        let mut c = claims(&issuer);
        for (k, val) in pairs {
            c[*k] = val.clone();
        }
        issuer.mint_claims(c)
    };
    for bad in [
        "bob@example.com\u{a0}",
        "\tbob@example.com",
        "bob@example.com\u{3000}",
        "bob@example.com\n",
        "\u{2003}bob@example.com",
        "bob\u{200b}@example.com",
        "bob@example.com\u{feff}",
        "bob\u{202e}@example.com",
        "bob\u{0}@example.com",
    ] {
        let got = v.verify(&with(&[("email", json!(bad))])).await;
        assert!(
            matches!(got, Err(AuthError::UnacceptableUserClaim { ref claim, .. }) if claim == "email"),
            "{bad:?}: {got:?}"
        );
    }
    let mut unverified = claims(&issuer);
    unverified["email"] = json!("bob@example.com");
    unverified["email_verified"] = json!(false);
    assert_eq!(
        v.verify(&issuer.mint_claims(unverified.clone())).await,
        Err(AuthError::EmailNotVerified)
    );
    unverified["email_verified"] = json!("false");
    assert_eq!(
        v.verify(&issuer.mint_claims(unverified.clone())).await,
        Err(AuthError::EmailNotVerified)
    );
    unverified.as_object_mut().unwrap().remove("email_verified");
    assert_eq!(
        v.verify(&issuer.mint_claims(unverified.clone())).await,
        Err(AuthError::EmailNotVerified),
        "absent email_verified is refused when required"
    );
    let user = v
        .verify(&with(&[
            ("email", json!("bob@example.com")),
            ("email_verified", json!(true)),
        ]))
        .await
        .unwrap();
    assert_eq!(user.user_id, "bob@example.com");
    // A few IdPs send the string "true"; it is the same assertion (and "false" is refused above).
    let user = v
        .verify(&with(&[
            ("email", json!("bob@example.com")),
            ("email_verified", json!("true")),
        ]))
        .await
        .unwrap();
    assert_eq!(user.user_id, "bob@example.com");
    // Only the email claim needs email_verified; and the check can be turned off.
    let by_sub = verifier_for(&issuer, "sub");
    assert_eq!(
        by_sub
            .verify(&issuer.mint_claims(unverified.clone()))
            .await
            .unwrap()
            .user_id,
        "00u-alice"
    );
    let mut cfg = issuer.oauth_config();
    cfg.require_email_verified = false;
    let lax = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap();
    assert_eq!(
        lax.verify(&issuer.mint_claims(unverified))
            .await
            .unwrap()
            .user_id,
        "bob@example.com"
    );
    // The same rule holds for a white-space-padded `sub`.
    let padded_sub = with(&[("sub", json!(" 00u-alice"))]);
    assert!(matches!(
        by_sub.verify(&padded_sub).await,
        Err(AuthError::UnacceptableUserClaim { .. })
    ));
}

#[tokio::test]
async fn stdio_user_is_held_to_the_same_rule() {
    use crate::config::IdentityConfig;
    use crate::identity::resolve_stdio_user;
    for bad in [
        "bob@example.com\u{a0}",
        "\tbob@example.com",
        "bob@example.com\n",
        "b\u{200b}ob",
    ] {
        let cfg = IdentityConfig {
            stdio_user: Some(bad.into()),
            ..Default::default()
        };
        let err = resolve_stdio_user(&cfg, None).await.unwrap_err();
        assert!(
            matches!(&err, AuthError::NotConfigured(m) if m.contains("identity.stdio_user")),
            "{bad:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn typ_and_token_age_are_checked_when_configured() {
    let issuer = serve_issuer().await;
    let mut cfg = issuer.oauth_config();
    cfg.required_typ = Some("at+jwt".into());
    cfg.max_token_age_secs = Some(3600);
    cfg.leeway_secs = 5;
    let v = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap();
    let signed = |typ: Option<&str>, c: Value| {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(issuer.kid());
        h.typ = typ.map(str::to_string);
        issuer.sign_with_header(h, &c)
    };
    let good = claims(&issuer);
    assert!(
        v.verify(&signed(Some("at+jwt"), good.clone()))
            .await
            .is_ok()
    );
    assert!(
        v.verify(&signed(Some("application/AT+JWT"), good.clone()))
            .await
            .is_ok()
    );
    for typ in [Some("JWT"), None] {
        assert!(
            matches!(
                v.verify(&signed(typ, good.clone())).await,
                Err(AuthError::Malformed(_))
            ),
            "{typ:?}"
        );
    }
    let mut long = good.clone();
    long["exp"] = json!(now() + 7200);
    let mut old = good.clone();
    old["iat"] = json!(now() - 7200);
    let mut future = good.clone();
    future["iat"] = json!(now() + 600);
    let mut no_iat = good.clone();
    no_iat.as_object_mut().unwrap().remove("iat");
    for (name, c) in [
        ("long", long.clone()),
        ("old", old),
        ("future", future),
        ("no iat", no_iat),
    ] {
        assert!(
            matches!(
                v.verify(&signed(Some("at+jwt"), c)).await,
                Err(AuthError::TokenLifetime(_))
            ),
            "{name}"
        );
    }
    // The limits themselves are allowed: a lifetime of exactly the maximum, and an `iat` exactly
    // the leeway ahead of this server's clock (an IdP whose clock runs that far ahead).
    let mut exact = good.clone();
    exact["iat"] = json!(now());
    exact["exp"] = json!(now() + 3600);
    assert!(v.verify(&signed(Some("at+jwt"), exact)).await.is_ok());
    let mut ahead = good.clone();
    ahead["iat"] = json!(now() + 5);
    ahead["exp"] = json!(now() + 5 + 300);
    assert!(v.verify(&signed(Some("at+jwt"), ahead)).await.is_ok());
    // Off by default: the same long-lived, untyped token passes.
    let default = verifier_for(&issuer, "email");
    assert!(default.verify(&signed(None, long)).await.is_ok());
}

/// A JWKS endpoint that can hold requests from the `block_from`-th on until released,
/// and can fail on demand.
struct GatedJwks {
    issuer: TestIssuer,
    requests: std::sync::atomic::AtomicUsize,
    block_from: usize,
    arrived: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
    fail: std::sync::atomic::AtomicBool,
}

async fn gated_jwks(block_from: usize) -> Arc<GatedJwks> {
    use axum::extract::State;
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let gate = Arc::new(GatedJwks {
        issuer: TestIssuer::new(url),
        requests: Default::default(),
        block_from,
        arrived: tokio::sync::Notify::new(),
        release: tokio::sync::Semaphore::new(0),
        fail: Default::default(),
    });
    async fn jwks(State(g): State<Arc<GatedJwks>>) -> axum::response::Response {
        use axum::response::IntoResponse;
        let n = g.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= g.block_from {
            g.arrived.notify_one();
            g.release.acquire().await.unwrap().forget();
        }
        if g.fail.load(Ordering::SeqCst) {
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        axum::Json(g.issuer.jwks()).into_response()
    }
    let app = axum::Router::new()
        .route("/jwks.json", axum::routing::get(jwks))
        .with_state(gate.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    gate
}

#[tokio::test]
async fn cached_keys_verify_while_an_unknown_kid_refetch_is_blocked() {
    let gate = gated_jwks(2).await;
    let issuer = &gate.issuer;
    let v = verifier_for(issuer, "email");
    let valid = issuer.mint_claims(claims(issuer));
    v.verify(&valid).await.unwrap(); // fetch #1 fills the cache

    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("not-published-yet".into());
    let unknown = issuer.sign_with_header(h, &claims(issuer));
    let pending = tokio::spawn({
        let v = v.clone();
        async move { v.verify(&unknown).await }
    });
    gate.arrived.notified().await; // fetch #2 has reached the JWKS and is held there

    // A token with a cached kid does not wait for the held fetch: it is verified
    // while that fetch is still held at the gate (an ordering check, no clock; the
    // bound only keeps a regression from hanging the test).
    let user = tokio::time::timeout(Duration::from_secs(60), v.verify(&valid))
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(user.user_id, "alice@example.com");
    assert!(
        !pending.is_finished(),
        "the cached-kid verification waited for the unknown-kid refetch to end"
    );
    // Other unknown-kid tokens queue behind the same single fetch, not a new one.
    gate.release.add_permits(1);
    assert_eq!(
        pending.await.unwrap(),
        Err(AuthError::UnknownKey("not-published-yet".into()))
    );
    assert_eq!(gate.requests.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_first_verifications_share_one_jwks_fetch() {
    let gate = gated_jwks(1).await;
    let issuer = &gate.issuer;
    let v = verifier_for(issuer, "email");
    let token = issuer.mint_claims(claims(issuer));
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let (v, token) = (v.clone(), token.clone());
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    gate.arrived.notified().await; // the first fetch is held at the JWKS
    gate.release.add_permits(5);
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().user_id, "alice@example.com");
    }
    assert_eq!(
        gate.requests.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the callers queued behind the fetch use its outcome"
    );
}

#[tokio::test]
async fn stale_keys_are_refreshed_in_the_background_at_most_once_per_interval() {
    let gate = gated_jwks(usize::MAX).await;
    let issuer = &gate.issuer;
    let mut cfg = issuer.oauth_config();
    cfg.jwks_cache_secs = 0; // every verification finds the keys past their TTL
    let v = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap();
    let token = issuer.mint_claims(claims(issuer));
    v.verify(&token).await.unwrap(); // the first fetch, in the foreground
    assert_eq!(v.background_refresh_started_at(), None);
    v.verify(&token).await.unwrap(); // stale but usable: verified now, refreshed behind
    let started = v.background_refresh_started_at();
    assert!(started.is_some(), "stale keys start a background refresh");
    for _ in 0..10 {
        v.verify(&token).await.unwrap();
    }
    assert_eq!(
        v.background_refresh_started_at(),
        started,
        "no second refresh within the minimum refetch interval"
    );
}

#[tokio::test]
async fn after_a_failed_fetch_the_jwks_is_not_fetched_again_for_a_while() {
    use std::sync::atomic::Ordering;
    let gate = gated_jwks(usize::MAX).await;
    let issuer = &gate.issuer;
    let v = verifier_for(issuer, "email");
    let token = issuer.mint_claims(claims(issuer));
    gate.fail.store(true, Ordering::SeqCst);
    let err = v.verify(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::JwksUnavailable(_)), "{err:?}");
    // The issuer recovers at once, but a flood of tokens does not hammer it: the next ones are
    // refused without a fetch until the back-off ends.
    gate.fail.store(false, Ordering::SeqCst);
    for _ in 0..5 {
        let err = v.verify(&token).await.unwrap_err();
        assert!(
            matches!(err, AuthError::JwksUnavailable(ref why) if why.contains("retrying")),
            "{err:?}"
        );
    }
    assert_eq!(gate.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn stale_keys_are_trusted_only_up_to_jwks_max_stale_secs() {
    use std::sync::atomic::Ordering;
    let gate = gated_jwks(usize::MAX).await;
    let issuer = &gate.issuer;
    let token = issuer.mint_claims(claims(issuer));
    let mut cfg = issuer.oauth_config();
    cfg.jwks_cache_secs = 0; // every verification finds the keys past their TTL
    cfg.jwks_max_stale_secs = 3600;
    let tolerant = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap();
    cfg.jwks_max_stale_secs = 0;
    let strict = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap();
    tolerant.verify(&token).await.unwrap();
    strict.verify(&token).await.unwrap();

    gate.fail.store(true, Ordering::SeqCst);
    // Within the stale window the old keys still verify (the refresh fails in the background).
    tolerant.verify(&token).await.unwrap();
    // Past it they are dropped: the token is refused until a fetch succeeds again.
    let err = strict.verify(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::JwksUnavailable(_)), "{err:?}");
}

#[tokio::test]
async fn unreachable_jwks_is_reported() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let issuer = TestIssuer::new(url);
    let v = verifier_for(&issuer, "email");
    let err = v
        .verify(&issuer.mint_claims(claims(&issuer)))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::JwksUnavailable(_)), "{err:?}");
    assert!(err.to_string().contains("/jwks.json"), "{err}");
}

#[test]
fn symmetric_or_unknown_configured_algorithms_are_rejected() {
    let issuer = TestIssuer::new("http://127.0.0.1:9".into());
    let mut cfg = issuer.oauth_config();
    cfg.algorithms = vec!["RS256".into(), "HS256".into()];
    let err = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap_err();
    assert!(err.to_string().contains("shared-secret"), "{err}");
    cfg.algorithms = vec!["XX999".into()];
    let err = JwtVerifier::new(&cfg, AUDIENCE, test_http()).unwrap_err();
    assert!(err.to_string().contains("unknown algorithm"), "{err}");
}

#[tokio::test]
async fn stdio_identity_from_config_and_id_token() {
    use crate::config::{IdentityConfig, SecretRef};
    use crate::identity::resolve_stdio_user;

    let plain = IdentityConfig {
        stdio_user: Some("bob@example.com".into()),
        ..Default::default()
    };
    let user = resolve_stdio_user(&plain, None).await.unwrap();
    assert_eq!(user.user_id, "bob@example.com");
    assert_eq!(user.source, IdentitySource::StdioConfig);

    let none = IdentityConfig::default();
    assert!(matches!(
        resolve_stdio_user(&none, None).await,
        Err(AuthError::NotConfigured(_))
    ));

    let issuer = serve_issuer().await;
    let v = verifier_for(&issuer, "email");
    let token = issuer.mint("alice@example.com", AUDIENCE, Duration::from_secs(300));
    let with_token = IdentityConfig {
        stdio_user: Some("Alice@Example.com".into()),
        stdio_id_token: Some(SecretRef::Value(token.clone())),
        oauth: Some(issuer.oauth_config()),
        ..Default::default()
    };
    let user = resolve_stdio_user(&with_token, Some(&v)).await.unwrap();
    assert_eq!(user.user_id, "alice@example.com");
    assert_eq!(user.source, IdentitySource::StdioIdToken);

    let mismatch = IdentityConfig {
        stdio_user: Some("mallory@example.com".into()),
        ..with_token.clone()
    };
    let err = resolve_stdio_user(&mismatch, Some(&v)).await.unwrap_err();
    assert!(matches!(err, AuthError::UserMismatch { .. }), "{err:?}");
    assert!(!err.to_string().contains(&token));

    let mut old = claims(&issuer);
    old["exp"] = json!(now() - 600);
    let expired = IdentityConfig {
        stdio_id_token: Some(SecretRef::Value(issuer.mint_claims(old))),
        ..with_token.clone()
    };
    let wrong_aud = IdentityConfig {
        stdio_id_token: Some(SecretRef::Value(issuer.mint(
            "alice@example.com",
            "other",
            Duration::from_secs(60),
        ))),
        ..with_token.clone()
    };
    assert_eq!(
        resolve_stdio_user(&expired, Some(&v)).await,
        Err(AuthError::Expired)
    );
    assert_eq!(
        resolve_stdio_user(&wrong_aud, Some(&v)).await,
        Err(AuthError::WrongAudience)
    );
    assert!(matches!(
        resolve_stdio_user(&with_token, None).await,
        Err(AuthError::NotConfigured(_))
    ));
}
