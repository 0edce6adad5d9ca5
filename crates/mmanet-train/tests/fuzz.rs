//! Parsers never panic (docs/reliability.md, "Parsers"): every parser of a file or a string a
//! user gives, fed mutated valid inputs and raw bytes, returns a value or a typed error naming
//! the place (file, line, field), and never sizes memory by a header's claim.
//!
//! Each `fuzz_*` test is one target. The number of cases is `MMANET_FUZZ_CASES` (CI: the
//! default below), drawn from `MMANET_FUZZ_SEED` (fixed by default, so a CI failure replays);
//! `cargo xtask fuzz [--cases N] [--target NAME]` runs them longer. A failing case is shrunk by
//! proptest and printed. The `regression_*` tests hold the inputs that found a bug.
//!
//! One test binary for every crate's parsers (mask strings, lists, npy, safetensors, manifests,
//! configs): each libtorch test binary costs a link, and this crate sees them all.
#![allow(clippy::print_stderr)]

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use mmanet_core::ModalitySet;
use mmanet_data::cefa::CefaVideo;
use mmanet_data::cityscapes::{CityscapesDataset, CityscapesDepth, read_cityscapes_depth};
use mmanet_data::manifest::{ManifestDecoder, ManifestModality, ManifestSource, SplitFractions};
use mmanet_data::npy::{read_npy_f32, read_npy_i64};
use mmanet_data::nyuv2::Nyuv2Dataset;
use mmanet_data::surf::parse_surf_list;
use mmanet_data::{DataError, DataSource, Split};
use mmanet_train::presets::PRESETS;
use mmanet_train::{TrainConfig, TrainError};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rand::SeedableRng;

#[path = "common/fuzz_harness.rs"]
mod fuzz_harness;

/// Cases per target in CI: the whole file stays within about 30 s of a debug build on 2 cores.
const CI_CASES: u32 = 96;

/// [`fuzz_harness::fuzz`] with this file's CI cases.
fn fuzz<S>(target: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    fuzz_harness::fuzz(target, CI_CASES, strategy, test);
}

/// Fails the case unless `cond` holds.
fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond { Ok(()) } else { Err(TestCaseError::fail(what())) }
}

/// The error's text names `place` (a file name, a field).
fn names(e: &impl std::fmt::Display, place: &str) -> Result<(), TestCaseError> {
    let text = e.to_string();
    ensure(text.contains(place), || format!("error does not name `{place}`: {text}"))
}

// ---- generic mutations --------------------------------------------------------------------------

/// One edit of a text or byte buffer, positions taken modulo its length.
#[derive(Clone, Debug)]
enum Edit {
    /// Drop line `n`.
    DeleteLine(usize),
    /// Replace what follows `=` (or the whole line) on line `n`.
    ReplaceValue(usize, String),
    /// Insert a line before line `n`.
    InsertLine(usize, String),
    /// Duplicate line `n`.
    DuplicateLine(usize),
    /// Keep only the first `n` per mille of the bytes.
    Truncate(u16),
    /// Set byte `n` to `b`.
    SetByte(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::DeleteLine),
        (any::<usize>(), value()).prop_map(|(n, v)| Edit::ReplaceValue(n, v)),
        (any::<usize>(), line()).prop_map(|(n, l)| Edit::InsertLine(n, l)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (0u16..1000).prop_map(Edit::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(n, b)| Edit::SetByte(n, b)),
    ]
}

