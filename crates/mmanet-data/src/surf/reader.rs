//! [`SurfDataset`]: reads a CASIA-SURF list file.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mmanet_core::ModalitySet;
use rand_chacha::ChaCha8Rng;

use super::SurfAugment;
use crate::dataset::{get_via_into, index_error};
use crate::decoded_cache::{DecodedCache, Payload};
use crate::transform::{ChannelOrder, Image8, Normalise, read_any_order_into};
use crate::{DataError, Dataset, Result, Sample, Target, Task};

/// One line of a list file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurfEntry {
    /// RGB, depth and IR paths (joined to the root).
    pub paths: [PathBuf; 3],
    /// 1 = real, 0 = spoof.
    pub label: i64,
    /// 1-based line in the list file.
    pub line: usize,
}

/// Parses list-file text: blank lines are skipped; every other line must hold exactly four
/// space-separated fields, the last an integer label 0 or 1. Errors name `list:line`.
pub fn parse_surf_list(text: &str, root: &Path, list: &Path) -> Result<Vec<SurfEntry>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.split_whitespace().collect();
        if fields.len() != 4 {
            return Err(DataError::list(
                list,
                line,
                format!("expected `<rgb> <depth> <ir> <label>` (4 fields), got {}", fields.len()),
            ));
        }
        let label: i64 = fields[3].parse().map_err(|_| {
            DataError::list(list, line, format!("label `{}` is not an integer", fields[3]))
        })?;
        if !(0..=1).contains(&label) {
            return Err(DataError::list(list, line, format!("label {label} is not 0 or 1")));
        }
        let paths = [root.join(fields[0]), root.join(fields[1]), root.join(fields[2])];
        out.push(SurfEntry { paths, label, line });
    }
    Ok(out)
}

/// A CASIA-SURF split: modalities R, D, I; 2 classes (1 = real).
///
/// Samples are `[3, crop, crop]` f32 per modality, BGR channel order, `(x - 127.5) / 128`.
#[derive(Clone, Debug)]
pub struct SurfDataset {
    list: PathBuf,
    entries: Vec<SurfEntry>,
    modalities: ModalitySet,
    augment: SurfAugment,
    /// Decoded, first-resized planes per sample (see [`SurfDataset::with_decoded_cache`]).
    cache: Option<Arc<DecodedCache>>,
}

impl SurfDataset {
    /// Reads `list_file` (relative to `root` unless absolute); paths inside are relative to
    /// `root`. Uses the test transform until [`SurfDataset::with_augment`] says otherwise.
    /// Image files are only opened by `get` (see [`SurfDataset::check_files`]).
    pub fn open(root: impl AsRef<Path>, list_file: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let list = root.join(list_file.as_ref());
        let text = std::fs::read_to_string(&list).map_err(|e| DataError::io(&list, e))?;
        let entries = parse_surf_list(&text, root, &list)?;
        if entries.is_empty() {
            return Err(DataError::list(&list, 1, "the list holds no sample"));
        }
        Ok(SurfDataset {
            list,
            entries,
            modalities: crate::surf::surf_modalities(),
            augment: SurfAugment::test(),
            cache: None,
        })
    }

    /// Sets the transform (e.g. [`SurfAugment::train`]); fails when the crop does not fit.
    pub fn with_augment(mut self, augment: SurfAugment) -> Result<Self> {
        augment.validate()?;
        self.augment = augment;
        // Planes of another transform are of no use: start over.
        if let Some(c) = &self.cache {
            self.cache = Some(Arc::new(DecodedCache::new(self.entries.len(), c.budget())));
        }
        Ok(self)
    }

    /// Keeps each sample's decoded and first-resized images (8-bit planes) in memory, up to
    /// `budget` bytes (`0`: no cache): later epochs run only the random part of the
    /// transform, with the same values. Entries are dropped when their files change.
    pub fn with_decoded_cache(mut self, budget: usize) -> Self {
        self.cache = (budget > 0).then(|| Arc::new(DecodedCache::new(self.entries.len(), budget)));
        self
    }

    /// The decoded-image cache, if any.
    pub fn decoded_cache(&self) -> Option<&DecodedCache> {
        self.cache.as_deref()
    }

    /// The parsed lines.
    pub fn entries(&self) -> &[SurfEntry] {
        &self.entries
    }

    /// The transform in use.
    pub fn augment(&self) -> &SurfAugment {
        &self.augment
    }

    /// Number of real (label 1) samples.
    pub fn num_real(&self) -> usize {
        self.entries.iter().filter(|e| e.label == 1).count()
    }

    /// Every listed file that does not exist, as errors naming `list:line`.
    pub fn check_files(&self) -> Vec<DataError> {
        self.entries
            .iter()
            .flat_map(|e| e.paths.iter().map(move |p| (e.line, p)))
            .filter(|(_, p)| !p.is_file())
            .map(|(line, p)| {
                DataError::list(&self.list, line, format!("missing file {}", p.display()))
            })
            .collect()
    }
}

impl Dataset for SurfDataset {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn modalities(&self) -> &ModalitySet {
        &self.modalities
    }

    fn task(&self) -> Task {
        Task::Classification { num_classes: 2 }
    }

