//! Percentiles of a set of call times (nearest rank, so p99 of few samples is
//! close to the maximum) and the ratio of two times, which is how the report
//! compares paths (server / direct, first / warm).

use super::report::ms;
use std::time::Duration;

/// Percentiles (nearest rank) of a set of durations.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) n: usize,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) mean: Duration,
}

impl Stats {
    /// "p50 / p99" in ms, or "n/a" when no call succeeded (zeros would read as "fast").
    pub(crate) fn p50_p99(&self) -> String {
        if self.n == 0 {
            "n/a".into()
        } else {
            format!("{} / {}", ms(self.p50), ms(self.p99))
        }
    }

    pub(crate) fn of(samples: &[Duration]) -> Stats {
        if samples.is_empty() {
            return Stats::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank =
            |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Stats {
            n: sorted.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            mean: sorted.iter().sum::<Duration>() / sorted.len() as u32,
        }
    }
}

/// `a / b`, with `b` at least 1 ns.
pub(crate) fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}
