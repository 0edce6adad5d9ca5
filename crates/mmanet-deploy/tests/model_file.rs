//! The model file: byte-identical exports, a lossless round trip, refusal of other major
//! versions, plain checkpoints and corrupt files; prediction from any subset, batched equal to
//! one at a time, and bad inputs named.

use std::collections::HashMap;
use std::path::Path;

use mmanet_deploy::format::{FORMAT_MAJOR, from_bytes, keys, to_bytes};
use mmanet_deploy::{DeployError, Output, Predictor, RawInput, example, prepare, read_metadata};
use tch::Tensor;

fn grey_png(path: &Path, seed: u8) {
    let img = image::GrayImage::from_fn(8, 8, |x, y| {
        image::Luma([(x as u8 * 29 + y as u8 * 7 + seed) % 255])
    });
    img.save(path).unwrap();
}

fn values(v: &[f32]) -> RawInput {
    RawInput::Values { values: v.to_vec(), shape: None }
}

#[test]
fn two_exports_are_byte_identical_and_round_trip() {
    let file = example::tiny_model(3).unwrap();
    let a = to_bytes(&file.metadata, &file.tensors).unwrap();
    let b = to_bytes(&file.metadata, &file.tensors).unwrap();
    assert_eq!(a, b);
    // Many writes: the metadata map's hash order never leaks into the header.
    for _ in 0..8 {
        assert_eq!(to_bytes(&file.metadata, &file.tensors).unwrap(), a);
    }
    let back = from_bytes(&a, Path::new("m.safetensors")).unwrap();
    assert_eq!(back.metadata, file.metadata);
    assert_eq!(back.tensors.len(), file.tensors.len());
    for ((n1, t1), (n2, t2)) in file.tensors.iter().zip(&back.tensors) {
        assert_eq!(n1, n2);
        assert_eq!(t1.kind(), t2.kind(), "{n1}");
        assert!(t1.equal(t2), "{n1}");
    }
    // The header is plain safetensors: every key is a string, no path anywhere.
    let n = u64::from_le_bytes(a[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&a[8..8 + n]).unwrap();
    let meta = header["__metadata__"].as_object().unwrap();
    let names: Vec<&str> = meta.keys().map(String::as_str).collect();
    let mut want = keys::ALL.to_vec();
    want.sort();
    assert_eq!(names, want);
    assert!(!String::from_utf8_lossy(&a[8..8 + n]).contains("/tmp"));
}

#[test]
fn metadata_reads_without_weights_and_moved_files_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = example::tiny_model(1).unwrap();
    let path = dir.path().join("model.safetensors");
    mmanet_deploy::write_model_file(&path, &file.metadata, &file.tensors).unwrap();
    assert_eq!(read_metadata(&path).unwrap(), file.metadata);
    let moved = dir.path().join("elsewhere/m.safetensors");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&path, &moved).unwrap();
    let p = Predictor::load(&moved, tch::Device::Cpu).unwrap();
    assert_eq!(p.metadata().input_spec.classes, ["low", "mid", "high"]);
}

fn rewrite_metadata(bytes: &[u8], edit: impl FnOnce(&mut HashMap<String, String>)) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut meta: HashMap<String, String> =
        serde_json::from_value(header["__metadata__"].clone()).unwrap();
    edit(&mut meta);
    header.insert("__metadata__".into(), serde_json::to_value(meta).unwrap());
    let mut text = serde_json::to_vec(&header).unwrap();
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

