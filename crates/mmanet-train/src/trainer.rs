//! [`Trainer`]: the training loop of the teacher and of the MMANet student.
//!
//! Student phases (docs/method.md §2): CE only up to `begin_epoch`; after the training pass of
//! epochs `mining_start..begin_epoch` the student is scored on the validation split with each
//! candidate combination and the weak set is selected after the last of them; from
//! `epoch > begin_epoch` the loss is CE + λ_MAD·MAD + λ_MAR·MAR with the frozen teacher (eval
//! mode, no gradient) run on the complete modalities of the same batch.

use std::sync::Arc;
use std::time::Instant;

use mmanet_core::{ModalityMask, ModalitySet};
use mmanet_data::{Batch, DataLoader, Dataset, LoaderConfig};
use mmanet_losses::WeakSet;
use mmanet_metrics::CombinationReport;
use mmanet_models::MultiModalNet;
use mmanet_models::checkpoint::{self, LoadMode};
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::TrainError;
use crate::amp::GradScaler;
use crate::config::{Selection, Stage, TrainConfig, ValidConfig};
use crate::data_spec::Split;
use crate::evaluate::{
    Scoring, eval_loader, evaluate_drawn_masks_on, evaluate_observed_on, evaluate_on, load_net,
    mean_metric,
};
use crate::model_spec::{ModelSpecExt, Role};
use crate::objective::{LossTerms, Objective, Step};
use crate::optim::{Gradients, Optimizer};
use crate::parallel::DataParallel;
use crate::run_dir::{RunDir, write_atomic};
use crate::state::{
    Best, CheckpointFile, EpochRecord, FileRole, LossBreakdown, PartialEpoch, TrainState,
};
use crate::transfer::{self, TransferOptions};

mod graph_step;

pub use crate::captured::{GraphCounts, WARMUP_STEPS};

/// Receives progress; the app draws bars from it, tests ignore it.
pub trait Observer {
    /// An epoch starts with `steps` batches at learning rate `lr`.
    fn on_epoch_start(&mut self, _epoch: usize, _steps: usize, _lr: f64) {}
    /// One optimisation step finished.
    fn on_step(&mut self, _epoch: usize, _step: usize, _loss: &LossBreakdown) {}
    /// An epoch (training, mining, validation, checkpoint) finished.
    fn on_epoch_end(&mut self, _record: &EpochRecord) {}
    /// The weak set was selected.
    fn on_weak_set(&mut self, _weak: &[String]) {}
    /// Polled after every step: `true` stops the run after that step with a checkpoint from
    /// which [`Trainer::resume`] continues exactly (e.g. on Ctrl-C).
    fn should_stop(&self) -> bool {
        false
    }
}

/// An [`Observer`] that ignores everything.
pub struct Silent;

impl Observer for Silent {}

/// What a finished run returns.
#[derive(Debug)]
pub struct TrainSummary {
    /// Epochs trained in this call (a resumed run counts only the new ones).
    pub epochs_run: usize,
    /// Best validation score.
    pub best: Option<Best>,
    /// The weak set MAR used.
    pub weak_set: Option<Vec<String>>,
    /// Per-combination test report of the selected weights.
    pub report: CombinationReport,
}

/// The file of a run folder listing the samples that simulated missingness made incomplete.
pub const MISSING_FILE: &str = "missing.json";

struct Teacher {
    _vs: VarStore,
    net: Box<dyn MultiModalNet>,
}

/// Trains one network as one run folder describes.
pub struct Trainer {
    cfg: ValidConfig,
    run: RunDir,
    device: Device,
    vs: VarStore,
    net: Box<dyn MultiModalNet>,
    teacher: Option<Teacher>,
    opt: Optimizer,
    /// Loss scaling of fp16 autocast (inert unless `compute.amp` on CUDA).
    scaler: GradScaler,
    /// Autocast the forward passes (`compute.amp` on CUDA).
    amp: bool,
    transfer: TransferOptions,
    train_loader: DataLoader,
    /// The validation split, one combination per pass (mining, model selection).
    val: DataLoader,
    /// The complete validation samples (weak-set mining).
    val_mining: DataLoader,
    /// Whether some training samples lack a modality (then the student's branch BatchNorms
    /// use the rows that have their modality, the teacher runs with each sample's
    /// availability and MAD on the complete rows).
    train_incomplete: bool,
    /// The validation split with one mask per sample drawn from the training combinations,
    /// seeded by the run seed (`eval.selection = "random-masks"` only).
    val_random: Option<DataLoader>,
    scoring: Scoring,
    state: TrainState,
    weak: Option<WeakSet>,
    /// The task's loss and weak-set mining, chosen once from the data's task.
    objective: Box<dyn Objective>,
    /// The best weights of a resumed run written before the commit protocol
    /// (`checkpoints/best.safetensors`), until the first commit gives them a physical name.
    legacy_best: Option<std::path::PathBuf>,
    /// The data as opened now (recorded by a new run, compared by a resume).
    data: crate::state::DataFingerprint,
    /// The other ranks of a data-parallel run (`None`: one process).
    parallel: Option<DataParallel>,
    /// The network's buffers (BatchNorm statistics), sorted by name: kept from micro-batch 0
    /// under `compute.accumulate`, broadcast from rank 0 after every data-parallel step.
    buffers: Vec<Tensor>,
    /// SyncBatchNorm over the ranks (`compute.sync_batchnorm` in a data-parallel run).
    sync_bn: Option<Arc<crate::parallel::SyncBnHook>>,
    /// The captured training step (`compute.cuda_graph`).
    graph: Option<graph_step::GraphState>,
}

/// The sha256 of the data set's list files (by path relative to the data root) and the split
/// sizes.
fn fingerprint(
    spec: &crate::readers::DatasetSpec,
    train_samples: usize,
    val_samples: usize,
) -> Result<crate::state::DataFingerprint, TrainError> {
    let root = spec.root();
    let mut files = std::collections::BTreeMap::new();
    for f in spec.list_files() {
        let sha = mmanet_fs::sha256_file(&f).map_err(|e| TrainError::io(&f, e))?;
        let key = root.as_deref().and_then(|r| f.strip_prefix(r).ok()).unwrap_or(&f);
        files.insert(key.display().to_string(), sha.sha256);
    }
    Ok(crate::state::DataFingerprint { files, train_samples, val_samples })
}

