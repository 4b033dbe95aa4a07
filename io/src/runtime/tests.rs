//! Unit tests of the executor topology: planning, memlock sizing, start and stop.
use super::*;

const MIB: u64 = 1 << 20;

fn host(cpus: &[usize], parallelism: usize, memlock_limit_bytes: Option<u64>) -> HostResources {
    HostResources {
        cpus_allowed: cpus.to_vec(),
        parallelism,
        memlock_limit_bytes,
    }
}

fn cpus(topology: &Topology) -> Vec<Option<usize>> {
    topology.executors().iter().map(|e| e.cpu).collect()
}

#[test]
fn two_cpus_raft_shares_cpu_0_with_shard_0() {
    let t = Topology::plan_for(
        &TopologyOptions::default(),
        &host(&[0, 1], 2, Some(8 * MIB)),
    )
    .expect("plan");
    assert_eq!(t.shard_count(), 2);
    assert_eq!(cpus(&t), vec![Some(0), Some(0), Some(1)]);
    assert!(t.raft_shares_cpu());
    let names: Vec<&str> = t.executors().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["cairn-raft", "cairn-shard-0", "cairn-shard-1"]);
    assert_eq!(
        t.placement_summary(),
        "raft on cpu 0 (shared with shard 0); shards on cpus 0, 1"
    );
}

#[test]
fn eight_mib_limit_fits_three_executors_below_glommio_default() {
    let t = Topology::plan_for(
        &TopologyOptions::default(),
        &host(&[0, 1], 2, Some(8 * MIB)),
    )
    .expect("plan");
    // 75% of 8 MiB over 3 executors x 3 rings, rounded down to 4 KiB.
    assert_eq!(t.io_memory_bytes(), 680 << 10);
    assert!(t.memlock_registered_bytes() <= 8 * MIB * MEMLOCK_BUDGET_PERCENT / 100);
    assert!(t.io_memory_bytes() < IO_MEMORY_BYTES_DEFAULT_MAX);
}

#[test]
fn unlimited_memlock_uses_the_maximum() {
    let t = Topology::plan_for(&TopologyOptions::default(), &host(&[0], 1, None)).expect("plan");
    assert_eq!(t.io_memory_bytes(), IO_MEMORY_BYTES_DEFAULT_MAX);
    assert_eq!(cpus(&t), vec![Some(0), Some(0)]);
}

#[test]
fn many_cpus_give_raft_a_dedicated_cpu() {
    let all: Vec<usize> = (0..16).collect();
    let t = Topology::plan_for(&TopologyOptions::default(), &host(&all, 16, None)).expect("plan");
    assert_eq!(t.shard_count(), 15);
    assert_eq!(t.raft().cpu, Some(15));
    assert!(!t.raft_shares_cpu());
}

#[test]
fn placement_follows_the_affinity_mask_and_quota() {
    // Allowed CPUs 4, 6, 9 but a cgroup quota of 2: only 4 and 6 are used.
    let t =
        Topology::plan_for(&TopologyOptions::default(), &host(&[4, 6, 9], 2, None)).expect("plan");
    assert_eq!(cpus(&t), vec![Some(4), Some(4), Some(6)]);
}

#[test]
fn explicit_shard_count_wraps_or_frees_a_cpu_for_raft() {
    let options = TopologyOptions {
        shard_count: Some(3),
        ..TopologyOptions::default()
    };
    let t = Topology::plan_for(&options, &host(&[0, 1], 2, None)).expect("plan");
    assert_eq!(cpus(&t), vec![Some(0), Some(0), Some(1), Some(0)]);
    let options = TopologyOptions {
        shard_count: Some(1),
        ..TopologyOptions::default()
    };
    let t = Topology::plan_for(&options, &host(&[0, 1], 2, None)).expect("plan");
    assert_eq!(cpus(&t), vec![Some(1), Some(0)]);
    assert_eq!(
        t.placement_summary(),
        "raft on cpu 1 (dedicated); shards on cpus 0"
    );
}

#[test]
fn unbound_placement_pins_nothing() {
    let options = TopologyOptions {
        placement: Placement::Unbound,
        ..TopologyOptions::default()
    };
    let t = Topology::plan_for(&options, &host(&[0, 1], 2, None)).expect("plan");
    assert_eq!(cpus(&t), vec![None, None, None]);
}

