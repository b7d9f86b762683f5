//! Statement bookkeeping shared by the Snowflake and Databricks emulators.
//!
//! Both SQL APIs run a statement asynchronously and let the submitter poll it
//! by id, fetch its result in row ranges (Snowflake partitions, Databricks
//! chunks) and cancel it. This module owns the lifecycle common to both:
//! - a [`Statement`]: its id, its owner key, when it was opened, an outcome
//!   cell that goes `Running` → `Succeeded` | `Failed` | `Canceled` exactly
//!   once ([`Statement::finish`]: a cancel wins over a late result), and the
//!   polls a `Pending` fault still holds it for;
//! - a [`StatementStore`]: statements by id, **visible only to the owner key
//!   that opened them** ([`StatementStore::lookup`]: another caller gets
//!   nothing, exactly as for an unknown id), bounded to [`MAX_STATEMENTS`]
//!   (the oldest finished one is forgotten first; running ones are kept);
//! - the row-range cutting and JSON sizing both result formats use.
//!
//! Each emulator keeps its wire-specific parts: the id format, what an owner
//! key is (Snowflake: the authenticated principal; Databricks: the assumed
//! group), extra per-statement data (`W`), and how each state is answered.

use crate::sandbox::state::settle_once;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// Statements kept for polling at most; beyond this the oldest finished one is forgotten.
pub const MAX_STATEMENTS: usize = 512;

/// Where a statement stands: `R` is the emulator's result, `E` its statement error.
pub enum Outcome<R, E> {
    Running,
    Succeeded(Arc<R>),
    Failed(E),
    Canceled,
}

impl<R, E: Clone> Clone for Outcome<R, E> {
    fn clone(&self) -> Self {
        match self {
            Outcome::Running => Outcome::Running,
            Outcome::Succeeded(data) => Outcome::Succeeded(Arc::clone(data)),
            Outcome::Failed(err) => Outcome::Failed(err.clone()),
            Outcome::Canceled => Outcome::Canceled,
        }
    }
}

impl<R, E> Outcome<R, E> {
    /// Still running (not yet succeeded, failed or canceled).
    pub fn is_running(&self) -> bool {
        matches!(self, Outcome::Running)
    }
}

/// One submitted statement; `W` is the emulator's own per-statement data.
pub struct Statement<R, E, W> {
    id: String,
    owner: String,
    /// Order of opening in its store (eviction forgets the oldest finished first).
    opened: u64,
    outcome: watch::Sender<Outcome<R, E>>,
    /// Polls that still answer "running" because of a `Pending` fault.
    held_polls: AtomicU32,
    wire: W,
}

impl<R, E: Clone, W> Statement<R, E, W> {
    /// The statement's id (Snowflake: handle).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The owner key it was opened under.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The emulator's own data for this statement.
    pub fn wire(&self) -> &W {
        &self.wire
    }

    /// The outcome now.
    pub fn current(&self) -> Outcome<R, E> {
        self.outcome.borrow().clone()
    }

    /// Set the outcome unless the statement already finished (a cancel wins
    /// over a late result); true when this call settled it.
    pub fn finish(&self, outcome: Outcome<R, E>) -> bool {
        settle_once(&self.outcome, outcome, Outcome::is_running)
    }

    /// Wait up to `limit` for the statement to leave `Running`; true when it did.
    pub async fn wait_settled(&self, limit: Duration) -> bool {
        let mut rx = self.outcome.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|o| !o.is_running()))
            .await
            .is_ok()
    }

    /// A `Pending` fault still holds the statement (it answers as running).
    pub fn is_held(&self) -> bool {
        self.held_polls.load(Ordering::SeqCst) > 0
    }

    /// Spend one held poll; true when this poll is held (answers as running).
    pub fn take_held_poll(&self) -> bool {
        self.held_polls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// A client's cancel: a running statement is canceled, and so is one a
    /// `Pending` fault still holds (it is running as far as the client can
    /// tell). True when the statement became canceled by this call.
    pub fn cancel(&self) -> bool {
        let held = self.held_polls.swap(0, Ordering::SeqCst) > 0;
        self.finish(Outcome::Canceled)
            || (held && {
                self.outcome.send_replace(Outcome::Canceled);
                true
            })
    }

    /// Cancel whatever the outcome (the server gave up waiting on it), releasing held polls.
    pub fn force_cancel(&self) {
        self.held_polls.store(0, Ordering::SeqCst);
        self.outcome.send_replace(Outcome::Canceled);
    }
}

/// Statements by id.
type ById<R, E, W> = HashMap<String, Arc<Statement<R, E, W>>>;

/// The statements of one emulator, by id, each visible only to its owner.
pub struct StatementStore<R, E, W> {
    statements: Mutex<ById<R, E, W>>,
    opened: AtomicU64,
}

impl<R, E: Clone, W> Default for StatementStore<R, E, W> {
    fn default() -> Self {
        Self {
            statements: Mutex::new(HashMap::new()),
            opened: AtomicU64::new(0),
        }
    }
}