impl Trainer {
    /// Starts a new run in `run` (which must not hold a started run: use [`Trainer::resume`]).
    pub fn new(cfg: ValidConfig, run: RunDir) -> Result<Self, TrainError> {
        Self::new_in(cfg, run, None)
    }

    /// [`Trainer::new`] as one rank of a data-parallel run: every rank calls it with the same
    /// config; rank 0 writes the run folder and its initial weights are broadcast
    /// (docs/distributed.md).
    pub fn new_parallel(
        cfg: ValidConfig,
        run: RunDir,
        parallel: DataParallel,
    ) -> Result<Self, TrainError> {
        Self::new_in(cfg, run, Some(parallel))
    }

    fn new_in(
        cfg: ValidConfig,
        run: RunDir,
        parallel: Option<DataParallel>,
    ) -> Result<Self, TrainError> {
        let writer = parallel.as_ref().is_none_or(DataParallel::is_writer);
        if writer && run.state().exists() {
            return Err(TrainError::checkpoint(
                &run.state(),
                "this run folder already holds a run: resume it or choose another folder",
            ));
        }
        // Paths inside the run folder's config are relative to it (a moved run still finds its
        // data and teacher when they moved along; `--set data.dataset.root=` otherwise).
        if writer {
            write_atomic(&run.config(), cfg.relative_to_run(run.root()).to_toml().as_bytes())?;
        }
        let mut t = Self::build(cfg, run, TrainState::default(), parallel)?;
        t.state.data = Some(t.data.clone());
        if writer {
            // What prediction needs to read raw inputs as this run's data were read.
            let spec = t.cfg.data.dataset.input_spec(t.cfg.seed)?;
            crate::predict::save_input_spec(&spec, t.run.root())?;
            if t.cfg.data.missing.is_some() {
                write_atomic(&t.run.root().join(MISSING_FILE), t.missing_json()?.as_bytes())?;
            }
        }
        t.sync_from_rank0()?;
        Ok(t)
    }

    /// Data-parallel: rank 0's weights, buffers and optimizer state on every rank.
    fn sync_from_rank0(&mut self) -> Result<(), TrainError> {
        let Some(p) = &mut self.parallel else { return Ok(()) };
        p.broadcast_tensors(&variables_by_name(&self.vs, |_| true))?;
        p.broadcast_optimizer(&mut self.opt)
    }

    /// Whether this process writes the run folder (always, but for ranks other than 0).
    fn writes(&self) -> bool {
        self.parallel.as_ref().is_none_or(DataParallel::is_writer)
    }

    /// Continues the run in `run` exactly where its last checkpoint left it.
    ///
    /// Every file the checkpoint's `state.json` names is checked against its recorded sha256
    /// first; a changed, damaged or missing file is a [`TrainError::Checkpoint`] naming it.
    /// Runs written before the commit protocol (no file list) load their fixed names unchecked.
    pub fn resume(run: RunDir) -> Result<Self, TrainError> {
        let cfg = TrainConfig::from_toml_path(&run.config())?.check()?;
        Self::resume_with(run, cfg)
    }

    /// [`Trainer::resume`] with the run's config as the caller read it (`mmanet resume --set
    /// data.dataset.root=...` points a moved run at its data). The data are compared with the
    /// fingerprint `state.json` records: a changed list or manifest file is a warning, a
    /// changed number of training or validation samples an error (the loader position and the
    /// mining inputs would not fit).
    pub fn resume_with(run: RunDir, cfg: ValidConfig) -> Result<Self, TrainError> {
        Self::resume_in(run, cfg, None)
    }

    /// [`Trainer::resume_with`] as one rank of a data-parallel run: rank 0 reads the
    /// checkpoint and broadcasts its state, weights and optimizer state (the other ranks need
    /// no access to the run folder).
    pub fn resume_parallel(
        run: RunDir,
        cfg: ValidConfig,
        parallel: DataParallel,
    ) -> Result<Self, TrainError> {
        Self::resume_in(run, cfg, Some(parallel))
    }

    fn resume_in(
        run: RunDir,
        cfg: ValidConfig,
        mut parallel: Option<DataParallel>,
    ) -> Result<Self, TrainError> {
        let state = match &mut parallel {
            None => run.read_state()?,
            Some(p) => {
                // Rank 0 sends the state (empty when it could not read it, so that every
                // rank stops instead of waiting for the next collective).
                let read = if p.is_writer() { Some(run.read_state()) } else { None };
                let json = match &read {
                    Some(Ok(s)) => serde_json::to_vec(s).expect("state serialises"),
                    Some(Err(_)) | None => Vec::new(),
                };
                let agreed = p.broadcast_bytes(&json)?;
                match read {
                    Some(r) => r?,
                    None if agreed.is_empty() => {
                        return Err(TrainError::checkpoint(
                            &run.state(),
                            "rank 0 could not read the checkpoint (its error is in its log)",
                        ));
                    }
                    None => serde_json::from_slice(&agreed).map_err(|e| {
                        TrainError::checkpoint(&run.state(), format!("from rank 0: {e}"))
                    })?,
                }
            }
        };
        let mut t = Self::build(cfg, run, state, parallel)?;
        match &t.state.data {
            Some(then) => {
                let now = &t.data;
                if (then.train_samples, then.val_samples) != (now.train_samples, now.val_samples) {
                    return Err(TrainError::checkpoint(
                        &t.run.state(),
                        format!(
                            "the data changed: the run was trained on {} training and {} \
                             validation samples, the data set now has {} and {}",
                            then.train_samples,
                            then.val_samples,
                            now.train_samples,
                            now.val_samples
                        ),
                    ));
                }
                if then.files != now.files {
                    tracing::warn!(
                        run = %t.run.root().display(),
                        then = ?then.files,
                        now = ?now.files,
                        "the data's list files changed since the run started (same sample counts)"
                    );
                }
            }
            // Runs written before the fingerprint: record it from now on.
            None => t.state.data = Some(t.data.clone()),
        }
        let started = t.state.next_epoch > 0 || t.state.partial.is_some();
        let writer = t.writes();
        if !writer {
            // Rank 0 loads the checkpoint; its values arrive below.
        } else if !t.state.checkpoint.is_empty() {
            t.run.verify(&t.state.checkpoint)?;
            let path = |role: FileRole| -> Result<Option<std::path::PathBuf>, TrainError> {
                t.state.file(role, None).map(|f| t.run.file_path(f)).transpose()
            };
            let missing = |role: FileRole| {
                TrainError::checkpoint(
                    &t.run.state(),
                    format!("the checkpoint names no `{}` file", role.name()),
                )
            };
            let weights = path(FileRole::Last)?.ok_or_else(|| missing(FileRole::Last))?;
            let optim = path(FileRole::Optimizer)?.ok_or_else(|| missing(FileRole::Optimizer))?;
            let scaler = path(FileRole::Scaler)?;
            checkpoint::load_var_store(&t.vs, &weights, LoadMode::Strict)?;
            t.opt.load(&optim)?;
            if let (true, Some(p)) = (t.scaler.is_enabled(), scaler) {
                t.scaler.load(&p)?;
            }
            // What a crash between the commit and its follow-ups may have left behind.
            t.run.collect_garbage(&t.state.checkpoint);
            t.run.refresh_aliases(&t.state.checkpoint)?;
        } else if started {
            tracing::warn!(
                run = %t.run.root().display(),
                "a run written before checkpoint checksums: its files are loaded unchecked"
            );
            checkpoint::load_var_store(&t.vs, t.run.legacy_path(FileRole::Last), LoadMode::Strict)?;
            t.opt.load(&t.run.legacy_path(FileRole::Optimizer))?;
            let scaler = t.run.legacy_path(FileRole::Scaler);
            if t.scaler.is_enabled() && scaler.exists() {
                t.scaler.load(&scaler)?;
            }
            let best = t.run.legacy_path(FileRole::Best);
            t.legacy_best = (t.state.best.is_some() && best.exists()).then_some(best);
        }
        t.sync_from_rank0()?;
        if started && writer {
            t.write_metrics()?;
            let at = match &t.state.partial {
                Some(p) => format!("epoch {}, step {}", p.epoch, p.steps),
                None => format!("epoch {}", t.state.next_epoch),
            };
            t.run.append_log(&format!("resumed at {at}"))?;
        }
        tracing::info!(next_epoch = t.state.next_epoch, "resuming");
        Ok(t)
    }

