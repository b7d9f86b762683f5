//! Rule: a stdio server started from a terminal says how to connect a client; under a client it
//! writes nothing of the kind.
//!
//! The one-line hint of a stdio server started from a terminal: with a
//! terminal on stdin (`std::io::IsTerminal`), `immuta-mcp sandbox` says on
//! stderr that it waits for an MCP client and how to connect one; with a pipe
//! on stdin (an MCP client) it says nothing of the kind.
//!
//! The terminal is a pseudo-terminal from util-linux `script`, run with its
//! own stdin at EOF so the server sees the client go away and exits.

use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_immuta-mcp");
const HINT: &str = "waiting for an MCP client on stdin/stdout";

fn run(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_terminal_on_stdin_gets_the_hint_and_a_pipe_does_not() {
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "this test needs `script` (util-linux / bsdutils) to give the server a terminal"
    );
    let on_terminal =
        run(Command::new("script").args(["-qec", &format!("{BIN} sandbox"), "/dev/null"]));
    let hint = on_terminal
        .lines()
        .find(|l| l.contains(HINT))
        .unwrap_or_else(|| panic!("no hint on a terminal:\n{on_terminal}"));
    assert!(hint.contains("cargo run --example client"), "{hint}");
    assert!(
        hint.contains("npx @modelcontextprotocol/inspector") && hint.contains("immuta-mcp sandbox"),
        "{hint}"
    );

    let on_pipe = run(Command::new(BIN).arg("sandbox").stdout(Stdio::piped()));
    assert!(
        on_pipe.contains("MCP over stdio as"),
        "the sandbox started:\n{on_pipe}"
    );
    assert!(
        !on_pipe.contains(HINT),
        "a hint without a terminal:\n{on_pipe}"
    );
}