/// Values a config or list is likely to choke on.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "-1",
            "1",
            "3",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551616",
            "1e308",
            "-1e308",
            "nan",
            "inf",
            "-inf",
            "0.0",
            "-0.0",
            "\"\"",
            "\"x\"",
            "[]",
            "[0]",
            "[0, 0]",
            "[1, 2, 3]",
            "[-1, 7]",
            "{}",
            "{ a = 1 }",
            "true",
            "false",
            "\"cuda:99\"",
            "\"cuda:-1\"",
            "\"cpu\"",
            "\"R+D+X\"",
            "\"all\"",
            "[\"R\", \"R\"]",
            "[\"\"]",
            "\"../..\"",
            "\"/\"",
            "'''",
            "[[",
            "=",
            "\"\\u0000\"",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        "[a-zA-Z0-9+_./ -]{0,12}".prop_map(|s| format!("{s:?}")),
        ".{0,8}",
    ]
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_.]{1,20} = ".prop_flat_map(|k| value().prop_map(move |v| format!("{k}{v}"))),
        "\\[[a-z_.]{0,16}\\]",
        "\\[\\[[a-z_.]{0,16}\\]\\]",
        ".{0,30}",
    ]
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut tail: Vec<ByteEdit> = Vec::new();
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::DeleteLine(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::ReplaceValue(i, v) if !lines.is_empty() => {
                let l = &mut lines[i % n];
                *l = match l.split_once('=') {
                    Some((k, _)) => format!("{k}= {v}"),
                    None => v.clone(),
                };
            }
            Edit::DuplicateLine(i) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::InsertLine(i, l) => lines.insert(i % (lines.len() + 1), l.clone()),
            Edit::DeleteLine(_) | Edit::ReplaceValue(..) | Edit::DuplicateLine(_) => {}
            Edit::Truncate(p) => tail.push((*p, None)),
            Edit::SetByte(i, b) => tail.push((1000, Some((*i, *b)))),
        }
    }
    let mut bytes = lines.join("\n").into_bytes();
    bytes.push(b'\n');
    mutate_bytes(&mut bytes, &tail);
    bytes
}

/// A byte edit: `(per mille kept, Some((position, byte)))`.
type ByteEdit = (u16, Option<(usize, u8)>);

/// A safetensors header entry: name, dtype, shape, data offsets.
type StTensor = (String, String, Vec<u64>, (u64, u64));

/// Applies byte edits in order.
fn mutate_bytes(bytes: &mut Vec<u8>, edits: &[ByteEdit]) {
    for (keep, set) in edits {
        if let Some((i, b)) = set {
            if !bytes.is_empty() {
                let n = bytes.len();
                bytes[i % n] = *b;
            }
        } else {
            let n = bytes.len() * usize::from(*keep) / 1000;
            bytes.truncate(n);
        }
    }
}

fn byte_edits() -> impl Strategy<Value = Vec<ByteEdit>> {
    prop::collection::vec(
        prop_oneof![
            3 => (any::<usize>(), any::<u8>()).prop_map(|s| (1000u16, Some(s))),
            1 => (0u16..1000).prop_map(|k| (k, None)),
        ],
        0..4,
    )
}

fn raw_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..256),
    ]
}

// ---- TOML configs and --set --------------------------------------------------------------------

fn preset_texts() -> Vec<String> {
    PRESETS.iter().map(|p| p.text.to_string()).collect()
}

/// A parsed config: `check` and `to_toml` do not panic, and a checked config round-trips.
fn exercise_config(cfg: TrainConfig) -> Result<(), TestCaseError> {
    let text = cfg.to_toml();
    let back = TrainConfig::from_toml_str(&text, Path::new("back.toml"))
        .map_err(|e| TestCaseError::fail(format!("to_toml does not read back: {e}\n{text}")))?;
    // Compared as text: a NaN weight (refused by `check`) is unequal to itself as a value.
    ensure(back.to_toml() == text, || format!("round trip changed the config:\n{text}"))?;
    if let Err(e) = cfg.check() {
        // A checked error names its field (`config: FIELD: ...`, `config: data.dataset...`).
        names(&e, "config")?;
    }
    Ok(())
}

