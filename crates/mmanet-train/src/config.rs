//! [`TrainConfig`]: the TOML a run is described by, and its checked form [`ValidConfig`].
//!
//! Parsing rejects unknown fields (naming them and the line); [`TrainConfig::check`] validates
//! values once and returns a [`ValidConfig`] that the trainer trusts.

use std::path::{Path, PathBuf};

use mmanet_core::{Fidelity, ModalityMask, ModalitySet};
use mmanet_metrics::LabelConvention;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::data_spec::DataConfig;
use crate::model_spec::{ModelSpec, ModelSpecExt};
use crate::objective::TaskKind;
use crate::optim::OptimizerConfig;
use crate::schedule::LrSchedule;

/// What a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The teacher: complete modalities (or the configured training combinations), plain CE.
    Teacher,
    /// The deployment network (student) with random per-sample modality masks, plus whatever
    /// [`MethodConfig`] switches on.
    Student,
}

/// Relational distillation from the teacher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Distillation {
    /// No teacher (the paper's "unified" / SF-MD baseline when MAR is off too).
    None,
    /// Plain similarity-preserving distillation (SP, Tung & Mori 2019), on classification
    /// networks; [`TrainConfig::check`] refuses it for segmentation (ESANet), which has no SP form
    /// ([`SegmentationObjective::check_method`](crate::objective::SegmentationObjective::check_method)).
    Sp,
    /// Margin-aware distillation (MAD): SP weighted by the teacher's prediction entropy.
    Mad,
}

/// The student's losses: CE, then from `begin_epoch` on CE + λ_MAD·MAD + λ_MAR·MAR.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodConfig {
    /// Teacher distillation (MAD by default).
    pub distillation: Distillation,
    /// Modality-aware regularization (the `auxi_bone` head on weak combinations).
    pub mar: bool,
    /// Weight of MAD / SP (reference: 30 classification, 4 NYUv2, 10 Cityscapes).
    pub lambda_mad: f64,
    /// Weight of MAR (reference: 0.5 classification, 0.2 NYUv2, 0.1 Cityscapes).
    pub lambda_mar: f64,
    /// MAD and MAR are added for `epoch > begin_epoch` (reference: 5, segmentation 10).
    pub begin_epoch: usize,
    /// Mining runs after the training pass of epochs `mining_start..begin_epoch`
    /// (reference: `epoch > 1`, i.e. 2; segmentation 6).
    pub mining_start: usize,
    /// Paper (per-sample) or reference-code semantics for MAD's weights and MAR's reduction.
    pub fidelity: Fidelity,
    /// A fixed weak set (e.g. `["R+I", "R", "I"]`) instead of mining one.
    #[serde(default)]
    pub weak_set: Vec<String>,
}

impl MethodConfig {
    /// Full MMANet with the classification reference's settings.
    pub fn mmanet_classification() -> Self {
        MethodConfig {
            distillation: Distillation::Mad,
            mar: true,
            lambda_mad: 30.0,
            lambda_mar: 0.5,
            begin_epoch: 5,
            mining_start: 2,
            fidelity: Fidelity::Paper,
            weak_set: Vec::new(),
        }
    }

    /// Whether the student needs a teacher.
    pub fn needs_teacher(&self) -> bool {
        self.distillation != Distillation::None
    }
}

/// Which epoch's weights a run keeps as its result (`best.safetensors`, scored on the test
/// split at the end).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// The validated epoch with the best mean of the selection metric (accuracy, mIoU) over
    /// the evaluation combinations, each scored with its mask fixed for the whole split.
    #[default]
    MeanOverCombinations,
    /// The validated epoch with the best selection metric over the validation split scored once
    /// with one mask per sample drawn from the training combinations, as the released
    /// classification code validates (`p = [0, 0, 0]`, best accuracy for `epoch > 30`; set
    /// `select_after = 30`). Unlike the released code the draw is seeded by the run seed and
    /// the same at every validation, so epochs are compared on the same masks.
    RandomMasks,
    /// The last epoch, whatever the validation scores, as the released segmentation code
    /// reports a late fixed epoch; the only choice that reads no validation score, for data
    /// sets whose validation split is their test split.
    LastEpoch,
}

