//! What every client command shares: the HTTP flags and environment (`-http-addr`,
//! `CONSUL_HTTP_ADDR`, `-token`...), flag parsing with help and usage errors, the API client with
//! its token/datacenter/stale settings, and consul's column tables.

use super::http_client::{self, ClientError, Endpoint, Request, Response, StreamedResponse};
use crate::config::flags::{self, FlagError, FlagKind, FlagSpec, ParsedFlags};
use crate::ui;

/// The agent address used when neither `-http-addr` nor `CONSUL_HTTP_ADDR` is set.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8500";

const fn string_flag(name: &'static str, usage: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        kind: FlagKind::String,
        usage,
    }
}

const fn bool_flag(name: &'static str, usage: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        kind: FlagKind::Bool,
        usage,
    }
}

/// Declares a string flag (see [`FlagSpec`]).
pub const fn string(name: &'static str, usage: &'static str) -> FlagSpec {
    string_flag(name, usage)
}

/// Declares a boolean flag (see [`FlagSpec`]).
pub const fn boolean(name: &'static str, usage: &'static str) -> FlagSpec {
    bool_flag(name, usage)
}

/// The flags every HTTP command takes (consul's client and server flags).
pub const HTTP_FLAGS: &[FlagSpec] = &[
    string_flag(
        "http-addr",
        "The `address` and port of the Consul HTTP agent. The value can be an IP address or \
         DNS address, but it must also include the port. This can also be specified via the \
         CONSUL_HTTP_ADDR environment variable. The default value is http://127.0.0.1:8500. \
         The scheme can also be set to HTTPS by setting the environment variable \
         CONSUL_HTTP_SSL=true.",
    ),
    string_flag(
        "token",
        "ACL token to use in the request. This can also be specified via the CONSUL_HTTP_TOKEN \
         environment variable. If unspecified, the query will default to the token of the \
         Consul agent at the HTTP address.",
    ),
    string_flag(
        "token-file",
        "File containing the ACL token to use in the request instead of one specified via the \
         -token argument or CONSUL_HTTP_TOKEN environment variable. This can also be specified \
         via the CONSUL_HTTP_TOKEN_FILE environment variable.",
    ),
    string_flag(
        "ca-file",
        "Path to a CA file to use for TLS when communicating with Consul.",
    ),
    string_flag(
        "ca-path",
        "Path to a directory of CA certificates to use for TLS.",
    ),
    string_flag("client-cert", "Path to a client cert file to use for TLS."),
    string_flag("client-key", "Path to a client key file to use for TLS."),
    string_flag(
        "tls-server-name",
        "The server name to use as the SNI host for TLS.",
    ),
    string_flag(
        "datacenter",
        "Name of the datacenter to query. If unspecified, this will default to the datacenter \
         of the queried agent.",
    ),
    bool_flag(
        "stale",
        "Permit any Consul server (non-leader) to respond to this request. This allows for \
         lower latency and higher throughput, but can result in stale data.",
    ),
];

/// How a command was invoked: the program name for help text.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// `cairn` or `consul`.
    pub program: &'static str,
}

/// Parses `args` against the command's `specs` plus [`HTTP_FLAGS`] (when `http`). On `-h` the help
/// is printed and `Err(0)` returned; on a bad flag the error and the help, and `Err(1)`.
pub fn parse(
    specs: &[FlagSpec],
    http: bool,
    help: &str,
    args: &[String],
) -> Result<ParsedFlags, i32> {
    let all = if http {
        [specs, HTTP_FLAGS].concat()
    } else {
        specs.to_vec()
    };
    // As consul's CLI: -h, -help or --help anywhere before `--` asks for the help.
    let asks_help = args
        .iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| matches!(arg.as_str(), "-h" | "-help" | "--help"));
    if asks_help {
        ui::error(&full_help(help, &all));
        return Err(0);
    }
    match flags::parse(&all, args) {
        Ok(parsed) => Ok(parsed),
        Err(FlagError::Help) => {
            ui::error(&full_help(help, &all));
            Err(0)
        }
        Err(error) => {
            ui::error(&error.to_string());
            ui::error(&full_help(help, &all));
            Err(1)
        }
    }
}

