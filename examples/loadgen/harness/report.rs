//! The Markdown report a run prints: a header with the run's sizes, one heading
//! per section, lines and tables, and the cell formatters the sections share
//! (milliseconds, MiB, shortened error messages).

use crate::Sizes;
use std::time::Duration;

/// At most 160 characters of an error message, for a table cell.
pub(crate) fn short(message: &str) -> String {
    let cut: String = message.chars().take(160).collect();
    if cut.len() < message.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// A duration in milliseconds with two decimals.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// KiB as MiB with one decimal, or `n/a`.
pub(crate) fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// The Markdown report.
pub(crate) struct Report {
    pub(crate) text: String,
}

impl Report {
    /// The title and the run's mode, sizes, build profile and CPU count.
    pub(crate) fn new(full: bool, sizes: &Sizes) -> Report {
        let mut r = Report {
            text: String::new(),
        };
        r.line("# immuta-mcp benchmark (sandbox on loopback)");
        r.line(&format!(
            "Mode: {}. Sizes: {} latency samples per path; burst of {} concurrent cold calls; users {:?} × {} calls; \
             {} generated rows; paging max_rows {}; {} whoami calls per transport. Build: {}. CPUs: {}.",
            if full { "full" } else { "quick" },
            sizes.calls,
            sizes.burst,
            sizes.user_levels,
            sizes.calls_per_user,
            sizes.rows,
            sizes.page_rows,
            sizes.whoami_calls,
            if cfg!(debug_assertions) { "debug (numbers are not representative)" } else { "release" },
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        ));
        r
    }

    pub(crate) fn heading(&mut self, title: &str) {
        self.text.push_str(&format!("\n## {title}\n\n"));
    }

    pub(crate) fn line(&mut self, text: &str) {
        self.text.push_str(text);
        self.text.push('\n');
    }

    pub(crate) fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) {
        self.text.push('\n');
        self.text
            .push_str(&format!("| {} |\n", headers.join(" | ")));
        self.text.push_str(&format!(
            "|{}\n",
            headers.iter().map(|_| "---|").collect::<String>()
        ));
        for row in rows {
            self.text.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        self.text.push('\n');
    }
}
