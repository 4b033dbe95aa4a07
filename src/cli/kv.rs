//! `kv get|put|delete|export|import` over `/v1/kv`, with consul's flags, output and messages.

use super::common::{self, boolean, string, Client, Ctx};
use super::http_client::{encode_path, Request};
use crate::config::flags::{FlagSpec, ParsedFlags};
use crate::ui;
use base64::Engine;
use serde_json::Value;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const KV_HELP: &str = "Usage: {p} kv <subcommand> [options] [args]

  This command has subcommands for interacting with Consul's key-value
  store. Here are some simple examples, and more detailed examples are
  available in the subcommands or the documentation.

  Create or update the key named \"redis/config/connections\" with the value \"5\":

      $ {p} kv put redis/config/connections 5

  Read this value back:

      $ {p} kv get redis/config/connections

  Delete a key:

      $ {p} kv delete redis/config/connections

Subcommands:
    delete    Removes data from the KV store
    export    Exports a tree from the KV store as JSON
    get       Retrieves or lists data from the KV store
    import    Imports a tree stored as JSON to the KV store
    put       Sets or updates data in the KV store";

/// Runs `kv <subcommand>`.
pub fn run(ctx: Ctx, args: &[String]) -> i32 {
    let help = KV_HELP.replace("{p}", ctx.program);
    let Some((sub, rest)) = args.split_first() else {
        ui::error(&help);
        return 1;
    };
    match sub.as_str() {
        "get" => get(ctx, rest),
        "put" => put(ctx, rest),
        "delete" => delete(ctx, rest),
        "export" => super::kv_transfer::export(ctx, rest),
        "import" => super::kv_transfer::import(ctx, rest),
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

const GET_FLAGS: &[FlagSpec] = &[
    boolean(
        "base64",
        "Base64 encode the value. The default value is false.",
    ),
    boolean(
        "detailed",
        "Provide additional metadata about the key in addition to the value such as the \
         ModifyIndex and any flags that may have been set on the key. The default value is false.",
    ),
    boolean(
        "keys",
        "List keys which start with the given prefix, but not their values. This option is \
         commonly combined with the -separator option. The default value is false.",
    ),
    boolean(
        "recurse",
        "Recursively look at all keys prefixed with the given path. The default value is false.",
    ),
    string(
        "separator",
        "String to use as a separator between keys. The default value is \"/\", but this option \
         is only taken into account when paired with the -keys flag.",
    ),
];

const GET_HELP: &str = "Usage: {p} kv get [options] [KEY_OR_PREFIX]

  Retrieves the value from the key-value store at the given key name. If no
  key exists with that name, an error is returned. If a key exists with that
  name but has no data, nothing is returned. If the name or prefix is omitted,
  it defaults to \"\" which is the root of the key-value store.

      $ {p} kv get foo
      $ {p} kv get -detailed foo
      $ {p} kv get -recurse foo
      $ {p} kv get -keys foo";

/// One KV entry as the API returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pair {
    /// The key.
    pub key: String,
    /// The decoded value.
    pub value: Vec<u8>,
    /// The user flags.
    pub flags: u64,
    /// Index of creation.
    pub create_index: u64,
    /// Index of the last change.
    pub modify_index: u64,
    /// Successful acquisitions.
    pub lock_index: u64,
    /// The holding session, or "".
    pub session: String,
}

impl Pair {
    /// Reads one entry of a `/v1/kv` answer; a missing or malformed field reads as empty.
    pub fn from_json(value: &Value) -> Pair {
        let number = |field: &str| value[field].as_u64().unwrap_or(0);
        Pair {
            key: common::text(value, "Key").to_string(),
            value: value["Value"]
                .as_str()
                .and_then(|v| B64.decode(v).ok())
                .unwrap_or_default(),
            flags: number("Flags"),
            create_index: number("CreateIndex"),
            modify_index: number("ModifyIndex"),
            lock_index: number("LockIndex"),
            session: common::text(value, "Session").to_string(),
        }
    }

    /// Reads every entry of a `/v1/kv` answer.
    pub fn list(value: &Value) -> Vec<Pair> {
        value
            .as_array()
            .map(|entries| entries.iter().map(Pair::from_json).collect())
            .unwrap_or_default()
    }
}

/// The KV path of a key.
pub fn kv_path(key: &str) -> String {
    format!("/v1/kv/{}", encode_path(key))
}

fn strip_slash(key: &str) -> String {
    key.strip_prefix('/').unwrap_or(key).to_string()
}

/// The optional single KEY argument, a leading slash stripped; more arguments are an error.
pub(super) fn one_key_arg(parsed: &ParsedFlags) -> Result<String, i32> {
    match parsed.rest.as_slice() {
        [] => Ok(String::new()),
        [key] => Ok(strip_slash(key)),
        more => {
            ui::error(&format!(
                "Too many arguments (expected 1, got {})",
                more.len()
            ));
            Err(1)
        }
    }
}

fn get(ctx: Ctx, args: &[String]) -> i32 {
    let help = GET_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(GET_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let key = match one_key_arg(&parsed) {
        Ok(key) => key,
        Err(code) => return code,
    };
    let flag = |name| parsed.bool(name).unwrap_or(false);
    if key.is_empty() && !(flag("recurse") || flag("keys")) {
        ui::error("Error! Missing KEY argument");
        return 1;
    }
    let client = match common::client(&parsed) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let base64 = flag("base64");
    if flag("keys") {
        let separator = parsed.string("separator").unwrap_or("/");
        get_keys(&client, &key, separator)
    } else if flag("recurse") {
        get_recurse(&client, &key, flag("detailed"), base64)
    } else {
        get_one(&client, &key, flag("detailed"), base64)
    }
}

fn query_error(error: impl std::fmt::Display) -> i32 {
    ui::error(&format!("Error querying Consul agent: {error}"));
    1
}

fn get_keys(client: &Client, key: &str, separator: &str) -> i32 {
    let mut request = Request::new("GET", kv_path(key)).flag("keys");
    if !separator.is_empty() {
        request = request.param("separator", separator);
    }
    let keys = match fetch_optional(client, request) {
        Ok(keys) => keys.unwrap_or(Value::Null),
        Err(code) => return code,
    };
    for key in keys.as_array().into_iter().flatten() {
        ui::output(key.as_str().unwrap_or_default());
    }
    0
}

/// A read where 404 means "nothing there" (`Ok(None)`); other failures are printed as
/// `Error querying Consul agent: ...` (`Err(1)`).
pub(super) fn fetch_optional(client: &Client, request: Request) -> Result<Option<Value>, i32> {
    let request = if client.stale() {
        request.flag("stale")
    } else {
        request
    };
    let response = client.send_raw(request).map_err(query_error)?;
    if response.status == 404 {
        return Ok(None);
    }
    if response.status != 200 {
        return Err(query_error(format!(
            "Unexpected response code: {} ({})",
            response.status,
            String::from_utf8_lossy(&response.body).trim()
        )));
    }
    response.json().map(Some).map_err(query_error)
}

fn get_recurse(client: &Client, key: &str, detailed: bool, base64: bool) -> i32 {
    let pairs = match fetch_optional(client, Request::new("GET", kv_path(key)).flag("recurse")) {
        Ok(value) => value.map(|v| Pair::list(&v)).unwrap_or_default(),
        Err(code) => return code,
    };
    for (i, pair) in pairs.iter().enumerate() {
        if detailed {
            ui::output(&detailed_text(pair, base64));
            if i + 1 < pairs.len() {
                ui::output("");
            }
        } else {
            ui::output(&format!("{}:{}", pair.key, value_text(&pair.value, base64)));
        }
    }
    0
}

fn get_one(client: &Client, key: &str, detailed: bool, base64: bool) -> i32 {
    let pair = match fetch_optional(client, Request::new("GET", kv_path(key))) {
        Ok(value) => value.and_then(|v| Pair::list(&v).into_iter().next()),
        Err(code) => return code,
    };
    let Some(pair) = pair else {
        ui::error(&format!("Error! No key exists at: {key}"));
        return 1;
    };
    if detailed {
        ui::output(&detailed_text(&pair, base64));
    } else {
        write_raw_line(&pair.value);
    }
    0
}

fn write_raw_line(bytes: &[u8]) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes);
    let _ = stdout.write_all(b"\n");
}