#[test]
fn fuzz_config_toml() {
    let texts = preset_texts();
    let n = texts.len();
    let strategy = prop_oneof![
        4 => (0..n, prop::collection::vec(edit(), 1..5)).prop_map(move |(p, e)| apply(&texts[p], &e)),
        1 => raw_text(),
    ];
    fuzz("config_toml", strategy, |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        match TrainConfig::from_toml_str(&text, Path::new("fuzz.toml")) {
            Ok(cfg) => exercise_config(cfg),
            Err(e) => {
                ensure(matches!(e, TrainError::ConfigFile { .. }), || format!("{e:?}"))?;
                names(&e, "fuzz.toml")
            }
        }
    });
}

/// Every dotted key of a TOML document (tables walked, arrays are leaves).
fn dotted_keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            dotted_keys(v, &key, out);
            out.push(key);
        }
    }
}

#[test]
fn fuzz_config_set() {
    let presets: Vec<TrainConfig> = PRESETS.iter().map(|p| p.config()).collect();
    let mut keys = Vec::new();
    for p in &presets {
        let doc: toml::Value = toml::from_str(&p.to_toml()).expect("a preset is TOML");
        dotted_keys(&doc, "", &mut keys);
    }
    keys.extend(["teacher.checkpoint", "compute.amp", "eval.select_after"].map(String::from));
    keys.sort();
    keys.dedup();
    let key = prop_oneof![
        4 => prop::sample::select(keys),
        1 => "[a-z_.]{0,16}",
    ];
    let assignment = prop_oneof![
        6 => (key, value()).prop_map(|(k, v)| format!("{k}={v}")),
        1 => ".{0,24}",
    ];
    let n = presets.len();
    fuzz("config_set", (0..n, prop::collection::vec(assignment, 1..4)), |(p, sets)| {
        let mut cfg = presets[p].clone();
        for s in &sets {
            // As text: an earlier `nan` weight is unequal to itself as a value.
            let before = cfg.to_toml();
            if let Err(e) = cfg.set(s) {
                ensure(matches!(e, TrainError::Config { .. }), || format!("`{s}`: {e:?}"))?;
                ensure(cfg.to_toml() == before, || format!("a refused `{s}` changed the config"))?;
            }
        }
        exercise_config(cfg)
    });
}

// ---- list files ---------------------------------------------------------------------------------

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["0", "1", "2", "-1", "1.0", "x", "99999999999999999999", ""])
            .prop_map(str::to_string),
        "[a-zA-Z0-9_./-]{1,12}",
        "[^\\s]{1,6}",
    ]
}

fn list_lines() -> impl Strategy<Value = Vec<u8>> {
    let one = prop_oneof![
        6 => (field(), field(), field(), field())
            .prop_map(|(a, b, c, d)| format!("{a} {b} {c} {d}")),
        2 => prop::collection::vec(field(), 0..6).prop_map(|f| f.join(" ")),
        1 => prop::collection::vec(field(), 0..4).prop_map(|f| f.join("\t")),
        1 => Just(String::new()),
        1 => Just("   ".to_string()),
    ];
    prop_oneof![
        4 => (prop::collection::vec(one, 0..8), any::<bool>(), byte_edits()).prop_map(
            |(lines, crlf, edits)| {
                let mut b = lines.join(if crlf { "\r\n" } else { "\n" }).into_bytes();
                mutate_bytes(&mut b, &edits);
                b
            }
        ),
        1 => raw_text(),
    ]
}

#[test]
fn fuzz_surf_list() {
    fuzz("surf_list", list_lines(), |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        let lines = text.lines().count();
        match parse_surf_list(&text, Path::new("/data"), Path::new("train_list.txt")) {
            Ok(entries) => {
                for e in &entries {
                    ensure(matches!(e.label, 0 | 1), || format!("label {}", e.label))?;
                    ensure((1..=lines).contains(&e.line), || format!("line {}", e.line))?;
                }
                ensure(entries.windows(2).all(|w| w[0].line < w[1].line), || "order".into())
            }
            Err(e) => {
                let ok =
                    matches!(&e, DataError::ListFormat { line, .. } if (1..=lines).contains(line));
                ensure(ok, || format!("{e:?}"))?;
                names(&e, "train_list.txt")
            }
        }
    });
}

