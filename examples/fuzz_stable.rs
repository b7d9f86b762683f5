//! Stable-toolchain fuzzing: a bounded mutation loop over the SQL guard and both result decoders.
//!
//! cargo-fuzz needs a nightly toolchain; this loop runs on stable with the same target bodies
//! (`fuzz/src/targets.rs`, included by path). For each target it loads the seeds (built-in ones
//! plus every file in `fuzz/corpus/<target>/`, which holds SQL and payloads captured from the
//! sandbox), then for `--seconds` feeds random and mutated inputs (byte flips, inserts, deletes,
//! splices, dictionary tokens, and JSON-aware edits that keep payloads parseable). An input whose
//! outcome "shape" was not seen before joins the corpus: cheap feedback without coverage
//! instrumentation. Panics (in the code under test or a broken property) are caught, counted and
//! the input is written to `target/fuzz-stable/<target>-<hash>.bin`.
//!
//! `--capture` first starts the sandbox, runs real statements against both emulators with plain
//! HTTP and writes the answers (and the SQL) into `fuzz/corpus/<target>/` as seeds.
//!
//! Usage: `cargo run --release --example fuzz_stable -- [--seconds 20] [--target guard] [--seed 1] [--capture]`.
//! Exit status 1 when any input panicked.

#[path = "../fuzz/src/targets.rs"]
mod targets;

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser, Debug)]
#[command(
    about = "Bounded mutation fuzzing of the SQL guard and the decoders on the stable toolchain"
)]
struct Args {
    /// Seconds per target (0: stop after `--capture`).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Targets to run (default: all of guard, snowflake_decode, databricks_decode).
    #[arg(long)]
    target: Vec<String>,
    /// RNG seed (default: from the clock; printed so a run can be repeated).
    #[arg(long)]
    seed: Option<u64>,
    /// Corpus directory holding one folder per target.
    #[arg(long, default_value = "fuzz/corpus")]
    corpus: PathBuf,
    /// Where panicking inputs are written.
    #[arg(long, default_value = "target/fuzz-stable")]
    crashes: PathBuf,
    /// Longest generated input, bytes.
    #[arg(long, default_value_t = 4096)]
    max_len: usize,
    /// Print this many of the features each target reached (what the feedback saw).
    #[arg(long, default_value_t = 0)]
    show_features: usize,
    /// Capture real SQL and emulator answers into the corpus before fuzzing.
    #[arg(long)]
    capture: bool,
}

/// Tokens the mutator inserts: SQL syntax, tricky characters, JSON fragments, edge values.
const DICTIONARY: &[&str] = &[
    "SELECT ",
    " FROM ",
    " WHERE ",
    "WITH ",
    " AS ",
    "SHOW ",
    "DESCRIBE ",
    "EXPLAIN ",
    "USE ROLE ",
    "USE ",
    "ROLE",
    "SECONDARY ROLES",
    "SET ",
    "ALTER USER ",
    "EXECUTE IMMEDIATE ",
    "INSERT ",
    "DELETE ",
    "UPDATE ",
    "MERGE ",
    "CREATE ",
    "DROP ",
    "CALL ",
    "COPY INTO ",
    " INTO ",
    " FOR UPDATE",
    "RETURNING ",
    "VALUES ",
    "TABLE(",
    "RESULT_SCAN(",
    "IDENTIFIER(",
    "SYSTEM$",
    "reflect(",
    "java_method(",
    "http_request(",
    // Lexer disagreements between sqlparser and the platforms (security audit F2, F3, F8).
    " ->> ",
    "->>",
    "\r",
    "--\r",
    "-- \\\n",
    "$a$",
    "$$",
    "\r\n",
    ";",
    "; ",
    "--",
    "\n",
    "/*",
    "*/",
    "#",
    "'",
    "''",
    "\"",
    "`",
    "$$",
    "\\",
    "(",
    ")",
    ",",
    ".",
    "*",
    "\u{200b}",
    "\u{202e}",
    "\u{feff}",
    "\u{ff33}",
    "\u{e9}",
    "\u{0}",
    "\r",
    "{",
    "}",
    "[",
    "]",
    ":",
    "null",
    "true",
    "false",
    "\"\"",
    "[]",
    "{}",
    "\"type\":\"",
    "\"scale\":",
    "\"data\":[[",
    "\"rowType\":[{",
    "\"type_name\":\"",
    "\"type_text\":\"",
    "\"data_array\":[[",
    "0",
    "-1",
    "1e309",
    "-0",
    "0.0000000001",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999999999999999999",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1969-12-31",
    "0000-01-01",
    "9999-12-31",
    "+275760-09-13",
    "T",
    "Z",
    "+14:00",
    "-12:00",
    " 1440",
    " 2880",
    " 0",
    "86400",
    "-62135596800",
    "253402300800",
    ".999999999",
    ".0000000001",
    "00ff",
    "zz",
    "SGVsbG8=",
    "====",
    "fixed",
    "real",
    "text",
    "boolean",
    "date",
    "time",
    "timestamp_ntz",
    "timestamp_ltz",
    "timestamp_tz",
    "variant",
    "binary",
    "DECIMAL(38,37)",
    "INTERVAL",
    "STRUCT<",
];

