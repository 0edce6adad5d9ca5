//! The readers on the real registry-packaged files, when `cargo xtask data fetch <name>` has
//! put them in `datasets/cache/` (git-ignored). Each test returns early when its cache is
//! absent (CI without network); the counts asserted are those of docs/datasets.md.

use std::path::PathBuf;

use mmanet_data::avmnist::{AvMnistOptions, load_avmnist};
use mmanet_data::basicmotions::load_basicmotions;
use mmanet_data::mfeat::{MfeatOptions, load_mfeat};
use mmanet_data::{Dataset, Target};

fn cache(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/cache").join(name);
    p.join(".fetched").is_file().then_some(p)
}

fn class_counts(ds: &dyn Dataset, k: usize) -> Vec<usize> {
    let mut c = vec![0; k];
    let mut rng = mmanet_data::seeding::derive_rng(0, 0, 0, mmanet_data::seeding::Stream::Augment);
    for i in 0..ds.len() {
        if let Target::Class(y) = ds.get(i, &mut rng).unwrap().target {
            c[y as usize] += 1;
        }
    }
    c
}

#[test]
fn real_mfeat_has_2000_digits_in_six_views() {
    let Some(dir) = cache("mfeat") else { return };
    let (train, test) = load_mfeat(&dir, &MfeatOptions::default()).unwrap();
    assert_eq!((train.len(), test.len()), (1600, 400));
    assert_eq!(class_counts(&test, 10), vec![40; 10]);
    let dims: Vec<i64> = train.samples()[0].inputs.iter().map(|m| m.shape[0]).collect();
    assert_eq!(dims, [240, 76, 216, 64, 47, 6]);
}

#[test]
fn real_basicmotions_has_40_plus_40_recordings() {
    let Some(dir) = cache("basicmotions") else { return };
    let (train, test) = load_basicmotions(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (40, 40));
    assert_eq!(train.samples()[0].inputs[0].shape, [3, 100]);
    assert_eq!(class_counts(&train, 4), vec![10; 4]);
}

#[test]
fn real_avmnist_pairs_3000_clips() {
    let Some(dir) = cache("avmnist") else { return };
    let opts = AvMnistOptions::default();
    let (train, test) = load_avmnist(&dir.join("mnist"), &dir.join("fsdd"), &opts).unwrap();
    // 300 clips per digit -> 240 train / 60 test, each below the ~1000 images per digit.
    assert_eq!((train.len(), test.len()), (2400, 600));
    let lens: Vec<i64> = train.samples().iter().map(|s| s.inputs[1].length.unwrap()).collect();
    assert!(lens.iter().all(|l| (6..=64).contains(l)));
    let pix = &train.samples()[0].inputs[0].data;
    assert!(pix.iter().all(|v| (0.0..=1.0).contains(v)) && pix.iter().any(|v| *v > 0.5));
}