fn value_text(value: &[u8], base64: bool) -> String {
    if base64 {
        B64.encode(value)
    } else {
        String::from_utf8_lossy(value).into_owned()
    }
}

fn detailed_text(pair: &Pair, base64: bool) -> String {
    let session = if pair.session.is_empty() {
        "-"
    } else {
        &pair.session
    };
    let rows = [
        ("CreateIndex", pair.create_index.to_string()),
        ("Flags", pair.flags.to_string()),
        ("Key", pair.key.clone()),
        ("LockIndex", pair.lock_index.to_string()),
        ("ModifyIndex", pair.modify_index.to_string()),
        ("Session", session.to_string()),
        ("Value", value_text(&pair.value, base64)),
    ];
    let lines: Vec<String> = rows
        .iter()
        .map(|(name, value)| format!("{name:<17}{value}"))
        .collect();
    lines.join("\n")
}

const PUT_FLAGS: &[FlagSpec] = &[
    boolean(
        "acquire",
        "Obtain a lock on the key. If the key does not exist, this operation will create the key \
         and obtain the lock. The session must already exist and be specified via the -session \
         flag. The default value is false.",
    ),
    boolean(
        "base64",
        "Treat the data as base 64 encoded. The default value is false.",
    ),
    boolean(
        "cas",
        "Perform a Check-And-Set operation. Specifying this value also requires the \
         -modify-index flag to be set. The default value is false.",
    ),
    string(
        "flags",
        "Unsigned integer value to assign to this key-value pair. The default value is 0.",
    ),
    string(
        "modify-index",
        "Unsigned integer representing the ModifyIndex of the key. This is used in combination \
         with the -cas flag.",
    ),
    boolean(
        "release",
        "Forfeit the lock on the key at the given path. This requires the -session flag to be \
         set. The default value is false.",
    ),
    string(
        "session",
        "User-defined identifier for this session as a string, used with -acquire and -release.",
    ),
];

