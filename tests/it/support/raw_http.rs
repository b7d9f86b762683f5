//! The streamable HTTP wire spoken directly with reqwest, on an [`HttpEnv`]:
//! raw JSON-RPC posts with every status, header and body visible, a session
//! opened by hand, and the JSON-RPC messages of a JSON or SSE answer.

use super::{HttpEnv, STEP, bounded};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// The `initialize` request these tests send (protocol 2025-06-18).
pub fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
           "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "hardening", "version": "1"}}})
}

/// JSON-RPC messages from a JSON body or an SSE stream.
pub fn parse_messages(text: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return match v {
            Value::Array(a) => a,
            other => vec![other],
        };
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .collect()
}

impl HttpEnv {
    /// The claims of a valid token for `user` on this server (to alter one at a time).
    pub fn claims(&self, user: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": self.issuer.issuer.issuer_url(), "sub": user, "email": user,
               "email_verified": true, "aud": self.server.resource_url, "iat": now, "nbf": now - 5, "exp": now + 600})
    }

    /// POST one JSON-RPC body; returns status, headers and the JSON-RPC messages in the answer.
    pub async fn post(
        &self,
        token: Option<&str>,
        session: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, HeaderMap, Vec<Value>) {
        let mut req = self
            .http
            .post(&self.server.resource_url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .timeout(STEP)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        let resp = bounded("POST to the MCP endpoint", req.send())
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = bounded("the answer's body", resp.text())
            .await
            .unwrap_or_default();
        (status, headers, parse_messages(&text))
    }

    /// POST one JSON-RPC message with a bearer token.
    pub async fn rpc(
        &self,
        token: &str,
        session: Option<&str>,
        body: Value,
    ) -> (u16, HeaderMap, Vec<Value>) {
        self.post(Some(token), session, serde_json::to_vec(&body).unwrap())
            .await
    }

    /// initialize + initialized; returns the session id.
    pub async fn open_session(&self, token: &str) -> String {
        let (status, headers, msgs) = self.rpc(token, None, initialize()).await;
        assert_eq!(status, 200, "initialize answered {status}: {msgs:?}");
        let session = headers
            .get("mcp-session-id")
            .expect("session id")
            .to_str()
            .unwrap()
            .to_string();
        let (status, _, _) = self
            .rpc(
                token,
                Some(&session),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await;
        assert_eq!(status, 202);
        session
    }

    /// One JSON-RPC request in an open session; returns the response with its id.
    pub async fn request(
        &self,
        token: &str,
        session: &str,
        id: u64,
        method: &str,
        params: Value,
    ) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (status, _, msgs) = self.rpc(token, Some(session), body).await;
        assert_eq!(status, 200, "{method} answered {status}");
        msgs.into_iter()
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("a response to {method} with our id"))
    }

    /// `tools/call` in an open session; returns the whole JSON-RPC response.
    pub async fn call_tool(
        &self,
        token: &str,
        session: &str,
        id: u64,
        name: &str,
        args: Value,
    ) -> Value {
        self.request(
            token,
            session,
            id,
            "tools/call",
            json!({"name": name, "arguments": args}),
        )
        .await
    }
}
