//! Evaluation with one fixed modality combination per pass (the paper's protocol).

use std::sync::Arc;

use mmanet_core::ModalityMask;
use mmanet_data::{Batch, DataLoader, Dataset, LoaderConfig, MaskPolicy, Shard, Task};
use mmanet_metrics::{
    AccuracyCounter, BinaryCounts, CombinationReport, ConfusionMatrix, LabelConvention,
};
use mmanet_models::MultiModalNet;
use tch::{Device, Kind, Tensor};

use crate::TrainError;
use crate::model_spec::ModelSpecExt;
use crate::parallel::DataParallel;

/// The ranks of a data-parallel run an evaluation is split over: this rank scores positions
/// `rank, rank + W, ...` of every batch, and the raw counts (correct and total, the binary
/// error counts, confusion matrices) are summed over the ranks, so every rank gets exactly the
/// single-process metrics, never an average of per-rank ones (docs/distributed.md). `None`:
/// one process.
pub type Ranks<'a> = Option<&'a mut DataParallel>;

/// The loader's positions this rank scores (all of them in one process).
fn this_rank(loader: &DataLoader, ranks: &Ranks<'_>) -> Result<DataLoader, TrainError> {
    let shard = match ranks {
        Some(p) => Shard::new(p.rank(), p.world_size())?,
        None => Shard::WHOLE,
    };
    Ok(loader.sharded(shard)?)
}

/// Sums every tally's raw counts over the ranks (one collective for all of them).
fn sum_over_ranks(tallies: &mut [&mut Tally], ranks: &mut Ranks<'_>) -> Result<(), TrainError> {
    let Some(p) = ranks else { return Ok(()) };
    let mut flat: Vec<f64> = tallies.iter().flat_map(|t| t.counts()).collect();
    p.sum_f64(&mut flat)?;
    let mut at = 0;
    for t in tallies.iter_mut() {
        let n = t.counts().len();
        let mut summed = t.empty()?;
        summed.add_counts(&flat[at..at + n])?;
        **t = summed;
        at += n;
    }
    Ok(())
}

/// Which metrics a data set is scored with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scoring {
    /// Binary presentation-attack detection: ACER, APCER, BPCER, accuracy.
    AntiSpoofing(LabelConvention),
    /// Multi-class accuracy.
    Accuracy,
    /// Segmentation: mIoU and pixel accuracy over `num_classes` classes (void = 0 ignored).
    Segmentation {
        /// Number of classes, void excluded.
        num_classes: usize,
    },
}

impl Scoring {
    /// The scoring for a task: anti-spoofing metrics when a bona fide label is given.
    pub fn for_task(task: Task, bona_fide_label: Option<i64>) -> Result<Self, TrainError> {
        Ok(match (task, bona_fide_label) {
            (Task::Segmentation { num_classes }, _) => Scoring::Segmentation { num_classes },
            (Task::Classification { num_classes: 2 }, Some(l)) => {
                Scoring::AntiSpoofing(LabelConvention::new(l)?)
            }
            (Task::Classification { .. }, _) => Scoring::Accuracy,
        })
    }

    /// An empty report with this scoring's columns.
    pub fn empty_report(&self) -> CombinationReport {
        match self {
            Scoring::AntiSpoofing(_) => CombinationReport::classification(),
            Scoring::Accuracy => CombinationReport::new(["accuracy"]).expect("valid name"),
            Scoring::Segmentation { .. } => CombinationReport::segmentation(),
        }
    }

    /// The column used for model selection (higher is better).
    pub fn selection_metric(&self) -> &'static str {
        match self {
            Scoring::Segmentation { .. } => "miou",
            Scoring::AntiSpoofing(_) | Scoring::Accuracy => "accuracy",
        }
    }
}

/// Accumulates predictions of one combination.
enum Tally {
    Binary(BinaryCounts),
    Accuracy(AccuracyCounter),
    Confusion(ConfusionMatrix),
}

impl Tally {
    fn new(scoring: Scoring) -> Result<Self, TrainError> {
        Ok(match scoring {
            Scoring::AntiSpoofing(c) => Tally::Binary(BinaryCounts::new(c)),
            Scoring::Accuracy => Tally::Accuracy(AccuracyCounter::new()),
            Scoring::Segmentation { num_classes } => {
                Tally::Confusion(ConfusionMatrix::new(num_classes)?)
            }
        })
    }

