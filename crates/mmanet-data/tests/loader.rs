//! Loader behaviour: determinism across thread counts, shuffle / drop_last, masking, shapes,
//! error reporting and skipping.

use std::collections::HashMap;
use std::sync::Arc;

use mmanet_core::{ModalityMask, ModalitySet};
use mmanet_data::{
    Batch, DataError, DataLoader, Dataset, InMemoryDataset, LoaderConfig, MaskPolicy, ModalityData,
    Sample, Shard, Target, Task,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::Kind;

fn surf_set(n: usize) -> Arc<dyn Dataset> {
    Arc::new(
        InMemoryDataset::synthetic_classification(
            ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set"),
            &[vec![2, 3], vec![4], vec![1, 2, 2]],
            &[0.1, 0.5, 1.0],
            3,
            n,
            11,
        )
        .unwrap(),
    )
}

/// A set whose samples carry random noise drawn from the augmentation stream, so that
/// per-sample seeding is observable.
struct NoisySet {
    set: ModalitySet,
    n: usize,
    bad: Vec<usize>,
}

impl Dataset for NoisySet {
    fn len(&self) -> usize {
        self.n
    }
    fn modalities(&self) -> &ModalitySet {
        &self.set
    }
    fn task(&self) -> Task {
        Task::Classification { num_classes: 2 }
    }
    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> mmanet_data::Result<Sample> {
        if self.bad.contains(&index) {
            return Err(DataError::list("fake_list.txt", index + 1, "broken on purpose"));
        }
        let inputs = (0..self.set.len())
            .map(|_| ModalityData::new(vec![rng.random::<f32>(), index as f32], vec![2]).unwrap())
            .collect();
        Ok(Sample { inputs, target: Target::Class((index % 2) as i64) })
    }
}

fn noisy(n: usize, bad: Vec<usize>) -> Arc<dyn Dataset> {
    Arc::new(NoisySet {
        set: ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set"),
        n,
        bad,
    })
}

fn flat(b: &Batch) -> (Vec<Vec<f32>>, Vec<f32>, Vec<i64>, Vec<usize>) {
    let inputs = b.inputs.iter().map(|t| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()).collect();
    let mask = Vec::<f32>::try_from(b.mask.flatten(0, -1)).unwrap();
    let targets = Vec::<i64>::try_from(b.targets.flatten(0, -1)).unwrap();
    (inputs, mask, targets, b.indices.clone())
}

#[test]
fn one_and_two_threads_give_identical_epochs() {
    let ds = noisy(37, vec![]);
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let run = |threads: usize, epoch: u64| {
        let cfg = LoaderConfig { threads, prefetch: 3, ..LoaderConfig::train(8, 42) };
        let loader = DataLoader::new(ds.clone(), MaskPolicy::uniform_all(&set), cfg).unwrap();
        loader.iter(epoch).map(|b| flat(&b.unwrap())).collect::<Vec<_>>()
    };
    let one = run(1, 3);
    let two = run(2, 3);
    assert_eq!(one.len(), 4); // 37 / 8 with drop_last
    assert_eq!(one, two);
    // A different epoch reshuffles and redraws.
    assert_ne!(run(1, 4), one);
}

/// Data-parallel shards: rank `r` of `W` gets positions `r, r + W, ...` of each batch of the
/// single-process epoch, with the same masks and the same per-sample noise; micro-batches
/// selected from a whole batch are the same samples.
#[test]
fn shards_take_strided_positions_of_the_single_process_batches() {
    let ds = noisy(37, vec![]);
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let loader = |shard: Shard| {
        let cfg = LoaderConfig { shard, ..LoaderConfig::train(8, 42) };
        DataLoader::new(ds.clone(), MaskPolicy::uniform_all(&set), cfg).unwrap()
    };
    let whole: Vec<Batch> = loader(Shard::WHOLE).iter(2).map(Result::unwrap).collect();
    for w in [2, 4] {
        for r in 0..w {
            let shard = Shard::new(r, w).unwrap();
            let part: Vec<Batch> = loader(shard).iter(2).map(Result::unwrap).collect();
            assert_eq!(part.len(), whole.len());
            for (p, b) in part.iter().zip(&whole) {
                let positions: Vec<usize> = shard.positions(b.len()).collect();
                assert_eq!(flat(p), flat(&b.select(&positions).unwrap()), "shard {r} of {w}");
                assert_eq!(p.len(), 8 / w);
            }
        }
    }
    // The global batch must divide by the number of shards.
    let cfg = LoaderConfig { shard: Shard::new(0, 3).unwrap(), ..LoaderConfig::train(8, 42) };
    let err = DataLoader::new(ds.clone(), MaskPolicy::uniform_all(&set), cfg).unwrap_err();
    assert!(err.to_string().contains("must divide"), "{err}");
    assert!(Shard::new(2, 2).is_err());
    assert!(whole[0].select(&[8]).is_err());
}

/// An evaluation shard (`DataLoader::sharded`) needs no divisible batch: 3 ranks over batches
/// of 8 of 37 samples together yield every sample once, each with the single-process mask.
#[test]
fn evaluation_shards_cover_the_split_once_with_the_same_masks() {
    let ds = noisy(37, vec![]);
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let whole = DataLoader::new(ds, MaskPolicy::uniform_all(&set), LoaderConfig::eval(8)).unwrap();
    let mut seen: Vec<(usize, ModalityMask)> = Vec::new();
    for r in 0..3 {
        let part = whole.sharded(Shard::new(r, 3).unwrap()).unwrap();
        for b in part.iter(0).map(Result::unwrap) {
            seen.extend(b.indices.iter().copied().zip(b.combos.iter().copied()));
        }
    }
    seen.sort_by_key(|(i, _)| *i);
    let expected: Vec<(usize, ModalityMask)> = (0..37).map(|i| (i, whole.mask_of(0, i))).collect();
    assert_eq!(seen, expected);
    assert!(whole.sharded(Shard { index: 3, count: 3 }).is_err());
}

#[test]
fn shuffle_and_drop_last_cover_the_set_once() {
    let ds = surf_set(10);
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let cfg = LoaderConfig { shuffle: true, drop_last: false, ..LoaderConfig::eval(4) };
    let loader = DataLoader::new(ds.clone(), MaskPolicy::full(&set), cfg).unwrap();
    let sizes: Vec<usize> = loader.iter(0).map(|b| b.unwrap().len()).collect();
    assert_eq!(sizes, [4, 4, 2]);
    assert_eq!(loader.num_batches(), 3);
    let mut seen: Vec<usize> = loader.iter(0).flat_map(|b| b.unwrap().indices).collect();
    assert_ne!(seen, (0..10).collect::<Vec<_>>(), "epoch 0 order should be shuffled");
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());

    let cfg = LoaderConfig::train(4, 0);
    let loader = DataLoader::new(ds.clone(), MaskPolicy::full(&set), cfg).unwrap();
    assert_eq!(loader.iter(0).map(|b| b.unwrap().len()).collect::<Vec<_>>(), [4, 4]);
    assert_eq!(loader.num_batches(), 2);

    let loader = DataLoader::new(ds, MaskPolicy::full(&set), LoaderConfig::eval(4)).unwrap();
    let seen: Vec<usize> = loader.iter(5).flat_map(|b| b.unwrap().indices).collect();
    assert_eq!(seen, (0..10).collect::<Vec<_>>(), "no shuffle keeps the order");
}

