//! The agent's Snowflake key-pair JWT.
//!
//! Loads the agent user's PKCS#8 RSA private key (plain, or encrypted with a
//! passphrase — PBES2 with AES or the DES3 that Snowflake's guide shows;
//! PKCS#1 `RSA PRIVATE KEY` is accepted too), computes the public key
//! fingerprint Snowflake registers (`SHA256:` + base64 of SHA-256 over the DER
//! SubjectPublicKeyInfo), and signs RS256 JWTs with
//! `iss = ACCOUNT.USER.SHA256:<fp>`, `sub = ACCOUNT.USER`, `exp = iat + 59 min`.
//! A token is reused until it is within [`KeyPairJwt::RENEW_MARGIN`] of its
//! expiry. The key and tokens are held as [`Secret`]s / redacted keys and
//! never appear in errors or logs.

use crate::secret::Secret;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header value that tells Snowflake the bearer token is a key-pair JWT.
pub const TOKEN_TYPE: &str = "KEYPAIR_JWT";

/// Why the agent key cannot be used. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the Snowflake private key is not PEM (expected -----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----)"
    )]
    NotPem,
    #[error("the Snowflake private key is encrypted: set snowflake.private_key_passphrase")]
    PassphraseRequired,
    #[error(
        "cannot decrypt the Snowflake private key (wrong passphrase or unsupported cipher): {0}"
    )]
    Decrypt(String),
    #[error("the Snowflake private key is not a valid RSA key: {0}")]
    Invalid(String),
    #[error("cannot sign the Snowflake key-pair JWT: {0}")]
    Sign(String),
}

/// The agent's RSA key, ready to sign, with its registered fingerprint.
pub struct AgentKey {
    encoding: EncodingKey,
    fingerprint: String,
    /// Standard base64 of the DER SubjectPublicKeyInfo (public; what
    /// `ALTER USER ... SET RSA_PUBLIC_KEY = '...'` takes).
    public_key_base64: String,
}

impl std::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl AgentKey {
    /// Load a PEM private key; `passphrase` is needed when it is encrypted.
    pub fn from_pem(pem: &Secret, passphrase: Option<&Secret>) -> Result<Self, KeyError> {
        // Keys pasted into env vars often carry literal "\n".
        let text = pem.expose().replace("\\n", "\n");
        let text = text.trim();
        let key = if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            let pass = passphrase.ok_or(KeyError::PassphraseRequired)?;
            RsaPrivateKey::from_pkcs8_encrypted_pem(text, pass.expose().as_bytes())
                .map_err(|e| KeyError::Decrypt(e.to_string()))?
        } else if text.contains("-----BEGIN PRIVATE KEY-----") {
            RsaPrivateKey::from_pkcs8_pem(text).map_err(|e| KeyError::Invalid(e.to_string()))?
        } else if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            RsaPrivateKey::from_pkcs1_pem(text).map_err(|e| KeyError::Invalid(e.to_string()))?
        } else {
            return Err(KeyError::NotPem);
        };
        Self::from_private_key(&key)
    }

    fn from_private_key(key: &RsaPrivateKey) -> Result<Self, KeyError> {
        let spki = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let fingerprint = fingerprint_of_spki_der(spki.as_bytes());
        let pkcs1 = key
            .to_pkcs1_der()
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(Self {
            encoding: EncodingKey::from_rsa_der(pkcs1.as_bytes()),
            fingerprint,
            public_key_base64: base64::engine::general_purpose::STANDARD.encode(spki.as_bytes()),
        })
    }

    /// The public key as `ALTER USER ... SET RSA_PUBLIC_KEY` takes it (base64 DER, no PEM lines).
    pub fn public_key_base64(&self) -> &str {
        &self.public_key_base64
    }

    /// `SHA256:<base64>` — what `DESC USER` shows as `RSA_PUBLIC_KEY_FP`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// `SHA256:` + standard base64 of SHA-256 over a DER SubjectPublicKeyInfo.
pub fn fingerprint_of_spki_der(der: &[u8]) -> String {
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(der))
    )
}

/// The account part of the JWT claims: upper-case, without region or
/// cloud suffix (`xy12345.us-east-1` → `XY12345`), as Snowflake's drivers do.
pub fn jwt_account(account: &str) -> String {
    let account = account.trim();
    let account = account.split('.').next().unwrap_or(account);
    account.to_ascii_uppercase()
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    iat: u64,
    exp: u64,
}

struct CachedJwt {
    token: Secret,
    expires_at: SystemTime,
}

/// Signs and caches key-pair JWTs for the agent user, per account.
pub struct KeyPairJwt {
    key: AgentKey,
    user: String,
    cache: Mutex<HashMap<String, CachedJwt>>,
}