    fn update(&mut self, labels: &[i64], preds: &[i64]) -> Result<(), TrainError> {
        match self {
            Tally::Binary(b) => b.update(labels, preds)?,
            Tally::Accuracy(a) => a.update(labels, preds)?,
            Tally::Confusion(c) => c.update(labels, preds)?,
        }
        Ok(())
    }

    fn values(&self) -> Vec<f64> {
        match self {
            Tally::Binary(b) => b.metric_values().to_vec(),
            Tally::Accuracy(a) => vec![a.accuracy()],
            Tally::Confusion(c) => c.metric_values().to_vec(),
        }
    }

    /// An empty tally of the same scoring.
    fn empty(&self) -> Result<Self, TrainError> {
        Ok(match self {
            Tally::Binary(b) => Tally::Binary(BinaryCounts::new(b.convention())),
            Tally::Accuracy(_) => Tally::Accuracy(AccuracyCounter::new()),
            Tally::Confusion(c) => Tally::Confusion(ConfusionMatrix::new(c.num_classes())?),
        })
    }

    /// The raw counts, as f64 (exact below 2^53) for summing over ranks.
    fn counts(&self) -> Vec<f64> {
        match self {
            Tally::Binary(b) => {
                [b.attacks(), b.attack_errors(), b.bona_fide(), b.bona_fide_errors()]
                    .map(|c| c as f64)
                    .to_vec()
            }
            Tally::Accuracy(a) => vec![a.correct() as f64, a.total() as f64],
            Tally::Confusion(c) => c.counts().iter().map(|&n| n as f64).collect(),
        }
    }

    /// Adds raw counts laid out as [`Tally::counts`].
    fn add_counts(&mut self, counts: &[f64]) -> Result<(), TrainError> {
        let n: Vec<u64> = counts.iter().map(|&c| c as u64).collect();
        match self {
            Tally::Binary(b) => b.add_counts(n[0], n[1], n[2], n[3])?,
            Tally::Accuracy(a) => a.add_counts(n[0], n[1])?,
            Tally::Confusion(c) => c.add_counts(&n)?,
        }
        Ok(())
    }
}

/// Predicted labels of a batch.
///
/// # Shapes
/// - `logits`: `[B, K]` -> `[B]`; or `[B, K, h, w]` -> `[B * H * W]` after bilinear upsampling
///   to the targets' `[B, H, W]` (as the reference scores at label resolution).
pub fn predictions(logits: &Tensor, targets: &Tensor) -> Vec<i64> {
    let pred = if logits.dim() == 4 {
        let size = targets.size();
        let up = if logits.size()[2..] != size[1..] {
            logits.upsample_bilinear2d([size[1], size[2]], false, None, None)
        } else {
            logits.shallow_clone()
        };
        up.argmax(1, false) // [B, H, W]
    } else {
        logits.argmax(1, false) // [B]
    };
    Vec::<i64>::try_from(pred.to_device(Device::Cpu).to_kind(Kind::Int64).flatten(0, -1))
        .expect("i64 predictions")
}

/// The network inputs of a batch: one tensor per modality, in the set's order.
///
/// # Shapes
/// - `batch.inputs[m]`: `[B, ...]`, passed through unchanged, then `[B]` i64 lengths of the
///   sequence modalities.
pub fn net_inputs(batch: &Batch) -> Vec<Tensor> {
    // Sequence modalities append their `[B]` true lengths, in modality order (the generic
    // nets' convention).
    let lengths = batch.lengths.iter().flatten().map(Tensor::shallow_clone);
    batch.inputs.iter().map(Tensor::shallow_clone).chain(lengths).collect()
}

fn labels_of(batch: &Batch) -> Vec<i64> {
    Vec::<i64>::try_from(batch.targets.to_device(Device::Cpu).to_kind(Kind::Int64).flatten(0, -1))
        .expect("i64 labels")
}