/// Evaluation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Combinations of the final per-combination report, as mask strings (`["R", "D+I"]`;
    /// `["all"]`: all `2^M - 1`; empty: [`ModalitySet::default_combinations`], which is all of
    /// them up to 4 modalities, above that the singles, the leave-one-outs and the full set).
    #[serde(default)]
    pub combos: Vec<String>,
    /// Batch size of evaluation passes.
    pub batch_size: usize,
    /// Evaluate on the validation split every this many epochs (0: never; the last epoch is
    /// always evaluated).
    pub every: usize,
    /// Which label is bona fide (CASIA-SURF: 1, CeFA: 0); only for binary anti-spoofing.
    #[serde(default)]
    pub bona_fide_label: Option<i64>,
    /// How the kept weights are chosen (default: best mean over the combinations).
    #[serde(default)]
    pub selection: Selection,
    /// Only epochs after this one (`epoch > select_after`) may be selected (the released
    /// classification code: 30); unset: any validated epoch. Not for `last-epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_after: Option<usize>,
}

impl EvalConfig {
    /// Whether the weights of `epoch` may be selected at all (`select_after`).
    pub fn selectable(&self, epoch: usize) -> bool {
        self.select_after.is_none_or(|after| epoch > after)
    }

    /// Whether the weights of `epoch` (of `epochs`) replace the kept ones, given its
    /// validation score `val` (`None`: not validated) and the kept weights' score `kept`.
    pub fn selects(
        &self,
        epoch: usize,
        epochs: usize,
        val: Option<f64>,
        kept: Option<f64>,
    ) -> bool {
        match (self.selection, val) {
            (Selection::LastEpoch, _) => epoch + 1 == epochs,
            (Selection::MeanOverCombinations | Selection::RandomMasks, Some(score)) => {
                self.selectable(epoch) && kept.is_none_or(|k| score > k)
            }
            (Selection::MeanOverCombinations | Selection::RandomMasks, None) => false,
        }
    }
}

/// How the arithmetic runs on the device; none of these change what is computed beyond
/// floating-point rounding, and every setting is inert on CPU, so one config serves both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeConfig {
    /// Mixed precision on CUDA: fp16 autocast for the networks' forward passes (losses stay
    /// f32) with dynamic loss scaling ([`GradScaler`](crate::amp::GradScaler)).
    #[serde(default)]
    pub amp: bool,
    /// Channels-last (NHWC) weights and image inputs on CUDA (faster cuDNN kernels, above all
    /// under `amp`).
    #[serde(default)]
    pub channels_last: bool,
    /// Gradient accumulation: each step splits its batch (a rank's share of it in
    /// data-parallel training) into `accumulate` micro-batches, micro-batch `j` taking
    /// positions `j, j + K, ...`, and averages their gradients; BatchNorm's running statistics
    /// keep micro-batch 0's update (as DDP keeps rank 0's buffers). With `K = W` one process
    /// computes what `W` data-parallel ranks compute (docs/distributed.md). The batch size must
    /// divide by it.
    #[serde(default = "one")]
    pub accumulate: usize,
    /// Data-parallel training: the longest any collective (and the rendezvous) may wait for
    /// the other ranks, in seconds, before the run stops with an error.
    #[serde(default = "default_collective_timeout")]
    pub collective_timeout_s: f64,
    /// Data-parallel training: BatchNorm's training-mode statistics over the global batch (all
    /// ranks' samples, `torch.nn.SyncBatchNorm`) instead of each rank's share. Inert in one
    /// process, which normalises over the whole batch anyway; needs `accumulate = 1`.
    #[serde(default)]
    pub sync_batchnorm: bool,
    /// CUDA graphs: the training step (forwards, losses, backward, optimizer update) captured
    /// once per training phase and replayed, which removes the per-kernel launch cost that
    /// bounds small steps. The batch, the learning rate, the loss scale and the modality masks
    /// are data in fixed device tensors, so the values equal the eager step's up to rounding
    /// (docs/performance.md, "CUDA graphs"). On CPU nothing is captured: the same step runs
    /// eagerly on the static buffers. One process, `accumulate = 1`.
    #[serde(default)]
    pub cuda_graph: bool,
}

