//! Parsing a prediction request's JSON into raw inputs per instance, with errors that name
//! the part of the request (`instances[2].inputs.depth`). Never panics on any input (a
//! property test feeds it arbitrary JSON and bytes).
//!
//! ```text
//! {"inputs": {"<modality>": VALUE, ...}}                one sample
//! {"instances": [{"inputs": {...}}, ...]}               several
//! VALUE: [numbers] (nested or flat)  |  {"base64": "<file bytes>"}
//! ```

use base64::Engine as _;
use serde_json::Value;

use crate::error::ApiError;

/// One modality's value as the request gave it.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestValue {
    /// Numbers, row-major, with the nesting's shape when nested.
    Values {
        /// The numbers.
        values: Vec<f32>,
        /// The nested array's shape (`None` for a flat array).
        shape: Option<Vec<usize>>,
    },
    /// A file's bytes (image, `.npy`, text of numbers).
    File(Vec<u8>),
}

/// One instance: its name in errors (`instances[3]`, or empty) and its inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// The instance's place in the request, for errors.
    pub prefix: String,
    /// `(modality, value)` in the order given.
    pub inputs: Vec<(String, RequestValue)>,
}

/// At most this many numbers in one value (a request over `--max-body` is refused before
/// parsing; this bounds the nesting walk too).
const MAX_VALUES: usize = 1 << 26;

/// Parses a JSON request body.
pub fn parse_request(body: &[u8]) -> Result<Vec<Instance>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("body", format!("not valid JSON: {e}")))?;
    let Value::Object(top) = v else {
        return Err(ApiError::bad_request(
            "body",
            "expected an object with `inputs` or `instances`",
        ));
    };
    for k in top.keys() {
        if k != "inputs" && k != "instances" {
            return Err(ApiError::bad_request(
                k.clone(),
                "unknown field (expected `inputs` or `instances`)",
            ));
        }
    }
    match (top.get("inputs"), top.get("instances")) {
        (Some(_), Some(_)) => {
            Err(ApiError::bad_request("body", "give `inputs` or `instances`, not both"))
        }
        (Some(inputs), None) => Ok(vec![parse_inputs(inputs, "")?]),
        (None, Some(Value::Array(items))) => {
            if items.is_empty() {
                return Err(ApiError::bad_request("instances", "empty list"));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let prefix = format!("instances[{i}]");
                    match item {
                        Value::Object(o) => {
                            if let Some(k) = o.keys().find(|k| *k != "inputs") {
                                return Err(ApiError::bad_request(
                                    format!("{prefix}.{k}"),
                                    "unknown field (expected `inputs`)",
                                ));
                            }
                            let inputs = o.get("inputs").ok_or_else(|| {
                                ApiError::bad_request(prefix.clone(), "no `inputs`")
                            })?;
                            parse_inputs(inputs, &prefix)
                        }
                        _ => Err(ApiError::bad_request(prefix, "expected an object with `inputs`")),
                    }
                })
                .collect()
        }
        (None, Some(_)) => Err(ApiError::bad_request("instances", "expected a list")),
        (None, None) => Err(ApiError::bad_request("body", "no `inputs` or `instances`")),
    }
}

fn field(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() { rest.to_string() } else { format!("{prefix}.{rest}") }
}

