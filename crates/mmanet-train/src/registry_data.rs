//! The registry-packaged real data sets (UCI mfeat, AV-MNIST-lite, BasicMotions) as train /
//! val / test splits for the trainer.
//!
//! The sources have a train/test split at most; validation (mining, model selection) is a
//! seeded stratified part of the training split, so the test split is never looked at before
//! the final report.

use std::path::Path;
use std::sync::Arc;

use mmanet_data::avmnist::{AvMnistOptions, load_avmnist};
use mmanet_data::basicmotions::load_basicmotions;
use mmanet_data::mfeat::{MfeatOptions, load_mfeat};
use mmanet_data::split::stratified_split;
use mmanet_data::{Dataset, InMemoryDataset, Sample, Target};

use crate::TrainError;
use crate::data_spec::Split;

/// Carves the validation split out of `train` (stratified, seeded) and returns `split`.
pub(crate) fn three_way(
    train: InMemoryDataset,
    test: InMemoryDataset,
    val_fraction: f64,
    seed: u64,
    split: Split,
) -> Result<Arc<dyn Dataset>, TrainError> {
    if split == Split::Test {
        return Ok(Arc::new(test));
    }
    let labels: Vec<i64> = train
        .samples()
        .iter()
        .map(|s| match s.target {
            Target::Class(c) => c,
            _ => 0,
        })
        .collect();
    let (fit, val) = stratified_split(&labels, val_fraction, seed ^ 0x0005_EED0_F7A1);
    let pick = |idx: &[usize]| -> Vec<Sample> {
        idx.iter().map(|&i| train.samples()[i].clone()).collect()
    };
    let samples = if split == Split::Train { pick(&fit) } else { pick(&val) };
    Ok(Arc::new(InMemoryDataset::new(train.modalities().clone(), train.task(), samples)?))
}

/// Reshapes the Pix view (240 values) to a `[1, 16, 15]` image so a small CNN can read it.
fn pixel_view_as_image(data: InMemoryDataset) -> Result<InMemoryDataset, TrainError> {
    let Some(pos) = data.modalities().position("pixel") else {
        return Ok(data);
    };
    let samples = data
        .samples()
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.inputs[pos].shape = vec![1, 16, 15];
            s
        })
        .collect();
    Ok(InMemoryDataset::new(data.modalities().clone(), data.task(), samples)?)
}

/// UCI mfeat views (`views` empty: all six), split 80/20 then validation from the 80.
pub(crate) fn open_mfeat(
    root: &Path,
    views: &[String],
    pixel_image: bool,
    val_fraction: f64,
    seed: u64,
    split: Split,
) -> Result<Arc<dyn Dataset>, TrainError> {
    let opts = MfeatOptions { views: views.to_vec(), seed, ..MfeatOptions::default() };
    let (mut train, mut test) = load_mfeat(root, &opts).map_err(|e| fetch_hint(e, "mfeat"))?;
    if pixel_image {
        train = pixel_view_as_image(train)?;
        test = pixel_view_as_image(test)?;
    }
    three_way(train, test, val_fraction, seed, split)
}

/// AV-MNIST-lite: MNIST `[1, 28, 28]` + FSDD MFCC `[max_frames, 13]` with true lengths.
pub(crate) fn open_avmnist(
    root: &Path,
    max_frames: usize,
    val_fraction: f64,
    seed: u64,
    split: Split,
) -> Result<Arc<dyn Dataset>, TrainError> {
    let opts = AvMnistOptions { seed, max_frames, ..AvMnistOptions::default() };
    let (train, test) = load_avmnist(&root.join("mnist"), &root.join("fsdd"), &opts)
        .map_err(|e| fetch_hint(e, "avmnist"))?;
    three_way(train, test, val_fraction, seed, split)
}

/// BasicMotions: accelerometer and gyroscope, each transposed to `[T, 3]` sequences.
pub(crate) fn open_basicmotions(
    root: &Path,
    val_fraction: f64,
    seed: u64,
    split: Split,
) -> Result<Arc<dyn Dataset>, TrainError> {
    let (train, test) = load_basicmotions(root).map_err(|e| fetch_hint(e, "basicmotions"))?;
    three_way(time_major(train)?, time_major(test)?, val_fraction, seed, split)
}

/// `[C, T]` channel-major series to `[T, C]` time-major (what sequence branches read).
fn time_major(data: InMemoryDataset) -> Result<InMemoryDataset, TrainError> {
    let samples = data
        .samples()
        .iter()
        .map(|s| {
            let mut s = s.clone();
            for x in &mut s.inputs {
                if let [c, t] = x.shape[..] {
                    let (c, t) = (c as usize, t as usize);
                    let mut out = vec![0.0; c * t];
                    for i in 0..c {
                        for j in 0..t {
                            out[j * c + i] = x.data[i * t + j];
                        }
                    }
                    x.data = out;
                    x.shape = vec![t as i64, c as i64];
                }
            }
            s
        })
        .collect();
    Ok(InMemoryDataset::new(data.modalities().clone(), data.task(), samples)?)
}

fn fetch_hint(e: mmanet_data::DataError, name: &str) -> TrainError {
    TrainError::config(
        "data.dataset.root",
        format!("{e} (fetch the data first: `cargo xtask data fetch {name}`)"),
    )
}
