//! Config files: finding them (`-config-file`, `-config-dir`), parsing JSON and HCL into one JSON-like value tree,
//! and merging trees.
//!
//! HCL is parsed with `hcl-rs` (HCL 2 syntax, which reads the HCL 1 files Consul users write, except quoted
//! attribute names in bodies such as `"a" = 1`). Blocks become objects: `ports { http = 1 }` is
//! `{"ports": {"http": 1}}`, a labelled block `a "b" { }` is `{"a": {"b": {}}}`, and a block repeated
//! (`service { } service { }`) becomes an array of objects. [`super::schema`] then folds each key into the shape
//! its type wants (an array of objects for an object key is merged, one object for a list key is wrapped).
//!
//! Merge rules ([`merge`]), as Consul's: a later scalar replaces an earlier one, objects merge key by key, arrays
//! append.

use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};

/// Largest config file read, in bytes.
pub const CONFIG_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Most entries a `-config-dir` may hold.
pub const CONFIG_DIR_ENTRIES_MAX: usize = 10_000;

/// The syntax of a config source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// HCL.
    Hcl,
}

impl Format {
    /// The format `-config-format` names (`json` or `hcl`).
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "json" => Some(Format::Json),
            "hcl" => Some(Format::Hcl),
            _ => None,
        }
    }

    /// The format a file name's extension implies, as Consul decides it (`.json`, `.hcl`).
    pub fn from_extension(path: &Path) -> Option<Format> {
        let name = path.to_string_lossy();
        if name.ends_with(".json") {
            Some(Format::Json)
        } else if name.ends_with(".hcl") {
            Some(Format::Hcl)
        } else {
            None
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "json",
            Format::Hcl => "hcl",
        })
    }
}

/// One config file to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSource {
    /// The path, as given or joined with its directory.
    pub path: PathBuf,
    /// Its syntax.
    pub format: Format,
}

/// Why a source could not be found or read; the text is the whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError(pub String);

/// Expands the `-config-file`/`-config-dir` paths, in command-line order, into the files to read. A path that
/// is a directory contributes its `*.json` and `*.hcl` files (every file when `forced` is set) in lexical
/// order, without recursing; other files in it are skipped with a warning, as Consul does. A path that is a file
/// must end in `.json` or `.hcl` unless `forced` (`-config-format`) is set.
pub fn expand_paths(
    paths: &[PathBuf],
    forced: Option<Format>,
    warnings: &mut Vec<String>,
) -> Result<Vec<FileSource>, SourceError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|error| {
            SourceError(format!(
                "config: Open failed on {}. {error}",
                path.display()
            ))
        })?;
        if !meta.is_dir() {
            let format = match forced.or_else(|| Format::from_extension(path)) {
                Some(format) => format,
                None => {
                    return Err(SourceError(format!(
                    "config: cannot read {}: a config file's name must end in .json or .hcl, or \
                         -config-format must be set",
                    path.display()
                )))
                }
            };
            files.push(FileSource {
                path: path.clone(),
                format,
            });
            continue;
        }
        let reader = std::fs::read_dir(path).map_err(|error| {
            SourceError(format!(
                "config: Readdir failed on {}. {error}",
                path.display()
            ))
        })?;
        let mut names = Vec::new();
        for entry in reader {
            let entry = entry.map_err(|error| {
                SourceError(format!(
                    "config: Readdir failed on {}. {error}",
                    path.display()
                ))
            })?;
            names.push(entry.file_name());
            if names.len() > CONFIG_DIR_ENTRIES_MAX {
                return Err(SourceError(format!(
                    "config: {} has more than {CONFIG_DIR_ENTRIES_MAX} entries",
                    path.display()
                )));
            }
        }
        // Lexical order of the names' bytes, as Go's sort of file names.
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for name in names {
            let file = path.join(&name);
            // Follows symlinks; directories inside are not read.
            let meta = std::fs::metadata(&file).map_err(|error| {
                SourceError(format!(
                    "config: Stat failed on {}. {error}",
                    file.display()
                ))
            })?;
            if meta.is_dir() {
                continue;
            }
            match forced.or_else(|| Format::from_extension(&file)) {
                Some(format) => files.push(FileSource { path: file, format }),
                None => warnings.push(format!(
                    "skipping file {}, extension must be .hcl or .json, or config format must be set",
                    file.display()
                )),
            }
        }
    }
    Ok(files)
}

