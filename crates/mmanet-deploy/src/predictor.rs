//! [`Predictor`]: the deployment network of a model file on a device, predicting batches of
//! [`Prepared`] samples that may each carry a different subset of modalities (the per-sample
//! mask is data: absent inputs are zeros with mask bit 0, exactly as in training).

use std::path::Path;

use mmanet_data::Task;
use mmanet_models::MultiModalNet;
use mmanet_models::checkpoint::{self, LoadMode};
use mmanet_models::factory::build_net;
use tch::{Device, Kind, Tensor};

use crate::error::caught;
use crate::format::{ModelFile, ModelMetadata, read_model_file};
use crate::graphs::{GraphCounts, Graphs, WARMUP_RUNS};
use crate::input::{Prepared, warmup_sample};
use crate::{DeployError, Result};

/// What the network says about one sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Softmax over the classes, in the order of the metadata's class names.
    Classes(Vec<f64>),
    /// A label map of `height x width` class ids `1..=C` (output channel `k` is label
    /// `k + 1`; 0 = void is never predicted), row-major.
    LabelMap {
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
        /// Row-major label ids.
        labels: Vec<u8>,
    },
}

/// A loaded deployment network. Not `Sync` (libtorch tensors): one thread owns it.
pub struct Predictor {
    metadata: ModelMetadata,
    _vs: tch::nn::VarStore,
    net: Box<dyn MultiModalNet>,
    device: Device,
    /// [`Predictor::with_cuda_graphs`].
    graphs: Option<Graphs>,
}

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor")
            .field("metadata", &self.metadata)
            .field("device", &self.device)
            .field("graph_counts", &self.graph_counts())
            .finish()
    }
}

impl Predictor {
    /// Builds the network the metadata describes and strictly loads the file's weights.
    ///
    /// tch's layer constructors panic when libtorch refuses an allocation (a network far
    /// larger than memory, which a file whose sizes each pass the format's bound can still
    /// describe): that panic is returned as [`DeployError::Torch`].
    pub fn new(file: ModelFile, device: Device) -> Result<Self> {
        let build = || -> Result<_> {
            let vs = tch::nn::VarStore::new(device);
            let net = build_net(&vs.root(), &file.metadata.model, file.metadata.network.role())?;
            checkpoint::load_named(&vs, &file.tensors, LoadMode::Strict)?;
            Ok((vs, net))
        };
        let (vs, net) = caught("building the network the metadata describes", build)?;
        if let Task::Segmentation { num_classes } = file.metadata.input_spec.task {
            if num_classes > 255 {
                return Err(DeployError::format(
                    "<model>",
                    "more than 255 classes do not fit an 8-bit label map",
                ));
            }
        }
        Ok(Predictor { metadata: file.metadata, _vs: vs, net, device, graphs: None })
    }

    /// Runs fixed-size batches through CUDA graphs from now on ([`crate::graphs`]): one per
    /// batch-size bucket up to `max_batch`, padded to the bucket. On CPU the batches run
    /// eagerly, padded alike. A forward pass that cannot be captured (one that reads a value
    /// back to the host, e.g. to pack sequences by length) is served eagerly. Fails on a
    /// CUDA device when mmanet-sys was built without CUDA graphs (against the CPU libtorch).
    pub fn with_cuda_graphs(mut self, max_batch: usize) -> Result<Self> {
        if self.device.is_cuda() && !mmanet_sys::cuda_graphs_built() {
            return Err(DeployError::input(
                "cuda_graph",
                "mmanet-sys was built without CUDA graphs (build against the CUDA libtorch: \
                 `cargo xtask setup --cuda`)",
            ));
        }
        self.graphs = Some(Graphs::new(self.device, max_batch));
        Ok(self)
    }

