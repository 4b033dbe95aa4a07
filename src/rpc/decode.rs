//! Decoding frames: the inverse of [`super::encode`], bounded and never panicking (see `src/rpc/WIRE.md`).

use super::*;
use crate::raft::codec::{decode_configuration, decode_payload};

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: String) -> DecodeError {
        DecodeError {
            offset: self.at,
            reason,
        }
    }

    fn take(&mut self, field: &str, n: usize) -> Result<&'a [u8], DecodeError> {
        let have = self.bytes.len() - self.at;
        if n > have {
            return Err(self.err(format!(
                "cut short in {field} (needs {n} bytes, {have} left)"
            )));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn u8(&mut self, field: &str) -> Result<u8, DecodeError> {
        Ok(self.take(field, 1)?[0])
    }

    fn u16(&mut self, field: &str) -> Result<u16, DecodeError> {
        let b = self.take(field, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &str) -> Result<u32, DecodeError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(field, 4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self, field: &str) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(field, 8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn flag(&mut self, field: &str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => {
                self.at -= 1;
                Err(self.err(format!("{field} must be 0 or 1, not {other}")))
            }
        }
    }

    /// `u32 len | bytes` with `len <= max`.
    fn bytes(&mut self, field: &str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)? as usize;
        if len > max {
            self.at -= 4;
            return Err(self.err(format!("{field} of {len} bytes is over the limit of {max}")));
        }
        self.take(field, len)
    }

    fn string(&mut self, field: &str, max: usize) -> Result<String, DecodeError> {
        let start = self.at;
        let b = self.bytes(field, max)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError {
            offset: start,
            reason: format!("{field} is not UTF-8"),
        })
    }

    fn option_leader(&mut self) -> Result<Option<LeaderHint>, DecodeError> {
        if !self.flag("leader present")? {
            return Ok(None);
        }
        let id = ServerId(self.u64("leader id")?);
        let address = self.string("leader address", ADDRESS_BYTES_MAX)?;
        Ok(Some(LeaderHint { id, address }))
    }
}

