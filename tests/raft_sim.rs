//! The Raft cluster simulator run over many seeds (see `tests/sim/`). CI runs a short seed set; run more by hand:
//! `SIM_SEEDS=2000 cargo test --release --test raft_sim`; replay a failure with `SIM_SEED=<n>`, and print every
//! event's trace line with `SIM_TRACE=1 SIM_SEED=<n> cargo test --test raft_sim -- --nocapture`.

mod sim;

use sim::cluster::{Sim, SimConfig};

fn seeds(default: u64) -> Vec<u64> {
    if let Ok(one) = std::env::var("SIM_SEED") {
        return vec![one.parse().expect("SIM_SEED must be a number")];
    }
    let count = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    (0..count).collect()
}

#[test]
fn raft_is_safe_and_linearizable_under_faults_and_converges_after_healing() {
    let seeds = seeds(300);
    let mut totals = (0u64, 0usize, 0u64, 0u64, 0u64);
    for &seed in &seeds {
        let result = Sim::new(seed, SimConfig::default()).and_then(|mut sim| sim.run());
        match result {
            Ok(r) => {
                totals.0 += r.events;
                totals.1 += r.completed;
                totals.2 += r.crashes;
                totals.3 += r.snapshots_installed;
                totals.4 += r.cas_succeeded;
            }
            Err(e) => panic!("SIM_SEED={seed}: {e}"),
        }
    }
    eprintln!(
        "{} seeds: {} events, {} completed ops ({} successful CAS), {} crashes, {} snapshots installed",
        seeds.len(),
        totals.0,
        totals.1,
        totals.4,
        totals.2,
        totals.3
    );
    assert!(totals.1 > 0, "no client operation completed");
    assert!(totals.4 > 0, "no compare-and-set succeeded");
}

#[test]
fn three_servers_without_faults_commit_and_agree() {
    let cfg = SimConfig {
        servers: 3,
        clients: 3,
        chaos_ms: 5_000,
        faults: false,
        ..SimConfig::default()
    };
    let report = Sim::new(7, cfg)
        .and_then(|mut s| s.run())
        .unwrap_or_else(|e| panic!("SIM_SEED=7: {e}"));
    assert!(
        report.completed > 100,
        "only {} operations completed",
        report.completed
    );
    assert_eq!(report.crashes, 0);
}

#[test]
fn a_seed_replays_exactly() {
    let run = |seed| {
        let r = Sim::new(seed, SimConfig::default())
            .and_then(|mut s| s.run())
            .unwrap_or_else(|e| panic!("SIM_SEED={seed}: {e}"));
        (
            r.events,
            r.ops,
            r.completed,
            r.crashes,
            r.max_term,
            r.commit,
            r.snapshots_installed,
        )
    };
    for seed in [3, 11] {
        assert_eq!(
            run(seed),
            run(seed),
            "SIM_SEED={seed} did not replay identically"
        );
    }
}
