//! Readers of the registry-packaged real sets, on small files written here in the same formats.

use std::path::Path;

use mmanet_data::avmnist::{AvMnistOptions, load_avmnist};
use mmanet_data::basicmotions::{load_basicmotions, read_ts};
use mmanet_data::mfeat::{MFEAT_VIEWS, MfeatOptions, load_mfeat};
use mmanet_data::npy::write_npy;
use mmanet_data::seeding::{Stream, derive_rng};
use mmanet_data::{Dataset, Target, Task};

/// Writes the six mfeat CSVs for `per_class` samples of each of 10 classes; feature `k` of
/// sample `i` is `i * 1000 + k` so rows can be traced.
fn write_mfeat(dir: &Path, per_class: usize) {
    for (.., file, dim) in MFEAT_VIEWS {
        let mut text: String = (0..dim).map(|k| format!("{k},")).collect::<String>() + "0\n";
        for i in 0..10 * per_class {
            let row: Vec<String> = (0..dim).map(|k| format!("{}", i * 1000 + k)).collect();
            text += &format!("{},{}\n", row.join(","), i / per_class);
        }
        std::fs::write(dir.join(file), text).unwrap();
    }
}

fn label(t: &Target) -> i64 {
    match t {
        Target::Class(c) => *c,
        _ => panic!("class target expected"),
    }
}

#[test]
fn mfeat_views_subset_split_and_standardise() {
    let dir = tempfile::tempdir().unwrap();
    write_mfeat(dir.path(), 10);
    let opts = MfeatOptions {
        views: vec!["morphological".into(), "Pix".into()],
        standardize: false,
        ..Default::default()
    };
    let (train, test) = load_mfeat(dir.path(), &opts).unwrap();
    assert_eq!((train.len(), test.len()), (80, 20));
    assert_eq!(train.modalities().to_string(), "Pix+Mor");
    assert_eq!(train.task(), Task::Classification { num_classes: 10 });
    let mut rng = derive_rng(0, 0, 0, Stream::Augment);
    let s = test.get(0, &mut rng).unwrap();
    assert_eq!(s.inputs[0].shape, [240]);
    assert_eq!(s.inputs[1].shape, [6]);
    // Both views come from the same row, and the label matches it.
    let row = s.inputs[0].data[0] as usize / 1000;
    assert_eq!(s.inputs[1].data[0] as usize / 1000, row);
    assert_eq!(label(&s.target), (row / 10) as i64);
    // Two test samples per class; train and test rows are disjoint.
    let rows = |ds: &dyn Dataset| -> Vec<usize> {
        (0..ds.len())
            .map(|i| ds.get(i, &mut rng.clone()).unwrap().inputs[0].data[0] as usize / 1000)
            .collect()
    };
    let (tr, te) = (rows(&train), rows(&test));
    assert!(te.iter().all(|r| !tr.contains(r)));
    for c in 0..10 {
        assert_eq!(te.iter().filter(|r| **r / 10 == c).count(), 2);
    }

    // Standardised features have zero mean and unit variance on the training split.
    let (train, _) = load_mfeat(dir.path(), &MfeatOptions::default()).unwrap();
    assert_eq!(train.modalities().len(), 6);
    let vals: Vec<f32> = (0..train.len()).map(|i| train.samples()[i].inputs[3].data[5]).collect();
    let mean = vals.iter().sum::<f32>() / vals.len() as f32;
    let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / vals.len() as f32;
    assert!(mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3, "{mean} {var}");
}

#[test]
fn mfeat_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_mfeat(dir.path(), 2);
    let p = dir.path().join("mfeat-zer.csv");
    let mut text = std::fs::read_to_string(&p).unwrap();
    text = text.replacen("3000,", "x,", 1);
    std::fs::write(&p, &text).unwrap();
    let opts = MfeatOptions { views: vec!["zernike".into()], ..Default::default() };
    let err = load_mfeat(dir.path(), &opts).unwrap_err().to_string();
    assert!(err.contains("mfeat-zer.csv:5") && err.contains("`x`"), "{err}");
    std::fs::write(&p, "h\n1,2,3\n").unwrap();
    let err = load_mfeat(dir.path(), &opts).unwrap_err().to_string();
    assert!(err.contains("mfeat-zer.csv:2") && err.contains("47 features"), "{err}");
    let opts = MfeatOptions { views: vec!["rgb".into()], ..Default::default() };
    assert!(load_mfeat(dir.path(), &opts).is_err());
}

const TS_HEADER: &str = "# comment\n@problemName BasicMotions\n@timeStamps false\n@univariate false\n@dimensions 6\n@equalLength true\n@seriesLength 4\n@classLabel true Standing Running Walking Badminton\n@data\n";