#[test]
fn uniform_mask_is_roughly_uniform_over_the_list() {
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let ds = noisy(2100, vec![]);
    let loader =
        DataLoader::new(ds, MaskPolicy::uniform_all(&set), LoaderConfig::train(100, 5)).unwrap();
    let mut counts: HashMap<ModalityMask, usize> = HashMap::new();
    for b in loader.iter(0) {
        let b = b.unwrap();
        // The mask tensor agrees with the combos.
        let mask = Vec::<f32>::try_from(b.mask.flatten(0, -1)).unwrap();
        for (row, c) in mask.chunks(3).zip(&b.combos) {
            let present: Vec<bool> = row.iter().map(|v| *v == 1.0).collect();
            assert_eq!(set.presence(*c).unwrap(), present);
        }
        for c in b.combos {
            *counts.entry(c).or_default() += 1;
        }
    }
    assert_eq!(counts.len(), 7);
    // 2100 draws, 7 cells: expected 300 each, binomial sd ~ 16; allow ~5 sd.
    for (c, n) in &counts {
        assert!((220..=380).contains(n), "{c:?}: {n}");
    }
}

#[test]
fn restricted_uniform_and_fixed_masks() {
    let ds = surf_set(20);
    let surf = mmanet_data::surf::surf_modalities();
    let ri: ModalityMask = surf.parse_mask("R+I").unwrap();
    let d: ModalityMask = surf.parse_mask("D").unwrap();
    let loader =
        DataLoader::new(ds.clone(), MaskPolicy::Uniform(vec![ri, d]), LoaderConfig::train(5, 1))
            .unwrap();
    let combos: Vec<ModalityMask> = loader.iter(0).flat_map(|b| b.unwrap().combos).collect();
    assert!(combos.iter().all(|c| *c == ri || *c == d));
    assert!(combos.contains(&ri) && combos.contains(&d));

    let loader = DataLoader::new(ds.clone(), MaskPolicy::Fixed(d), LoaderConfig::eval(6)).unwrap();
    for b in loader.iter(0) {
        let b = b.unwrap();
        assert!(b.combos.iter().all(|c| *c == d));
        let expected = Tensor3::col(b.len(), [0.0, 1.0, 0.0]);
        assert_eq!(Vec::<f32>::try_from(b.mask.flatten(0, -1)).unwrap(), expected);
    }
    // A mask outside the task's modalities is refused.
    let img = ModalityMask::single(3);
    assert!(DataLoader::new(ds, MaskPolicy::Fixed(img), LoaderConfig::eval(6)).is_err());
}

