//! `snapshot save|restore|inspect` over `/v1/snapshot`, with consul's messages and exit codes. The archive is
//! cairn's own (see [`crate::api::snapshot`]); it is verified before it is kept and before it is sent.

use super::common::{self, Ctx};
use super::http_client::Request;
use crate::api::snapshot::{decode_archive, Archive, ARCHIVE_BYTES_MAX};
use crate::ui;
use std::io::Read;

const SNAPSHOT_HELP: &str = "Usage: {p} snapshot <subcommand> [options] [args]

  This command has subcommands for saving, restoring, and inspecting the state
  of the servers for disaster recovery. These are atomic, point-in-time
  snapshots which include key/value entries, the service catalog and sessions.
  Archives are cairn's own format, not Consul's.

  Create a snapshot:

      $ {p} snapshot save backup.snap

  Restore a snapshot:

      $ {p} snapshot restore backup.snap

  Inspect a snapshot:

      $ {p} snapshot inspect backup.snap

Subcommands:
    inspect    Displays information about a snapshot file
    restore    Restores snapshot of server state
    save       Saves snapshot of server state";

const SAVE_HELP: &str = "Usage: {p} snapshot save [options] FILE

  Retrieves an atomic, point-in-time snapshot of the state of the servers
  which includes key/value entries, service catalog and sessions, verifies
  it, and saves it to FILE.

  To create a potentially stale snapshot from any available server (useful if
  no leader is available):

      $ {p} snapshot save -stale backup.snap";

const RESTORE_HELP: &str = "Usage: {p} snapshot restore [options] FILE

  Restores an atomic, point-in-time snapshot of the state of the servers,
  replacing everything they hold (through Raft, on every server).

      $ {p} snapshot restore backup.snap";

const INSPECT_HELP: &str = "Usage: {p} snapshot inspect [options] FILE

  Displays information about a snapshot file on disk: its ID, size, index,
  term and version, and how many entries of each kind it holds.

      $ {p} snapshot inspect backup.snap";

/// Runs `snapshot <subcommand>`.
pub fn run(ctx: Ctx, args: &[String]) -> i32 {
    let help = SNAPSHOT_HELP.replace("{p}", ctx.program);
    let Some((sub, rest)) = args.split_first() else {
        ui::error(&help);
        return 1;
    };
    match sub.as_str() {
        "save" => save(ctx, rest),
        "restore" => restore(ctx, rest),
        "inspect" => inspect(ctx, rest),
        "-h" | "-help" | "--help" => {
            ui::error(&help);
            0
        }
        _ => {
            ui::error(&help);
            1
        }
    }
}

/// The one FILE argument, or consul's message and exit code 1.
fn file_arg(rest: &[String]) -> Result<&str, i32> {
    match rest {
        [] => {
            ui::error("Missing FILE argument");
            Err(1)
        }
        [file] => Ok(file),
        more => {
            ui::error(&format!(
                "Too many arguments (expected 1, got {})",
                more.len()
            ));
            Err(1)
        }
    }
}

/// Reads an archive file of at most [`ARCHIVE_BYTES_MAX`] bytes.
fn read_archive(file: &str) -> Result<Vec<u8>, String> {
    let handle = std::fs::File::open(file).map_err(|e| format!("open {file}: {e}"))?;
    let mut bytes = Vec::new();
    handle
        .take(ARCHIVE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("read {file}: {e}"))?;
    if bytes.len() > ARCHIVE_BYTES_MAX {
        return Err(format!(
            "{file} is larger than {ARCHIVE_BYTES_MAX} bytes, the largest archive cairn restores"
        ));
    }
    Ok(bytes)
}

