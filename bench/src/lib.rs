//! cairn-bench: helpers shared by the criterion benches in `benches/` (scratch directories, latency summaries).
//! Run the benches with `cargo bench -p cairn-bench --bench <name>`; see bench/README.md for the figures.

use std::path::PathBuf;
use std::time::Duration;

/// True when the bench binary runs under `cargo bench` (cargo passes `--bench`); false under `cargo test`,
/// where benches run a token number of iterations only.
pub fn is_bench_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A scratch directory under `base` (on the same file system as the target dir), emptied first and removed on drop.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    /// Creates `base/<tag>-<pid>`.
    pub fn new(base: &str, tag: &str) -> std::io::Result<ScratchDir> {
        let path = PathBuf::from(base).join(format!("{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Latency percentiles of a sample.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The mean.
    pub mean: Duration,
}

/// Percentiles of `samples` (sorted in place); all zero for an empty sample.
pub fn latency(samples: &mut [Duration]) -> Latency {
    if samples.is_empty() {
        return Latency {
            p50: Duration::ZERO,
            p99: Duration::ZERO,
            mean: Duration::ZERO,
        };
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let total: Duration = samples.iter().sum();
    Latency {
        p50: at(0.5),
        p99: at(0.99),
        mean: total / samples.len() as u32,
    }
}

/// Microseconds with one decimal, for tables.
pub fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}
