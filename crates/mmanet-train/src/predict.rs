//! Prediction with a deployment network from whichever modality files are given.
//!
//! Absent modalities still enter their branch (as zeros) and are masked out at feature level,
//! exactly as in training: a masked branch contributes nothing to the output.
//!
//! - Classification ([`predict`]): class probabilities. Images go through the data set's test
//!   transform; text files of numbers go through the same feature standardisation the
//!   training data got ([`InputScaling`], saved in the run folder as
//!   [`INPUT_SCALING_FILE`]).
//! - Segmentation ([`predict_segmentation`]): a label map at the input resolution, written as
//!   an 8-bit PNG by [`SegmentationPrediction::write_png`]. Pixel values are class ids in the
//!   data set's label convention: `1..=C` for the classes (the network's output channel
//!   `k` is label `k + 1`); 0 is void and never predicted.

use std::path::{Path, PathBuf};

use mmanet_data::Dataset;
use mmanet_data::cityscapes::{CityscapesDepth, read_cityscapes_depth};
use mmanet_data::mfeat::{MfeatOptions, load_mfeat};
use mmanet_data::nyuv2::{DEPTH_MEAN, DEPTH_STD, IMAGENET_MEAN, IMAGENET_STD};
use mmanet_data::split::Standardizer;
use mmanet_data::surf::SurfAugment;
use mmanet_data::transform::{Image, read_bgr, read_gray_unchanged, read_rgb};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::TrainError;
use crate::config::ValidConfig;
use crate::data_spec::DatasetSpec;
use crate::evaluate::load_for_eval;
use crate::model_spec::ModelSpecExt;

/// The file of a run folder holding its [`InputScaling`].
pub const INPUT_SCALING_FILE: &str = "input_scaling.json";

/// Class probabilities of one sample and the modalities that were present.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The present modalities' names, in the task's order.
    pub present: Vec<String>,
    /// Softmax over the classes.
    pub probabilities: Vec<f64>,
}

/// Per-feature standardisation of one vector modality: `(x - mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureScaling {
    /// The modality's name.
    pub modality: String,
    /// Feature means (of the training split).
    pub mean: Vec<f32>,
    /// Feature standard deviations (population; 1 for constant features).
    pub std: Vec<f32>,
}

/// The feature standardisation a run's training data got, so raw features given to
/// [`predict`] are scaled the same way. Empty for data sets that are not standardised.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InputScaling {
    /// One entry per standardised modality.
    pub features: Vec<FeatureScaling>,
}

impl InputScaling {
    /// The statistics of `cfg`'s data set, fitted exactly as its reader does (UCI mfeat: each
    /// view on the seeded 80 % training split, before validation is carved out of it).
    pub fn fit(cfg: &ValidConfig) -> Result<Self, TrainError> {
        let DatasetSpec::Mfeat { root, views, .. } = &cfg.data.dataset else {
            return Ok(InputScaling::default());
        };
        let opts = MfeatOptions {
            views: views.clone(),
            seed: cfg.seed,
            standardize: false,
            ..MfeatOptions::default()
        };
        let (train, _) = load_mfeat(root, &opts)?;
        let features = train
            .modalities()
            .modalities()
            .iter()
            .enumerate()
            .map(|(m, modality)| {
                let dim = train.samples().first().map_or(0, |s| s.inputs[m].data.len());
                let s = Standardizer::fit(
                    train.samples().iter().map(|s| s.inputs[m].data.as_slice()),
                    dim,
                );
                FeatureScaling { modality: modality.name().to_string(), mean: s.mean, std: s.std }
            })
            .collect();
        Ok(InputScaling { features })
    }

    /// The scaling of `m`, if it is standardised.
    pub fn of(&self, m: &str) -> Option<&FeatureScaling> {
        self.features.iter().find(|f| f.modality == m)
    }

    /// Standardises `values` of modality `m` in place (no-op when `m` is not standardised);
    /// a length that differs from the training features is an error.
    pub fn apply(&self, m: &str, values: &mut [f32]) -> Result<(), TrainError> {
        let Some(f) = self.of(m) else { return Ok(()) };
        if values.len() != f.mean.len() {
            return Err(TrainError::config(
                "input",
                format!("{m}: {} values, the model was trained on {}", values.len(), f.mean.len()),
            ));
        }
        Standardizer { mean: f.mean.clone(), std: f.std.clone() }.apply(values);
        Ok(())
    }

    /// Writes `<run_dir>/input_scaling.json` (nothing when empty).
    pub fn save_in(&self, run_dir: &Path) -> Result<(), TrainError> {
        if self.features.is_empty() {
            return Ok(());
        }
        let path = run_dir.join(INPUT_SCALING_FILE);
        let text = serde_json::to_string_pretty(self).expect("serialisable scaling");
        std::fs::write(&path, text).map_err(|e| TrainError::io(&path, e))
    }

