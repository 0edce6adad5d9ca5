//! The manifest reader on small files written here: CSV and JSON Lines, images and inline
//! vectors, cells really missing, seeded splits, and every bad input named by file and line.

use std::path::Path;

use mmanet_data::manifest::{ManifestDecoder, ManifestModality, ManifestSource, SplitFractions};
use mmanet_data::{DataSource, Dataset, OpenOptions, Split};

const SKIP: OpenOptions = OpenOptions { skip_bad_samples: true, decoded_cache_bytes: 0 };
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn write_png(path: &Path, value: u8) {
    image::RgbImage::from_pixel(6, 4, image::Rgb([value, value / 2, 255 - value]))
        .save(path)
        .unwrap();
}

/// 40 samples, 2 classes; `img` missing on every 5th sample, `vec` on every 7th (never both).
fn write_set(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let mut csv = String::from("id,label,img,vec\n");
    for i in 0..40 {
        let label = if i % 2 == 0 { "cat" } else { "dog" };
        let img = if i % 5 == 0 {
            String::new()
        } else {
            let p = format!("img/{i}.png");
            write_png(&dir.join(&p), (i * 5) as u8);
            p
        };
        let vec =
            if i % 7 == 6 && i % 5 != 0 { String::new() } else { format!("{} {} 1", i, i % 2) };
        csv += &format!("s{i},{label},{img},{vec}\n");
    }
    let path = dir.join("data.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn source(path: &Path) -> ManifestSource {
    ManifestSource {
        path: path.to_path_buf(),
        modalities: vec![
            ManifestModality {
                name: "img".into(),
                symbol: None,
                decoder: ManifestDecoder::Image {
                    size: [4, 4],
                    channels: 3,
                    mean: 0.5,
                    std: 0.5,
                    flip: false,
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
        split: SplitFractions { val: 0.2, test: 0.2, seed: 3 },
        cache: Default::default(),
    }
}

#[test]
fn splits_availability_and_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(&write_set(dir.path()));
    src.check().unwrap();
    let sizes: Vec<usize> = [Split::Train, Split::Val, Split::Test]
        .iter()
        .map(|s| src.open(*s, 0).unwrap().len())
        .collect();
    assert_eq!(sizes, [24, 8, 8], "stratified 60/20/20 of 20 per class");
    let train = src.open(Split::Train, 0).unwrap();
    assert_eq!(train.modalities().to_string(), "I+V");
    let mut lacking = 0;
    for i in 0..train.len() {
        let a = train.availability(i);
        let s = train.get(i, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        assert_eq!(s.inputs[0].shape, [3, 4, 4]);
        assert_eq!(s.inputs[1].shape, [3]);
        for m in 0..2 {
            if !a.contains(m) {
                lacking += 1;
                assert!(s.inputs[m].data.iter().all(|v| *v == 0.0), "placeholder");
            }
        }
    }
    assert!(lacking > 0);
    // Classes in sorted order, saved in the input spec with the vector statistics.
    let spec = src.input_spec(0).unwrap();
    assert_eq!(spec.classes, ["cat", "dog"]);
    match &spec.modalities[1].decoder {
        mmanet_data::input_spec::Decoder::Vector { standardize: Some(s), .. } => {
            assert_eq!(s.mean.len(), 3);
            assert_eq!(s.std[2], 1.0, "a constant feature keeps std 1");
        }
        other => panic!("{other:?}"),
    }
    // The same rows as JSON Lines (arrays for the vector, null when missing) read the same.
    let csv = std::fs::read_to_string(dir.path().join("data.csv")).unwrap();
    let mut jsonl = String::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let img = if f[2].is_empty() { "null".to_string() } else { format!("\"{}\"", f[2]) };
        let vec = if f[3].is_empty() {
            "null".to_string()
        } else {
            format!("[{}]", f[3].split(' ').collect::<Vec<_>>().join(","))
        };
        jsonl += &format!(
            "{{\"id\": \"{}\", \"label\": \"{}\", \"img\": {img}, \"vec\": {vec}}}\n",
            f[0], f[1]
        );
    }
    std::fs::write(dir.path().join("data.jsonl"), jsonl).unwrap();
    let j = ManifestSource { path: dir.path().join("data.jsonl"), ..src.clone() };
    let jt = j.open(Split::Train, 0).unwrap();
    assert_eq!(jt.len(), train.len());
    for i in 0..jt.len() {
        assert_eq!(jt.availability(i), train.availability(i));
        let a = jt.get(i, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        let b = train.get(i, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn groups_stay_in_one_split_and_split_columns_are_obeyed() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("id,label,group,vec\n");
    for i in 0..60 {
        csv += &format!("s{i},{},subject{},{} 0 0\n", i % 3, i / 6, i);
    }
    std::fs::write(dir.path().join("g.csv"), &csv).unwrap();
    let mut src = source(&dir.path().join("g.csv"));
    src.modalities.remove(0);
    src.modalities[0].decoder = ManifestDecoder::Vector { len: 3, standardize: false };
    let mut where_is = std::collections::HashMap::new();
    for split in [Split::Train, Split::Val, Split::Test] {
        let d = src.open(split, 0).unwrap();
        for i in 0..d.len() {
            // The vector's first value is the sample number; its subject is number / 6.
            let s = d.get(i, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
            where_is.insert(s.inputs[0].data[0] as usize, split);
        }
    }
    assert_eq!(where_is.len(), 60);
    for subject in 0..10 {
        let splits: std::collections::HashSet<_> =
            (subject * 6..subject * 6 + 6).map(|i| where_is[&i]).collect();
        assert_eq!(splits.len(), 1, "subject {subject} is split: {splits:?}");
    }
    let in_test = (0..60).filter(|i| where_is[i] == Split::Test).count();
    assert_eq!(in_test, 12, "2 of 10 subjects");
    let with_split =
        "id,label,split,vec\na,0,train,1 2 3\nb,1,test,4 5 6\nc,1,val,7 8 9\nd,0,train,1 1 1\n";
    std::fs::write(dir.path().join("s.csv"), with_split).unwrap();
    let s2 = ManifestSource { path: dir.path().join("s.csv"), ..src.clone() };
    assert_eq!(s2.open(Split::Train, 0).unwrap().len(), 2);
    assert_eq!(s2.open(Split::Test, 0).unwrap().len(), 1);
}

#[test]
fn bad_manifests_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let base = source(&write_set(dir.path()));
    let cases = [
        ("id,label,img,vec\ns1,cat,img/1.png\n", "2: 3 columns"),
        ("id,label,img,vec\ns1,cat,,\n", "no modality at all"),
        ("id,label,img,vec\ns1,cat,img/nope.png,1 2 3\n", "column `img`"),
        ("id,label,img,vec,radar\ns1,cat,img/1.png,1 2 3,x\n", "column `radar` is not a modality"),
        ("id,label,img\ns1,cat,img/1.png\n", "declares modality `vec`"),
        (
            "id,label,img,vec\ns1,cat,img/1.png,1 2 3\ns1,dog,img/2.png,1 2 3\n",
            "3: column `id`: `s1` already on line 2",
        ),
        ("id,label,img,vec\ns1,cat,img/1.png,1 2 3\ns2,dog,img/2.png,1 2\n", "column `vec`"),
        ("label,img,vec\ncat,img/1.png,1 2 3\n", "`id` and a `label`"),
        ("id,label,split,img,vec\ns1,cat,later,img/1.png,1 2 3\n", "`later` is not train"),
        ("id,label,img,vec\ns1,cat,img/1.png,1 inf 3\n", "column `vec`"),
    ];
    for (k, (text, want)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad{k}.csv"));
        std::fs::write(&p, text).unwrap();
        let src = ManifestSource { path: p.clone(), ..base.clone() };
        let err = src.open(Split::Train, 0).err().map(|e| e.to_string()).unwrap_or_default();
        let err = if err.is_empty() {
            // Errors found while decoding come from reading the samples.
            let d = src.open(Split::Train, 0).unwrap();
            (0..d.len())
                .find_map(|i| d.get(i, &mut ChaCha8Rng::seed_from_u64(0)).err())
                .map(|e| e.to_string())
                .unwrap_or_default()
        } else {
            err
        };
        assert!(err.contains(&format!("bad{k}.csv")) && err.contains(want), "case {k}: {err}");
    }
    // An unknown class against configured class names.
    let p = dir.path().join("classes.csv");
    std::fs::write(&p, "id,label,img,vec\ns1,bird,img/1.png,1 2 3\n").unwrap();
    let src = ManifestSource { path: p, classes: vec!["cat".into(), "dog".into()], ..base };
    let err = src.open(Split::Train, 0).err().unwrap().to_string();
    assert!(err.contains("classes.csv:2") && err.contains("unknown class `bird`"), "{err}");
}

/// `write_set`'s 40 samples followed by one bad line of each kind the reader finds when it
/// opens (lines 42-50), and the expected `line: message` starts.
fn write_with_bad_lines(dir: &Path) -> (std::path::PathBuf, Vec<&'static str>) {
    let path = write_set(dir);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text += "s40,cat,img/1.png\n"; // 42
    text += "s41,cat,,\n"; // 43
    text += "s42,dog,img/none.png,1 2 3\n"; // 44
    text += "s1,dog,img/1.png,1 2 3\n"; // 45
    text += "s43,dog,img/1.png,1 nan 3\n"; // 46
    text += ",dog,img/1.png,1 2 3\n"; // 47
    text += "s44,,img/1.png,1 2 3\n"; // 48
    text += "s45,bird,img/1.png,1 2 3\n"; // 49
    text += "s46,dog,img/1.png,1 2\n"; // 50
    std::fs::write(&path, text).unwrap();
    let want = vec![
        "42: 3 columns, the header has 4",
        "43: sample `s41` has no modality at all",
        "44: column `img`:",
        "45: column `id`: `s1` already on line 3",
        "46: column `vec`: value 2 is not finite",
        "47: column `id` is empty",
        "48: column `label` is empty",
        "49: column `label`: unknown class `bird`",
        "50: column `vec`: 2 values, the decoder takes 3",
    ];
    (path, want)
}

#[test]
fn skip_bad_samples_leaves_bad_lines_out_and_lists_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let (path, want) = write_with_bad_lines(dir.path());
    let src = ManifestSource { classes: vec!["cat".into(), "dog".into()], ..source(&path) };
    // Without skipping: the first bad line is the error.
    let err = src.open(Split::Train, 0).err().unwrap().to_string();
    assert!(err.contains("data.csv:42: 3 columns"), "{err}");
    // Skipping: every split holds exactly the 40 good samples, and every bad line is listed.
    let mut total = 0;
    for split in [Split::Train, Split::Val, Split::Test] {
        let opened = src.open_with(split, 0, &SKIP).unwrap();
        total += opened.data.len();
        assert_eq!(opened.skipped.len(), want.len());
        for (got, want) in opened.skipped.iter().zip(&want) {
            let tail = got.rsplit("data.csv:").next().unwrap();
            assert!(tail.starts_with(want), "{got} does not start with {want}");
        }
    }
    assert_eq!(total, 40);
    // The good lines split as they do without the bad ones.
    let clean = source(&write_set(&dir.path().join("clean")));
    for split in [Split::Train, Split::Val, Split::Test] {
        let (a, b) = (src.open_with(split, 0, &SKIP).unwrap().data, clean.open(split, 0).unwrap());
        let values = |d: &dyn Dataset| -> Vec<Vec<f32>> {
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            (0..d.len()).map(|i| d.get(i, &mut rng).unwrap().inputs[1].data.clone()).collect()
        };
        assert_eq!(values(a.as_ref()), values(b.as_ref()), "{split:?}");
    }
    // Errors of the file as a whole are not skipped.
    for (k, text) in ["label,img,vec\ncat,img/1.png,1 2 3\n", "id,label,img\ns1,cat,img/1.png\n"]
        .iter()
        .enumerate()
    {
        let p = dir.path().join(format!("whole{k}.csv"));
        std::fs::write(&p, text).unwrap();
        let s = ManifestSource { path: p, ..src.clone() };
        assert!(s.open_with(Split::Train, 0, &SKIP).is_err(), "case {k}");
    }
    // A manifest without one good line is an error, naming the first bad one.
    let p = dir.path().join("allbad.csv");
    std::fs::write(&p, "id,label,img,vec\ns1,cat,,\n").unwrap();
    let err = ManifestSource { path: p, ..src.clone() }.open_with(Split::Train, 0, &SKIP);
    let err = err.err().unwrap().to_string();
    assert!(err.contains("allbad.csv:2: sample `s1` has no modality at all"), "{err}");
}

#[test]
fn the_manifest_is_read_once_until_its_file_or_config_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_set(dir.path());
    let src = source(&path);
    let copy = src.clone();
    for split in [Split::Train, Split::Val, Split::Test, Split::Train] {
        src.open(split, 0).unwrap();
        copy.open_with(split, 0, &SKIP).unwrap();
    }
    src.input_spec(0).unwrap();
    assert_eq!(src.cache.reads(), 1, "clones share one read");
    // Another config (class order) reads again; so does a changed file.
    let other = ManifestSource { classes: vec!["dog".into(), "cat".into()], ..src.clone() };
    assert_eq!(other.input_spec(0).unwrap().classes, ["dog", "cat"]);
    assert_eq!(src.cache.reads(), 2);
    let text = std::fs::read_to_string(&path).unwrap() + "s99,dog,img/1.png,1 2 3\n";
    std::fs::write(&path, text).unwrap();
    let n: usize = [Split::Train, Split::Val, Split::Test]
        .iter()
        .map(|s| src.open(*s, 0).unwrap().len())
        .sum();
    assert_eq!(n, 41);
    assert_eq!(src.cache.reads(), 3);
    // A failed read is not kept.
    std::fs::write(&path, "id,label,img\n").unwrap();
    assert!(src.open(Split::Train, 0).is_err());
    assert!(src.open(Split::Train, 0).is_err());
    assert_eq!(src.cache.reads(), 5);
}

/// A manifest over the synthetic CASIA-SURF files with SURF's training chain (`augment`),
/// against the SURF reader with the same chain: the same values (the colour modality in RGB
/// instead of BGR), one geometry for every modality of a sample, and zeros for a missing one.
#[test]
fn augment_runs_the_surf_training_chain_with_shared_draws() {
    use mmanet_data::manifest::ImageAugment;
    use mmanet_data::surf::{SurfAugment, SurfDataset, write_synthetic_surf};
    let dir = tempfile::tempdir().unwrap();
    let info = write_synthetic_surf(dir.path(), 6, 0, 40).unwrap();
    let surf = SurfDataset::open(dir.path(), &info.lists[0])
        .unwrap()
        .with_augment(SurfAugment::sized(true, 32, 24))
        .unwrap();
    let mut csv = String::from("id,label,split,rgb,depth,ir\n");
    for (i, e) in surf.entries().iter().enumerate() {
        let p: Vec<String> = e.paths.iter().map(|p| p.display().to_string()).collect();
        // Sample 1 lacks its depth map.
        let depth = if i == 1 { "" } else { p[1].as_str() };
        csv += &format!("s{i},{},train,{},{depth},{}\n", e.label, p[0], p[2]);
    }
    let path = dir.path().join("surf.csv");
    std::fs::write(&path, csv).unwrap();
    let image = || ManifestDecoder::Image {
        size: [24, 24],
        channels: 3,
        mean: 0.5,
        std: 128.0 / 255.0,
        flip: true,
        augment: Some(ImageAugment { resize: 32, max_angle: 30, canvas_ratio: 0.8 }),
    };
    let modality =
        |name: &str| ManifestModality { name: name.into(), symbol: None, decoder: image() };
    let src = ManifestSource {
        path,
        modalities: vec![modality("rgb"), modality("depth"), modality("ir")],
        classes: vec!["0".into(), "1".into()],
        split: SplitFractions::default(),
        cache: Default::default(),
    };
    src.check().unwrap();
    let train = src.open(Split::Train, 0).unwrap();
    assert_eq!(train.len(), surf.len());
    let plane = 24 * 24;
    for i in 0..surf.len() {
        let rng = ChaCha8Rng::seed_from_u64(100 + i as u64);
        let want = surf.get(i, &mut rng.clone()).unwrap();
        let got = train.get(i, &mut rng.clone()).unwrap();
        for m in 0..3 {
            let (w, g) = (&want.inputs[m].data, &got.inputs[m].data);
            assert_eq!(got.inputs[m].shape, [3, 24, 24]);
            if i == 1 && m == 1 {
                assert!(g.iter().all(|v| *v == 0.0), "a missing modality is zeros");
                continue;
            }
            for k in 0..3 {
                // SURF writes BGR, the manifest RGB.
                let kk = if m == 0 { 2 - k } else { k };
                let (w, g) = (&w[kk * plane..][..plane], &g[k * plane..][..plane]);
                let worst = w.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst < 1e-5, "sample {i} modality {m} channel {k}: {worst}");
            }
        }
        // The loader's path (straight into the batch buffers) gives the same values.
        let mut outs = vec![vec![f32::NAN; 3 * plane]; 3];
        let mut slots: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
        train.get_into(i, &mut rng.clone(), &mut slots).unwrap();
        for (out, input) in outs.iter().zip(&got.inputs) {
            assert_eq!(*out, input.data);
        }
    }
    // Checked settings, each naming the field.
    let with = |f: &dyn Fn(&mut ManifestDecoder)| {
        let mut s = src.clone();
        f(&mut s.modalities[1].decoder);
        s.check().err().map(|e| e.to_string()).unwrap_or_default()
    };
    let set_size = |d: &mut ManifestDecoder| {
        if let ManifestDecoder::Image { size, .. } = d {
            *size = [24, 20];
        }
    };
    let set_grey = |d: &mut ManifestDecoder| {
        if let ManifestDecoder::Image { channels, .. } = d {
            *channels = 1;
        }
    };
    let set_crop = |d: &mut ManifestDecoder| {
        if let ManifestDecoder::Image { size, .. } = d {
            *size = [30, 30];
        }
    };
    for (f, want) in [
        (&set_size as &dyn Fn(&mut ManifestDecoder), "square"),
        (&set_grey, "channels = 3"),
        (&set_crop, "crop 30 must fit"),
    ] {
        let e = with(f);
        assert!(e.contains("modalities[1].decoder.augment") && e.contains(want), "{e}");
    }
}

/// Files that exist but do not decode as their column's decoder says: each a `get` error
/// naming the manifest, the line and the column (and the file), while the good rows decode.
#[test]
fn files_that_do_not_decode_are_errors_naming_line_and_column() {
    use mmanet_data::npy::write_npy;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_png(&d.join("ok.png"), 9);
    std::fs::write(d.join("corrupt.png"), b"\x89PNG\r\n\x1a\n not really").unwrap();
    let f32s = |n: usize| -> Vec<u8> { (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect() };
    write_npy(&d.join("a23.npy"), "<f4", &[2, 3], &f32s(6)).unwrap();
    write_npy(&d.join("a32.npy"), "<f4", &[3, 2], &f32s(6)).unwrap();
    write_npy(&d.join("c8.npy"), "<c8", &[2, 3], &f32s(12)).unwrap();
    write_npy(&d.join("s54.npy"), "<f4", &[5, 4], &f32s(20)).unwrap();
    write_npy(&d.join("s55.npy"), "<f4", &[5, 5], &f32s(25)).unwrap();
    write_npy(&d.join("u1.npy"), "|u1", &[2, 3], &[0, 1, 2, 3, 4, 255]).unwrap();
    let i8s: Vec<u8> = (0..6i64).flat_map(|v| (v - 3).to_le_bytes()).collect();
    write_npy(&d.join("i8.npy"), "<i8", &[2, 3], &i8s).unwrap();
    let csv = "id,label,split,img,arr,seq\n\
               good,a,train,ok.png,a23.npy,s54.npy\n\
               img,a,train,corrupt.png,a23.npy,s54.npy\n\
               shape,b,train,ok.png,a32.npy,s54.npy\n\
               dtype,b,train,ok.png,c8.npy,s54.npy\n\
               feat,b,train,ok.png,a23.npy,s55.npy\n\
               u1,b,train,ok.png,u1.npy,s54.npy\n\
               i8,b,train,ok.png,i8.npy,s54.npy\n";
    std::fs::write(d.join("data.csv"), csv).unwrap();
    let m = |name: &str, decoder| ManifestModality { name: name.into(), symbol: None, decoder };
    let src = ManifestSource {
        path: d.join("data.csv"),
        modalities: vec![
            m(
                "img",
                ManifestDecoder::Image {
                    size: [4, 4],
                    channels: 3,
                    mean: 0.5,
                    std: 0.5,
                    flip: false,
                    augment: None,
                },
            ),
            m("arr", ManifestDecoder::Array { shape: vec![2, 3] }),
            m("seq", ManifestDecoder::Sequence { max_len: 8, features: 4 }),
        ],
        classes: vec![],
        split: SplitFractions::default(),
        cache: Default::default(),
    };
    let data = src.open(Split::Train, 0).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let good = data.get(0, &mut rng).unwrap();
    assert_eq!(good.inputs[2].length, Some(5), "the true length of the sequence");
    for (i, line, column, file) in [
        (1, 3, "img", "corrupt.png"),
        (2, 4, "arr", "a32.npy"),
        (3, 5, "arr", "c8.npy"),
        (4, 6, "seq", "s55.npy"),
    ] {
        let e = data.get(i, &mut rng).err().map(|e| e.to_string()).unwrap_or_default();
        let at = format!("data.csv:{line}: column `{column}`");
        assert!(e.contains(&at) && e.contains(file), "row {i}: {e}");
    }
    // Integer arrays read as their values.
    assert_eq!(data.get(5, &mut rng).unwrap().inputs[1].data, [0.0, 1.0, 2.0, 3.0, 4.0, 255.0]);
    assert_eq!(data.get(6, &mut rng).unwrap().inputs[1].data, [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0]);
}

/// The manifest's augmented images with the decoded-image cache: the same values as without.
#[test]
fn the_decoded_cache_serves_augmented_manifest_images_unchanged() {
    use mmanet_data::manifest::ImageAugment;
    use mmanet_data::surf::{SurfDataset, write_synthetic_surf};
    use mmanet_data::{
        OpenOptions,
        seeding::{Stream, derive_rng},
    };
    let dir = tempfile::tempdir().unwrap();
    let info = write_synthetic_surf(dir.path(), 5, 0, 40).unwrap();
    let surf = SurfDataset::open(dir.path(), &info.lists[0]).unwrap();
    let mut csv = String::from("id,label,split,rgb,ir\n");
    for (i, e) in surf.entries().iter().enumerate() {
        let ir = if i == 2 { String::new() } else { e.paths[2].display().to_string() };
        csv += &format!("s{i},{},train,{},{ir}\n", e.label, e.paths[0].display());
    }
    std::fs::write(dir.path().join("m.csv"), csv).unwrap();
    // Augmented (the 8-bit planes are kept) and plain (the decoded input is kept) images.
    for augment in [Some(ImageAugment { resize: 32, max_angle: 20, canvas_ratio: 0.8 }), None] {
        let decoder = ManifestDecoder::Image {
            size: [24, 24],
            channels: 3,
            mean: 0.5,
            std: 0.5,
            flip: true,
            augment: augment.clone(),
        };
        let m = |name: &str| ManifestModality {
            name: name.into(),
            symbol: None,
            decoder: decoder.clone(),
        };
        let src = ManifestSource {
            path: dir.path().join("m.csv"),
            modalities: vec![m("rgb"), m("ir")],
            classes: vec![],
            split: SplitFractions::default(),
            cache: Default::default(),
        };
        let plain = src.open(Split::Train, 0).unwrap();
        assert!(plain.decoded_cache_stats().is_none());
        let options = OpenOptions { skip_bad_samples: false, decoded_cache_bytes: 1 << 30 };
        let cached = src.open_with(Split::Train, 0, &options).unwrap().data;
        for epoch in 0..3 {
            for i in 0..plain.len() {
                let rng = derive_rng(1, epoch, i as u64, Stream::Augment);
                let a = plain.get(i, &mut rng.clone()).unwrap();
                let b = cached.get(i, &mut rng.clone()).unwrap();
                for (x, y) in a.inputs.iter().zip(&b.inputs) {
                    assert_eq!(x.data, y.data, "epoch {epoch} sample {i}");
                }
            }
        }
        // Five samples, one without `ir`: misses in the first epoch, hits in the next two.
        let s = cached.decoded_cache_stats().unwrap();
        let reads = if augment.is_some() { 5 } else { 9 };
        assert_eq!((s.misses, s.hits), (reads, 2 * reads), "{augment:?}: {s:?}");
    }
}

/// JSON Lines: each bad line an error naming the file and line (and the column where one is at
/// fault); with skip_bad_samples the good lines stay.
#[test]
fn bad_json_lines_name_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let base = source(&write_set(dir.path()));
    let good = r#"{"id": "a", "label": "cat", "img": "img/1.png", "vec": [1, 2, 3]}"#;
    let cases = [
        ("not json", "2: not a JSON object"),
        ("[1, 2]", "2: not a JSON object"),
        (
            r#"{"id": "b", "label": "cat", "img": "img/1.png", "vec": [1, 2, 3], "radar": 1}"#,
            "2: column `radar` is not a modality",
        ),
        (
            r#"{"id": "b", "label": "cat", "img": "img/1.png"}"#,
            "2: the config declares modality `vec`",
        ),
        (
            r#"{"id": "b", "label": "cat", "img": 7, "vec": [1, 2, 3]}"#,
            "2: column `img`: expected a path",
        ),
        (
            r#"{"id": "b", "label": "cat", "img": "img/1.png", "vec": [1, "x", 3]}"#,
            "2: column `vec`",
        ),
        (
            r#"{"id": "a", "label": "cat", "img": "img/1.png", "vec": [1, 2, 3]}"#,
            "2: column `id`: `a` already on line 1",
        ),
        (
            r#"{"id": "b", "label": ["cat"], "img": "img/1.png", "vec": [1, 2, 3]}"#,
            "2: column `label`",
        ),
        (
            r#"{"id": "b", "label": "cat", "img": null, "vec": null}"#,
            "2: sample `b` has no modality at all",
        ),
    ];
    for (k, (line, want)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad{k}.jsonl"));
        std::fs::write(&p, format!("{good}\n{line}\n")).unwrap();
        let src = ManifestSource { path: p.clone(), ..base.clone() };
        let err = src.open(Split::Train, 0).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(&format!("bad{k}.jsonl:{want}")), "case {k}: {err}");
        let kept: usize = [Split::Train, Split::Val, Split::Test]
            .iter()
            .map(|s| src.open_with(*s, 0, &SKIP).unwrap().data.len())
            .sum();
        assert_eq!(kept, 1, "case {k}: the good line stays");
    }
}
