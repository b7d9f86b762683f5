//! Rule: every tool schema compiles in AJV strict mode, as MCP TypeScript clients compile it.
//!
//! The tool schemas are plain JSON Schema that AJV (the validator of the MCP
//! TypeScript SDK, which Claude Desktop and most IDE clients build on)
//! compiles in strict mode without an error or a warning. AJV is pinned in
//! `tests/interop/package.json` and installed by `scripts/test.sh`.

use immuta_mcp::app;
use immuta_mcp::sandbox::{Sandbox, SandboxOptions};
use immuta_mcp::server::UserSource;
use std::path::PathBuf;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");

fn node_modules() -> PathBuf {
    let modules = PathBuf::from(DIR).join("node_modules/ajv");
    assert!(
        modules.exists(),
        "AJV is not installed in {DIR}/node_modules: run scripts/test.sh (it runs npm ci there)"
    );
    modules
}

async fn check(tools_json: &str) -> (bool, String) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), tools_json).expect("write tools");
    let out = tokio::process::Command::new("node")
        .arg(format!("{DIR}/ajv_check.mjs"))
        .arg(file.path())
        .output()
        .await
        .expect("node runs (scripts/test.sh needs Node.js)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn every_tool_schema_compiles_in_ajv_strict_mode_without_a_warning() {
    node_modules();
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let cfg = sandbox.client_config();
    let platforms = app::build_platforms(&cfg).unwrap();
    let server = app::build_server(&cfg, &platforms, UserSource::PerRequest);
    let tools = serde_json::to_string(server.tools()).unwrap();
    let (ok, output) = check(&tools).await;
    assert!(ok, "AJV refused or warned:\n{output}");
    let expected = server.tools().len()
        + server
            .tools()
            .iter()
            .filter(|t| t.output_schema.is_some())
            .count();
    assert_eq!(
        output.trim(),
        format!("OK {expected} schemas"),
        "every input and output schema was compiled"
    );

    // Control: a schemars integer format is what AJV warns about.
    let with_format = serde_json::json!([{
        "name": "probe",
        "inputSchema": {"type": "object", "properties": {"n": {"type": "integer", "format": "uint64"}}},
    }]);
    let (ok, output) = check(&with_format.to_string()).await;
    assert!(!ok && output.contains("uint64"), "{output}");
    sandbox.shutdown().await;
}
