//! Prediction with a deployment network from whichever modality files are given.
//!
//! Absent modalities still enter their branch (as zeros) and are masked out at feature level,
//! exactly as in training: a masked branch contributes nothing to the output.
//!
//! Nothing here knows a data set: how each modality's file is decoded and transformed (resize,
//! normalisation, feature standardisation, sequence padding) comes from the run's
//! [`InputSpec`], which the trainer writes to the run folder as [`INPUT_SPEC_FILE`] before the
//! first epoch.
//!
//! - Classification ([`predict`]): class probabilities.
//! - Segmentation ([`predict_segmentation`]): a label map at the input resolution (or the
//!   spec's evaluation size), written as an 8-bit PNG by [`SegmentationPrediction::write_png`].
//!   Pixel values are class ids in the data set's label convention: `1..=C` for the classes
//!   (the network's output channel `k` is label `k + 1`); 0 is void and never predicted.

use std::path::{Path, PathBuf};

use mmanet_data::input_spec::{Decoder, INPUT_SPEC_VERSION};
use mmanet_data::{InputSpec, ModalityData, Task};
use tch::{Kind, Tensor};

use crate::TrainError;
use crate::config::ValidConfig;
use crate::evaluate::load_for_eval;
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

/// Maps each given modality (name or symbol) to its position; errors on unknown or repeated
/// ones, and when the spec does not describe the model's modalities.
fn positions(
    cfg: &ValidConfig,
    spec: &InputSpec,
    inputs: &[(String, PathBuf)],
) -> Result<Vec<(usize, PathBuf)>, TrainError> {
    let set = cfg.set();
    let spec_names: Vec<&str> = spec.modalities.iter().map(|m| m.name.as_str()).collect();
    if !spec_names.iter().copied().eq(set.names()) {
        return Err(TrainError::config(
            "input_spec.modalities",
            format!("the spec has {spec_names:?}, the model {}", set.describe()),
        ));
    }
    if inputs.is_empty() {
        return Err(TrainError::config("input", "give at least one modality file"));
    }
    let mut out: Vec<(usize, PathBuf)> = Vec::new();
    for (token, path) in inputs {
        let pos = set.require(token).map_err(|e| TrainError::config("input", e.to_string()))?;
        if out.iter().any(|(p, _)| *p == pos) {
            let name = set.modalities()[pos].name();
            return Err(TrainError::config("input", format!("modality `{name}` given twice")));
        }
        out.push((pos, path.clone()));
    }
    out.sort_by_key(|(p, _)| *p);
    Ok(out)
}

/// Decodes `path` with modality `m`'s decoder; errors name the file.
fn decode(
    spec: &InputSpec,
    m: usize,
    path: &Path,
    size: Option<[usize; 2]>,
) -> Result<ModalityData, TrainError> {
    let decoder = &spec.modalities[m].decoder;
    decoder.decode_file(path, size).map_err(|e| {
        let text = e.to_string();
        let named = text.contains(&path.display().to_string());
        let message = if named { text } else { format!("{}: {text}", path.display()) };
        TrainError::config(format!("input {}", spec.modalities[m].name), message)
    })
}

/// The network inputs of one sample: per modality `[1, ...]`, then the `[1]` true lengths of
/// the sequence modalities (the generic networks' convention), plus the `[1, M]` mask.
fn batch_of_one(
    data: &[Option<ModalityData>],
    spec: &InputSpec,
    device: tch::Device,
) -> Result<(Vec<Tensor>, Tensor), TrainError> {
    let mut tensors = Vec::with_capacity(data.len());
    let mut lengths = Vec::new();
    let mut mask = vec![0f32; data.len()];
    for (m, d) in data.iter().enumerate() {
        let decoder = &spec.modalities[m].decoder;
        let t = match d {
            Some(x) => {
                mask[m] = 1.0;
                if let Some(l) = x.length {
                    lengths.push(l);
                }
                Tensor::from_slice(&x.data).view(x.shape.as_slice())
            }
            None => {
                let shape = decoder.fixed_shape().ok_or_else(|| {
                    TrainError::config(
                        format!("input {}", spec.modalities[m].name),
                        "its size depends on the file: give it",
                    )
                })?;
                if matches!(decoder, Decoder::Sequence { .. }) {
                    lengths.push(1); // a zero placeholder of one step, masked out anyway
                }
                Tensor::zeros(shape.as_slice(), (Kind::Float, tch::Device::Cpu))
            }
        };
        tensors.push(t.unsqueeze(0).to_device(device));
    }
    tensors.extend(lengths.into_iter().map(|l| Tensor::from_slice(&[l]).to_device(device)));
    let mask = Tensor::from_slice(&mask).view([1, data.len() as i64]).to_device(device);
    Ok((tensors, mask))
}

