//! Rule: bad bytes on stdio get a JSON-RPC error and never end or poison the session.
//!
//! Bad input over stdio (issue 6): invalid UTF-8 and non-JSON lines do not
//! crash the server or poison the session; each gets a JSON-RPC error with
//! `id: null` (-32700 parse error, -32600 for JSON that is no message), and
//! the next valid request is served.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn invalid_utf8_and_garbage_lines_leave_the_stdio_server_serving() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_immuta-mcp"))
        .args(["sandbox", "--user", "bob@example.com"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn immuta-mcp sandbox");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = async |bytes: &[u8]| {
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    };
    send(b"\xff\xfe\xfd not utf-8\n").await;
    send(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#).await;
    send(b"\n").await;
    send(b"{ this is not json\n").await;
    send(b"\xc3\x28\n").await;
    send(br#"{"hello": "not a message"}"#).await;
    send(b"\n").await;
    send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    send(b"\n").await;
    send(br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"query_databricks","arguments":{"sql":"SELECT COUNT(*) AS n FROM main.sales.orders"}}}"#).await;
    send(b"\n").await;

    let mut answers = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: serde_json::Value =
                serde_json::from_str(&line).expect("stdout carries only JSON-RPC");
            let done = v["id"] == 2;
            answers.push(v);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("answers within the bound");
    let init = answers
        .iter()
        .find(|v| v["id"] == 1)
        .expect("initialize answered");
    assert_eq!(init["result"]["serverInfo"]["name"], "immuta-mcp");
    let call = answers
        .iter()
        .find(|v| v["id"] == 2)
        .expect("tool call answered");
    assert_eq!(call["result"]["isError"], false, "{call}");
    assert_eq!(
        call["result"]["structuredContent"]["rows"][0][0], 6,
        "bob counts all demo orders: {call}"
    );
    // The three bad lines were answered, not dropped, and before the call's answer.
    let errors: Vec<i64> = answers
        .iter()
        .filter(|v| v["id"].is_null())
        .map(|v| v["error"]["code"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(
        errors,
        [-32700, -32700, -32700, -32600],
        "one error per bad line: {answers:?}"
    );
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
}