    /// Reads `<run_dir>/input_scaling.json`; `None` when the file does not exist.
    pub fn load_from(run_dir: &Path) -> Result<Option<Self>, TrainError> {
        let path = run_dir.join(INPUT_SCALING_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| TrainError::config(path.display().to_string(), e.to_string()))
    }

    /// The run's saved scaling, or (runs written before it was saved) the one fitted on the
    /// config's data.
    pub fn for_run(cfg: &ValidConfig, run_dir: &Path) -> Result<Self, TrainError> {
        match Self::load_from(run_dir)? {
            Some(s) => Ok(s),
            None => {
                let s = Self::fit(cfg)?;
                if !s.features.is_empty() {
                    tracing::warn!(
                        "{} has no {INPUT_SCALING_FILE}: refitting the standardisation on the data",
                        run_dir.display()
                    );
                }
                Ok(s)
            }
        }
    }
}

/// Reads one modality file: an image (`.jpg`, `.png`, ...) through the data set's test
/// transform, or a text file of numbers (whitespace or comma separated) for vector branches,
/// standardised with `scaling`.
fn read_input(
    cfg: &ValidConfig,
    m: &str,
    path: &Path,
    scaling: &InputScaling,
) -> Result<(Vec<f32>, Vec<i64>), TrainError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "bmp") {
        let crop = match &cfg.data.dataset {
            DatasetSpec::Surf { crop, .. }
            | DatasetSpec::SyntheticSurf { crop, .. }
            | DatasetSpec::Cefa { crop, .. } => *crop,
            _ => {
                return Err(TrainError::config(
                    "input",
                    format!("{}: image inputs need a CASIA-SURF-style model", path.display()),
                ));
            }
        };
        let img = read_bgr(path)?;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let data = SurfAugment::sized(false, crop, crop).apply(&[img], &mut rng)?.remove(0);
        return Ok((data, vec![3, crop as i64, crop as i64]));
    }
    let mut values = read_numbers(path)?;
    scaling
        .apply(m, &mut values)
        .map_err(|e| TrainError::config("input", format!("{}: {e}", path.display())))?;
    let n = values.len() as i64;
    Ok((values, vec![n]))
}

fn read_numbers(path: &Path) -> Result<Vec<f32>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let mut values = Vec::new();
    for (i, tok) in
        text.split(|c: char| c.is_whitespace() || c == ',').filter(|t| !t.is_empty()).enumerate()
    {
        values.push(tok.parse::<f32>().map_err(|e| {
            TrainError::config(
                "input",
                format!("{}: value {}: `{tok}`: {e}", path.display(), i + 1),
            )
        })?);
    }
    Ok(values)
}