    fn build(
        cfg: ValidConfig,
        run: RunDir,
        state: TrainState,
        parallel: Option<DataParallel>,
    ) -> Result<Self, TrainError> {
        // A data-parallel rank on CUDA trains on its own GPU (cuda:LOCAL_RANK, NCCL's device).
        let device = match parallel.as_ref().and_then(DataParallel::cuda_device) {
            Some(d) if cfg.device().is_cuda() => Device::Cuda(d),
            _ => cfg.device(),
        };
        let shard = match &parallel {
            Some(p) => {
                check_parallel(&cfg, p)?;
                p.shard()
            }
            None => mmanet_data::Shard::WHOLE,
        };
        let set = cfg.set().clone();
        let train = cfg.data.open(Split::Train, cfg.seed)?;
        let val = cfg.data.open(Split::Val, cfg.seed)?;
        let data = fingerprint(&cfg.data.dataset, train.len(), val.len())?;
        check_dataset(&train, &set, cfg.model.num_classes())?;
        let teacher_stage = cfg.stage == Stage::Teacher;
        // A teacher trained on modality subsets (the CeFA reference's `unbalance_modality_drop`)
        // must apply its masks: train it as a deployment network (same parameter names).
        let masked_teacher = teacher_stage
            && !cfg.train_combos().is_empty()
            && cfg.train_combos().iter().any(|c| *c != set.full());
        // The teacher never sees a missing modality: it trains on the complete samples.
        let train = if teacher_stage && !masked_teacher {
            complete_samples(train, cfg.data.batch_size)?
        } else {
            train
        };
        let policy = cfg.data.train_policy(&set, cfg.train_combos(), teacher_stage);
        let loader_cfg = LoaderConfig {
            pin_memory: device.is_cuda().then_some(device),
            shard,
            ..cfg.data.train_loader(cfg.seed)
        };
        let full = set.full();
        let train_incomplete = (0..train.len()).any(|i| train.availability(i) != full);
        let train_loader = DataLoader::new(train, policy, loader_cfg)?;
        let scoring = Scoring::for_task(val.task(), cfg.eval.bona_fide_label)?;
        let val_task = val.task();
        let val_random = match cfg.eval.selection {
            Selection::RandomMasks => Some(DataLoader::new(
                Arc::clone(&val),
                cfg.data.train_policy(&set, cfg.train_combos(), teacher_stage),
                LoaderConfig { seed: cfg.seed, ..cfg.data.eval_loader(cfg.eval.batch_size) },
            )?),
            Selection::MeanOverCombinations | Selection::LastEpoch => None,
        };
        let val = eval_loader(val, cfg.data.eval_loader(cfg.eval.batch_size))?;
        if cfg.data.dataset.validation_is_test() && cfg.eval.selection != Selection::LastEpoch {
            tracing::warn!(
                dataset = cfg.data.dataset.name(),
                "the validation split is the test split: the kept weights are chosen on test \
                 data (set eval.selection = \"last-epoch\")"
            );
        }
        // Weak-set mining compares predictions on the complete validation samples.
        let val_mining = val.restricted(val.samples_with(set.full()))?;

        tch::manual_seed(cfg.seed as i64);
        let vs = VarStore::new(device);
        let role = match (cfg.stage, cfg.method.mar) {
            (Stage::Teacher, _) if masked_teacher => Role::Deployment,
            (Stage::Teacher, _) => Role::Teacher,
            (Stage::Student, true) => Role::StudentWithRegularizer,
            (Stage::Student, false) => Role::Deployment,
        };
        let net = cfg.model.build(&vs.root(), role)?;
        if state.next_epoch == 0 && state.partial.is_none() {
            // A fresh run (a resumed one loads its checkpoint): ImageNet encoders if configured.
            cfg.model.load_pretrained(&vs)?;
        }
        let teacher = match (&cfg.teacher, cfg.stage, cfg.method.needs_teacher()) {
            (Some(t), Stage::Student, true) => Some(load_teacher(&cfg, &t.checkpoint, device)?),
            // `check` refuses a distilling student without a teacher checkpoint.
            (None, Stage::Student, true) => {
                return Err(TrainError::config(
                    "teacher.checkpoint",
                    "distillation needs a teacher checkpoint",
                ));
            }
            (_, Stage::Teacher, _) | (_, Stage::Student, false) => None,
        };
        let amp = cfg.compute.amp && device.is_cuda();
        let channels_last = cfg.compute.channels_last && device.is_cuda();
        if channels_last {
            // Before the optimizer: it makes the variables views of its flat buffer.
            mmanet_models::layout::to_channels_last(&vs);
            if let Some(t) = &teacher {
                mmanet_models::layout::to_channels_last(&t._vs);
            }
        }
        let opt = Optimizer::new(&vs, cfg.optimizer.clone());
        let buffers = variables_by_name(&vs, |t| !t.requires_grad());
        let sync_bn = match (&parallel, cfg.compute.sync_batchnorm) {
            (Some(p), true) => Some(p.sync_batch_norm()?),
            (Some(_), false) | (None, _) => None,
        };
        let weak = match &state.weak_set {
            Some(w) => {
                let combos = set.parse_masks(w).map_err(|e| {
                    TrainError::config(run.state().display().to_string(), format!("weak_set: {e}"))
                })?;
                Some(WeakSet::new(set.clone(), combos)?)
            }
            None if !cfg.fixed_weak_set().is_empty() && !teacher_stage => {
                Some(WeakSet::new(set.clone(), cfg.fixed_weak_set().to_vec())?)
            }
            None => None,
        };
        let scaler = GradScaler::new(amp, device);
        let objective = crate::objective::for_task(&cfg, val_task, device)?;
        let graph = graph_step::GraphState::for_run(&cfg, device)?;
        Ok(Trainer {
            objective,
            data,
            cfg,
            run,
            device,
            vs,
            net,
            teacher,
            opt,
            scaler,
            amp,
            transfer: TransferOptions { channels_last },
            train_loader,
            val,
            val_mining,
            train_incomplete,
            val_random,
            scoring,
            state,
            weak,
            legacy_best: None,
            parallel,
            buffers,
            sync_bn,
            graph,
        })
    }