/// Decodes one frame payload. Bad bytes are an error naming the field and offset; never a panic.
pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8("version")?;
    if version != WIRE_VERSION {
        return Err(DecodeError {
            offset: 0,
            reason: format!(
                "unsupported wire version {version} (this server speaks {WIRE_VERSION})"
            ),
        });
    }
    let kind = r.u8("kind")?;
    let dc_len = r.u16("datacenter length")? as usize;
    if dc_len > DATACENTER_BYTES_MAX {
        r.at -= 2;
        return Err(r.err(format!(
            "datacenter name of {dc_len} bytes is over the limit of {DATACENTER_BYTES_MAX}"
        )));
    }
    let dc_at = r.at;
    let datacenter =
        String::from_utf8(r.take("datacenter", dc_len)?.to_vec()).map_err(|_| DecodeError {
            offset: dc_at,
            reason: "datacenter name is not UTF-8".to_string(),
        })?;
    let sender = ServerId(r.u64("sender")?);
    let request_id = r.u64("request id")?;
    let body = match kind {
        kind::VOTE_REQUEST..=kind::TIMEOUT_NOW => Body::Raft(decode_message(kind, &mut r)?),
        kind::SNAPSHOT_CHUNK => {
            let leader_term = r.u64("leader term")?;
            let index = r.u64("snapshot index")?;
            let term = r.u64("snapshot term")?;
            let offset_bytes = r.u64("chunk offset")?;
            let total_bytes = r.u64("snapshot length")?;
            let done = r.flag("done")?;
            let data_at = r.at;
            let data = r.bytes("snapshot chunk", CHUNK_BYTES_MAX)?.to_vec();
            if total_bytes > SNAPSHOT_BYTES_MAX {
                return Err(DecodeError {
                    offset: data_at,
                    reason: format!(
                        "snapshot of {total_bytes} bytes is over the limit of {SNAPSHOT_BYTES_MAX}"
                    ),
                });
            }
            let end = offset_bytes.checked_add(data.len() as u64);
            if end.is_none_or(|end| end > total_bytes) || (done && end != Some(total_bytes)) {
                return Err(DecodeError {
                    offset: data_at,
                    reason: format!(
                        "chunk of {} bytes at offset {offset_bytes} does not fit a snapshot of \
                         {total_bytes} bytes (done: {done})",
                        data.len()
                    ),
                });
            }
            Body::SnapshotChunk(SnapshotChunk {
                leader_term,
                index,
                term,
                offset_bytes,
                total_bytes,
                done,
                data,
            })
        }
        kind::APPLY => Body::Apply(ApplyRequest {
            token: r.string("token", TOKEN_BYTES_MAX)?,
            reply_to: r.string("reply address", ADDRESS_BYTES_MAX)?,
            command: r.bytes("command", COMMAND_BYTES_MAX)?.to_vec(),
        }),
        kind::APPLIED => Body::Applied {
            index: r.u64("index")?,
            result: r.bytes("result", COMMAND_BYTES_MAX)?.to_vec(),
        },
        kind::ERROR => {
            let code = match r.u8("error code")? {
                1 => ErrorCode::NotLeader,
                2 => ErrorCode::Overloaded,
                3 => ErrorCode::Rejected,
                4 => ErrorCode::Unknown,
                other => {
                    r.at -= 1;
                    return Err(r.err(format!("unknown error code {other}")));
                }
            };
            Body::Error(ErrorReply {
                code,
                leader: r.option_leader()?,
                message: r.string("error message", ERROR_MESSAGE_BYTES_MAX)?,
            })
        }
        kind::READ => {
            let token = r.string("token", TOKEN_BYTES_MAX)?;
            let reply_to = r.string("reply address", ADDRESS_BYTES_MAX)?;
            let consistency = match r.u8("consistency")? {
                0 => Consistency::Stale,
                1 => Consistency::Default,
                2 => Consistency::Consistent,
                other => {
                    r.at -= 1;
                    return Err(r.err(format!("unknown consistency mode {other}")));
                }
            };
            Body::Read(ReadRequest {
                token,
                reply_to,
                consistency,
                query: r.bytes("query", COMMAND_BYTES_MAX)?.to_vec(),
            })
        }
        kind::READ_RESULT => Body::ReadResult {
            index: r.u64("index")?,
            result: r.bytes("result", COMMAND_BYTES_MAX)?.to_vec(),
        },
        kind::RELAY => Body::Relay(RelayRequest {
            token: r.string("token", TOKEN_BYTES_MAX)?,
            reply_to: r.string("reply address", ADDRESS_BYTES_MAX)?,
            call: r.bytes("call", COMMAND_BYTES_MAX)?.to_vec(),
        }),
        kind::RELAY_REPLY => Body::RelayReply {
            result: r.bytes("result", COMMAND_BYTES_MAX)?.to_vec(),
        },
        kind::STATUS => Body::Status {
            reply_to: r.string("reply address", ADDRESS_BYTES_MAX)?,
        },
        kind::OPERATOR => {
            let token = r.string("token", TOKEN_BYTES_MAX)?;
            let reply_to = r.string("reply address", ADDRESS_BYTES_MAX)?;
            let action = r.u8("operator action")?;
            let has_target = r.u8("target present")?;
            let id = ServerId(r.u64("target id")?);
            let target = match has_target {
                0 => None,
                1 => Some(id),
                other => {
                    r.at -= 9;
                    return Err(r.err(format!("target present must be 0 or 1, not {other}")));
                }
            };
            let action = match (action, target) {
                (1, target) => OperatorAction::TransferLeader(target),
                (2, Some(id)) => OperatorAction::RemovePeer(id),
                (2, None) => return Err(r.err("remove-peer names no server".to_string())),
                (3, _) => OperatorAction::AutopilotState,
                (other, _) => {
                    r.at -= 10;
                    return Err(r.err(format!("unknown operator action {other}")));
                }
            };
            Body::Operator(OperatorRequest {
                token,
                reply_to,
                action,
            })
        }
        kind::STATUS_REPLY => {
            let id = ServerId(r.u64("server id")?);
            let role = match r.u8("role")? {
                0 => WireRole::Follower,
                1 => WireRole::PreCandidate,
                2 => WireRole::Candidate,
                3 => WireRole::Leader,
                other => {
                    r.at -= 1;
                    return Err(r.err(format!("unknown role {other}")));
                }
            };
            Body::StatusReply(StatusReply {
                id,
                role,
                term: r.u64("term")?,
                leader: r.option_leader()?,
                commit_index: r.u64("commit index")?,
                applied_index: r.u64("applied index")?,
                last_index: r.u64("last index")?,
                snapshot_index: r.u64("snapshot index")?,
            })
        }
        other => {
            return Err(DecodeError {
                offset: 1,
                reason: format!("unknown frame kind {other}"),
            })
        }
    };
    if r.at != bytes.len() {
        return Err(r.err(format!(
            "{} trailing bytes after the body",
            bytes.len() - r.at
        )));
    }
    Ok(Frame {
        header: Header {
            datacenter,
            sender,
            request_id,
        },
        body,
    })
}

