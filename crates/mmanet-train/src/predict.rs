//! Prediction with a deployment network from whichever modality files are given.
//!
//! Absent modalities still enter their branch (as zeros) and are masked out at feature level,
//! exactly as in training: a masked branch contributes nothing to the output.

use std::path::{Path, PathBuf};

use mmanet_core::Modality;
use mmanet_data::surf::SurfAugment;
use mmanet_data::transform::read_bgr;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::TrainError;
use crate::config::ValidConfig;
use crate::data_spec::DatasetSpec;
use crate::evaluate::load_for_eval;
use crate::model_spec::ModelSpecExt;

/// Class probabilities of one sample and the modalities that were present.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The present modalities.
    pub present: Vec<Modality>,
    /// Softmax over the classes.
    pub probabilities: Vec<f64>,
}

/// Reads one modality file: an image (`.jpg`, `.png`, ...) through the data set's test
/// transform, or a text file of numbers (whitespace or comma separated) for vector branches.
fn read_input(cfg: &ValidConfig, path: &Path) -> Result<(Vec<f32>, Vec<i64>), TrainError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "bmp") {
        let crop = match &cfg.data.dataset {
            DatasetSpec::Surf { crop, .. } | DatasetSpec::SyntheticSurf { crop, .. } => *crop,
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
    let n = values.len() as i64;
    Ok((values, vec![n]))
}

/// Per-modality sample shapes of the run's data set (from its first test sample), used for
/// the zero placeholders of absent modalities.
fn sample_shapes(cfg: &ValidConfig) -> Result<Vec<Vec<i64>>, TrainError> {
    let data = cfg.data.dataset.open(crate::data_spec::Split::Test, cfg.seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    Ok(data.get(0, &mut rng)?.inputs.into_iter().map(|x| x.shape).collect())
}

/// Predicts one sample from `inputs` (modality, file); any non-empty subset of the model's
/// modalities. `weights` is a student, deployment or teacher checkpoint of the run `cfg`.
pub fn predict(
    cfg: &ValidConfig,
    weights: &Path,
    inputs: &[(Modality, PathBuf)],
) -> Result<Prediction, TrainError> {
    let set = cfg.model.set();
    if inputs.is_empty() {
        return Err(TrainError::config("input", "give at least one modality file"));
    }
    let mut given: Vec<(usize, Vec<i64>)> = Vec::new();
    let mut data: Vec<Option<Vec<f32>>> = vec![None; set.len()];
    for (m, path) in inputs {
        let pos = set.position(*m).ok_or_else(|| {
            TrainError::config("input", format!("the model has no modality `{m}` (it has {set})"))
        })?;
        let (values, shape) = read_input(cfg, path)?;
        given.push((pos, shape));
        data[pos] = Some(values);
    }
    let (_vs, net) = load_for_eval(cfg, weights)?;
    let device = cfg.device();
    let mut tensors = Vec::with_capacity(set.len());
    let mut mask = vec![0f32; set.len()];
    let mut shapes: Option<Vec<Vec<i64>>> = None;
    for m in 0..set.len() {
        let t = match (&data[m], given.iter().find(|(k, _)| *k == m)) {
            (Some(v), Some((_, shape))) => {
                mask[m] = 1.0;
                Tensor::from_slice(v).view(shape.as_slice())
            }
            _ => {
                if shapes.is_none() {
                    shapes = Some(sample_shapes(cfg)?);
                }
                let shape = &shapes.as_ref().expect("shapes")[m];
                Tensor::zeros(shape.as_slice(), (Kind::Float, tch::Device::Cpu))
            }
        };
        tensors.push(t.unsqueeze(0).to_device(device)); // [1, ...]
    }
    let mask_t = Tensor::from_slice(&mask).view([1, set.len() as i64]).to_device(device);
    let out = tch::no_grad(|| net.forward_t(&tensors, &mask_t, false));
    let probs = out.logits.softmax(1, Kind::Double).view([-1]).to_device(tch::Device::Cpu);
    let present = given.iter().map(|(k, _)| set.modalities()[*k]).collect();
    Ok(Prediction {
        present,
        probabilities: Vec::<f64>::try_from(&probs).expect("f64 probabilities"),
    })
}