#[test]
fn fuzz_nyuv2_list() {
    let dir = tempfile::tempdir().unwrap();
    fuzz("nyuv2_list", list_lines(), |bytes| {
        std::fs::write(dir.path().join("train.txt"), &bytes).unwrap();
        match Nyuv2Dataset::open(dir.path(), "train", 5) {
            Ok(d) => {
                use mmanet_data::Dataset;
                let ids = String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .count();
                ensure(d.len() == ids, || format!("{} samples for {ids} ids", d.len()))
            }
            Err(e) => names(&e, "train.txt"),
        }
    });
}

#[test]
fn fuzz_cityscapes_list() {
    let dir = tempfile::tempdir().unwrap();
    fuzz("cityscapes_list", (list_lines(), list_lines(), list_lines()), |(a, b, c)| {
        for (name, bytes) in
            [("val_rgb.txt", &a), ("val_depth_raw.txt", &b), ("val_labels_19.txt", &c)]
        {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        match CityscapesDataset::open(dir.path(), "val", 19, CityscapesDepth::Depth) {
            Ok(d) => {
                use mmanet_data::Dataset;
                ensure(d.len() > 0, || "empty data set".into())?;
                for i in 0..d.len() {
                    d.paths(i).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                Ok(())
            }
            Err(e) => {
                let t = e.to_string();
                ensure(t.contains("val_") && t.contains(".txt"), || format!("names no list: {t}"))
            }
        }
    });
}

#[test]
fn fuzz_cefa_names() {
    let part = prop_oneof![
        prop::sample::select(vec![
            "1",
            "3",
            "0",
            "007",
            "199",
            "4294967295",
            "4294967296",
            "-1",
            "",
            "+2"
        ])
        .prop_map(str::to_string),
        "[0-9]{1,4}",
        ".{0,3}",
    ];
    let name = prop_oneof![
        4 => prop::collection::vec(part, 0..7).prop_map(|p| p.join("_")),
        1 => ".{0,20}",
    ];
    fuzz("cefa_names", name, |name| {
        if let Some(v) = CefaVideo::parse(&name) {
            let again = format!("{}_{}_{}_{}_{}", v.race, v.id, v.device, v.session, v.pai);
            ensure(CefaVideo::parse(&again) == Some(v), || format!("{name} -> {again}"))?;
        }
        Ok(())
    });
}

// ---- .npy ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct NpyCase {
    version: u8,
    descr: String,
    fortran: bool,
    shape: Vec<u64>,
    body: usize,
    header_len_delta: i8,
    edits: Vec<ByteEdit>,
}

fn npy_case() -> impl Strategy<Value = NpyCase> {
    let dim = prop_oneof![
        4 => 0u64..5,
        1 => prop::sample::select(vec![
            1_000_000, 1_000_000_000_000, 1 << 32, 1 << 62, u64::MAX, (1 << 63) + 1,
        ]),
    ];
    (
        prop::sample::select(vec![1u8, 1, 1, 2, 3, 0, 9]),
        prop::sample::select(vec!["<f4", "<f8", "<f2", "<i4", "<i8", ">f4", "|u1", "<c8", "", "'"]),
        prop::bool::weighted(0.1),
        prop::collection::vec(dim, 0..4),
        0usize..80,
        prop_oneof![8 => Just(0i8), 1 => any::<i8>()],
        byte_edits(),
    )
        .prop_map(|(version, descr, fortran, shape, body, header_len_delta, edits)| NpyCase {
            version,
            descr: descr.to_string(),
            fortran,
            shape,
            body,
            header_len_delta,
            edits,
        })
}

fn npy_bytes(c: &NpyCase) -> Vec<u8> {
    let shape = match &c.shape[..] {
        [n] => format!("({n},)"),
        s => format!("({})", s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    };
    let fortran = if c.fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{}', 'fortran_order': {fortran}, 'shape': {shape}, }}", c.descr);
    while (12 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([c.version, 0]);
    let len = (header.len() as i64 + i64::from(c.header_len_delta)).max(0) as u64;
    if c.version == 1 {
        out.extend((len as u16).to_le_bytes());
    } else {
        out.extend((len as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend((0..c.body).map(|i| (i * 37) as u8));
    mutate_bytes(&mut out, &c.edits);
    out
}

#[test]
fn fuzz_npy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.npy");
    let strategy = prop_oneof![
        4 => npy_case().prop_map(|c| npy_bytes(&c)),
        1 => raw_text().prop_map(|mut b| { b.splice(0..0, b"\x93NUMPY\x01\x00".iter().copied()); b }),
        1 => raw_text(),
    ];
    fuzz("npy", strategy, |bytes| {
        std::fs::write(&path, &bytes).unwrap();
        let check = |shape: &[usize], len: usize, item: usize| {
            let n = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            ensure(n == Some(len), || format!("shape {shape:?} for {len} values"))?;
            ensure(len * item <= bytes.len(), || format!("{len} values from {} bytes", bytes.len()))
        };
        match read_npy_f32(&path) {
            Ok(a) => check(&a.shape, a.data.len(), 2)?,
            Err(e) => names(&e, "fuzz.npy")?,
        }
        match read_npy_i64(&path) {
            Ok(a) => check(&a.shape, a.data.len(), 4)?,
            Err(e) => names(&e, "fuzz.npy")?,
        }
        match read_cityscapes_depth(&path) {
            Ok(img) => {
                let small = img.resize_nearest(3, 2);
                ensure(small.data.len() == 6, || "resize".into())
            }
            Err(e) => names(&e, "fuzz.npy"),
        }
    });
}

// ---- safetensors --------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct StCase {
    /// Name, dtype, shape and data offsets of each tensor.
    tensors: Vec<StTensor>,
    metadata: bool,
    body: usize,
    len_delta: i8,
    edits: Vec<ByteEdit>,
}

fn st_case() -> impl Strategy<Value = StCase> {
    let dim = prop_oneof![
        6 => 0u64..4,
        1 => prop::sample::select(vec![1 << 31, 1 << 32, 1 << 62, 1 << 63, u64::MAX]),
    ];
    let tensor = (
        "[a-z_.]{1,8}",
        prop::sample::select(vec![
            "F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "U16", "F8_E4M3", "X",
        ]),
        prop::collection::vec(dim, 0..3),
        prop_oneof![(0u64..64, 0u64..64), (any::<u64>(), any::<u64>())],
    )
        .prop_map(|(n, d, s, o)| (n, d.to_string(), s, o));
    (
        prop::collection::vec(tensor, 0..4),
        any::<bool>(),
        0usize..96,
        prop_oneof![8 => Just(0i8), 1 => any::<i8>()],
        byte_edits(),
    )
        .prop_map(|(tensors, metadata, body, len_delta, edits)| StCase {
            tensors,
            metadata,
            body,
            len_delta,
            edits,
        })
}

/// A header whose offsets are the ones the shapes need, laid one after the other (a valid file
/// when the dtypes and shapes are), unless `consistent` is false: then the case's own offsets.
fn st_bytes(c: &StCase, consistent: bool) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if c.metadata {
        header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    }
    let mut at = 0u64;
    for (name, dtype, shape, offsets) in &c.tensors {
        let size = match dtype.as_str() {
            "F64" | "I64" => 8,
            "F32" | "I32" => 4,
            "F16" | "BF16" | "U16" => 2,
            _ => 1,
        };
        let n = shape.iter().try_fold(size, |n: u64, &d| n.checked_mul(d)).unwrap_or(u64::MAX);
        let off = if consistent { (at, at.saturating_add(n)) } else { *offsets };
        at = at.saturating_add(n);
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [off.0, off.1]}),
        );
    }
    let text = serde_json::Value::Object(header).to_string();
    let len = (text.len() as i64 + i64::from(c.len_delta)).max(0) as u64;
    let mut out = len.to_le_bytes().to_vec();
    out.extend(text.as_bytes());
    let body = if consistent && at < 4096 { at as usize } else { c.body };
    out.extend((0..body).map(|i| (i * 13) as u8));
    out
}