    /// `missing.json`: per split, the incomplete samples and the modalities each has.
    fn missing_json(&self) -> Result<String, TrainError> {
        let set = self.cfg.set();
        let mut splits = serde_json::Map::new();
        for (name, split) in [("train", Split::Train), ("val", Split::Val), ("test", Split::Test)] {
            let data = self.cfg.data.open(split, self.cfg.seed)?;
            let rows: Vec<serde_json::Value> = (0..data.len())
                .filter(|&i| data.availability(i) != set.full())
                .map(|i| serde_json::json!({"index": i, "available": set.format(data.availability(i))}))
                .collect();
            splits.insert(
                name.into(),
                serde_json::json!({"samples": data.len(), "incomplete": rows}),
            );
        }
        Ok(serde_json::to_string_pretty(&serde_json::Value::Object(splits)).expect("json"))
    }

    /// The run's state (history, weak set, best score).
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// The trained network.
    pub fn net(&self) -> &dyn MultiModalNet {
        self.net.as_ref()
    }

    /// The trained network's variables.
    pub fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// The run folder.
    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    fn is_student(&self) -> bool {
        self.cfg.stage == Stage::Student
    }

    /// Combinations scored on the validation split and in the final report.
    pub fn eval_combos(&self) -> Vec<ModalityMask> {
        let set = self.cfg.set();
        if self.cfg.stage == Stage::Teacher {
            vec![set.full()]
        } else if self.cfg.eval_combos().is_empty() {
            set.default_combinations()
        } else {
            self.cfg.eval_combos().to_vec()
        }
    }

    /// Trains at most `max_epochs` of the remaining epochs (each one checkpointed); returns how
    /// many ran. A later [`Trainer::resume`] continues exactly.
    pub fn train_epochs(
        &mut self,
        max_epochs: usize,
        obs: &mut dyn Observer,
    ) -> Result<usize, TrainError> {
        let first = self.state.next_epoch;
        let last = self.cfg.epochs.min(first.saturating_add(max_epochs));
        for epoch in first..last {
            self.run_epoch(epoch, obs)?;
        }
        Ok(last.saturating_sub(first))
    }

    /// Trains the remaining epochs, then scores the selected weights on the test split.
    pub fn run(&mut self, obs: &mut dyn Observer) -> Result<TrainSummary, TrainError> {
        let first = self.state.next_epoch;
        self.train_epochs(usize::MAX, obs)?;
        // Data-parallel: every rank scores its part of the test split; rank 0 writes.
        let report = self.test_report()?;
        Ok(TrainSummary {
            epochs_run: self.cfg.epochs.saturating_sub(first),
            best: self.state.best,
            weak_set: self.state.weak_set.clone(),
            report,
        })
    }

    /// Runs one epoch: training pass, mining, validation, checkpoint.
    fn run_epoch(&mut self, epoch: usize, obs: &mut dyn Observer) -> Result<(), TrainError> {
        let started = Instant::now();
        let cfg = &self.cfg;
        tch::manual_seed(epoch_seed(cfg.seed, epoch));
        let lr = cfg.schedule.lr(cfg.optimizer.base_lr(), epoch, cfg.epochs);
        self.opt.set_lr(lr);
        self.opt.set_momentum(cfg.schedule.momentum(epoch, cfg.epochs));
        let skip = lr == 0.0 && cfg.skip_zero_lr_epochs;
        let (steps, loss, skipped) = if skip {
            tracing::info!(epoch, "learning rate 0: training pass skipped");
            (0, LossBreakdown::default(), 0)
        } else {
            match self.train_epoch(epoch, lr, obs)? {
                EpochPass::Done { steps, mean, skipped } => (steps, mean, skipped),
                EpochPass::Stopped(partial) => {
                    let step = partial.steps;
                    let mut next = self.state.clone();
                    next.partial = Some(partial);
                    self.commit(next, None, false)?;
                    return Err(TrainError::Interrupted { epoch, step });
                }
            }
        };
        self.mine(epoch, obs)?;
        let val = if self.should_validate(epoch) { Some(self.validate()?) } else { None };
        let record = EpochRecord {
            epoch,
            lr,
            steps,
            loss,
            val,
            seconds: started.elapsed().as_secs_f64(),
            skipped_samples: skipped,
        };
        self.checkpoint(record.clone())?;
        tracing::info!(epoch, lr, loss = loss.total, ?val, "epoch done");
        if let Some(c) = self.train_loader.dataset().decoded_cache_stats() {
            let mib = c.bytes as f64 / (1u64 << 20) as f64;
            tracing::info!(
                epoch,
                entries = c.entries,
                mib,
                hits = c.hits,
                misses = c.misses,
                "decoded-image cache"
            );
        }
        obs.on_epoch_end(&record);
        Ok(())
    }

