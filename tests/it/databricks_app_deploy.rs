//! Rule: the Databricks App deployment carries no inline secret and starts the server with the Apps
//! identity source.
//!
//! `deploy/databricks-app/`: the `app.yaml` Databricks Apps runs and the
//! configuration it points at.
//!
//! Shows: the command starts `immuta-mcp serve --http` with the configuration
//! whose `identity.source` is `databricks_apps`; no secret is inline (every
//! secret-looking variable comes from an app resource through `valueFrom`,
//! and every `{ env = ... }` the configuration reads is provided by app.yaml
//! or by the Apps runtime); and the command, run as Databricks Apps runs it
//! (no shell, `DATABRICKS_APP_PORT` and a bare `DATABRICKS_HOST` in the
//! environment), serves MCP on that port and refuses a forged
//! `X-Forwarded-Email` without a forwarded token.
//!
//! app.yaml is read by a small reader of the block-YAML subset it uses
//! (top-level keys, lists of quoted scalars, lists of `key: "value"` maps),
//! which refuses anything else, rather than pulling a YAML crate in.

use immuta_mcp::config::Config;
use immuta_mcp::identity::databricks_apps::HttpIdentitySource;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/databricks-app")
}

#[derive(Debug, Default)]
struct AppYaml {
    command: Vec<String>,
    env: Vec<BTreeMap<String, String>>,
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    assert!(
        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
        "app.yaml values are double-quoted: {v}"
    );
    v[1..v.len() - 1].to_string()
}

fn parse_app_yaml(text: &str) -> AppYaml {
    let mut out = AppYaml::default();
    let mut section = String::new();
    for raw in text.lines() {
        let line = raw.split(" #").next().unwrap();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            let key = line
                .strip_suffix(':')
                .unwrap_or_else(|| panic!("top-level `key:` expected: {raw}"));
            assert!(
                ["command", "env"].contains(&key),
                "unexpected app.yaml key {key}"
            );
            section = key.to_string();
            continue;
        }
        let trimmed = line.trim_start();
        match (section.as_str(), trimmed.strip_prefix("- ")) {
            ("command", Some(item)) => out.command.push(unquote(item)),
            ("env", Some(item)) => {
                let (k, v) = item.split_once(':').expect("`- name: value`");
                out.env
                    .push(BTreeMap::from([(k.trim().to_string(), unquote(v))]));
            }
            ("env", None) => {
                let (k, v) = trimmed.split_once(':').expect("`key: value`");
                let entry = out.env.last_mut().expect("an env entry is open");
                assert!(
                    entry.insert(k.trim().to_string(), unquote(v)).is_none(),
                    "{raw}"
                );
            }
            _ => panic!("app.yaml line not understood: {raw}"),
        }
    }
    out
}

fn load() -> (AppYaml, String) {
    let dir = deploy_dir();
    let yaml = std::fs::read_to_string(dir.join("app.yaml")).expect("app.yaml");
    (parse_app_yaml(&yaml), yaml)
}