fn save(ctx: Ctx, args: &[String]) -> i32 {
    let help = SAVE_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(&[], true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let file = match file_arg(&parsed.rest) {
        Ok(file) => file.to_string(),
        Err(code) => return code,
    };
    let client = match common::client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let response = match client.query(Request::new("GET", "/v1/snapshot")) {
        Ok(response) => response,
        Err(error) => {
            ui::error(&format!("Error saving snapshot: {error}"));
            return 1;
        }
    };
    let index = match decode_archive(&response.body) {
        Ok(archive) => archive.meta.index,
        Err(error) => {
            ui::error(&format!("Error verifying snapshot file: {error}"));
            return 1;
        }
    };
    // Written beside the target and renamed, so a failed save never leaves a partial FILE.
    let partial = format!("{file}.partial");
    let written = std::fs::write(&partial, &response.body)
        .and_then(|()| std::fs::File::open(&partial)?.sync_all())
        .and_then(|()| std::fs::rename(&partial, &file));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&partial);
        ui::error(&format!("Error saving snapshot: write {file}: {error}"));
        return 1;
    }
    ui::output(&format!("Saved and verified snapshot to index {index}"));
    0
}

fn restore(ctx: Ctx, args: &[String]) -> i32 {
    let help = RESTORE_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(&[], true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let file = match file_arg(&parsed.rest) {
        Ok(file) => file.to_string(),
        Err(code) => return code,
    };
    let client = match common::client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let bytes = match read_archive(&file) {
        Ok(bytes) => bytes,
        Err(error) => {
            ui::error(&format!("Error opening snapshot file: {error}"));
            return 1;
        }
    };
    if let Err(error) = decode_archive(&bytes) {
        ui::error(&format!("Error restoring snapshot: {error}"));
        return 1;
    }
    match client.send(Request::new("PUT", "/v1/snapshot").body(bytes)) {
        Ok(_) => {
            ui::output("Restored snapshot");
            0
        }
        Err(error) => {
            ui::error(&format!("Error restoring snapshot: {error}"));
            1
        }
    }
}

fn inspect(ctx: Ctx, args: &[String]) -> i32 {
    let help = INSPECT_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(&[], false, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let file = match file_arg(&parsed.rest) {
        Ok(file) => file.to_string(),
        Err(code) => return code,
    };
    let bytes = match read_archive(&file) {
        Ok(bytes) => bytes,
        Err(error) => {
            ui::error(&format!("Error opening snapshot file: {error}"));
            return 1;
        }
    };
    match decode_archive(&bytes) {
        Ok(archive) => {
            ui::output(&inspect_text(&archive));
            0
        }
        Err(error) => {
            ui::error(&format!("Error inspecting snapshot: {error}"));
            1
        }
    }
}

/// What `snapshot inspect` prints: consul's ID/Size/Index/Term/Version block, then cairn's counts.
pub fn inspect_text(archive: &Archive) -> String {
    let meta = &archive.meta;
    let head = [
        format!(" ID\x1f{}", meta.id),
        format!(" Size\x1f{}", meta.size),
        format!(" Index\x1f{}", meta.index),
        format!(" Term\x1f{}", meta.term),
        format!(" Version\x1f{}", meta.version),
    ];
    let c = &meta.counts;
    let counts = [
        " Type\x1fCount".to_string(),
        " ----\x1f-----".to_string(),
        format!(" KVS\x1f{}", c.kv_entries),
        format!(" Sessions\x1f{}", c.sessions),
        format!(" Nodes\x1f{}", c.nodes),
        format!(" Services\x1f{}", c.services),
        format!(" ServiceInstances\x1f{}", c.service_instances),
        format!(" Checks\x1f{}", c.checks),
    ];
    format!(
        "{}\n\n{}",
        common::columnize(&head),
        common::columnize(&counts)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::snapshot::{encode_archive, ArchiveCounts, ArchiveMeta};

    #[test]
    fn inspect_prints_consuls_block_then_the_counts() {
        let meta = ArchiveMeta {
            id: "2-5-1477944140022".into(),
            size: 3,
            index: 5,
            term: 2,
            version: 1,
            state_format: 4,
            created_ms: 1_477_944_140_022,
            datacenter: "dc1".into(),
            counts: ArchiveCounts {
                kv_entries: 12,
                ..ArchiveCounts::default()
            },
        };
        let bytes = encode_archive(&meta, b"abc");
        let text = inspect_text(&decode_archive(&bytes).expect("decodes"));
        assert!(text.starts_with(
            " ID       2-5-1477944140022\n Size     3\n Index    5\n Term     2\n Version  1\n\n"
        ));
        assert!(text.contains(" KVS               12\n"), "{text}");
    }
}