    fn should_validate(&self, epoch: usize) -> bool {
        let every = self.cfg.eval.every;
        epoch + 1 == self.cfg.epochs || (every > 0 && (epoch + 1) % every == 0)
    }

    /// One training pass; returns (steps, mean losses, skipped samples).
    fn train_epoch(
        &mut self,
        epoch: usize,
        lr: f64,
        obs: &mut dyn Observer,
    ) -> Result<EpochPass, TrainError> {
        obs.on_epoch_start(epoch, self.train_loader.num_batches(), lr);
        let mut iter = self.train_loader.iter(epoch as u64);
        let (mut sum, mut steps) = match self.state.partial.take() {
            // Resuming inside this epoch: replay the loader past the finished steps.
            Some(p) if p.epoch == epoch => {
                for _ in 0..p.steps {
                    iter.next().transpose()?;
                }
                (p.sum, p.steps)
            }
            _ => (LossBreakdown::default(), 0),
        };
        for batch in iter.by_ref() {
            let batch = transfer::to_device(batch?, self.device, self.transfer);
            let step_started = Instant::now();
            let (parts, agreed_stop) = if self.graph.is_some() {
                (self.graph_step(&batch, epoch, steps)?, None)
            } else {
                self.eager_step(&batch, epoch, steps, obs.should_stop())?
            };
            if let Some(p) = &mut self.parallel {
                // DDP's `broadcast_buffers`: BatchNorm statistics follow rank 0.
                p.broadcast_buffers(&self.buffers)?;
                p.record_step(step_started.elapsed().as_secs_f64());
            }
            sum.add(&parts);
            steps += 1;
            obs.on_step(epoch, steps, &parts);
            let stop = agreed_stop.unwrap_or_else(|| obs.should_stop());
            if stop && steps < self.train_loader.num_batches() {
                return Ok(EpochPass::Stopped(PartialEpoch { epoch, steps, sum }));
            }
        }
        let mean = if steps > 0 { sum.scaled(1.0 / steps as f64) } else { sum };
        if let Some(g) = &self.graph {
            g.log_epoch(epoch);
        }
        if let Some(p) = &mut self.parallel {
            let c = p.take_stats();
            let median = c.allreduce_median_s();
            tracing::info!(
                target: "mmanet_train::parallel",
                epoch,
                steps,
                allreduce_bytes = c.allreduce_bytes,
                allreduce_median_ms = median * 1e3,
                allreduce_gb_per_s = c.allreduce_bytes as f64 / median / 1e9,
                other_collectives_median_ms = c.other_median_s() * 1e3,
                step_median_ms = c.step_median_s() * 1e3,
                "data-parallel step collectives"
            );
        }
        Ok(EpochPass::Done { steps, mean, skipped: iter.skipped() })
    }

    /// One eager training step: gradients, the data-parallel agreement and average, the
    /// non-finite check, the scaled update. Returns the step's loss parts and, in a
    /// data-parallel run, the agreed stop request (`stop_requested` is this rank's).
    ///
    /// # Shapes
    /// `batch`: as [`Trainer::loss`].
    fn eager_step(
        &mut self,
        batch: &Batch,
        epoch: usize,
        step: usize,
        stop_requested: bool,
    ) -> Result<(LossBreakdown, Option<bool>), TrainError> {
        let (mut grads, parts) = self.gradients(batch, epoch)?;
        // Data-parallel: a stop request (polled here, so one made during step s takes
        // effect after step s + 1) travels in the step's agreement, so all ranks stop after
        // the same step.
        let (parts, agreed_stop) = match &mut self.parallel {
            Some(p) => {
                let agreed = p.agree_step(&parts, stop_requested, grads.has_inactive())?;
                if agreed.parts.total.is_finite() {
                    p.average_gradients(&mut grads, agreed.inactive, &self.opt)?;
                }
                (agreed.parts, Some(agreed.stop))
            }
            None => (parts, None),
        };
        if !parts.total.is_finite() {
            return Err(non_finite(&parts, epoch, step));
        }
        self.scaler.step(&mut self.opt, grads);
        Ok((parts, agreed_stop))
    }

    /// The averaged gradients of one batch and its mean loss parts: one backward pass, or with
    /// `compute.accumulate = K` one per micro-batch (positions `j, j + K, ...`), BatchNorm's
    /// running statistics kept as micro-batch 0 left them.
    ///
    /// # Shapes
    /// `batch`: as [`Trainer::loss`]; its size must divide by `K` (checked with the config).
    fn gradients(
        &mut self,
        batch: &Batch,
        epoch: usize,
    ) -> Result<(Gradients, LossBreakdown), TrainError> {
        let k = self.cfg.compute.accumulate;
        if k <= 1 {
            let terms = self.step_loss(batch, epoch)?;
            let grads = self.opt.try_backward(&self.scaler.scale(&terms.total))?;
            return Ok((grads, terms.read()));
        }
        let mut total: Option<Gradients> = None;
        let mut sum = LossBreakdown::default();
        let mut kept: Option<Vec<Tensor>> = None;
        let mut micro_batches = 0;
        for j in 0..k {
            let positions: Vec<usize> =
                mmanet_data::Shard { index: j, count: k }.positions(batch.len()).collect();
            if positions.is_empty() {
                continue;
            }
            let micro = batch.select(&positions)?;
            let terms = self.step_loss(&micro, epoch)?;
            let grads = self.opt.try_backward(&self.scaler.scale(&terms.total))?;
            let parts = terms.read();
            if kept.is_none() {
                kept = Some(tch::no_grad(|| self.buffers.iter().map(Tensor::copy).collect()));
            }
            match &mut total {
                Some(t) => t.accumulate(&grads),
                None => total = Some(grads),
            }
            sum.add(&parts);
            micro_batches += 1;
        }
        if let Some(kept) = kept {
            tch::no_grad(|| {
                for (b, k) in self.buffers.iter().zip(&kept) {
                    b.shallow_clone().copy_(k);
                }
            });
        }
        let mut grads = total.ok_or_else(|| {
            TrainError::config("compute.accumulate", "a batch without samples cannot be split")
        })?;
        let n = micro_batches as f64;
        grads.scale(1.0 / n);
        Ok((grads, sum.scaled(1.0 / n)))
    }