impl std::fmt::Debug for KeyPairJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPairJwt")
            .field("user", &self.user)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl KeyPairJwt {
    /// Lifetime of a signed token (Snowflake accepts at most one hour).
    pub const LIFETIME: Duration = Duration::from_secs(59 * 60);
    /// A cached token is renewed when it has less than this left.
    pub const RENEW_MARGIN: Duration = Duration::from_secs(5 * 60);

    pub fn new(key: AgentKey, user: &str) -> Self {
        Self {
            key,
            user: user.trim().to_ascii_uppercase(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn fingerprint(&self) -> &str {
        self.key.fingerprint()
    }

    /// The agent key's public half (base64 DER).
    pub fn public_key_base64(&self) -> &str {
        self.key.public_key_base64()
    }

    /// The agent user, upper-cased as the JWT names it.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// `ACCOUNT.USER`, the JWT subject.
    pub fn subject(&self, account: &str) -> String {
        format!("{}.{}", jwt_account(account), self.user)
    }

    /// A valid JWT for `account`, reused while it has more than the renew margin left.
    pub fn token(&self, account: &str) -> Result<Secret, KeyError> {
        self.token_at(account, SystemTime::now())
    }

    /// [`Self::token`] with an explicit clock (for tests of renewal).
    pub fn token_at(&self, account: &str, now: SystemTime) -> Result<Secret, KeyError> {
        let account_key = jwt_account(account);
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = cache.get(&account_key)
            && c.expires_at > now + Self::RENEW_MARGIN
        {
            return Ok(c.token.clone());
        }
        let (token, expires_at) = self.sign(&account_key, now)?;
        cache.insert(
            account_key,
            CachedJwt {
                token: token.clone(),
                expires_at,
            },
        );
        Ok(token)
    }

    /// Forget cached tokens (e.g. after Snowflake rejected one).
    pub fn forget(&self) {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }

    fn sign(&self, account: &str, now: SystemTime) -> Result<(Secret, SystemTime), KeyError> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| KeyError::Sign("system clock is before 1970".into()))?
            .as_secs();
        let exp = iat + Self::LIFETIME.as_secs();
        let sub = self.subject(account);
        let iss = format!("{sub}.{}", self.key.fingerprint);
        let claims = Claims {
            iss: &iss,
            sub: &sub,
            iat,
            exp,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key.encoding)
                .map_err(|e| KeyError::Sign(e.to_string()))?;
        Ok((Secret::new(token), UNIX_EPOCH + Duration::from_secs(exp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};

    /// Throwaway test key made with `openssl pkcs8 -topk8 -v2 des3` (Snowflake's guide), passphrase below.
    const DES3_PEM: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQITib6fR34QV4CAggA
MAwGCCqGSIb3DQIJBQAwFAYIKoZIhvcNAwcECE+W4LZ2JDPCBIIEyDSuCdGnJZJd
NiVl8hPSBDVl11LFztjLnaVHvLCgQ2fGNewM3H7v/Z/LmGBzaauI0T/gxcwIRoSd
gyJU/qa/5HKIeJ1PNwbhNeyYXnBNBwt+srnwEZfcNX/2SfBwgUp1q6BjOWVHpv2P
+L27RIzsfbTlSsWw6XbMyP01JQHvFH6xi+HFTFv0TJmWIVFVrqABA8LGIJ8qajUW
SP17B44f+NjtVnJ/SrBK8jgFDbu39732pkcf8l2Iw9BBDc5J7w/lvp+SjjrGFg3x
mIrpD5EaAaCan3K6BRjeD4VzAjd3NVqXC4Z/ILJAUmfDRahr1AqqU9wlIJUSBYtc
cg8CeQojMSANcoUxgyVojhMfzL8Nx28ghKKc0OUI7Bqo7N47bV/Ls7jBaTmjbP7E
41VB1zx6F1UhFNTr9A9z+uEczk2csWWpnEhO/R+UcuDAQuTyVEdYW5fnDTIGbq3q
LtFpuXp2SAnIgBAu6p+rw/8OOvYwnMMOJd5SAHLIIILjVsTnpzKi7Ee8rgxVz5oB
C+GhGs+geo9J5ozssxQOSVb8DN/v7nZIVVE4wyR+31IxOLfsvla4d3k7NwYqoaCm
hBT6UlkchZmdJZKgTpH05jbImG+dZN7IvOV99HYKH59U08XKfYcMuGTmNSJ5eFJu
TbZgUcd+2P8b0tltDyIEX6HrJB6iWPqrZNFS62dBi3ZrvZiYHtiYFIqoD7hbVFbX
Sdg3eFVZBS8P1qajdOyUPXHf6OJJcQFcDzPjzg+Ogiqf1fi8RLQYvHx4SRbTOOke
85AVRt2K6yolYXJqK685xVSGSNADef9E8L5yykrULqlj7j2xLwPWIzwTxUomyicz
lmO9X7PR8nIrQKLffe+3m80GdqaDgTrjr4xjRRuQ2oBJH9hgTVZ4GOwdonWjXgmR
GMcEp3/nxzLZtKJhzDULg5hluq6BD+yGHlMQ/7Mk7iAMdMXyORGlpY3rgyR+dOXY
IfFBAaA3QLZrPPd+UKIY1sNZ8te1NrHNaCBSuZi/wLKbAHXJ1vjpTGCyikZHKMjv
KQ1owxNAhZ9YeTdk2f2gLAUj2NVn1bORp2NyVTzYijt/ZZljIlzplv1HszQDPyIs
jhP00hsLGACi+0unm1dOQk9lEJPHei9GRFJmD2Xh4rVveWvcrl8H/IqDnfrLgGi4
06Brc+Veut5tdw2l6A1/1axLWT/TAGnQe0MXJtlADBTUXKgmUfhhs8C6RB+mdoOS
c+iGgG7Wf9+yNQBFk/HGKsWxaAi5ntKlIlYymf5enTQMc6Dga68RadP0+6jdCr3F
P8J8qC3fZXPlXBFH/xlTjPyg6Zp/7/9u6EnaOsCBvOZNZxhMOGyil0SX7ZqoLRss
HJUKDzz/rbhg5l1Q17FTTUbUDf/ZVXOhtGh/quv1vJOF/U3u/Q5JBVJx+jG6gMR2
HIAlqikGazix9dV5sSrcaqAP2WVQvbe/eDDISuAg5dA9w5kh1c0vzCX+HEGbSdPS
lEF7lHriT6o+xJ66Fo9BkE+kGI9+Z6gQYKIa7ePKkcIyC07G05/0YVjPIatGB05z
uigouhjl9DsqLtj1OVLL8LaDcMRyRFRHjpYLoCtUe7LfO01D95jPsbtm2AxVbUYZ
r6j62/IftZ7U+R5tL4E6ig==
-----END ENCRYPTED PRIVATE KEY-----";

    /// The same key, `openssl pkcs8 -topk8 -v2 aes-256-cbc`.
    const AES_PEM: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIIFLTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQIB67pnGfRUb8CAggA
MAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBD6c9ARXayN1nAjm/Wh9RwmBIIE
0B5DRxMWRUDojdkc1jCWBEvFlHccAv5cOinYL5Tl7RUwHOQOI8ZnUETBWQD6ZKVm
a/d7ot8RfAxgrFnly574bkuOf9/9buPQAf9Ip4i7zN+J6wGfSX7bVrB4acVSI9x2
RBrG9q7N3P49QKBg1NpT6uH/qREufHjVyzvh7mIfrmTRDvFlJ7Qp13RwXpgLbk5Z
eLDoh/BqpzzMQzbwKqfjGZnyAlGUFyIfPMChN3LVc/I/DdVg63H0ZJRcIvLiT8l6
HJ2EbOiFw2wCBiUDO+/pWXBaa7qkPBFenXHAj9zqP73Pc74MggMIMsbkGupf9nYU
vzd88hryxTZY6wLl8fX8UhXCCNsFfJk+6Do9jEBa0HlGqFzH/cJxcWVNjfvTnoBF
dqoXrw+ber+yEEixlkCCw/RtGlf3tHQhOVID6Obvm+PltCYwU2Jg95LWO+KA1Y57
Ic/DG7JDsNDBY04wdDHczq7Z4B6bFG4i8HP/53hhQqHqqHf1kdoAWXLyFG+AA58U
QDEyloJjnwNmFDS8tAmoFUuhMjwmoo7AruQrifr0UrPk+EuXTJSpkEnFGq+OSnDO
Hk1NHtDoyLd4P7dH4HRD61wXUck40LhbOso6BJMLn7kO9n/F3RY52ul/t5yJrkfs
87wxkz8ZZhBSQlG4W8XEIyaUYNtnI/HnpY4UYI0dmgM3AeSvuwOTYwTp/mwUt0Dm
K7qe0O0SNGGzmLtz9e/3+qzopz6AMPiE78VhnpTTyfzLvqeOeVxb0rkPCU7itf+F
Ld7ECTpoiggRBGn8LtS6Rf8vZrQZBRxVA0riyYHVYLW/6N5+SrFNwiPLGnV99JLx
O41ILJRwvvpRXyvZB8X84q92oKNSsiYFloHvaCkBEkkyA9v2c+5/S6KaGvGd4TwI
0m/YErYxyvkB577AMsvNTm8V+bHhcWfmIktkyFWmU+PnsUcDPWbVOq8+EDKCadWm
DPRkMJXB0cElr6yKEq6yOFd3VFUUJ/b7MxBeIB3THJG9xtKBEczuGkkOwdVD6FvC
y6nf2Q1ZXrZSXvBf41suV704Vx2uOSYRRAzEge2wD1QHTLxXlZTM5sa7N2a6V5IV
eCowFo5idHW5E9uGYDEEHtD2NfQ5EfMQQQXfg5096FMv4XARTQHsDpnWIWUv7jou
P99N8aAL+AhyHTVsMIes5hameoNdgvVcgiqimP3gG6gEcTy+RLzx0GSfn9sF8LSa
aj2iHm15c8AxZrINhvOCZj+yQKYG3nqLlWrT1EzeTHyxAwK/bEZ5zSQ9AxtP9mmb
SwYfiH+RnunE7gfEwZCDj5KUaSy7xVDCE1wggoxfjdu9EbfOfru1e5/usM/5d11X
koZs70xvH3jfXXWX/1mOqRoOeHut3J79bSsqopFyFL9ensaTLAOTXNPEGEyaH48t
IyT14dwf9toeEdNQ/eJ5bPoJyqeeADG2oX0xNnxvb31ZbSTOIMAp1RyyC6eWhHHr
qlPiYSxuEiVVsh6fZk0dgF1LXP02MRSBeI1W6Jz29TEoUsUDM63paABlj4HIQ9VD
wLD258Xrk3/MRzAnZchorY30Rr6L54Z2XAFT7zkXc2+0etruVz+Jvqs+0TzDCWb8
n31fIXYcmOHRUIKI2fb7Fewi2/mKPXDOpV0jFUk6odVm
-----END ENCRYPTED PRIVATE KEY-----";

    const PASSPHRASE: &str = "test-passphrase";
    /// `openssl rsa -pubout -outform DER | openssl dgst -sha256 -binary | base64` of the key above.
    const OPENSSL_FINGERPRINT: &str = "SHA256:bBsbk0I3soJTI7VbgSMfPtl2uZuH5ewqBPJxjtBp7vg=";

    fn fresh_key() -> RsaPrivateKey {
        RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap()
    }

    #[derive(serde::Deserialize)]
    struct Decoded {
        iss: String,
        sub: String,
        iat: u64,
        exp: u64,
    }

    fn verify(token: &Secret, key: &RsaPrivateKey) -> Decoded {
        let pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Decoded>(
            token.expose(),
            &DecodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            &v,
        )
        .unwrap()
        .claims
    }

    #[test]
    fn encrypted_openssl_keys_load_and_match_openssls_fingerprint() {
        let pass = Secret::new(PASSPHRASE);
        for pem in [DES3_PEM, AES_PEM] {
            let key = AgentKey::from_pem(&Secret::new(pem), Some(&pass)).unwrap();
            assert_eq!(key.fingerprint(), OPENSSL_FINGERPRINT);
        }
    }

    #[test]
    fn encrypted_key_needs_the_right_passphrase() {
        let pem = Secret::new(DES3_PEM);
        assert!(matches!(
            AgentKey::from_pem(&pem, None),
            Err(KeyError::PassphraseRequired)
        ));
        let err = AgentKey::from_pem(&pem, Some(&Secret::new("hunter2-guess"))).unwrap_err();
        assert!(matches!(err, KeyError::Decrypt(_)), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        assert!(matches!(
            AgentKey::from_pem(&Secret::new("not a key"), None),
            Err(KeyError::NotPem)
        ));
    }

    #[test]
    fn plain_key_signs_a_jwt_snowflake_accepts() {
        let rsa_key = fresh_key();
        let pem = rsa_key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = AgentKey::from_pem(&Secret::new(pem.as_str()), None).unwrap();
        let spki = rsa_key.to_public_key().to_public_key_der().unwrap();
        assert_eq!(key.fingerprint(), fingerprint_of_spki_der(spki.as_bytes()));
        let fp = key.fingerprint().to_string();
        let jwt = KeyPairJwt::new(key, "immuta_agent");
        let token = jwt.token("sandbox01.us-east-1").unwrap();
        let claims = verify(&token, &rsa_key);
        assert_eq!(claims.sub, "SANDBOX01.IMMUTA_AGENT");
        assert_eq!(claims.iss, format!("SANDBOX01.IMMUTA_AGENT.{fp}"));
        assert_eq!(claims.exp - claims.iat, 59 * 60);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(claims.iat <= now && claims.iat + 60 >= now);
    }

    #[test]
    fn pkcs1_pem_with_escaped_newlines_is_accepted() {
        let rsa_key = fresh_key();
        let pem = rsa_key.to_pkcs1_pem(LineEnding::LF).unwrap();
        let escaped = pem.replace('\n', "\\n");
        let key = AgentKey::from_pem(&Secret::new(escaped), None).unwrap();
        let spki = rsa_key.to_public_key().to_public_key_der().unwrap();
        assert_eq!(key.fingerprint(), fingerprint_of_spki_der(spki.as_bytes()));
    }

    #[test]
    fn token_is_reused_then_renewed_before_expiry() {
        let key =
            AgentKey::from_pem(&Secret::new(AES_PEM), Some(&Secret::new(PASSPHRASE))).unwrap();
        let jwt = KeyPairJwt::new(key, "agent");
        let t0 = SystemTime::now();
        let first = jwt.token_at("acct", t0).unwrap();
        let again = jwt
            .token_at("acct", t0 + Duration::from_secs(50 * 60))
            .unwrap();
        assert_eq!(first, again, "reused while more than the margin is left");
        let renewed = jwt
            .token_at("acct", t0 + Duration::from_secs(55 * 60))
            .unwrap();
        assert_ne!(first, renewed, "renewed inside the margin");
        let other = jwt.token_at("other", t0).unwrap();
        assert_ne!(other, renewed, "one token per account");
        assert!(!format!("{jwt:?}").contains(first.expose()));
    }

    #[test]
    fn account_drops_region_and_is_upper_case() {
        assert_eq!(jwt_account("xy12345.us-east-1.aws"), "XY12345");
        assert_eq!(jwt_account("myorg-acct"), "MYORG-ACCT");
    }

    // Tests added for surviving mutants (scripts/mutants.sh).

    fn aes_jwt() -> KeyPairJwt {
        let key =
            AgentKey::from_pem(&Secret::new(AES_PEM), Some(&Secret::new(PASSPHRASE))).unwrap();
        KeyPairJwt::new(key, " immuta_agent ")
    }

    /// A whole second, as JWT `iat`/`exp` are: the renewal boundary is then exact.
    fn whole_second_now() -> SystemTime {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_token_is_renewed_exactly_when_only_the_margin_is_left() {
        let jwt = aes_jwt();
        let t0 = whole_second_now();
        let first = jwt.token_at("acct", t0).unwrap();
        // Expires at t0 + 59 min; reused while more than 5 min are left.
        let just_before = t0 + Duration::from_secs(54 * 60 - 1);
        assert_eq!(jwt.token_at("acct", just_before).unwrap(), first);
        let at_margin = t0 + Duration::from_secs(54 * 60);
        let renewed = jwt.token_at("acct", at_margin).unwrap();
        assert_ne!(renewed, first, "exactly the margin left is not enough");
        let claims = verify(
            &renewed,
            &RsaPrivateKey::from_pkcs8_encrypted_pem(AES_PEM, PASSPHRASE).unwrap(),
        );
        assert_eq!(
            UNIX_EPOCH + Duration::from_secs(claims.iat),
            at_margin,
            "the renewed token is issued now"
        );
    }

    #[test]
    fn forget_makes_the_next_call_sign_a_new_token() {
        let jwt = aes_jwt();
        let t0 = whole_second_now();
        let first = jwt.token_at("acct", t0).unwrap();
        let later = t0 + Duration::from_secs(60);
        assert_eq!(jwt.token_at("acct", later).unwrap(), first);
        jwt.forget();
        assert_ne!(jwt.token_at("acct", later).unwrap(), first);
    }

    #[test]
    fn debug_output_names_user_and_fingerprint_but_no_key_or_token() {
        let jwt = aes_jwt();
        let token = jwt.token("acct").unwrap();
        let shown = format!("{jwt:?}");
        assert_eq!(
            shown,
            format!(
                "KeyPairJwt {{ user: \"IMMUTA_AGENT\", key: AgentKey {{ fingerprint: \"{OPENSSL_FINGERPRINT}\", .. }}, .. }}"
            )
        );
        assert!(!shown.contains(token.expose()));
        assert_eq!(jwt.subject("xy12345.eu-west-1"), "XY12345.IMMUTA_AGENT");
        assert_eq!(jwt.fingerprint(), OPENSSL_FINGERPRINT);
    }
}