/// An evaluation loader over `dataset` (its policy is replaced per combination; the decoding
/// thread pool is shared).
pub fn eval_loader(
    dataset: Arc<dyn Dataset>,
    config: LoaderConfig,
) -> Result<DataLoader, TrainError> {
    let full = dataset.modalities().full();
    Ok(DataLoader::new(dataset, MaskPolicy::Fixed(full), config)?)
}

/// Runs `net` in eval mode over the loader's data set with `combo` for every sample and returns
/// `(labels, predictions)` flattened.
pub fn predict_combo(
    net: &dyn MultiModalNet,
    loader: &DataLoader,
    combo: ModalityMask,
    device: Device,
) -> Result<(Vec<i64>, Vec<i64>), TrainError> {
    predict_combo_on(net, loader, combo, device, None)
}

/// [`predict_combo`] split over `ranks`: each rank predicts its positions and the per-sample
/// labels and predictions are gathered in data-set order (one sum of position-filled
/// vectors), so every rank returns exactly the single-process vectors. With ranks, one label
/// per sample (classification).
pub fn predict_combo_on(
    net: &dyn MultiModalNet,
    loader: &DataLoader,
    combo: ModalityMask,
    device: Device,
    ranks: Ranks<'_>,
) -> Result<(Vec<i64>, Vec<i64>), TrainError> {
    let loader = this_rank(&loader.with_policy(MaskPolicy::Fixed(combo))?, &ranks)?;
    let _guard = tch::no_grad_guard();
    let (mut labels, mut preds, mut indices) = (Vec::new(), Vec::new(), Vec::new());
    for batch in loader.iter(0) {
        let batch = batch?.to_device(device);
        let out = net.forward_t(&net_inputs(&batch), &batch.mask, false);
        preds.extend(predictions(&out.logits, &batch.targets));
        labels.extend(labels_of(&batch));
        indices.extend(batch.indices.iter().copied());
    }
    let Some(p) = ranks else { return Ok((labels, preds)) };
    if labels.len() != indices.len() {
        return Err(TrainError::config(
            "eval",
            "per-sample predictions across ranks are for one label per sample",
        ));
    }
    // [seen | label | prediction] per data-set index: a skipped sample stays unseen.
    let n = loader.dataset().len();
    let mut flat = vec![0.0; 3 * n];
    for ((&i, &l), &q) in indices.iter().zip(&labels).zip(&preds) {
        (flat[i], flat[n + i], flat[2 * n + i]) = (1.0, l as f64, q as f64);
    }
    p.sum_f64(&mut flat)?;
    let seen: Vec<usize> = (0..n).filter(|&i| flat[i] > 0.0).collect();
    Ok((
        seen.iter().map(|&i| flat[n + i] as i64).collect(),
        seen.iter().map(|&i| flat[2 * n + i] as i64).collect(),
    ))
}

/// Scores `net` on the loader's data set once per combination and returns the report (one
/// row each). Each combination is scored on the samples that have all its modalities (all of
/// them for complete data); a combination no sample has is left out, with a warning.
pub fn evaluate(
    net: &dyn MultiModalNet,
    loader: &DataLoader,
    combos: &[ModalityMask],
    scoring: Scoring,
    device: Device,
) -> Result<CombinationReport, TrainError> {
    evaluate_on(net, loader, combos, scoring, device, None)
}

/// [`evaluate`] split over `ranks` (every rank gets the whole report). Streams: counts are
/// accumulated per batch, so memory does not grow with the split.
pub fn evaluate_on(
    net: &dyn MultiModalNet,
    loader: &DataLoader,
    combos: &[ModalityMask],
    scoring: Scoring,
    device: Device,
    mut ranks: Ranks<'_>,
) -> Result<CombinationReport, TrainError> {
    let mut report = scoring.empty_report();
    let set = loader.dataset().modalities().clone();
    let complete = loader.samples_with(set.full()).len() == loader.dataset().len();
    for &combo in combos {
        let restricted;
        let on = if complete {
            loader
        } else {
            let having = loader.samples_with(combo);
            tracing::info!(combo = %set.format(combo), samples = having.len(), "samples with the combination");
            if having.is_empty() {
                tracing::warn!(combo = %set.format(combo), "no sample has this combination: row left out");
                continue;
            }
            restricted = loader.restricted(having)?;
            &restricted
        };
        let mut tally = Tally::new(scoring)?;
        let part = this_rank(&on.with_policy(MaskPolicy::Fixed(combo))?, &ranks)?;
        let _guard = tch::no_grad_guard();
        for batch in part.iter(0) {
            let batch = batch?.to_device(device);
            let out = net.forward_t(&net_inputs(&batch), &batch.mask, false);
            tally.update(&labels_of(&batch), &predictions(&out.logits, &batch.targets))?;
        }
        sum_over_ranks(&mut [&mut tally], &mut ranks)?;
        let name = set.format(combo);
        tracing::info!(combo = %name, values = ?tally.values(), "evaluated");
        report.insert(name, &tally.values())?;
    }
    Ok(report)
}

