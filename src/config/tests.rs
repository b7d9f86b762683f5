//! Unit tests of [`super::Config`]: the example file parses and validates,
//! environment overrides, secret references, parse errors that never quote a
//! value, and the validation rules.

#[test]
fn the_example_config_parses_and_validates_with_its_commented_keys_on() {
    let example = include_str!("../../immuta-mcp.example.toml");
    let cfg = Config::parse(example).expect("the example parses");
    cfg.validate().expect("the example validates");
    // The optional sections shown commented out parse too.
    let uncommented = example
        .replace("# [guard.allow]", "[guard.allow]")
        .replace("# snowflake = [\"SALES", "snowflake = [\"SALES")
        .replace("# databricks = [\"main", "databricks = [\"main");
    let cfg = Config::parse(&uncommented).expect("the allow-list example parses");
    assert_eq!(
        cfg.guard.allow.databricks,
        Some(vec!["main.sales".to_string()])
    );
    cfg.validate().expect("and validates");
}

use super::*;

const SAMPLE: &str = r#"
[identity]
stdio_user = "alice@example.com"

[immuta]
url = "https://acme.hosted.immutacloud.com"
api_key = { env = "MY_IMMUTA_KEY" }

[databricks]
host = "https://dbc-1.cloud.databricks.com"
client_id = "sp-app-id"
client_secret = { file = "/run/secrets/db" }
warehouse_id = "abc123"
"#;

#[test]
fn parses_sample_with_defaults() {
    let cfg = Config::parse(SAMPLE).unwrap();
    assert_eq!(cfg.immuta.as_ref().unwrap().ttl_minutes, 60);
    assert_eq!(cfg.limits.default_max_rows, 1000);
    assert!(cfg.guard.read_only);
    cfg.validate().unwrap();
}

#[test]
fn env_overrides_follow_databricks_names() {
    let mut cfg = Config::parse(SAMPLE).unwrap();
    cfg.apply_env(|k| match k {
        "DATABRICKS_HOST" => Some("https://other.example".into()),
        "DATABRICKS_CLIENT_SECRET" => Some("x".into()),
        _ => None,
    })
    .unwrap();
    let db = cfg.databricks.unwrap();
    assert_eq!(db.host, "https://other.example");
    assert_eq!(
        db.client_secret,
        SecretRef::Env("DATABRICKS_CLIENT_SECRET".into())
    );
}

#[test]
fn a_bare_databricks_host_from_the_environment_gets_https() {
    let mut cfg = Config::parse(SAMPLE).unwrap();
    cfg.apply_env(|k| (k == "DATABRICKS_HOST").then(|| "dbc-9.cloud.databricks.com".into()))
        .unwrap();
    assert_eq!(
        cfg.databricks.unwrap().host,
        "https://dbc-9.cloud.databricks.com"
    );
}

#[test]
fn the_databricks_apps_source_needs_a_workspace_and_parses_its_settings() {
    let text = format!(
        "{SAMPLE}\n[identity.databricks_apps]\nrequire_forwarded_token = false\nuser_header = \"preferred_username\"\n"
    )
    .replacen("[identity]\n", "[identity]\nsource = \"databricks_apps\"\n", 1);
    let cfg = Config::parse(&text).unwrap();
    cfg.validate().unwrap();
    assert!(!cfg.identity.databricks_apps.require_forwarded_token);
    assert_eq!(
        cfg.identity.apps_workspace_url(cfg.databricks.as_ref()),
        Some("https://dbc-1.cloud.databricks.com")
    );
    let mut no_workspace = cfg.clone();
    no_workspace.databricks = None;
    no_workspace.immuta = None;
    let err = no_workspace.validate().unwrap_err().to_string();
    assert!(
        err.contains("identity.databricks_apps.workspace_url"),
        "{err}"
    );
    let mut plain_http = cfg;
    plain_http.identity.databricks_apps.workspace_url = Some("http://workspace.example".into());
    assert!(plain_http.validate().is_err());
}

#[test]
fn unknown_keys_and_missing_immuta_are_rejected() {
    assert!(
        Config::parse("[server]\nbogus = 1")
            .unwrap_err()
            .contains("bogus")
    );
    let mut cfg = Config::parse(SAMPLE).unwrap();
    cfg.immuta = None;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("vended role")
    );
}

