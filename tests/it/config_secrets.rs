//! Rule: a bad configuration file is reported without printing an inline secret, and plain-http
//! upstreams are refused.
//!
//! Security audit F7 and F10 through the binary: `immuta-mcp check` and
//! `serve` on a bad config file must not print an inline secret (toml's error
//! text used to quote the source line), and plain-http upstreams are refused
//! with the key named.

use crate::support::run_to_exit;

const SECRET: &str = "IMMUTA-API-KEY-SUPERSECRET-123";

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn check_and_serve_do_not_echo_an_inline_secret_next_to_a_typo() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        // The audit's reproduction.
        format!(
            "[immuta]\nurl = \"https://acme.example.com\"\napi_key = {{ value = \"{SECRET}\", extra = 1 }}\n"
        ),
        // An inline secret without a typo is refused as such.
        format!(
            "[immuta]\nurl = \"https://acme.example.com\"\napi_key = {{ value = \"{SECRET}\" }}\n"
        ),
        // stdio_id_token with a syntax error on its line.
        format!("[identity]\nstdio_id_token = {{ value = \"{SECRET}\"\n"),
    ];
    for (i, text) in files.iter().enumerate() {
        let path = write(&dir, &format!("bad{i}.toml"), text);
        for args in [
            vec!["check", "--config", path.as_str()],
            vec!["serve", "--stdio", "--config", path.as_str()],
        ] {
            let (ok, out, err) = run_to_exit(&args).await;
            assert!(!ok, "{args:?} must fail");
            assert!(
                !out.contains("SUPERSECRET") && !err.contains("SUPERSECRET"),
                "{args:?} printed the secret:\n{err}"
            );
            assert!(err.contains("line "), "{args:?}: {err}");
        }
    }
    let (_, _, err) = run_to_exit(&["check", "--config", &write(&dir, "b.toml", &files[1])]).await;
    assert!(
        err.contains("not accepted in a configuration file"),
        "{err}"
    );
}

#[tokio::test]
async fn check_refuses_a_plain_http_jwks_url_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "http.toml",
        "[identity.oauth]\nissuer = \"https://login.example.com/\"\n\
         jwks_url = \"http://login.example.com/jwks.json\"\n",
    );
    let (ok, _, err) = run_to_exit(&["check", "--config", &path]).await;
    assert!(!ok);
    assert!(
        err.contains("identity.oauth.jwks_url") && err.contains("https"),
        "{err}"
    );
}
