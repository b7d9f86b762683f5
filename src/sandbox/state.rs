//! State shared by the three emulators: the engine, fault knobs, generated
//! credentials, settings, the record of requests seen, the executed-statement
//! log and the credential epoch.

use crate::result::Platform;
use crate::sandbox::engine::Engine;
use crate::sandbox::faults::{Endpoint, Faults};
use crate::sandbox::variants::SandboxVariants;
use base64::Engine as _;
use rsa::RsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Semantic counters tests assert on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    VendsCreated,
    PatsCreated,
    PatsRemoved,
    OAuthTokensIssued,
    StatementsExecuted,
    StatementsCancelled,
}

/// One statement an emulator ran through the engine, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutedStatement {
    pub platform: Platform,
    /// Snowflake role name / Databricks group id the statement ran as.
    pub role: String,
    /// The Immuta user the role was vended for.
    pub user: String,
    pub sql: String,
    pub statement_id: String,
}

/// One request an emulator received (faulted ones included), as the fault
/// layer saw it: tests read idempotency keys and bodies from it.
#[derive(Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub endpoint: Endpoint,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The raw request body (it may hold a credential: never formatted by `Debug`).
    pub body: bytes::Bytes,
}

impl SeenRequest {
    /// The first value of query parameter `name` (percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_deref()?.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl std::fmt::Debug for SeenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenRequest")
            .field("endpoint", &self.endpoint)
            .field("query", &self.query)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// Bearer credentials the emulators handed out (PAT secrets, OAuth access
/// tokens, Immuta session tokens), so tests can look for each one verbatim.
/// `Debug` shows only how many.
#[derive(Default)]
struct IssuedCredentials(Vec<String>);

impl std::fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedCredentials({} redacted)", self.0.len())
    }
}

/// Credentials generated for one sandbox start.
#[derive(Clone)]
pub struct SandboxCredentials {
    /// The agent's Immuta API key (fresh per start).
    pub immuta_api_key: String,
    pub agent_id: String,
    /// `SANDBOX01`.
    pub snowflake_account: String,
    /// `IMMUTA_AGENT`.
    pub snowflake_user: String,
    /// PKCS#8 PEM of the agent's RSA-2048 key (generated at start).
    pub snowflake_private_key_pem: String,
    /// `SHA256:<base64 SHA-256 of the DER SubjectPublicKeyInfo>`.
    pub snowflake_public_key_fingerprint: String,
    pub databricks_client_id: String,
    /// Service principal secret (fresh per start).
    pub databricks_client_secret: String,
    pub warehouse_id: String,
    /// Further agents of a pool ([`SandboxSettings::agents`] − 1), each with
    /// its own Immuta API key and Snowflake service user and key.
    pub extra_agents: Vec<AgentCredentials>,
}

/// One more agent identity the sandbox accepts.
#[derive(Clone)]
pub struct AgentCredentials {
    pub immuta_api_key: String,
    /// `IMMUTA_AGENT_<n>`.
    pub snowflake_user: String,
    pub snowflake_private_key_pem: String,
}

impl std::fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCredentials")
            .field("snowflake_user", &self.snowflake_user)
            .finish_non_exhaustive()
    }
}

impl AgentCredentials {
    /// Agent number `n` (2, 3, ...): a fresh API key and RSA-2048 key.
    pub fn generate(n: usize) -> Result<AgentCredentials, KeyError> {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .map_err(|e| KeyError(e.to_string()))?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError(e.to_string()))?;
        let token = || uuid::Uuid::new_v4().simple().to_string();
        Ok(AgentCredentials {
            immuta_api_key: format!("imm_{}{}", token(), token()),
            snowflake_user: format!("IMMUTA_AGENT_{n}"),
            snowflake_private_key_pem: pem.to_string(),
        })
    }
}

impl SandboxCredentials {
    /// The registered key's fingerprint (`RSA_PUBLIC_KEY_FP`) of agent user `user`, for
    /// the default agent and each agent of a pool.
    pub fn snowflake_fingerprint_of(&self, user: &str) -> Option<String> {
        if user.eq_ignore_ascii_case(&self.snowflake_user) {
            return Some(self.snowflake_public_key_fingerprint.clone());
        }
        let agent = self
            .extra_agents
            .iter()
            .find(|a| a.snowflake_user.eq_ignore_ascii_case(user))?;
        let key = RsaPrivateKey::from_pkcs8_pem(&agent.snowflake_private_key_pem).ok()?;
        let der = key.to_public_key().to_public_key_der().ok()?;
        Some(crate::snowflake::keypair::fingerprint_of_spki_der(
            der.as_bytes(),
        ))
    }