/// Scores `net` once over the loader's data set with the masks its policy draws per sample
/// (pass 0 of the loader, so the same seeded masks at every call; the released classification
/// code's random-mask validation, docs/method.md §4) and returns a one-row report whose row is
/// labelled `label`.
pub fn evaluate_drawn_masks(
    net: &dyn MultiModalNet,
    loader: &DataLoader,
    scoring: Scoring,
    device: Device,
    label: &str,
) -> Result<CombinationReport, TrainError> {
    evaluate_drawn_masks_on(net, loader, scoring, device, label, None)
}

/// [`evaluate_drawn_masks`] split over `ranks` (each sample keeps the mask it draws in one
/// process: masks are drawn per sample index).
pub fn evaluate_drawn_masks_on(
    net: &dyn MultiModalNet,
    loader: &DataLoader,
    scoring: Scoring,
    device: Device,
    label: &str,
    mut ranks: Ranks<'_>,
) -> Result<CombinationReport, TrainError> {
    let _guard = tch::no_grad_guard();
    let mut tally = Tally::new(scoring)?;
    for batch in this_rank(loader, &ranks)?.iter(0) {
        let batch = batch?.to_device(device);
        let out = net.forward_t(&net_inputs(&batch), &batch.mask, false);
        tally.update(&labels_of(&batch), &predictions(&out.logits, &batch.targets))?;
    }
    sum_over_ranks(&mut [&mut tally], &mut ranks)?;
    let mut report = scoring.empty_report();
    tracing::info!(combo = label, values = ?tally.values(), "evaluated");
    report.insert(label, &tally.values())?;
    Ok(report)
}

/// The "as observed" score of a split: each sample with the modalities it really has
/// ([`Dataset::availability`]), grouped by availability pattern, and over all samples.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedScore {
    /// Metric names, the columns of `values`.
    pub metrics: Vec<String>,
    /// `(pattern, samples, values)` per availability pattern that occurs, fewest modalities
    /// first (then by mask bits).
    pub patterns: Vec<(ModalityMask, usize, Vec<f64>)>,
    /// Samples scored.
    pub samples: usize,
    /// The metrics over every sample.
    pub overall: Vec<f64>,
}

/// Scores `net` once over the loader's data set, each sample with its own availability mask
/// (`MaskPolicy::Observed`), streaming: counts are accumulated per batch, per pattern.
pub fn evaluate_observed(
    net: &dyn MultiModalNet,
    loader: &DataLoader,
    scoring: Scoring,
    device: Device,
) -> Result<ObservedScore, TrainError> {
    evaluate_observed_on(net, loader, scoring, device, None)
}