    /// [`Trainer::loss`] of a training step: with `compute.sync_batchnorm` in a data-parallel
    /// run, every training-mode BatchNorm of the forward pass normalises over all ranks.
    ///
    /// # Shapes
    /// As [`Trainer::loss`].
    fn step_loss(&self, batch: &Batch, epoch: usize) -> Result<LossTerms, TrainError> {
        let available = self.availability(batch)?;
        let Some(hook) = &self.sync_bn else { return self.loss(batch, epoch, available, false) };
        let hook_dyn: Arc<dyn mmanet_models::layers::TrainBatchNorm> = hook.clone();
        let out = mmanet_models::layers::with_train_batch_norm(hook_dyn, || {
            self.loss(batch, epoch, available, false)
        });
        match hook.take_error() {
            Some(e) => Err(e),
            None => out,
        }
    }

    /// The `[B, M]` f32 availability of the batch's samples on the training device, when the
    /// training data are incomplete (`None`: every sample is complete).
    fn availability(&self, batch: &Batch) -> Result<Option<Tensor>, TrainError> {
        if !self.train_incomplete {
            return Ok(None);
        }
        let data = self.train_loader.dataset();
        let available: Vec<ModalityMask> =
            batch.indices.iter().map(|&i| data.availability(i)).collect();
        let set = self.cfg.set();
        Ok(Some(crate::objective::availability_tensor(set, &available, self.device)?))
    }

    /// The loss of one batch and its parts, from the run's [`Objective`]: its CE alone up to
    /// `begin_epoch`, then (students) with the teacher and, under MAR, the weak set.
    /// `capturable`: nothing may read the device ([`Step::capturable`]).
    ///
    /// # Shapes
    /// - `batch.inputs[m]`: `[B, ...]`; `batch.mask`: `[B, M]`; `batch.targets`: `[B]` or
    ///   `[B, H, W]`; `available`: `[B, M]` f32 ([`Trainer::availability`]).
    fn loss(
        &self,
        batch: &Batch,
        epoch: usize,
        available: Option<Tensor>,
        capturable: bool,
    ) -> Result<LossTerms, TrainError> {
        let m = &self.cfg.method;
        let active = self.is_student() && epoch > m.begin_epoch;
        let teacher = self.teacher.as_ref().filter(|_| active).map(|t| t.net.as_ref());
        // The modalities each sample really has, on incomplete data: the student's branch
        // BatchNorms normalise over the rows that have their modality, and a teacher sees
        // each sample with its own modalities.
        let step = Step {
            student: self.net.as_ref(),
            teacher,
            weak: self.weak.as_ref().filter(|_| active && m.mar),
            available,
            amp: self.amp,
            capturable,
        };
        self.objective.loss(&step, batch)
    }

    /// Weak-set mining after the training pass of the mining epochs.
    fn mine(&mut self, epoch: usize, obs: &mut dyn Observer) -> Result<(), TrainError> {
        let m = &self.cfg.method;
        if !self.is_student() || !m.mar || self.weak.is_some() {
            return Ok(());
        }
        if epoch < m.mining_start || epoch >= m.begin_epoch {
            return Ok(());
        }
        let record = self.objective.mine_epoch(
            self.net.as_ref(),
            &self.val_mining,
            epoch,
            self.device,
            self.parallel.as_mut(),
        )?;
        self.state.mining.push(record);
        if epoch + 1 == m.begin_epoch {
            let weak = self.objective.select_weak_set(&self.state.mining)?;
            self.record_weak_set(weak, obs)?;
        }
        Ok(())
    }

    fn record_weak_set(&mut self, weak: WeakSet, obs: &mut dyn Observer) -> Result<(), TrainError> {
        let combos = weak.names();
        let json = serde_json::json!({
            "weak_set": combos,
            "mining_epochs": self.state.mining.iter().map(|m| m.epoch).collect::<Vec<_>>(),
        });
        if self.writes() {
            write_atomic(
                &self.run.weak_set(),
                serde_json::to_string_pretty(&json).expect("json").as_bytes(),
            )?;
            self.run.append_log(&format!("weak set: {}", json["weak_set"]))?;
        }
        self.state.weak_set = Some(combos.clone());
        obs.on_weak_set(&combos);
        self.weak = Some(weak);
        Ok(())
    }

    /// The selection metric on the validation split: its mean over the evaluation
    /// combinations, or (`random-masks`) its value with one drawn mask per sample.
    /// Data-parallel: split over the ranks, every rank gets the same score.
    fn validate(&mut self) -> Result<f64, TrainError> {
        let (net, metric) = (self.net.as_ref(), self.scoring.selection_metric());
        let (scoring, device, combos) = (self.scoring, self.device, self.eval_combos());
        let ranks = self.parallel.as_mut();
        let report = match (&self.val_random, self.cfg.eval.selection) {
            (Some(drawn), Selection::RandomMasks) => {
                evaluate_drawn_masks_on(net, drawn, scoring, device, "random-masks", ranks)?
            }
            (
                _,
                Selection::MeanOverCombinations | Selection::RandomMasks | Selection::LastEpoch,
            ) => evaluate_on(net, &self.val, &combos, scoring, device, ranks)?,
        };
        Ok(mean_metric(&report, metric).unwrap_or(f64::NAN))
    }

    /// Whether `record` becomes the kept weights (`best.safetensors`) under `eval.selection`.
    fn selects(&self, record: &EpochRecord) -> bool {
        let kept = self.state.best.map(|b| b.score);
        self.cfg.eval.selects(record.epoch, self.cfg.epochs, record.val, kept)
    }