fn ts_line(base: f32, label: &str) -> String {
    let dims: Vec<String> = (0..6)
        .map(|d| {
            (0..4)
                .map(|t| format!("{}", base + d as f32 * 10.0 + t as f32))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    format!("{}:{label}\n", dims.join(":"))
}

#[test]
fn basicmotions_reads_ts_into_two_modalities() {
    let dir = tempfile::tempdir().unwrap();
    let train = TS_HEADER.to_string() + &ts_line(0.0, "Walking") + &ts_line(100.0, "Standing");
    let test = TS_HEADER.to_string() + &ts_line(200.0, "Badminton");
    std::fs::write(dir.path().join("BasicMotions_TRAIN.ts"), train).unwrap();
    std::fs::write(dir.path().join("BasicMotions_TEST.ts"), test).unwrap();
    let (tr, te) = load_basicmotions(dir.path()).unwrap();
    assert_eq!((tr.len(), te.len()), (2, 1));
    assert_eq!(tr.modalities().to_string(), "Acc+Gyr");
    assert_eq!(tr.task(), Task::Classification { num_classes: 4 });
    let s = &tr.samples()[0];
    assert_eq!(label(&s.target), 2); // Walking is third in @classLabel
    assert_eq!(s.inputs[0].shape, [3, 4]);
    assert_eq!(s.inputs[0].data[..5], [0.0, 1.0, 2.0, 3.0, 10.0]);
    assert_eq!(s.inputs[1].data[0], 30.0); // dimension 3 = gyroscope x
    assert_eq!(label(&te.samples()[0].target), 3);

    let p = dir.path().join("bad.ts");
    std::fs::write(&p, TS_HEADER.to_string() + &ts_line(0.0, "Walking") + "1,2:3,x:Running\n")
        .unwrap();
    let err = read_ts(&p, None).unwrap_err().to_string();
    assert!(err.contains("bad.ts:11") && err.contains("`x`"), "{err}");
    std::fs::write(&p, TS_HEADER.to_string() + &ts_line(0.0, "Flying")).unwrap();
    assert!(read_ts(&p, None).unwrap_err().to_string().contains("bad.ts:10"));
}

/// MNIST digits `{0..9}.json` with `n` images each (pixel 0 holds `digit + image / 100`),
/// and FSDD-like MFCCs: `per_class` clips per digit, clip `k` of length `3 + k % 5`, frame
/// values `digit`.
fn write_avmnist(mnist: &Path, fsdd: &Path, n: usize, per_class: usize) {
    for d in 0..10 {
        let mut data = vec![0f32; n * 784];
        for i in 0..n {
            data[i * 784] = d as f32 + i as f32 / 100.0;
        }
        let json = format!(
            "{{\"data\":[{}]}}",
            data.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
        );
        std::fs::write(mnist.join(format!("{d}.json")), json).unwrap();
    }
    let (mut x, mut lengths, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..per_class {
        for d in 0..10i64 {
            let len = 3 + k % 5;
            x.extend(std::iter::repeat_n(d as f32, len * 13));
            lengths.push(len as i64);
            y.push(d);
        }
    }
    let bytes = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let ibytes = |v: &[i64]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    write_npy(&fsdd.join("X.npy"), "<f4", &[x.len() / 13, 13], &bytes(&x)).unwrap();
    write_npy(&fsdd.join("lengths.npy"), "<i8", &[lengths.len()], &ibytes(&lengths)).unwrap();
    write_npy(&fsdd.join("y.npy"), "<i8", &[y.len()], &ibytes(&y)).unwrap();
}

#[test]
fn avmnist_pairs_by_label_pads_and_keeps_lengths() {
    let (m, f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_avmnist(m.path(), f.path(), 12, 10);
    let opts = AvMnistOptions { max_frames: 5, standardize_audio: false, ..Default::default() };
    let (train, test) = load_avmnist(m.path(), f.path(), &opts).unwrap();
    // Per class: 10 clips -> 8 train / 2 test; 12 images -> 10 / 2 (round(2.4) = 2).
    assert_eq!((train.len(), test.len()), (80, 20));
    assert_eq!(train.modalities().to_string(), "Img+A");
    let mut used = std::collections::HashSet::new();
    for s in train.samples() {
        let c = label(&s.target);
        let (img, aud) = (&s.inputs[0], &s.inputs[1]);
        assert_eq!(img.shape, [1, 28, 28]);
        assert_eq!(aud.shape, [5, 13]);
        assert_eq!(img.data[0].floor() as i64, c, "image label matches");
        assert!(used.insert(img.data[0].to_bits()), "each image used once");
        let len = aud.length.unwrap() as usize;
        assert!((3..=5).contains(&len), "lengths 3..7 cropped to 5: {len}");
        assert!(aud.data[..len * 13].iter().all(|v| *v == c as f32));
        assert!(aud.data[len * 13..].iter().all(|v| *v == 0.0), "zero padding");
    }
    // Test images are not reused from training.
    for s in test.samples() {
        assert!(!used.contains(&s.inputs[0].data[0].to_bits()));
    }
    // Standardised audio: padding stays 0.
    let opts = AvMnistOptions { max_frames: 8, ..Default::default() };
    let (train, _) = load_avmnist(m.path(), f.path(), &opts).unwrap();
    let s = &train.samples()[0];
    let len = s.inputs[1].length.unwrap() as usize;
    assert!(s.inputs[1].data[len * 13..].iter().all(|v| *v == 0.0));
    // Broken inputs are reported with the file.
    std::fs::write(m.path().join("3.json"), "{\"data\": [1, 2]}").unwrap();
    let err = load_avmnist(m.path(), f.path(), &opts).unwrap_err().to_string();
    assert!(err.contains("3.json") && err.contains("784"), "{err}");
}