#[test]
fn app_yaml_starts_the_server_with_the_databricks_apps_source_and_no_inline_secret() {
    let (app, text) = load();
    assert_eq!(
        app.command.first().map(String::as_str),
        Some("./immuta-mcp")
    );
    assert_eq!(app.command.get(1).map(String::as_str), Some("serve"));
    let arg = |flag: &str| {
        let i = app
            .command
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("no {flag}"));
        app.command[i + 1].clone()
    };
    assert!(
        arg("--http").ends_with(":$DATABRICKS_APP_PORT"),
        "{:?}",
        app.command
    );
    let config_path = deploy_dir().join(arg("--config"));
    let config_text = std::fs::read_to_string(&config_path).expect("the config app.yaml names");
    let cfg =
        Config::parse(&config_text).expect("the deploy config parses (inline secrets would not)");
    assert_eq!(cfg.identity.source, HttpIdentitySource::DatabricksApps);
    assert!(cfg.identity.databricks_apps.require_forwarded_token);

    let mut provided: Vec<String> = [
        "DATABRICKS_HOST",
        "DATABRICKS_CLIENT_ID",
        "DATABRICKS_CLIENT_SECRET",
        "DATABRICKS_APP_PORT",
    ]
    .map(String::from)
    .to_vec();
    for entry in &app.env {
        let name = entry.get("name").expect("every env entry has a name");
        let keys: Vec<&str> = entry
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "name")
            .collect();
        assert!(
            keys == ["value"] || keys == ["valueFrom"],
            "{name}: exactly one of value / valueFrom: {entry:?}"
        );
        let secretish = ["KEY", "SECRET", "TOKEN", "PASSWORD", "PRIVATE"]
            .iter()
            .any(|w| name.contains(w));
        if secretish {
            assert!(
                entry.contains_key("valueFrom"),
                "{name} must come from an app resource"
            );
        }
        provided.push(name.clone());
    }
    // Every secret reference of the configuration is provided.
    for needed in config_text
        .split("{ env = \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
    {
        assert!(
            provided.iter().any(|p| p == needed),
            "{needed} is read but not provided"
        );
    }
    // Nothing that looks like a credential is written in either file.
    for (file, body) in [("app.yaml", &text), ("immuta-mcp.toml", &config_text)] {
        assert!(
            !body.contains("BEGIN PRIVATE KEY") && !body.contains("dapi") && !body.contains("dose"),
            "{file}"
        );
    }
}

#[tokio::test]
async fn the_command_serves_on_the_app_port_and_refuses_forged_forwarded_users() {
    let (app, _) = load();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // As Databricks Apps runs it (no shell), on loopback instead of 0.0.0.0.
    let args: Vec<String> = app.command[1..]
        .iter()
        .map(|a| a.replace("0.0.0.0:", "127.0.0.1:"))
        .collect();
    let creds = immuta_mcp::sandbox::SandboxCredentials::generate().unwrap();
    let mut child = tokio::process::Command::new(crate::support::BIN)
        .args(&args)
        .current_dir(deploy_dir())
        .env_clear()
        .env("DATABRICKS_APP_PORT", port.to_string())
        .env("DATABRICKS_HOST", "dbc-00000000-0000.cloud.databricks.com")
        .env("DATABRICKS_CLIENT_ID", &creds.databricks_client_id)
        .env("DATABRICKS_CLIENT_SECRET", &creds.databricks_client_secret)
        .env("DATABRICKS_WAREHOUSE_ID", &creds.warehouse_id)
        .env("IMMUTA_API_KEY", &creds.immuta_api_key)
        .env("SNOWFLAKE_PRIVATE_KEY", &creds.snowflake_private_key_pem)
        .env(
            "IMMUTA_MCP_CURSOR_KEY",
            "0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn immuta-mcp");
    let url = format!("http://127.0.0.1:{port}/mcp");
    immuta_mcp::http_client::install_crypto_provider();
    let http = reqwest::Client::new();
    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    });
    let mut answer = None;
    for _ in 0..300 {
        let sent = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-forwarded-email", crate::support::BOB)
            .header("x-forwarded-preferred-username", crate::support::BOB)
            .body(initialize.to_string())
            .send()
            .await;
        if let Ok(r) = sent {
            answer = Some((r.status().as_u16(), r.text().await.unwrap_or_default()));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.start_kill();
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (status, body) =
        answer.unwrap_or_else(|| panic!("the app never listened on {port}:\n{stderr}"));
    assert_eq!(status, 401, "{body}\n{stderr}");
    assert!(body.contains("X-Forwarded-Access-Token"), "{body}");
    for secret in [&creds.immuta_api_key, &creds.databricks_client_secret] {
        assert!(!stderr.contains(secret.as_str()), "a secret in the log");
    }
}