const PUT_HELP: &str = "Usage: {p} kv put [options] KEY [DATA]

  Writes the data to the given path in the key-value store. The data can be of
  any type.

      $ {p} kv put config/redis/maxconns 5

  The data can also be consumed from a file on disk by prefixing with the \"@\"
  symbol, or read from stdin using the \"-\" symbol:

      $ {p} kv put config/program/license @license.lic
      $ echo \"abcd1234\" | {p} kv put config/program/license -

  The DATA argument itself is optional. If omitted, this will create an empty
  key-value pair at the specified path. If the -base64 flag is specified, the
  data will be treated as base 64 encoded. To perform a Check-And-Set operation,
  specify the -cas flag with the -modify-index of the key:

      $ {p} kv put -cas -modify-index=844 config/redis/maxconns 5";

/// Reads `KEY [DATA|@file|-]` as consul does.
fn put_data(args: &[String]) -> Result<(String, Vec<u8>), String> {
    let (key, data) = match args {
        [] => return Err("Missing KEY argument".to_string()),
        [key] => return Ok((key.clone(), Vec::new())),
        [key, data] => (key.clone(), data.as_str()),
        more => {
            return Err(format!(
                "Too many arguments (expected 1 or 2, got {})",
                more.len()
            ))
        }
    };
    if let Some(path) = data.strip_prefix('@') {
        let bytes =
            std::fs::read(path).map_err(|e| format!("Failed to read file: open {path}: {e}"))?;
        return Ok((key, bytes));
    }
    if data == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .map_err(|e| format!("Failed to read stdin: {e}"))?;
        return Ok((key, bytes));
    }
    Ok((key, data.as_bytes().to_vec()))
}

struct PutOptions {
    cas: bool,
    acquire: bool,
    release: bool,
    flags: u64,
    modify_index: u64,
    session: String,
}

fn put_options(parsed: &ParsedFlags, help: &str) -> Result<PutOptions, i32> {
    let flag = |name| parsed.bool(name).unwrap_or(false);
    Ok(PutOptions {
        cas: flag("cas"),
        acquire: flag("acquire"),
        release: flag("release"),
        flags: common::u64_flag(parsed, "flags", 0, help)?,
        modify_index: common::u64_flag(parsed, "modify-index", 0, help)?,
        session: parsed.string("session").unwrap_or_default().to_string(),
    })
}

