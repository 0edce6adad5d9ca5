//! A manifest reader (`kind = "manifest"`): a CSV file with a header, or JSON Lines, one row per
//! sample, for users' own data with modalities really missing.
//!
//! Columns: `id`, `label` (a class name or index), an optional `split` (`train`/`val`/`test`;
//! without it a seeded split, stratified by label, or by `group` when given so that each group
//! stays in one split) and one column per declared modality holding a path relative to the
//! manifest, the numbers themselves for a vector (space-separated in a CSV cell, an array in
//! JSONL), or nothing when the sample lacks that modality.
//!
//! ```text
//! id,label,rgb,depth,imu
//! s1,cat,img/s1.png,depth/s1.png,0.1 0.2 0.3
//! s2,dog,img/s2.png,,0.4 0.5 0.6
//! ```

mod augment;
mod cache;
mod dataset;
pub mod example;
pub mod from_folders;
pub mod infer;
mod parse;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use mmanet_core::{ModalityDecl, ModalitySet};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

pub use augment::ImageAugment;
pub use cache::ManifestCache;
pub use from_folders::{FolderManifest, manifest_from_folders};
pub use infer::{Inferred, infer_modalities};
pub use parse::{BadRow, Cell, RESERVED, Row};

use crate::input_spec::{ColorOrder, Decoder, INPUT_SPEC_VERSION, InputModality, InputSpec};
use crate::seeding::{Stream, derive_rng};
use crate::source::{OpenOptions, Opened};
use crate::split::Standardizer;
use crate::{DataError, DataSource, Dataset, ModalityData, Result, Split, Task};
use dataset::ManifestDataset;

/// `[data.dataset] kind = "manifest"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSource {
    /// The manifest (`.csv`, or `.jsonl` / `.ndjson`); relative paths inside it are relative to
    /// its folder.
    pub path: PathBuf,
    /// The modalities, in the task's order: each a manifest column.
    pub modalities: Vec<ManifestModality>,
    /// Class names in index order (labels may be these names or their indices); empty: the
    /// sorted distinct labels (numerically when all are integers).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Fractions of the seeded split when the manifest has no `split` column.
    #[serde(default)]
    pub split: SplitFractions,
    /// The manifest as read, shared by clones: a run reads and checks the file once however
    /// often it opens a split. Not part of the config (`ManifestCache::default()` when building
    /// a source in code); it re-reads when the config or the file's size or time changes.
    #[serde(skip)]
    pub cache: ManifestCache,
}

/// The seeded split of a manifest without a `split` column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFractions {
    /// Fraction for validation.
    pub val: f64,
    /// Fraction for test.
    pub test: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        SplitFractions { val: 0.15, test: 0.15, seed: 0 }
    }
}

/// One modality column and how to decode it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestModality {
    /// The column (and modality) name.
    pub name: String,
    /// Its mask symbol; absent: derived from the names.
    #[serde(default)]
    pub symbol: Option<String>,
    /// The decoder.
    pub decoder: ManifestDecoder,
}

/// How a modality's cells are decoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ManifestDecoder {
    /// A PNG or JPEG file (8 or 16 bit, grey or colour), resized bilinearly to `size`, as
    /// `(x / 255 - mean) / std`; `channels` 3 (RGB) or 1 (grey); `flip`: random horizontal
    /// flips in training; `augment`: the CASIA-SURF training chain ([`ImageAugment`]).
    Image {
        /// `[height, width]`.
        size: [usize; 2],
        /// 3 or 1.
        #[serde(default = "three")]
        channels: usize,
        /// Mean on the 0-1 scale.
        #[serde(default = "half")]
        mean: f32,
        /// Standard deviation on the 0-1 scale.
        #[serde(default = "half")]
        std: f32,
        /// Random horizontal flips in training.
        #[serde(default)]
        flip: bool,
        /// The training transform of CASIA-SURF (resize, rotation, random crop to `size`,
        /// the flip above) through the 8-bit pipeline; absent: a resize to `size`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        augment: Option<ImageAugment>,
    },
    /// A `.npy` file of this shape (any float dtype).
    Array {
        /// The shape.
        shape: Vec<i64>,
    },
    /// `len` numbers in the cell (or a text or `.npy` file), standardised with the training
    /// split's statistics (saved for prediction) unless `standardize = false`.
    Vector {
        /// Number of values.
        len: usize,
        /// Standardise with training-split statistics.
        #[serde(default = "yes")]
        standardize: bool,
    },
    /// A `.npy` `[T, features]` sequence, padded or cut to `max_len` (true length kept).
    Sequence {
        /// Padded length.
        max_len: usize,
        /// Features per step.
        features: usize,
    },
}

fn three() -> usize {
    3
}
fn half() -> f32 {
    0.5
}
fn yes() -> bool {
    true
}