    /// True for the API key of any agent the sandbox hosts.
    pub fn is_immuta_api_key(&self, given: &str) -> bool {
        given == self.immuta_api_key || self.extra_agents.iter().any(|a| a.immuta_api_key == given)
    }

    /// Every agent's Snowflake (user, PKCS#8 PEM), the first agent first.
    pub fn snowflake_agents(&self) -> Vec<(String, String)> {
        std::iter::once((
            self.snowflake_user.clone(),
            self.snowflake_private_key_pem.clone(),
        ))
        .chain(self.extra_agents.iter().map(|a| {
            (
                a.snowflake_user.clone(),
                a.snowflake_private_key_pem.clone(),
            )
        }))
        .collect()
    }
}

impl std::fmt::Debug for SandboxCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxCredentials")
            .field("agent_id", &self.agent_id)
            .field("snowflake_account", &self.snowflake_account)
            .field("snowflake_user", &self.snowflake_user)
            .field(
                "snowflake_public_key_fingerprint",
                &self.snowflake_public_key_fingerprint,
            )
            .field("databricks_client_id", &self.databricks_client_id)
            .field("warehouse_id", &self.warehouse_id)
            .finish_non_exhaustive()
    }
}

/// Why credentials could not be generated.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate the sandbox agent key: {0}")]
pub struct KeyError(String);

impl SandboxCredentials {
    /// Fresh credentials: a new RSA-2048 key pair, API key, client secret and ids.
    /// RSA generation takes a moment; call it from a blocking context.
    pub fn generate() -> Result<SandboxCredentials, KeyError> {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .map_err(|e| KeyError(e.to_string()))?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError(e.to_string()))?;
        let spki = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| KeyError(e.to_string()))?;
        let fingerprint = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki.as_bytes()))
        );
        let token = || uuid::Uuid::new_v4().simple().to_string();
        Ok(SandboxCredentials {
            immuta_api_key: format!("imm_{}{}", token(), token()),
            agent_id: format!("agent-{}", &token()[..12]),
            snowflake_account: "SANDBOX01".into(),
            snowflake_user: "IMMUTA_AGENT".into(),
            snowflake_private_key_pem: pem.to_string(),
            snowflake_public_key_fingerprint: fingerprint,
            databricks_client_id: uuid::Uuid::new_v4().to_string(),
            databricks_client_secret: format!("dose{}", token()),
            warehouse_id: token()[..16].to_string(),
            extra_agents: Vec::new(),
        })
    }
}

/// Emulator behaviour knobs.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// Live PATs per Snowflake user at most (default 15).
    pub pat_limit_per_user: usize,
    /// Agent identities hosted (default 1): agent 1 is the one in
    /// `client_config`, agents 2.. are in [`SandboxCredentials::extra_agents`].
    pub agents: usize,
    /// Snowflake statements slower than this answer 202 (default 45 s, as Snowflake).
    pub snowflake_sync_wait: Duration,
    /// Rows per Snowflake result partition (default 10,000).
    pub partition_rows: usize,
    /// Rows per Databricks result chunk (default 10,000).
    pub databricks_chunk_rows: usize,
    /// Longest accepted key-pair JWT lifetime (default 1 h).
    pub max_jwt_lifetime: Duration,
    /// Private-preview variants to play (a fixture's `[sandbox]` table).
    pub variants: SandboxVariants,
    /// Lifetime of a bearer token from Immuta's `POST /bim/apikey/authenticate` (default 1 h).
    pub immuta_token_lifetime: Duration,
    /// The first N key-pair JWT requests to the Snowflake emulator are
    /// answered `401` code `390198` "Keypair access token expired." even
    /// though the JWT is valid: a client clock running slow (default 0).
    pub snowflake_expired_jwts: u32,
    /// Every Snowflake statement run by a PAT waits this long before the
    /// engine runs it, counted against its `timeout` (default 0): a slow
    /// warehouse, to play the 408 statement timeout.
    pub snowflake_statement_delay: Duration,
    /// Fault: the platforms ignore the on-behalf-of restriction (a
    /// misconfigured deployment that still answers 200). Snowflake runs a PAT's
    /// statements as the agent's own role [`AGENT_SNOWFLAKE_ROLE`] despite its
    /// `ROLE_RESTRICTION`; Databricks runs a token's statements as the service
    /// principal itself ([`AGENT_DATABRICKS_GROUP`], no group membership)
    /// despite `assume_group`. The agent's identity has no grants. Default false.
    pub ignore_obo_restriction: bool,
    /// Which of the agent accounts' prerequisites hold (a fixture's `[agent]` table).
    pub prerequisites: crate::sandbox::prerequisites::AgentPrerequisites,
}

