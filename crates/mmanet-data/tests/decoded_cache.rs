//! The decoded-image cache: the same samples as without it, epoch after epoch, within its
//! budget; dropped entries when files change; a fresh cache when the transform changes.

use std::sync::Arc;

use mmanet_data::seeding::{Stream, derive_rng};
use mmanet_data::surf::{SurfAugment, SurfDataset, write_synthetic_surf};
use mmanet_data::{DataLoader, Dataset, LoaderConfig, MaskPolicy};

fn sample_values(d: &dyn Dataset, epoch: u64) -> Vec<Vec<Vec<f32>>> {
    (0..d.len())
        .map(|i| {
            let mut rng = derive_rng(7, epoch, i as u64, Stream::Augment);
            d.get(i, &mut rng).unwrap().inputs.into_iter().map(|x| x.data).collect()
        })
        .collect()
}

#[test]
fn cached_samples_equal_uncached_ones_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let info = write_synthetic_surf(dir.path(), 6, 0, 48).unwrap();
    for train in [true, false] {
        let aug = SurfAugment::sized(train, 40, 28);
        let plain =
            SurfDataset::open(dir.path(), &info.lists[0]).unwrap().with_augment(aug.clone());
        let plain = plain.unwrap();
        let cached = plain.clone().with_decoded_cache(1 << 30);
        for epoch in 0..3 {
            assert_eq!(
                sample_values(&cached, epoch),
                sample_values(&plain, epoch),
                "train {train}"
            );
        }
        let s = cached.decoded_cache().unwrap().stats();
        assert_eq!((s.entries, s.misses, s.hits), (6, 6, 12), "train {train}: {s:?}");
        // Colour 3 planes + two grey planes per sample, at the first resize's side.
        let side = if train { 40 } else { 28 };
        assert_eq!(s.bytes, 6 * 5 * side * side, "train {train}");
    }
    // A budget for two samples: two cached, the rest decoded every epoch, the same values.
    let aug = SurfAugment::sized(true, 40, 28);
    let plain = SurfDataset::open(dir.path(), &info.lists[0]).unwrap().with_augment(aug).unwrap();
    let small = plain.clone().with_decoded_cache(2 * 5 * 40 * 40 + 10);
    for epoch in 0..2 {
        assert_eq!(sample_values(&small, epoch), sample_values(&plain, epoch));
    }
    let s = small.decoded_cache().unwrap().stats();
    assert_eq!((s.entries, s.hits, s.misses), (2, 2, 10), "{s:?}");
    assert!(s.bytes <= small.decoded_cache().unwrap().budget());
    // A new transform starts an empty cache of the same budget.
    let other = small.with_augment(SurfAugment::sized(true, 36, 28)).unwrap();
    let c = other.decoded_cache().unwrap();
    assert_eq!((c.stats().entries, c.budget()), (0, 2 * 5 * 40 * 40 + 10));
}

#[test]
fn an_entry_whose_file_changed_is_decoded_again() {
    let dir = tempfile::tempdir().unwrap();
    let info = write_synthetic_surf(dir.path(), 4, 0, 48).unwrap();
    let other = tempfile::tempdir().unwrap();
    let info2 = write_synthetic_surf(other.path(), 4, 9, 48).unwrap();
    let aug = SurfAugment::sized(true, 40, 28);
    let cached = SurfDataset::open(dir.path(), &info.lists[0])
        .unwrap()
        .with_augment(aug.clone())
        .unwrap()
        .with_decoded_cache(1 << 30);
    let before = sample_values(&cached, 0);
    // Replace sample 1's RGB file by another image (and move its time on).
    let target = cached.entries()[1].paths[0].clone();
    let replacement =
        SurfDataset::open(other.path(), &info2.lists[0]).unwrap().entries()[1].paths[0].clone();
    std::fs::copy(&replacement, &target).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options().write(true).open(&target).unwrap().set_modified(later).unwrap();
    let after = sample_values(&cached, 0);
    let fresh = SurfDataset::open(dir.path(), &info.lists[0]).unwrap().with_augment(aug).unwrap();
    assert_eq!(after, sample_values(&fresh, 0), "the new file is read");
    assert_ne!(after[1], before[1]);
    assert_eq!(after[0], before[0]);
    let s = cached.decoded_cache().unwrap().stats();
    assert_eq!((s.entries, s.misses, s.hits), (4, 5, 3), "{s:?}");
}

#[test]
fn the_loader_gives_the_same_batches_with_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let info = write_synthetic_surf(dir.path(), 8, 0, 48).unwrap();
    let aug = SurfAugment::sized(true, 40, 28);
    let plain = SurfDataset::open(dir.path(), &info.lists[0]).unwrap().with_augment(aug).unwrap();
    let cached: Arc<dyn Dataset> = Arc::new(plain.clone().with_decoded_cache(1 << 30));
    let plain: Arc<dyn Dataset> = Arc::new(plain);
    let set = plain.modalities().clone();
    let cfg = LoaderConfig { threads: 2, ..LoaderConfig::train(4, 3) };
    let a = DataLoader::new(plain, MaskPolicy::uniform_all(&set), cfg.clone()).unwrap();
    let b = DataLoader::new(cached, MaskPolicy::uniform_all(&set), cfg).unwrap();
    for epoch in 0..3 {
        for (x, y) in a.iter(epoch).zip(b.iter(epoch)) {
            let (x, y) = (x.unwrap(), y.unwrap());
            for (p, q) in x.inputs.iter().zip(&y.inputs) {
                assert!(p.equal(q), "epoch {epoch}");
            }
            assert!(x.mask.equal(&y.mask));
        }
    }
}