    /// Commits the checkpoint of a finished epoch (its record joins the history; weights that
    /// `eval.selection` selects become `best`), then writes the views of the committed
    /// state: `metrics.csv` and the `train.log` line.
    fn checkpoint(&mut self, record: EpochRecord) -> Result<(), TrainError> {
        let mut next = self.state.clone();
        // `eval.selection` decides; the last epoch is always validated, so `last-epoch` has a
        // score too.
        let new_best = self.selects(&record);
        if new_best {
            let score = record.val.unwrap_or(f64::NAN);
            next.best = Some(Best { epoch: record.epoch, score });
        }
        next.next_epoch = record.epoch + 1;
        next.partial = None;
        next.history.push(record.clone());
        self.commit(next, Some(record.epoch), new_best)?;
        if !self.writes() {
            return Ok(());
        }
        self.write_metrics()?;
        self.run.append_log(&format!(
            "epoch {} lr {:e} steps {} loss {:.6} ce {:.6} distill {:.6} mar {:.6} val {} ({:.1}s)",
            record.epoch,
            record.lr,
            record.steps,
            record.loss.total,
            record.loss.ce,
            record.loss.distill,
            record.loss.mar,
            record.val.map_or("-".into(), |v| format!("{v:.6}")),
            record.seconds
        ))
    }

    /// The checkpoint commit protocol (docs/architecture.md, "Checkpoint commit protocol"):
    ///
    /// 1. the weights, the optimizer state and (mixed precision) the loss scaler are written
    ///    under new physical names (`weights-e0007`, `optim-e0007`, ...; `-s000012` for a run
    ///    stopped inside an epoch), each through [`mmanet_fs`] (temporary file, fsync, rename,
    ///    folder fsync);
    /// 2. `state.json`, naming exactly the files of this checkpoint with their sha256 (the
    ///    best and kept-epoch weights by reference: no file is written twice), replaces the
    ///    old one atomically and the folder is fsynced: this rename is the commit;
    /// 3. only then are files no entry names removed (older sets, `checkpoint_keep`'s oldest
    ///    epoch) and `checkpoints/last.safetensors` / `best.safetensors` re-linked.
    ///
    /// A crash or an error before step 2 leaves the previous `state.json` and all its files
    /// untouched; after it, the new checkpoint is complete and a resume finishes step 3.
    fn commit(
        &mut self,
        mut next: TrainState,
        finished: Option<usize>,
        new_best: bool,
    ) -> Result<(), TrainError> {
        let tag = match (&next.partial, finished) {
            (Some(p), _) => format!("e{:04}-s{:06}", p.epoch, p.steps),
            (None, Some(e)) => format!("e{e:04}"),
            (None, None) => format!("e{:04}-s000000", next.next_epoch),
        };
        if !self.writes() {
            // Other ranks keep the same state without files (rank 0 writes them).
            self.state = next;
            return Ok(());
        }
        let old = std::mem::take(&mut next.checkpoint);
        let path = self.run.fresh_checkpoint(&format!("weights-{tag}"), &old);
        let w = checkpoint::save_var_store(&self.vs, &path).map_err(TrainError::from_model)?;
        let last = self.run.entry(FileRole::Last, &path, w);
        let path = self.run.fresh_checkpoint(&format!("optim-{tag}"), &old);
        let w = self.opt.save(&path)?;
        let mut files = vec![last.clone(), self.run.entry(FileRole::Optimizer, &path, w)];
        if self.scaler.is_enabled() {
            let path = self.run.fresh_checkpoint(&format!("scaler-{tag}"), &old);
            let w = self.scaler.save(&path)?;
            files.push(self.run.entry(FileRole::Scaler, &path, w));
        }
        if new_best {
            files.push(last.as_role(FileRole::Best, None));
        } else if let Some(b) = old.iter().find(|f| f.role == FileRole::Best) {
            files.push(b.clone());
        } else if let (Some(legacy), Some(b)) = (&self.legacy_best, next.best) {
            // A run written before the protocol: its best weights get a physical name (a
            // second name of the same file, no copy).
            let taken: Vec<CheckpointFile> = old.iter().chain(&files).cloned().collect();
            let path = self.run.fresh_checkpoint(&format!("weights-e{:04}", b.epoch), &taken);
            mmanet_fs::link(legacy, &path)?;
            let w = mmanet_fs::sha256_file(&path).map_err(|e| TrainError::io(&path, e))?;
            files.push(self.run.entry(FileRole::Best, &path, w));
        }
        let keep = self.cfg.checkpoint_keep;
        if keep > 0 {
            let mut kept: Vec<CheckpointFile> =
                old.iter().filter(|f| f.role == FileRole::Epoch).cloned().collect();
            if let Some(e) = finished {
                kept.push(last.as_role(FileRole::Epoch, Some(e)));
            }
            let oldest = kept.len().saturating_sub(keep);
            files.extend(kept.into_iter().skip(oldest));
        }
        next.checkpoint = files;
        let json = serde_json::to_string_pretty(&next).expect("state serialises");
        write_atomic(&self.run.state(), json.as_bytes())?;
        self.state = next;
        self.legacy_best = None;
        self.run.collect_garbage(&self.state.checkpoint);
        self.run.refresh_aliases(&self.state.checkpoint)
    }

    /// `metrics.csv` from the committed history.
    fn write_metrics(&self) -> Result<(), TrainError> {
        let mut csv = String::from(EpochRecord::CSV_HEADER);
        for r in &self.state.history {
            csv.push_str(&r.csv_row());
        }
        write_atomic(&self.run.metrics(), csv.as_bytes())
    }

    /// Scores the best (else the last) weights on the test split and writes the report files.
    /// Data-parallel: rank 0 reads the weights and broadcasts them, every rank scores its part
    /// of the split (the counts are summed), and rank 0 alone writes.
    pub fn test_report(&mut self) -> Result<CombinationReport, TrainError> {
        if self.writes() {
            let best = match self.state.file(FileRole::Best, None) {
                Some(f) => Some(self.run.file_path(f)?),
                None => self.state.best.map(|_| self.run.legacy_path(FileRole::Best)),
            };
            if let Some(best) = best.filter(|p| p.exists()) {
                checkpoint::load_var_store(&self.vs, best, LoadMode::Strict)?;
            }
        }
        if let Some(p) = &mut self.parallel {
            p.broadcast_tensors(&variables_by_name(&self.vs, |_| true))?;
        }
        let test = self.cfg.data.open(Split::Test, self.cfg.seed)?;
        let test = eval_loader(test, self.cfg.data.eval_loader(self.cfg.eval.batch_size))?;
        let (scoring, device, combos) = (self.scoring, self.device, self.eval_combos());
        let net = self.net.as_ref();
        let report = evaluate_on(net, &test, &combos, scoring, device, self.parallel.as_mut())?;
        let mut run_report = self.run_report(&report);
        // Incomplete test data: also each sample with the modalities it really has.
        let full = self.cfg.model.set().full();
        if test.samples_with(full).len() < test.dataset().len() {
            let ranks = self.parallel.as_mut();
            let observed = evaluate_observed_on(net, &test, scoring, device, ranks)?;
            run_report.set_observed(&self.cfg.model.set(), &observed);
        }
        if !self.writes() {
            return Ok(report);
        }
        write_atomic(&self.run.report("md"), run_report.to_markdown().as_bytes())?;
        let observed = run_report.results.first().and_then(|r| r.observed.as_ref());
        let csv = crate::run_report::report_csv(&report, observed);
        write_atomic(&self.run.report("csv"), csv.as_bytes())?;
        write_atomic(&self.run.report("json"), run_report.to_json().as_bytes())?;
        Ok(report)
    }