fn one() -> usize {
    1
}

fn default_collective_timeout() -> f64 {
    300.0
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig {
            amp: false,
            channels_last: false,
            accumulate: one(),
            collective_timeout_s: default_collective_timeout(),
            sync_batchnorm: false,
            cuda_graph: false,
        }
    }
}

impl ComputeConfig {
    /// The collective timeout as a duration.
    pub fn collective_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.collective_timeout_s)
    }
}

/// Where the frozen teacher comes from (student stage with distillation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    /// Teacher weights (safetensors, official names); relative paths are relative to the
    /// config file.
    pub checkpoint: PathBuf,
}

/// A whole run, as written in TOML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Run name (used for the default run folder).
    pub name: String,
    /// Seed of everything random (masks, shuffling, augmentation, initialisation).
    pub seed: u64,
    /// `auto`, `cpu` or `cuda:N`.
    pub device: String,
    /// Teacher or student.
    pub stage: Stage,
    /// Number of epochs (0-based epochs `0..epochs`).
    pub epochs: usize,
    /// Skip the training pass of epochs whose learning rate is 0 (the reference skips epoch 0
    /// and runs epoch 1 at rate 0; `true` skips both).
    #[serde(default)]
    pub skip_zero_lr_epochs: bool,
    /// Per-epoch weight files to keep besides `last` and `best` (0: none).
    #[serde(default)]
    pub checkpoint_keep: usize,
    /// Data sets and loading.
    pub data: DataConfig,
    /// Network.
    pub model: ModelSpec,
    /// Student losses (ignored by the teacher stage).
    pub method: MethodConfig,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Evaluation.
    pub eval: EvalConfig,
    /// The teacher (student stage with distillation only).
    #[serde(default)]
    pub teacher: Option<TeacherConfig>,
    /// Precision and memory layout on the device.
    #[serde(default)]
    pub compute: ComputeConfig,
}