#[test]
fn other_versions_plain_checkpoints_and_corrupt_files_are_refused() {
    let file = example::tiny_model(2).unwrap();
    let good = to_bytes(&file.metadata, &file.tensors).unwrap();
    let p = Path::new("m.safetensors");

    let newer = rewrite_metadata(&good, |m| {
        m.insert(keys::FORMAT_VERSION.into(), format!("{}.0", FORMAT_MAJOR + 1));
    });
    let err = from_bytes(&newer, p).unwrap_err();
    assert!(matches!(err, DeployError::Version { .. }), "{err}");
    // A newer minor version of the same major reads.
    let minor = rewrite_metadata(&good, |m| {
        m.insert(keys::FORMAT_VERSION.into(), format!("{FORMAT_MAJOR}.7"));
    });
    from_bytes(&minor, p).unwrap();

    let no_spec = rewrite_metadata(&good, |m| {
        m.remove(keys::INPUT_SPEC);
    });
    let err = from_bytes(&no_spec, p).unwrap_err().to_string();
    assert!(err.contains("input_spec") && err.contains("m.safetensors"), "{err}");

    let bad_json = rewrite_metadata(&good, |m| {
        m.insert(keys::MODEL.into(), "{\"arch\": \"generic\"".into());
    });
    let err = from_bytes(&bad_json, p).unwrap_err().to_string();
    assert!(err.contains("metadata `model`"), "{err}");

    // A plain checkpoint (tch's writer, no metadata).
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.safetensors");
    Tensor::write_safetensors(
        &[("w", Tensor::ones([2], (tch::Kind::Float, tch::Device::Cpu)))],
        &plain,
    )
    .unwrap();
    let err = mmanet_deploy::read_model_file(&plain).unwrap_err().to_string();
    assert!(err.contains("mmanet export"), "{err}");

    // Every truncation is an error, never a panic.
    for cut in [0, 4, 8, 20, good.len() / 2, good.len() - 1] {
        assert!(from_bytes(&good[..cut], p).is_err(), "cut at {cut}");
    }
    // A header length claiming more than the file.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(from_bytes(&huge, p).is_err());
    let path = dir.path().join("huge.safetensors");
    std::fs::write(&path, &huge).unwrap();
    assert!(read_metadata(&path).is_err());
}

#[test]
fn batches_mixing_subsets_equal_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let p = Predictor::new(example::tiny_model(5).unwrap(), tch::Device::Cpu).unwrap();
    let meta = p.metadata().clone();
    let img = dir.path().join("c.png");
    grey_png(&img, 3);
    let subsets: Vec<Vec<(String, RawInput)>> = vec![
        vec![("camera".into(), RawInput::File(img.clone()))],
        vec![("audio".into(), values(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))],
        vec![("imu".into(), values(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))],
        vec![
            ("C".into(), RawInput::File(img.clone())),
            ("A".into(), values(&[6.0, 5.0, 4.0, 3.0, 2.0, 1.0])),
            ("I".into(), RawInput::Values { values: vec![1.0; 14], shape: Some(vec![7, 2]) }),
        ],
    ];
    let prepared: Vec<_> = subsets.into_iter().map(|s| prepare(&meta, s, "").unwrap()).collect();
    assert_eq!(prepared[3].present, [true, true, true]);
    assert_eq!(prepared[3].inputs[2].length, Some(5), "cut to max_len");
    let together = p.predict(&prepared).unwrap();
    let mut distinct = Vec::new();
    for (one, got) in prepared.iter().zip(&together) {
        let alone = p.predict(std::slice::from_ref(one)).unwrap().remove(0);
        let (Output::Classes(a), Output::Classes(b)) = (&alone, got) else { panic!("classes") };
        assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * x.abs().max(1e-6), "{a:?} vs {b:?}");
        }
        distinct.push(a.clone());
    }
    assert_ne!(distinct[0], distinct[1], "the mask changes the prediction");
}

#[test]
fn bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let meta = example::tiny_model(0).unwrap().metadata;
    let err = |inputs: Vec<(String, RawInput)>| prepare(&meta, inputs, "instances[2]").unwrap_err();

    let e = err(vec![]);
    assert!(e.is_user_input() && e.to_string().starts_with("instances[2].inputs:"), "{e}");
    let e = err(vec![("lidar".into(), values(&[1.0]))]).to_string();
    assert!(e.contains("instances[2].inputs.lidar") && e.contains("camera (C)"), "{e}");
    let e = err(vec![("audio".into(), values(&[1.0, 2.0]))]).to_string();
    assert!(e.contains("inputs.audio") && e.contains("got 2"), "{e}");
    let e = err(vec![("audio".into(), values(&[1.0, f32::NAN, 0.0, 0.0, 0.0, 0.0]))]).to_string();
    assert!(e.contains("inputs.audio") && e.contains("finite"), "{e}");
    let e = err(vec![("audio".into(), values(&[1.0; 6])), ("A".into(), values(&[1.0; 6]))]);
    assert!(e.to_string().contains("twice"), "{e}");
    let e = err(vec![("camera".into(), values(&[1.0; 64]))]).to_string();
    assert!(e.contains("inputs.camera") && e.contains("base64"), "{e}");
    let e = err(vec![(
        "imu".into(),
        RawInput::Values { values: vec![1.0; 6], shape: Some(vec![2, 3]) },
    )]);
    assert!(e.to_string().contains("[T, 2]"), "{e}");
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"not an image").unwrap();
    let e = err(vec![("camera".into(), RawInput::File(junk))]).to_string();
    assert!(e.contains("inputs.camera") && e.contains("junk.png"), "{e}");
    let e = err(vec![("camera".into(), RawInput::File(dir.path().join("missing.png")))]);
    assert!(e.to_string().contains("missing.png"), "{e}");
}