/// Per-modality sample shapes of the run's data set (from its first test sample), used for
/// the zero placeholders of absent modalities.
fn sample_shapes(cfg: &ValidConfig) -> Result<Vec<Vec<i64>>, TrainError> {
    let data = cfg.data.dataset.open(crate::data_spec::Split::Test, cfg.seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    Ok(data.get(0, &mut rng)?.inputs.into_iter().map(|x| x.shape).collect())
}

/// Maps each given modality to its input position; errors on unknown or repeated ones.
fn positions(
    cfg: &ValidConfig,
    inputs: &[(String, PathBuf)],
) -> Result<Vec<(usize, String, PathBuf)>, TrainError> {
    let set = cfg.set();
    if inputs.is_empty() {
        return Err(TrainError::config("input", "give at least one modality file"));
    }
    let mut out: Vec<(usize, String, PathBuf)> = Vec::new();
    for (token, path) in inputs {
        let pos = set.require(token).map_err(|e| TrainError::config("input", e.to_string()))?;
        let name = set.modalities()[pos].name().to_string();
        if out.iter().any(|(p, ..)| *p == pos) {
            return Err(TrainError::config("input", format!("modality `{name}` given twice")));
        }
        out.push((pos, name, path.clone()));
    }
    Ok(out)
}

/// Predicts one sample from `inputs` (modality, file); any non-empty subset of the model's
/// modalities. `weights` is a student, deployment or teacher checkpoint of the run `cfg`;
/// `scaling` standardises text inputs as the training data was (see
/// [`InputScaling::for_run`]). Segmentation models need [`predict_segmentation`].
pub fn predict(
    cfg: &ValidConfig,
    weights: &Path,
    inputs: &[(String, PathBuf)],
    scaling: &InputScaling,
) -> Result<Prediction, TrainError> {
    if cfg.model.is_segmentation() {
        return Err(TrainError::config(
            "input",
            "a segmentation model predicts a label map: use predict_segmentation (`--out FILE.png`)",
        ));
    }
    let set = cfg.model.set();
    let given = positions(cfg, inputs)?;
    let mut data: Vec<Option<(Vec<f32>, Vec<i64>)>> = vec![None; set.len()];
    for (pos, m, path) in &given {
        data[*pos] = Some(read_input(cfg, m, path, scaling)?);
    }
    let (_vs, net) = load_for_eval(cfg, weights)?;
    let device = cfg.device();
    // The data set's sample shapes: zero placeholders of absent modalities, and text inputs
    // of a branch that reads them as an image (e.g. mfeat's Pix view as `[1, 16, 15]`).
    let needs_shapes = data.iter().any(|d| d.as_ref().is_none_or(|(_, shape)| shape.len() == 1));
    let shapes = if needs_shapes { Some(sample_shapes(cfg)?) } else { None };
    let mut tensors = Vec::with_capacity(set.len());
    let mut mask = vec![0f32; set.len()];
    for (m, d) in data.iter().enumerate() {
        let want = shapes.as_ref().map(|s| s[m].as_slice());
        let t = match (d, want) {
            (Some((values, shape)), want) => {
                mask[m] = 1.0;
                if let Some(w) = want.filter(|w| w.iter().product::<i64>() != values.len() as i64) {
                    let path = &given.iter().find(|(p, ..)| *p == m).expect("given").2;
                    return Err(TrainError::config(
                        "input",
                        format!(
                            "{}: {} values, the model's `{}` branch reads {w:?}",
                            path.display(),
                            values.len(),
                            set.modalities()[m]
                        ),
                    ));
                }
                match want {
                    Some(w) if shape.len() == 1 && w.iter().product::<i64>() == shape[0] => {
                        Tensor::from_slice(values).view(w)
                    }
                    _ => Tensor::from_slice(values).view(shape.as_slice()),
                }
            }
            (None, Some(w)) => Tensor::zeros(w, (Kind::Float, tch::Device::Cpu)),
            (None, None) => unreachable!("shapes are read when a modality is absent"),
        };
        tensors.push(t.unsqueeze(0).to_device(device)); // [1, ...]
    }
    let mask_t = Tensor::from_slice(&mask).view([1, set.len() as i64]).to_device(device);
    let out = tch::no_grad(|| net.forward_t(&tensors, &mask_t, false));
    let probs = out.logits.softmax(1, Kind::Double).view([-1]).to_device(tch::Device::Cpu);
    let mut present: Vec<(usize, String)> = given.iter().map(|(p, m, _)| (*p, m.clone())).collect();
    present.sort_unstable();
    Ok(Prediction {
        present: present.into_iter().map(|(_, m)| m).collect(),
        probabilities: Vec::<f64>::try_from(&probs).expect("f64 probabilities"),
    })
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
        let mut h = vec![0; num_classes + 1];
        for &l in &self.labels {
            if let Some(c) = h.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        h
    }

    /// Writes the labels as an 8-bit grey PNG (`labels_<C>` convention: 0 = void, `1..=C`).
    pub fn write_png(&self, path: &Path) -> Result<(), TrainError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
        }
        let img =
            image::GrayImage::from_raw(self.width as u32, self.height as u32, self.labels.clone())
                .expect("height * width labels");
        img.save(path).map_err(|e| TrainError::config("out", format!("{}: {e}", path.display())))
    }
}

/// How a segmentation data set normalises depth and sizes its evaluation inputs.
struct SegInputs {
    depth: DepthKind,
    eval_size: Option<[usize; 2]>,
}

enum DepthKind {
    /// NYUv2: uint16 png in mm, `(d - 2841.9494) / 1417.2594`.
    Nyuv2,
    /// Cityscapes raw depth or disparity (invalid 0 kept at 0).
    Cityscapes(CityscapesDepth),
}

fn seg_inputs(cfg: &ValidConfig) -> Result<SegInputs, TrainError> {
    match &cfg.data.dataset {
        DatasetSpec::Nyuv2 { .. } | DatasetSpec::SyntheticNyuv2 { .. } => {
            Ok(SegInputs { depth: DepthKind::Nyuv2, eval_size: None })
        }
        DatasetSpec::Cityscapes { depth, eval_size, .. } => {
            Ok(SegInputs { depth: DepthKind::Cityscapes(*depth), eval_size: *eval_size })
        }
        other => Err(TrainError::config(
            "data.dataset",
            format!("no segmentation input transform for `{}`", other.name()),
        )),
    }
}

/// ESANet's encoder divides the input by 32 and its decoder adds the skips back, so inputs
/// run at the next multiple of 32 and the logits are resized back.
fn multiple_of_32(n: usize) -> usize {
    n.div_ceil(32).max(1) * 32
}

