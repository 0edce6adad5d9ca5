//! NYUv2 reader, segmentation augmentation and the synthetic RGB-D set.

use std::sync::Arc;

use mmanet_core::ModalitySet;
use mmanet_data::nyuv2::{
    DEPTH_MEAN, DEPTH_STD, IMAGENET_MEAN, IMAGENET_STD, Nyuv2Augment, Nyuv2Dataset,
    SYNTHETIC_NYUV2_CLASSES, write_synthetic_nyuv2,
};
use mmanet_data::seeding::{Stream, derive_rng};
use mmanet_data::{DataLoader, Dataset, LoaderConfig, MaskPolicy, Target, Task};

#[test]
fn synthetic_scenes_read_back_with_graded_cues() {
    let dir = tempfile::tempdir().unwrap();
    let info = write_synthetic_nyuv2(dir.path(), 12, 4, 24, 32).unwrap();
    assert_eq!(info.counts, [12, 3]);
    let ds = Nyuv2Dataset::open(dir.path(), "train", SYNTHETIC_NYUV2_CLASSES).unwrap();
    assert_eq!(ds.len(), 12);
    assert_eq!(ds.task(), Task::Segmentation { num_classes: 5 });
    assert_eq!(std::fs::read_to_string(dir.path().join("test.txt")).unwrap(), "0001\n0002\n0003\n");

    // Per-class mean of raw colour and depth (undoing the normalisation).
    let mut sums = [[0f64; 5]; 6]; // [class][r, g, b, depth, count]
    let mut rng = derive_rng(0, 0, 0, Stream::Augment);
    for i in 0..ds.len() {
        let s = ds.get(i, &mut rng).unwrap();
        assert_eq!(s.inputs[0].shape, [3, 24, 32]);
        assert_eq!(s.inputs[1].shape, [1, 24, 32]);
        let Target::Segmentation { labels, height, width } = &s.target else { panic!() };
        assert_eq!((*height, *width), (24, 32));
        assert_eq!(labels[0], 0, "the frame is void");
        for (p, l) in labels.iter().enumerate() {
            let row = &mut sums[*l as usize];
            for c in 0..3 {
                let v = s.inputs[0].data[c * 768 + p] * IMAGENET_STD[c] * 255.0
                    + IMAGENET_MEAN[c] * 255.0;
                row[c] += f64::from(v);
            }
            row[3] += f64::from(s.inputs[1].data[p] * DEPTH_STD + DEPTH_MEAN);
            row[4] += 1.0;
        }
    }
    let mean = |k: usize, c: usize| sums[k][c] / sums[k][4];
    assert!((1..=5).all(|k| sums[k][4] > 0.0), "every class appears: {sums:?}");
    // Classes 1 and 2: same depth band (near), different colour.
    assert!((mean(1, 3) - mean(2, 3)).abs() < 200.0 && mean(1, 0) - mean(2, 0) > 80.0);
    // Classes 3 and 4: same grey colour, different depth.
    for c in 0..3 {
        assert!((mean(3, c) - mean(4, c)).abs() < 20.0);
    }
    assert!(mean(3, 3) - mean(4, 3) > 900.0);
    // The wall is far.
    assert!(mean(5, 3) > 3500.0);
}

#[test]
fn train_augmentation_crops_jitters_and_keeps_labels_aligned() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_nyuv2(dir.path(), 4, 1, 24, 32).unwrap();
    let ds = Nyuv2Dataset::open(dir.path(), "train", 5)
        .unwrap()
        .with_augment(Nyuv2Augment::train(16, 20))
        .unwrap();
    let plain = Nyuv2Dataset::open(dir.path(), "train", 5).unwrap();
    let orig = plain.get(0, &mut derive_rng(0, 0, 0, Stream::Augment)).unwrap();
    let Target::Segmentation { labels: orig_labels, .. } = &orig.target else { panic!() };
    let orig_depths: std::collections::HashSet<u32> =
        orig.inputs[1].data.iter().map(|v| v.to_bits()).collect();
    let mut distinct = std::collections::HashSet::new();
    for seed in 0..5 {
        let s = ds.get(0, &mut derive_rng(seed, 0, 0, Stream::Augment)).unwrap();
        assert_eq!(s, ds.get(0, &mut derive_rng(seed, 0, 0, Stream::Augment)).unwrap());
        assert_eq!(s.inputs[0].shape, [3, 16, 20]);
        assert_eq!(s.inputs[1].shape, [1, 16, 20]);
        let Target::Segmentation { labels, height: 16, width: 20 } = &s.target else { panic!() };
        // Nearest resampling keeps labels and depths from the original sets.
        assert!(labels.iter().all(|l| orig_labels.contains(l)));
        assert!(s.inputs[1].data.iter().all(|d| orig_depths.contains(&d.to_bits())));
        distinct.insert(labels.clone());
    }
    assert!(distinct.len() > 1, "crops differ across seeds");
    assert!(Nyuv2Augment { scale_min: 2.0, ..Nyuv2Augment::train(8, 8) }.validate().is_err());

    // Not larger than the crop (24 rows <= 24): resized to the crop size, as ESANet does.
    let aug = Nyuv2Augment { scale_min: 1.0, scale_max: 1.0, ..Nyuv2Augment::train(24, 40) };
    let ds = Nyuv2Dataset::open(dir.path(), "train", 5).unwrap().with_augment(aug).unwrap();
    let s = ds.get(0, &mut derive_rng(0, 0, 0, Stream::Augment)).unwrap();
    assert_eq!(s.inputs[0].shape, [3, 24, 40]);
}

