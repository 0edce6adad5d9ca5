//! Helpers shared by the integration tests: JSON arrays to tensors and tolerance checks.

#![allow(dead_code)]

use serde_json::Value;
use tch::{Kind, Tensor};

/// A tensor from a nested JSON array of numbers (shape from the nesting), in `kind`.
pub(crate) fn tensor(v: &Value, kind: Kind) -> Tensor {
    let mut shape = Vec::new();
    let mut cur = v;
    while let Value::Array(a) = cur {
        shape.push(a.len() as i64);
        match a.first() {
            Some(x) => cur = x,
            None => break,
        }
    }
    let mut flat = Vec::new();
    flatten(v, &mut flat);
    Tensor::from_slice(&flat).view(shape.as_slice()).to_kind(kind)
}

fn flatten(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        Value::Number(n) => out.push(n.as_f64().expect("number")),
        other => panic!("not a number: {other}"),
    }
}

/// The values of `t` as f64.
pub(crate) fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double).flatten(0, -1)).expect("to vec")
}

/// Asserts `|a − e| ≤ atol + rtol·|e|` elementwise, naming `what` on failure.
pub(crate) fn assert_close(actual: &[f64], expected: &[f64], rtol: f64, atol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= atol + rtol * e.abs(),
            "{what}[{i}]: got {a:e}, expected {e:e} (rtol {rtol}, atol {atol})"
        );
    }
}

/// The f64 values of a JSON number or array.
pub(crate) fn json_values(v: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    flatten(v, &mut out);
    out
}