fn decode_message(kind: u8, r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    Ok(match kind {
        kind::VOTE_REQUEST => Message::VoteRequest {
            term: r.u64("term")?,
            last_index: r.u64("last index")?,
            last_term: r.u64("last term")?,
            pre_vote: r.flag("pre-vote")?,
            transfer: r.flag("transfer")?,
        },
        kind::VOTE_RESPONSE => Message::VoteResponse {
            term: r.u64("term")?,
            granted: r.flag("granted")?,
            pre_vote: r.flag("pre-vote")?,
        },
        kind::APPEND => {
            let term = r.u64("term")?;
            let prev_index = r.u64("previous index")?;
            let prev_term = r.u64("previous term")?;
            let commit = r.u64("commit")?;
            let round = r.u64("round")?;
            let count = r.u32("entry count")? as usize;
            if count > APPEND_ENTRIES_MAX {
                r.at -= 4;
                return Err(r.err(format!(
                    "append of {count} entries is over the limit of {APPEND_ENTRIES_MAX}"
                )));
            }
            // Each entry takes at least 21 bytes: do not trust `count` for the allocation.
            let mut entries = Vec::with_capacity(count.min((r.bytes.len() - r.at) / 21));
            for k in 0..count {
                let at = r.at;
                let index = r.u64("entry index")?;
                let expected = prev_index.checked_add(k as u64 + 1);
                if Some(index) != expected {
                    return Err(DecodeError {
                        offset: at,
                        reason: format!(
                            "entry {k} has index {index}; entries must follow the previous index \
                             {prev_index} one by one"
                        ),
                    });
                }
                let term = r.u64("entry term")?;
                let payload_at = r.at;
                let payload = decode_payload(r.bytes("entry payload", ENTRY_BYTES_MAX)?).map_err(
                    |reason| DecodeError {
                        offset: payload_at,
                        reason: format!("entry {index}: {reason}"),
                    },
                )?;
                entries.push(Entry {
                    index,
                    term,
                    payload,
                });
            }
            Message::Append {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
                round,
            }
        }
        kind::APPEND_RESPONSE => {
            let term = r.u64("term")?;
            let success = r.flag("success")?;
            let match_index = r.u64("match index")?;
            let conflict = if r.flag("conflict present")? {
                Some(ConflictHint {
                    index: r.u64("conflict index")?,
                    term: r.u64("conflict term")?,
                })
            } else {
                None
            };
            Message::AppendResponse {
                term,
                success,
                match_index,
                conflict,
                round: r.u64("round")?,
            }
        }
        kind::INSTALL_SNAPSHOT => {
            let term = r.u64("term")?;
            let index = r.u64("snapshot index")?;
            let last_term = r.u64("snapshot term")?;
            let config_at = r.at;
            let configuration = decode_config(r.bytes("configuration", CONFIG_BYTES_MAX)?)
                .map_err(|reason| DecodeError {
                    offset: config_at,
                    reason: format!("configuration: {reason}"),
                })?;
            Message::InstallSnapshot {
                term,
                index,
                last_term,
                configuration,
            }
        }
        kind::SNAPSHOT_RESPONSE => Message::SnapshotResponse {
            term: r.u64("term")?,
            index: r.u64("snapshot index")?,
            success: r.flag("success")?,
        },
        _ => Message::TimeoutNow {
            term: r.u64("term")?,
        },
    })
}

fn decode_config(bytes: &[u8]) -> Result<Configuration, String> {
    decode_configuration(bytes)
}