impl ManifestSource {
    fn set(&self) -> Result<ModalitySet> {
        let decls = self
            .modalities
            .iter()
            .map(|m| ModalityDecl::Named { name: m.name.clone(), symbol: m.symbol.clone() })
            .collect();
        ModalitySet::from_decls(decls).map_err(|e| DataError::field("modalities", e.to_string()))
    }

    /// The manifest read and checked (through the cache): its valid rows with class indices,
    /// splits and decoders, and its bad lines. Without `skip` a bad line is an error (the
    /// first, by line); with it the bad lines are left out (and logged once).
    fn load(&self, skip: bool) -> Result<Arc<Loaded>> {
        let loaded = self.loaded()?;
        if let Some(first) = loaded.bad.first() {
            if !skip {
                return Err(DataError::list(&self.path, first.line, first.message.clone()));
            }
            if !loaded.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                for b in loaded.bad.iter().take(20) {
                    tracing::warn!("skipping {}:{}: {}", self.path.display(), b.line, b.message);
                }
                tracing::warn!(
                    skipped = loaded.bad.len(),
                    kept = loaded.rows.len(),
                    "{}: {} bad lines skipped (data.skip_bad_samples)",
                    self.path.display(),
                    loaded.bad.len()
                );
            }
        }
        Ok(loaded)
    }

    /// The manifest as read (through the cache), bad lines included.
    fn loaded(&self) -> Result<Arc<Loaded>> {
        self.cache.get_or_read(self, || self.read())
    }

    /// Reads the file: rows, class indices, each row's split and the decoders (vector
    /// statistics from the training rows); lines that cannot be samples go to `bad`.
    fn read(&self) -> Result<Loaded> {
        let set = self.set()?;
        let names: Vec<String> = self.modalities.iter().map(|m| m.name.clone()).collect();
        let numeric: Vec<bool> = self
            .modalities
            .iter()
            .map(|m| matches!(m.decoder, ManifestDecoder::Vector { .. }))
            .collect();
        let text = std::fs::read_to_string(&self.path).map_err(|e| DataError::io(&self.path, e))?;
        let parse::Parsed { mut rows, mut bad } =
            parse::parse(&self.path, &text, &names, &numeric)?;
        // Inline vectors of the wrong length are bad lines before the split is drawn, so the
        // good lines split as they would without them.
        rows.retain(|r| match self.inline_length_error(r) {
            Some(message) => {
                bad.push(BadRow { line: r.line, message });
                false
            }
            None => true,
        });
        let classes = self.class_names(&rows);
        let mut kept = Vec::with_capacity(rows.len());
        let mut labels = Vec::with_capacity(rows.len());
        for r in rows {
            let k = classes.iter().position(|c| *c == r.label).or_else(|| {
                r.label
                    .parse::<usize>()
                    .ok()
                    .filter(|k| *k < classes.len() && !self.classes.is_empty())
            });
            match k {
                Some(k) => {
                    labels.push(k as i64);
                    kept.push(r);
                }
                None => bad.push(BadRow {
                    line: r.line,
                    message: format!(
                        "column `label`: unknown class `{}` (classes {classes:?})",
                        r.label
                    ),
                }),
            }
        }
        let splits = self.splits(&kept, &labels);
        let mut loaded = Loaded {
            set,
            rows: kept,
            labels,
            classes,
            splits,
            decoders: Vec::new(),
            bad,
            warned: Default::default(),
        };
        loaded.decoders = self.decoders(&mut loaded);
        loaded.bad.sort_by_key(|b| b.line);
        if loaded.rows.is_empty() {
            return Err(match loaded.bad.first() {
                Some(b) => DataError::list(
                    &self.path,
                    b.line,
                    format!("{} (and no line is a valid sample)", b.message),
                ),
                None => DataError::list(&self.path, 1, "no sample"),
            });
        }
        Ok(loaded)
    }

    /// The first inline vector of `row` whose length is not its decoder's, as a message.
    fn inline_length_error(&self, row: &Row) -> Option<String> {
        self.modalities.iter().zip(&row.cells).find_map(|(m, cell)| match (&m.decoder, cell) {
            (ManifestDecoder::Vector { len, .. }, Some(Cell::Values(v))) if v.len() != *len => {
                Some(format!("column `{}`: {} values, the decoder takes {len}", m.name, v.len()))
            }
            _ => None,
        })
    }

    fn class_names(&self, rows: &[Row]) -> Vec<String> {
        if !self.classes.is_empty() {
            return self.classes.clone();
        }
        let distinct: BTreeSet<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        let mut v: Vec<String> = distinct.into_iter().map(str::to_string).collect();
        if v.iter().all(|l| l.parse::<i64>().is_ok()) {
            v.sort_by_key(|l| l.parse::<i64>().expect("integer"));
        }
        v
    }

    /// Each row's split: its `split` column, else a seeded split by group or stratified by label.
    fn splits(&self, rows: &[Row], labels: &[i64]) -> Vec<Split> {
        let parse = |s: &str| match s {
            "train" => Split::Train,
            "val" => Split::Val,
            _ => Split::Test,
        };
        if rows.iter().any(|r| r.split.is_some()) {
            return rows.iter().map(|r| r.split.as_deref().map_or(Split::Train, parse)).collect();
        }
        let f = &self.split;
        let assign = |members: &mut Vec<usize>, salt: u64, out: &mut Vec<Split>| {
            members.shuffle(&mut derive_rng(f.seed, salt, 0, Stream::Generate));
            let n = members.len();
            let n_test = ((n as f64) * f.test).round() as usize;
            let n_val = ((n as f64) * f.val).round() as usize;
            for (k, &i) in members.iter().enumerate() {
                out[i] = if k < n_test {
                    Split::Test
                } else if k < n_test + n_val {
                    Split::Val
                } else {
                    Split::Train
                };
            }
        };
        let mut out = vec![Split::Train; rows.len()];
        if rows.iter().any(|r| r.group.is_some()) {
            // Whole groups per split: split the list of groups, then give each row its group's.
            let groups: BTreeMap<String, Vec<usize>> =
                rows.iter().enumerate().fold(BTreeMap::new(), |mut m, (i, r)| {
                    m.entry(r.group.clone().unwrap_or_else(|| r.id.clone())).or_default().push(i);
                    m
                });
            let keys: Vec<&Vec<usize>> = groups.values().collect();
            let mut order: Vec<usize> = (0..keys.len()).collect();
            let mut per_group = vec![Split::Train; keys.len()];
            assign(&mut order, 1, &mut per_group);
            for (g, members) in keys.iter().enumerate() {
                for &i in members.iter() {
                    out[i] = per_group[g];
                }
            }
            return out;
        }
        let classes: BTreeSet<i64> = labels.iter().copied().collect();
        for c in classes {
            let mut members: Vec<usize> = (0..rows.len()).filter(|&i| labels[i] == c).collect();
            assign(&mut members, 2 + c as u64, &mut out);
        }
        out
    }

    /// The input-spec decoders, with the vector statistics of the training split. A training
    /// row whose vector cell does not decode moves to `loaded.bad` (it would fail later too).
    fn decoders(&self, loaded: &mut Loaded) -> Vec<Decoder> {
        let mut out = Vec::with_capacity(self.modalities.len());
        for (m, md) in self.modalities.iter().enumerate() {
            out.push(match &md.decoder {
                ManifestDecoder::Image { size, channels, mean, std, .. } => {
                    let color = match channels {
                        1 => ColorOrder::Grey,
                        _ => ColorOrder::Rgb,
                    };
                    Decoder::Image {
                        color,
                        size: Some(*size),
                        mean: [mean * 255.0; 3],
                        std: [std * 255.0; 3],
                    }
                }
                ManifestDecoder::Array { shape } => {
                    Decoder::Vector { shape: shape.clone(), standardize: None }
                }
                ManifestDecoder::Vector { len, standardize } => {
                    let stats = standardize.then(|| self.vector_stats(loaded, m, *len));
                    Decoder::Vector { shape: vec![*len as i64], standardize: stats }
                }
                ManifestDecoder::Sequence { max_len, features } => {
                    Decoder::Sequence { max_len: *max_len, features: *features, standardize: None }
                }
            });
        }
        out
    }

    /// Mean and deviation of vector modality `m` (`len` values) over the training rows that
    /// have it; rows whose cell does not decode move to `loaded.bad`.
    fn vector_stats(&self, loaded: &mut Loaded, m: usize, len: usize) -> Standardizer {
        let raw = Decoder::Vector { shape: vec![len as i64], standardize: None };
        let name = &self.modalities[m].name;
        let mut values = Vec::new();
        let mut failed = Vec::new();
        for (i, r) in loaded.rows.iter().enumerate() {
            let Some(c) = r.cells[m].as_ref().filter(|_| loaded.splits[i] == Split::Train) else {
                continue;
            };
            match decode_cell(&raw, c, &self.path, r.line, name) {
                Ok(x) => values.push(x.data),
                Err(e) => failed.push((i, e)),
            }
        }
        for (i, e) in failed.into_iter().rev() {
            let message = match e {
                DataError::ListFormat { message, .. } => message,
                other => other.to_string(),
            };
            loaded.bad.push(BadRow { line: loaded.rows[i].line, message });
            loaded.rows.remove(i);
            loaded.labels.remove(i);
            loaded.splits.remove(i);
        }
        Standardizer::fit(values.iter().map(Vec::as_slice), len)
    }
}

