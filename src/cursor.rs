//! Continuation cursors: the `next_cursor` of a truncated result and the
//! argument of the `fetch_more` tool.
//!
//! A cursor names where a finished statement's result continues on the
//! platform (Snowflake result partition / Databricks result chunk, and the row
//! offset within it) and is authenticated with HMAC-SHA256 under a server key
//! ([`CursorCodec`]). It is bound to:
//! - the end user (a keyed tag of the user id, so a cursor does not reveal
//!   whose it is, and another user's cursor is refused by name);
//! - the platform and the statement id / handle;
//! - the position (partition or chunk index, row offset within it);
//! - the credential the statement ran under (a fingerprint of the Snowflake
//!   PAT's token name / the Databricks vend id): a page is read only with that
//!   same cached credential of that same user, never with another one;
//! - an expiry (unix seconds) no later than that credential's.
//!
//! Wire form: `base64url(payload JSON) "." base64url(tag)`, where the tag is
//! HMAC-SHA256 over a domain string and the encoded payload. The payload is
//! not encrypted (it holds no secret: a statement id the result shows anyway,
//! keyed or unkeyed hashes, numbers); it is opaque to clients by contract.
//!
//! The key comes from `server.cursor_key` (a secret reference, at least 32
//! bytes). Without it, [`CursorCodec::random`] makes a key per process, so
//! cursors die with the process (and are not valid on another replica).
//! Nothing here performs I/O: a refused cursor costs no upstream request.

use crate::result::Platform;
use crate::secret::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

/// Domain separation for the cursor MAC (bump the version with the format).
const MAC_DOMAIN: &[u8] = b"immuta-mcp cursor v1\n";
/// Domain separation for the user tag.
const USER_DOMAIN: &[u8] = b"immuta-mcp cursor user v1\n";
/// Payload format version.
const VERSION: u8 = 1;
/// Longest cursor text accepted (a real one is a few hundred characters).
pub const MAX_CURSOR_CHARS: usize = 4096;
/// Shortest accepted `server.cursor_key`, bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// Where a result continues on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagePosition {
    /// Snowflake partition index / Databricks chunk index.
    pub index: u64,
    /// Rows of that partition/chunk already returned.
    pub row_offset: u64,
}

impl PagePosition {
    /// The start of a result.
    pub const START: PagePosition = PagePosition {
        index: 0,
        row_offset: 0,
    };
}

/// What a verified cursor says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub platform: Platform,
    /// Snowflake statement handle / Databricks statement id.
    pub statement_id: String,
    pub position: PagePosition,
    /// [`credential_fingerprint`] of the credential the statement ran under.
    pub credential: String,
    /// Unix seconds after which the cursor is refused.
    pub expires_at: u64,
}

/// Why a cursor is refused. Every message says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error(
        "the cursor is malformed or incomplete: pass next_cursor exactly as a previous result returned it, or run the query again"
    )]
    Malformed,
    #[error(
        "the cursor failed its integrity check: it was altered, or issued by another server or before this server restarted; run the query again"
    )]
    BadSignature,
    #[error(
        "the cursor belongs to another user's result and cannot be used by {user}; run the query yourself"
    )]
    WrongUser { user: String },
    #[error("the cursor expired {ago} s ago; run the query again to read the rest of the result")]
    Expired { ago: u64 },
}

/// Why `server.cursor_key` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "server.cursor_key must be at least {MIN_KEY_BYTES} bytes (it has {0}); use e.g. `openssl rand -hex 32`"
)]
pub struct CursorKeyError(usize);

/// The payload as encoded (short names keep cursors short).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    v: u8,
    /// Platform.
    p: Platform,
    /// Statement id / handle.
    s: String,
    /// Partition / chunk index.
    i: u64,
    /// Row offset within it.
    o: u64,
    /// Keyed tag of the user id.
    u: String,
    /// Credential fingerprint.
    c: String,
    /// Expiry, unix seconds.
    e: u64,
}

impl Payload {
    /// The payload's JSON.
    #[expect(
        clippy::expect_used,
        reason = "a struct of integers, strings and a unit-variant enum always serializes to JSON"
    )]
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the payload serializes")
    }
}

/// HMAC-SHA256 under `key`.
#[expect(
    clippy::expect_used,
    reason = "HMAC takes keys of any length (RFC 2104 section 2: longer keys are hashed, shorter ones padded); hmac's new_from_slice never returns InvalidLength"
)]
fn keyed_mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// Seals and opens cursors under one server key (cheap to clone).
#[derive(Clone)]
pub struct CursorCodec {
    key: Arc<[u8; 32]>,
    ephemeral: bool,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorCodec")
            .field("key", &"<redacted>")
            .field("ephemeral", &self.ephemeral)
            .finish()
    }
}