/// Predicts one sample from `inputs` (modality name or symbol, file); any non-empty subset of
/// the model's modalities. `weights` is a student, deployment or teacher checkpoint of the run
/// `cfg`; `spec` says how each file is decoded (see [`input_spec_for_run`]). Segmentation
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
    let given = positions(cfg, spec, inputs)?;
    let set = cfg.set();
    let mut data: Vec<Option<ModalityData>> = vec![None; set.len()];
    for (pos, path) in &given {
        let x = decode(spec, *pos, path, None)?;
        if let Some(want) = spec.modalities[*pos].decoder.fixed_shape() {
            if want != x.shape {
                return Err(TrainError::config(
                    format!("input {}", spec.modalities[*pos].name),
                    format!(
                        "{}: decoded to {:?}, the model reads {want:?}",
                        path.display(),
                        x.shape
                    ),
                ));
            }
        }
        data[*pos] = Some(x);
    }
    let (_vs, net) = load_for_eval(cfg, weights)?;
    let (tensors, mask) = batch_of_one(&data, spec, cfg.device())?;
    let out = tch::no_grad(|| net.forward_t(&tensors, &mask, false));
    let probs = out.logits.softmax(1, Kind::Double).view([-1]).to_device(tch::Device::Cpu);
    Ok(Prediction {
        present: given.iter().map(|(p, _)| set.modalities()[*p].name().to_string()).collect(),
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
            mmanet_fs::create_dir_all(parent)?;
        }
        let img =
            image::GrayImage::from_raw(self.width as u32, self.height as u32, self.labels.clone())
                .expect("height * width labels");
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png)
            .map_err(|e| TrainError::config("out", format!("{}: {e}", path.display())))?;
        write_atomic(path, png.get_ref())
    }
}

/// ESANet's encoder divides the input by 32 and its decoder adds the skips back, so inputs
/// run at the next multiple of 32 and the logits are resized back.
fn multiple_of_32(n: usize) -> usize {
    n.div_ceil(32).max(1) * 32
}

/// The output size of image modality `m`'s decoder, if fixed.
fn decoder_size(decoder: &Decoder) -> Option<[usize; 2]> {
    decoder.fixed_shape().and_then(|s| match s[..] {
        [_, h, w] => Some([h as usize, w as usize]),
        _ => None,
    })
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
    let num_classes = cfg.model.num_classes();
    if num_classes > 255 {
        return Err(TrainError::config("model", "more than 255 classes do not fit an 8-bit PNG"));
    }
    let given = positions(cfg, spec, inputs)?;
    // The output size: the spec's evaluation size, else the first file's size.
    let (h, w) = match given.iter().find_map(|(p, _)| decoder_size(&spec.modalities[*p].decoder)) {
        Some([h, w]) => (h, w),
        None => {
            let (p, path) = &given[0];
            let x = decode(spec, *p, path, None)?;
            (x.shape[1] as usize, x.shape[2] as usize)
        }
    };
    let run_size = [multiple_of_32(h), multiple_of_32(w)];
    let set = cfg.set();
    let mut data: Vec<Option<ModalityData>> = vec![None; set.len()];
    for (pos, path) in &given {
        let decoder = &spec.modalities[*pos].decoder;
        if !decoder.is_image() {
            return Err(TrainError::config(
                format!("input {}", spec.modalities[*pos].name),
                format!("segmentation reads images, not a {} input", decoder.kind_name()),
            ));
        }
        if decoder_size(decoder).is_none() {
            // Files kept at their own size must agree with each other.
            let own = decode(spec, *pos, path, None)?;
            if (own.shape[1] as usize, own.shape[2] as usize) != (h, w) {
                return Err(TrainError::config(
                    "input",
                    format!(
                        "{}: {}x{}, the other input is {h}x{w}",
                        path.display(),
                        own.shape[1],
                        own.shape[2]
                    ),
                ));
            }
        }
        data[*pos] = Some(decode(spec, *pos, path, Some(run_size))?);
    }
    let mut tensors = Vec::with_capacity(set.len());
    let mut mask = vec![0f32; set.len()];
    for (m, d) in data.into_iter().enumerate() {
        let channels = spec.modalities[m].decoder.channels().unwrap_or(1) as i64;
        let t = match d {
            Some(x) => {
                mask[m] = 1.0;
                Tensor::from_slice(&x.data).view(x.shape.as_slice())
            }
            None => Tensor::zeros(
                [channels, run_size[0] as i64, run_size[1] as i64],
                (Kind::Float, tch::Device::Cpu),
            ),
        };
        tensors.push(t.unsqueeze(0).to_device(cfg.device()));
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
    Ok(SegmentationPrediction {
        present: given.iter().map(|(p, _)| set.modalities()[*p].name().to_string()).collect(),
        height: h,
        width: w,
        labels,
    })
}
