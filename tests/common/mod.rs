//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// SplitMix64: a tiny seeded PRNG, so every test run is replayable from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
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
