//! CASIA-SURF reader, augmentation and synthetic generator.

use std::path::Path;
use std::sync::Arc;

use mmanet_core::ModalitySet;
use mmanet_data::seeding::{Stream, derive_rng};
use mmanet_data::surf::{SurfAugment, SurfDataset, write_synthetic_surf};
use mmanet_data::{DataError, DataLoader, Dataset, LoaderConfig, MaskPolicy, Target};

fn write_png_rgb(path: &Path, w: u32, h: u32, px: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(w, h, image::Rgb(px)).save(path).unwrap();
}

#[test]
fn list_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("a b c 1\na b c\n", ":2:", "4 fields"),
        ("a b c 1\n\na b c real\n", ":3:", "not an integer"),
        ("a b c 2\n", ":1:", "not 0 or 1"),
        ("\n\n", ":1:", "no sample"),
    ];
    for (text, at, what) in cases {
        std::fs::write(dir.path().join("list.txt"), text).unwrap();
        let err = SurfDataset::open(dir.path(), "list.txt").unwrap_err().to_string();
        assert!(err.contains(&format!("list.txt{at}")) && err.contains(what), "{err}");
    }
    let err = SurfDataset::open(dir.path(), "absent.txt").unwrap_err();
    assert!(matches!(err, DataError::Io { .. }) && err.to_string().contains("absent.txt"));
}

#[test]
fn reads_bgr_replicates_grey_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_png_rgb(&root.join("rgb.png"), 10, 6, [255, 0, 0]); // pure red
    image::GrayImage::from_pixel(8, 8, image::Luma([255])).save(root.join("d.png")).unwrap();
    image::GrayImage::from_pixel(8, 8, image::Luma([0])).save(root.join("i.png")).unwrap();
    std::fs::write(root.join("broken.jpg"), b"not a jpeg").unwrap();
    std::fs::write(
        root.join("list.txt"),
        "rgb.png d.png i.png 1\nrgb.png d.png missing.png 0\nrgb.png broken.jpg i.png 0\n",
    )
    .unwrap();
    let ds = SurfDataset::open(root, "list.txt")
        .unwrap()
        .with_augment(SurfAugment::sized(false, 8, 4))
        .unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.num_real(), 1);
    let missing = ds.check_files();
    assert_eq!(missing.len(), 1);
    assert!(missing[0].to_string().contains("list.txt:2"));

    let mut rng = derive_rng(0, 0, 0, Stream::Augment);
    let s = ds.get(0, &mut rng).unwrap();
    assert_eq!(s.target, Target::Class(1));
    assert!(s.inputs.iter().all(|m| m.shape == [3, 4, 4]));
    // BGR order: channel 0 = blue = 0, channel 2 = red = 255, normalised by (x - 127.5) / 128.
    let rgb = &s.inputs[0].data;
    assert!(rgb[..16].iter().all(|v| (*v + 127.5 / 128.0).abs() < 1e-5));
    assert!(rgb[32..].iter().all(|v| (*v - 127.5 / 128.0).abs() < 1e-5));
    // Grey depth is replicated to 3 equal channels.
    assert!(s.inputs[1].data.iter().all(|v| (*v - 127.5 / 128.0).abs() < 1e-5));

    let e1 = ds.get(1, &mut rng).unwrap_err().to_string();
    assert!(e1.contains("list.txt:2") && e1.contains("missing.png"), "{e1}");
    let e2 = ds.get(2, &mut rng).unwrap_err().to_string();
    assert!(e2.contains("list.txt:3") && e2.contains("broken.jpg"), "{e2}");
    assert!(ds.get(3, &mut rng).is_err());

    // The loader can skip and count them.
    let cfg = LoaderConfig { skip_bad_samples: true, ..LoaderConfig::eval(8) };
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let loader = DataLoader::new(Arc::new(ds), MaskPolicy::full(&set), cfg).unwrap();
    let mut it = loader.iter(0);
    let b = it.next().unwrap().unwrap();
    assert_eq!(b.indices, [0]);
    assert_eq!(it.skipped(), 2);
}