#[test]
fn loader_batches_label_maps_and_errors_name_files() {
    let dir = tempfile::tempdir().unwrap();
    write_synthetic_nyuv2(dir.path(), 5, 2, 16, 16).unwrap();
    let ds = Nyuv2Dataset::open(dir.path(), "train", 5).unwrap();
    let set = ModalitySet::from_names(["rgb", "depth"]).expect("valid set");
    let loader =
        DataLoader::new(Arc::new(ds), MaskPolicy::uniform_all(&set), LoaderConfig::train(2, 0))
            .unwrap();
    let batches: Vec<_> = loader.iter(0).map(Result::unwrap).collect();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].inputs[0].size(), [2, 3, 16, 16]);
    assert_eq!(batches[0].inputs[1].size(), [2, 1, 16, 16]);
    assert_eq!(batches[0].targets.size(), [2, 16, 16]);
    assert_eq!(batches[0].mask.size(), [2, 2]);

    std::fs::remove_file(dir.path().join("train/depth/0003.png")).unwrap();
    std::fs::write(dir.path().join("extra.txt"), "0001\n0002 0003\n").unwrap();
    let err = Nyuv2Dataset::open(dir.path(), "extra", 5).unwrap_err().to_string();
    assert!(err.contains("extra.txt:2"), "{err}");
    let ds = Nyuv2Dataset::open(dir.path(), "train", 5).unwrap();
    let err = ds.get(2, &mut derive_rng(0, 0, 0, Stream::Augment)).unwrap_err().to_string();
    assert!(err.contains("train.txt:3") && err.contains("0003.png"), "{err}");
    // Labels above the class count are refused.
    std::fs::rename(dir.path().join("train/labels_5"), dir.path().join("train/labels_2")).unwrap();
    let ds2 = Nyuv2Dataset::open(dir.path(), "train", 2).unwrap();
    let err = ds2.get(0, &mut derive_rng(0, 0, 0, Stream::Augment)).unwrap_err().to_string();
    assert!(err.contains("above the 2 classes"), "{err}");
}

/// The inputs of every sample of `ds` (deterministic transforms only), as exact bit patterns.
fn sample_bits(ds: &dyn Dataset) -> Vec<Vec<u32>> {
    let mut rng = derive_rng(0, 0, 0, Stream::Augment);
    (0..ds.len())
        .map(|i| {
            let s = ds.get(i, &mut rng).unwrap();
            s.inputs.iter().flat_map(|m| m.data.iter().map(|v| v.to_bits())).collect()
        })
        .collect()
}

#[test]
fn val_fraction_carves_a_seeded_validation_split_from_the_training_images() {
    use mmanet_data::nyuv2::SyntheticNyuv2Source;
    use mmanet_data::{DataSource, Split};
    let dir = tempfile::tempdir().unwrap();
    let source = |val_fraction: f64| SyntheticNyuv2Source {
        root: dir.path().to_path_buf(),
        n: 12,
        size: [16, 16],
        crop: [16, 16],
        val_fraction,
    };
    // Default: the layout has no validation split, so validation reads the test split.
    let reference = source(0.0);
    reference.check().unwrap();
    assert!(reference.validation_is_test());
    let test = reference.open(Split::Test, 5).unwrap();
    assert_eq!(sample_bits(reference.open(Split::Val, 5).unwrap().as_ref()), sample_bits(&*test));
    assert_eq!(reference.open(Split::Train, 5).unwrap().len(), 12);

    let carved = source(0.25);
    carved.check().unwrap();
    assert!(!carved.validation_is_test());
    let (train, val) = (carved.open(Split::Train, 5).unwrap(), carved.open(Split::Val, 5).unwrap());
    assert_eq!((train.len(), val.len()), (9, 3));
    assert_eq!(sample_bits(carved.open(Split::Test, 5).unwrap().as_ref()), sample_bits(&*test));
    // The validation images are distinct training images (compared through the test
    // transform), none of them a test image.
    let all_train =
        sample_bits(&Nyuv2Dataset::open(dir.path(), "train", SYNTHETIC_NYUV2_CLASSES).unwrap());
    let held = sample_bits(val.as_ref());
    let test_bits = sample_bits(&*test);
    assert!(held.iter().all(|v| all_train.contains(v) && !test_bits.contains(v)));
    let mut distinct = held.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
    // Seeded: the same seed holds out the same images, another seed (almost surely) others.
    assert_eq!(sample_bits(carved.open(Split::Val, 5).unwrap().as_ref()), held);
    let other: Vec<_> =
        (6..12).map(|seed| sample_bits(carved.open(Split::Val, seed).unwrap().as_ref())).collect();
    assert!(other.iter().any(|o| *o != held), "the held-out images depend on the seed");

    for bad in [-0.1, 1.0, f64::NAN] {
        let err = source(bad).check().unwrap_err().to_string();
        assert!(err.contains("val_fraction"), "{err}");
    }
    // Too small a fraction for the set: an error naming the field, not an empty split.
    let err = source(0.01).open(Split::Val, 5).err().expect("no image held out").to_string();
    assert!(err.contains("val_fraction"), "{err}");
}
