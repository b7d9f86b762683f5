//! The stdio transport: newline-delimited JSON-RPC between the MCP client and
//! rmcp, plus an answer for every line that is not a JSON-RPC message.
//!
//! rmcp's own stdio transport drops a line it cannot parse without a word, so
//! a client that sent one waits forever. JSON-RPC 2.0 (section 5.1) says such
//! input gets an error with `id: null`: `-32700` (parse error) for text that
//! is not JSON, `-32600` (invalid request) for JSON that is not a message.
//! This module sits between the process's stdin/stdout and rmcp: valid lines
//! go to rmcp unchanged, bad ones are answered here, and one writer owns
//! stdout so the answers never interleave with rmcp's messages.

use rmcp::model::ClientJsonRpcMessage;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

/// Buffer of the in-process pipes between this filter and rmcp.
const PIPE_BYTES: usize = 64 * 1024;

/// What to do with one line from the client.
#[derive(Debug, PartialEq)]
enum Line {
    /// A JSON-RPC message: hand it to rmcp as it is.
    Message,
    /// Nothing but white space: skip it.
    Blank,
    /// Answer with this error line instead.
    Refused(String),
}

fn judge(line: &[u8]) -> Line {
    let text = match std::str::from_utf8(line) {
        Ok(t) if t.trim().is_empty() => return Line::Blank,
        Ok(t) => t,
        Err(_) => return Line::Refused(error_line(-32700, "Parse error: the line is not UTF-8")),
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Line::Refused(error_line(
                -32700,
                &format!("Parse error: the line is not JSON ({e})"),
            ));
        }
    };
    match serde_json::from_value::<ClientJsonRpcMessage>(value) {
        Ok(_) => Line::Message,
        Err(e) => Line::Refused(error_line(
            -32600,
            &format!("Invalid Request: the line is JSON but not a JSON-RPC 2.0 message ({e})"),
        )),
    }
}

fn error_line(code: i64, message: &str) -> String {
    let mut line = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    })
    .to_string();
    line.push('\n');
    line
}

/// The (reader, writer) pair to hand rmcp, filtering the process's stdin and
/// stdout. The tasks end when stdin closes and rmcp has written its last line.
pub fn transport() -> (DuplexStream, DuplexStream) {
    filtered(tokio::io::stdin(), tokio::io::stdout())
}

/// [`transport`] over any client input and output (tests use pipes).
pub fn filtered<R, W>(input: R, output: W) -> (DuplexStream, DuplexStream)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (rmcp_reader, mut to_rmcp) = tokio::io::duplex(PIPE_BYTES);
    let (rmcp_writer, from_rmcp) = tokio::io::duplex(PIPE_BYTES);
    // Every line for the client, in order: refusals and rmcp's messages.
    let (to_client, mut for_client) = mpsc::unbounded_channel::<Vec<u8>>();

    let refusals = to_client.clone();
    tokio::spawn(async move {
        let mut input = BufReader::new(input);
        let mut line = Vec::new();
        loop {
            line.clear();
            match input.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            match judge(&line) {
                Line::Blank => {}
                Line::Message => {
                    if !line.ends_with(b"\n") {
                        line.push(b'\n');
                    }
                    if to_rmcp.write_all(&line).await.is_err() {
                        break;
                    }
                }
                Line::Refused(answer) => {
                    tracing::info!("stdio: answered a line that is not a JSON-RPC message");
                    if refusals.send(answer.into_bytes()).is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `to_rmcp` ends rmcp's input: it shuts down as on a closed stdin.
    });

    tokio::spawn(async move {
        let mut from_rmcp = BufReader::new(from_rmcp);
        loop {
            let mut line = Vec::new();
            match from_rmcp.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if to_client.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });

    tokio::spawn(async move {
        let mut output = output;
        while let Some(line) = for_client.recv().await {
            if output.write_all(&line).await.is_err() || output.flush().await.is_err() {
                break;
            }
        }
    });

    (rmcp_reader, rmcp_writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_judged_as_json_rpc_2_0_says() {
        assert_eq!(
            judge(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Line::Message
        );
        assert_eq!(judge(b"  \r\n"), Line::Blank);
        let Line::Refused(parse) = judge(b"{not json") else {
            panic!("refused")
        };
        let parse: Value = serde_json::from_str(&parse).unwrap();
        assert_eq!(parse["error"]["code"], -32700);
        assert_eq!(parse["id"], Value::Null);
        let Line::Refused(invalid) = judge(br#"{"hello":"world"}"#) else {
            panic!("refused")
        };
        let invalid: Value = serde_json::from_str(&invalid).unwrap();
        assert_eq!(invalid["error"]["code"], -32600);
        assert!(matches!(judge(b"\xff\xfe"), Line::Refused(_)));
    }

    #[tokio::test]
    async fn bad_lines_are_answered_and_good_ones_pass_through_in_order() {
        let (client_in, server_stdin) = tokio::io::duplex(4096);
        let (server_stdout, client_out) = tokio::io::duplex(4096);
        let (mut rmcp_reader, mut rmcp_writer) = filtered(server_stdin, server_stdout);
        let mut client_in = client_in;
        client_in
            .write_all(b"garbage\n{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}\n")
            .await
            .unwrap();
        drop(client_in);
        // rmcp's side sees only the valid line, then the end of input.
        let mut seen = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut rmcp_reader, &mut seen)
            .await
            .unwrap();
        assert_eq!(seen, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}\n");
        rmcp_writer
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n")
            .await
            .unwrap();
        drop(rmcp_writer);
        let mut lines = BufReader::new(client_out).lines();
        let mut got = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            got.push(serde_json::from_str::<Value>(&line).unwrap());
        }
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0]["error"]["code"], -32700);
        assert_eq!(got[1]["id"], 7);
    }
}
