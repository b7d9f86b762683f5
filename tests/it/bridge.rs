//! Rule: a desktop holds only its own tokens for the shared server, never a platform secret, and
//! each bridge answers as its own user.
//!
//! `immuta-mcp connect` end to end: the sandbox's HTTP server and
//! authorization server in this process, the bridge as a child process
//! driven over stdio by rmcp's client, sign-in approved by the test.

use crate::support::*;
use immuta_mcp::sandbox::authz::{AuthzRequestKind, AuthzSettings};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SF_ORDERS: &str = "SELECT ORDER_ID, REGION, EMAIL FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";
const ALICE_ORDERS: [&str; 4] = ["1001", "1002", "1005", "1007"];

/// The shared server with its authorization server ready for the bridge.
async fn shared_server(access_ttl: Duration) -> HttpEnv {
    let env = HttpEnv::start().await;
    let authz = &env.issuer.authz;
    authz.set_users(env.sandbox.state.engine.user_ids());
    authz.register_resource(env.url());
    // With two resources the authorization server cannot guess: the bridge must name its own.
    authz.register_resource("https://other.example/mcp");
    authz.set_settings(AuthzSettings {
        access_ttl,
        poll_interval_secs: 1,
        ..AuthzSettings::default()
    });
    env
}

type Captured = Arc<Mutex<Vec<u8>>>;

/// `immuta-mcp connect` as a child with a clean environment (PATH and a private HOME only).
struct Bridge {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    from_child: Option<tokio::io::DuplexStream>,
    stdout: Captured,
    stderr: Captured,
    home: PathBuf,
}

impl Bridge {
    /// With the file store (no OS keyring is touched).
    fn spawn(url: &str, store: &Path, home: &Path, extra: &[&str]) -> Bridge {
        let extra = [&["--token-backend", "file"], extra].concat();
        Bridge::spawn_with_env(url, store, home, &extra, &[])
    }

    /// With the default token backend and extra environment variables.
    fn spawn_with_env(
        url: &str,
        store: &Path,
        home: &Path,
        extra: &[&str],
        vars: &[(&str, &str)],
    ) -> Bridge {
        let mut child = tokio::process::Command::new(BIN)
            .arg("connect")
            .arg(url)
            .arg("--token-store")
            .arg(store)
            .args(["--no-browser", "--log", "info,immuta_mcp=debug"])
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn immuta-mcp connect");
        let stdout: Captured = Arc::default();
        let stderr: Captured = Arc::default();
        let (mut to_client, from_child) = tokio::io::duplex(1 << 20);
        let mut out = child.stdout.take().unwrap();
        let kept = stdout.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = out.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                kept.lock().unwrap().extend_from_slice(&buf[..n]);
                if to_client.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let kept = stderr.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                kept.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let stdin = child.stdin.take();
        Bridge {
            child,
            stdin,
            from_child: Some(from_child),
            stdout,
            stderr,
            home: home.to_path_buf(),
        }
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).to_string()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).to_string()
    }

    /// Start the MCP handshake in the background (it waits for the sign-in).
    fn initialize(
        &mut self,
    ) -> tokio::task::JoinHandle<Result<Client, rmcp::service::ClientInitializeError>> {
        use rmcp::ServiceExt;
        let transport = (self.from_child.take().unwrap(), self.stdin.take().unwrap());
        tokio::spawn(async move { Recorder::default().serve(transport).await })
    }

    /// The bridge process's environment, as the OS holds it.
    fn environment(&self) -> String {
        let pid = self.child.id().expect("the bridge is running");
        let raw = std::fs::read(format!("/proc/{pid}/environ"))
            .expect("read the bridge's environment from /proc (Linux)");
        String::from_utf8_lossy(&raw).replace('\0', "\n")
    }
}

/// The code the bridge printed on stderr, once the authorization server has it pending.
async fn printed_user_code(env: &HttpEnv, bridge: &Bridge, already: usize) -> String {
    eventually("a device authorization is pending", || {
        env.issuer.authz.pending_devices().len() > already
    })
    .await;
    let pending = env.issuer.authz.pending_devices();
    let mut code = None;
    eventually("the bridge prints the code on stderr", || {
        let err = bridge.stderr();
        code = pending
            .iter()
            .find(|p| err.contains(&p.user_code))
            .map(|p| p.user_code.clone());
        code.is_some()
    })
    .await;
    let code = code.unwrap();
    assert!(
        bridge
            .stderr()
            .contains(&env.issuer.authz.verification_uri()),
        "stderr names the verification URL:\n{}",
        bridge.stderr()
    );
    code
}