#[test]
fn fuzz_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.safetensors");
    // A real checkpoint of a small network, as libtorch writes it, for byte-level mutation.
    let valid = {
        let p = dir.path().join("valid.safetensors");
        let named = vec![
            ("a.weight".to_string(), tch::Tensor::from_slice(&[1f32, 2.0, 3.0, 4.0]).view([2, 2])),
            ("b.step".to_string(), tch::Tensor::from_slice(&[7i64])),
        ];
        mmanet_models::checkpoint::write_safetensors_atomic(&named, &p).unwrap();
        std::fs::read(&p).unwrap()
    };
    let strategy = prop_oneof![
        3 => (st_case(), any::<bool>()).prop_map(|(c, consistent)| {
            let mut b = st_bytes(&c, consistent);
            mutate_bytes(&mut b, &c.edits);
            b
        }),
        2 => byte_edits().prop_map(move |e| { let mut b = valid.clone(); mutate_bytes(&mut b, &e); b }),
        1 => raw_text(),
    ];
    fuzz("safetensors", strategy, |bytes| {
        std::fs::write(&path, &bytes).unwrap();
        match mmanet_models::checkpoint::read_safetensors(&path) {
            Ok(tensors) => {
                let total: usize =
                    tensors.iter().map(|(_, t)| t.numel() * t.kind().elt_size_in_bytes()).sum();
                ensure(total <= bytes.len(), || {
                    format!("{total} bytes of tensors from {}", bytes.len())
                })
            }
            Err(e) => names(&e, "fuzz.safetensors"),
        }
    });
}