/// Bytes the mutator writes over a position.
const EDGE_BYTES: [u8; 10] = [0, 0xff, 0x7f, b'\'', b'"', b';', b'\n', b'0', b'9', b'-'];

/// The message of the last panic, captured by the hook.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() -> Result<()> {
    let args = Args::parse();
    if args.capture {
        let written = capture_corpus(&args.corpus)?;
        eprintln!(
            "fuzz_stable: wrote {written} seed files into {}",
            args.corpus.display()
        );
    }
    if args.seconds == 0 {
        return Ok(());
    }
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7)
    });
    std::panic::set_hook(Box::new(|info| {
        let message = match info.payload().downcast_ref::<&str>() {
            Some(s) => s.to_string(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "panic".into()),
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{message}{at}"));
    }));
    println!(
        "fuzz_stable: seed {seed}, {} s per target, inputs up to {} bytes",
        args.seconds, args.max_len
    );
    println!(
        "| target | seeds | executions | exec/s | corpus at end | features | distinct panics |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut total_panics = 0;
    for &(name, target) in targets::TARGETS {
        if !args.target.is_empty() && !args.target.iter().any(|t| t == name) {
            continue;
        }
        let summary = fuzz_one(name, target, &args, seed)?;
        println!(
            "| {name} | {} | {} | {:.0} | {} | {} | {} |",
            summary.seeds,
            summary.executions,
            summary.executions as f64 / summary.elapsed.as_secs_f64().max(1e-9),
            summary.corpus,
            summary.features.len(),
            summary.panics.len()
        );
        for feature in summary.features.iter().take(args.show_features) {
            println!("  feature: {feature}");
        }
        for (message, path) in summary.panics.iter().take(5) {
            println!("  PANIC: {message}\n         input: {}", path.display());
        }
        total_panics += summary.panics.len();
    }
    if total_panics > 0 {
        eprintln!("fuzz_stable: {total_panics} panicking input(s) found");
        std::process::exit(1);
    }
    println!("fuzz_stable: no panics");
    Ok(())
}

struct Summary {
    seeds: usize,
    executions: u64,
    elapsed: Duration,
    corpus: usize,
    features: Vec<String>,
    panics: Vec<(String, PathBuf)>,
}

/// The mutation loop for one target.
fn fuzz_one(name: &str, target: targets::Target, args: &Args, seed: u64) -> Result<Summary> {
    let mut rng = StdRng::seed_from_u64(seed ^ hash_of(name.as_bytes()));
    let mut corpus = targets::builtin_seeds(name);
    corpus.extend(read_corpus_dir(&args.corpus.join(name))?);
    corpus.sort();
    corpus.dedup();
    let seeds = corpus.len();
    let mut outcomes = HashSet::new();
    let mut panics = Vec::new();
    let mut panic_messages = HashSet::new();
    let mut executions = 0u64;
    let started = Instant::now();
    let budget = Duration::from_secs(args.seconds);
    let mut queue: Vec<Vec<u8>> = corpus.clone();
    while started.elapsed() < budget {
        let input = match queue.pop() {
            Some(seed_input) => seed_input,
            None if rng.random_bool(0.05) || corpus.is_empty() => {
                random_bytes(&mut rng, args.max_len)
            }
            None => mutate(&mut rng, &corpus, args.max_len),
        };
        executions += 1;
        match run(target, &input) {
            Ok(features) => {
                let before = outcomes.len();
                outcomes.extend(features);
                if outcomes.len() > before && corpus.len() < 20_000 {
                    corpus.push(input);
                }
            }
            Err(message) => {
                if panic_messages.insert(panic_class(&message)) {
                    let path = save_crash(&args.crashes, name, &input)?;
                    panics.push((message, path));
                }
            }
        }
    }
    Ok(Summary {
        seeds,
        executions,
        elapsed: started.elapsed(),
        corpus: corpus.len(),
        features: {
            let mut all: Vec<String> = outcomes.into_iter().collect();
            all.sort();
            all
        },
        panics,
    })
}

/// Panics count once per place and kind: the location plus the message's first three words.
fn panic_class(message: &str) -> String {
    let location = message.rsplit_once(" at ").map_or("", |(_, at)| at);
    let words: Vec<&str> = message.split_whitespace().take(3).collect();
    format!("{location} {}", words.join(" "))
}

fn run(target: targets::Target, input: &[u8]) -> Result<targets::Features, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| target(input))).map_err(|_| {
        LAST_PANIC
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| "panic".into())
    })
}

