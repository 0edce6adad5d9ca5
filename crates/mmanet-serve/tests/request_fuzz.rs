//! The request parser never panics: arbitrary bytes, and mutations of valid requests (values
//! replaced by any JSON, fields renamed, nesting changed), each give instances or an
//! [`ApiError`] naming a part of the request. Cases: `MMANET_FUZZ_CASES` (default 256), seed
//! `MMANET_FUZZ_SEED` (fixed by default, so a failure replays).

use mmanet_serve::request::parse_request;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

#[path = "../../mmanet-train/tests/common/fuzz_harness.rs"]
mod fuzz_harness;
use fuzz_harness::fuzz;

/// Cases per target in CI.
const CI_CASES: u32 = 256;

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
        any::<i64>().prop_map(|x| json!(x)),
        "[a-z0-9+/=%]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The answer is instances or an error whose field is non-empty.
fn check(body: &[u8]) -> Result<(), TestCaseError> {
    match parse_request(body) {
        Ok(instances) => prop_assert!(!instances.is_empty()),
        Err(e) => prop_assert!(!e.field.is_empty() && !e.message.is_empty(), "{e:?}"),
    }
    Ok(())
}

#[test]
fn fuzz_request_bytes() {
    fuzz("request_bytes", CI_CASES, prop::collection::vec(any::<u8>(), 0..256), |b| check(&b));
}

#[test]
fn fuzz_request_mutated() {
    let strategy = (any_json(), any_json(), "[a-z_]{1,8}", 0usize..4);
    fuzz("request_mutated", CI_CASES, strategy, |(a, b, key, shape)| {
        let body = match shape {
            0 => json!({"inputs": {key: a}}),
            1 => json!({"instances": [{"inputs": {"audio": a}}, b]}),
            2 => json!({"inputs": {"camera": {"base64": a}}, key: b}),
            _ => json!({"instances": a}),
        };
        check(body.to_string().as_bytes())
    });
}
