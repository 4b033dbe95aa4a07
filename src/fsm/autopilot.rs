//! The autopilot configuration (Consul's `structs.AutopilotConfig`): one replicated record the leader's
//! autopilot reads every round. The leader writes it from the agent's `autopilot { ... }` config block when
//! the state has none (only if none: a check-and-set at 0), and `PUT /v1/operator/autopilot/configuration`
//! replaces it whole, optionally with a check-and-set on its `ModifyIndex`.
//!
//! Durations are whole milliseconds (Consul keeps nanoseconds; the API prints Go durations either way).

use super::{Index, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Consul's default `last_contact_threshold`.
pub const LAST_CONTACT_THRESHOLD_MS_DEFAULT: u64 = 200;
/// Consul's default `max_trailing_logs`.
pub const MAX_TRAILING_LOGS_DEFAULT: u64 = 250;
/// Consul's default `server_stabilization_time`.
pub const SERVER_STABILIZATION_TIME_MS_DEFAULT: u64 = 10_000;

/// The autopilot configuration, with the indexes of its creation and last change.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct AutopilotConfig {
    /// Remove servers gossip reports failed or left (`CleanupDeadServers`).
    pub cleanup_dead_servers: bool,
    /// A server whose last contact with the leader is older than this is unhealthy (`LastContactThreshold`).
    pub last_contact_threshold_ms: u64,
    /// A server more than this many entries behind the leader is unhealthy (`MaxTrailingLogs`).
    pub max_trailing_logs: u64,
    /// Dead-server cleanup never leaves fewer voters than this (`MinQuorum`; 0: no floor).
    pub min_quorum: u64,
    /// A new server must stay healthy this long before it becomes a voter (`ServerStabilizationTime`).
    pub server_stabilization_time_ms: u64,
    /// Enterprise: the node-meta tag naming a server's redundancy zone (kept and shown, unused).
    pub redundancy_zone_tag: String,
    /// Enterprise: turns off upgrade migrations (kept and shown, unused).
    pub disable_upgrade_migration: bool,
    /// Enterprise: the node-meta tag overriding a server's version (kept and shown, unused).
    pub upgrade_version_tag: String,
    /// The index that first stored a configuration.
    pub create_index: Index,
    /// The index of the last change.
    pub modify_index: Index,
}

impl Default for AutopilotConfig {
    fn default() -> AutopilotConfig {
        AutopilotConfig {
            cleanup_dead_servers: true,
            last_contact_threshold_ms: LAST_CONTACT_THRESHOLD_MS_DEFAULT,
            max_trailing_logs: MAX_TRAILING_LOGS_DEFAULT,
            min_quorum: 0,
            server_stabilization_time_ms: SERVER_STABILIZATION_TIME_MS_DEFAULT,
            redundancy_zone_tag: String::new(),
            disable_upgrade_migration: false,
            upgrade_version_tag: String::new(),
            create_index: 0,
            modify_index: 0,
        }
    }
}

impl State {
    /// The autopilot configuration, once the leader (or an operator) stored one.
    pub fn autopilot_config(&self) -> Option<&AutopilotConfig> {
        self.autopilot.as_deref()
    }

    /// Consul's `AutopilotCASConfig`/`AutopilotSetConfig` at `index`: with `cas`, only when the stored
    /// configuration's `ModifyIndex` equals it (0: only when none is stored). `false` when the check failed.
    pub(super) fn set_autopilot(
        &mut self,
        index: Index,
        config: &AutopilotConfig,
        cas: Option<Index>,
    ) -> bool {
        let stored = self.autopilot.as_deref();
        if let Some(want) = cas {
            if stored.map_or(0, |c| c.modify_index) != want {
                return false;
            }
        }
        let mut next = config.clone();
        next.create_index = stored.map_or(index, |c| c.create_index);
        next.modify_index = index;
        self.autopilot = Some(Arc::new(next));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::codec::{decode_command, encode_command};
    use crate::fsm::{Command, Fsm, Outcome};

    fn set(config: AutopilotConfig, cas: Option<Index>) -> Command {
        Command::AutopilotSet { config, cas }
    }

    #[test]
    fn set_and_check_and_set_follow_consuls_rules() {
        let mut fsm = Fsm::new();
        assert!(fsm.state().autopilot_config().is_none());
        let wrong_first = set(AutopilotConfig::default(), Some(3));
        assert_eq!(fsm.apply(2, &wrong_first), Outcome::Bool(false));
        assert!(fsm.state().autopilot_config().is_none());
        assert_eq!(
            fsm.apply(3, &set(AutopilotConfig::default(), Some(0))),
            Outcome::Bool(true)
        );
        let stored = fsm.state().autopilot_config().cloned().unwrap();
        assert_eq!((stored.create_index, stored.modify_index), (3, 3));
        assert_eq!(stored.max_trailing_logs, 250);
        let changed = AutopilotConfig {
            max_trailing_logs: 10,
            ..AutopilotConfig::default()
        };
        assert_eq!(
            fsm.apply(4, &set(changed.clone(), Some(0))),
            Outcome::Bool(false)
        );
        assert_eq!(
            fsm.apply(5, &set(changed.clone(), Some(3))),
            Outcome::Bool(true)
        );
        assert_eq!(
            fsm.apply(6, &set(changed.clone(), Some(3))),
            Outcome::Bool(false)
        );
        assert_eq!(fsm.apply(7, &set(changed, None)), Outcome::Bool(true));
        let stored = fsm.state().autopilot_config().cloned().unwrap();
        assert_eq!((stored.create_index, stored.modify_index), (3, 7));
        assert_eq!(stored.max_trailing_logs, 10);
        assert_eq!(fsm.state().highest_index(), 7);
    }

    #[test]
    fn the_command_and_the_configuration_survive_the_codec_and_a_snapshot() {
        let command = set(
            AutopilotConfig {
                cleanup_dead_servers: false,
                min_quorum: 3,
                redundancy_zone_tag: "zone".to_string(),
                ..AutopilotConfig::default()
            },
            Some(9),
        );
        assert_eq!(decode_command(&encode_command(&command)).unwrap(), command);
        let mut fsm = Fsm::new();
        fsm.apply(4, &set(AutopilotConfig::default(), None));
        let restored = Fsm::restore(&fsm.snapshot()).unwrap();
        assert_eq!(
            restored.state().autopilot_config(),
            fsm.state().autopilot_config()
        );
        assert_eq!(restored.state().autopilot_config().unwrap().create_index, 4);
        let empty = Fsm::restore(&Fsm::new().snapshot()).unwrap();
        assert!(empty.state().autopilot_config().is_none());
    }
}