fn random_bytes(rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max_len.min(256));
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out
}

/// 1-6 stacked edits of a corpus entry; JSON entries sometimes get a structure-preserving edit.
fn mutate(rng: &mut StdRng, corpus: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let base = &corpus[rng.random_range(0..corpus.len())];
    if rng.random_bool(0.3)
        && let Ok(mut value) = serde_json::from_slice::<Value>(base)
    {
        for _ in 0..rng.random_range(1..=3) {
            mutate_json(rng, &mut value);
        }
        if let Ok(bytes) = serde_json::to_vec(&value) {
            return bytes;
        }
    }
    let mut out = base.clone();
    for _ in 0..rng.random_range(1..=6) {
        let len = out.len();
        match rng.random_range(0..10) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = EDGE_BYTES[rng.random_range(0..EDGE_BYTES.len())];
            }
            2 => {
                let i = rng.random_range(0..=len);
                out.insert(i, rng.random());
            }
            3 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(1..=16)).min(len);
                out.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(1..=32)).min(len);
                let chunk = out[a..b].to_vec();
                let at = rng.random_range(0..=out.len());
                out.splice(at..at, chunk);
            }
            5 | 6 => {
                let token = DICTIONARY[rng.random_range(0..DICTIONARY.len())].as_bytes();
                let at = rng.random_range(0..=len);
                out.splice(at..at, token.iter().copied());
            }
            7 => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let b = (a + rng.random_range(1..=64)).min(other.len());
                    let at = rng.random_range(0..=len);
                    out.splice(at..at, other[a..b].iter().copied());
                }
            }
            8 if len > 0 => {
                let at = rng.random_range(0..len);
                out.truncate(at);
            }
            _ => {
                // Replace a run of digits with an edge number.
                if let Some(start) = out.iter().position(|b| b.is_ascii_digit()) {
                    let end = out[start..]
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .map_or(out.len(), |e| start + e);
                    let number = DICTIONARY[rng.random_range(0..DICTIONARY.len())].as_bytes();
                    out.splice(start..end, number.iter().copied());
                }
            }
        }
    }
    out.truncate(max_len);
    out
}

