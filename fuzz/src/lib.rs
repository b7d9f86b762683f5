//! Fuzzing support for immuta-mcp: the target bodies (see [`targets`]) used by the cargo-fuzz
//! binaries in `fuzz_targets/` and, by path, by the stable loop `examples/fuzz_stable.rs`.

pub mod targets;