/// Spawn a bridge, approve its device login as `user`, return the initialized client.
async fn signed_in(env: &HttpEnv, store: &Path, home: &Path, user: &str) -> (Bridge, Client) {
    let bridge = Bridge::spawn(env.url(), store, home, &["--login", "device"]);
    approved(env, bridge, user).await
}

async fn approved(env: &HttpEnv, mut bridge: Bridge, user: &str) -> (Bridge, Client) {
    let handshake = bridge.initialize();
    let already = 0;
    let code = printed_user_code(env, &bridge, already).await;
    env.issuer
        .authz
        .approve_device(&code, user)
        .expect("approve the device code");
    let client = bounded("initialize through the bridge", handshake)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("initialize failed: {e}\nstderr:\n{}", bridge.stderr()));
    (bridge, client)
}

fn token_files(store: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(store)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn stored(store: &Path) -> Value {
    let files = token_files(store);
    assert_eq!(files.len(), 1, "one token file per server: {files:?}");
    serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_desktop_signs_in_as_its_user_and_holds_no_platform_secret() {
    let env = shared_server(Duration::from_secs(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let (store_a, store_b) = (dir.path().join("a"), dir.path().join("b"));

    let (bridge_a, alice) = signed_in(&env, &store_a, dir.path(), ALICE).await;
    let a = Rows::of(&call_ok(&alice, "query_snowflake", json!({"sql": SF_ORDERS})).await);
    assert_eq!(a.strings("ORDER_ID"), ALICE_ORDERS);
    assert!(a.strings("EMAIL").iter().all(|e| e == "***"));

    let (bridge_b, bob) = signed_in(&env, &store_b, dir.path(), BOB).await;
    let b = Rows::of(&call_ok(&bob, "query_snowflake", json!({"sql": SF_ORDERS})).await);
    assert_eq!(b.rows.len(), 8);
    assert!(b.strings("EMAIL").iter().all(|e| e.contains('@')));
    // Alice's bridge still answers as Alice.
    let whoami = text_of(&call_ok(&alice, "whoami", json!({})).await);
    assert!(whoami.contains(ALICE) && !whoami.contains(BOB), "{whoami}");

    // Nothing the platforms trust is on the "laptop": not in the bridges'
    // environment, their token files, or anything they printed.
    let secrets = sandbox_secrets(&env.sandbox);
    for (name, bridge, store) in [("A", &bridge_a, &store_a), ("B", &bridge_b, &store_b)] {
        let mut laptop = bridge.environment();
        for file in token_files(store) {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", file.display());
            }
            laptop.push_str(&std::fs::read_to_string(&file).unwrap());
        }
        assert!(laptop.contains("access_token"), "the token file was read");
        let names: Vec<String> = bridge
            .environment()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
            .collect();
        assert!(
            names.iter().all(|n| n == "PATH" || n == "HOME"),
            "the bridge needs no configuration but its URL: {names:?}"
        );
        assert!(
            bridge
                .environment()
                .contains(&bridge.home.display().to_string())
        );
        // The token file holds the bridge's own tokens for the shared server
        // (their audience is checked below); everything else on the laptop
        // must pass the leak check, JWT and bearer shapes included.
        let own = stored(store);
        for key in ["access_token", "refresh_token"] {
            if let Some(t) = own[key].as_str() {
                laptop = laptop.replace(t, &format!("<the bridge's own {key}>"));
            }
        }
        if let Err(leak) = find_secret(&laptop, &secrets) {
            panic!("bridge {name}'s environment or token store: {leak}");
        }
        // The bridge's own tokens never reach its stdout or stderr.
        let tokens = stored(store);
        // RFC 8707: the access token is for the shared server alone.
        let payload = tokens["access_token"]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap();
        use base64::Engine as _;
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], env.url());
        let output = format!("{}\n{}", bridge.stdout(), bridge.stderr());
        for key in ["access_token", "refresh_token"] {
            let t = tokens[key].as_str().unwrap();
            assert!(!output.contains(t), "bridge {name} printed its {key}");
        }
        if let Err(leak) = find_secret(&output, &secrets) {
            panic!("bridge {name}'s output: {leak}");
        }
    }
    assert_eq!(
        env.issuer
            .authz
            .successes(AuthzRequestKind::DeviceAuthorization),
        2
    );
    close(alice).await;
    close(bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_without_a_new_login() {
    let env = shared_server(Duration::from_secs(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (_bridge, alice) = signed_in(&env, &store, dir.path(), ALICE).await;
    let first = stored(&store)["access_token"].as_str().unwrap().to_string();
    call_ok(&alice, "whoami", json!({})).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let a = Rows::of(&call_ok(&alice, "query_snowflake", json!({"sql": SF_ORDERS})).await);
    assert_eq!(a.strings("ORDER_ID"), ALICE_ORDERS);
    let authz = &env.issuer.authz;
    assert!(authz.successes(AuthzRequestKind::TokenRefresh) >= 1);
    assert_eq!(authz.successes(AuthzRequestKind::DeviceAuthorization), 1);
    assert!(authz.pending_devices().is_empty());
    assert_ne!(stored(&store)["access_token"].as_str().unwrap(), first);
    close(alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_refresh_token_leads_to_a_new_login_not_a_call_as_the_old_user() {
    let env = shared_server(Duration::from_secs(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (bridge, client) = signed_in(&env, &store, dir.path(), ALICE).await;
    call_ok(&client, "query_snowflake", json!({"sql": SF_ORDERS})).await;
    assert_eq!(env.issuer.authz.revoke_refresh_tokens_of(ALICE), 1);
    let stored_before_relogin = stored(&store);
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let executed_before = env.sandbox.state.executed().len();
    let client = Arc::new(client);
    let pending_call = tokio::spawn({
        let client = Arc::clone(&client);
        async move { call_ok(&client, "query_snowflake", json!({"sql": SF_ORDERS})).await }
    });
    // A new sign-in is asked for; meanwhile nothing ran for anyone.
    let code = printed_user_code(&env, &bridge, 0).await;
    assert_eq!(env.sandbox.state.executed().len(), executed_before);
    assert!(!pending_call.is_finished());
    let refused = env
        .issuer
        .authz
        .requests()
        .iter()
        .filter(|r| r.kind == AuthzRequestKind::TokenRefresh)
        .filter(|r| r.error.as_deref() == Some("invalid_grant"))
        .count();
    assert_eq!(
        refused, 1,
        "the bridge tried the revoked refresh token once"
    );

    let stale = stored_before_relogin;
    env.issuer.authz.approve_device(&code, ALICE).unwrap();
    let rows = Rows::of(&bounded("the waiting call", pending_call).await.unwrap());
    assert_eq!(rows.strings("ORDER_ID"), ALICE_ORDERS);
    let last = env.sandbox.state.executed().last().cloned().unwrap();
    assert_eq!(last.user, ALICE);
    let fresh = stored(&store);
    assert_ne!(fresh["access_token"], stale["access_token"]);
    assert_ne!(fresh["refresh_token"], stale["refresh_token"]);
    assert_eq!(
        env.issuer
            .authz
            .successes(AuthzRequestKind::DeviceAuthorization),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_tokens_survive_a_restart_and_a_refused_token_is_refreshed_once() {
    let env = shared_server(Duration::from_secs(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (first, client) = signed_in(&env, &store, dir.path(), ALICE).await;
    close(client).await;
    drop(first);

    // The cached access token is damaged but not expired: the server answers 401.
    let files = token_files(&store);
    let mut tokens = stored(&store);
    tokens["access_token"] = json!("not-a-valid-token");
    std::fs::write(&files[0], tokens.to_string()).unwrap();

    let mut second = Bridge::spawn(env.url(), &store, dir.path(), &["--login", "device"]);
    let client = bounded("initialize from the cache", second.initialize())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("initialize failed: {e}\nstderr:\n{}", second.stderr()));
    let a = Rows::of(&call_ok(&client, "query_snowflake", json!({"sql": SF_ORDERS})).await);
    assert_eq!(a.strings("ORDER_ID"), ALICE_ORDERS);
    let authz = &env.issuer.authz;
    assert_eq!(authz.successes(AuthzRequestKind::DeviceAuthorization), 1);
    assert_eq!(authz.successes(AuthzRequestKind::TokenRefresh), 1);
    close(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sign_in_initialize_fails_with_one_clear_error() {
    let env = shared_server(Duration::from_secs(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut bridge = Bridge::spawn(
        env.url(),
        &dir.path().join("store"),
        dir.path(),
        &["--login", "device", "--login-timeout-secs", "2"],
    );
    let err = match bounded("initialize", bridge.initialize()).await.unwrap() {
        Ok(_) => panic!("initialize succeeded without a sign-in"),
        Err(e) => format!("{e:?}"),
    };
    assert!(
        err.contains("did not complete within 2 s"),
        "the error says why: {err}"
    );
    let frames: Vec<Value> = bridge
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).expect("only JSON-RPC frames on stdout"))
        .collect();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["error"]["code"], -32001);
    assert!(bridge.stderr().contains("enter the code"));
    assert_eq!(env.upstream_requests(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_with_pkce_and_a_loopback_redirect() {
    let env = shared_server(Duration::from_secs(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut bridge = Bridge::spawn(env.url(), &store, dir.path(), &["--login", "browser"]);
    let handshake = bridge.initialize();
    // Play the browser: open the printed address, approve as Alice, follow the redirect.
    let mut address = None;
    eventually("the bridge prints the sign-in address", || {
        address = bridge
            .stderr()
            .split_whitespace()
            .find(|w| w.contains("/authorize?"))
            .map(str::to_string);
        address.is_some()
    })
    .await;
    let address = url::Url::parse(&address.unwrap()).unwrap();
    let query: std::collections::HashMap<_, _> = address.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["resource"], env.url());
    assert!(query["redirect_uri"].starts_with("http://127.0.0.1:"));
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser
        .get(address.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let request_id = consent_request_id(&page);
    let decision = browser
        .post(address.join("/authorize/decision").unwrap())
        .form(&[
            ("request", request_id.as_str()),
            ("user", ALICE),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(decision.status(), 303);
    let location = decision.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&query["redirect_uri"]), "{location}");
    let landed = browser.get(&location).send().await.unwrap();
    assert!(landed.status().is_success());
    let client = bounded("initialize after the browser sign-in", handshake)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("initialize failed: {e}\nstderr:\n{}", bridge.stderr()));
    let a = Rows::of(&call_ok(&client, "query_snowflake", json!({"sql": SF_ORDERS})).await);
    assert_eq!(a.strings("ORDER_ID"), ALICE_ORDERS);
    assert_eq!(
        env.issuer
            .authz
            .successes(AuthzRequestKind::TokenAuthorizationCode),
        1
    );
    close(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_and_forgets_the_tokens() {
    let env = shared_server(Duration::from_secs(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (_bridge, client) = signed_in(&env, &store, dir.path(), ALICE).await;
    close(client).await;
    let refresh = stored(&store)["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (ok, out, err) = run_to_exit(&[
        "connect",
        env.url(),
        "--token-store",
        store.to_str().unwrap(),
        "--token-backend",
        "file",
        "--logout",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("signed out"), "{err}");
    assert!(token_files(&store).is_empty());
    assert_eq!(env.issuer.authz.successes(AuthzRequestKind::Revoke), 1);
    // The revoked refresh token no longer works at the authorization server.
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/token", env.issuer.issuer.issuer_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", "immuta-mcp"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["error"], "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_cancellation_cross_the_bridge() {
    use immuta_mcp::sandbox::{Counter, Endpoint, Fault};
    let env = shared_server(Duration::from_secs(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let (_bridge, alice) = signed_in(&env, &dir.path().join("store"), dir.path(), ALICE).await;
    // Warm up: with the PAT cached, the faults below hold the user's own statement.
    call_ok(&alice, "query_snowflake", json!({"sql": "SELECT 1"})).await;

    // Server → client: progress notifications on the POST's event stream.
    env.sandbox
        .faults()
        .add(Endpoint::SnowflakeSubmit, Fault::Pending { polls: 2 });
    let handle = start_call(&alice, "query_snowflake", json!({"sql": SF_ORDERS})).await;
    let token = handle.progress_token.clone();
    let response = bounded("held call", handle.await_response()).await.unwrap();
    assert!(matches!(
        response,
        rmcp::model::ServerResult::CallToolResult(_)
    ));
    eventually("progress notifications through the bridge", || {
        alice.service().progress_for(&token).len() >= 2
    })
    .await;

    // Client → server: cancelling the MCP request cancels the platform statement.
    let statuses = env.sandbox.state.count(Endpoint::SnowflakeStatus);
    env.sandbox.faults().add(
        Endpoint::SnowflakeSubmit,
        Fault::Pending { polls: 1_000_000 },
    );
    let handle = start_call(&alice, "query_snowflake", json!({"sql": SF_ORDERS})).await;
    eventually("the statement is polled", || {
        env.sandbox.state.count(Endpoint::SnowflakeStatus) > statuses
    })
    .await;
    assert_eq!(env.counter(Counter::StatementsCancelled), 0);
    bounded("cancel", handle.cancel(Some("stop".into())))
        .await
        .expect("cancellation sent");
    eventually("the platform statement is cancelled", || {
        env.counter(Counter::StatementsCancelled) == 1
    })
    .await;
    let rows =
        Rows::of(&call_ok(&alice, "query_snowflake", json!({"sql": "SELECT 1 AS one"})).await);
    assert_eq!(rows.strings("one"), ["1"]);
    close(alice).await;
}

/// A form POST to the authorization server; returns (status, JSON body).
async fn post_form(url: String, form: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_server_refuses_what_a_real_one_refuses() {
    let env = shared_server(Duration::from_secs(300)).await;
    let authz = &env.issuer.authz;
    let base = env.issuer.issuer.issuer_url().to_string();
    let resource = env.url().to_string();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let authorize = |redirect: &str, method: &str| {
        let mut u = url::Url::parse(&format!("{base}/authorize")).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", "immuta-mcp")
            .append_pair("redirect_uri", redirect)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", method)
            .append_pair("state", "s1")
            .append_pair("resource", &resource);
        u.to_string()
    };
    // RFC 8252: only IP loopback redirects; the error is shown, never redirected.
    for bad in ["https://evil.example/cb", "http://localhost:9/cb"] {
        let r = no_redirects
            .get(authorize(bad, "S256"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none());
    }
    // PKCE plain is refused (redirected back with an error, since the redirect is valid).
    let r = no_redirects
        .get(authorize("http://127.0.0.1:9/cb", "plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(location.contains("error=invalid_request") && location.contains("state=s1"));

    // A code is redeemed only with the right verifier, once.
    let page = no_redirects
        .get(authorize("http://127.0.0.1:9/cb", "S256"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let request_id = consent_request_id(&page);
    let r = no_redirects
        .post(format!("{base}/authorize/decision"))
        .form(&[
            ("request", request_id.as_str()),
            ("user", ALICE),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let redeem = |verifier: &'static str| {
        let (base, code) = (base.clone(), code.clone());
        async move {
            post_form(
                format!("{base}/token"),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", "http://127.0.0.1:9/cb"),
                    ("code_verifier", verifier),
                    ("client_id", "immuta-mcp"),
                ],
            )
            .await
        }
    };
    let (status, body) = redeem("wrong-verifier-wrong-verifier-wrong-verifier-00").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = redeem("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").await;
    assert_eq!(
        status, 400,
        "a code is single-use, even after a failed attempt"
    );

    // Device grant: unknown client, unregistered resource.
    let (status, body) = post_form(
        format!("{base}/device_authorization"),
        &[("client_id", "someone-else"), ("resource", &resource)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (_, body) = post_form(
        format!("{base}/device_authorization"),
        &[
            ("client_id", "immuta-mcp"),
            ("resource", "https://unregistered.example/mcp"),
        ],
    )
    .await;
    assert_eq!(body["error"], "invalid_target");

    // Pending, slow_down on a too-early poll, access_denied after a denial.
    let device = |()| {
        let (base, resource) = (base.clone(), resource.clone());
        async move {
            post_form(
                format!("{base}/device_authorization"),
                &[("client_id", "immuta-mcp"), ("resource", &resource)],
            )
            .await
            .1
        }
    };
    let poll = |device_code: String| {
        let base = base.clone();
        async move {
            post_form(
                format!("{base}/token"),
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", &device_code),
                    ("client_id", "immuta-mcp"),
                ],
            )
            .await
            .1["error"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }
    };
    let d = device(()).await;
    let dc = d["device_code"].as_str().unwrap().to_string();
    assert_eq!(poll(dc.clone()).await, "authorization_pending");
    assert_eq!(poll(dc.clone()).await, "slow_down");
    authz.deny_device(d["user_code"].as_str().unwrap()).unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await; // interval 1 s + 5 s after slow_down
    assert_eq!(poll(dc).await, "access_denied");

    // expired_token once the code's lifetime is over.
    authz.set_settings(AuthzSettings {
        device_code_ttl: Duration::from_millis(200),
        poll_interval_secs: 1,
        ..AuthzSettings::default()
    });
    let d = device(()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        poll(d["device_code"].as_str().unwrap().to_string()).await,
        "expired_token"
    );

    // Refresh rotation: a rotated token presented again revokes the family.
    authz.set_settings(AuthzSettings {
        poll_interval_secs: 1,
        ..AuthzSettings::default()
    });
    let d = device(()).await;
    authz
        .approve_device(d["user_code"].as_str().unwrap(), BOB)
        .unwrap();
    let (status, tokens) = post_form(
        format!("{base}/token"),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", d["device_code"].as_str().unwrap()),
            ("client_id", "immuta-mcp"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = |token: String| {
        let base = base.clone();
        async move {
            post_form(
                format!("{base}/token"),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("client_id", "immuta-mcp"),
                ],
            )
            .await
            .1
        }
    };
    let first = tokens["refresh_token"].as_str().unwrap().to_string();
    let rotated = refresh(first.clone()).await;
    let second = rotated["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(refresh(first).await["error"], "invalid_grant");
    assert_eq!(
        refresh(second).await["error"],
        "invalid_grant",
        "the replay revoked the rotated token's family"
    );
}

// ---------------------------------------------------------------------------------------------
// The OS keyring: a real Secret Service (GNOME Keyring) on a private D-Bus session bus.

/// `dbus-daemon` with a bus of its own in `dir` (no service activation, so
/// nothing but our daemon can own the Secret Service name) and
/// `gnome-keyring-daemon` on it, its login keyring created and unlocked with
/// a password on stdin, as headless CI sets it up. Both stop on drop.
struct SecretService {
    bus: std::process::Child,
    keyring: std::process::Child,
    address: String,
}

fn start_tool(cmd: &mut std::process::Command, tool: &str, package: &str) -> std::process::Child {
    cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run {tool} ({e}): the OS keyring tests need a real Secret Service; \
             install it with `apt-get install {package}` (.ci/run does)"
        )
    })
}

impl SecretService {
    fn start(dir: &Path) -> SecretService {
        SecretService::start_with(dir, true)
    }

    /// `unlock: false`: no login keyring and no prompter to create one, as on
    /// a headless machine where nobody ever signed in to a desktop.
    fn start_with(dir: &Path, unlock: bool) -> SecretService {
        use std::io::{BufRead, Write};
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let config = dir.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                dir.display()
            ),
        )
        .unwrap();
        let mut bus = start_tool(
            std::process::Command::new("dbus-daemon")
                .arg(format!("--config-file={}", config.display()))
                .args(["--nofork", "--print-address=1"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
            "dbus-daemon",
            "dbus",
        );
        let mut address = String::new();
        std::io::BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed {address:?}"
        );
        let mut keyring = start_tool(
            std::process::Command::new("gnome-keyring-daemon")
                .args(["--foreground", "--components=secrets"])
                .args(unlock.then_some("--unlock"))
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", dir)
                .env("XDG_DATA_HOME", dir.join("data"))
                .env("XDG_RUNTIME_DIR", dir.join("run"))
                .env("DBUS_SESSION_BUS_ADDRESS", &address)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "gnome-keyring-daemon",
            "gnome-keyring",
        );
        // --unlock reads the login keyring's password from stdin until EOF.
        let mut stdin = keyring.stdin.take().unwrap();
        if unlock {
            stdin.write_all(b"keyring-test-password").unwrap();
        }
        drop(stdin);
        let service = SecretService {
            bus,
            keyring,
            address,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !service.has_owner("org.freedesktop.secrets") {
            assert!(
                std::time::Instant::now() < deadline,
                "gnome-keyring-daemon did not take the Secret Service name on the bus"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        service
    }

    fn has_owner(&self, name: &str) -> bool {
        let out = std::process::Command::new("dbus-send")
            .args(["--session", "--print-reply", "--dest=org.freedesktop.DBus"])
            .args(["/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner"])
            .arg(format!("string:{name}"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("dbus-send (package dbus) is needed by the OS keyring tests");
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    /// Every item of service `immuta-mcp`, as libsecret's `secret-tool` reads
    /// it: (attribute.username, secret).
    fn entries(&self) -> Vec<(String, String)> {
        let out = std::process::Command::new("secret-tool")
            .args(["search", "--all", "service", "immuta-mcp"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("secret-tool (apt-get install libsecret-tools) reads the keyring back");
        // secret-tool prints label and secret on stdout, the attributes on stderr, in item order.
        let field = |text: &[u8], name: &str| -> Vec<String> {
            String::from_utf8_lossy(text)
                .lines()
                .filter_map(|l| l.strip_prefix(name).map(|v| v.to_string()))
                .collect()
        };
        let secrets = field(&out.stdout, "secret = ");
        let users = field(&out.stderr, "attribute.username = ");
        assert_eq!(secrets.len(), users.len(), "{out:?}");
        users.into_iter().zip(secrets).collect()
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        let _ = self.keyring.kill();
        let _ = self.keyring.wait();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

/// `immuta-mcp connect ARGS` to its exit, with PATH, HOME and `vars` only.
async fn connect_to_exit(
    args: &[&str],
    home: &Path,
    vars: &[(&str, &str)],
) -> (bool, String, String) {
    let out = bounded(
        "immuta-mcp connect exits",
        tokio::process::Command::new(BIN)
            .arg("connect")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_live_in_the_os_keyring_when_one_answers_and_logout_removes_them() {
    let env = shared_server(Duration::from_secs(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = SecretService::start(&dir.path().join("keyring"));
    let bus = [("DBUS_SESSION_BUS_ADDRESS", secrets.address.as_str())];
    let store = dir.path().join("store");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let key = immuta_mcp::bridge::store::store_key(env.url());

    // The default backend (auto) finds the Secret Service.
    let bridge = Bridge::spawn_with_env(env.url(), &store, &home, &["--login", "device"], &bus);
    let (bridge, alice) = approved(&env, bridge, ALICE).await;
    let rows = Rows::of(&call_ok(&alice, "query_snowflake", json!({"sql": SF_ORDERS})).await);
    assert_eq!(rows.strings("ORDER_ID"), ALICE_ORDERS);
    let err = bridge.stderr();
    assert_eq!(
        err.matches("tokens are kept in the OS keyring").count(),
        1,
        "said once which store holds the tokens:\n{err}"
    );
    assert!(!err.contains("kept in files"), "{err}");

    // The tokens are in the keyring, read back by another Secret Service client...
    let entries = secrets.entries();
    assert_eq!(
        entries.len(),
        1,
        "one entry per server (the probe entry is gone)"
    );
    assert_eq!(entries[0].0, key, "keyring user = the server's store key");
    let held: Value = serde_json::from_str(&entries[0].1).unwrap();
    assert_eq!(held["resource"], env.url());
    let access = held["access_token"].as_str().unwrap().to_string();
    let refresh = held["refresh_token"].as_str().unwrap().to_string();
    assert!(access.len() > 20 && refresh.len() > 20);
    // ...and nowhere on disk, nor in anything the bridge printed.
    assert!(
        token_files(&store).is_empty(),
        "no token file: {:?}",
        token_files(&store)
    );
    assert!(!home.join(".config/immuta-mcp").exists());
    for (what, text) in [("stdout", bridge.stdout()), ("stderr", bridge.stderr())] {
        assert!(
            !text.contains(&access) && !text.contains(&refresh),
            "{what} shows a token"
        );
    }
    close(alice).await;
    drop(bridge);

    // A new bridge process uses the tokens from the keyring: no new sign-in.
    let mut again = Bridge::spawn_with_env(env.url(), &store, &home, &["--login", "device"], &bus);
    let client = bounded("initialize with the keyring's tokens", again.initialize())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("initialize failed: {e}\nstderr:\n{}", again.stderr()));
    let whoami = text_of(&call_ok(&client, "whoami", json!({})).await);
    assert!(whoami.contains(ALICE), "{whoami}");
    assert_eq!(
        env.issuer
            .authz
            .successes(AuthzRequestKind::DeviceAuthorization),
        1,
        "no second sign-in"
    );
    close(client).await;
    drop(again);

    // --logout revokes and removes the keyring entry.
    let store_arg = store.to_str().unwrap();
    let (ok, out, err) = connect_to_exit(
        &[env.url(), "--token-store", store_arg, "--logout"],
        &home,
        &bus,
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.is_empty() && err.contains("signed out"), "{out}\n{err}");
    assert_eq!(secrets.entries(), Vec::<(String, String)>::new());
    assert_eq!(env.issuer.authz.successes(AuthzRequestKind::Revoke), 1);
    let (ok, _, err) = connect_to_exit(
        &[env.url(), "--token-store", store_arg, "--logout"],
        &home,
        &bus,
    )
    .await;
    assert!(ok && err.contains("no cached sign-in"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_keyring_auto_keeps_tokens_in_a_private_file_and_moves_them_in_later() {
    let env = shared_server(Duration::from_secs(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let dead_bus = format!("unix:path={}/no-bus-here", dir.path().display());
    let bus = [("DBUS_SESSION_BUS_ADDRESS", dead_bus.as_str())];
    let store = dir.path().join("store");
    let store_arg = store.to_str().unwrap();

    // Asked for the keyring alone, the bridge refuses to start rather than keep tokens elsewhere.
    let (ok, out, err) = connect_to_exit(
        &[
            env.url(),
            "--token-store",
            store_arg,
            "--token-backend",
            "keyring",
        ],
        dir.path(),
        &bus,
    )
    .await;
    assert!(!ok && out.is_empty(), "{out}\n{err}");
    assert!(
        err.contains("--token-backend keyring: no usable OS keyring"),
        "{err}"
    );

    // A Secret Service with no unlocked keyring (and no prompter) is no usable keyring either.
    let locked = SecretService::start_with(&dir.path().join("locked"), false);
    let locked_bus = [("DBUS_SESSION_BUS_ADDRESS", locked.address.as_str())];
    let (ok, _, err) = connect_to_exit(
        &[env.url(), "--token-store", store_arg, "--logout"],
        dir.path(),
        &locked_bus,
    )
    .await;
    assert!(ok, "{err}");
    let said = format!("tokens are kept in files under {}", store.display());
    assert!(
        err.contains("no usable OS keyring") && err.contains(&said),
        "{err}"
    );
    assert!(
        locked.entries().is_empty(),
        "the probe entry did not stay behind"
    );
    drop(locked);

    let bridge =
        Bridge::spawn_with_env(env.url(), &store, dir.path(), &["--login", "device"], &bus);
    let (bridge, alice) = approved(&env, bridge, ALICE).await;
    let rows = Rows::of(&call_ok(&alice, "query_snowflake", json!({"sql": SF_ORDERS})).await);
    assert_eq!(rows.strings("ORDER_ID"), ALICE_ORDERS);
    let err = bridge.stderr();
    let said = format!("tokens are kept in files under {}", store.display());
    assert_eq!(err.matches(&said).count(), 1, "{err}");
    assert!(err.contains("no usable OS keyring"), "{err}");
    let held = stored(&store);
    assert_eq!(held["resource"], env.url());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = &token_files(&store)[0];
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    close(alice).await;
    drop(bridge);

    // Once a keyring answers, the next bridge moves the file's tokens into it: no new sign-in.
    let secrets = SecretService::start(&dir.path().join("keyring"));
    let bus = [("DBUS_SESSION_BUS_ADDRESS", secrets.address.as_str())];
    let mut later =
        Bridge::spawn_with_env(env.url(), &store, dir.path(), &["--login", "device"], &bus);
    let client = bounded("initialize with the moved tokens", later.initialize())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("initialize failed: {e}\nstderr:\n{}", later.stderr()));
    let whoami = text_of(&call_ok(&client, "whoami", json!({})).await);
    assert!(whoami.contains(ALICE), "{whoami}");
    assert!(
        later.stderr().contains("moved the cached tokens"),
        "{}",
        later.stderr()
    );
    assert!(
        token_files(&store).is_empty(),
        "the file is gone once moved"
    );
    let entries = secrets.entries();
    assert_eq!(entries.len(), 1);
    let moved: Value = serde_json::from_str(&entries[0].1).unwrap();
    assert_eq!(moved["access_token"], held["access_token"]);
    assert_eq!(moved["refresh_token"], held["refresh_token"]);
    assert_eq!(
        env.issuer
            .authz
            .successes(AuthzRequestKind::DeviceAuthorization),
        1,
        "no second sign-in"
    );
    close(client).await;
}

/// The request id the authorization server's consent page carries (its hidden `request` field).
fn consent_request_id(page: &str) -> String {
    page.split("name=request value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the consent page carries the request id")
        .to_string()
}