impl<R, E: Clone, W> StatementStore<R, E, W> {
    /// The map; a handler that panicked mid-update leaves whole entries only, so a poisoned lock is still usable.
    fn map(&self) -> MutexGuard<'_, ById<R, E, W>> {
        self.statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Open a running statement `id` for `owner`, held for `held_polls` polls
    /// (the `Pending` fault, read by the submit handler through
    /// [`Faults::pending_polls`](crate::sandbox::Faults::pending_polls)).
    pub fn open(
        &self,
        id: String,
        owner: String,
        wire: W,
        held_polls: u32,
    ) -> Arc<Statement<R, E, W>> {
        let statement = Arc::new(Statement {
            id,
            owner,
            opened: self.opened.fetch_add(1, Ordering::SeqCst),
            outcome: watch::channel(Outcome::Running).0,
            held_polls: AtomicU32::new(held_polls),
            wire,
        });
        let mut statements = self.map();
        evict_oldest_finished(&mut statements);
        statements.insert(statement.id.clone(), Arc::clone(&statement));
        statement
    }

    /// The statement `id` if `owner` opened it: someone else's statement is
    /// as unknown as a missing one (who may poll, fetch or cancel it).
    pub fn lookup(&self, id: &str, owner: &str) -> Option<Arc<Statement<R, E, W>>> {
        self.map().get(id).filter(|s| s.owner == owner).cloned()
    }
}

fn evict_oldest_finished<R, E: Clone, W>(statements: &mut ById<R, E, W>) {
    if statements.len() < MAX_STATEMENTS {
        return;
    }
    let oldest = statements
        .values()
        .filter(|s| !s.outcome.borrow().is_running())
        .min_by_key(|s| s.opened)
        .map(|s| s.id.clone());
    if let Some(id) = oldest {
        statements.remove(&id);
    }
}

/// `[start, end)` ranges of at most `per_range` rows (at least 1) covering `total` rows; none when `total` is 0.
pub fn row_ranges(total: usize, per_range: usize) -> Vec<Range<usize>> {
    let size = per_range.max(1);
    (0..total)
        .step_by(size)
        .map(|start| start..(start + size).min(total))
        .collect()
}

/// Bytes of one row as a JSON array of strings and nulls (computed exactly).
pub fn row_json_bytes(row: &[Option<String>]) -> usize {
    let cells: usize = row
        .iter()
        .map(|cell| match cell {
            Some(s) => serde_json::to_string(s).map_or(s.len() + 2, |j| j.len()),
            None => 4,
        })
        .sum();
    cells + row.len().saturating_sub(1) + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestStore = StatementStore<u32, String, ()>;

    #[test]
    fn only_the_owner_finds_a_statement() {
        let store = TestStore::default();
        store.open("s1".into(), "role:A".into(), (), 0);
        assert!(store.lookup("s1", "role:A").is_some());
        assert!(store.lookup("s1", "role:B").is_none());
        assert!(store.lookup("s2", "role:A").is_none());
    }

    #[test]
    fn a_statement_settles_once_and_a_cancel_wins_over_a_late_result() {
        let store = TestStore::default();
        let s = store.open("s".into(), "o".into(), (), 0);
        assert!(s.cancel());
        assert!(!s.finish(Outcome::Succeeded(Arc::new(1))));
        assert!(matches!(s.current(), Outcome::Canceled));
        assert!(!s.cancel(), "a second cancel changes nothing");
    }

    #[test]
    fn held_polls_are_spent_one_by_one_and_a_held_finished_statement_can_be_canceled() {
        let store = TestStore::default();
        let s = store.open("s".into(), "o".into(), (), 2);
        assert!(s.finish(Outcome::Failed("boom".into())));
        assert!(s.is_held());
        assert!(s.take_held_poll());
        assert!(s.cancel(), "still held: the client thinks it is running");
        assert!(!s.is_held() && !s.take_held_poll());
        assert!(matches!(s.current(), Outcome::Canceled));
    }

    #[test]
    fn the_store_forgets_the_oldest_finished_statement_and_keeps_running_ones() {
        let store = TestStore::default();
        let running = store.open("run".into(), "o".into(), (), 0);
        let first_done = store.open("done0".into(), "o".into(), (), 0);
        first_done.finish(Outcome::Canceled);
        for i in 1..MAX_STATEMENTS - 1 {
            store
                .open(format!("done{i}"), "o".into(), (), 0)
                .finish(Outcome::Canceled);
        }
        assert!(store.lookup("done0", "o").is_some());
        store.open("new".into(), "o".into(), (), 0);
        assert!(store.lookup("done0", "o").is_none(), "oldest finished goes");
        assert!(store.lookup("run", "o").is_some(), "running is kept");
        assert!(running.current().is_running());
    }

    #[test]
    fn row_ranges_cover_every_row() {
        assert_eq!(row_ranges(5, 2), vec![0..2, 2..4, 4..5]);
        assert_eq!(row_ranges(0, 2), Vec::<Range<usize>>::new());
        assert_eq!(row_ranges(3, 0), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn row_json_bytes_matches_serde() {
        let row = vec![Some("a\"b".to_string()), None, Some(String::new())];
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(row_json_bytes(&row), json.len());
    }
}
