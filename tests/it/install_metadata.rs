//! Rule: `server.json` and `manifest.json` satisfy what the MCP Registry and the MCP Bundle format
//! require.
//!
//! Install metadata for MCP clients: `server.json` (MCP Registry) and
//! `manifest.json` (Claude Desktop MCP Bundle) at the repository root.
//!
//! `server.json` is checked against what the registry's published schema
//! requires (modelcontextprotocol/registry,
//! `docs/reference/server-json/server.schema.json`, `ServerDetail`): the
//! required `name`, `description` and `version`; `name` in reverse-DNS form
//! with exactly one `/` (pattern `^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$`, 3 to 200
//! characters); `description` and `title` 1 to 100 characters; `version` at
//! most 255 characters and not a range; `$schema` a URI of the published
//! schema; no property the schema does not define. The schema itself is not
//! copied here. The bundle manifest is validated by the official CLI
//! (`mcpb validate`, in `.ci/run`); this test checks that it describes this
//! server: the version, the tools, and a command line the binary accepts.

use serde_json::Value;

fn load(file: &str) -> Value {
    let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// `ServerDetail.properties` of the registry's schema (2025-09-29).
const SERVER_DETAIL_PROPERTIES: [&str; 11] = [
    "$schema",
    "_meta",
    "description",
    "icons",
    "name",
    "packages",
    "remotes",
    "repository",
    "title",
    "version",
    "websiteUrl",
];

/// The registry's problems with `doc`, one line each.
fn server_json_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(object) = doc.as_object() else {
        return vec!["not a JSON object".into()];
    };
    for key in object.keys() {
        if !SERVER_DETAIL_PROPERTIES.contains(&key.as_str()) {
            problems.push(format!("unknown property {key:?}"));
        }
    }
    let string = |key: &str| object.get(key).and_then(Value::as_str);
    for required in ["name", "description", "version"] {
        if string(required).is_none() {
            problems.push(format!("required string {required:?} is missing"));
        }
    }
    let name_pattern =
        regex::Regex::new(r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$").expect("the schema's pattern");
    if let Some(name) = string("name") {
        if !name_pattern.is_match(name) {
            problems.push(format!(
                "name {name:?} does not match the reverse-DNS pattern"
            ));
        }
        if !(3..=200).contains(&name.chars().count()) {
            problems.push("name must be 3 to 200 characters".into());
        }
    }
    for key in ["description", "title"] {
        if let Some(text) = string(key)
            && !(1..=100).contains(&text.chars().count())
        {
            problems.push(format!("{key} must be 1 to 100 characters"));
        }
    }
    if let Some(version) = string("version") {
        if version.chars().count() > 255 {
            problems.push("version is longer than 255 characters".into());
        }
        let is_range = version == "latest"
            || version.contains(['^', '~', '>', '<', '*', ' '])
            || version
                .split('.')
                .any(|part| part.eq_ignore_ascii_case("x"));
        if is_range {
            problems.push(format!("version {version:?} is a range, not a version"));
        }
    }
    match string("$schema") {
        Some(uri) => {
            let published = regex::Regex::new(
                r"^https://static\.modelcontextprotocol\.io/schemas/\d{4}-\d{2}-\d{2}/server\.schema\.json$",
            )
            .unwrap();
            if !published.is_match(uri) {
                problems.push(format!(
                    "$schema {uri:?} is not the registry's published schema"
                ));
            }
        }
        None if object.contains_key("$schema") => problems.push("$schema must be a string".into()),
        None => {}
    }
    problems
}

#[test]
fn server_json_has_what_the_registry_schema_requires() {
    let doc = load("server.json");
    assert_eq!(server_json_problems(&doc), Vec::<String>::new());
    assert_eq!(
        doc["version"],
        env!("CARGO_PKG_VERSION"),
        "server.json names the crate's version"
    );
}

#[test]
fn the_registry_checks_refuse_what_the_schema_refuses() {
    let good = load("server.json");
    let with = |key: &str, value: Value| {
        let mut doc = good.clone();
        doc[key] = value;
        server_json_problems(&doc)
    };
    let without = |key: &str| {
        let mut doc = good.clone();
        doc.as_object_mut().unwrap().remove(key);
        server_json_problems(&doc)
    };
    for key in ["name", "description", "version"] {
        assert_eq!(without(key).len(), 1, "{key} is required");
    }
    assert!(
        !with("name", "immuta-mcp".into()).is_empty(),
        "no namespace"
    );
    assert!(
        !with("name", "io.github.x/a/b".into()).is_empty(),
        "two slashes"
    );
    assert!(!with("description", "x".repeat(101).into()).is_empty());
    assert!(!with("version", "^0.1.0".into()).is_empty());
    assert!(!with("version", "latest".into()).is_empty());
    assert!(!with("homepage", "https://example.com".into()).is_empty());
    assert!(!with("$schema", "https://example.com/schema.json".into()).is_empty());
}

#[test]
fn bundle_manifest_describes_this_server() {
    let manifest = load("manifest.json");
    assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));
    for required in ["manifest_version", "name", "description"] {
        assert!(manifest[required].is_string(), "{required}");
    }
    assert!(manifest["author"]["name"].is_string(), "author.name");
    let server = &manifest["server"];
    assert_eq!(server["type"], "binary");
    let entry = server["entry_point"].as_str().expect("entry_point");
    let config = &server["mcp_config"];
    assert_eq!(
        config["command"].as_str(),
        Some(format!("${{__dirname}}/{entry}").as_str()),
        "the command is the bundled binary"
    );

    // The tools it lists are exactly the server's.
    let mut listed: Vec<&str> = manifest["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("tool name"))
        .collect();
    let mut offered = immuta_mcp::server::TOOL_NAMES.to_vec();
    listed.sort_unstable();
    offered.sort_unstable();
    assert_eq!(listed, offered);

    // Every `${user_config.KEY}` it passes is declared, and the arguments are
    // ones the binary accepts (`--help` after them parses the whole line).
    let args: Vec<String> = config["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect();
    let placeholder = regex::Regex::new(r"\$\{user_config\.([A-Za-z0-9_]+)\}").unwrap();
    let mut substituted = Vec::new();
    for arg in &args {
        for caps in placeholder.captures_iter(arg) {
            let key = &caps[1];
            assert!(
                manifest["user_config"][key].is_object(),
                "user_config.{key} is used but not declared"
            );
        }
        substituted.push(placeholder.replace_all(arg, "immuta-mcp.toml").into_owned());
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_immuta-mcp"))
        .args(&substituted)
        .arg("--help")
        .output()
        .expect("run the binary");
    assert!(
        output.status.success(),
        "the bundle's command line is refused: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