    fn decoded_cache_stats(&self) -> Option<crate::decoded_cache::CacheStats> {
        self.cache.as_deref().map(DecodedCache::stats)
    }

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        get_via_into(self, index, rng)
    }

    fn fixed_shapes(&self) -> Option<Vec<Vec<i64>>> {
        let side = self.augment.crop as i64;
        Some(vec![vec![3, side, side]; 3])
    }

    fn get_into(
        &self,
        index: usize,
        rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
    ) -> Result<Target> {
        let e = self.entries.get(index).ok_or_else(|| index_error(index, self.entries.len()))?;
        let out = ImageOut { norm: Normalise::SURF, order: ChannelOrder::Bgr };
        let cache = self.cache.as_deref().map(|c| (c, index));
        read_augment_into_with(&e.paths, &self.augment, out, cache, rng, outs, |_, err| {
            DataError::list(&self.list, e.line, format!("sample {index}: {err}"))
        })?;
        Ok(Target::Class(e.label))
    }
}

thread_local! {
    /// This worker thread's file bytes, decoded images and their channel orders.
    static FILES: RefCell<(Vec<u8>, Vec<Image8>, Vec<ChannelOrder>)> = RefCell::default();
}

/// Reads `paths` (one image per modality, as [`crate::transform::read_bgr_into`] reads them,
/// colour JPEGs left in RGB order for the planar resize to reorder) and transforms them with
/// `augment` into `outs`, reusing this thread's buffers; `name` wraps read errors (e.g. with
/// the list line).
///
/// # Shapes
/// `outs[m]` holds `3 * crop * crop` values, one per path.
pub(crate) fn read_augment_into(
    paths: &[PathBuf],
    augment: &SurfAugment,
    rng: &mut ChaCha8Rng,
    outs: &mut [&mut [f32]],
    name: impl Fn(DataError) -> DataError,
) -> Result<()> {
    let out = ImageOut { norm: Normalise::SURF, order: ChannelOrder::Bgr };
    read_augment_into_with(paths, augment, out, None, rng, outs, |_, e| name(e))
}

/// How [`read_augment_into_with`] writes its outputs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ImageOut {
    /// The normalisation of the 8-bit values.
    pub norm: Normalise,
    /// The channel order of colour outputs.
    pub order: ChannelOrder,
}

/// [`read_augment_into`] with outputs normalised and ordered as `out` says; `name(m, e)`
/// wraps the read error of `paths[m]`. With `cache = Some((cache, index))` the decoded and
/// first-resized planes of sample `index` come from `cache` when it holds them for these
/// files, and are kept there otherwise (the random stage is the same either way).
///
/// # Shapes
/// `outs[m]` holds `3 * crop * crop` values, one per path.
pub(crate) fn read_augment_into_with(
    paths: &[PathBuf],
    augment: &SurfAugment,
    out: ImageOut,
    cache: Option<(&DecodedCache, usize)>,
    rng: &mut ChaCha8Rng,
    outs: &mut [&mut [f32]],
    name: impl Fn(usize, DataError) -> DataError,
) -> Result<()> {
    if let Some(entry) = cache.and_then(|(c, index)| c.get(index, paths)) {
        if let Payload::Planes(planes) = &entry.payload {
            return augment.random_stage(planes, out.norm, rng, outs);
        }
    }
    FILES.with_borrow_mut(|(file, images, orders)| {
        if images.len() < paths.len() {
            images.resize_with(paths.len(), Image8::default);
        }
        orders.clear();
        for (m, (p, img)) in paths.iter().zip(images.iter_mut()).enumerate() {
            orders.push(read_any_order_into(p, img, file).map_err(|e| name(m, e))?);
        }
        // The resize writes BGR planes from an image in `order(m)`: naming the other order
        // of an RGB output reverses them back.
        let source_order = |m: usize| match (out.order, orders[m]) {
            (ChannelOrder::Bgr, o) => o,
            (ChannelOrder::Rgb, ChannelOrder::Bgr) => ChannelOrder::Rgb,
            (ChannelOrder::Rgb, ChannelOrder::Rgb) => ChannelOrder::Bgr,
        };
        let images = &images[..paths.len()];
        augment.apply_keeping(images, source_order, out.norm, rng, outs, |planes| {
            if let Some((c, index)) = cache {
                c.insert(index, paths, Payload::Planes(planes.to_vec()));
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::{Stream, derive_rng};
    use crate::surf::write_synthetic_surf;
    use crate::transform::read_bgr;

    #[test]
    fn rgb_jpegs_reordered_by_the_resize_equal_the_bgr_path() {
        // Colour JPEGs stay RGB here and the resize reorders their planes; the result must be
        // the transform of `read_bgr`'s BGR images, bit for bit, in train and test modes.
        let dir = tempfile::tempdir().unwrap();
        let info = write_synthetic_surf(dir.path(), 3, 5, 40).unwrap();
        let ds = SurfDataset::open(dir.path(), &info.lists[0]).unwrap();
        for (train, seed) in [(true, 1), (true, 2), (false, 3)] {
            let aug = SurfAugment::sized(train, 32, 24);
            for e in ds.entries() {
                let images: Vec<Image8> = e.paths.iter().map(|p| read_bgr(p).unwrap()).collect();
                assert_eq!(images[0].channels, 3, "the colour modality is colour");
                let mut r1 = derive_rng(seed, 0, e.line as u64, Stream::Augment);
                let expected = aug.apply(&images, &mut r1.clone()).unwrap();
                let mut outs = vec![vec![f32::NAN; 3 * 24 * 24]; 3];
                let mut slots: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
                read_augment_into(&e.paths, &aug, &mut r1, &mut slots, |e| e).unwrap();
                assert_eq!(outs, expected, "train {train}, line {}", e.line);
            }
        }
    }
}
