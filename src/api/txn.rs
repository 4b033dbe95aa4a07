//! `PUT /v1/txn`: up to 128 KV operations applied all-or-nothing; a read-only transaction is a read.

use super::json::{self, field, string_field, u64_field, KvJson};
use super::kv::too_large;
use super::params;
use super::{
    Answer, ApiRequest, ApiResponse, Context, Method, Plan, ReadPlan, ReadQuery, Render, WritePlan,
};
use crate::fsm::{self, Command, KvOp, KvVerb, State, TxnOutcome};
use serde::Serialize;
use serde_json::{Map, Value};

/// Plans `PUT /v1/txn`.
pub fn plan(req: &ApiRequest, ctx: &Context) -> Plan {
    if req.method != Method::Put {
        return Plan::Respond(super::router::method_not_allowed(req.method));
    }
    match parse_ops(req.body, ctx) {
        Err(response) => Plan::Respond(response),
        Ok(ops) if ops.iter().all(|op| op.verb.is_read()) => {
            let consistency = match params::consistency(&req.query) {
                Ok(c) => c,
                Err(response) => return Plan::Respond(response),
            };
            Plan::Read(ReadPlan {
                consistency,
                blocking: None,
                query: ReadQuery::Txn(ops),
                pretty: req.query.has("pretty"),
            })
        }
        Ok(ops) => Plan::Write(WritePlan {
            command: Command::Txn {
                now_ms: ctx.now_ms,
                ops,
            },
            render: Render::Txn,
            pretty: req.query.has("pretty"),
        }),
    }
}

fn parse_ops(body: &[u8], ctx: &Context) -> Result<Vec<KvOp>, ApiResponse> {
    if body.len() as u64 > ctx.txn_max_req_bytes {
        return Err(too_large(
            body.len() as u64,
            ctx.txn_max_req_bytes,
            "txn_max_req_len",
        ));
    }
    let Value::Array(items) = json::parse_body(body)? else {
        return Err(ApiResponse::text(
            400,
            "Failed to parse body: json: cannot unmarshal object into Go value of type api.TxnOps",
        ));
    };
    if items.len() > fsm::TXN_OPS_MAX {
        return Err(ApiResponse::text(
            413,
            format!(
                "Transaction contains too many operations ({} > {})",
                items.len(),
                fsm::TXN_OPS_MAX
            ),
        ));
    }
    let mut ops = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (at, item) in items.iter().enumerate() {
        match parse_op(item, ctx)? {
            Ok(op) => ops.push(op),
            Err(what) => errors.push(fsm::TxnError { op_index: at, what }),
        }
    }
    if !errors.is_empty() {
        return Err(render_txn(&TxnOutcome::Errors(errors), false));
    }
    Ok(ops)
}

/// One operation: `Ok(Err(what))` is an operation Consul reports in `Errors` (409), `Err` a bad request.
fn parse_op(item: &Value, ctx: &Context) -> Result<Result<KvOp, String>, ApiResponse> {
    let Value::Object(object) = item else {
        return Err(ApiResponse::text(
            400,
            "Failed to parse body: each operation must be an object",
        ));
    };
    if let Some(Value::Object(kv)) = field(object, "KV") {
        return parse_kv(kv, ctx);
    }
    for other in ["Node", "Service", "Check", "Session"] {
        if field(object, other).is_some() {
            return Ok(Err(format!(
                "{other} operations in transactions are not supported by this server yet"
            )));
        }
    }
    Err(ApiResponse::text(
        400,
        "Failed to parse body: an operation names no KV, Node, Service or Check",
    ))
}

fn parse_kv(kv: &Map<String, Value>, ctx: &Context) -> Result<Result<KvOp, String>, ApiResponse> {
    let verb_text = string_field(kv, "Verb")?.unwrap_or_default();
    let Some(verb) = KvVerb::parse(&verb_text) else {
        return Ok(Err(format!("unknown KV verb {verb_text:?}")));
    };
    let key = string_field(kv, "Key")?.unwrap_or_default();
    let value = match string_field(kv, "Value")? {
        Some(text) => json::unbase64(&text)
            .map_err(|e| ApiResponse::text(400, format!("Failed to parse body: {e}")))?,
        None => Vec::new(),
    };
    if value.len() as u64 > ctx.kv_max_value_bytes {
        return Err(ApiResponse::text(
            413,
            format!(
                "Value for key {key:?} is too large ({} > {} bytes)",
                value.len(),
                ctx.kv_max_value_bytes
            ),
        ));
    }
    Ok(Ok(KvOp {
        verb,
        key,
        value,
        flags: u64_field(kv, "Flags")?.unwrap_or(0),
        index: u64_field(kv, "Index")?.unwrap_or(0),
        session: string_field(kv, "Session")?.unwrap_or_default(),
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnJson<'a> {
    results: Option<Vec<ResultJson<'a>>>,
    errors: Option<Vec<ErrorJson<'a>>>,
}

#[derive(Serialize)]
struct ResultJson<'a> {
    #[serde(rename = "KV")]
    kv: KvJson<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorJson<'a> {
    op_index: usize,
    what: &'a str,
}

/// Consul's transaction response: `200` with results or `409` with errors.
pub fn render_txn(outcome: &TxnOutcome, pretty: bool) -> ApiResponse {
    match outcome {
        TxnOutcome::Results(results) => json::ok(
            &TxnJson {
                results: Some(
                    results
                        .iter()
                        .map(|r| ResultJson {
                            kv: KvJson::new(&r.kv),
                        })
                        .collect(),
                ),
                errors: None,
            },
            pretty,
        ),
        TxnOutcome::Errors(errors) => ApiResponse::json(
            409,
            json::to_body(
                &TxnJson {
                    results: None,
                    errors: Some(
                        errors
                            .iter()
                            .map(|e| ErrorJson {
                                op_index: e.op_index,
                                what: &e.what,
                            })
                            .collect(),
                    ),
                },
                pretty,
            ),
        ),
    }
}

/// Answers a read-only transaction from `state`.
pub fn answer_read(state: &State, ops: &[KvOp], pretty: bool) -> Answer {
    Answer {
        index: state
            .table_indexes()
            .kvs
            .max(state.table_indexes().tombstones),
        response: render_txn(&state.txn_read(ops), pretty),
    }
}
