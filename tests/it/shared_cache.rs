//! Rule: replicas sharing Redis make one vend and one PAT per user and keep nothing usable in clear
//! in Redis.
//!
//! Replicas sharing credentials through a real `redis-server`
//! (`[cache] backend = "redis"`): one vend and one PAT for a user across
//! replicas, serving on when Redis stops, a replica dying mid-burst or while
//! holding the mint lock, and nothing usable in clear in Redis.
//!
//! Each replica is the production assembly (`app::build_platforms`) of the
//! same configuration, in this process, on one sandbox.

use crate::support::query_request as request;
use crate::support::{ALICE, BOB, CAROL, RedisServer};
use immuta_mcp::app;
use immuta_mcp::config::{Config, SecretRef};
use immuta_mcp::query::{CallContext, GovernedQuery, QueryError};
use immuta_mcp::result::ResultSet;
use immuta_mcp::sandbox::{Counter, Endpoint, Fault, Sandbox, SandboxOptions, SandboxSettings};
use immuta_mcp::shared::{CacheBackend, CacheConfig};
use immuta_mcp::snowflake::SnowflakeGoverned;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ORDERS_SQL: &str =
    "SELECT ORDER_ID, REGION, EMAIL, AMOUNT FROM SALES.PUBLIC.ORDERS ORDER BY ORDER_ID";
/// Every demo user may read this table.
const CUSTOMERS_SQL: &str =
    "SELECT CUSTOMER_ID, REGION FROM SALES.PUBLIC.CUSTOMERS ORDER BY CUSTOMER_ID";
const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn cache_config(redis: &RedisServer, lease_ms: u64) -> CacheConfig {
    CacheConfig {
        backend: CacheBackend::Redis,
        url: Some(redis.url()),
        encryption_key: Some(SecretRef::Value(KEY_HEX.into())),
        lock_lease_ms: lease_ms,
        retry_after_ms: 200,
        ..CacheConfig::default()
    }
}

struct Cluster {
    sandbox: Sandbox,
    config: Config,
    replicas: Vec<Arc<SnowflakeGoverned>>,
    /// (user, vended role) each call reported.
    identities: Mutex<Vec<(String, String)>>,
}

impl Cluster {
    async fn start(redis: &RedisServer, replicas: usize, lease_ms: u64) -> Cluster {
        Self::start_with(redis, replicas, lease_ms, SandboxOptions::default()).await
    }

    async fn start_with(
        redis: &RedisServer,
        replicas: usize,
        lease_ms: u64,
        options: SandboxOptions,
    ) -> Cluster {
        immuta_mcp::http_client::install_crypto_provider();
        let sandbox = crate::support::bounded("sandbox", Sandbox::start(options))
            .await
            .expect("sandbox starts");
        let mut config = sandbox.client_config();
        config.cache = cache_config(redis, lease_ms);
        let mut cluster = Cluster {
            sandbox,
            config,
            replicas: Vec::new(),
            identities: Mutex::new(Vec::new()),
        };
        for _ in 0..replicas {
            cluster.add_replica();
        }
        cluster
    }

    /// Another replica of the same configuration (its own local cache and Redis connection).
    fn add_replica(&mut self) -> Arc<SnowflakeGoverned> {
        let platforms = app::build_platforms(&self.config).expect("replica assembles");
        assert!(platforms.shared_cache.is_some(), "the Redis backend is on");
        let replica = platforms.snowflake.expect("snowflake configured");
        self.replicas.push(replica.clone());
        replica
    }

    async fn run_on(
        &self,
        replica: &SnowflakeGoverned,
        user: &str,
    ) -> Result<ResultSet, QueryError> {
        self.run_sql_on(replica, user, ORDERS_SQL).await
    }

    async fn run_sql_on(
        &self,
        replica: &SnowflakeGoverned,
        user: &str,
        sql: &str,
    ) -> Result<ResultSet, QueryError> {
        let ctx = CallContext::new(user, "query_snowflake");
        let result = crate::support::bounded("query", replica.query(&ctx, &request(sql))).await;
        if let Some(role) = ctx.facts().vended_role {
            self.identities
                .lock()
                .unwrap()
                .push((user.to_string(), role));
        }
        result
    }

    fn count(&self, c: Counter) -> u64 {
        self.sandbox.state.counter(c)
    }