/// A manifest read once: the valid rows (with class index and split), the decoders and the
/// lines that are not valid samples.
#[derive(Debug)]
struct Loaded {
    set: ModalitySet,
    rows: Vec<Row>,
    labels: Vec<i64>,
    classes: Vec<String>,
    splits: Vec<Split>,
    decoders: Vec<Decoder>,
    /// Sorted by line.
    bad: Vec<BadRow>,
    /// Whether the skipped lines were logged.
    warned: std::sync::atomic::AtomicBool,
}

fn decode_cell(
    decoder: &Decoder,
    cell: &Cell,
    manifest: &std::path::Path,
    line: usize,
    column: &str,
) -> Result<ModalityData> {
    let r = match cell {
        Cell::File(p) => decoder.decode_file(p, None),
        Cell::Values(v) => decoder.decode_values(v.clone()),
    };
    r.map_err(|e| DataError::list(manifest, line, format!("column `{column}`: {e}")))
}

impl DataSource for ManifestSource {
    fn name(&self) -> &'static str {
        "manifest"
    }

    fn check(&self) -> Result<()> {
        self.set()?;
        for (m, md) in self.modalities.iter().enumerate() {
            let bad = match &md.decoder {
                ManifestDecoder::Image { size, channels, std, .. } => {
                    size.contains(&0) || !matches!(channels, 1 | 3) || *std <= 0.0
                }
                ManifestDecoder::Array { shape } => {
                    shape.is_empty() || shape.iter().any(|d| *d <= 0)
                }
                ManifestDecoder::Vector { len, .. } => *len == 0,
                ManifestDecoder::Sequence { max_len, features } => *max_len == 0 || *features == 0,
            };
            if bad {
                return Err(DataError::field(
                    format!("modalities[{m}].decoder"),
                    "sizes must be >= 1 (images: 1 or 3 channels, std > 0)",
                ));
            }
            if let ManifestDecoder::Image { size, channels, augment: Some(a), .. } = &md.decoder {
                a.check(&format!("modalities[{m}].decoder.augment"), *size, *channels)?;
            }
        }
        let f = &self.split;
        if !(f.val >= 0.0 && f.test >= 0.0 && f.val + f.test < 1.0) {
            return Err(DataError::field(
                "split",
                "val and test fractions must be >= 0 and sum below 1",
            ));
        }
        Ok(())
    }

    fn root_mut(&mut self) -> Option<&mut PathBuf> {
        Some(&mut self.path)
    }

    fn open(&self, split: Split, _seed: u64) -> Result<Arc<dyn Dataset>> {
        self.open_split(split, &OpenOptions::default())
    }

    fn open_with(&self, split: Split, _seed: u64, options: &OpenOptions) -> Result<Opened> {
        let data = self.open_split(split, options)?;
        let skipped = if options.skip_bad_samples {
            let loaded = self.load(true)?;
            loaded
                .bad
                .iter()
                .map(|b| format!("{}:{}: {}", self.path.display(), b.line, b.message))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Opened { data, skipped })
    }

    /// Image modalities keep their decoded inputs (with `augment`: the 8-bit planes).
    fn has_decoded_cache(&self) -> bool {
        self.modalities.iter().any(|m| matches!(m.decoder, ManifestDecoder::Image { .. }))
    }

    fn input_spec(&self, _seed: u64) -> Result<InputSpec> {
        // The spec describes the valid rows whatever the skip setting: a strict run fails
        // when it opens a split.
        let loaded = self.loaded()?;
        Ok(InputSpec {
            version: INPUT_SPEC_VERSION,
            dataset: self.name().to_string(),
            task: Task::Classification { num_classes: loaded.classes.len() },
            modalities: loaded
                .set
                .modalities()
                .iter()
                .zip(loaded.decoders.iter().cloned())
                .map(|(m, decoder)| InputModality {
                    name: m.name().into(),
                    symbol: m.symbol().into(),
                    decoder,
                })
                .collect(),
            classes: loaded.classes.clone(),
        })
    }
}

impl ManifestSource {
    /// One split of the (cached) manifest, as `options` say.
    fn open_split(&self, split: Split, options: &OpenOptions) -> Result<Arc<dyn Dataset>> {
        let loaded = self.load(options.skip_bad_samples)?;
        let train = split == Split::Train;
        let keep: Vec<usize> =
            (0..loaded.rows.len()).filter(|&i| loaded.splits[i] == split).collect();
        let task = Task::Classification { num_classes: loaded.classes.len() };
        Ok(Arc::new(ManifestDataset::new(
            self.path.clone(),
            keep.iter().map(|&i| loaded.rows[i].clone()).collect(),
            keep.iter().map(|&i| loaded.labels[i]).collect(),
            loaded.set.clone(),
            task,
            loaded.decoders.clone(),
            self.modalities.iter().map(|m| &m.decoder).filter(|_| train),
            options.decoded_cache_bytes,
        )))
    }
}