#[test]
fn train_augmentation_shares_geometry_and_is_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // An asymmetric grey pattern used for all three modalities.
    let img =
        image::GrayImage::from_fn(40, 40, |x, y| image::Luma([((x * 5 + y * 2) % 256) as u8]));
    img.save(root.join("a.png")).unwrap();
    std::fs::write(root.join("list.txt"), "a.png a.png a.png 0\n").unwrap();
    let aug = SurfAugment::sized(true, 40, 28);
    let ds = SurfDataset::open(root, "list.txt").unwrap().with_augment(aug).unwrap();
    let mut outs = Vec::new();
    for seed in 0..6 {
        let s = ds.get(0, &mut derive_rng(seed, 0, 0, Stream::Augment)).unwrap();
        assert!(s.inputs.iter().all(|m| m.shape == [3, 28, 28]));
        assert_eq!(s.inputs[0].data, s.inputs[1].data, "same geometry for every modality");
        assert_eq!(s.inputs[0].data, s.inputs[2].data);
        let again = ds.get(0, &mut derive_rng(seed, 0, 0, Stream::Augment)).unwrap();
        assert_eq!(again, s);
        outs.push(s.inputs[0].data.clone());
    }
    outs.dedup();
    assert!(outs.len() > 1, "different seeds give different augmentations");
    // A crop larger than the smallest rotation canvas is refused: int(32 * 0.8) = 25 < 28.
    assert!(SurfAugment::sized(true, 32, 28).validate().is_err());
}

/// Nearest-class-mean accuracy of one modality: means from `train`, scored on `test`.
fn centroid_accuracy(train: &SurfDataset, test: &SurfDataset, m: usize) -> f64 {
    let mut rng = derive_rng(0, 0, 0, Stream::Augment);
    let feats = |ds: &SurfDataset, rng: &mut _| -> Vec<(Vec<f32>, i64)> {
        (0..ds.len())
            .map(|i| {
                let s = ds.get(i, rng).unwrap();
                let Target::Class(y) = s.target else { unreachable!() };
                (s.inputs[m].data.clone(), y)
            })
            .collect()
    };
    let tr = feats(train, &mut rng);
    let dim = tr[0].0.len();
    let mut means = [vec![0f64; dim], vec![0f64; dim]];
    let mut counts = [0f64; 2];
    for (x, y) in &tr {
        counts[*y as usize] += 1.0;
        for (a, b) in means[*y as usize].iter_mut().zip(x) {
            *a += f64::from(*b);
        }
    }
    for (mean, c) in means.iter_mut().zip(counts) {
        mean.iter_mut().for_each(|v| *v /= c);
    }
    let te = feats(test, &mut rng);
    let correct = te
        .iter()
        .filter(|(x, y)| {
            let d = |k: usize| -> f64 {
                x.iter().zip(&means[k]).map(|(a, b)| (f64::from(*a) - b).powi(2)).sum()
            };
            i64::from(d(1) < d(0)) == *y
        })
        .count();
    correct as f64 / te.len() as f64
}

#[test]
fn synthetic_surf_is_learnable_at_graded_difficulty() {
    let dir = tempfile::tempdir().unwrap();
    let info = write_synthetic_surf(dir.path(), 160, 3, 40).unwrap();
    assert_eq!(info.counts, [160, 40, 40]);
    let test_aug = SurfAugment::sized(false, 40, 28);
    let open = |list: &str| {
        SurfDataset::open(dir.path(), list).unwrap().with_augment(test_aug.clone()).unwrap()
    };
    let (train, test) = (open(&info.lists[0]), open(&info.lists[2]));
    assert!(train.check_files().is_empty());
    let real = train.num_real();
    assert!((50..=110).contains(&real), "labels drawn with p = 1/2: {real} of 160");
    let acc: Vec<f64> = (0..3).map(|m| centroid_accuracy(&train, &test, m)).collect();
    // RGB easy, depth medium, IR hard but above chance (40 test samples; seed 3 measured
    // 1.0 / 0.9 / 0.65 when written).
    assert!(acc[0] >= 0.95, "{acc:?}");
    assert!(acc[1] >= 0.7, "{acc:?}");
    assert!(acc[2] > 0.5, "{acc:?}");
    // Same seed, same files.
    let dir2 = tempfile::tempdir().unwrap();
    write_synthetic_surf(dir2.path(), 160, 3, 40).unwrap();
    for name in
        ["train_list.txt", "Training/real_part/00007/ir/0.jpg", "Val/fake_part/00001/depth/0.jpg"]
    {
        let (a, b) = (std::fs::read(dir.path().join(name)), std::fs::read(dir2.path().join(name)));
        if let (Ok(a), Ok(b)) = (a, b) {
            assert_eq!(a, b, "{name}");
        }
    }
}