    /// Every statement ran as a role vended to the user it ran for, that
    /// user's calls reported that role, and no role served two users.
    fn assert_no_foreign_identity(&self) {
        let known: HashSet<(String, String)> =
            self.identities.lock().unwrap().iter().cloned().collect();
        let mut role_users: HashMap<String, String> = HashMap::new();
        for (user, role) in &known {
            if let Some(other) = role_users.insert(role.clone(), user.clone()) {
                assert_eq!(&other, user, "role {role} was reported for two users");
            }
        }
        let executed = self.sandbox.state.executed();
        assert!(!executed.is_empty(), "some statement ran");
        for s in executed {
            assert!(
                known.contains(&(s.user.clone(), s.role.clone())),
                "statement {:?} ran as role {} for {}, which no call of that user reported",
                s.sql,
                s.role,
                s.user
            );
            assert!(s.role.starts_with("IMMUTA_OBO_"), "ran as {}", s.role);
        }
    }

    fn executed(&self, user: &str) -> usize {
        self.executed_sql(user, ORDERS_SQL)
    }

    fn executed_sql(&self, user: &str, sql: &str) -> usize {
        self.sandbox
            .state
            .executed()
            .iter()
            .filter(|s| s.sql == sql && s.user == user)
            .count()
    }
}

/// Nothing Redis holds contains a credential the sandbox issued, nor a user name.
async fn assert_nothing_usable_in_clear(redis: &RedisServer, cluster: &Cluster) -> usize {
    let dump = redis.dump().await;
    let secrets = cluster.sandbox.state.issued_credentials();
    assert!(!secrets.is_empty(), "the sandbox issued credentials");
    for (key, value) in &dump {
        for secret in &secrets {
            let needle = secret.as_bytes();
            assert!(
                !key.contains(secret.as_str()) && !value.windows(needle.len()).any(|w| w == needle),
                "Redis key {key} holds an issued credential in clear"
            );
        }
        for user in [ALICE, BOB, CAROL] {
            assert!(
                !key.contains(user) && !value.windows(user.len()).any(|w| w == user.as_bytes()),
                "Redis key {key} names user {user} in clear"
            );
        }
    }
    dump.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_cold_calls_across_three_replicas_make_one_vend_and_one_pat() {
    let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let cluster = Arc::new(Cluster::start(&redis, 3, 15_000).await);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let replica = cluster.replicas[i % 3].clone();
            cluster.run_on(&replica, ALICE).await.map(|rs| rs.row_count)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().expect("every call succeeds"), 4);
    }
    assert_eq!(
        cluster.count(Counter::VendsCreated),
        1,
        "one vend across replicas"
    );
    assert_eq!(
        cluster.count(Counter::PatsCreated),
        1,
        "one PAT across replicas"
    );
    assert_eq!(cluster.executed(ALICE), 100);
    cluster.assert_no_foreign_identity();

    // Another user is vended separately, also once.
    for replica in cluster.replicas.clone() {
        cluster.run_on(&replica, BOB).await.expect("bob's call");
    }
    assert_eq!(cluster.count(Counter::VendsCreated), 2);
    assert_eq!(cluster.count(Counter::PatsCreated), 2);
    cluster.assert_no_foreign_identity();

    let entries = assert_nothing_usable_in_clear(&redis, &cluster).await;
    assert_eq!(entries, 2, "one sealed entry per user, no lock left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_copied_under_another_users_key_is_refused_and_that_user_is_vended_afresh() {
    let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let mut cluster = Cluster::start(&redis, 1, 15_000).await;
    let first = cluster.replicas[0].clone();
    cluster.run_on(&first, ALICE).await.expect("alice");
    cluster.run_on(&first, BOB).await.expect("bob");
    let dump = redis.dump().await;
    assert_eq!(dump.len(), 2);
    // Overwrite every entry with alice's: whichever key is bob's now holds
    // alice's sealed credential.
    let alice_role = cluster
        .identities
        .lock()
        .unwrap()
        .iter()
        .find(|(u, _)| u == ALICE)
        .map(|(_, r)| r.clone())
        .unwrap();
    let vends_before = cluster.count(Counter::VendsCreated);
    for (planted, value) in &dump {
        for (key, _) in &dump {
            redis.set_px(key, value, 600_000).await;
        }
        // A fresh replica (cold local cache) reads the planted entries.
        let fresh = cluster.add_replica();
        cluster
            .run_on(&fresh, BOB)
            .await
            .expect("bob on a fresh replica");
        let bob_role = cluster
            .identities
            .lock()
            .unwrap()
            .last()
            .map(|(_, r)| r.clone())
            .unwrap();
        assert_ne!(
            bob_role, alice_role,
            "bob never runs as alice's role ({planted})"
        );
    }
    assert!(
        cluster.count(Counter::VendsCreated) > vends_before,
        "bob was vended again instead of reusing the replayed entry"
    );
    cluster.assert_no_foreign_identity();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_calls_keep_succeeding_under_their_own_roles() {
    let mut redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let mut cluster = Cluster::start(&redis, 3, 15_000).await;
    // Replicas that serve nobody until Redis is gone: their local caches are cold then.
    let late: Vec<_> = (0..3).map(|_| cluster.add_replica()).collect();
    let cluster = Arc::new(cluster);
    let users = [ALICE, BOB, CAROL];
    let burst = |cluster: Arc<Cluster>, round: usize| async move {
        let mut tasks = Vec::new();
        for i in 0..30 {
            let cluster = cluster.clone();
            tasks.push(tokio::spawn(async move {
                let replica = cluster.replicas[(i + round) % 3].clone();
                let user = users[i % 3];
                cluster
                    .run_sql_on(&replica, user, CUSTOMERS_SQL)
                    .await
                    .map(|rs| rs.row_count)
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().expect("every call succeeds") > 0);
        }
    };
    burst(cluster.clone(), 0).await;
    assert_eq!(
        cluster.count(Counter::VendsCreated),
        3,
        "one vend per user while Redis runs"
    );

    // Redis goes away in the middle of a burst.
    let during = tokio::spawn(burst(cluster.clone(), 1));
    tokio::time::sleep(Duration::from_millis(5)).await;
    redis.stop();
    during.await.unwrap();
    burst(cluster.clone(), 2).await;
    // Replicas with a cold cache serve without Redis, each vending for itself.
    let vends = cluster.count(Counter::VendsCreated);
    for replica in &late {
        for user in users {
            let rs = cluster
                .run_sql_on(replica, user, CUSTOMERS_SQL)
                .await
                .unwrap_or_else(|e| panic!("{user} is served without Redis: {e}"));
            assert!(rs.row_count > 0);
        }
    }
    assert_eq!(
        cluster.count(Counter::VendsCreated),
        vends + 9,
        "without Redis every cold replica vends for itself"
    );
    cluster.assert_no_foreign_identity();
    for user in users {
        assert_eq!(
            cluster.executed_sql(user, CUSTOMERS_SQL),
            30 + 3,
            "{user}: every call ran"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_burst_loses_only_its_own_calls() {
    let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let cluster = Arc::new(Cluster::start(&redis, 3, 1_000).await);
    // Vends and PAT creation take a while, so the burst is in flight when the replica dies.
    cluster.sandbox.faults().add(
        Endpoint::ImmutaVend,
        Fault::Latency(Duration::from_millis(300)),
    );
    // The replica to kill runs on its own runtime: shutting that down drops
    // every task of it at once, mint lock or not.
    let doomed_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut survivors = Vec::new();
    let mut doomed = Vec::new();
    for i in 0..60 {
        let cluster = cluster.clone();
        let replica = cluster.replicas[i % 3].clone();
        let call = async move { cluster.run_on(&replica, ALICE).await.map(|rs| rs.row_count) };
        if i % 3 == 2 {
            doomed.push(doomed_runtime.spawn(call));
        } else {
            survivors.push(tokio::spawn(call));
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::task::spawn_blocking(move || doomed_runtime.shutdown_background())
        .await
        .unwrap();
    for t in survivors {
        assert_eq!(
            t.await
                .unwrap()
                .expect("calls on the surviving replicas succeed"),
            4
        );
    }
    let mut lost = 0;
    for t in doomed {
        match t.await {
            Err(e) if e.is_cancelled() => lost += 1,
            Ok(r) => assert_eq!(r.expect("a finished call of the killed replica"), 4),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(lost > 0, "the killed replica had calls in flight");
    assert!(
        cluster.count(Counter::VendsCreated) <= 2,
        "at most the dead replica's vend and one more"
    );
    assert_eq!(cluster.executed(ALICE), 40 + (20 - lost));
    cluster.assert_no_foreign_identity();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_dead_replica_delays_the_others_only_until_its_lease_ends() {
    let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let lease_ms = 1_500;
    let mut cluster = Cluster::start(&redis, 0, lease_ms).await;
    // A "replica" that takes alice's mint lock and dies holding it: its
    // runtime is shut down while its vend is slow.
    cluster.sandbox.faults().add(
        Endpoint::ImmutaVend,
        Fault::Latency(Duration::from_millis(800)),
    );
    let dead = cluster.add_replica();
    let dead_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dead_call = {
        let dead = dead.clone();
        dead_runtime.spawn(async move {
            let ctx = CallContext::new(ALICE, "query_snowflake");
            dead.query(&ctx, &request(ORDERS_SQL)).await.map(|_| ())
        })
    };
    // The dead replica holds the lock (its vend request arrived) before it dies.
    crate::support::eventually("the dying replica asks for a vend", || {
        cluster.sandbox.state.count(Endpoint::ImmutaVend) >= 1
    })
    .await;
    tokio::task::spawn_blocking(move || dead_runtime.shutdown_background())
        .await
        .unwrap();
    assert!(dead_call.await.unwrap_err().is_cancelled());
    let lock_keys = redis
        .dump()
        .await
        .into_iter()
        .filter(|(k, _)| k.contains(":lock:"))
        .count();
    assert_eq!(lock_keys, 1, "the dead replica's lock is still in Redis");

    let live = cluster.add_replica();
    let started = tokio::time::Instant::now();
    let rs = cluster
        .run_on(&live, ALICE)
        .await
        .expect("served after the lease");
    assert_eq!(rs.row_count, 4);
    assert!(
        started.elapsed() >= Duration::from_millis(lease_ms / 2),
        "the live replica waited for the dead holder's lock"
    );
    assert_eq!(
        cluster.count(Counter::PatsCreated),
        1,
        "only the live replica minted"
    );
    cluster.assert_no_foreign_identity();
}

#[tokio::test]
async fn check_reports_an_unreachable_redis_and_the_cache_settings_are_validated() {
    let mut redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let mut config = sandbox.client_config();
    config.cache = cache_config(&redis, 15_000);
    let lines = app::check(&config).await;
    let cache = lines
        .iter()
        .find(|l| l.component == "cache")
        .expect("cache line");
    assert!(cache.ok, "{}", cache.message);
    assert!(cache.message.contains("answers"), "{}", cache.message);
    redis.stop();
    let lines = app::check(&config).await;
    let cache = lines
        .iter()
        .find(|l| l.component == "cache")
        .expect("cache line");
    assert!(!cache.ok);
    assert!(cache.message.contains("unreachable"), "{}", cache.message);
    assert!(!cache.message.contains(KEY_HEX));

    let mut no_key = config.clone();
    no_key.cache.encryption_key = None;
    let err = no_key.validate().unwrap_err().to_string();
    assert!(err.contains("cache.encryption_key"), "{err}");
    let mut short_key = config.clone();
    short_key.cache.encryption_key = Some(SecretRef::Value("abcd".into()));
    let err = app::build_platforms(&short_key)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("32 bytes"), "{err}");
    let parsed = Config::parse("[cache]\nbackend = \"memcached\"\n").unwrap_err();
    assert!(
        parsed.contains("memcached") || parsed.contains("variant"),
        "{parsed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databricks_tokens_are_shared_too_one_vend_and_one_token_across_replicas() {
    let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let cluster = Cluster::start(&redis, 0, 15_000).await;
    let replicas: Vec<_> = (0..3)
        .map(|_| {
            app::build_platforms(&cluster.config)
                .expect("replica assembles")
                .databricks
                .expect("databricks configured")
        })
        .collect();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let replica = replicas[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            let ctx = CallContext::new(BOB, "query_databricks");
            let rs = crate::support::bounded(
                "databricks query",
                replica.query(&ctx, &request("SELECT order_id FROM main.sales.orders")),
            )
            .await;
            (rs.map(|rs| rs.row_count), ctx.facts().vended_role)
        }));
    }
    let mut groups = HashSet::new();
    for t in tasks {
        let (rows, group) = t.await.unwrap();
        assert!(rows.expect("every call succeeds") > 0);
        groups.insert(group.expect("a vended group"));
    }
    assert_eq!(groups.len(), 1, "one vended group served every call");
    assert_eq!(cluster.count(Counter::VendsCreated), 1);
    assert_eq!(cluster.count(Counter::OAuthTokensIssued), 1);
    for s in cluster.sandbox.state.executed() {
        assert_eq!(s.user, BOB, "ran for bob only");
    }
    let entries = assert_nothing_usable_in_clear(&redis, &cluster).await;
    assert_eq!(entries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_a_replica_removes_only_the_pats_no_other_replica_shares() {
    let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let cluster = Cluster::start(&redis, 2, 15_000).await;
    let (minter, other) = (cluster.replicas[0].clone(), cluster.replicas[1].clone());
    cluster
        .run_on(&minter, ALICE)
        .await
        .expect("alice via the minter");
    cluster
        .run_on(&other, ALICE)
        .await
        .expect("alice via the other replica");
    assert_eq!(cluster.count(Counter::PatsCreated), 1, "shared");
    assert_eq!(
        minter.remove_unshared_pats().await,
        0,
        "alice's PAT is in the shared cache: another replica may be using it"
    );
    assert_eq!(cluster.count(Counter::PatsRemoved), 0);
    cluster
        .run_on(&other, ALICE)
        .await
        .expect("the other replica still runs alice's calls");

    // A PAT the shared cache no longer holds is this replica's alone.
    let before: Vec<String> = redis.dump().await.into_iter().map(|(k, _)| k).collect();
    cluster
        .run_on(&minter, BOB)
        .await
        .expect("bob via the minter");
    let bobs: Vec<String> = redis
        .dump()
        .await
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !before.contains(k))
        .collect();
    assert_eq!(bobs.len(), 1, "bob's entry");
    redis.delete(&bobs[0]).await;
    assert_eq!(
        minter.remove_unshared_pats().await,
        1,
        "bob's PAT is removed, alice's (still shared) kept"
    );
    assert_eq!(cluster.count(Counter::PatsRemoved), 1);
    cluster.assert_no_foreign_identity();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_a_superseded_pat_is_removed_even_while_the_users_new_one_is_shared() {
    let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let cluster = Cluster::start(&redis, 1, 15_000).await;
    let replica = cluster.replicas[0].clone();
    cluster
        .run_on(&replica, ALICE)
        .await
        .expect("alice's first PAT");
    // Alice's PAT dies upstream: her next call is refused, the dead PAT's REMOVE
    // fails (so this replica still holds it), and a new PAT is minted and shared.
    cluster.sandbox.state.expire_credentials();
    let faults = cluster.sandbox.faults();
    faults.add(Endpoint::SnowflakeSubmit, Fault::Pass { times: 1 });
    faults.add(
        Endpoint::SnowflakeSubmit,
        Fault::Status {
            status: 400,
            retry_after: None,
            times: 1,
        },
    );
    cluster
        .run_on(&replica, ALICE)
        .await
        .expect("alice with a new PAT");
    assert_eq!(faults.queued(Endpoint::SnowflakeSubmit), 0);
    assert_eq!(cluster.count(Counter::PatsCreated), 2);
    assert_eq!(cluster.count(Counter::PatsRemoved), 0, "the REMOVE failed");
    assert_eq!(
        replica.remove_unshared_pats().await,
        1,
        "the superseded PAT is this replica's alone; the shared one is kept"
    );
    assert_eq!(cluster.count(Counter::PatsRemoved), 1);
    cluster.assert_no_foreign_identity();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_evicted_at_the_pat_limit_is_taken_out_of_the_shared_cache_too() {
    let redis = RedisServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    let options = SandboxOptions {
        settings: SandboxSettings {
            pat_limit_per_user: 1,
            ..SandboxSettings::default()
        },
        ..SandboxOptions::default()
    };
    let cluster = Cluster::start_with(&redis, 1, 15_000, options).await;
    let replica = cluster.replicas[0].clone();
    let keys = || async {
        redis
            .dump()
            .await
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    };
    cluster.run_on(&replica, ALICE).await.expect("alice");
    let alices = keys().await;
    assert_eq!(alices.len(), 1, "alice's entry: {alices:?}");
    // Bob takes alice's slot: her PAT is removed, so no replica may find it shared.
    cluster
        .run_on(&replica, BOB)
        .await
        .expect("bob evicts alice");
    assert_eq!(cluster.count(Counter::PatsRemoved), 1);
    let now = keys().await;
    assert!(!now.contains(&alices[0]), "alice's entry is gone: {now:?}");
    assert_eq!(now.len(), 1, "bob's entry");
    cluster.assert_no_foreign_identity();
}