/// `from_bytes` on the tiny model with `edit` applied to its typed metadata.
fn refusal(edit: impl FnOnce(&mut mmanet_deploy::ModelMetadata)) -> String {
    let mut file = example::tiny_model(0).unwrap();
    edit(&mut file.metadata);
    let bytes = to_bytes(&file.metadata, &file.tensors).unwrap();
    let e = from_bytes(&bytes, Path::new("edited.safetensors")).unwrap_err().to_string();
    assert!(e.contains("edited.safetensors"), "{e}");
    e
}

#[test]
fn a_header_that_would_allocate_by_its_claim_or_fail_in_the_first_forward_is_refused() {
    use mmanet_data::input_spec::Decoder;
    use mmanet_models::NetConfig;
    // A width above every weight of the file: refused before a layer is allocated (a 2^40
    // wide layer would have made tch panic, a 2^26 one allocate gigabytes).
    let e = refusal(|m| {
        let NetConfig::Generic(g) = &mut m.model else { unreachable!() };
        g.trunk_hidden[0] = 1 << 40;
    });
    assert!(e.contains("`trunk_hidden[0]` = 1099511627776") && e.contains("weight values"), "{e}");
    // A decoder whose output does not fit the branch (the fuzz target's find: the sequence
    // branch takes 2 features, the spec said 3; the warm-up forward pass panicked in libtorch).
    let e = refusal(|m| {
        let Decoder::Sequence { features, .. } = &mut m.input_spec.modalities[2].decoder else {
            unreachable!()
        };
        *features = 3;
    });
    assert!(e.contains("modalities[2]") && e.contains("[T, 2]") && e.contains("[5, 3]"), "{e}");
    let e = refusal(|m| {
        let Decoder::Vector { shape, .. } = &mut m.input_spec.modalities[1].decoder else {
            unreachable!()
        };
        *shape = vec![2, 3];
    });
    assert!(e.contains("modalities[1]") && e.contains("[6]"), "{e}");
    // A standardizer shorter than its vector would have indexed past its table per request.
    let e = refusal(|m| {
        let Decoder::Vector { standardize: Some(s), .. } = &mut m.input_spec.modalities[1].decoder
        else {
            unreachable!()
        };
        s.mean.pop();
    });
    assert!(e.contains("standardize has 5 means"), "{e}");
}

#[test]
fn libtorch_refusing_an_input_is_an_error_and_the_predictor_goes_on() {
    use mmanet_data::input_spec::Decoder;
    // The image modality at the file's own size: a 1x1 image is too small for the branch's
    // pooling, which only libtorch finds.
    let mut file = example::tiny_model(0).unwrap();
    let Decoder::Image { size, .. } = &mut file.metadata.input_spec.modalities[0].decoder else {
        unreachable!()
    };
    *size = None;
    let name = file.metadata.input_spec.modalities[0].name.clone();
    let p = Predictor::new(file, tch::Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tiny, fine) = (dir.path().join("tiny.png"), dir.path().join("fine.png"));
    image::GrayImage::from_pixel(1, 1, image::Luma([7])).save(&tiny).unwrap();
    grey_png(&fine, 1);
    let one = |path: &Path| {
        prepare(p.metadata(), vec![(name.clone(), RawInput::File(path.into()))], "inputs").unwrap()
    };
    let e = p.predict(&[one(&tiny)]).unwrap_err();
    assert!(matches!(e, DeployError::Torch { what: "forward pass", .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("too small") && !text.contains("frame #"),
        "one line of libtorch's: {text}"
    );
    assert!(!e.is_user_input());
    assert_eq!(p.predict(&[one(&fine)]).unwrap().len(), 1, "the predictor still serves");
}