impl TrainConfig {
    /// Parses TOML; errors name the line and the field.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, TrainError> {
        toml::from_str(text).map_err(|e| TrainError::ConfigFile {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a TOML file; relative paths inside are resolved against its folder.
    pub fn from_toml_path(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let mut cfg = Self::from_toml_str(&text, path)?;
        if let Some(dir) = path.parent() {
            cfg.resolve_paths(dir);
        }
        Ok(cfg)
    }

    /// Makes relative paths absolute against `dir`.
    pub fn resolve_paths(&mut self, dir: &Path) {
        self.data.resolve_paths(dir);
        for p in self.model.paths_mut() {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        if let Some(t) = &mut self.teacher {
            if t.checkpoint.is_relative() {
                t.checkpoint = dir.join(&t.checkpoint);
            }
        }
    }

    /// The config as a run folder's `config.toml` stores it: the data root and the teacher
    /// checkpoint relative to `run_root` (absolute paths elsewhere keep pointing at the same
    /// place, and a run folder moved together with its data, or its teacher run, still finds
    /// them); paths on another root (no common prefix) stay absolute. Read back through
    /// [`TrainConfig::from_toml_path`], which resolves them against the run folder, it gives
    /// the same files.
    pub fn relative_to_run(&self, run_root: &Path) -> TrainConfig {
        let base = absolute(run_root);
        let mut cfg = self.clone();
        cfg.data.dataset.map_root(|root| relative_path(&absolute(root), &base));
        for p in cfg.model.paths_mut() {
            *p = relative_path(&absolute(p), &base);
        }
        if let Some(t) = &mut cfg.teacher {
            t.checkpoint = relative_path(&absolute(&t.checkpoint), &base);
        }
        cfg
    }

    /// The config with its data root and teacher checkpoint absolute and normalised (`..`
    /// removed), for comparing two configs that name the same files differently.
    pub fn with_absolute_paths(&self) -> TrainConfig {
        let mut cfg = self.clone();
        cfg.data.dataset.map_root(absolute);
        for p in cfg.model.paths_mut() {
            *p = absolute(p);
        }
        if let Some(t) = &mut cfg.teacher {
            t.checkpoint = absolute(&t.checkpoint);
        }
        cfg
    }

    /// Points a synthetic or file-based data set at `root` (the demo keeps its data in its
    /// output folder).
    pub fn set_data_root(&mut self, root: &Path) {
        self.data.dataset.set_root(root);
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configs serialise")
    }

    /// Applies a `key=value` override (dotted key, TOML value; bare words are strings), e.g.
    /// `epochs=3`, `method.fidelity=reference-code`, `data.batch_size=8`.
    pub fn set(&mut self, assignment: &str) -> Result<(), TrainError> {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| TrainError::config(assignment, "expected key=value"))?;
        let mut doc: toml::Value = toml::Value::try_from(&*self).expect("configs serialise");
        let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .map(|mut t| t.remove("v").expect("v"))
            .unwrap_or_else(|_| toml::Value::String(value.trim().to_string()));
        // Walk (creating tables for optional sections such as `teacher`), then set the leaf;
        // a key naming no field is rejected when the document is read back.
        let parts: Vec<&str> = key.trim().split('.').collect();
        let mut table = doc.as_table_mut().expect("a config is a table");
        for part in &parts[..parts.len() - 1] {
            table = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| TrainError::config(key, format!("`{part}` is not a table")))?;
        }
        table.insert(parts[parts.len() - 1].to_string(), parsed);
        *self =
            doc.try_into().map_err(|e: toml::de::Error| TrainError::config(key, e.to_string()))?;
        Ok(())
    }

    /// A `key=value` override of an existing run's config (`mmanet resume`, `eval`): only
    /// where and how its data are read (`data.dataset.*`, `data.threads`, `data.prefetch`) and
    /// the `device`; anything else would change what the run trained and is refused naming
    /// the key. A relative `data.dataset.root` is taken relative to the working directory (it
    /// is typed on a command line) and made absolute.
    pub fn set_for_run(&mut self, assignment: &str) -> Result<(), TrainError> {
        let key = assignment.split_once('=').map_or(assignment, |(k, _)| k).trim();
        let allowed = key == "device"
            || key == "data.threads"
            || key == "data.prefetch"
            || key.starts_with("data.dataset.");
        if !allowed {
            return Err(TrainError::config(
                key,
                "an existing run may only change where its data are read from \
                 (`data.dataset.*`, `data.threads`, `data.prefetch`) and `device`",
            ));
        }
        self.set(assignment)?;
        if key == "data.dataset.root" || key == "data.dataset.path" {
            self.data.dataset.map_root(absolute);
        }
        Ok(())
    }

    /// Validates every value once.
    pub fn check(self) -> Result<ValidConfig, TrainError> {
        if self.name.trim().is_empty() {
            return Err(TrainError::config("name", "must not be empty"));
        }
        if self.epochs == 0 {
            return Err(TrainError::config("epochs", "must be at least 1"));
        }
        parse_device(&self.device)?;
        self.data.check()?;
        self.model.validate()?;
        let set = self.model.set();
        let masks = CheckedMasks {
            train: parse_combos(&set, &self.data.train_combos, "data.train_combos")?,
            eval: parse_combos(&set, &self.eval.combos, "eval.combos")?,
            weak: parse_combos(&set, &self.method.weak_set, "method.weak_set")?,
        };
        let lr = self.optimizer.base_lr();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(TrainError::config("optimizer.lr", format!("must be > 0, got {lr}")));
        }
        if self.eval.batch_size == 0 {
            return Err(TrainError::config("eval.batch_size", "must be at least 1"));
        }
        let k = self.compute.accumulate;
        if k == 0 || self.data.batch_size % k != 0 {
            return Err(TrainError::config(
                "compute.accumulate",
                format!("must be at least 1 and divide data.batch_size ({})", self.data.batch_size),
            ));
        }
        if self.compute.sync_batchnorm && k > 1 {
            return Err(TrainError::config(
                "compute.sync_batchnorm",
                "normalises over all ranks' samples of one step, which micro-batches computed \
                 one after another cannot share: use compute.accumulate = 1 with it",
            ));
        }
        if self.compute.cuda_graph && k > 1 {
            return Err(TrainError::config(
                "compute.cuda_graph",
                "captures one backward pass per step; micro-batches (compute.accumulate > 1) are \
                 not supported with it yet: use compute.accumulate = 1",
            ));
        }
        let t = self.compute.collective_timeout_s;
        if !(t.is_finite() && (0.001..=1e7).contains(&t)) {
            return Err(TrainError::config(
                "compute.collective_timeout_s",
                format!("must be a number of seconds in [0.001, 1e7], got {t}"),
            ));
        }
        match (self.eval.selection, self.eval.select_after) {
            (Selection::LastEpoch, Some(_)) => {
                return Err(TrainError::config(
                    "eval.select_after",
                    "has no effect with eval.selection = \"last-epoch\": remove it",
                ));
            }
            (Selection::MeanOverCombinations | Selection::RandomMasks, Some(after))
                if after + 1 >= self.epochs =>
            {
                return Err(TrainError::config(
                    "eval.select_after",
                    format!(
                        "{after} leaves no epoch to select (epochs 0..{}; need < {})",
                        self.epochs,
                        self.epochs - 1
                    ),
                ));
            }
            (
                Selection::MeanOverCombinations | Selection::RandomMasks | Selection::LastEpoch,
                _,
            ) => {}
        }
        if let Some(label) = self.eval.bona_fide_label {
            LabelConvention::new(label)
                .map_err(|e| TrainError::config("eval.bona_fide_label", e.to_string()))?;
        }
        let m = &self.method;
        for (field, v) in [("method.lambda_mad", m.lambda_mad), ("method.lambda_mar", m.lambda_mar)]
        {
            if !(v.is_finite() && v >= 0.0) {
                return Err(TrainError::config(field, format!("must be >= 0, got {v}")));
            }
        }
        if self.stage == Stage::Student {
            // The task's objective refuses a variant it has no form of.
            let task = if self.model.is_segmentation() {
                TaskKind::Segmentation
            } else {
                TaskKind::Classification
            };
            task.check_method(m)?;
            if m.mar && m.mining_start >= m.begin_epoch {
                return Err(TrainError::config(
                    "method.mining_start",
                    format!("must be < begin_epoch ({}) so MAR has epochs to mine", m.begin_epoch),
                ));
            }
            if m.needs_teacher() && self.teacher.is_none() {
                return Err(TrainError::config(
                    "teacher.checkpoint",
                    "distillation needs a teacher checkpoint (or set method.distillation = \"none\")",
                ));
            }
        }
        Ok(ValidConfig { cfg: self, set, masks })
    }
}

