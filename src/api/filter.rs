//! Consul's `?filter=` expressions (the go-bexpr grammar), evaluated against the JSON of each result element.
//!
//! Matches: `<Selector> == <Value>`, `!=`, `<Selector> is empty`, `is not empty`, `<Value> in <Selector>`,
//! `not in`, `<Selector> contains <Value>`, `not contains`, `<Selector> matches <Value>` (a regular
//! expression), `not matches`; combined with `and`, `or`, `not` and parentheses (`not` binds tightest, then
//! `and`, then `or`). A selector is a dotted path (`Service.Meta.env`) with optional `["key"]` steps
//! (`NodeMeta["rack"]`); a path through a list selects the field of every element. Values are `"quoted"`
//! (with `\` escapes), `` `raw` ``, or bare words and numbers. A missing field compares unequal and is empty.

use regex::Regex;
use serde_json::Value;

/// Nesting (parentheses and `not`) one expression may use.
pub const FILTER_DEPTH_MAX: usize = 64;
/// Bytes of expression text accepted.
pub const FILTER_BYTES_MAX: usize = 8 << 10;

/// A parsed filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    expr: Expr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match(Match),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Match {
    selector: Vec<String>,
    op: Op,
    negated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Equal(String),
    Empty,
    In(String),
    Matches(Pattern),
}

/// A compiled regular expression, compared by its text.
#[derive(Clone, Debug)]
struct Pattern(Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

impl Filter {
    /// Parses `text`; the error says where and what was expected.
    pub fn parse(text: &str) -> Result<Filter, String> {
        if text.len() > FILTER_BYTES_MAX {
            return Err(format!("filter longer than {FILTER_BYTES_MAX} bytes"));
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser { tokens, at: 0 };
        let expr = parser.or(0)?;
        match parser.peek() {
            None => Ok(Filter { expr }),
            Some(t) => Err(format!("unexpected {} after the expression", t.describe())),
        }
    }

    /// Whether `element` satisfies the filter.
    pub fn matches(&self, element: &Value) -> bool {
        self.expr.eval(element)
    }
}

impl Expr {
    fn eval(&self, v: &Value) -> bool {
        match self {
            Expr::Or(a, b) => a.eval(v) || b.eval(v),
            Expr::And(a, b) => a.eval(v) && b.eval(v),
            Expr::Not(e) => !e.eval(v),
            Expr::Match(m) => m.eval(v),
        }
    }
}

impl Match {
    fn eval(&self, root: &Value) -> bool {
        let found = select(root, &self.selector);
        let hit = match (&self.op, &found) {
            (Op::Empty, None) => true,
            (Op::Empty, Some(v)) => is_empty(v),
            (_, None) => false,
            (Op::Equal(want), Some(v)) => equals(v, want),
            (Op::In(want), Some(v)) => holds(v, want),
            (Op::Matches(p), Some(v)) => v.as_str().is_some_and(|s| p.0.is_match(s)),
        };
        hit != self.negated
    }
}

/// The value at `path` under `root` (a path through a list selects that field of every element).
fn select(root: &Value, path: &[String]) -> Option<Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(root.clone());
    };
    match root {
        Value::Object(map) => {
            let child = map.get(first).or_else(|| {
                map.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(first))
                    .map(|(_, v)| v)
            })?;
            select(child, rest)
        }
        Value::Array(items) => Some(Value::Array(
            items.iter().filter_map(|i| select(i, path)).collect(),
        )),
        _ => None,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// `==`: a string equals the text, a number or boolean equals it parsed; in a list, any element.
fn equals(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Number(n) => want
            .parse::<f64>()
            .is_ok_and(|w| n.as_f64().is_some_and(|n| n == w)),
        Value::Bool(b) => want.parse::<bool>().is_ok_and(|w| w == *b),
        Value::Array(items) => items.iter().any(|i| equals(i, want)),
        Value::Null | Value::Object(_) => false,
    }
}