/// The Snowflake role the agent user runs as when a PAT's restriction is ignored.
pub const AGENT_SNOWFLAKE_ROLE: &str = "IMMUTA_AGENT_ROLE";
/// The engine role of the Databricks service principal acting as itself.
pub const AGENT_DATABRICKS_GROUP: &str = "service-principal";

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            pat_limit_per_user: 15,
            agents: 1,
            snowflake_sync_wait: Duration::from_secs(45),
            partition_rows: 10_000,
            databricks_chunk_rows: 10_000,
            max_jwt_lifetime: Duration::from_secs(3600),
            variants: SandboxVariants::default(),
            immuta_token_lifetime: Duration::from_secs(3600),
            snowflake_expired_jwts: 0,
            snowflake_statement_delay: Duration::ZERO,
            ignore_obo_restriction: false,
            prerequisites: Default::default(),
        }
    }
}

/// Base URLs of the three emulators (`http://127.0.0.1:<port>`, no trailing slash).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxUrls {
    pub immuta: String,
    pub snowflake: String,
    pub databricks: String,
}

/// Everything the emulators share.
#[derive(Debug)]
pub struct SandboxState {
    pub engine: Engine,
    pub faults: Faults,
    pub creds: SandboxCredentials,
    pub settings: SandboxSettings,
    pub urls: SandboxUrls,
    requests: Mutex<HashMap<Endpoint, u64>>,
    seen: Mutex<Vec<SeenRequest>>,
    issued: Mutex<IssuedCredentials>,
    counters: Mutex<HashMap<Counter, u64>>,
    executed: Mutex<Vec<ExecutedStatement>>,
    epoch: AtomicU64,
    /// SHA-256 of each Databricks user token (as the Apps proxy forwards) → (user, expiry).
    databricks_user_tokens: Mutex<HashMap<[u8; 32], (String, std::time::SystemTime)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SandboxState {
    pub fn new(
        engine: Engine,
        creds: SandboxCredentials,
        settings: SandboxSettings,
        urls: SandboxUrls,
    ) -> SandboxState {
        engine.bind_agent_role(Platform::Snowflake, AGENT_SNOWFLAKE_ROLE);
        engine.bind_agent_role(Platform::Databricks, AGENT_DATABRICKS_GROUP);
        SandboxState {
            engine,
            faults: Faults::default(),
            creds,
            settings,
            urls,
            requests: Mutex::new(HashMap::new()),
            seen: Mutex::new(Vec::new()),
            issued: Mutex::new(IssuedCredentials::default()),
            counters: Mutex::new(HashMap::new()),
            executed: Mutex::new(Vec::new()),
            epoch: AtomicU64::new(0),
            databricks_user_tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Requests received by `ep` (faulted ones included).
    pub fn count(&self, ep: Endpoint) -> u64 {
        lock(&self.requests).get(&ep).copied().unwrap_or(0)
    }

    /// Requests received by every endpoint together.
    pub fn total_requests(&self) -> u64 {
        lock(&self.requests).values().sum()
    }

    /// Record one request to `ep` (the fault layer does this for every route).
    pub fn record_request(&self, ep: Endpoint, query: Option<&str>, body: &bytes::Bytes) {
        *lock(&self.requests).entry(ep).or_insert(0) += 1;
        lock(&self.seen).push(SeenRequest {
            endpoint: ep,
            query: query.map(str::to_string),
            body: body.clone(),
        });
    }

    /// Remember a bearer credential an emulator just issued.
    pub fn record_issued_credential(&self, secret: &str) {
        lock(&self.issued).0.push(secret.to_string());
    }

    /// Every bearer credential issued so far (PAT secrets, OAuth access tokens,
    /// Immuta session tokens), oldest first.
    pub fn issued_credentials(&self) -> Vec<String> {
        lock(&self.issued).0.clone()
    }

    /// Every request `ep` received so far (faulted ones included), oldest first.
    pub fn seen(&self, ep: Endpoint) -> Vec<SeenRequest> {
        lock(&self.seen)
            .iter()
            .filter(|r| r.endpoint == ep)
            .cloned()
            .collect()
    }

    /// Log a statement the engine ran (and bump [`Counter::StatementsExecuted`]).
    pub fn record_executed(&self, s: ExecutedStatement) {
        tracing::debug!(platform = %s.platform, role = %s.role, user = %s.user, statement_id = %s.statement_id, "sandbox statement executed");
        lock(&self.executed).push(s);
        self.bump(Counter::StatementsExecuted);
    }

    /// Every statement run so far, oldest first.
    pub fn executed(&self) -> Vec<ExecutedStatement> {
        lock(&self.executed).clone()
    }

    /// Tokens minted under an older epoch are expired.
    pub fn credential_epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Fault knob: every PAT / OAuth token issued so far is now expired.
    pub fn expire_credentials(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Issue a workspace OAuth token for `user`, as the Databricks Apps proxy
    /// forwards in `X-Forwarded-Access-Token` under user authorization. It is
    /// JWT-shaped (`sub`, `exp`; the signature is random) and known to the
    /// Databricks emulator's SCIM `Me` until it expires.
    pub fn issue_databricks_user_token(&self, user: &str, lifetime: Duration) -> String {
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let expires = std::time::SystemTime::now() + lifetime;
        let exp = expires
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let token = format!(
            "{}.{}.{}",
            b64(serde_json::json!({"alg": "RS256", "typ": "at+jwt"})),
            b64(serde_json::json!({"sub": user, "exp": exp, "scope": "iam.current-user.read"})),
            hex::encode(rand::random::<[u8; 32]>())
        );
        lock(&self.databricks_user_tokens).insert(
            Sha256::digest(token.as_bytes()).into(),
            (user.to_string(), expires),
        );
        self.record_issued_credential(&token);
        token
    }

    /// The user a live Databricks user token belongs to.
    pub fn databricks_user_of(&self, token: &str) -> Option<String> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        lock(&self.databricks_user_tokens)
            .get(&key)
            .filter(|(_, expires)| std::time::SystemTime::now() < *expires)
            .map(|(user, _)| user.clone())
    }

    pub fn bump(&self, c: Counter) {
        *lock(&self.counters).entry(c).or_insert(0) += 1;
    }

    pub fn counter(&self, c: Counter) -> u64 {
        lock(&self.counters).get(&c).copied().unwrap_or(0)
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), trimmed.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Replace a still-running statement outcome with `outcome`; a statement that
/// already finished keeps its outcome (a cancel wins over a late result).
pub fn settle_once<T>(
    cell: &tokio::sync::watch::Sender<T>,
    outcome: T,
    is_running: impl Fn(&T) -> bool,
) -> bool {
    cell.send_if_modified(|current| {
        if is_running(current) {
            *current = outcome;
            true
        } else {
            false
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::fixture::Fixture;
    use rsa::pkcs8::DecodePrivateKey;

    #[test]
    fn credentials_hold_a_usable_key_and_its_fingerprint() {
        let creds = SandboxCredentials::generate().unwrap();
        let key = RsaPrivateKey::from_pkcs8_pem(&creds.snowflake_private_key_pem).unwrap();
        let der = key.to_public_key().to_public_key_der().unwrap();
        let expect =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(der.as_bytes()));
        assert_eq!(
            creds.snowflake_public_key_fingerprint,
            format!("SHA256:{expect}")
        );
        let debug = format!("{creds:?}");
        assert!(!debug.contains(&creds.immuta_api_key));
        assert!(!debug.contains(&creds.databricks_client_secret));
        assert!(!debug.contains("PRIVATE KEY"));
        let state = SandboxState::new(
            Engine::new(&Fixture::demo()).unwrap(),
            creds,
            SandboxSettings::default(),
            SandboxUrls::default(),
        );
        state.record_request(
            Endpoint::ImmutaVend,
            Some("a=1&requestId=x%2By"),
            &bytes::Bytes::from_static(b"{\"userId\":\"alice\"}"),
        );
        state.expire_credentials();
        assert_eq!(state.count(Endpoint::ImmutaVend), 1);
        let seen = state.seen(Endpoint::ImmutaVend);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].query_param("requestId").as_deref(), Some("x+y"));
        assert_eq!(seen[0].query_param("retry"), None);
        assert_eq!(seen[0].json()["userId"], "alice");
        assert!(
            !format!("{seen:?}").contains("alice"),
            "bodies stay out of Debug"
        );
        assert!(state.seen(Endpoint::ImmutaStatus).is_empty());
        state.record_issued_credential("pat-secret-value");
        assert_eq!(state.issued_credentials(), ["pat-secret-value"]);
        assert!(!format!("{state:?}").contains("pat-secret-value"));
        assert_eq!(state.count(Endpoint::ImmutaStatus), 0);
        assert_eq!(state.credential_epoch(), 1);
    }
}
