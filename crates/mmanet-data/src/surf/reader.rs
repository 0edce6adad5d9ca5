//! [`SurfDataset`]: reads a CASIA-SURF list file.

use std::path::{Path, PathBuf};

use mmanet_core::ModalitySet;
use rand_chacha::ChaCha8Rng;

use super::SurfAugment;
use crate::dataset::index_error;
use crate::transform::read_bgr;
use crate::{DataError, Dataset, ModalityData, Result, Sample, Target, Task};

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
            modalities: ModalitySet::surf(),
            augment: SurfAugment::test(),
        })
    }

    /// Sets the transform (e.g. [`SurfAugment::train`]); fails when the crop does not fit.
    pub fn with_augment(mut self, augment: SurfAugment) -> Result<Self> {
        augment.validate()?;
        self.augment = augment;
        Ok(self)
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

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        let e = self.entries.get(index).ok_or_else(|| index_error(index, self.entries.len()))?;
        let images = e
            .paths
            .iter()
            .map(|p| {
                read_bgr(p).map_err(|err| {
                    DataError::list(&self.list, e.line, format!("sample {index}: {err}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let side = self.augment.crop as i64;
        let inputs = self
            .augment
            .apply(&images, rng)?
            .into_iter()
            .map(|data| ModalityData::new(data, vec![3, side, side]))
            .collect::<Result<Vec<_>>>()?;
        Ok(Sample { inputs, target: Target::Class(e.label) })
    }
}