/// Predicts a label map from an RGB png and/or a depth file (NYUv2: uint16 png in mm;
/// Cityscapes: float16 `.npy` metres or uint16 disparity png, as the run's data set reads),
/// normalised as the data set's test transform does. The map has the input's size (after
/// the data set's `eval_size`, if any).
pub fn predict_segmentation(
    cfg: &ValidConfig,
    weights: &Path,
    inputs: &[(String, PathBuf)],
) -> Result<SegmentationPrediction, TrainError> {
    if !cfg.model.is_segmentation() {
        return Err(TrainError::config("input", "not a segmentation model: use predict"));
    }
    let num_classes = cfg.model.num_classes();
    if num_classes > 255 {
        return Err(TrainError::config("model", "more than 255 classes do not fit an 8-bit PNG"));
    }
    let kind = seg_inputs(cfg)?;
    let given = positions(cfg, inputs)?;
    let mut images: Vec<Option<Image>> = vec![None; cfg.model.set().len()];
    for (pos, m, path) in &given {
        let img = match m.as_str() {
            "rgb" => read_rgb(path)?,
            "depth" => match kind.depth {
                DepthKind::Nyuv2 => read_gray_unchanged(path)?,
                DepthKind::Cityscapes(_) => read_cityscapes_depth(path)?,
            },
            other => {
                return Err(TrainError::config(
                    "input",
                    format!("segmentation reads rgb and depth, not `{other}`"),
                ));
            }
        };
        images[*pos] = Some(img);
    }
    let (mut h, mut w) = given
        .iter()
        .find_map(|(p, ..)| images[*p].as_ref().map(|i| (i.height, i.width)))
        .expect("at least one input");
    for (pos, _, path) in &given {
        let img = images[*pos].as_ref().expect("read");
        if (img.height, img.width) != (h, w) {
            return Err(TrainError::config(
                "input",
                format!(
                    "{}: {}x{}, the other input is {h}x{w}",
                    path.display(),
                    img.height,
                    img.width
                ),
            ));
        }
    }
    if let Some([eh, ew]) = kind.eval_size {
        (h, w) = (eh, ew);
    }
    let (rh, rw) = (multiple_of_32(h), multiple_of_32(w));
    let set = cfg.model.set();
    let mut tensors = Vec::with_capacity(set.len());
    let mut mask = vec![0f32; set.len()];
    for (m, img) in images.into_iter().enumerate() {
        let is_rgb = set.modalities()[m].name() == "rgb";
        let channels = if is_rgb { 3 } else { 1 };
        let values = match img {
            None => vec![0f32; channels * rh * rw],
            Some(img) => {
                mask[m] = 1.0;
                if is_rgb {
                    let mean: Vec<f32> = IMAGENET_MEAN.iter().map(|v| v * 255.0).collect();
                    let std: Vec<f32> = IMAGENET_STD.iter().map(|v| v * 255.0).collect();
                    let img = if (img.height, img.width) == (rh, rw) {
                        img
                    } else {
                        img.resize_bilinear(rh, rw)
                    };
                    img.to_chw_normalized(&mean, &std)
                } else {
                    let img = img.resize_nearest(rh, rw);
                    match kind.depth {
                        DepthKind::Nyuv2 => img.to_chw_normalized(&[DEPTH_MEAN], &[DEPTH_STD]),
                        DepthKind::Cityscapes(d) => {
                            let mut v = img.data;
                            d.normalize(&mut v);
                            v
                        }
                    }
                }
            }
        };
        tensors.push(
            Tensor::from_slice(&values)
                .view([1, channels as i64, rh as i64, rw as i64])
                .to_device(cfg.device()),
        );
    }
    let (_vs, net) = load_for_eval(cfg, weights)?;
    let mask_t = Tensor::from_slice(&mask).view([1, set.len() as i64]).to_device(cfg.device());
    let logits = tch::no_grad(|| net.forward_t(&tensors, &mask_t, false)).logits; // [1, C, rh, rw]
    let logits = if logits.size()[2..] == [h as i64, w as i64] {
        logits
    } else {
        logits.upsample_bilinear2d([h as i64, w as i64], false, None, None)
    };
    let pred = (logits.argmax(1, false) + 1).to_kind(Kind::Uint8).to_device(tch::Device::Cpu);
    let labels = Vec::<u8>::try_from(pred.flatten(0, -1)).expect("u8 labels");
    let mut present: Vec<(usize, String)> = given.iter().map(|(p, m, _)| (*p, m.clone())).collect();
    present.sort_unstable();
    Ok(SegmentationPrediction {
        present: present.into_iter().map(|(_, m)| m).collect(),
        height: h,
        width: w,
        labels,
    })
}