/// The help text: the command's description, then its flags.
pub fn full_help(help: &str, specs: &[FlagSpec]) -> String {
    if specs.is_empty() {
        return help.trim_end().to_string();
    }
    format!(
        "{}\n\nCommand Options:\n\n{}",
        help.trim_end(),
        flags::usage(specs)
    )
}

/// Reads an unsigned number flag (`-flags`, `-modify-index`); a bad value prints Go's message and
/// the help, and gives exit code 1.
pub fn u64_flag(parsed: &ParsedFlags, name: &str, default: u64, help: &str) -> Result<u64, i32> {
    match parsed.string(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            ui::error(&format!(
                "invalid value {text:?} for flag -{name}: parse error"
            ));
            ui::error(help);
            1
        }),
    }
}

/// Reads a Go duration flag (`-timeout=5s`) in milliseconds.
pub fn duration_flag(parsed: &ParsedFlags, name: &str, help: &str) -> Result<Option<u64>, i32> {
    match parsed.string(name) {
        None => Ok(None),
        Some(text) => crate::api::duration::parse_duration_ms(text)
            .map(Some)
            .map_err(|_| {
                ui::error(&format!(
                    "invalid value {text:?} for flag -{name}: parse error"
                ));
                ui::error(help);
                1
            }),
    }
}

/// The API client of a command: where the agent is and what every request carries.
#[derive(Clone, Debug)]
pub struct Client {
    endpoint: Endpoint,
    token: Option<String>,
    datacenter: Option<String>,
    stale: bool,
    basic_auth: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Client {
    /// Builds the client from the HTTP flags, falling back to the `CONSUL_HTTP_*` environment.
    pub fn from_flags(parsed: &ParsedFlags) -> Result<Client, ClientError> {
        let addr = parsed
            .string("http-addr")
            .map(str::to_string)
            .or_else(|| env("CONSUL_HTTP_ADDR"))
            .unwrap_or_else(|| DEFAULT_HTTP_ADDR.to_string());
        let ssl = env("CONSUL_HTTP_SSL")
            .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"));
        let endpoint = http_client::parse_endpoint(&addr, ssl)?;
        let token = Self::token(parsed)?;
        let basic_auth = env("CONSUL_HTTP_AUTH").map(|auth| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(auth.as_bytes())
        });
        Ok(Client {
            endpoint,
            token,
            datacenter: parsed.string("datacenter").map(str::to_string),
            stale: parsed.bool("stale").unwrap_or(false),
            basic_auth,
        })
    }

    /// A client of `endpoint` sending `token` and asking `datacenter` (the agent's own watches).
    pub fn new(endpoint: Endpoint, token: Option<String>, datacenter: Option<String>) -> Client {
        Client {
            endpoint,
            token,
            datacenter,
            stale: false,
            basic_auth: None,
        }
    }

    fn token(parsed: &ParsedFlags) -> Result<Option<String>, ClientError> {
        if let Some(token) = parsed.string("token").filter(|t| !t.is_empty()) {
            return Ok(Some(token.to_string()));
        }
        let file = parsed
            .string("token-file")
            .map(str::to_string)
            .or_else(|| env("CONSUL_HTTP_TOKEN_FILE"));
        if let Some(file) = file {
            return match std::fs::read_to_string(&file) {
                Ok(text) => Ok(Some(text.trim().to_string())),
                Err(error) => Err(ClientError::Address(format!(
                    "Error loading token file: open {file}: {error}"
                ))),
            };
        }
        Ok(env("CONSUL_HTTP_TOKEN"))
    }

    /// Whether `-stale` was given.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// Sends `request` with the token and returns once the response head arrived, to read its body as it
    /// comes (a status outside 2xx is an error with its body).
    pub fn open_stream(&self, mut request: Request) -> Result<StreamedResponse, ClientError> {
        self.decorate(&mut request);
        let mut response = http_client::open_stream(&self.endpoint, &request)?;
        if (200..300).contains(&response.status) {
            return Ok(response);
        }
        let mut body = String::new();
        let _ = std::io::Read::read_to_string(&mut response.body, &mut body);
        Err(ClientError::Status {
            code: response.status,
            body: body.trim().to_string(),
        })
    }

