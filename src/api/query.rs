//! Query strings as Consul reads them (Go's `url.ParseQuery`): `+` is a space, `%XX` escapes, a key may repeat
//! (`?tag=a&tag=b`), and flag-like parameters count by presence, bare or valued (`?stale`, `?recurse=1`, `?stale=`).

/// The parameters of one request, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// Keys and values a query may hold at most (bounded work per request).
pub const QUERY_PAIRS_MAX: usize = 256;

impl Query {
    /// Parses a raw query string (without the `?`). Bad escapes are an error naming the text, like Go's.
    pub fn parse(raw: &str) -> Result<Query, String> {
        let mut pairs = Vec::new();
        for part in raw.split(['&', ';']).filter(|p| !p.is_empty()) {
            if pairs.len() == QUERY_PAIRS_MAX {
                return Err(format!("more than {QUERY_PAIRS_MAX} query parameters"));
            }
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((unescape(key)?, unescape(value)?));
        }
        Ok(Query { pairs })
    }

    /// True when `key` is present, bare or with any value.
    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// The first value of `key` (`Some("")` for a bare key).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> impl Iterator<Item = &str> + '_ {
        let key = key.to_string();
        self.pairs
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The query as a raw string again (every byte outside the unreserved set escaped), so it can be relayed
    /// and parsed to the same pairs.
    pub fn to_raw(&self) -> String {
        let mut out = String::new();
        for (i, (key, value)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            escape_into(key, &mut out);
            out.push('=');
            escape_into(value, &mut out);
        }
        out
    }

    /// The first value of `key` as a u64: `Ok(None)` when absent, an error when not a number.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("invalid {key} \"{v}\"")),
        }
    }
}

/// Decodes `+` and `%XX` (Go's `QueryUnescape`).
fn unescape(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(byte) = byte else {
                    let end = (i + 3).min(bytes.len());
                    return Err(format!(
                        "invalid URL escape \"{}\"",
                        String::from_utf8_lossy(&bytes[i..end])
                    ));
                };
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("query text \"{text}\" is not UTF-8"))
}

fn escape_into(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_survives_a_round_trip_through_its_raw_form() {
        let q = Query::parse("stale&tag=a%20b&tag=c%26d&wait=1s&filter=Service+%3D%3D+%22x%22")
            .expect("parse");
        assert_eq!(Query::parse(&q.to_raw()), Ok(q));
    }

    #[test]
    fn flags_count_by_presence_bare_or_valued() {
        let q = Query::parse("stale&recurse=1&consistent=&index=12&wait=5m").unwrap();
        assert!(q.has("stale") && q.has("recurse") && q.has("consistent"));
        assert!(!q.has("cached"));
        assert_eq!(q.get("stale"), Some(""));
        assert_eq!(q.u64("index"), Ok(Some(12)));
        assert_eq!(q.u64("missing"), Ok(None));
        assert!(Query::parse("index=x").unwrap().u64("index").is_err());
    }

    #[test]
    fn repeats_escapes_and_plus() {
        let q = Query::parse("tag=a&tag=b%2Fc&filter=Service+%3D%3D+%22web%22").unwrap();
        assert_eq!(q.all("tag").collect::<Vec<_>>(), vec!["a", "b/c"]);
        assert_eq!(q.get("filter"), Some("Service == \"web\""));
        assert_eq!(
            Query::parse("k=%zz").unwrap_err(),
            "invalid URL escape \"%zz\""
        );
        assert!(Query::parse("k=%4").is_err());
        assert_eq!(Query::parse("").unwrap(), Query::default());
    }

    #[test]
    fn the_number_of_parameters_is_bounded() {
        let many = vec!["a=1"; QUERY_PAIRS_MAX + 1].join("&");
        assert!(Query::parse(&many).is_err());
    }
}
