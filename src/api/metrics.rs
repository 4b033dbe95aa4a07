//! `GET /v1/agent/metrics`: the agent's gauges and counters in Consul's JSON shape (`Timestamp`, `Gauges`,
//! `Points`, `Counters`, `Samples`) or, with `?format=prometheus`, in Prometheus' text exposition format.
//! The front end gathers the values ([`Metrics`]); this module only renders them. Counters are totals since
//! the agent started (Consul's are per-interval aggregates).

use super::duration::civil_from_days;
use super::json;
use super::ApiResponse;
use serde::Serialize;
use std::collections::BTreeMap;

/// The values to report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Wall-clock milliseconds since the Unix epoch, when gathered.
    pub timestamp_ms: u64,
    /// Gauges: (dotted name, value).
    pub gauges: Vec<(String, f64)>,
    /// Counters: (dotted name, total).
    pub counters: Vec<(String, u64)>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GaugeJson<'a> {
    name: &'a str,
    value: f64,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CounterJson<'a> {
    name: &'a str,
    count: u64,
    rate: f64,
    sum: f64,
    min: f64,
    max: f64,
    mean: f64,
    stddev: f64,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricsJson<'a> {
    timestamp: String,
    gauges: Vec<GaugeJson<'a>>,
    points: Vec<()>,
    counters: Vec<CounterJson<'a>>,
    samples: Vec<()>,
}

/// The metrics as Consul's JSON.
pub fn render_json(metrics: &Metrics, pretty: bool) -> ApiResponse {
    let body = MetricsJson {
        timestamp: go_utc_time(metrics.timestamp_ms),
        gauges: metrics
            .gauges
            .iter()
            .map(|(name, value)| GaugeJson {
                name,
                value: *value,
                labels: BTreeMap::new(),
            })
            .collect(),
        points: Vec::new(),
        counters: metrics
            .counters
            .iter()
            .map(|(name, total)| {
                let total_f = *total as f64;
                CounterJson {
                    name,
                    count: *total,
                    rate: 0.0,
                    sum: total_f,
                    min: 1.0,
                    max: 1.0,
                    mean: 1.0,
                    stddev: 0.0,
                    labels: BTreeMap::new(),
                }
            })
            .collect(),
        samples: Vec::new(),
    };
    json::ok(&body, pretty)
}

/// The metrics in Prometheus' text format (names with `_` for `.`, counters suffixed `_total`).
pub fn render_prometheus(metrics: &Metrics) -> ApiResponse {
    let mut out = String::new();
    for (name, value) in &metrics.gauges {
        let name = prometheus_name(name);
        out.push_str(&format!(
            "# HELP {name} {name}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    }
    for (name, total) in &metrics.counters {
        let name = format!("{}_total", prometheus_name(name));
        out.push_str(&format!(
            "# HELP {name} {name}\n# TYPE {name} counter\n{name} {total}\n"
        ));
    }
    ApiResponse {
        status: 200,
        content_type: Some("text/plain; version=0.0.4; charset=utf-8"),
        headers: Vec::new(),
        body: out.into_bytes(),
    }
}

fn prometheus_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Go's `time.Time.String()` of a UTC instant: `2006-01-02 15:04:05 +0000 UTC`.
pub fn go_utc_time(epoch_ms: u64) -> String {
    let secs = epoch_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metrics {
        Metrics {
            timestamp_ms: 1_502_160_910_000,
            gauges: vec![("consul.state.nodes".into(), 3.0)],
            counters: vec![("consul.api.http".into(), 42)],
        }
    }

    #[test]
    fn json_has_consuls_shape() {
        let response = render_json(&sample(), false);
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
        assert_eq!(body["Timestamp"], "2017-08-08 02:55:10 +0000 UTC");
        assert_eq!(body["Gauges"][0]["Name"], "consul.state.nodes");
        assert_eq!(body["Gauges"][0]["Value"], 3.0);
        assert_eq!(body["Counters"][0]["Count"], 42);
        assert_eq!(body["Points"], serde_json::json!([]));
        assert_eq!(body["Samples"], serde_json::json!([]));
    }

    #[test]
    fn prometheus_text_names_and_types_each_metric() {
        let text = String::from_utf8(render_prometheus(&sample()).body).expect("utf8");
        assert!(
            text.contains("# TYPE consul_state_nodes gauge\nconsul_state_nodes 3\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE consul_api_http_total counter\nconsul_api_http_total 42\n"),
            "{text}"
        );
    }

    #[test]
    fn go_time_strings() {
        assert_eq!(go_utc_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            go_utc_time(951_782_400_000),
            "2000-02-29 00:00:00 +0000 UTC"
        );
    }
}