    /// The passes before serving: one on a placeholder sample (all modalities present) or,
    /// with graphs, every bucket's warm-up passes and its capture, so that no request waits
    /// for one. Models whose input sizes come with each request have no placeholder: nothing
    /// runs.
    pub fn warm_up(&self) -> Result<()> {
        let Some(sample) = warmup_sample(&self.metadata) else { return Ok(()) };
        match &self.graphs {
            Some(graphs) => {
                for &b in graphs.buckets() {
                    let batch = vec![sample.clone(); b];
                    for _ in 0..=WARMUP_RUNS {
                        self.predict(&batch)?;
                    }
                }
            }
            None => {
                self.predict(&[sample])?;
            }
        }
        Ok(())
    }

    /// How the batches ran so far with [`Predictor::with_cuda_graphs`] (`None` without).
    pub fn graph_counts(&self) -> Option<GraphCounts> {
        self.graphs.as_ref().map(Graphs::counts)
    }

    /// [`Predictor::new`] on the model file at `path`.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        Self::new(read_model_file(path)?, device)
    }

    /// The file's metadata.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// The network (in evaluation mode whenever it is called with `train = false`), for
    /// callers that score it on a data set (`mmanet eval MODEL --config DATA`).
    pub fn net(&self) -> &dyn MultiModalNet {
        self.net.as_ref()
    }

    /// The device the network runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Predicts every sample of `batch`, in order. Samples whose inputs have the same shapes
    /// run together in one forward pass (all of them, for fixed-size inputs), whatever their
    /// modality subsets.
    pub fn predict(&self, batch: &[Prepared]) -> Result<Vec<Output>> {
        let mut out: Vec<Option<Output>> = vec![None; batch.len()];
        let mut groups: Vec<(Vec<Vec<i64>>, Vec<usize>)> = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            let key = p.shape_key();
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        for (_, members) in groups {
            let samples: Vec<&Prepared> = members.iter().map(|&i| &batch[i]).collect();
            for (i, o) in members.into_iter().zip(self.forward(&samples)?) {
                out[i] = Some(o);
            }
        }
        Ok(out.into_iter().map(|o| o.expect("every sample is in one group")).collect())
    }

    /// One forward pass over samples of equal input shapes (through the graphs when enabled).
    /// libtorch refusing an input the checks let through (an image too small for the
    /// network's pooling) is [`DeployError::Torch`], so a server's model thread goes on.
    fn forward(&self, samples: &[&Prepared]) -> Result<Vec<Output>> {
        caught("forward pass", || self.forward_unguarded(samples))
    }

    /// [`Predictor::forward`] without the guard.
    fn forward_unguarded(&self, samples: &[&Prepared]) -> Result<Vec<Output>> {
        match &self.graphs {
            Some(graphs) => {
                let mut out = Vec::with_capacity(samples.len());
                let key = samples[0].shape_key();
                for chunk in samples.chunks(graphs.largest()) {
                    let (inputs, mask) = self.batch_tensors(chunk, graphs.bucket_for(chunk.len()));
                    let logits = graphs.logits(self.net.as_ref(), &key, &inputs, &mask)?;
                    out.extend(self.outputs(&logits.narrow(0, 0, chunk.len() as i64), chunk)?);
                }
                Ok(out)
            }
            None => {
                let (inputs, mask) = self.batch_tensors(samples, samples.len());
                let inputs: Vec<Tensor> = inputs.iter().map(|t| t.to_device(self.device)).collect();
                let mask = mask.to_device(self.device);
                let logits = tch::no_grad(|| self.net.forward_t(&inputs, &mask, false)).logits;
                self.outputs(&logits, samples)
            }
        }
    }

    /// The network's host inputs for `samples`, padded to `rows` by repeating the last sample.
    ///
    /// # Shapes
    /// Inputs per modality `[rows, ...]` (then `[rows]` i64 true lengths of the sequence
    /// modalities, the generic networks' convention), mask `[rows, M]` f32.
    fn batch_tensors(&self, samples: &[&Prepared], rows: usize) -> (Vec<Tensor>, Tensor) {
        let m_count = self.metadata.input_spec.modalities.len();
        let last = samples[samples.len() - 1];
        let padded =
            || samples.iter().copied().chain(std::iter::repeat_n(last, rows - samples.len()));
        let b = rows as i64;
        let mut tensors = Vec::with_capacity(m_count);
        let mut lengths = Vec::new();
        for m in 0..m_count {
            let shape = &samples[0].inputs[m].shape;
            let mut flat = Vec::with_capacity(rows * samples[0].inputs[m].data.len());
            for s in padded() {
                flat.extend_from_slice(&s.inputs[m].data);
            }
            let mut full = vec![b];
            full.extend_from_slice(shape);
            tensors.push(Tensor::from_slice(&flat).view(full.as_slice()));
            if samples[0].inputs[m].length.is_some() {
                let l: Vec<i64> = padded().map(|s| s.inputs[m].length.unwrap_or(1)).collect();
                lengths.push(Tensor::from_slice(&l));
            }
        }
        tensors.extend(lengths);
        let mask: Vec<f32> =
            padded().flat_map(|s| s.present.iter().map(|&p| if p { 1.0 } else { 0.0 })).collect();
        (tensors, Tensor::from_slice(&mask).view([b, m_count as i64]))
    }

    /// The outputs of `samples` from their logits.
    ///
    /// # Shapes
    /// `logits`: `[B, K]` or `[B, C, h, w]`, one row per sample.
    fn outputs(&self, logits: &Tensor, samples: &[&Prepared]) -> Result<Vec<Output>> {
        match self.metadata.input_spec.task {
            Task::Classification { .. } => {
                let probs = logits.f_softmax(1, Kind::Double)?.to_device(Device::Cpu);
                let k = probs.size()[1] as usize;
                let all = Vec::<f64>::try_from(probs.flatten(0, -1))?;
                Ok(all.chunks(k).map(|c| Output::Classes(c.to_vec())).collect())
            }
            Task::Segmentation { .. } => {
                let [h, w] = samples[0].out_size.ok_or_else(|| {
                    DeployError::input("inputs", "a segmentation sample without an output size")
                })?;
                let logits = if logits.size()[2..] == [h as i64, w as i64] {
                    logits.shallow_clone()
                } else {
                    logits.upsample_bilinear2d([h as i64, w as i64], false, None, None)
                };
                let pred =
                    (logits.argmax(1, false) + 1).to_kind(Kind::Uint8).to_device(Device::Cpu);
                let all = Vec::<u8>::try_from(pred.flatten(0, -1))?;
                Ok(all
                    .chunks(h * w)
                    .map(|c| Output::LabelMap { height: h, width: w, labels: c.to_vec() })
                    .collect())
            }
        }
    }
}

/// The most probable class of a softmax and its probability (the first on ties).
pub fn best_class(probabilities: &[f64]) -> (usize, f64) {
    probabilities
        .iter()
        .enumerate()
        .fold((0, f64::MIN), |best, (k, &p)| if p > best.1 { (k, p) } else { best })
}

/// Pixels per label id of a label map (index = id, so index 0 counts void).
pub fn histogram(labels: &[u8], num_classes: usize) -> Vec<usize> {
    let mut h = vec![0; num_classes + 1];
    for &l in labels {
        if let Some(c) = h.get_mut(usize::from(l)) {
            *c += 1;
        }
    }
    h
}

/// A label map as 8-bit grey PNG bytes (0 = void, `1..=C`).
pub fn label_png(height: usize, width: usize, labels: &[u8]) -> Result<Vec<u8>> {
    let img = image::GrayImage::from_raw(width as u32, height as u32, labels.to_vec())
        .ok_or_else(|| DeployError::input("labels", "height * width labels expected"))?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| DeployError::input("labels", e.to_string()))?;
    Ok(png.into_inner())
}
