//! One sandbox emulator (the Snowflake or the Databricks router) served alone
//! on a loopback port, over a fresh `SandboxState`, for the tests that drive
//! an emulator's HTTP API directly with a plain client.

use immuta_mcp::sandbox::engine::Engine;
use immuta_mcp::sandbox::fixture::Fixture;
use immuta_mcp::sandbox::state::{SandboxCredentials, SandboxSettings, SandboxState, SandboxUrls};
use std::sync::{Arc, OnceLock};

/// The agent credentials of these emulators: generated once per process
/// (an RSA key takes a while), a clone per state.
pub fn credentials() -> SandboxCredentials {
    static CREDS: OnceLock<SandboxCredentials> = OnceLock::new();
    CREDS
        .get_or_init(|| SandboxCredentials::generate().expect("sandbox credentials"))
        .clone()
}

/// Serve `router` over a new state of `fixture` and `settings` on 127.0.0.1:0;
/// returns the state and the emulator's base URL.
pub async fn serve(
    fixture: &Fixture,
    settings: SandboxSettings,
    router: fn(Arc<SandboxState>) -> axum::Router,
) -> (Arc<SandboxState>, String) {
    let engine = Engine::new(fixture).expect("engine");
    let state = Arc::new(SandboxState::new(
        engine,
        credentials(),
        settings,
        SandboxUrls::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    immuta_mcp::http_client::install_crypto_provider();
    let app = router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (state, url)
}