/// Replace one leaf of a JSON document with an edge value (or drop / duplicate an array element).
fn mutate_json(rng: &mut StdRng, value: &mut Value) {
    let mut leaves = Vec::new();
    collect_leaves(value, String::new(), &mut leaves);
    if leaves.is_empty() {
        return;
    }
    let pointer = &leaves[rng.random_range(0..leaves.len())];
    let Some(leaf) = value.pointer_mut(pointer) else {
        return;
    };
    let replacement = match rng.random_range(0..6) {
        0 => Value::Null,
        1 => json!(rng.random::<i64>()),
        2 => json!([DICTIONARY[rng.random_range(0..DICTIONARY.len())]]),
        3 => match &*leaf {
            Value::String(s) => {
                let mut bytes = s.clone().into_bytes();
                let at = rng.random_range(0..=bytes.len());
                bytes.splice(
                    at..at,
                    DICTIONARY[rng.random_range(0..DICTIONARY.len())].bytes(),
                );
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }
            other => other.clone(),
        },
        _ => Value::String(DICTIONARY[rng.random_range(0..DICTIONARY.len())].to_string()),
    };
    *leaf = replacement;
}

fn collect_leaves(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_leaves(v, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                collect_leaves(v, format!("{at}/{key}"), out);
            }
        }
        _ => out.push(at),
    }
}

fn hash_of(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn read_corpus_dir(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .collect()
}

fn save_crash(dir: &Path, target: &str, input: &[u8]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{target}-{:016x}.bin", hash_of(input)));
    std::fs::write(&path, input)?;
    Ok(path)
}

// ---------------------------------------------------------------------------
// --capture: real SQL and real emulator answers as seeds
// ---------------------------------------------------------------------------

const SNOWFLAKE_SQL: &[&str] = &[
    "SELECT * FROM SALES.PUBLIC.CUSTOMERS ORDER BY CUSTOMER_ID",
    "SELECT * FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID",
    "SELECT COUNT(*) AS N, SUM(AMOUNT) AS TOTAL, AVG(AMOUNT) AS MEAN, MAX(ORDERED_AT) AS LAST FROM SALES.PUBLIC.ORDERS",
    "SHOW TABLES IN ACCOUNT",
    "DESCRIBE TABLE SALES.PUBLIC.ORDERS",
];

const DATABRICKS_SQL: &[&str] = &[
    "SELECT * FROM main.sales.orders ORDER BY order_id",
    "SELECT * FROM main.hr.employees ORDER BY employee_id",
    "SELECT table_catalog, table_schema, table_name, column_name, ordinal_position, data_type, is_nullable FROM system.information_schema.columns",
    "SHOW TABLES IN main.sales",
    "DESCRIBE TABLE main.sales.orders",
];

/// Start the sandbox, run real statements as two users (one with masks and row filters) and write
/// SQL and answers into the corpus folders. Returns how many files were written.
fn capture_corpus(corpus: &Path) -> Result<usize> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        immuta_mcp::http_client::install_crypto_provider();
        let sandbox = immuta_mcp::sandbox::Sandbox::start(Default::default()).await?;
        // Trusts the sandbox CA (the Snowflake emulator is HTTPS) and sends a User-Agent.
        let http = sandbox
            .direct_client_builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let mut written = 0;
        let write = |target: &str, name: String, bytes: &[u8]| -> Result<()> {
            let dir = corpus.join(target);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(name), bytes)?;
            Ok(())
        };
        for &(target, _) in targets::TARGETS {
            for (i, seed) in targets::builtin_seeds(target).iter().enumerate() {
                write(target, format!("builtin-{i:02}"), seed)?;
                written += 1;
            }
        }
        for (i, sql) in SNOWFLAKE_SQL.iter().chain(DATABRICKS_SQL).enumerate() {
            write("guard", format!("live-{i:02}.sql"), sql.as_bytes())?;
            written += 1;
        }
        for (u, user) in ["bob@example.com", "alice@example.com"].iter().enumerate() {
            let pat = snowflake_pat(&sandbox, &http, user).await?;
            for (i, sql) in SNOWFLAKE_SQL.iter().enumerate() {
                let body = http
                    .post(format!("{}/api/v2/statements", sandbox.snowflake_url))
                    .bearer_auth(&pat)
                    .header(
                        "X-Snowflake-Authorization-Token-Type",
                        "PROGRAMMATIC_ACCESS_TOKEN",
                    )
                    .json(&json!({ "statement": sql, "database": "SALES", "schema": "PUBLIC" }))
                    .send()
                    .await?
                    .bytes()
                    .await?;
                write("snowflake_decode", format!("live-{u}-{i:02}.json"), &body)?;
                written += 1;
            }
            let token = databricks_token(&sandbox, &http, user, 880_000 + u as u64).await?;
            for (i, sql) in DATABRICKS_SQL.iter().enumerate() {
                let body = http
                    .post(format!("{}/api/2.0/sql/statements", sandbox.databricks_url))
                    .bearer_auth(&token)
                    .json(&json!({
                        "warehouse_id": sandbox.credentials().warehouse_id,
                        "statement": sql,
                        "catalog": "main",
                        "wait_timeout": "10s",
                        "format": "JSON_ARRAY",
                        "disposition": "INLINE",
                    }))
                    .send()
                    .await?
                    .bytes()
                    .await?;
                write("databricks_decode", format!("live-{u}-{i:02}.json"), &body)?;
                written += 1;
            }
        }
        sandbox.shutdown().await;
        Ok(written)
    })
}

