//! BasicMotions (UEA archive, as packaged in PyPI `aeon==1.6.0`, see `datasets/basicmotions/`):
//! accelerometer and gyroscope of the same recordings, 4 classes, in the sktime `.ts` format.
//!
//! Header lines start with `@` (or `#` for comments); `@classLabel true A B ..` fixes the class
//! order. After `@data`, each line holds the dimensions as comma-separated series separated by
//! `:`, then `:label`. Dimensions 0-2 are the accelerometer, 3-5 the gyroscope.

use std::path::Path;

use mmanet_core::ModalitySet;

use crate::{DataError, Dataset, InMemoryDataset, ModalityData, Result, Sample, Target, Task};

/// A parsed `.ts` file.
#[derive(Clone, Debug, PartialEq)]
pub struct TsFile {
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Per sample, per dimension, the series.
    pub series: Vec<Vec<Vec<f32>>>,
    /// Per sample, the class index.
    pub labels: Vec<i64>,
}

/// Parses a `.ts` file; `classes` overrides the header's class order (to share it between the
/// train and test files). Errors name `file:line`.
pub fn read_ts(path: &Path, classes: Option<&[String]>) -> Result<TsFile> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut header_classes: Vec<String> = Vec::new();
    let mut in_data = false;
    let mut raw = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if !in_data {
            let lower = t.to_ascii_lowercase();
            if lower.starts_with("@classlabel") {
                let mut parts = t.split_whitespace().skip(1);
                if parts.next().is_some_and(|p| p.eq_ignore_ascii_case("true")) {
                    header_classes = parts.map(str::to_string).collect();
                }
            } else if lower.starts_with("@data") {
                in_data = true;
            } else if !t.starts_with('@') {
                return Err(DataError::list(path, i + 1, "data before the @data line"));
            }
            continue;
        }
        let parts: Vec<&str> = t.split(':').collect();
        if parts.len() < 2 {
            return Err(DataError::list(path, i + 1, "expected `series:...:label`"));
        }
        let (dims, label) = parts.split_at(parts.len() - 1);
        let series = dims
            .iter()
            .map(|d| {
                d.split(',')
                    .map(|v| {
                        v.trim().parse::<f32>().map_err(|_| {
                            DataError::list(path, i + 1, format!("`{v}` is not a number"))
                        })
                    })
                    .collect::<Result<Vec<f32>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        raw.push((series, label[0].trim().to_string(), i + 1));
    }
    let classes: Vec<String> = match classes {
        Some(c) => c.to_vec(),
        None if !header_classes.is_empty() => header_classes,
        None => {
            let mut c: Vec<String> = raw.iter().map(|r| r.1.clone()).collect();
            c.sort();
            c.dedup();
            c
        }
    };
    let (mut series, mut labels) = (Vec::new(), Vec::new());
    for (s, label, line) in raw {
        let y = classes.iter().position(|c| *c == label).ok_or_else(|| {
            DataError::list(path, line, format!("unknown class `{label}` (classes {classes:?})"))
        })?;
        series.push(s);
        labels.push(y as i64);
    }
    if series.is_empty() {
        return Err(DataError::list(path, 1, "no data lines"));
    }
    Ok(TsFile { classes, series, labels })
}

/// Loads `BasicMotions_TRAIN.ts` and `BasicMotions_TEST.ts` from `dir` as `(train, test)`:
/// modalities Acc and Gyr, each sample `[3, T]` (channels, time steps), 4 classes in the train
/// file's header order. Values are raw sensor readings.
pub fn load_basicmotions(dir: &Path) -> Result<(InMemoryDataset, InMemoryDataset)> {
    let train = read_ts(&dir.join("BasicMotions_TRAIN.ts"), None)?;
    let test = read_ts(&dir.join("BasicMotions_TEST.ts"), Some(&train.classes))?;
    let build = |f: &TsFile, name: &str| -> Result<InMemoryDataset> {
        let t = f.series[0].first().map_or(0, Vec::len);
        let mut samples = Vec::with_capacity(f.series.len());
        for (k, (s, y)) in f.series.iter().zip(&f.labels).enumerate() {
            if s.len() != 6 || s.iter().any(|d| d.len() != t) {
                return Err(DataError::shape(
                    format!("{}/{name}: sample {k}", dir.display()),
                    format!("6 dimensions of {t} steps"),
                    format!(
                        "{} dimensions of {:?} steps",
                        s.len(),
                        s.iter().map(Vec::len).collect::<Vec<_>>()
                    ),
                ));
            }
            let part = |r: std::ops::Range<usize>| -> Result<ModalityData> {
                ModalityData::new(s[r].concat(), vec![3, t as i64])
            };
            samples
                .push(Sample { inputs: vec![part(0..3)?, part(3..6)?], target: Target::Class(*y) });
        }
        InMemoryDataset::new(
            ModalitySet::from_pairs(&[("accelerometer", "Acc"), ("gyroscope", "Gyr")])?,
            Task::Classification { num_classes: f.classes.len() },
            samples,
        )
    };
    Ok((build(&train, "BasicMotions_TRAIN.ts")?, build(&test, "BasicMotions_TEST.ts")?))
}

/// BasicMotions (`cargo xtask data fetch basicmotions`) as a data source: accelerometer +
/// gyroscope sequences `[100, 3]` (time-major), the official 40/40 split, validation from the
/// training part.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicMotionsSource {
    /// Folder holding `BasicMotions_{TRAIN,TEST}.ts`.
    pub root: std::path::PathBuf,
    /// Fraction of the training split held out for validation.
    pub val_fraction: f64,
}

impl crate::DataSource for BasicMotionsSource {
    fn name(&self) -> &'static str {
        "basicmotions"
    }

    fn check(&self) -> Result<()> {
        crate::source::check_val_fraction(self.val_fraction)
    }

    fn root_mut(&mut self) -> Option<&mut std::path::PathBuf> {
        Some(&mut self.root)
    }

    fn open(&self, split: crate::Split, seed: u64) -> Result<std::sync::Arc<dyn crate::Dataset>> {
        let (train, test) = load_basicmotions(&self.root)
            .map_err(|e| crate::source::fetch_hint(e, "basicmotions"))?;
        crate::source::three_way(
            time_major(train)?,
            time_major(test)?,
            self.val_fraction,
            seed,
            split,
        )
    }

    fn input_spec(&self, seed: u64) -> Result<crate::InputSpec> {
        let data = self.open(crate::Split::Test, seed)?;
        let train = read_ts(&self.root.join("BasicMotions_TRAIN.ts"), None)
            .map_err(|e| crate::source::fetch_hint(e, "basicmotions"))?;
        crate::source::numeric_input_spec(self.name(), data.as_ref(), train.classes, vec![])
    }
}

/// `[C, T]` channel-major series to `[T, C]` time-major (what sequence branches read).
fn time_major(data: InMemoryDataset) -> Result<InMemoryDataset> {
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
    InMemoryDataset::new(data.modalities().clone(), data.task(), samples)
}
