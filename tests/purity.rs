//! ARCHITECTURE.md rule 1: the pure cores (`src/raft`, `src/gossip`, `src/fsm`, `src/api`, `src/dns`, `src/rpc`) use no
//! IO, no threads, no clock and no unseeded randomness. This test greps them for the constructs that would break
//! that; the folders are checked as they appear.

use std::path::{Path, PathBuf};

const PURE_DIRS: [&str; 6] = [
    "src/raft",
    "src/gossip",
    "src/fsm",
    "src/api",
    "src/dns",
    "src/rpc",
];

/// Constructs a pure core must not use, with the reason reported when one is found.
const FORBIDDEN: [(&str, &str); 12] = [
    ("glommio", "runtime IO belongs in src/agent or io/"),
    ("std::net", "sockets belong in io/"),
    ("std::fs", "files belong in storage/ or src/agent"),
    ("std::thread", "threads belong in io/"),
    ("tokio", "no tokio on the server path"),
    ("Instant::now", "time comes in as an input"),
    ("SystemTime::now", "time comes in as an input"),
    ("thread_rng", "randomness comes from a seeded PRNG"),
    ("rand::random", "randomness comes from a seeded PRNG"),
    ("std::process", "processes belong in src/agent"),
    (
        "RandomState",
        "a randomly seeded hasher makes iteration order nondeterministic",
    ),
    (
        "std::collections::HashMap",
        "iteration order is random: use BTreeMap or a fixed hasher",
    ),
];

/// The forbidden constructs in `source`, as (line number, construct, reason).
fn violations(source: &str) -> Vec<(usize, &'static str, &'static str)> {
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for (pattern, why) in FORBIDDEN {
            if code.contains(pattern) {
                found.push((n + 1, pattern, why));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn pure_cores_use_no_io_clock_threads_or_unseeded_randomness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in PURE_DIRS {
        rust_files(&root.join(dir), &mut files);
    }
    let mut report = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("readable source");
        for (line, pattern, why) in violations(&source) {
            report.push(format!("{}:{line}: `{pattern}`: {why}", file.display()));
        }
    }
    assert!(
        report.is_empty(),
        "pure-core rule broken:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_checker_finds_what_it_looks_for() {
    let bad = "use std::fs::File;\nlet t = Instant::now(); // fine in a comment: Instant::now\n";
    let found = violations(bad);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!((found[0].0, found[0].1), (1, "std::fs"));
    assert_eq!((found[1].0, found[1].1), (2, "Instant::now"));
    assert!(violations("let x = 1; // std::fs in a comment").is_empty());
}
