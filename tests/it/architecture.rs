//! Rule: ARCHITECTURE.md matches the code: its code map names every source file under `src/`, and
//! every `.rs` path it names exists.
//!
//! The map is where a newcomer looks first; a module added, moved or deleted without updating it
//! fails here, in the same commit. A file counts as named when its file name appears in the map
//! (the map lists files under their module's heading, e.g. `answers.rs` under the Snowflake
//! emulator); unit-test files (`tests.rs`, `*_tests.rs`) are left out.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn architecture() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md at the root")
}

/// Every `.rs` file under `dir`, as paths relative to the crate root.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(
                    path.strip_prefix(root())
                        .expect("under the root")
                        .to_path_buf(),
                );
            }
        }
    }
    found.sort();
    found
}

fn is_unit_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// The `something.rs` / `dir/something.rs` tokens of a text.
fn rs_paths(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '/' || c == '.'))
        .map(|t| t.trim_end_matches('.'))
        .filter(|t| t.ends_with(".rs") && t.len() > 3)
        .map(str::to_string)
        .collect()
}

#[test]
fn the_code_map_names_every_source_file() {
    let map = architecture();
    let missing: Vec<String> = rust_files(&root().join("src"))
        .into_iter()
        .filter(|p| !is_unit_test_file(p))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            !map.contains(&format!("`{name}`")) && !map.contains(&format!("/{name}"))
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name these source files; add a line for each \
         (what it owns, its invariant) or fold the file into a module the map names: {missing:?}"
    );
}

#[test]
fn every_path_the_map_names_exists() {
    let map = architecture();
    let known: Vec<String> = ["src", "tests", "examples"]
        .iter()
        .flat_map(|d| rust_files(&root().join(d)))
        .map(|p| p.display().to_string())
        .collect();
    let stale: Vec<String> = rs_paths(&map)
        .into_iter()
        .filter(|p| {
            !known
                .iter()
                .any(|k| k == p || k.ends_with(&format!("/{p}")))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "ARCHITECTURE.md names files that do not exist (moved or deleted?): {stale:?}"
    );
}

#[test]
fn the_path_scanner_finds_paths_in_prose() {
    // The two rules above are only as good as this scanner: a path in backticks, after a slash,
    // or at the end of a sentence is found; a word without `.rs` is not.
    assert_eq!(
        rs_paths("`server/tools.rs`: x; see main.rs. Not rust, not `.rs`"),
        vec!["server/tools.rs".to_string(), "main.rs".to_string()]
    );
}
