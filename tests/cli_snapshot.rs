//! `snapshot save|restore|inspect` against a running `-dev` agent, with corrupt and truncated files, and the
//! `/v1/snapshot` HTTP answers for bad archives.

mod cli_support;
mod support;

use cli_support::{cli, dead_addr, fails, ok};
use support::{test_dir, Agent};

#[test]
fn save_inspect_and_restore_round_trip_through_the_cli() {
    let agent = Agent::dev("cli-snapshot", &[]);
    let http = agent.http;
    let dir = test_dir("cli-snapshot-files");
    let file = dir.join("backup.snap");
    let file = file.to_str().expect("utf-8 path");
    for (key, value) in [("app/a", "1"), ("app/b", "2"), ("app/c", "3")] {
        ok(http, &["kv", "put", key, value]);
    }
    let saved = ok(http, &["snapshot", "save", file]);
    let index: u64 = saved
        .trim()
        .strip_prefix("Saved and verified snapshot to index ")
        .unwrap_or_else(|| panic!("unexpected output {saved:?}"))
        .parse()
        .expect("an index");
    assert!(index > 0);
    assert!(
        !dir.join("backup.snap.partial").exists(),
        "no partial file left"
    );

    let inspected = ok(http, &["snapshot", "inspect", file]);
    let lines: Vec<&str> = inspected.lines().collect();
    assert!(lines[0].starts_with(" ID       "), "{inspected}");
    assert!(lines[0].contains(&format!("-{index}-")), "{inspected}");
    assert!(lines[1].starts_with(" Size     "), "{inspected}");
    assert_eq!(lines[2], format!(" Index    {index}"));
    assert!(lines[3].starts_with(" Term     "), "{inspected}");
    assert_eq!(lines[4], " Version  1");
    assert!(inspected.contains(" KVS               3\n"), "{inspected}");

    // Changes after the snapshot are undone by the restore.
    ok(http, &["kv", "put", "app/a", "changed"]);
    ok(http, &["kv", "put", "app/late", "x"]);
    assert_eq!(
        ok(http, &["snapshot", "restore", file]),
        "Restored snapshot\n"
    );
    assert_eq!(ok(http, &["kv", "get", "app/a"]), "1\n");
    assert_eq!(
        fails(http, &["kv", "get", "app/late"]),
        "Error! No key exists at: app/late\n"
    );
    // Indexes keep growing after a restore.
    ok(http, &["kv", "put", "app/after", "y"]);
    let detailed = ok(http, &["kv", "get", "-detailed", "app/after"]);
    let modify: u64 = detailed
        .lines()
        .find_map(|l| l.strip_prefix("ModifyIndex"))
        .map(|v| v.trim().parse().expect("number"))
        .expect("ModifyIndex line");
    assert!(modify > index, "{modify} > {index}");
}

#[test]
fn corrupt_truncated_and_missing_files_are_refused() {
    let agent = Agent::dev("cli-snapshot-bad", &[]);
    let http = agent.http;
    let dir = test_dir("cli-snapshot-bad-files");
    let good = dir.join("good.snap");
    let good = good.to_str().expect("utf-8 path");
    ok(http, &["kv", "put", "keep", "v"]);
    ok(http, &["snapshot", "save", good]);
    let bytes = std::fs::read(good).expect("saved file");

    let corrupt = dir.join("corrupt.snap");
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    std::fs::write(&corrupt, &flipped).expect("write");
    let corrupt = corrupt.to_str().expect("utf-8 path");
    let err = fails(http, &["snapshot", "inspect", corrupt]);
    assert!(
        err.starts_with("Error inspecting snapshot: archive checksum mismatch"),
        "{err}"
    );
    let err = fails(http, &["snapshot", "restore", corrupt]);
    assert!(
        err.starts_with("Error restoring snapshot: archive checksum mismatch"),
        "{err}"
    );

    let truncated = dir.join("truncated.snap");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).expect("write");
    let truncated = truncated.to_str().expect("utf-8 path");
    let err = fails(http, &["snapshot", "restore", truncated]);
    assert!(
        err.starts_with("Error restoring snapshot: archive truncated"),
        "{err}"
    );

    let err = fails(http, &["snapshot", "inspect", "/nonexistent/x.snap"]);
    assert!(err.starts_with("Error opening snapshot file: open /nonexistent/x.snap"));
    assert_eq!(
        fails(http, &["snapshot", "save"]),
        "Missing FILE argument\n"
    );
    assert_eq!(
        fails(http, &["snapshot", "restore", "a", "b"]),
        "Too many arguments (expected 1, got 2)\n"
    );
    let out = cli(dead_addr(), &["snapshot", "save", good]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("Error saving snapshot: "), "{out:?}");
    assert_eq!(
        std::fs::read(good).expect("kept"),
        bytes,
        "a failed save keeps the old file"
    );

    // The server refuses bad bodies itself, with the reason.
    let r = agent.call("PUT", "/v1/snapshot", &flipped);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("checksum mismatch"), "{}", r.text());
    let r = agent.call("PUT", "/v1/snapshot", &[b'x'; 100]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("bad magic"), "{}", r.text());
    let r = agent.call("DELETE", "/v1/snapshot", b"");
    assert_eq!(r.status, 405);
    assert_eq!(ok(http, &["kv", "get", "keep"]), "v\n", "nothing changed");

    // GET answers with the archive and its index.
    let r = agent.call("GET", "/v1/snapshot?stale", b"");
    assert_eq!(r.status, 200);
    assert!(r.index() > 0);
    assert_eq!(&r.body[..8], b"CRNSNAP1");
}