/// [`evaluate_observed`] split over `ranks`: the patterns come from the data set's
/// availability (the same on every rank), and every count is summed.
pub fn evaluate_observed_on(
    net: &dyn MultiModalNet,
    loader: &DataLoader,
    scoring: Scoring,
    device: Device,
    mut ranks: Ranks<'_>,
) -> Result<ObservedScore, TrainError> {
    let loader = loader.with_policy(MaskPolicy::Observed)?;
    let dataset = loader.dataset();
    // Fewest modalities first, then by mask bits.
    let keys: std::collections::BTreeSet<(usize, u32)> = (0..dataset.len())
        .map(|i| dataset.availability(i))
        .map(|a| (a.count(), a.bits()))
        .collect();
    let keys: Vec<(usize, u32)> = keys.into_iter().collect();
    let mut tallies = keys.iter().map(|_| Tally::new(scoring)).collect::<Result<Vec<_>, _>>()?;
    let mut overall = Tally::new(scoring)?;
    let mut counts = vec![0.0f64; keys.len()]; // samples per pattern
    let _guard = tch::no_grad_guard();
    for batch in this_rank(&loader, &ranks)?.iter(0) {
        let batch = batch?.to_device(device);
        let out = net.forward_t(&net_inputs(&batch), &batch.mask, false);
        let (labels, preds) = (labels_of(&batch), predictions(&out.logits, &batch.targets));
        overall.update(&labels, &preds)?;
        // Per row: one label (classification) or H * W of them (segmentation).
        let per = labels.len() / batch.combos.len().max(1);
        for (b, combo) in batch.combos.iter().enumerate() {
            let k = keys.binary_search(&(combo.count(), combo.bits())).map_err(|_| {
                TrainError::config("eval", "a sample's observed mask is not its availability")
            })?;
            counts[k] += 1.0;
            tallies[k].update(&labels[b * per..(b + 1) * per], &preds[b * per..(b + 1) * per])?;
        }
    }
    let mut all: Vec<&mut Tally> = tallies.iter_mut().collect();
    all.push(&mut overall);
    sum_over_ranks(&mut all, &mut ranks)?;
    if let Some(p) = &mut ranks {
        p.sum_f64(&mut counts)?;
    }
    let metrics = scoring.empty_report().metrics().to_vec();
    let mut patterns = Vec::new();
    for ((&(_, bits), t), &n) in keys.iter().zip(&tallies).zip(&counts) {
        let n = n as usize;
        if n > 0 {
            let mask = ModalityMask::from_bits(bits)
                .map_err(|e| TrainError::config("eval", e.to_string()))?;
            patterns.push((mask, n, t.values()));
        }
    }
    let samples = patterns.iter().map(|(_, n, _)| n).sum();
    tracing::info!(samples, patterns = patterns.len(), values = ?overall.values(), "evaluated as observed");
    Ok(ObservedScore { metrics, patterns, samples, overall: overall.values() })
}

/// The mean of `metric` over the report's combinations.
pub fn mean_metric(report: &CombinationReport, metric: &str) -> Option<f64> {
    let i = report.metrics().iter().position(|m| m == metric)?;
    report.average().map(|avg| avg[i])
}

/// Builds the deployment network (or the teacher, for a teacher run) of `cfg` and loads
/// `weights` into it; a student checkpoint's regularization head is ignored, so students and
/// exported deployment files both load.
pub fn load_for_eval(
    cfg: &crate::ValidConfig,
    weights: &std::path::Path,
) -> Result<(tch::nn::VarStore, Box<dyn MultiModalNet>), TrainError> {
    let role = match cfg.stage {
        crate::Stage::Teacher => crate::model_spec::Role::Teacher,
        crate::Stage::Student => crate::model_spec::Role::Deployment,
    };
    load_net(&cfg.model, role, cfg.device(), weights, "not found")
}

/// Builds `model` in `role` and strictly loads `weights` into it, ignoring a regularization
/// head in the file (`auxi_bone.*` / `auxi_decoder.*`); `missing` is the message when the file
/// does not exist.
pub(crate) fn load_net(
    model: &crate::model_spec::ModelSpec,
    role: crate::model_spec::Role,
    device: Device,
    weights: &std::path::Path,
    missing: &str,
) -> Result<(tch::nn::VarStore, Box<dyn MultiModalNet>), TrainError> {
    use mmanet_models::checkpoint::{self, LoadMode};
    let vs = tch::nn::VarStore::new(device);
    let net = model.build(&vs.root(), role)?;
    if !weights.exists() {
        return Err(TrainError::checkpoint(weights, missing));
    }
    let named = checkpoint::without_regularizer(&checkpoint::read_safetensors(weights)?);
    checkpoint::load_named(&vs, &named, LoadMode::Strict)
        .map_err(|e| TrainError::checkpoint(weights, e.to_string()))?;
    Ok((vs, net))
}