/// A [`TrainConfig`] whose values passed [`TrainConfig::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct ValidConfig {
    cfg: TrainConfig,
    set: ModalitySet,
    masks: CheckedMasks,
}

/// The mask strings of a config, parsed against the task's modality set.
#[derive(Clone, Debug, PartialEq)]
struct CheckedMasks {
    train: Vec<ModalityMask>,
    eval: Vec<ModalityMask>,
    weak: Vec<ModalityMask>,
}

/// Parses a list of mask strings; `["all"]` is every combination.
fn parse_combos(
    set: &ModalitySet,
    texts: &[String],
    field: &str,
) -> Result<Vec<ModalityMask>, TrainError> {
    if let [only] = texts {
        if only.trim().eq_ignore_ascii_case("all") && set.position("all").is_none() {
            return Ok(set.combinations());
        }
    }
    let mut out = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        let m = set
            .parse_mask(t)
            .map_err(|e| TrainError::config(format!("{field}[{i}]"), e.to_string()))?;
        if out.contains(&m) {
            return Err(TrainError::config(
                format!("{field}[{i}]"),
                format!("`{t}` is listed twice"),
            ));
        }
        out.push(m);
    }
    Ok(out)
}

impl ValidConfig {
    /// The checked config.
    pub fn get(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The device to run on.
    pub fn device(&self) -> tch::Device {
        parse_device(&self.cfg.device).expect("checked")
    }

    /// The task's modalities (the model's).
    pub fn set(&self) -> &ModalitySet {
        &self.set
    }

    /// `data.train_combos`, parsed (empty: the default policy).
    pub fn train_combos(&self) -> &[ModalityMask] {
        &self.masks.train
    }

    /// `eval.combos`, parsed (empty: [`ModalitySet::default_combinations`]).
    pub fn eval_combos(&self) -> &[ModalityMask] {
        &self.masks.eval
    }

    /// `method.weak_set`, parsed (empty: mined).
    pub fn fixed_weak_set(&self) -> &[ModalityMask] {
        &self.masks.weak
    }
}

impl std::ops::Deref for ValidConfig {
    type Target = TrainConfig;