struct Tensor3;
impl Tensor3 {
    fn col(b: usize, row: [f32; 3]) -> Vec<f32> {
        (0..b).flat_map(|_| row).collect()
    }
}

#[test]
fn batch_shapes_and_kinds() {
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let loader =
        DataLoader::new(surf_set(9), MaskPolicy::full(&set), LoaderConfig::eval(4)).unwrap();
    let b = loader.iter(0).next().unwrap().unwrap();
    assert_eq!(b.inputs[0].size(), [4, 2, 3]);
    assert_eq!(b.inputs[1].size(), [4, 4]);
    assert_eq!(b.inputs[2].size(), [4, 1, 2, 2]);
    assert!(b.inputs.iter().all(|t| t.kind() == Kind::Float));
    assert_eq!(b.mask.size(), [4, 3]);
    assert_eq!(b.targets.size(), [4]);
    assert_eq!(b.targets.kind(), Kind::Int64);
    assert_eq!(Vec::<i64>::try_from(&b.targets).unwrap(), [0, 1, 2, 0]);
    assert!(b.lengths.iter().all(Option::is_none));
    let moved = b.to_device(tch::Device::Cpu);
    assert_eq!(flat(&moved), flat(&b));
}

#[test]
fn errors_stop_the_epoch_or_are_skipped_and_counted() {
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let ds = noisy(12, vec![5, 9]);
    let loader =
        DataLoader::new(ds.clone(), MaskPolicy::full(&set), LoaderConfig::eval(4)).unwrap();
    let results: Vec<_> = loader.iter(0).collect();
    assert_eq!(results.len(), 2, "first batch ok, second fails, then the iterator ends");
    assert!(results[0].is_ok());
    let msg = results[1].as_ref().unwrap_err().to_string();
    assert!(msg.contains("fake_list.txt:6"), "{msg}");

    let cfg = LoaderConfig { skip_bad_samples: true, threads: 2, ..LoaderConfig::eval(4) };
    let loader = DataLoader::new(ds, MaskPolicy::full(&set), cfg).unwrap();
    let mut it = loader.iter(0);
    let sizes: Vec<usize> = it.by_ref().map(|b| b.unwrap().len()).collect();
    assert_eq!(sizes, [4, 3, 3]);
    assert_eq!(it.skipped(), 2);
}

#[test]
fn dropping_an_iterator_early_does_not_hang() {
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let cfg = LoaderConfig { prefetch: 1, ..LoaderConfig::eval(2) };
    let loader = DataLoader::new(noisy(100, vec![]), MaskPolicy::full(&set), cfg).unwrap();
    let mut it = loader.iter(0);
    assert!(it.next().unwrap().is_ok());
    drop(it);
    assert_eq!(loader.iter(1).count(), 50);
}

