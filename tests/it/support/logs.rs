//! Per-test log capture in a process whose tests run in parallel.
//!
//! A process has one global `tracing` subscriber, installed here once ([`INSTALLED`]): a registry
//! with a plain-text and a JSON `fmt` layer (the product's two log formats), both behind the
//! [`CapturedHere`] filter. A test that reads logs runs its body through [`with_logs`], which
//! builds the test's own Tokio runtime and marks every thread of it (the test thread, the worker
//! threads, the blocking pool: `on_thread_start`) as belonging to the test's [`LogCapture`]. An
//! event is formatted only on a marked thread whose capture's level admits it, and only into that
//! capture. So a test sees every event its own server, sandbox and client emit (they all run on
//! its runtime), at the level it asked for, and never another test's line; everywhere else events
//! are dropped at the filter. `log` records (rustls) are bridged into `tracing` on the emitting
//! thread (`tracing-log`), so they are attributed the same way.
//!
//! Why not `tracing::subscriber::set_default` per test: it covers one thread only (a
//! multi-threaded runtime's workers escape it), and the per-callsite interest `tracing` caches
//! while other tests' scoped subscribers come and go made a thread-scoped capture miss events
//! whose callsites another test thread registered first (seen in `e2e_http`). The filter here
//! answers `Interest::sometimes()` for every callsite, so nothing is cached.

use serde_json::Value;
use std::cell::RefCell;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Set once the global subscriber is installed.
static INSTALLED: OnceLock<()> = OnceLock::new();

thread_local! {
    /// The capture of the test whose runtime owns this thread, if any.
    static CURRENT: RefCell<Option<Arc<Sink>>> = const { RefCell::new(None) };
}

/// Where one test's events go.
struct Sink {
    /// The most verbose level the test asked for.
    level: Level,
    text: Mutex<Vec<u8>>,
    json: Mutex<Vec<u8>>,
}

/// The threads a test runs on: its runtime's flavour.
#[derive(Clone, Copy, Debug)]
pub enum Threads {
    /// `#[tokio::test]`: everything on the test's thread.
    Current,
    /// `#[tokio::test(flavor = "multi_thread", worker_threads = n)]`.
    Workers(usize),
}

/// The logs of one test, as far as they have been written.
#[derive(Clone)]
pub struct LogCapture(Arc<Sink>);

impl LogCapture {
    /// Everything logged so far, in the plain-text format (no ANSI colours).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.text.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Everything logged so far, in the JSON format (one object per line).
    pub fn json_text(&self) -> String {
        String::from_utf8_lossy(&self.0.json.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Every event logged so far, as the JSON formatter wrote it.
    pub fn json_events(&self) -> Vec<Value> {
        self.json_text()
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("a JSON log line: {e}: {l}"))
            })
            .collect()
    }

    /// The `fields` of every `immuta_mcp::audit` event logged so far.
    pub fn audit_events(&self) -> Vec<Value> {
        self.json_events()
            .into_iter()
            .filter(|v| v["target"] == "immuta_mcp::audit")
            .map(|v| v["fields"].clone())
            .collect()
    }
}

/// Run `test` on a fresh Tokio runtime of the given flavour, capturing every event up to `level`
/// that any thread of that runtime emits. Use in a plain `#[test]` in place of `#[tokio::test]`.
pub fn with_logs<F, Fut>(level: Level, threads: Threads, test: F)
where
    F: FnOnce(LogCapture) -> Fut,
    Fut: Future<Output = ()>,
{
    install();
    let sink = Arc::new(Sink {
        level,
        text: Mutex::default(),
        json: Mutex::default(),
    });
    let mut builder = match threads {
        Threads::Current => tokio::runtime::Builder::new_current_thread(),
        Threads::Workers(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let marked = sink.clone();
    let runtime = builder
        .enable_all()
        .on_thread_start(move || mark_thread(Some(marked.clone())))
        .on_thread_stop(|| mark_thread(None))
        .build()
        .expect("a Tokio runtime for the test");
    struct Unmark;
    impl Drop for Unmark {
        fn drop(&mut self) {
            mark_thread(None);
        }
    }
    mark_thread(Some(sink.clone()));
    let _unmark = Unmark;
    runtime.block_on(test(LogCapture(sink)));
}

fn mark_thread(sink: Option<Arc<Sink>>) {
    CURRENT.with(|c| *c.borrow_mut() = sink);
}

/// Install the process-wide subscriber (once).
fn install() {
    INSTALLED.get_or_init(|| {
        let text = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| SinkWriter { json: false })
            .with_filter(CapturedHere);
        let json = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(|| SinkWriter { json: true })
            .with_filter(CapturedHere);
        tracing_subscriber::registry()
            .with(text)
            .with(json)
            .try_init()
            .expect("support::logs installs the only global subscriber of the test process");
    });
}

/// Enabled on a thread of a capturing test's runtime, up to that test's level. Never cached
/// per callsite: the same callsite is on for one thread and off for the next.
struct CapturedHere;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for CapturedHere {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        CURRENT.with(|c| {
            c.borrow()
                .as_ref()
                .is_some_and(|sink| *meta.level() <= sink.level)
        })
    }

    fn callsite_enabled(&self, _meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
}

/// Writes the formatted event into the current thread's capture (nothing when there is none).
struct SinkWriter {
    json: bool,
}

impl std::io::Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CURRENT.with(|c| {
            if let Some(sink) = c.borrow().as_ref() {
                let target = if self.json { &sink.json } else { &sink.text };
                target
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