// ---- mask strings -------------------------------------------------------------------------------

#[test]
fn fuzz_mask() {
    let sets = vec![
        ModalitySet::from_pairs(&[("rgb", "R"), ("depth", "D"), ("ir", "I")]).unwrap(),
        ModalitySet::from_names(["rgb", "lidar", "radar"]).unwrap(),
        ModalitySet::from_names(["pixel", "fourier", "karhunen"]).unwrap(),
        ModalitySet::from_names(["audio"]).unwrap(),
        ModalitySet::from_names((0..32).map(|i| format!("m{i}"))).unwrap(),
    ];
    let mut tokens: Vec<String> = Vec::new();
    for s in &sets {
        for m in s.modalities() {
            tokens.extend([
                m.name().to_string(),
                m.symbol().to_string(),
                m.symbol().to_lowercase(),
            ]);
        }
    }
    tokens.extend(["", " ", "+", "all", "R ", " D", "ß", "R\u{301}"].map(String::from));
    let token = prop_oneof![4 => prop::sample::select(tokens), 1 => ".{0,3}"];
    let text = prop_oneof![
        4 => (prop::collection::vec(token, 0..5), prop::sample::select(vec!["+", " + ", "", "++"]))
            .prop_map(|(t, sep)| t.join(sep)),
        1 => ".{0,12}",
    ];
    let n = sets.len();
    fuzz("mask", (0..n, text), |(k, text)| {
        let set = &sets[k];
        if let Ok(m) = set.parse_mask(&text) {
            ensure(set.admits(m), || format!("`{text}` -> {m:?} outside the set"))?;
            let printed = set.format(m);
            ensure(set.parse_mask(&printed) == Ok(m), || format!("`{text}` -> `{printed}`"))?;
        }
        Ok(())
    });
}

// ---- manifests ----------------------------------------------------------------------------------

fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "a.png",
            "missing.png",
            "0.1 0.2 0.3",
            "1 2",
            "1 2 3 4",
            "nan 1 2",
            "inf 0 0",
            "1e39 0 0",
            "train",
            "val",
            "test",
            "TRAIN",
            "cat",
            "dog",
            "0",
            "1",
            "5",
            "\"a,b\"",
            "\"",
            "s1",
            "s1",
            "/",
            "..",
            "a.png ",
        ])
        .prop_map(str::to_string),
        "[a-z0-9 .,\"]{0,8}",
    ]
}

fn manifest_text() -> impl Strategy<Value = (bool, Vec<u8>)> {
    let columns = prop::collection::vec(
        prop::sample::select(vec!["id", "label", "split", "group", "img", "vec", "extra", ""]),
        0..7,
    );
    let header = prop_oneof![
        3 => Just(vec!["id", "label", "img", "vec"]),
        1 => Just(vec!["id", "label", "split", "group", "img", "vec"]),
        1 => columns,
    ];
    let csv =
        (header, prop::collection::vec(prop::collection::vec(cell(), 0..7), 0..8), byte_edits())
            .prop_map(|(h, rows, edits)| {
                let mut text = h.join(",");
                for r in rows {
                    text.push('\n');
                    text.push_str(&r.join(","));
                }
                let mut b = text.into_bytes();
                mutate_bytes(&mut b, &edits);
                (false, b)
            });
    let json_value = prop_oneof![
        cell().prop_map(serde_json::Value::String),
        any::<i32>().prop_map(|v| serde_json::json!(v)),
        Just(serde_json::json!([0.5, 1, 2])),
        Just(serde_json::json!([[1], [2, [3]]])),
        Just(serde_json::json!([1e300, 1, 2])),
        Just(serde_json::json!(null)),
        Just(serde_json::json!({"a": 1})),
        Just(serde_json::json!(true)),
    ];
    let key = prop::sample::select(vec!["id", "label", "split", "group", "img", "vec", "extra"]);
    let object = prop::collection::btree_map(key, json_value, 0..7).prop_map(|m| {
        serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            .to_string()
    });
    let jsonl =
        (prop::collection::vec(prop_oneof![4 => object, 1 => ".{0,10}"], 0..8), byte_edits())
            .prop_map(|(lines, edits)| {
                let mut b = lines.join("\n").into_bytes();
                mutate_bytes(&mut b, &edits);
                (true, b)
            });
    prop_oneof![3 => csv, 3 => jsonl, 1 => (any::<bool>(), raw_text())]
}

#[test]
fn fuzz_manifest() {
    let dir = tempfile::tempdir().unwrap();
    image::RgbImage::from_pixel(5, 3, image::Rgb([10, 20, 30]))
        .save(dir.path().join("a.png"))
        .unwrap();
    let source = |path: PathBuf| ManifestSource {
        path,
        modalities: vec![
            ManifestModality {
                name: "img".into(),
                symbol: None,
                decoder: ManifestDecoder::Image {
                    size: [4, 4],
                    channels: 3,
                    mean: 0.5,
                    std: 0.5,
                    flip: true,
                    augment: None,
                },
            },
            ManifestModality {
                name: "vec".into(),
                symbol: None,
                decoder: ManifestDecoder::Vector { len: 3, standardize: true },
            },
        ],
        classes: vec![],
        split: SplitFractions { val: 0.25, test: 0.25, seed: 3 },
        cache: Default::default(),
    };
    fuzz("manifest", manifest_text(), |(jsonl, bytes)| {
        let name = if jsonl { "data.jsonl" } else { "data.csv" };
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let src = source(path);
        src.check().map_err(|e| TestCaseError::fail(e.to_string()))?;
        for split in [Split::Train, Split::Val, Split::Test] {
            match src.open(split, 0) {
                Ok(d) => {
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
                    for i in 0..d.len() {
                        if let Err(e) = d.get(i, &mut rng) {
                            names(&e, name)?;
                        }
                    }
                }
                Err(e) => names(&e, name)?,
            }
        }
        Ok(())
    });
}

