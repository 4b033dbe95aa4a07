//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// The seeded PRNG of the pure cores (SplitMix64) with the helpers tests want, so every run replays from its seed.
pub struct Rng(cairn::raft::rng::Rng);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(cairn::raft::rng::Rng::new(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// The seeds a seeded test runs: `<NAME>_SEED=n` replays one, `<NAME>_SEEDS=n` runs 0..n, else `0..default`.
pub fn seeds(name: &str, default: u64) -> Vec<u64> {
    if let Ok(one) = std::env::var(format!("{name}_SEED")) {
        return vec![one.parse().expect("seed must be a number")];
    }
    let count = std::env::var(format!("{name}_SEEDS"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    (0..count).collect()
}