    fn decorate(&self, request: &mut Request) {
        if let Some(token) = &self.token {
            request
                .headers
                .push(("X-Consul-Token".to_string(), token.clone()));
        }
        if let Some(auth) = &self.basic_auth {
            request
                .headers
                .push(("Authorization".to_string(), format!("Basic {auth}")));
        }
    }

    /// Sends `request` with the token and `dc`; a status outside 2xx is returned as a response.
    pub fn send_raw(&self, mut request: Request) -> Result<Response, ClientError> {
        if let Some(dc) = &self.datacenter {
            request.query.push(("dc".to_string(), Some(dc.clone())));
        }
        self.decorate(&mut request);
        http_client::send(&self.endpoint, &request)
    }

    /// Sends `request`; a status outside 2xx is an error.
    pub fn send(&self, request: Request) -> Result<Response, ClientError> {
        let response = self.send_raw(request)?;
        if (200..300).contains(&response.status) {
            Ok(response)
        } else {
            Err(ClientError::Status {
                code: response.status,
                body: String::from_utf8_lossy(&response.body).trim().to_string(),
            })
        }
    }

    /// A read: adds `?stale` when `-stale` was given.
    pub fn query(&self, request: Request) -> Result<Response, ClientError> {
        let request = if self.stale {
            request.flag("stale")
        } else {
            request
        };
        self.send(request)
    }

    /// A read answered with JSON.
    pub fn query_json(&self, request: Request) -> Result<serde_json::Value, ClientError> {
        self.query(request)?.json()
    }

    /// The agent's node name (`/v1/agent/self`), which commands check first as consul's do.
    pub fn node_name(&self) -> Result<String, ClientError> {
        let info = self.send(Request::new("GET", "/v1/agent/self"))?.json()?;
        Ok(info["Config"]["NodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }
}

/// Builds the client or prints `Error connecting to Consul agent: ...` and gives exit code 1.
pub fn client(parsed: &ParsedFlags) -> Result<Client, i32> {
    Client::from_flags(parsed).map_err(|error| {
        ui::error(&format!("Error connecting to Consul agent: {error}"));
        1
    })
}

/// [`client`], checked to reach an agent first (consul's commands that act on the local agent ask for its
/// node name before anything else): `Error querying Consul agent: ...` and exit 1 when it does not answer.
pub fn reachable_client(parsed: &ParsedFlags) -> Result<Client, i32> {
    let client = client(parsed)?;
    if let Err(error) = client.node_name() {
        ui::error(&format!("Error querying Consul agent: {error}"));
        return Err(1);
    }
    Ok(client)
}

/// Formats rows as columnize does: columns separated by two spaces, each but the last padded to
/// its widest cell. Cells are separated by `\x1f` in the input rows.
pub fn columnize(rows: &[String]) -> String {
    let split: Vec<Vec<&str>> = rows.iter().map(|r| r.split('\x1f').collect()).collect();
    let columns = split.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in &split {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let lines: Vec<String> = split
        .iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 < row.len() {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                } else {
                    line.push_str(cell);
                }
            }
            line.trim_end().to_string()
        })
        .collect();
    lines.join("\n")
}

/// A JSON string field, or "".
pub fn text<'a>(value: &'a serde_json::Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_default()
}

/// Pretty JSON as Go's `json.MarshalIndent(v, "", indent)`.
pub fn pretty_json(value: &serde_json::Value, indent: &str) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    if value.serialize(&mut serializer).is_err() {
        return value.to_string();
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columnize_pads_all_but_the_last_column() {
        let rows = vec![
            "Node\x1fID\x1fAddress".to_string(),
            "n1\x1f1234\x1f127.0.0.1:8300".to_string(),
        ];
        assert_eq!(
            columnize(&rows),
            "Node  ID    Address\nn1    1234  127.0.0.1:8300"
        );
    }
}