#[test]
fn low_memlock_fails_with_an_actionable_message() {
    let error = Topology::plan_for(&TopologyOptions::default(), &host(&[0, 1], 2, Some(65536)))
        .expect_err("64 KiB cannot fit three executors");
    let message = error.to_string();
    assert!(matches!(
        error,
        RuntimeError::MemlockTooLow {
            limit_bytes: 65536,
            required_bytes: 3_145_728,
            executor_count: 3,
            ..
        }
    ));
    for needle in [
        "RLIMIT_MEMLOCK is 64 KiB",
        "ulimit -l 3072",
        "LimitMEMLOCK=3M",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from {message}"
        );
    }
}

#[test]
fn the_floor_is_exactly_enough() {
    let limit = memlock_required_bytes(IO_MEMORY_BYTES_FLOOR, 3);
    let t = Topology::plan_for(&TopologyOptions::default(), &host(&[0, 1], 2, Some(limit)))
        .expect("plan at the floor");
    assert_eq!(t.io_memory_bytes(), IO_MEMORY_BYTES_FLOOR);
    assert!(Topology::plan_for(
        &TopologyOptions::default(),
        &host(&[0, 1], 2, Some(limit - 1))
    )
    .is_err());
}

#[test]
fn invalid_options_are_errors() {
    for options in [
        TopologyOptions {
            shard_count: Some(0),
            ..TopologyOptions::default()
        },
        TopologyOptions {
            shard_count: Some(SHARD_COUNT_MAX + 1),
            ..TopologyOptions::default()
        },
        TopologyOptions {
            io_memory_bytes_min: 2 << 20,
            io_memory_bytes_max: 1 << 20,
            ..TopologyOptions::default()
        },
    ] {
        assert!(matches!(
            Topology::plan_for(&options, &host(&[0], 1, None)),
            Err(RuntimeError::InvalidOptions(_))
        ));
    }
}

#[test]
fn format_bytes_picks_a_readable_unit() {
    assert_eq!(format_bytes(512), "512 B");
    assert_eq!(format_bytes(680 << 10), "680 KiB");
    assert_eq!(format_bytes(8 << 20), "8 MiB");
    assert_eq!(format_bytes(3 << 19), "1.5 MiB");
}

#[test]
fn start_and_shutdown_unbound_executors() {
    let options = TopologyOptions {
        shard_count: Some(2),
        placement: Placement::Unbound,
        io_memory_bytes_max: 256 << 10,
        ..TopologyOptions::default()
    };
    let topology = Topology::plan(&options).expect("plan");
    let running = topology
        .start(|ctx| async move {
            ctx.shutdown.wait().await;
            Ok(())
        })
        .expect("start");
    assert_eq!(running.running_names().len(), 3);
    running.shutdown(5_000).expect("clean shutdown");
}

#[test]
fn a_failing_executor_is_reported_by_name() {
    let options = TopologyOptions {
        shard_count: Some(1),
        placement: Placement::Unbound,
        io_memory_bytes_max: 256 << 10,
        ..TopologyOptions::default()
    };
    let topology = Topology::plan(&options).expect("plan");
    // A second Shutdown serves as a "go" signal so the failure comes after startup.
    let go = Shutdown::new();
    let go_executors = go.clone();
    let mut running = topology
        .start(move |ctx| {
            let go = go_executors.clone();
            async move {
                if ctx.plan.role == ExecutorRole::Shard(0) {
                    go.wait().await;
                    return Err("boom".into());
                }
                ctx.shutdown.wait().await;
                Ok(())
            }
        })
        .expect("start");
    go.trigger();
    match running.next_event().expect("event") {
        RuntimeEvent::ExecutorExited { name, result } => {
            assert_eq!(name, "cairn-shard-0");
            let message = result.expect_err("failure").to_string();
            assert_eq!(message, "executor cairn-shard-0 failed: boom");
        }
        other => panic!("unexpected event {other:?}"),
    }
    running
        .shutdown(5_000)
        .expect("the raft executor stops cleanly");
}