#[test]
fn immuta_auth_and_poll_id_parse_and_default() {
    let cfg = Config::parse(SAMPLE).unwrap();
    let i = cfg.immuta.unwrap();
    assert_eq!(i.auth, ImmutaAuth::Auto);
    assert_eq!(i.poll_id, ImmutaPollId::VendId);
    assert_eq!(i.agent_id, None);
    let toml = SAMPLE.replacen(
        "[immuta]\n",
        "[immuta]\nauth = \"exchange\"\npoll_id = \"agent_id\"\nagent_id = \"agent-1\"\n",
        1,
    );
    let i = Config::parse(&toml).unwrap().immuta.unwrap();
    assert_eq!(i.auth, ImmutaAuth::Exchange);
    assert_eq!(i.poll_id, ImmutaPollId::AgentId);
    assert_eq!(i.agent_id.as_deref(), Some("agent-1"));
    let bad = SAMPLE.replacen("[immuta]\n", "[immuta]\nauth = \"basic\"\n", 1);
    let err = Config::parse(&bad).unwrap_err();
    assert!(err.contains("(immuta.auth)"), "{err}");
}

#[test]
fn parse_errors_do_not_echo_secrets_and_inline_secrets_are_refused() {
    let secret = "IMMUTA-API-KEY-SUPERSECRET-123";
    let cases = [
        // The audit's reproduction: an inline secret next to a typo.
        format!(
            "[immuta]\nurl = \"https://x.example\"\napi_key = {{ value = \"{secret}\", extra = 1 }}\n"
        ),
        // A plain inline secret (no typo): refused as such.
        format!("[immuta]\nurl = \"https://x.example\"\napi_key = {{ value = \"{secret}\" }}\n"),
        // The secret typed where a table belongs: serde would quote the value.
        format!("[immuta]\nurl = \"https://x.example\"\napi_key = \"{secret}\"\n"),
        // A syntax error on the secret's line.
        format!("[identity]\nstdio_id_token = {{ value = \"{secret}\" \n"),
        format!(
            "[immuta]\nurl = \"https://x.example\"\napi_key = {{ env = \"{secret}\", file = 1 }}\n"
        ),
    ];
    for text in &cases {
        let err = Config::parse(text).unwrap_err();
        assert!(!err.contains("SUPERSECRET"), "{text}\n=> {err}");
        assert!(err.starts_with("line "), "{err}");
    }
    let inline = Config::parse(&cases[1]).unwrap_err();
    assert!(inline.contains("line 3"), "{inline}");
    assert!(
        inline.contains("not accepted in a configuration file"),
        "{inline}"
    );
    // The file-loading path says the same (with the path, still without the secret).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, &cases[0]).unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(
        !err.contains("SUPERSECRET") && err.contains("bad.toml"),
        "{err}"
    );
}

#[test]
fn plain_http_urls_are_refused_unless_loopback() {
    let base = Config::parse(SAMPLE).unwrap();
    let oauth = |jwks: &str| Some(OAuthConfig::new("https://idp.example.com/", jwks));
    type Setter = Box<dyn Fn(&mut Config, &str)>;
    let set: Vec<(&str, Setter)> = vec![
        (
            "immuta.url",
            Box::new(|c, u| c.immuta.as_mut().unwrap().url = u.into()),
        ),
        (
            "databricks.host",
            Box::new(|c, u| c.databricks.as_mut().unwrap().host = u.into()),
        ),
        (
            "identity.oauth.jwks_url",
            Box::new(move |c, u| c.identity.oauth = oauth(u)),
        ),
        (
            "snowflake.base_url",
            Box::new(|c, u| {
                c.snowflake = Some(SnowflakeConfig {
                    user: "agent".into(),
                    account: None,
                    private_key: SecretRef::File("/k.pem".into()),
                    private_key_passphrase: None,
                    base_url: Some(u.into()),
                    default_warehouse: None,
                    default_database: None,
                    default_schema: None,
                    pat_expiry_clause: PatExpiryClause::default(),
                    statement_timeout_secs: 300,
                    verify_identity: true,
                })
            }),
        ),
    ];
    for (key, apply) in &set {
        for bad in [
            "http://login.example.com/x",
            "ftp://h.example/x",
            "http://127.0.0.1.evil.com/",
        ] {
            let mut cfg = base.clone();
            apply(&mut cfg, bad);
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key} {bad}: {err}");
        }
        for ok in [
            "https://h.example.com/x",
            "http://127.0.0.1:8080/x",
            "http://127.9.9.9/x",
            "http://[::1]:9/x",
            "http://localhost:1/x",
        ] {
            let mut cfg = base.clone();
            apply(&mut cfg, ok);
            cfg.validate().unwrap_or_else(|e| panic!("{key} {ok}: {e}"));
        }
    }
}

#[test]
fn secret_ref_debug_hides_inline_values() {
    let r = SecretRef::Value("s3cr3t".into());
    assert!(!format!("{r:?}").contains("s3cr3t"));
    assert_eq!(r.resolve("x").unwrap().expose(), "s3cr3t");
    let missing = SecretRef::Env("IMMUTA_MCP_SURELY_UNSET_VAR".into()).resolve("immuta.api_key");
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("IMMUTA_MCP_SURELY_UNSET_VAR")
    );
}
