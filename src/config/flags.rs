//! Command-line flags in the syntax of Go's `flag` package, which Consul uses:
//! `-flag`, `--flag`, `-flag=value`, `-flag value` (not for booleans), `--` ends the flags, and
//! parsing stops at the first argument that is not a flag. Error messages match Go's.

use std::fmt;

/// The type of a flag's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagKind {
    /// A boolean: `-flag` means true; a value must be attached (`-flag=false`).
    Bool,
    /// A string: `-flag=value` or `-flag value`.
    String,
}

/// One flag a command accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlagSpec {
    /// The name without dashes, e.g. `data-dir`.
    pub name: &'static str,
    /// The value type.
    pub kind: FlagKind,
    /// One-line help text.
    pub usage: &'static str,
}

/// A parsed flag value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagValue {
    /// The value of a [`FlagKind::Bool`] flag.
    Bool(bool),
    /// The value of a [`FlagKind::String`] flag.
    String(String),
}

/// The flags given on a command line, in order, and the arguments after them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedFlags {
    values: Vec<(&'static str, FlagValue)>,
    /// The arguments after the flags (after the first non-flag argument or `--`).
    pub rest: Vec<String>,
}

impl ParsedFlags {
    /// The last value given for a boolean flag, if it was given.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.values
            .iter()
            .rev()
            .find_map(|(flag, value)| match value {
                FlagValue::Bool(b) if *flag == name => Some(*b),
                _ => None,
            })
    }

    /// Every flag given, in command-line order, with its value.
    pub fn values(&self) -> impl Iterator<Item = (&'static str, &FlagValue)> + '_ {
        self.values.iter().map(|(name, value)| (*name, value))
    }

    /// Every value given for a string flag, in order (for repeatable flags such as `-retry-join`).
    pub fn strings(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter_map(|(flag, value)| match value {
                FlagValue::String(s) if *flag == name => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The last value given for a string flag, if it was given.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find_map(|(flag, value)| match value {
                FlagValue::String(s) if *flag == name => Some(s.as_str()),
                _ => None,
            })
    }
}

/// Why a command line was rejected; `Display` gives Go's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagError {
    /// `-h`, `-help` or `--help` was given (and is not a defined flag).
    Help,
    /// The flag is not defined: `flag provided but not defined: -name`.
    NotDefined(String),
    /// A string flag came last without a value: `flag needs an argument: -name`.
    NeedsArgument(String),
    /// A boolean flag got a value that is not a Go boolean.
    InvalidBool {
        /// The flag name.
        name: String,
        /// The rejected value.
        value: String,
    },
    /// Malformed, e.g. `---x` or `-=x`: `bad flag syntax: <arg>`.
    BadSyntax(String),
    /// A value the flag's type cannot hold (a number flag given `abc`): `invalid value "abc" for flag -name:
    /// parse error`.
    InvalidValue {
        /// The flag name.
        name: String,
        /// The rejected value.
        value: String,
    },
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::Help => write!(f, "flag: help requested"),
            FlagError::NotDefined(name) => write!(f, "flag provided but not defined: -{name}"),
            FlagError::NeedsArgument(name) => write!(f, "flag needs an argument: -{name}"),
            FlagError::InvalidBool { name, value } => {
                write!(
                    f,
                    "invalid boolean value {value:?} for -{name}: parse error"
                )
            }
            FlagError::BadSyntax(arg) => write!(f, "bad flag syntax: {arg}"),
            FlagError::InvalidValue { name, value } => {
                write!(f, "invalid value {value:?} for flag -{name}: parse error")
            }
        }
    }
}