/// Reads a config file (bounded by [`CONFIG_FILE_BYTES_MAX`]).
pub fn read(path: &Path) -> Result<String, SourceError> {
    let failed =
        |why: String| SourceError(format!("config: failed to read {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|error| failed(error.to_string()))?;
    if meta.len() > CONFIG_FILE_BYTES_MAX {
        return Err(failed(format!(
            "{} bytes is over the limit of {CONFIG_FILE_BYTES_MAX}",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
    String::from_utf8(bytes).map_err(|_| failed("the file is not valid UTF-8".to_string()))
}

/// Parses one source into an object. An empty (or blank) source is an empty object. The error is the message
/// after `failed to parse <name>: `, with the line and column of a syntax error.
pub fn parse(text: &str, format: Format) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match format {
        Format::Json => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err("the top level must be a JSON object".to_string()),
            Err(error) => Err(format!(
                "line {}, column {}: {}",
                error.line(),
                error.column(),
                json_error_text(&error)
            )),
        },
        Format::Hcl => {
            let body = hcl::parse(text).map_err(|error| match error {
                hcl::Error::Parse(parse) => format!(
                    "line {}, column {}: {}",
                    parse.location().line(),
                    parse.location().column(),
                    parse.message()
                ),
                other => other.to_string(),
            })?;
            body_to_map(&body, "")
        }
    }
}

/// serde_json's message without its trailing ` at line L column C`.
fn json_error_text(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn body_to_map(body: &hcl::Body, prefix: &str) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for structure in body.iter() {
        match structure {
            hcl::Structure::Attribute(attribute) => {
                let path = join(prefix, attribute.key());
                let value = evaluate(attribute.expr(), &path)?;
                map.insert(attribute.key().to_string(), value);
            }
            hcl::Structure::Block(block) => {
                let mut path = join(prefix, block.identifier());
                for label in block.labels() {
                    path = join(&path, label.as_str());
                }
                let mut value = Value::Object(body_to_map(block.body(), &path)?);
                for label in block.labels().iter().rev() {
                    let mut wrapped = Map::new();
                    wrapped.insert(label.as_str().to_string(), value);
                    value = Value::Object(wrapped);
                }
                match map.get_mut(block.identifier()) {
                    // A repeated block: collect the bodies in an array.
                    Some(Value::Array(items)) => items.push(value),
                    Some(existing @ Value::Object(_)) => {
                        let first = existing.take();
                        *existing = Value::Array(vec![first, value]);
                    }
                    _ => {
                        map.insert(block.identifier().to_string(), value);
                    }
                }
            }
        }
    }
    Ok(map)
}

/// Evaluates a literal HCL expression (numbers, strings, booleans, arrays, objects, `-1`); variables and
/// functions have nothing to refer to and are errors.
fn evaluate(expr: &hcl::Expression, path: &str) -> Result<Value, String> {
    use hcl::eval::Evaluate;
    let value = expr
        .evaluate(&hcl::eval::Context::new())
        .map_err(|error| format!("{path}: {error}"))?;
    serde_json::to_value(&value).map_err(|error| format!("{path}: {error}"))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Merges `later` into `earlier`: objects key by key, arrays appended, anything else replaced.
pub fn merge(earlier: &mut Value, later: Value) {
    match (earlier, later) {
        (Value::Object(left), Value::Object(right)) => {
            for (key, value) in right {
                match left.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        left.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(left), Value::Array(right)) => left.extend(right),
        (slot, value) => *slot = value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hcl_blocks_become_objects_and_repeated_blocks_arrays() {
        let map = parse(
            r#"
            # comment
            datacenter = "east"
            ports { http = 1 }
            ports = { dns = -1 }
            service { name = "a" }
            service { name = "b" }
            a "label" "two" { x = [1, "y", true] }
            heredoc = <<EOT
hi
EOT
            "#,
            Format::Hcl,
        )
        .expect("parses");
        assert_eq!(
            Value::Object(map),
            json!({
                "datacenter": "east",
                "ports": {"dns": -1},
                "service": [{"name": "a"}, {"name": "b"}],
                "a": {"label": {"two": {"x": [1, "y", true]}}},
                "heredoc": "hi\n",
            })
        );
    }

    #[test]
    fn syntax_errors_have_a_line_and_column() {
        let error = parse("{\n  \"a\": 1,\n  \"b\" 2\n}", Format::Json).expect_err("bad json");
        assert!(
            error.starts_with("line 3, column 7: expected `:`"),
            "{error}"
        );
        let error = parse("a = 1\nb = = 2\n", Format::Hcl).expect_err("bad hcl");
        assert!(error.starts_with("line 2, column 5: "), "{error}");
        let error = parse("a = var.x\n", Format::Hcl).expect_err("a variable");
        assert!(error.starts_with("a: "), "{error}");
        assert_eq!(
            parse("[1]", Format::Json),
            Err("the top level must be a JSON object".to_string())
        );
        assert_eq!(parse(" \n", Format::Json), Ok(Map::new()));
    }

    #[test]
    fn merge_overrides_scalars_merges_objects_appends_arrays() {
        let mut tree = json!({"a": 1, "o": {"x": 1, "y": 2}, "l": [1]});
        merge(
            &mut tree,
            json!({"a": 2, "o": {"y": 3, "z": 4}, "l": [2, 3], "n": null}),
        );
        assert_eq!(
            tree,
            json!({"a": 2, "o": {"x": 1, "y": 3, "z": 4}, "l": [1, 2, 3], "n": null})
        );
    }
}