/// `in`/`contains`: a list holds an equal element, a map the key, a string the substring.
fn holds(v: &Value, want: &str) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| equals(i, want)),
        Value::Object(map) => map.contains_key(want),
        Value::String(s) => s.contains(want),
        _ => false,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Equal,
    NotEqual,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("{w:?}"),
            Token::Quoted(q) => format!("the string {q:?}"),
            Token::Open => "\"(\"".to_string(),
            Token::Close => "\")\"".to_string(),
            Token::OpenBracket => "\"[\"".to_string(),
            Token::CloseBracket => "\"]\"".to_string(),
            Token::Equal => "\"==\"".to_string(),
            Token::NotEqual => "\"!=\"".to_string(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let single = match c {
            '(' => Some(Token::Open),
            ')' => Some(Token::Close),
            '[' => Some(Token::OpenBracket),
            ']' => Some(Token::CloseBracket),
            _ => None,
        };
        if c.is_whitespace() {
            at += 1;
        } else if let Some(token) = single {
            tokens.push(token);
            at += 1;
        } else if c == '=' || c == '!' {
            if chars.get(at + 1) != Some(&'=') {
                return Err(format!("{}: expected \"{c}=\"", at + 1));
            }
            tokens.push(if c == '=' {
                Token::Equal
            } else {
                Token::NotEqual
            });
            at += 2;
        } else if c == '"' || c == '`' {
            let (text, next) = quoted(&chars, at)?;
            tokens.push(Token::Quoted(text));
            at = next;
        } else {
            let end = (at..chars.len())
                .find(|&i| is_delimiter(chars[i]))
                .unwrap_or(chars.len());
            tokens.push(Token::Word(chars[at..end].iter().collect()));
            at = end;
        }
    }
    Ok(tokens)
}

fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '=' | '!' | '"' | '`')
}

/// A `"..."` string (with `\` escapes) or a `` `...` `` raw string starting at `start`; returns its text and
/// the position after it.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let close = chars[start];
    let mut out = String::new();
    let mut at = start + 1;
    while at < chars.len() {
        match chars[at] {
            c if c == close => return Ok((out, at + 1)),
            '\\' if close == '"' => {
                let escaped = *chars
                    .get(at + 1)
                    .ok_or_else(|| format!("{}: unfinished escape", at + 1))?;
                out.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                });
                at += 2;
            }
            c => {
                out.push(c);
                at += 1;
            }
        }
    }
    Err(format!("{}: unterminated string", start + 1))
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_word(&self, offset: usize) -> Option<&str> {
        match self.tokens.get(self.at + offset) {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&mut self, word: &str) -> bool {
        if self.peek_word(0) == Some(word) {
            self.at += 1;
            return true;
        }
        false
    }

    fn expect_keyword(&mut self, word: &str) -> Result<(), String> {
        if self.keyword(word) {
            return Ok(());
        }
        Err(format!("expected \"{word}\", found {}", self.found()))
    }

    fn found(&self) -> String {
        self.peek()
            .map_or("the end of the filter".to_string(), Token::describe)
    }

    fn or(&mut self, depth: usize) -> Result<Expr, String> {
        let mut left = self.and(depth)?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, String> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.unary(depth)?));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, String> {
        if depth >= FILTER_DEPTH_MAX {
            return Err(format!("nested deeper than {FILTER_DEPTH_MAX} levels"));
        }
        let value_first = self.peek_word(1) == Some("in")
            || (self.peek_word(1) == Some("not") && self.peek_word(2) == Some("in"));
        if !value_first && self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or(depth + 1)?;
            return match self.next() {
                Some(Token::Close) => Ok(inner),
                _ => Err("expected \")\"".to_string()),
            };
        }
        self.matcher().map(Expr::Match)
    }

    /// One match expression, value first (`"x" in Tags`) or selector first.
    fn matcher(&mut self) -> Result<Match, String> {
        let second = self.peek_word(1);
        let value_first = matches!(self.peek(), Some(Token::Quoted(_)))
            || second == Some("in")
            || (second == Some("not") && self.peek_word(2) == Some("in"));
        if value_first {
            let value = self.value()?;
            let negated = self.keyword("not");
            self.expect_keyword("in")?;
            let selector = self.selector()?;
            return Ok(Match {
                selector,
                op: Op::In(value),
                negated,
            });
        }
        let selector = self.selector()?;
        self.operator(selector)
    }

    fn operator(&mut self, selector: Vec<String>) -> Result<Match, String> {
        let op_match = |op, negated| {
            Ok(Match {
                selector: selector.clone(),
                op,
                negated,
            })
        };
        match self.next() {
            Some(Token::Equal) => op_match(Op::Equal(self.value()?), false),
            Some(Token::NotEqual) => op_match(Op::Equal(self.value()?), true),
            Some(Token::Word(w)) if w == "is" => {
                let negated = self.keyword("not");
                self.expect_keyword("empty")?;
                op_match(Op::Empty, negated)
            }
            Some(Token::Word(w)) if w == "not" || w == "contains" || w == "matches" => {
                let negated = w == "not";
                let verb = if negated {
                    self.peek_word(0).map(str::to_string).unwrap_or_default()
                } else {
                    w
                };
                if negated {
                    self.at += 1;
                }
                match verb.as_str() {
                    "contains" => op_match(Op::In(self.value()?), negated),
                    "matches" => op_match(Op::Matches(self.pattern()?), negated),
                    _ => Err("expected \"contains\" or \"matches\" after \"not\"".to_string()),
                }
            }
            other => Err(format!(
                "expected an operator (==, !=, is, contains, matches) after the selector, found {}",
                other.map_or("the end of the filter".to_string(), |t| t.describe())
            )),
        }
    }

    fn pattern(&mut self) -> Result<Pattern, String> {
        let text = self.value()?;
        Regex::new(&text)
            .map(Pattern)
            .map_err(|e| format!("invalid regular expression {text:?}: {e}"))
    }

    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Quoted(s)) | Some(Token::Word(s)) => Ok(s),
            other => Err(format!(
                "expected a value, found {}",
                other.map_or("the end of the filter".to_string(), |t| t.describe())
            )),
        }
    }

    /// `A.B["key"].C`: the path's steps.
    fn selector(&mut self) -> Result<Vec<String>, String> {
        let Some(Token::Word(first)) = self.next() else {
            self.at -= 1;
            return Err(format!("expected a selector, found {}", self.found()));
        };
        let mut path = split_path(&first)?;
        while self.peek() == Some(&Token::OpenBracket) {
            self.at += 1;
            let (Some(Token::Quoted(key)), Some(Token::CloseBracket)) = (self.next(), self.next())
            else {
                return Err("expected [\"key\"] in the selector".to_string());
            };
            path.push(key);
            if let Some(rest) = self.peek_word(0).and_then(|w| w.strip_prefix('.')) {
                let rest = rest.to_string();
                self.at += 1;
                path.extend(split_path(&rest)?);
            }
        }
        Ok(path)
    }
}