fn put(ctx: Ctx, args: &[String]) -> i32 {
    let help = PUT_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(PUT_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let options = match put_options(&parsed, &help) {
        Ok(options) => options,
        Err(code) => return code,
    };
    let (key, mut data) = match put_data(&parsed.rest) {
        Ok(found) => found,
        Err(why) => {
            ui::error(&format!("Error! {why}"));
            return 1;
        }
    };
    if parsed.bool("base64").unwrap_or(false) {
        match B64.decode(&data) {
            Ok(decoded) => data = decoded,
            Err(error) => {
                ui::error(&format!("Error! Cannot base 64 decode data: {error}"));
                return 1;
            }
        }
    }
    if (options.release || options.acquire) && options.session.is_empty() {
        ui::error("Error! Missing -session (required with -acquire and -release)");
        return 1;
    }
    if options.cas && options.modify_index == 0 {
        ui::error("Must specify -modify-index with -cas!");
        return 1;
    }
    match common::client(&parsed) {
        Ok(client) => put_send(&client, &key, data, &options),
        Err(code) => code,
    }
}

fn put_send(client: &Client, key: &str, data: Vec<u8>, options: &PutOptions) -> i32 {
    let mut request = Request::new("PUT", kv_path(key)).body(data);
    if options.flags != 0 {
        request = request.param("flags", options.flags.to_string());
    }
    if options.cas {
        request = request.param("cas", options.modify_index.to_string());
    } else if options.acquire {
        request = request.param("acquire", options.session.clone());
    } else if options.release {
        request = request.param("release", options.session.clone());
    }
    let outcome = client.send(request).and_then(|r| r.json());
    let ok = match &outcome {
        Ok(value) => value.as_bool().unwrap_or(false),
        Err(_) => false,
    };
    let (success, refused) = if options.cas {
        (
            format!("Success! Data written to: {key}"),
            format!("Error! Did not write to {key}: CAS failed"),
        )
    } else if options.acquire {
        (
            format!("Success! Lock acquired on: {key}"),
            "Error! Did not acquire lock".to_string(),
        )
    } else if options.release {
        (
            format!("Success! Lock released on: {key}"),
            "Error! Did not release lock".to_string(),
        )
    } else {
        (format!("Success! Data written to: {key}"), String::new())
    };
    match outcome {
        Err(error) if options.cas => ui::error(&format!("Error! Did not write to {key}: {error}")),
        Err(error) => ui::error(&format!("Error! Failed writing data: {error}")),
        Ok(_) if ok || refused.is_empty() => {
            ui::output(&success);
            return 0;
        }
        Ok(_) => ui::error(&refused),
    }
    1
}

const DELETE_FLAGS: &[FlagSpec] = &[
    boolean(
        "cas",
        "Perform a Check-And-Set operation. Specifying this value also requires the \
         -modify-index flag to be set. The default value is false.",
    ),
    string(
        "modify-index",
        "Unsigned integer representing the ModifyIndex of the key. This is used in combination \
         with the -cas flag.",
    ),
    boolean(
        "recurse",
        "Recursively delete all keys with the path. The default value is false.",
    ),
];

const DELETE_HELP: &str = "Usage: {p} kv delete [options] KEY_OR_PREFIX

  Removes the value from the key-value store at the given path. If no key
  exists at the path, no action is taken.

      $ {p} kv delete foo
      $ {p} kv delete -recurse foo";

fn delete(ctx: Ctx, args: &[String]) -> i32 {
    let help = DELETE_HELP.replace("{p}", ctx.program);
    let parsed = match common::parse(DELETE_FLAGS, true, &help, args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let key = match one_key_arg(&parsed) {
        Ok(key) => key,
        Err(code) => return code,
    };
    let recurse = parsed.bool("recurse").unwrap_or(false);
    let cas = parsed.bool("cas").unwrap_or(false);
    let modify_index = match common::u64_flag(&parsed, "modify-index", 0, &help) {
        Ok(index) => index,
        Err(code) => return code,
    };
    if key.is_empty() && !recurse {
        ui::error("Error! Missing KEY argument");
        return 1;
    }
    if cas && recurse {
        ui::error("Cannot specify both -cas and -recurse!");
        return 1;
    }
    if cas && modify_index == 0 {
        ui::error("Must specify -modify-index with -cas!");
        return 1;
    }
    match common::client(&parsed) {
        Ok(client) => delete_send(&client, &key, recurse, cas.then_some(modify_index)),
        Err(code) => code,
    }
}

fn delete_send(client: &Client, key: &str, recurse: bool, cas: Option<u64>) -> i32 {
    let mut request = Request::new("DELETE", kv_path(key));
    if recurse {
        request = request.flag("recurse");
    }
    if let Some(index) = cas {
        request = request.param("cas", index.to_string());
    }
    let outcome = client.send(request).and_then(|r| r.json());
    match (outcome, recurse, cas) {
        (Err(error), true, _) => ui::error(&format!("Error! Did not delete prefix {key}: {error}")),
        (Err(error), false, Some(_)) => {
            ui::error(&format!("Error! Did not delete key {key}: {error}"))
        }
        (Err(error), false, None) => ui::error(&format!("Error deleting key {key}: {error}")),
        (Ok(value), false, Some(_)) if value.as_bool() != Some(true) => {
            ui::error(&format!("Error! Did not delete key {key}: CAS failed"))
        }
        (Ok(_), true, _) => {
            ui::output(&format!("Success! Deleted keys with prefix: {key}"));
            return 0;
        }
        (Ok(_), false, _) => {
            ui::output(&format!("Success! Deleted key: {key}"));
            return 0;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detailed_output_aligns_like_tabwriter() {
        let pair = Pair {
            key: "a".into(),
            value: b"b".to_vec(),
            ..Pair::default()
        };
        let text = detailed_text(&pair, false);
        assert!(text.starts_with("CreateIndex      0\nFlags            0\nKey              a"));
        assert!(text.ends_with("Session          -\nValue            b"));
    }

    #[test]
    fn put_data_reads_args_files_and_rejects_extra() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            put_data(&args(&["k", "v"])),
            Ok(("k".into(), b"v".to_vec()))
        );
        assert_eq!(put_data(&args(&["k"])), Ok(("k".into(), Vec::new())));
        assert!(put_data(&args(&[])).is_err());
        assert!(put_data(&args(&["k", "v", "x"])).is_err());
        assert!(put_data(&args(&["k", "@/nonexistent/file"])).is_err());
    }
}