#[test]
fn segmentation_targets_collate_to_maps() {
    let set = ModalitySet::from_names(["rgb", "depth"]).expect("valid set");
    let mk = |v: i64| Sample {
        inputs: vec![
            ModalityData::new(vec![0.0; 12], vec![3, 2, 2]).unwrap(),
            ModalityData::new(vec![1.0; 4], vec![1, 2, 2]).unwrap(),
        ],
        target: Target::Segmentation { labels: vec![v, 0, v, 2], height: 2, width: 2 },
    };
    let ds = InMemoryDataset::new(
        set.clone(),
        Task::Segmentation { num_classes: 2 },
        vec![mk(1), mk(2), mk(1)],
    )
    .unwrap();
    let loader =
        DataLoader::new(Arc::new(ds), MaskPolicy::full(&set), LoaderConfig::eval(3)).unwrap();
    let b = loader.iter(0).next().unwrap().unwrap();
    assert_eq!(b.targets.size(), [3, 2, 2]);
    assert_eq!(
        Vec::<i64>::try_from(b.targets.flatten(0, -1)).unwrap(),
        [1, 0, 1, 2, 2, 0, 2, 2, 1, 0, 1, 2]
    );
    // Labels above num_classes are refused.
    assert!(InMemoryDataset::new(set, Task::Segmentation { num_classes: 1 }, vec![mk(2)]).is_err());
}

#[test]
fn sequence_lengths_are_batched_and_policies_can_be_swapped() {
    let set = ModalitySet::from_names(["image", "audio"]).unwrap();
    let samples = (0..4)
        .map(|i| Sample {
            inputs: vec![
                ModalityData::new(vec![i as f32; 4], vec![1, 2, 2]).unwrap(),
                ModalityData::sequence(vec![0.5; 6 * 2], vec![6, 2], 2 + i).unwrap(),
            ],
            target: Target::Class(i % 2),
        })
        .collect();
    let ds = InMemoryDataset::new(set.clone(), Task::Classification { num_classes: 2 }, samples)
        .unwrap();
    let loader =
        DataLoader::new(Arc::new(ds), MaskPolicy::full(&set), LoaderConfig::eval(4)).unwrap();
    let b = loader.iter(0).next().unwrap().unwrap();
    assert!(b.lengths[0].is_none());
    assert_eq!(Vec::<i64>::try_from(b.lengths[1].as_ref().unwrap()).unwrap(), [2, 3, 4, 5]);
    assert_eq!(b.inputs[1].size(), [4, 6, 2]);
    // A sequence longer than its padded shape is refused.
    assert!(ModalityData::sequence(vec![0.0; 4], vec![2, 2], 3).is_err());

    for combo in set.combinations() {
        let eval = loader.with_policy(MaskPolicy::Fixed(combo)).unwrap();
        let b = eval.iter(0).next().unwrap().unwrap();
        assert!(b.combos.iter().all(|c| *c == combo));
    }
    assert!(loader.with_policy(MaskPolicy::Uniform(vec![])).is_err());
}

#[test]
fn training_masks_never_use_a_modality_a_sample_lacks() {
    use mmanet_data::missing::{MissingConfig, WithMissing};
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).unwrap();
    let data = InMemoryDataset::synthetic_classification(
        set.clone(),
        &[vec![4], vec![4], vec![4]],
        &[0.1, 0.5, 1.0],
        2,
        60,
        0,
    )
    .unwrap();
    let cfg = MissingConfig { rate: 0.5, seed: 9, splits: vec![mmanet_data::Split::Train] };
    let ds: Arc<dyn Dataset> =
        Arc::new(WithMissing::new(Arc::new(data), &cfg, mmanet_data::Split::Train).unwrap());
    let loader =
        DataLoader::new(ds.clone(), MaskPolicy::uniform_all(&set), LoaderConfig::train(10, 3))
            .unwrap();
    let mut incomplete_rows = 0;
    for epoch in 0..3 {
        for b in loader.iter(epoch) {
            let b = b.unwrap();
            let mask = Vec::<f32>::try_from(b.mask.flatten(0, -1)).unwrap();
            for (r, (&i, c)) in b.indices.iter().zip(&b.combos).enumerate() {
                let available = ds.availability(i);
                assert!(available.is_superset_of(*c), "sample {i}: {c:?} beyond {available:?}");
                assert_eq!(*c, loader.mask_of(epoch, i));
                for m in 0..3 {
                    assert_eq!(mask[r * 3 + m] == 1.0, c.contains(m));
                }
                incomplete_rows += usize::from(available != set.full());
            }
        }
    }
    assert_eq!(incomplete_rows, 3 * 30);
}
