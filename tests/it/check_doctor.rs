//! Rule: each unmet Immuta prerequisite fails its own `check` line with the statement that fixes
//! it.
//!
//! `immuta-mcp check` as the doctor of Immuta's prerequisites, against the
//! sandbox with a fixture's `[agent]` table leaving each one unmet; and
//! `check --as USER`.
//!
//! Shows: with everything in place every prerequisite line passes with no
//! fix; each unmet prerequisite fails its own line with the guide's statement
//! that fixes it (and the emulator refuses what Snowflake refuses without it);
//! `check --as` runs vend → credential → `SELECT 1` → applied identity on both
//! platforms and removes the PATs and vends it made; the binary prints every
//! failure with its fix.

use immuta_mcp::app::{self, CheckLine};
use immuta_mcp::config::SecretRef;
use immuta_mcp::sandbox::prerequisites::RegisteredKey;
use immuta_mcp::sandbox::{
    AgentPrerequisites, Counter, Endpoint, Fixture, Sandbox, SandboxOptions,
};

const PREREQUISITES: [&str; 6] = [
    "snowflake.user_type",
    "snowflake.key",
    "snowflake.network_policy",
    "snowflake.pat_grant",
    "snowflake.warehouse",
    "databricks.warehouse",
];

async fn sandbox_with(agent: AgentPrerequisites) -> Sandbox {
    let mut fixture = Fixture::demo();
    fixture.agent = agent;
    Sandbox::start(SandboxOptions {
        fixture,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

fn find<'a>(lines: &'a [CheckLine], component: &str) -> &'a CheckLine {
    lines
        .iter()
        .find(|l| l.component == component)
        .unwrap_or_else(|| panic!("no {component} line in {lines:#?}"))
}

#[tokio::test]
async fn with_every_prerequisite_met_each_line_passes_without_a_fix() {
    let sandbox = sandbox_with(AgentPrerequisites::default()).await;
    let lines = app::check(&sandbox.client_config()).await;
    for component in PREREQUISITES {
        let l = find(&lines, component);
        assert!(l.ok, "{component}: {}", l.message);
        assert_eq!(l.fix, None, "{component}");
    }
    assert!(
        find(&lines, "snowflake.key")
            .message
            .contains(&sandbox.credentials().snowflake_public_key_fingerprint)
    );
    assert!(
        find(&lines, "snowflake.network_policy")
            .message
            .contains("IMMUTA_AGENT_POLICY")
    );
    assert!(
        find(&lines, "databricks.warehouse")
            .message
            .contains("CAN_USE")
    );
    assert!(lines.iter().all(|l| l.ok), "{lines:#?}");
}

#[tokio::test]
async fn each_unmet_prerequisite_is_named_with_the_statement_that_fixes_it() {
    type Breaks = fn(&mut AgentPrerequisites);
    let cases: [(&str, Breaks, &[&str]); 7] = [
        (
            "snowflake.user_type",
            |a| a.snowflake_user_type = "PERSON".into(),
            &[
                "TYPE = PERSON",
                "ALTER USER \"IMMUTA_AGENT\" SET TYPE = SERVICE;",
            ],
        ),
        (
            "snowflake.key",
            |a| a.snowflake_public_key = RegisteredKey::Other,
            &["ALTER USER \"IMMUTA_AGENT\" SET RSA_PUBLIC_KEY = 'MII"],
        ),
        (
            "snowflake.network_policy",
            |a| a.snowflake_network_policy = String::new(),
            &[
                "CREATE NETWORK POLICY immuta_agent_policy ALLOWED_IP_LIST = ('0.0.0.0/0')",
                "ALTER USER \"IMMUTA_AGENT\" SET NETWORK_POLICY = immuta_agent_policy;",
            ],
        ),
        (
            "snowflake.pat_grant",
            |a| a.snowflake_modify_pat_grant = false,
            &[
                "GRANT MODIFY PROGRAMMATIC AUTHENTICATION METHODS ON USER \"IMMUTA_AGENT\" TO ROLE \"IMMUTA_AGENT_ROLE\";",
            ],
        ),
        (
            "snowflake.warehouse",
            |a| a.snowflake_warehouse_usage = vec!["OTHER_WH".into()],
            &["GRANT USAGE ON WAREHOUSE \"COMPUTE_WH\" TO ROLE \"IMMUTA_AGENT_ROLE\";"],
        ),
        (
            "databricks.warehouse",
            |a| a.databricks_warehouse_permission = String::new(),
            &["GRANT USAGE ON WAREHOUSE `", "TO SERVICE PRINCIPAL `"],
        ),
        (
            "databricks.warehouse",
            |a| a.databricks_warehouse_permission = "CAN_VIEW".into(),
            &["CAN_VIEW", "TO SERVICE PRINCIPAL `"],
        ),
    ];
    for (component, breaks, fix_says) in cases {
        let mut agent = AgentPrerequisites::default();
        breaks(&mut agent);
        let sandbox = sandbox_with(agent).await;
        let lines = app::check(&sandbox.client_config()).await;
        let l = find(&lines, component);
        assert!(!l.ok, "{component} should fail: {l:?}");
        let fix = l
            .fix
            .as_deref()
            .unwrap_or_else(|| panic!("{component} has no fix: {l:?}"));
        let shown = format!("{}\n{fix}", l.message);
        for says in fix_says {
            assert!(
                shown.contains(says),
                "{component}: {says:?} not in\n{shown}"
            );
        }
        if component == "databricks.warehouse" {
            assert!(
                fix.contains(&sandbox.credentials().databricks_client_id),
                "{fix}"
            );
        }
        // Every other prerequisite line that could be verified still passes.
        for other in PREREQUISITES.iter().filter(|c| **c != component) {
            if let Some(o) = lines.iter().find(|l| l.component == *other) {
                assert!(o.ok, "{component} broken, {other} fails too: {o:?}");
            }
        }
        sandbox.shutdown().await;
    }
}

#[tokio::test]
async fn the_emulator_refuses_what_snowflake_refuses_without_the_prerequisites() {
    for (agent, says) in [
        (
            AgentPrerequisites {
                snowflake_network_policy: String::new(),
                ..Default::default()
            },
            "network policy",
        ),
        (
            AgentPrerequisites {
                snowflake_modify_pat_grant: false,
                ..Default::default()
            },
            "Insufficient privileges",
        ),
        (
            AgentPrerequisites {
                snowflake_public_key: RegisteredKey::None,
                ..Default::default()
            },
            "JWT token is invalid",
        ),
    ] {
        let sandbox = sandbox_with(agent).await;
        let lines = app::check_as(&sandbox.client_config(), crate::support::ALICE).await;
        let sf = find(&lines, "snowflake.as_user");
        assert!(!sf.ok && sf.message.contains(says), "{says}: {sf:?}");
        assert!(find(&lines, "databricks.as_user").ok, "{lines:#?}");
        assert_eq!(sandbox.state.counter(Counter::PatsCreated), 0);
        sandbox.shutdown().await;
    }
}

#[tokio::test]
async fn check_as_a_user_runs_the_whole_path_on_each_platform_and_cleans_up() {
    let sandbox = sandbox_with(AgentPrerequisites::default()).await;
    let cfg = sandbox.client_config();
    let lines = app::check_as(&cfg, crate::support::ALICE).await;
    let sf = find(&lines, "snowflake.as_user");
    assert!(sf.ok, "{sf:?}");
    assert!(sf.message.contains("vended IMMUTA_OBO_"), "{}", sf.message);
    assert!(
        sf.message.contains("role=IMMUTA_OBO_"),
        "the identity Snowflake applied: {}",
        sf.message
    );
    let db = find(&lines, "databricks.as_user");
    assert!(db.ok, "{db:?}");
    assert!(db.message.contains("1 row(s)"), "{}", db.message);
    let applied = format!(
        "user={} group=immuta_obo_",
        sandbox.credentials().databricks_client_id
    );
    assert!(
        db.message.contains(&applied),
        "the identity Databricks applied: {}",
        db.message
    );
    let cleanup = find(&lines, "cleanup");
    assert!(
        cleanup.message.contains("dropped its 2 vend(s)"),
        "{}",
        cleanup.message
    );
    // The statements ran as alice's vended roles, and nothing is left behind.
    let executed = sandbox.state.executed();
    assert!(
        executed
            .iter()
            .any(|s| s.sql == "SELECT 1" && s.user == crate::support::ALICE)
    );
    assert_eq!(sandbox.state.counter(Counter::PatsCreated), 1);
    assert_eq!(
        sandbox.state.counter(Counter::PatsRemoved),
        1,
        "the PAT is removed"
    );
    assert_eq!(
        sandbox.state.count(Endpoint::ImmutaDelete),
        2,
        "both vends are dropped"
    );

    // An unknown user fails with Immuta's answer, and nothing is vended.
    let lines = app::check_as(&cfg, "nobody@example.com").await;
    assert!(
        lines
            .iter()
            .filter(|l| l.component.ends_with("as_user"))
            .all(|l| !l.ok),
        "{lines:#?}"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn with_the_databricks_apps_source_check_reaches_the_workspace_scim_me() {
    let sandbox = sandbox_with(AgentPrerequisites::default()).await;
    let mut cfg = sandbox.client_config();
    cfg.identity.source = immuta_mcp::identity::databricks_apps::HttpIdentitySource::DatabricksApps;
    let lines = app::check(&cfg).await;
    let identity = find(&lines, "identity");
    assert!(identity.ok, "{identity:?}");
    assert!(
        identity.message.contains("/api/2.0/preview/scim/v2/Me"),
        "{identity:?}"
    );
    assert_eq!(sandbox.state.count(Endpoint::DatabricksScimMe), 1);
    // A workspace URL where nothing answers is named.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    cfg.identity.databricks_apps.workspace_url = Some(format!("http://{closed}"));
    let lines = app::check(&cfg).await;
    let identity = find(&lines, "identity");
    assert!(
        !identity.ok && identity.message.contains("unreachable"),
        "{identity:?}"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_binary_prints_each_failure_with_its_fix() {
    let sandbox = sandbox_with(AgentPrerequisites {
        snowflake_user_type: "LEGACY_SERVICE".into(),
        snowflake_network_policy: String::new(),
        databricks_warehouse_permission: String::new(),
        ..Default::default()
    })
    .await;
    // A config file as an operator writes it: secrets in files, not inline.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sandbox.client_config();
    let to_file = |name: &str, secret: &SecretRef| -> SecretRef {
        let SecretRef::Value(v) = secret else {
            panic!("sandbox secrets are inline")
        };
        let path = dir.path().join(name);
        std::fs::write(&path, v).unwrap();
        SecretRef::File(path)
    };
    let immuta = cfg.immuta.as_mut().unwrap();
    immuta.api_key = to_file("immuta", &immuta.api_key);
    let sf = cfg.snowflake.as_mut().unwrap();
    sf.private_key = to_file("snowflake.pem", &sf.private_key);
    let db = cfg.databricks.as_mut().unwrap();
    db.client_secret = to_file("databricks", &db.client_secret);
    let path = dir.path().join("immuta-mcp.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();

    let out = tokio::process::Command::new(crate::support::BIN)
        .args([
            "check",
            "--config",
            path.to_str().unwrap(),
            "--as",
            crate::support::BOB,
        ])
        .env_remove("IMMUTA_MCP_CONFIG")
        .env_remove("IMMUTA_MCP_LOG")
        .output();
    let out = crate::support::bounded("immuta-mcp check", out)
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "unmet prerequisites fail the check:\n{stderr}"
    );
    for says in [
        "FAIL snowflake.user_type",
        "ALTER USER \"IMMUTA_AGENT\" SET TYPE = SERVICE;",
        "FAIL snowflake.network_policy",
        "ALTER USER \"IMMUTA_AGENT\" SET NETWORK_POLICY = immuta_agent_policy;",
        "FAIL databricks.warehouse",
        "TO SERVICE PRINCIPAL `",
        "ok   snowflake.pat_grant",
        "ok   databricks.as_user",
        "FAIL snowflake.as_user",
        "fix:",
    ] {
        assert!(stderr.contains(says), "{says:?} not in:\n{stderr}");
    }
    if let Err(leak) =
        crate::support::find_secret(&stderr, &crate::support::sandbox_secrets(&sandbox))
    {
        panic!("check output: {leak}");
    }
    sandbox.shutdown().await;
}