#[test]
fn training_pipeline_is_thread_count_independent() {
    let dir = tempfile::tempdir().unwrap();
    let info = write_synthetic_surf(dir.path(), 20, 9, 48).unwrap();
    let ds: Arc<dyn Dataset> = Arc::new(
        SurfDataset::open(dir.path(), &info.lists[0])
            .unwrap()
            .with_augment(SurfAugment::sized(true, 40, 28))
            .unwrap(),
    );
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let run = |threads| {
        let cfg = LoaderConfig { threads, ..LoaderConfig::train(6, 1) };
        let loader = DataLoader::new(ds.clone(), MaskPolicy::uniform_all(&set), cfg).unwrap();
        loader
            .iter(2)
            .map(|b| {
                let b = b.unwrap();
                assert_eq!(b.inputs[2].size(), [6, 3, 28, 28]);
                let max = b.inputs[0].abs().max().double_value(&[]);
                assert!(max <= 127.5 / 128.0 + 1e-6);
                (Vec::<f32>::try_from(b.inputs[0].flatten(0, -1)).unwrap(), b.indices, b.combos)
            })
            .collect::<Vec<_>>()
    };
    let one = run(1);
    assert_eq!(one.len(), 3);
    assert_eq!(one, run(2));
}

/// Hides `fixed_shapes`, so the loader takes the per-sample `get` + collate path.
struct PerSample(Arc<dyn Dataset>);

impl Dataset for PerSample {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn modalities(&self) -> &ModalitySet {
        self.0.modalities()
    }
    fn task(&self) -> mmanet_data::Task {
        self.0.task()
    }
    fn get(
        &self,
        index: usize,
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> mmanet_data::Result<mmanet_data::Sample> {
        self.0.get(index, rng)
    }
}

#[test]
fn direct_batch_decoding_equals_per_sample_collation() {
    let dir = tempfile::tempdir().unwrap();
    let info = write_synthetic_surf(dir.path(), 14, 5, 48).unwrap();
    // Two broken entries in the middle of the list: skipped samples must be compacted away.
    let list = std::fs::read_to_string(dir.path().join(&info.lists[0])).unwrap();
    let mut lines: Vec<String> = list.lines().map(str::to_string).collect();
    lines.insert(3, "missing/a.jpg missing/b.jpg missing/c.jpg 1".into());
    lines.insert(9, "missing/d.jpg missing/e.jpg missing/f.jpg 0".into());
    std::fs::write(dir.path().join("list.txt"), lines.join("\n")).unwrap();
    let ds: Arc<dyn Dataset> = Arc::new(
        SurfDataset::open(dir.path(), "list.txt")
            .unwrap()
            .with_augment(SurfAugment::sized(true, 40, 28))
            .unwrap(),
    );
    assert!(ds.fixed_shapes().is_some());
    let slow: Arc<dyn Dataset> = Arc::new(PerSample(ds.clone()));
    assert!(slow.fixed_shapes().is_none());
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let run = |data: &Arc<dyn Dataset>, threads: usize| {
        let cfg = LoaderConfig {
            threads,
            skip_bad_samples: true,
            ..LoaderConfig { shuffle: true, ..LoaderConfig::eval(5) }
        };
        let loader = DataLoader::new(data.clone(), MaskPolicy::uniform_all(&set), cfg).unwrap();
        let mut it = loader.iter(1);
        let batches: Vec<_> = it
            .by_ref()
            .map(|b| {
                let b = b.unwrap();
                let inputs: Vec<Vec<f32>> = b
                    .inputs
                    .iter()
                    .map(|t| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())
                    .collect();
                let sizes: Vec<Vec<i64>> = b.inputs.iter().map(|t| t.size()).collect();
                let targets = Vec::<i64>::try_from(&b.targets).unwrap();
                let mask = Vec::<f32>::try_from(b.mask.flatten(0, -1)).unwrap();
                (inputs, sizes, targets, mask, b.indices, b.combos)
            })
            .collect();
        (batches, it.skipped())
    };
    let (direct, skipped) = run(&ds, 2);
    assert_eq!(skipped, 2);
    // 16 entries in batches of 5, two of them broken: 14 samples in 4 batches.
    assert_eq!(direct.iter().map(|b| b.4.len()).sum::<usize>(), 14);
    assert_eq!(direct.len(), 4);
    assert!(direct.iter().all(|b| b.1.iter().all(|s| s[1..] == [3, 28, 28])));
    assert_eq!(direct, run(&slow, 2).0);
    assert_eq!(direct, run(&ds, 1).0);
}
