//! The seeded proptest runner every fuzz test binary uses (this crate's `fuzz`, mmanet-serve's
//! `request_fuzz`, mmanet-deploy's `model_file_fuzz`; each includes this file with `#[path]`),
//! so that `MMANET_FUZZ_CASES` and `MMANET_FUZZ_SEED` mean the same everywhere and every target
//! prints the line `cargo xtask fuzz` sums up.

use std::fmt::Debug;
use std::time::Instant;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// The default seed (`MMANET_FUZZ_SEED` replaces it).
pub(crate) const SEED: u64 = 20_261_214;

/// `name`'s value as a number; `None` when unset.
///
/// # Panics
/// If the variable is set but not a number (a typo must not fall back to the default).
pub(crate) fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(v.trim().parse().unwrap_or_else(|_| panic!("{name}={v}: expected a number")))
}

/// Runs `test` on inputs drawn from `strategy` with a generator seeded by the seed and the
/// target's name (adding a target does not change the others' inputs): `MMANET_FUZZ_CASES`
/// cases, else `default_cases`. A panic or a failed property is shrunk and reported. Prints
/// `fuzz TARGET: N cases in T (seed S)` to stderr.
///
/// # Panics
/// With the minimal failing input, when a case fails.
pub(crate) fn fuzz<S>(
    target: &str,
    default_cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases = env_u64("MMANET_FUZZ_CASES").map_or(default_cases, |n| n as u32);
    let seed = env_u64("MMANET_FUZZ_SEED").unwrap_or(SEED);
    let config =
        Config { cases, failure_persistence: None, max_shrink_iters: 4096, ..Config::default() };
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    for (i, b) in target.bytes().enumerate() {
        key[8 + i % 24] ^= b;
    }
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let started = Instant::now();
    let result = runner.run(&strategy, test);
    #[allow(clippy::print_stderr)]
    {
        eprintln!("fuzz {target}: {cases} cases in {:.2?} (seed {seed})", started.elapsed());
    }
    if let Err(e) = result {
        panic!("fuzz {target} (seed {seed}, MMANET_FUZZ_SEED replays it): {e}");
    }
}
