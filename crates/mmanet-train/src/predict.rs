//! Prediction with a deployment network from whichever modality files are given.
//!
//! Absent modalities still enter their branch (as zeros) and are masked out at feature level,
//! exactly as in training: a masked branch contributes nothing to the output.
//!
//! Nothing here knows a data set: how each modality's file is decoded and transformed (resize,
//! normalisation, feature standardisation, sequence padding) comes from the run's
//! [`InputSpec`], which the trainer writes to the run folder as [`INPUT_SPEC_FILE`] before the
//! first epoch. The work is [`mmanet_deploy`]'s: these functions build the run's model file
//! in memory ([`crate::export::model_file`]) and predict with it, exactly as `mmanet predict
//! model.safetensors` does.
//!
//! - Classification ([`predict`]): class probabilities.
//! - Segmentation ([`predict_segmentation`]): a label map at the input resolution (or the
//!   spec's evaluation size), written as an 8-bit PNG by [`SegmentationPrediction::write_png`].
//!   Pixel values are class ids in the data set's label convention: `1..=C` for the classes
//!   (the network's output channel `k` is label `k + 1`); 0 is void and never predicted.

use std::path::{Path, PathBuf};

use mmanet_data::input_spec::INPUT_SPEC_VERSION;
use mmanet_data::{InputSpec, Task};
use mmanet_deploy::{Output, Predictor, RawInput};

use crate::TrainError;
use crate::config::ValidConfig;
use crate::model_spec::ModelSpecExt;
use crate::run_dir::write_atomic;

/// The file of a run folder holding its [`InputSpec`].
pub const INPUT_SPEC_FILE: &str = "input_spec.json";

/// Class probabilities of one sample and the modalities that were present.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The present modalities' names, in the task's order.
    pub present: Vec<String>,
    /// Softmax over the classes.
    pub probabilities: Vec<f64>,
}

/// Writes `spec` as `<run_dir>/input_spec.json`.
pub fn save_input_spec(spec: &InputSpec, run_dir: &Path) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(spec).expect("serialisable spec");
    write_atomic(&run_dir.join(INPUT_SPEC_FILE), text.as_bytes())
}

/// Reads `<run_dir>/input_spec.json`; `None` when the file does not exist.
pub fn load_input_spec(run_dir: &Path) -> Result<Option<InputSpec>, TrainError> {
    let path = run_dir.join(INPUT_SPEC_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let spec: InputSpec = serde_json::from_str(&text)
        .map_err(|e| TrainError::config(path.display().to_string(), e.to_string()))?;
    if spec.version != INPUT_SPEC_VERSION {
        return Err(TrainError::config(
            path.display().to_string(),
            format!("input spec version {} (this build reads {INPUT_SPEC_VERSION})", spec.version),
        ));
    }
    Ok(Some(spec))
}

/// The run's saved input spec, or (runs written before it was saved) the one its data config
/// gives, computed the same way.
pub fn input_spec_for_run(cfg: &ValidConfig, run_dir: &Path) -> Result<InputSpec, TrainError> {
    match load_input_spec(run_dir)? {
        Some(s) => Ok(s),
        None => {
            tracing::warn!(
                "{} has no {INPUT_SPEC_FILE}: computing it from the data config",
                run_dir.display()
            );
            cfg.data.dataset.input_spec(cfg.seed)
        }
    }
}

/// The [`Predictor`] of run `cfg`'s deployment network with `weights`, on the run's device.
fn predictor(cfg: &ValidConfig, spec: &InputSpec, weights: &Path) -> Result<Predictor, TrainError> {
    let file = crate::export::model_file(cfg, spec.clone(), weights, &cfg.to_toml(), None)?;
    Ok(Predictor::new(file, cfg.device())?)
}

fn raw_inputs(inputs: &[(String, PathBuf)]) -> Vec<(String, RawInput)> {
    inputs.iter().map(|(m, p)| (m.clone(), RawInput::File(p.clone()))).collect()
}

fn present_names(spec: &InputSpec, present: &[bool]) -> Vec<String> {
    mmanet_deploy::present_modalities(spec, present).map(|m| m.name.clone()).collect()
}

/// Predicts one sample from `inputs` (modality name or symbol, file); any non-empty subset of
/// the model's modalities. `weights` is a student, baseline or deployment checkpoint of the
/// run `cfg`; `spec` says how each file is decoded (see [`input_spec_for_run`]). Segmentation
/// models need [`predict_segmentation`].
pub fn predict(
    cfg: &ValidConfig,
    spec: &InputSpec,
    weights: &Path,
    inputs: &[(String, PathBuf)],
) -> Result<Prediction, TrainError> {
    if cfg.model.is_segmentation() {
        return Err(TrainError::config(
            "input",
            "a segmentation model predicts a label map: use predict_segmentation (`--out FILE.png`)",
        ));
    }
    let p = predictor(cfg, spec, weights)?;
    let prepared = mmanet_deploy::prepare(p.metadata(), raw_inputs(inputs), "")?;
    let present = present_names(spec, &prepared.present);
    match p.predict(std::slice::from_ref(&prepared))?.remove(0) {
        Output::Classes(probabilities) => Ok(Prediction { present, probabilities }),
        Output::LabelMap { .. } => Err(TrainError::config("model", "predicted a label map")),
    }
}

/// A predicted label map.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentationPrediction {
    /// The present modalities' names, in the task's order.
    pub present: Vec<String>,
    /// Rows (the input's).
    pub height: usize,
    /// Columns (the input's).
    pub width: usize,
    /// Row-major class ids `1..=C` (output channel + 1; 0 = void is never predicted).
    pub labels: Vec<u8>,
}

impl SegmentationPrediction {
    /// Pixels per label id (index = id, so index 0 counts void).
    pub fn histogram(&self, num_classes: usize) -> Vec<usize> {
        mmanet_deploy::predictor::histogram(&self.labels, num_classes)
    }

    /// Writes the labels as an 8-bit grey PNG (`labels_<C>` convention: 0 = void, `1..=C`).
    pub fn write_png(&self, path: &Path) -> Result<(), TrainError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            mmanet_fs::create_dir_all(parent)?;
        }
        let png = mmanet_deploy::predictor::label_png(self.height, self.width, &self.labels)?;
        write_atomic(path, &png)
    }
}

/// Predicts a label map from image files of any non-empty subset of the model's modalities,
/// each decoded as `spec` says (e.g. RGB with ImageNet statistics, depth PNG in mm). The map
/// has the input's size (or the spec's evaluation size); the network runs at the next
/// multiple of 32.
pub fn predict_segmentation(
    cfg: &ValidConfig,
    spec: &InputSpec,
    weights: &Path,
    inputs: &[(String, PathBuf)],
) -> Result<SegmentationPrediction, TrainError> {
    if !cfg.model.is_segmentation() || !matches!(spec.task, Task::Segmentation { .. }) {
        return Err(TrainError::config("input", "not a segmentation model: use predict"));
    }
    let p = predictor(cfg, spec, weights)?;
    let prepared = mmanet_deploy::prepare(p.metadata(), raw_inputs(inputs), "")?;
    let present = present_names(spec, &prepared.present);
    match p.predict(std::slice::from_ref(&prepared))?.remove(0) {
        Output::LabelMap { height, width, labels } => {
            Ok(SegmentationPrediction { present, height, width, labels })
        }
        Output::Classes(_) => {
            Err(TrainError::config("model", "predicted classes, not a label map"))
        }
    }
}