impl CursorCodec {
    /// A codec keyed by the configured secret (at least [`MIN_KEY_BYTES`] bytes).
    pub fn from_secret(secret: &Secret) -> Result<Self, CursorKeyError> {
        let raw = secret.expose().as_bytes();
        if raw.len() < MIN_KEY_BYTES {
            return Err(CursorKeyError(raw.len()));
        }
        // Derive the working key so the configured text is used for nothing else.
        let mut mac = keyed_mac(raw);
        mac.update(b"immuta-mcp cursor key derivation v1");
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        Ok(Self {
            key: Arc::new(key),
            ephemeral: false,
        })
    }

    /// A codec with a random key for this process only: its cursors die with
    /// the process.
    pub fn random() -> Self {
        Self {
            key: Arc::new(rand::random::<[u8; 32]>()),
            ephemeral: true,
        }
    }

    /// True when the key was generated for this process.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    fn mac(&self) -> HmacSha256 {
        keyed_mac(&self.key[..])
    }

    fn user_tag(&self, user: &str) -> String {
        let mut mac = self.mac();
        mac.update(USER_DOMAIN);
        mac.update(user.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    fn tag(&self, encoded_payload: &str) -> HmacSha256 {
        let mut mac = self.mac();
        mac.update(MAC_DOMAIN);
        mac.update(encoded_payload.as_bytes());
        mac
    }

    /// The cursor text for `cursor`, bound to `user`.
    pub fn seal(&self, user: &str, cursor: &Cursor) -> String {
        let payload = Payload {
            v: VERSION,
            p: cursor.platform,
            s: cursor.statement_id.clone(),
            i: cursor.position.index,
            o: cursor.position.row_offset,
            u: self.user_tag(user),
            c: cursor.credential.clone(),
            e: cursor.expires_at,
        };
        let json = payload.encode();
        let body = URL_SAFE_NO_PAD.encode(json);
        let tag = self.tag(&body).finalize().into_bytes();
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Verify `text` for `user` at time `now`: integrity first, then the
    /// user, then the expiry. No I/O.
    pub fn open(&self, user: &str, text: &str, now: SystemTime) -> Result<Cursor, CursorError> {
        if text.len() > MAX_CURSOR_CHARS {
            return Err(CursorError::Malformed);
        }
        let (body, tag) = text.split_once('.').ok_or(CursorError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| CursorError::Malformed)?;
        if tag.len() != 32 {
            return Err(CursorError::Malformed);
        }
        self.tag(body)
            .verify_slice(&tag)
            .map_err(|_| CursorError::BadSignature)?;
        // Authentic from here on: anything odd is a server bug or an old format.
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CursorError::Malformed)?;
        let payload: Payload = serde_json::from_slice(&json).map_err(|_| CursorError::Malformed)?;
        if payload.v != VERSION {
            return Err(CursorError::Malformed);
        }
        if payload.u != self.user_tag(user) {
            return Err(CursorError::WrongUser {
                user: user.to_string(),
            });
        }
        let now = unix_secs(now);
        if now >= payload.e {
            return Err(CursorError::Expired {
                ago: now - payload.e,
            });
        }
        Ok(Cursor {
            platform: payload.p,
            statement_id: payload.s,
            position: PagePosition {
                index: payload.i,
                row_offset: payload.o,
            },
            credential: payload.c,
            expires_at: payload.e,
        })
    }
}

/// A short, stable fingerprint of a credential's (non-secret) identifier:
/// the Snowflake PAT's token name or the Databricks vend id.
pub fn credential_fingerprint(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    hex::encode(&digest[..12])
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice@example.com";
    const BOB: &str = "bob@example.com";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn sample() -> Cursor {
        Cursor {
            platform: Platform::Snowflake,
            statement_id: "01b2c3d4-0000-4000-8000-000000000001".into(),
            position: PagePosition {
                index: 3,
                row_offset: 17,
            },
            credential: credential_fingerprint("IMMUTA_MCP_ABCD_0001"),
            expires_at: 1_000,
        }
    }

    fn codec() -> CursorCodec {
        CursorCodec::from_secret(&Secret::new("k".repeat(MIN_KEY_BYTES))).unwrap()
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let codec = codec();
        let text = codec.seal(ALICE, &sample());
        assert_eq!(codec.open(ALICE, &text, at(999)).unwrap(), sample());
        let db = Cursor {
            platform: Platform::Databricks,
            ..sample()
        };
        assert_eq!(
            codec
                .open(ALICE, &codec.seal(ALICE, &db), at(0))
                .unwrap()
                .platform,
            Platform::Databricks
        );
        assert!(
            !text.contains(ALICE) && !text.contains("IMMUTA_MCP"),
            "{text}"
        );
        assert!(text.len() < 400, "{} chars", text.len());
    }

    #[test]
    fn any_changed_character_is_refused() {
        let codec = codec();
        let text = codec.seal(ALICE, &sample());
        for i in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered == text {
                continue;
            }
            let err = codec.open(ALICE, &tampered, at(0)).unwrap_err();
            assert!(
                matches!(err, CursorError::BadSignature | CursorError::Malformed),
                "position {i}: {err:?}"
            );
        }
    }

    #[test]
    fn a_changed_payload_with_the_old_tag_is_refused() {
        let codec = codec();
        let text = codec.seal(ALICE, &sample());
        let (_, tag) = text.split_once('.').unwrap();
        let forged_cursor = Cursor {
            position: PagePosition::START,
            ..sample()
        };
        let forged = codec.seal(ALICE, &forged_cursor);
        let (body, _) = forged.split_once('.').unwrap();
        assert_eq!(
            codec.open(ALICE, &format!("{body}.{tag}"), at(0)),
            Err(CursorError::BadSignature)
        );
    }

    #[test]
    fn truncated_and_empty_cursors_are_malformed() {
        let codec = codec();
        let text = codec.seal(ALICE, &sample());
        for bad in [
            "",
            ".",
            "abc",
            &text[..text.len() - 1],
            &text[..text.find('.').unwrap()],
        ] {
            let err = codec.open(ALICE, bad, at(0)).unwrap_err();
            assert!(
                matches!(err, CursorError::Malformed | CursorError::BadSignature),
                "{bad:?}: {err:?}"
            );
        }
        assert_eq!(
            codec.open(ALICE, &"a".repeat(MAX_CURSOR_CHARS + 1), at(0)),
            Err(CursorError::Malformed)
        );
        // The length limit comes before any MAC work and is inclusive: a text shaped like a
        // cursor (a body, a 32-byte tag) is refused as too long one character past the limit,
        // and checked (and found forged) at the limit.
        let tag = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let shaped = |len: usize| format!("{}.{tag}", "a".repeat(len - tag.len() - 1));
        assert_eq!(
            codec.open(ALICE, &shaped(MAX_CURSOR_CHARS + 1), at(0)),
            Err(CursorError::Malformed)
        );
        assert_eq!(
            codec.open(ALICE, &shaped(MAX_CURSOR_CHARS), at(0)),
            Err(CursorError::BadSignature)
        );
    }

    #[test]
    fn fingerprints_tell_credentials_apart() {
        let a = credential_fingerprint("IMMUTA_MCP_ABCD_0001");
        assert_eq!(a, credential_fingerprint("IMMUTA_MCP_ABCD_0001"));
        assert_ne!(a, credential_fingerprint("IMMUTA_MCP_ABCD_0002"));
        assert_ne!(a, credential_fingerprint("vend-0001"));
        assert_eq!(a.len(), 24);
        assert!(!a.contains("ABCD"), "a digest, not the name: {a}");
    }

    #[test]
    fn another_key_is_refused() {
        let text = codec().seal(ALICE, &sample());
        let other = CursorCodec::from_secret(&Secret::new("z".repeat(40))).unwrap();
        assert_eq!(
            other.open(ALICE, &text, at(0)),
            Err(CursorError::BadSignature)
        );
        let random = CursorCodec::random();
        assert!(random.is_ephemeral() && !codec().is_ephemeral());
        assert_eq!(
            random.open(ALICE, &text, at(0)),
            Err(CursorError::BadSignature)
        );
        assert_eq!(
            CursorCodec::random().open(ALICE, &random.seal(ALICE, &sample()), at(0)),
            Err(CursorError::BadSignature),
            "two processes without a configured key do not share cursors"
        );
    }

    #[test]
    fn another_user_is_refused_by_name() {
        let codec = codec();
        let text = codec.seal(ALICE, &sample());
        let err = codec.open(BOB, &text, at(0)).unwrap_err();
        assert_eq!(
            err,
            CursorError::WrongUser {
                user: BOB.to_string()
            }
        );
        assert!(err.to_string().contains("another user's result"), "{err}");
    }

    #[test]
    fn expiry_is_exclusive_and_says_how_long_ago() {
        let codec = codec();
        let text = codec.seal(ALICE, &sample());
        assert!(codec.open(ALICE, &text, at(999)).is_ok());
        assert_eq!(
            codec.open(ALICE, &text, at(1_000)),
            Err(CursorError::Expired { ago: 0 })
        );
        let err = codec.open(ALICE, &text, at(1_061)).unwrap_err();
        assert_eq!(err, CursorError::Expired { ago: 61 });
        assert!(err.to_string().contains("run the query again"), "{err}");
    }

    #[test]
    fn short_keys_are_refused_and_keys_never_print() {
        assert!(CursorCodec::from_secret(&Secret::new("short")).is_err());
        let secret = "s3cr3t-".repeat(6);
        let codec = CursorCodec::from_secret(&Secret::new(secret.clone())).unwrap();
        let shown = format!("{codec:?}");
        assert!(!shown.contains(&secret), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("ephemeral: false"),
            "{shown}"
        );
    }
}