// ---- regressions: inputs the targets above found ------------------------------------------------

fn npy_with_shape(dir: &Path, shape: &str, body: usize) -> PathBuf {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(vec![0u8; body]);
    let p = dir.join("claim.npy");
    std::fs::write(&p, out).unwrap();
    p
}

/// `fuzz_npy`: a shape whose element count overflows `usize` panicked in debug builds
/// ("attempt to multiply with overflow" in `shape.iter().product()`) and in release wrapped
/// to 0, so `(2**63, 2)` with no data read as a valid empty array of that shape.
#[test]
fn regression_npy_shape_overflow_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = npy_with_shape(dir.path(), "(9223372036854775808, 2)", 0);
    let e = read_npy_f32(&p).unwrap_err().to_string();
    assert!(e.contains("claim.npy") && e.contains("more elements than memory"), "{e}");
    let p = npy_with_shape(dir.path(), "(4294967296, 4294967296, 4294967296)", 0);
    assert!(read_npy_i64(&p).unwrap_err().to_string().contains("claim.npy"));
}

/// A header promising 10^12 elements in a 16-byte file is refused before a value is decoded,
/// naming what it promised and what the file holds.
#[test]
fn regression_npy_header_claim_is_checked_against_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = npy_with_shape(dir.path(), "(1000000, 1000000)", 16);
    let e = read_npy_f32(&p).unwrap_err().to_string();
    assert!(e.contains("claim.npy") && e.contains("holds 16 bytes"), "{e}");
}

/// `fuzz_npy`: a Cityscapes depth file of shape `(0, 5)` read as a 0x5 image, and resizing it
/// (evaluation at the training size) panicked ("attempt to subtract with overflow" in
/// `resize_nearest`).
#[test]
fn regression_empty_cityscapes_depth_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = npy_with_shape(dir.path(), "(0, 5)", 0);
    let e = read_cityscapes_depth(&p).unwrap_err().to_string();
    assert!(e.contains("claim.npy") && e.contains("H, W >= 1"), "{e}");
}

/// A safetensors header claiming a dimension above `i64::MAX` (with a zero dimension, so the
/// byte count is 0 and the `safetensors` crate accepts it) is refused naming the file and the
/// tensor; before, it reached libtorch as a negative size and came back as libtorch's message,
/// naming neither.
#[test]
fn regression_safetensors_dimension_beyond_i64() {
    let dir = tempfile::tempdir().unwrap();
    let header = r#"{"w":{"dtype":"F32","shape":[9223372036854775808,0],"data_offsets":[0,0]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    let p = dir.path().join("big.safetensors");
    std::fs::write(&p, bytes).unwrap();
    let e = mmanet_models::checkpoint::read_safetensors(&p).unwrap_err().to_string();
    assert!(e.contains("big.safetensors") && e.contains("tensor `w`"), "{e}");
}

/// `fuzz_safetensors` (5000 cases): a header whose tensor ends at offset `u64::MAX` (shape
/// `[u64::MAX]` of `U8`, so the crate's own size check passes) panicked inside
/// `safetensors::SafeTensors::deserialize` ("attempt to add with overflow" at
/// `buffer_end + 8 + n`; in release builds the sum wraps). `read_safetensors` now checks the
/// offsets against the file first.
#[test]
fn regression_safetensors_offset_near_u64_max() {
    let dir = tempfile::tempdir().unwrap();
    let header = br#"{".":{"data_offsets":[0,18446744073709551615],"dtype":"U8","shape":[18446744073709551615]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    let p = dir.path().join("wrap.safetensors");
    std::fs::write(&p, bytes).unwrap();
    let e = mmanet_models::checkpoint::read_safetensors(&p).unwrap_err().to_string();
    assert!(
        e.contains("wrap.safetensors") && e.contains("tensor `.`") && e.contains("outside"),
        "{e}"
    );
}