/// Scores `weights` on one split of `cfg`'s data set, once per combination in `combos`
/// (the set's default combinations when empty).
pub fn evaluate_checkpoint(
    cfg: &crate::ValidConfig,
    weights: &std::path::Path,
    split: crate::data_spec::Split,
    combos: &[ModalityMask],
) -> Result<Evaluation, TrainError> {
    let (_vs, net) = load_for_eval(cfg, weights)?;
    let set = cfg.model.set();
    let data = cfg.data.open(split, cfg.seed)?;
    let combos = checked_combos(&set, combos)?;
    let scoring = Scoring::for_task(data.task(), cfg.eval.bona_fide_label)?;
    let loader = eval_loader(data, cfg.data.eval_loader(cfg.eval.batch_size))?;
    evaluation(net.as_ref(), &loader, &combos, scoring, cfg.device())
}

/// What `mmanet eval` reports: the forced-combination table and, when some samples of the
/// split lack modalities, the as-observed scores.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// One row per combination, each on the samples that have its modalities.
    pub report: CombinationReport,
    /// Every sample with the modalities it really has; `None` for complete data.
    pub observed: Option<crate::run_report::ObservedResult>,
}

/// [`evaluate`], plus [`evaluate_observed`] when some samples lack modalities.
pub fn evaluation(
    net: &dyn MultiModalNet,
    loader: &DataLoader,
    combos: &[ModalityMask],
    scoring: Scoring,
    device: Device,
) -> Result<Evaluation, TrainError> {
    let report = evaluate(net, loader, combos, scoring, device)?;
    let full = loader.dataset().modalities().full();
    let incomplete = loader.samples_with(full).len() < loader.dataset().len();
    let observed = if incomplete {
        let score = evaluate_observed(net, loader, scoring, device)?;
        Some(crate::run_report::ObservedResult::new(loader.dataset().modalities(), &score))
    } else {
        None
    };
    Ok(Evaluation { report, observed })
}

/// Scores a model file (docs/model_format.md) on one split of `cfg`'s data set, once per
/// combination in `combos` (the file's default combinations when empty). Only `cfg`'s data,
/// eval and device settings are used: the architecture and weights are the file's. The data
/// set must have the file's modalities (by name, in order) and task, or the error says which
/// differs.
pub fn evaluate_model_file(
    cfg: &crate::ValidConfig,
    file: mmanet_deploy::ModelFile,
    split: crate::data_spec::Split,
    combos: &[ModalityMask],
) -> Result<Evaluation, TrainError> {
    let spec_task = file.metadata.input_spec.task;
    let set = file.metadata.model.modalities();
    let data = cfg.data.open(split, cfg.seed)?;
    let names = |s: &mmanet_core::ModalitySet| -> Vec<String> {
        s.modalities().iter().map(|m| m.name().to_string()).collect()
    };
    if names(data.modalities()) != names(&set) {
        return Err(TrainError::config(
            "data",
            format!(
                "the data set has the modalities {:?}, the model file {:?}",
                names(data.modalities()),
                names(&set)
            ),
        ));
    }
    if data.task() != spec_task {
        return Err(TrainError::config(
            "data",
            format!("the data set's task is {:?}, the model file's {spec_task:?}", data.task()),
        ));
    }
    let combos = checked_combos(&set, combos)?;
    let predictor = mmanet_deploy::Predictor::new(file, cfg.device())?;
    let scoring = Scoring::for_task(data.task(), cfg.eval.bona_fide_label)?;
    let loader = eval_loader(data, cfg.data.eval_loader(cfg.eval.batch_size))?;
    evaluation(predictor.net(), &loader, &combos, scoring, cfg.device())
}

/// `combos` checked against `set` (the set's default combinations when empty).
fn checked_combos(
    set: &mmanet_core::ModalitySet,
    combos: &[ModalityMask],
) -> Result<Vec<ModalityMask>, TrainError> {
    let combos = if combos.is_empty() { set.default_combinations() } else { combos.to_vec() };
    for c in &combos {
        set.check(*c).map_err(|e| TrainError::config("combos", e.to_string()))?;
    }
    Ok(combos)
}
