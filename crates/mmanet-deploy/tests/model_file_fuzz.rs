//! Loading a model file never panics and never sizes memory by the header's claim:
//! `fuzz_model_file_bytes` sets bytes of a valid file (and truncates or extends it) and reads
//! it; `fuzz_model_file_metadata` replaces values inside its metadata's JSON and runs the
//! whole load (read, build and load the network, a warm-up forward pass). Each gives a model
//! or a typed error. Cases: `MMANET_FUZZ_CASES` (default 128), seed `MMANET_FUZZ_SEED`;
//! `cargo xtask fuzz --target model_file_metadata` runs one longer.
#![allow(clippy::print_stderr)]

use std::path::Path;

use mmanet_deploy::format::{from_bytes, to_bytes};
use mmanet_deploy::{DeployError, Predictor, example};
use proptest::prelude::*;
use serde_json::{Value, json};

#[path = "../../mmanet-train/tests/common/fuzz_harness.rs"]
mod fuzz_harness;

#[test]
fn fuzz_model_file_bytes() {
    let file = example::tiny_model(0).unwrap();
    let good = to_bytes(&file.metadata, &file.tensors).unwrap();
    let n = good.len();
    // Edits: (position, new byte) pairs, biased to the 8-byte length and the JSON header.
    let edits =
        prop::collection::vec((prop_oneof![0usize..8, 8usize..2048, 0..n], any::<u8>()), 1..6);
    // Mostly the file's own length (edits alone), else truncated or extended.
    let len = prop_oneof![3 => Just(n), 1 => 0usize..n + 64];
    // How far the cases got: a model, an error of the header's JSON or layout, an error of the
    // metadata's content, libtorch refusing a tensor.
    let reached = std::cell::RefCell::new(std::collections::BTreeMap::<&str, u32>::new());
    let count = |what| *reached.borrow_mut().entry(what).or_default() += 1;
    fuzz_harness::fuzz("model_file_bytes", 128, (edits, len), |(edits, len)| {
        let mut b = good.clone();
        for (i, v) in edits {
            if let Some(x) = b.get_mut(i % n) {
                *x = v;
            }
        }
        b.resize(len, 0);
        match from_bytes(&b, Path::new("fuzzed.safetensors")) {
            Ok(f) => {
                count("model");
                prop_assert!(!f.tensors.is_empty())
            }
            Err(e @ (DeployError::Format { .. } | DeployError::Version { .. })) => {
                let text = e.to_string();
                count(if text.contains("not a safetensors file") { "layout" } else { "metadata" });
                prop_assert!(text.contains("fuzzed.safetensors"), "{e}")
            }
            // libtorch refusing a tensor of a mutated dtype or shape.
            Err(DeployError::Tch(_)) => count("libtorch"),
            Err(other) => prop_assert!(false, "unexpected error kind: {other}"),
        }
        Ok(())
    });
    // The edits must reach past the header's syntax, or the fuzz tests only the JSON parser.
    let reached = reached.into_inner();
    eprintln!("model_file_bytes reached: {reached:?}");
    for what in ["model", "layout", "metadata"] {
        assert!(
            reached.get(what).copied().unwrap_or(0) > 0,
            "no case gave a {what} outcome: {reached:?}"
        );
    }
}

/// Every leaf of `v` (numbers, strings, booleans, nulls) as a JSON pointer.
fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                leaves(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, x) in map {
                leaves(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        _ => out.push(at),
    }
}

/// A replacement for a leaf: a near value of a number, an extreme one, or another kind.
fn replacement(old: &Value, pick: u8, text: &str) -> Value {
    // Integers stay integers (serde refuses `7.0` for an integer field).
    let near = |f: fn(i64) -> i64, g: fn(f64) -> f64| match (old.as_i64(), old.as_f64()) {
        (Some(i), _) => json!(f(i)),
        (None, Some(x)) => json!(g(x)),
        (None, None) => json!(f(1)),
    };
    match pick % 12 {
        0 => near(|i| i.saturating_add(1), |x| x + 1.0),
        1 => near(|i| i.saturating_sub(1), |x| x - 1.0),
        2 => near(|i| i.saturating_mul(2), |x| x * 2.0),
        3 => json!(0),
        4 => json!(-1),
        5 => json!(1u64 << 40),
        6 => json!(u64::MAX),
        7 => json!(i64::MIN),
        8 => json!(0.5),
        9 => json!(text),
        10 => Value::Null,
        _ => json!([]),
    }
}

/// The model file with `__metadata__[key]` replaced by `value` (a string), tensors unchanged.
fn with_metadata(good: &[u8], key: &str, value: String) -> Vec<u8> {
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&good[8..8 + n]).unwrap();
    header["__metadata__"][key] = Value::String(value);
    let text = serde_json::to_vec(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&good[8 + n..]);
    out
}

/// A metadata value of a valid file mutated where it is still JSON (a number, a string, a
/// kind replaced at one or two places) and the whole load run: `from_bytes`, the network
/// built and loaded (`Predictor::new`), a warm-up forward pass. Each ends in a value or a
/// typed error, never a panic, and no size of the header allocates beyond its weights.
#[test]
fn fuzz_model_file_metadata() {
    let file = example::tiny_model(0).unwrap();
    let good = to_bytes(&file.metadata, &file.tensors).unwrap();
    let map = file.metadata.to_map();
    let keys: Vec<String> = map.keys().cloned().collect();
    let edit = (any::<prop::sample::Index>(), any::<u8>(), "[a-z0-9_.]{0,8}");
    let strategy = (any::<prop::sample::Index>(), prop::collection::vec(edit, 1..3));
    let reached = std::cell::RefCell::new(std::collections::BTreeMap::<&str, u32>::new());
    let count = |what| *reached.borrow_mut().entry(what).or_default() += 1;
    fuzz_harness::fuzz("model_file_metadata", 128, strategy, |(key, edits)| {
        let key = &keys[key.index(keys.len())];
        let original = &map[key];
        let value = match serde_json::from_str::<Value>(original) {
            Ok(mut v) => {
                for (at, pick, text) in &edits {
                    let mut paths = Vec::new();
                    leaves(&v, String::new(), &mut paths);
                    if paths.is_empty() {
                        break; // an earlier edit left an empty array
                    }
                    let path = &paths[at.index(paths.len())];
                    let new = replacement(v.pointer(path).unwrap(), *pick, text);
                    *v.pointer_mut(path).unwrap() = new;
                }
                v.to_string()
            }
            // `network`, `format_version`: plain strings.
            Err(_) => edits[0].2.clone(),
        };
        let bytes = with_metadata(&good, key, value);
        let outcome = from_bytes(&bytes, Path::new("fuzzed.safetensors"))
            .and_then(|f| Predictor::new(f, tch::Device::Cpu))
            .and_then(|p| p.warm_up().map(|()| p));
        match outcome {
            Ok(_) => count("served"),
            Err(e) => {
                count("refused");
                prop_assert!(!e.to_string().is_empty());
            }
        }
        Ok(())
    });
    let reached = reached.into_inner();
    eprintln!("model_file_metadata reached: {reached:?}");
    assert!(reached.contains_key("served") && reached.contains_key("refused"), "{reached:?}");
}