async fn snowflake_pat(
    sandbox: &immuta_mcp::sandbox::Sandbox,
    http: &reqwest::Client,
    user: &str,
) -> Result<String> {
    let creds = sandbox.credentials();
    let role = format!("IMMUTA_OBO_FUZZ_{}", hash_of(user.as_bytes()) % 100_000);
    sandbox.state.engine.bind_role(
        immuta_mcp::result::Platform::Snowflake,
        &role,
        user,
        SystemTime::now() + Duration::from_secs(3600),
    )?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let subject = format!("{}.{}", creds.snowflake_account, creds.snowflake_user);
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &json!({ "iss": format!("{subject}.{}", creds.snowflake_public_key_fingerprint), "sub": subject, "iat": now, "exp": now + 3000 }),
        &jsonwebtoken::EncodingKey::from_rsa_pem(creds.snowflake_private_key_pem.as_bytes())?,
    )?;
    let body: Value = http
        .post(format!("{}/api/v2/statements", sandbox.snowflake_url))
        .bearer_auth(jwt)
        .header("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
        .json(&json!({ "statement": format!("ALTER USER ADD PAT FUZZ_{} ROLE_RESTRICTION = '{role}' MINS_TO_EXPIRY = 30", &role[16..]) }))
        .send()
        .await?
        .json()
        .await?;
    body["data"][0][1]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no PAT in {body}"))
}

async fn databricks_token(
    sandbox: &immuta_mcp::sandbox::Sandbox,
    http: &reqwest::Client,
    user: &str,
    group: u64,
) -> Result<String> {
    let creds = sandbox.credentials();
    let group = group.to_string();
    sandbox.state.engine.bind_role(
        immuta_mcp::result::Platform::Databricks,
        &group,
        user,
        SystemTime::now() + Duration::from_secs(3600),
    )?;
    let body: Value = http
        .post(format!("{}/oidc/v1/token", sandbox.databricks_url))
        .basic_auth(
            &creds.databricks_client_id,
            Some(&creds.databricks_client_secret),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "all-apis"),
            ("assume_group", group.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no token in {body}"))
}
