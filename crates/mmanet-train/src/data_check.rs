//! `mmanet data check`: open every split of a config's data set and read every sample.

use std::collections::BTreeMap;

use mmanet_data::{Dataset, Target};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::TrainError;
use crate::data_spec::{DataConfig, DatasetSpec, Split};

/// What one split holds.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitSummary {
    /// The split.
    pub split: Split,
    /// Number of samples listed.
    pub samples: usize,
    /// Samples per class; for segmentation, pixels per label (0 = void).
    pub label_counts: BTreeMap<i64, usize>,
    /// Samples per availability pattern (the modalities they really have, `R+D+I`).
    pub patterns: BTreeMap<String, usize>,
    /// One message per unreadable sample (file and reason).
    pub bad: Vec<String>,
}

/// What a data set holds: one summary per split, and the index lines that are not samples.
#[derive(Clone, Debug, PartialEq)]
pub struct DataCheck {
    /// Train, validation and test.
    pub splits: Vec<SplitSummary>,
    /// Lines of the index (a manifest) that cannot be samples, each `file:line: reason`:
    /// errors when a run opens the data, skipped with `data.skip_bad_samples`.
    pub bad_lines: Vec<String>,
}

impl DataCheck {
    /// Bad lines plus unreadable samples of every split.
    pub fn problems(&self) -> usize {
        self.bad_lines.len() + self.splits.iter().map(|s| s.bad.len()).sum::<usize>()
    }
}

/// Reads every sample of every split (without augmentation randomness mattering) and reports
/// counts, label balance, missingness patterns, bad index lines and unreadable samples. Fails
/// only when a split cannot be opened at all (missing list file, a manifest without an `id`
/// column, ...).
pub fn check_data(spec: &DatasetSpec, seed: u64) -> Result<DataCheck, TrainError> {
    collect(|split| spec.open_with(split, seed, &mmanet_data::OpenOptions::LISTING), seed)
}

/// [`check_data`] of a config's `[data]` table, with its simulated missingness.
pub fn check_data_config(data: &DataConfig, seed: u64) -> Result<DataCheck, TrainError> {
    collect(|split| data.open_skipping(split, seed), seed)
}

fn collect(
    open: impl Fn(Split) -> Result<mmanet_data::Opened, TrainError>,
    seed: u64,
) -> Result<DataCheck, TrainError> {
    let mut check = DataCheck { splits: Vec::new(), bad_lines: Vec::new() };
    for split in [Split::Train, Split::Val, Split::Test] {
        let opened = open(split)?;
        check.splits.push(summarise(split, opened.data.as_ref(), seed));
        // Every split lists the source's bad lines: keep them once.
        if check.bad_lines.is_empty() {
            check.bad_lines = opened.skipped;
        }
    }
    Ok(check)
}

fn summarise(split: Split, data: &dyn Dataset, seed: u64) -> SplitSummary {
    let mut label_counts = BTreeMap::new();
    let mut patterns = BTreeMap::new();
    let mut bad = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let set = data.modalities();
    for i in 0..data.len() {
        *patterns.entry(set.format(data.availability(i))).or_insert(0) += 1;
        match data.get(i, &mut rng) {
            Ok(sample) => match &sample.target {
                Target::Segmentation { labels, .. } => {
                    for l in labels {
                        *label_counts.entry(*l).or_insert(0) += 1;
                    }
                }
                Target::Class(c) => *label_counts.entry(*c).or_insert(0) += 1,
            },
            Err(e) => bad.push(format!("sample {i}: {e}")),
        }
    }
    SplitSummary { split, samples: data.len(), label_counts, patterns, bad }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// One `h x w` Cityscapes sample per split (`train`, `valid`) in the official layout:
    /// labels 0 (void) in the top row, 7 elsewhere; float16 depth 32 m (0x5000).
    fn write_cityscapes(root: &Path, h: u32, w: u32) {
        for split in ["train", "valid"] {
            let stem = "bonn/bonn_000000_000019";
            for d in ["rgb", "depth_raw", "labels_19"] {
                std::fs::create_dir_all(root.join(split).join(d).join("bonn")).unwrap();
            }
            image::RgbImage::from_pixel(w, h, image::Rgb([90, 120, 30]))
                .save(root.join(split).join("rgb").join(format!("{stem}.png")))
                .unwrap();
            let body: Vec<u8> = (0..h * w).flat_map(|_| 0x5000u16.to_le_bytes()).collect();
            mmanet_data::npy::write_npy(
                &root.join(split).join("depth_raw").join(format!("{stem}.npy")),
                "<f2",
                &[h as usize, w as usize],
                &body,
            )
            .unwrap();
            image::GrayImage::from_fn(w, h, |_, y| image::Luma([if y == 0 { 0 } else { 7 }]))
                .save(root.join(split).join("labels_19").join(format!("{stem}.png")))
                .unwrap();
            for (list, ext) in [("rgb", "png"), ("depth_raw", "npy"), ("labels_19", "png")] {
                std::fs::write(root.join(format!("{split}_{list}.txt")), format!("{stem}.{ext}\n"))
                    .unwrap();
            }
        }
    }

    #[test]
    fn checks_cityscapes_splits_and_counts_pixels_per_label() {
        let dir = tempfile::tempdir().unwrap();
        write_cityscapes(dir.path(), 8, 16);
        let spec = DatasetSpec::Cityscapes(mmanet_data::cityscapes::CityscapesSource {
            root: dir.path().to_path_buf(),
            num_classes: 19,
            depth: mmanet_data::cityscapes::CityscapesDepth::Depth,
            crop: [4, 8],
            eval_size: None,
        });
        let s = check_data(&spec, 0).unwrap().splits;
        assert_eq!(s.len(), 3);
        // Validation and test both read `valid`: 16 void pixels (top row), 7 * 16 of label 7.
        assert_eq!(s[2].samples, 1);
        assert_eq!(s[2].label_counts, BTreeMap::from([(0, 16), (7, 112)]));
        assert!(s.iter().all(|x| x.bad.is_empty()));
        // The training split is cropped to 4 x 8.
        assert_eq!(s[0].label_counts.values().sum::<usize>(), 32);
        // A missing depth file is reported with its name, not a failure.
        std::fs::remove_file(dir.path().join("valid/depth_raw/bonn/bonn_000000_000019.npy"))
            .unwrap();
        let s = check_data(&spec, 0).unwrap().splits;
        assert_eq!(s[1].bad.len(), 1);
        assert!(s[1].bad[0].contains("bonn_000000_000019.npy"), "{}", s[1].bad[0]);
    }
}