impl std::error::Error for FlagError {}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `args` (without the command name) against `specs`, like Go's `FlagSet.Parse`.
pub fn parse(specs: &[FlagSpec], args: &[String]) -> Result<ParsedFlags, FlagError> {
    let mut parsed = ParsedFlags::default();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let dashes = if arg.starts_with("--") { 2 } else { 1 };
        if arg == "--" {
            index += 1;
            break;
        }
        let body = &arg[dashes..];
        if body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::BadSyntax(arg.clone()));
        }
        index += 1;
        let (name, attached) = match body.find('=') {
            Some(at) => (&body[..at], Some(&body[at + 1..])),
            None => (body, None),
        };
        let Some(spec) = specs.iter().find(|spec| spec.name == name) else {
            if name == "h" || name == "help" {
                return Err(FlagError::Help);
            }
            return Err(FlagError::NotDefined(name.to_string()));
        };
        let value = match spec.kind {
            FlagKind::Bool => {
                let value = attached.unwrap_or("true");
                match parse_go_bool(value) {
                    Some(b) => FlagValue::Bool(b),
                    None => {
                        return Err(FlagError::InvalidBool {
                            name: name.to_string(),
                            value: value.to_string(),
                        })
                    }
                }
            }
            FlagKind::String => match attached {
                Some(value) => FlagValue::String(value.to_string()),
                None => match args.get(index) {
                    Some(value) => {
                        index += 1;
                        FlagValue::String(value.clone())
                    }
                    None => return Err(FlagError::NeedsArgument(name.to_string())),
                },
            },
        };
        parsed.values.push((spec.name, value));
    }
    parsed.rest = args[index..].to_vec();
    Ok(parsed)
}

/// Help text for the flags, in Consul's style: `  -name=<value>` then the usage indented.
pub fn usage(specs: &[FlagSpec]) -> String {
    let mut text = String::new();
    for spec in specs {
        match spec.kind {
            FlagKind::Bool => text.push_str(&format!("  -{}\n", spec.name)),
            FlagKind::String => text.push_str(&format!("  -{}=<value>\n", spec.name)),
        }
        text.push_str(&format!("     {}\n\n", spec.usage));
    }
    text.truncate(text.trim_end().len());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[FlagSpec] = &[
        FlagSpec {
            name: "dev",
            kind: FlagKind::Bool,
            usage: "dev mode",
        },
        FlagSpec {
            name: "data-dir",
            kind: FlagKind::String,
            usage: "data dir",
        },
    ];

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn accepts_go_forms() {
        let p = parse(SPECS, &args(&["--dev", "-data-dir", "/a", "--data-dir=/b"])).expect("ok");
        assert_eq!(p.bool("dev"), Some(true));
        assert_eq!(p.string("data-dir"), Some("/b"));
        let p = parse(SPECS, &args(&["-dev=false", "rest", "-dev"])).expect("ok");
        assert_eq!(p.bool("dev"), Some(false));
        assert_eq!(p.rest, args(&["rest", "-dev"]));
        let p = parse(SPECS, &args(&["-dev", "--", "-x"])).expect("ok");
        assert_eq!(p.rest, args(&["-x"]));
        // A boolean never takes the next argument as its value.
        let p = parse(SPECS, &args(&["-dev", "false"])).expect("ok");
        assert_eq!((p.bool("dev"), p.rest), (Some(true), args(&["false"])));
        let p = parse(SPECS, &args(&["-data-dir="])).expect("ok");
        assert_eq!(p.string("data-dir"), Some(""));
        let p = parse(SPECS, &args(&["-data-dir=/a", "-dev", "-data-dir", "/b"])).expect("ok");
        assert_eq!(p.strings("data-dir"), ["/a", "/b"]);
        assert!(p.strings("dev").is_empty());
    }

    #[test]
    fn errors_read_like_go() {
        let err = |list: &[&str]| {
            parse(SPECS, &args(list))
                .expect_err("should fail")
                .to_string()
        };
        assert_eq!(err(&["-xyz"]), "flag provided but not defined: -xyz");
        assert_eq!(err(&["--xyz=1"]), "flag provided but not defined: -xyz");
        assert_eq!(err(&["-data-dir"]), "flag needs an argument: -data-dir");
        assert_eq!(
            err(&["-dev=maybe"]),
            "invalid boolean value \"maybe\" for -dev: parse error"
        );
        assert_eq!(err(&["---dev"]), "bad flag syntax: ---dev");
        assert_eq!(
            parse(SPECS, &args(&["-help"])),
            Err(FlagError::Help),
            "help is not an error message"
        );
    }
}
