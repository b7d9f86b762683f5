//! cargo-fuzz target `guard`: see `fuzz/src/targets.rs` for what it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    immuta_mcp_fuzz::targets::guard(data);
});