    /// `report` in the [`RunReport`](crate::run_report::RunReport) JSON shape, under this run's name.
    pub fn run_report(&self, report: &CombinationReport) -> crate::run_report::RunReport {
        let task = match self.scoring {
            Scoring::Segmentation { .. } => "segmentation",
            Scoring::AntiSpoofing(_) | Scoring::Accuracy => "classification",
        };
        let set = self.cfg.model.set();
        let mods = set.modalities().iter().map(|m| m.symbol().to_string()).collect();
        let mut r = crate::run_report::RunReport::new(self.cfg.data.dataset.name(), task, mods);
        r.push(&self.cfg.name, report);
        r
    }
}

/// How a training pass ended.
enum EpochPass {
    /// Every batch was seen.
    Done { steps: usize, mean: LossBreakdown, skipped: usize },
    /// The observer asked to stop.
    Stopped(PartialEpoch),
}

fn load_teacher(
    cfg: &TrainConfig,
    path: &std::path::Path,
    device: Device,
) -> Result<Teacher, TrainError> {
    let missing = "teacher checkpoint not found (train the teacher first)";
    let (mut vs, net) = load_net(&cfg.model, Role::Teacher, device, path, missing)?;
    vs.freeze();
    Ok(Teacher { _vs: vs, net })
}

/// The variables of `vs` that `keep` selects, sorted by name (the same order on every rank).
fn variables_by_name(vs: &VarStore, keep: impl Fn(&Tensor) -> bool) -> Vec<Tensor> {
    let mut vars: Vec<(String, Tensor)> =
        vs.variables().into_iter().filter(|(_, t)| keep(t)).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter().map(|(_, t)| t).collect()
}

/// The checks data-parallel training needs beyond [`TrainConfig::check`]: CUDA only with the
/// NCCL backend (mmanet-sys built against the CUDA libtorch), no captured step, and a global
/// batch that divides by the world size times `compute.accumulate`.
fn check_parallel(cfg: &ValidConfig, p: &DataParallel) -> Result<(), TrainError> {
    if cfg.compute.cuda_graph {
        return Err(TrainError::config(
            "compute.cuda_graph",
            "a captured step runs in one process so far (its gradients would need the \
             all-reduce inside the graph): set it to false for data-parallel training",
        ));
    }
    if cfg.device().is_cuda() && p.cuda_device().is_none() {
        return Err(TrainError::config(
            "device",
            if mmanet_sys::nccl_built() {
                "this rank joined its process group without a CUDA device"
            } else {
                "data-parallel training on CUDA needs the NCCL backend, which is built only \
                 against the CUDA libtorch (`cargo xtask setup --cuda`, docs/distributed.md): \
                 use device = \"cpu\" or one process"
            },
        ));
    }
    let (w, k, b) = (p.world_size(), cfg.compute.accumulate, cfg.data.batch_size);
    if b % (w * k) != 0 {
        return Err(TrainError::config(
            "data.batch_size",
            format!(
                "the global batch {b} must divide by the world size {w} times \
                 compute.accumulate {k}"
            ),
        ));
    }
    Ok(())
}

/// The error of a step whose loss is not finite, naming the first non-finite part.
fn non_finite(parts: &LossBreakdown, epoch: usize, step: usize) -> TrainError {
    let what = if !parts.ce.is_finite() {
        "cross-entropy"
    } else if !parts.distill.is_finite() {
        "distillation"
    } else {
        "MAR"
    };
    TrainError::NonFinite { epoch, step, what: what.into() }
}

/// The samples of `data` that have every modality; an error naming the count when they do not
/// fill one batch.
fn complete_samples(
    data: Arc<dyn Dataset>,
    batch_size: usize,
) -> Result<Arc<dyn Dataset>, TrainError> {
    let full = data.modalities().full();
    let complete: Vec<usize> = (0..data.len()).filter(|&i| data.availability(i) == full).collect();
    if complete.len() == data.len() {
        return Ok(data);
    }
    if complete.len() < batch_size {
        return Err(TrainError::config(
            "data.train_combos",
            format!(
                "the teacher trains on complete samples only: {} of the {} training samples have every modality, fewer than one batch ({batch_size}); train a teacher on modality subsets with data.train_combos (as the CeFA reference does) or lower data.batch_size",
                complete.len(),
                data.len()
            ),
        ));
    }
    tracing::info!(complete = complete.len(), total = data.len(), "teacher: complete samples only");
    Ok(Arc::new(mmanet_data::Subset::new(data, complete)?))
}

fn check_dataset(
    data: &Arc<dyn Dataset>,
    set: &ModalitySet,
    num_classes: usize,
) -> Result<(), TrainError> {
    if data.modalities() != set {
        return Err(TrainError::config(
            "model.modalities",
            format!(
                "the data set has {}, the model expects {}",
                data.modalities().describe(),
                set.describe()
            ),
        ));
    }
    if data.task().num_classes() != num_classes {
        return Err(TrainError::config(
            "model.n_classes",
            format!(
                "the data set has {} classes, the model {num_classes}",
                data.task().num_classes()
            ),
        ));
    }
    Ok(())
}

/// The libtorch seed of an epoch: a resumed run reseeds exactly as an uninterrupted one.
fn epoch_seed(seed: u64, epoch: usize) -> i64 {
    (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch as u64) as i64 & i64::MAX
}
