//! Reading a model file never panics and never sizes memory by the header's claim: a valid
//! file with bytes flipped, truncated or extended gives a model or a typed error naming the
//! file. Cases: `MMANET_FUZZ_CASES` (default 128), seed `MMANET_FUZZ_SEED`.

use std::path::Path;

use mmanet_deploy::format::{from_bytes, to_bytes};
use mmanet_deploy::{DeployError, example};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[test]
fn fuzz_model_file_bytes() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<u64>().ok());
    let cases = env("MMANET_FUZZ_CASES").unwrap_or(128) as u32;
    let seed = env("MMANET_FUZZ_SEED").unwrap_or(20_261_202);
    let mut key = [7u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let file = example::tiny_model(0).unwrap();
    let good = to_bytes(&file.metadata, &file.tensors).unwrap();
    let n = good.len();
    // Edits: (position, new byte) pairs, biased to the 8-byte length and the JSON header.
    let edits =
        prop::collection::vec((prop_oneof![0usize..8, 8usize..2048, 0..n], any::<u8>()), 1..6);
    runner
        .run(&(edits, 0usize..n + 64), |(edits, len)| {
            let mut b = good.clone();
            for (i, v) in edits {
                if let Some(x) = b.get_mut(i % n) {
                    *x = v;
                }
            }
            b.resize(len, 0);
            match from_bytes(&b, Path::new("fuzzed.safetensors")) {
                Ok(f) => prop_assert!(!f.tensors.is_empty()),
                Err(e @ (DeployError::Format { .. } | DeployError::Version { .. })) => {
                    prop_assert!(e.to_string().contains("fuzzed.safetensors"), "{e}")
                }
                // libtorch refusing a tensor of a mutated dtype or shape.
                Err(DeployError::Tch(_)) => {}
                Err(other) => prop_assert!(false, "unexpected error kind: {other}"),
            }
            Ok(())
        })
        .unwrap();
}
