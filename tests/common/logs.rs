//! A `tracing` writer into a shared buffer, read back by tests: the whole
//! text, or the fields of each `immuta_mcp::audit` event (JSON formatter).

use serde_json::Value;
use std::sync::{Arc, Mutex};

/// Hand a clone to `tracing_subscriber::fmt().with_writer(move || buffer.clone())`.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// The `fields` of every audit event written so far by a JSON formatter.
    pub fn audit_events(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "immuta_mcp::audit")
            .map(|v| v["fields"].clone())
            .collect()
    }
}
