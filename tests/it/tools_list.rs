//! Rule: the tools the server lists (names, titles, descriptions, input and
//! output schemas, annotations) change only with a reviewed diff of
//! `tests/golden/tools_list.json`.
//!
//! The server is started over streamable HTTP with `guard.read_only` on and
//! off (the write-capable descriptions and annotations differ), `tools/list`
//! is sent on the raw wire, and each whole `result` is compared with the
//! checked-in file, pretty-printed with sorted keys. `UPDATE_GOLDEN=1 cargo
//! test --test it tools_list` rewrites the file from the current server.

use crate::support::{ALICE, HttpEnv};
use serde_json::{Map, Value, json};
use std::path::PathBuf;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/tools_list.json")
}

/// The `tools/list` result of a server whose guard is read-only or not.
async fn tools_list(read_only: bool) -> Value {
    let env = HttpEnv::start_with(|cfg| cfg.guard.read_only = read_only).await;
    let token = env.token(ALICE);
    let session = env.open_session(&token).await;
    let response = env
        .request(&token, &session, 1, "tools/list", json!({}))
        .await;
    env.shutdown().await;
    assert!(
        response.get("error").is_none(),
        "tools/list failed: {response}"
    );
    response["result"].clone()
}

/// `value` with every object's keys in sorted order (whatever map serde_json uses).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted(v)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The JSON paths at which `want` and `got` differ, each with both values (at most `limit`).
fn differences(path: &str, want: &Value, got: &Value, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || want == got {
        return;
    }
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let mut keys: Vec<&String> = w.keys().chain(g.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let here = if k.chars().all(|c| c.is_alphanumeric() || "_$".contains(c)) {
                    format!("{path}.{k}")
                } else {
                    format!("{path}[{k:?}]")
                };
                match (w.get(k), g.get(k)) {
                    (Some(a), Some(b)) => differences(&here, a, b, out, limit),
                    (Some(a), None) => out.push(format!("{here}: removed (was {a})")),
                    (None, Some(b)) => out.push(format!("{here}: added {b}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            for i in 0..w.len().max(g.len()) {
                // Tools are named: say which one differs.
                let name = g
                    .get(i)
                    .or(w.get(i))
                    .and_then(|t| t["name"].as_str())
                    .map(|n| format!("[{i} {n}]"))
                    .unwrap_or_else(|| format!("[{i}]"));
                let here = format!("{path}{name}");
                match (w.get(i), g.get(i)) {
                    (Some(a), Some(b)) => differences(&here, a, b, out, limit),
                    (Some(a), None) => out.push(format!("{here}: removed (was {a})")),
                    (None, Some(b)) => out.push(format!("{here}: added {b}")),
                    (None, None) => {}
                }
            }
        }
        _ => out.push(format!("{path}:\n  golden:  {want}\n  current: {got}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_matches_the_golden_file() {
    let current = sorted(json!({
        "guard.read_only = true": tools_list(true).await,
        "guard.read_only = false": tools_list(false).await,
    }));
    let text = serde_json::to_string_pretty(&current).expect("JSON") + "\n";
    let path = golden_path();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("tests/golden")).expect("tests/golden");
        std::fs::write(&path, &text).expect("write the golden file");
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with UPDATE_GOLDEN=1 cargo test --test it tools_list",
            path.display()
        )
    });
    let want: Value = serde_json::from_str(&golden).expect("the golden file is JSON");
    let mut diffs = Vec::new();
    differences("", &want, &current, &mut diffs, 20);
    assert!(
        diffs.is_empty(),
        "tools/list differs from {} at:\n{}\n(if the change is intended, rerun with \
         UPDATE_GOLDEN=1 and review the file's diff)",
        path.display(),
        diffs.join("\n")
    );
    assert_eq!(
        golden,
        text,
        "{} is not in canonical form (sorted keys, pretty-printed): rerun with UPDATE_GOLDEN=1",
        path.display()
    );
}

#[test]
fn a_changed_schema_is_named_in_the_difference() {
    let want =
        json!({"tools": [{"name": "query_snowflake", "inputSchema": {"required": ["sql"]}}]});
    let got = json!({"tools": [{"name": "query_snowflake", "inputSchema": {"required": []}, "title": "Q"}]});
    let mut diffs = Vec::new();
    differences("", &want, &got, &mut diffs, 20);
    assert_eq!(
        diffs,
        [
            ".tools[0 query_snowflake].inputSchema.required[0]: removed (was \"sql\")".to_string(),
            ".tools[0 query_snowflake].title: added \"Q\"".to_string(),
        ]
    );
}