fn parse_inputs(v: &Value, prefix: &str) -> Result<Instance, ApiError> {
    let Value::Object(map) = v else {
        return Err(ApiError::bad_request(
            field(prefix, "inputs"),
            "expected an object of modalities",
        ));
    };
    let inputs = map
        .iter()
        .map(|(name, value)| {
            let f = field(prefix, &format!("inputs.{name}"));
            Ok((name.clone(), parse_value(value, &f)?))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Instance { prefix: prefix.to_string(), inputs })
}

fn parse_value(v: &Value, f: &str) -> Result<RequestValue, ApiError> {
    match v {
        Value::Array(_) => {
            let mut values = Vec::new();
            let shape = nested_shape(v, f)?;
            flatten(v, &mut values, f)?;
            let shape = (shape.len() > 1).then_some(shape);
            Ok(RequestValue::Values { values, shape })
        }
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| *k != "base64") {
                return Err(ApiError::bad_request(
                    format!("{f}.{k}"),
                    "unknown field (expected `base64`)",
                ));
            }
            match o.get("base64") {
                Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .map(RequestValue::File)
                    .map_err(|e| {
                        ApiError::bad_request(format!("{f}.base64"), format!("not base64: {e}"))
                    }),
                Some(_) => Err(ApiError::bad_request(format!("{f}.base64"), "expected a string")),
                None => {
                    Err(ApiError::bad_request(f, "expected a number array or {\"base64\": ...}"))
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Err(
            ApiError::bad_request(f, "expected a number array or {\"base64\": \"<file bytes>\"}"),
        ),
    }
}

/// The shape of a rectangular nested array (errors on ragged nesting).
fn nested_shape(v: &Value, f: &str) -> Result<Vec<usize>, ApiError> {
    let mut shape = Vec::new();
    let mut cur = v;
    while let Value::Array(a) = cur {
        shape.push(a.len());
        if shape.len() > 8 {
            return Err(ApiError::bad_request(f, "arrays nested more than 8 deep"));
        }
        match a.first() {
            Some(first) => cur = first,
            None => break,
        }
    }
    check_rect(v, &shape, f)?;
    Ok(shape)
}

fn check_rect(v: &Value, shape: &[usize], f: &str) -> Result<(), ApiError> {
    match (v, shape.split_first()) {
        (Value::Array(a), Some((n, rest))) => {
            if a.len() != *n {
                return Err(ApiError::bad_request(f, "ragged array: rows of different lengths"));
            }
            a.iter().try_for_each(|x| check_rect(x, rest, f))
        }
        (Value::Array(_), None) => Err(ApiError::bad_request(f, "ragged array: uneven nesting")),
        (_, Some(_)) => Err(ApiError::bad_request(f, "ragged array: uneven nesting")),
        (_, None) => Ok(()),
    }
}

fn flatten(v: &Value, out: &mut Vec<f32>, f: &str) -> Result<(), ApiError> {
    match v {
        Value::Array(a) => a.iter().try_for_each(|x| flatten(x, out, f)),
        Value::Number(n) => {
            if out.len() >= MAX_VALUES {
                return Err(ApiError::bad_request(f, format!("more than {MAX_VALUES} numbers")));
            }
            let x = n.as_f64().map(|x| x as f32).filter(|x| x.is_finite()).ok_or_else(|| {
                ApiError::bad_request(
                    f,
                    format!("value {} ({n}) is not a finite f32", out.len() + 1),
                )
            })?;
            out.push(x);
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::String(_) | Value::Object(_) => {
            Err(ApiError::bad_request(
                f,
                format!("value {} is not a number (non-finite values are refused)", out.len() + 1),
            ))
        }
    }
}

/// A file extension for `bytes` from their first bytes (decoders pick the format by content,
/// `.npy` and text by extension).
pub(crate) fn sniff_extension(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG") {
        "png"
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        "jpg"
    } else if bytes.starts_with(b"\x93NUMPY") {
        "npy"
    } else {
        "txt"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_errors() {
        let one = parse_request(br#"{"inputs": {"audio": [[1, 2], [3, 4]]}}"#).unwrap();
        assert_eq!(
            one[0].inputs[0].1,
            RequestValue::Values { values: vec![1.0, 2.0, 3.0, 4.0], shape: Some(vec![2, 2]) }
        );
        let e = parse_request(br#"{"inputs": {"audio": [[1, 2], [3]]}}"#).unwrap_err();
        assert!(e.to_string().contains("inputs.audio") && e.to_string().contains("ragged"), "{e}");
        let e = parse_request(br#"{"instances": [{"inputs": {}}, {"inputs": {"a": [1, "x"]}}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("instances[1].inputs.a"), "{e}");
        let e = parse_request(br#"{"inputs": {"a": [1e300]}}"#).unwrap_err();
        assert!(e.to_string().contains("finite"), "{e}");
        let e = parse_request(br#"{"inputs": {"a": {"base64": "%%%"}}}"#).unwrap_err();
        assert!(e.to_string().contains("inputs.a.base64"), "{e}");
        assert!(parse_request(b"{\"inputs\": ").is_err());
        assert!(parse_request(br#"{"inputz": {}}"#).unwrap_err().to_string().contains("inputz"));
    }
}