fn split_path(text: &str) -> Result<Vec<String>, String> {
    let steps: Vec<String> = text.split('.').map(str::to_string).collect();
    if steps.iter().any(String::is_empty) {
        return Err(format!("invalid selector {text:?}"));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(filter: &str, element: &Value) -> bool {
        Filter::parse(filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches(element)
    }

    fn sample() -> Value {
        json!({
            "Node": "n1",
            "ServiceTags": ["primary", "v2"],
            "ServiceMeta": {"env": "prod", "dotted.key": "x"},
            "ServicePort": 8080,
            "ServiceEnableTagOverride": false,
            "ServiceAddress": "",
            "Checks": [{"Status": "passing"}, {"Status": "critical"}],
        })
    }

    #[test]
    fn every_operator() {
        let e = sample();
        for (filter, want) in [
            ("Node == n1", true),
            ("Node == \"n1\"", true),
            ("Node != `n1`", false),
            ("ServicePort == 8080", true),
            ("ServiceEnableTagOverride == false", true),
            ("primary in ServiceTags", true),
            ("\"v3\" in ServiceTags", false),
            ("v3 not in ServiceTags", true),
            ("ServiceTags contains v2", true),
            ("ServiceTags not contains v2", false),
            ("env in ServiceMeta", true),
            ("ServiceMeta.env == prod", true),
            ("ServiceMeta[\"env\"] == prod", true),
            ("ServiceMeta[\"dotted.key\"] == x", true),
            ("ServiceMeta.missing == x", false),
            ("ServiceMeta.missing != x", true),
            ("ServiceAddress is empty", true),
            ("ServiceMeta.missing is empty", true),
            ("ServiceTags is not empty", true),
            ("Node matches \"^n[0-9]$\"", true),
            ("Node not matches \"^x\"", true),
            ("Checks.Status contains critical", true),
            ("Checks.Status == passing", true),
        ] {
            assert_eq!(check(filter, &e), want, "{filter}");
        }
    }

    #[test]
    fn boolean_logic_and_precedence() {
        let e = sample();
        assert!(check("Node == n1 and primary in ServiceTags", &e));
        assert!(!check("Node == n2 and primary in ServiceTags", &e));
        assert!(check("Node == n2 or primary in ServiceTags", &e));
        assert!(check("not Node == n2", &e));
        assert!(!check("not (Node == n1 or Node == n2)", &e));
        assert!(check("Node == n2 and ServicePort == 1 or Node == n1", &e));
        assert!(!check(
            "Node == n2 and (ServicePort == 1 or Node == n1)",
            &e
        ));
        assert!(check("not v3 in ServiceTags", &e));
    }

    #[test]
    fn malformed_filters_say_what_is_wrong() {
        for bad in [
            "",
            "Node ==",
            "Node = n1",
            "Node n1",
            "(Node == n1",
            "Node == n1 and",
            "Node == \"n1",
            "Node matches \"(\"",
            "Meta[env] == x",
            "Node is full",
            "Node == n1 n2",
            ".Node == x",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = format!("{}Node == n1{}", "(".repeat(100), ")".repeat(100));
        assert!(Filter::parse(&deep).unwrap_err().contains("nested deeper"));
        assert!(Filter::parse(&"x".repeat(FILTER_BYTES_MAX + 1)).is_err());
    }
}