    fn deref(&self) -> &TrainConfig {
        &self.cfg
    }
}

/// `path` made absolute against the working directory and normalised lexically (`.` and `..`
/// removed; symbolic links are not followed).
pub fn absolute(path: &Path) -> PathBuf {
    use std::path::Component;
    let joined = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => out.push(c),
        }
    }
    out
}

/// `target` relative to `base` (both absolute and normalised); `target` itself when they
/// share no first component (another drive or mount point named from `/`).
fn relative_path(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common <= 1 {
        return target.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// Parses `auto`, `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(s: &str) -> Result<tch::Device, TrainError> {
    match s.trim() {
        "auto" => Ok(tch::Device::cuda_if_available()),
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => Ok(tch::Device::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .map(tch::Device::Cuda)
            .ok_or_else(|| {
                TrainError::config("device", format!("`{other}`: expected auto, cpu or cuda:N"))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(selection: Selection, select_after: Option<usize>) -> EvalConfig {
        EvalConfig {
            combos: vec![],
            batch_size: 4,
            every: 1,
            bona_fide_label: None,
            selection,
            select_after,
        }
    }

    #[test]
    fn unknown_model_and_schedule_fields_are_refused() {
        let cases = [
            ("toy-mmanet", "[model]\n"),
            ("toy-mmanet", "[model.fusion]\n"),
            ("mfeat3-mmanet", "[model]\n"),
            ("mfeat3-mmanet", "[[model.branches]]\n"),
            ("synth-nyuv2-mmanet", "[model]\n"),
            ("synth-nyuv2-mmanet", "[model.encoder]\n"),
            // A unit variant (`kind = "constant"`, `"concat"`) with a leftover key.
            ("toy-mmanet", "[schedule]\n"),
            ("mfeat3-mmanet", "[model.fusion]\n"),
        ];
        for (name, table) in cases {
            let text = crate::presets::find(name).unwrap().text;
            assert!(text.contains(table), "{name} {table}");
            let text = text.replacen(table, &format!("{table}n_clases = 3\n"), 1);
            let err = match TrainConfig::from_toml_str(&text, Path::new(name)) {
                Ok(_) => panic!("{name} {table}: an unknown field was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("n_clases"), "{name} {table}: {err}");
        }
    }

    #[test]
    fn accumulation_and_the_collective_timeout_are_checked() {
        let mut cfg = crate::presets::preset("toy-mmanet").unwrap();
        assert_eq!(cfg.compute.accumulate, 1);
        cfg.set("compute.accumulate=4").unwrap();
        assert_eq!(cfg.clone().check().unwrap().compute.accumulate, 4);
        for (set, field) in [
            ("compute.accumulate=3", "compute.accumulate"), // 16 does not divide by 3
            ("compute.accumulate=0", "compute.accumulate"),
            ("compute.collective_timeout_s=0", "compute.collective_timeout_s"),
            ("compute.sync_batchnorm=true", "compute.sync_batchnorm"), // with accumulate 4
        ] {
            let mut bad = cfg.clone();
            bad.set(set).unwrap();
            let err = bad.check().unwrap_err().to_string();
            assert!(err.contains(field), "{set}: {err}");
        }
    }

    #[test]
    fn run_paths_are_stored_relative_to_the_run_folder() {
        assert_eq!(
            relative_path(Path::new("/w/data/surf"), Path::new("/w/runs/a")),
            PathBuf::from("../../data/surf")
        );
        assert_eq!(
            relative_path(Path::new("/w/runs/a/t.safetensors"), Path::new("/w/runs/a")),
            PathBuf::from("t.safetensors")
        );
        assert_eq!(relative_path(Path::new("/w"), Path::new("/w")), PathBuf::from("."));
        // Nothing in common but the root: kept absolute.
        assert_eq!(relative_path(Path::new("/mnt/d"), Path::new("/w/r")), PathBuf::from("/mnt/d"));
        assert_eq!(absolute(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));

        let mut cfg = crate::presets::preset("toy-mmanet").unwrap();
        cfg.teacher.as_mut().unwrap().checkpoint = "/w/runs/t/checkpoints/best.safetensors".into();
        let stored = cfg.relative_to_run(Path::new("/w/runs/s"));
        assert_eq!(
            stored.teacher.as_ref().unwrap().checkpoint,
            PathBuf::from("../t/checkpoints/best.safetensors")
        );
        let mut read = stored.clone();
        read.resolve_paths(Path::new("/w/runs/s"));
        assert_eq!(read.with_absolute_paths(), cfg.with_absolute_paths());
    }

    #[test]
    fn selection_keeps_the_best_eligible_or_the_last_epoch() {
        // Scores of epochs 0..5, validated every epoch except 3; the best overall is epoch 1.
        let vals = [Some(0.5), Some(0.9), Some(0.6), None, Some(0.8), Some(0.7)];
        let kept = |e: &EvalConfig| {
            let mut best: Option<(usize, f64)> = None;
            for (epoch, val) in vals.iter().enumerate() {
                if e.selects(epoch, vals.len(), *val, best.map(|b| b.1)) {
                    best = Some((epoch, val.unwrap_or(f64::NAN)));
                }
            }
            best.map(|b| b.0)
        };
        for mode in [Selection::MeanOverCombinations, Selection::RandomMasks] {
            assert_eq!(kept(&eval(mode, None)), Some(1), "{mode:?}: the best validated epoch");
            // Only epochs > 1 count (the released classification code: epoch > 30).
            assert_eq!(kept(&eval(mode, Some(1))), Some(4), "{mode:?}");
            assert_eq!(kept(&eval(mode, Some(4))), Some(5), "{mode:?}");
        }
        assert_eq!(kept(&eval(Selection::LastEpoch, None)), Some(5));
        // A tie keeps the earlier epoch.
        let e = eval(Selection::MeanOverCombinations, None);
        assert!(!e.selects(2, 4, Some(0.9), Some(0.9)));
    }

    #[test]
    fn selection_settings_are_checked_and_round_trip() {
        let base = crate::presets::preset("toy-mmanet").unwrap();
        let mut c = base.clone();
        c.set("eval.selection=last-epoch").unwrap();
        assert_eq!(c.eval.selection, Selection::LastEpoch);
        c.clone().check().unwrap();
        c.set("eval.select_after=3").unwrap();
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("eval.select_after"), "{err}");

        let mut c = base.clone();
        c.set("eval.selection=random-masks").unwrap();
        c.set(&format!("eval.select_after={}", base.epochs - 2)).unwrap();
        let back = TrainConfig::from_toml_str(&c.to_toml(), Path::new("x")).unwrap();
        assert_eq!(back.eval, c.eval);
        c.clone().check().unwrap();
        c.set(&format!("eval.select_after={}", base.epochs - 1)).unwrap();
        let err = c.check().unwrap_err().to_string();
        assert!(err.contains("eval.select_after") && err.contains("no epoch"), "{err}");

        // Configs written before the setting existed read as the default.
        let mut old = base.to_toml().replace("selection = \"mean-over-combinations\"\n", "");
        assert!(!old.contains("selection"), "{old}");
        old.push('\n');
        let read = TrainConfig::from_toml_str(&old, Path::new("old")).unwrap();
        assert_eq!(read.eval.selection, Selection::MeanOverCombinations);
        assert_eq!(read.eval.select_after, None);
    }
}
