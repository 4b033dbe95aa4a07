//! Raft's vocabulary: server ids, configurations, log entries, the hard state, and the messages servers exchange.

use std::sync::Arc;

/// A log index (1-based; 0 means "before the first entry").
pub type Index = u64;
/// A Raft term.
pub type Term = u64;
/// Shared, immutable bytes: a command's payload is sent to many followers without copies.
pub type Bytes = Arc<[u8]>;

/// A server's identity inside Raft. The agent maps Consul node ids to these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ServerId(pub u64);

/// Whether a server's vote counts (§4.2.1 of the Raft dissertation: non-voting members catch up first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suffrage {
    /// Votes in elections and counts towards commit.
    Voter,
    /// Receives the log but neither votes nor counts.
    Nonvoter,
}

/// One member of a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// The server's id.
    pub id: ServerId,
    /// Voter or non-voter.
    pub suffrage: Suffrage,
    /// Where to reach it (opaque to the core; the transport's address).
    pub address: String,
}

/// The cluster membership, kept sorted by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Configuration {
    /// The members, sorted by id, each id at most once.
    pub servers: Vec<Server>,
}

impl Configuration {
    /// A configuration of the given servers (sorted, duplicates dropped keeping the first).
    pub fn new(mut servers: Vec<Server>) -> Configuration {
        servers.sort_by_key(|s| s.id);
        servers.dedup_by_key(|s| s.id);
        Configuration { servers }
    }

    /// The member with `id`.
    pub fn get(&self, id: ServerId) -> Option<&Server> {
        self.servers.iter().find(|s| s.id == id)
    }

    /// True when `id` is a voter.
    pub fn is_voter(&self, id: ServerId) -> bool {
        self.get(id).is_some_and(|s| s.suffrage == Suffrage::Voter)
    }

    /// The voters' ids, ascending.
    pub fn voters(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.servers
            .iter()
            .filter(|s| s.suffrage == Suffrage::Voter)
            .map(|s| s.id)
    }

    /// How many voters make a majority.
    pub fn quorum(&self) -> usize {
        self.voters().count() / 2 + 1
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Written by a new leader to commit entries of earlier terms (§5.4.2).
    Noop,
    /// A state-machine command (opaque to Raft).
    Command(Bytes),
    /// A membership configuration; it takes effect when appended, not when committed.
    Config(Configuration),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its index.
    pub index: Index,
    /// The term of the leader that created it.
    pub term: Term,
    /// What it carries.
    pub payload: Payload,
}

impl Entry {
    /// Payload bytes, for batching limits.
    pub fn size_bytes(&self) -> u64 {
        match &self.payload {
            Payload::Noop => 0,
            Payload::Command(b) => b.len() as u64,
            Payload::Config(c) => 32 * c.servers.len() as u64,
        }
    }
}

/// What a server must persist before it answers: its term, its vote in that term, and the commit index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The current term.
    pub term: Term,
    /// The candidate voted for in `term`.
    pub vote: Option<ServerId>,
    /// The highest index known committed.
    pub commit: Index,
}

/// Where a follower's log may still match the leader's (fast backtracking, §5.3): the follower's last entry at
/// or below the rejected `prev_index` whose term is at most the leader's `prev_term`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConflictHint {
    /// That entry's index.
    pub index: Index,
    /// That entry's term.
    pub term: Term,
}

/// The messages servers exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// RequestVote (or a pre-vote, which changes no term).
    VoteRequest {
        /// The candidate's term (for a pre-vote, the term it would campaign in).
        term: Term,
        /// The candidate's last log index.
        last_index: Index,
        /// The candidate's last log term.
        last_term: Term,
        /// A pre-vote (§9.6): asks whether a vote would be granted.
        pre_vote: bool,
        /// Sent after TimeoutNow (leader transfer): voters ignore their current leader.
        transfer: bool,
    },
    /// The answer to a [`Message::VoteRequest`].
    VoteResponse {
        /// The voter's term (for a pre-vote, the term asked about when granted).
        term: Term,
        /// Whether the vote is granted.
        granted: bool,
        /// Answers a pre-vote.
        pre_vote: bool,
    },
    /// AppendEntries; with no entries, a heartbeat.
    Append {
        /// The leader's term.
        term: Term,
        /// The index of the entry before `entries`.
        prev_index: Index,
        /// Its term.
        prev_term: Term,
        /// New entries, consecutive from `prev_index + 1`.
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: Index,
        /// The leader's heartbeat round, echoed back; confirms reads and the lease.
        round: u64,
    },
    /// The answer to a [`Message::Append`].
    AppendResponse {
        /// The follower's term.
        term: Term,
        /// Whether the entries were appended.
        success: bool,
        /// On success, the follower's last index matching the leader's log.
        match_index: Index,
        /// On failure, where to retry.
        conflict: Option<ConflictHint>,
        /// The round of the append being answered.
        round: u64,
    },
    /// A complete snapshot is installed on the receiver (the driver moved its bytes in chunks and made them
    /// durable; this message carries what Raft needs to know about it).
    InstallSnapshot {
        /// The leader's term.
        term: Term,
        /// The last index the snapshot covers.
        index: Index,
        /// The term of that entry.
        last_term: Term,
        /// The configuration as of `index`.
        configuration: Configuration,
    },
    /// The answer to [`Message::InstallSnapshot`].
    SnapshotResponse {
        /// The follower's term.
        term: Term,
        /// The snapshot index answered.
        index: Index,
        /// Whether it was installed (or already covered).
        success: bool,
    },
    /// Leader transfer: the receiver starts an election at once (§3.10).
    TimeoutNow {
        /// The leader's term.
        term: Term,
    },
}

impl Message {
    /// The term the message carries.
    pub fn term(&self) -> Term {
        match self {
            Message::VoteRequest { term, .. }
            | Message::VoteResponse { term, .. }
            | Message::Append { term, .. }
            | Message::AppendResponse { term, .. }
            | Message::InstallSnapshot { term, .. }
            | Message::SnapshotResponse { term, .. }
            | Message::TimeoutNow { term } => *term,
        }
    }
}
