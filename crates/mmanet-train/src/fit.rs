//! `mmanet fit`: the three configs of a user's manifest, inferred from the file alone.
//!
//! The modalities are the manifest's columns (all but `id`, `label`, `split`, `group`) and
//! each decoder follows from the column's cells ([`mmanet_data::manifest::infer`]). Each
//! modality gets the generic branch that fits its decoder:
//!
//! | decoder | branch |
//! | --- | --- |
//! | `image` (`C` channels), `array` `[C, H, W]` | `small_cnn`: conv widths 16, 32, out 64 |
//! | `vector` / `array` `[D]` | `mlp`: hidden 128, out 64 |
//! | `sequence` `[T, F]` | `conv1d`: widths 32, 64, kernel 3, out 64 |
//!
//! fused by concatenation into a `[128, 64]` MLP trunk, and three runs with the settings of the
//! `mfeat3-*` presets (Adam 1e-3, 30 epochs, batch 64, MAD 30, MAR 0.5 from epoch 5): the
//! teacher on the complete samples, the modality-dropout baseline (`unified`: no teacher, no
//! MAR) and the MMANet student (MAD with that teacher, MAR). `quick` shrinks every width and
//! runs 10 epochs of batch 16 (tests). The batch is lowered to half the complete training samples when
//! there are fewer than two batches of them. With image columns, `data.decoded_cache_mb = 1024`
//! keeps the decoded images in memory (at most 1 GiB per split; the same results).

use std::path::{Path, PathBuf};

use mmanet_core::ModalitySet;
use mmanet_data::manifest::{Inferred, ManifestDecoder, ManifestModality, ManifestSource};
use mmanet_data::{DataError, DataSource, Split};
use mmanet_models::factory::NetConfig;
use mmanet_models::generic::{BranchConfig, GenericFusion, GenericNetConfig};

use crate::TrainError;
use crate::config::{TeacherConfig, TrainConfig};
use crate::data_spec::DatasetSpec;
use crate::schedule::LrSchedule;

/// What can stop `fit` before training.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The manifest could not be read or a column's decoder not inferred (names the file,
    /// line and column).
    #[error(transparent)]
    Data(#[from] DataError),
    /// An inferred config is invalid.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Fewer than two classes.
    #[error("{}: {classes} class(es) in column `label`; classification needs at least 2", path.display())]
    TooFewClasses {
        /// The manifest.
        path: PathBuf,
        /// Distinct labels.
        classes: usize,
    },
    /// The teacher trains on complete samples and there are too few of them.
    #[error(
        "{}: {complete} training samples have every modality; the teacher needs at least 4 \
         (train a subset teacher by hand: data.train_combos in a config)",
        path.display()
    )]
    TooFewComplete {
        /// The manifest.
        path: PathBuf,
        /// Complete samples in the training split.
        complete: usize,
    },
    /// A decoder no generic branch reads.
    #[error("{}: column `{column}`: {message}", path.display())]
    Unsupported {
        /// The manifest.
        path: PathBuf,
        /// The modality column.
        column: String,
        /// Why.
        message: String,
    },
}

/// How `fit` trains.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    /// Small widths, 10 epochs (tests, smoke runs).
    pub quick: bool,
    /// `auto`, `cpu` or `cuda:N`.
    pub device: String,
}

/// Which of the three runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitRole {
    /// The teacher, on the complete samples.
    Teacher,
    /// The modality-dropout baseline.
    Unified,
    /// The MMANet student (MAD with the teacher, MAR).
    Mmanet,
}

impl FitRole {
    /// The run's name and folder under the output folder.
    pub fn name(self) -> &'static str {
        match self {
            FitRole::Teacher => "teacher",
            FitRole::Unified => "unified",
            FitRole::Mmanet => "mmanet",
        }
    }
}

/// One run of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct FitRun {
    /// Which run.
    pub role: FitRole,
    /// Its run folder (`OUT/<name>`, absolute).
    pub dir: PathBuf,
    /// Its config, paths absolute.
    pub config: TrainConfig,
}

/// The inferred runs of a manifest, in training order (teacher first).
#[derive(Clone, Debug, PartialEq)]
pub struct FitPlan {
    /// The manifest, absolute.
    pub manifest: PathBuf,
    /// What was inferred from it.
    pub inferred: Inferred,
    /// Class names in index order.
    pub classes: Vec<String>,
    /// Complete samples of the training split.
    pub complete_train: usize,
    /// Teacher, unified, mmanet.
    pub runs: Vec<FitRun>,
}

impl FitPlan {
    /// The run of `role`.
    pub fn run(&self, role: FitRole) -> &FitRun {
        self.runs.iter().find(|r| r.role == role).expect("a plan holds every role")
    }
}

/// Infers the three runs of `manifest`, writing into `out` (paths made absolute against the
/// working directory). Reads the manifest and the headers of its files; trains nothing.
pub fn plan(manifest: &Path, out: &Path, opts: &FitOptions) -> Result<FitPlan, FitError> {
    let manifest = std::path::absolute(manifest).map_err(|e| DataError::io(manifest, e))?;
    let out = std::path::absolute(out).map_err(|e| DataError::io(out, e))?;
    let inferred = mmanet_data::manifest::infer_modalities(&manifest)?;
    let source = ManifestSource {
        path: manifest.clone(),
        modalities: inferred.modalities.clone(),
        classes: vec![],
        split: Default::default(),
        cache: Default::default(),
    };
    source.check()?;
    let spec = source.input_spec(0)?;
    if spec.classes.len() < 2 {
        return Err(FitError::TooFewClasses { path: manifest, classes: spec.classes.len() });
    }
    let train = source.open(Split::Train, 0)?;
    let full = train.modalities().full();
    let complete_train = (0..train.len()).filter(|&i| train.availability(i) == full).count();
    if complete_train < 4 {
        return Err(FitError::TooFewComplete { path: manifest, complete: complete_train });
    }
    let batch = (if opts.quick { 16 } else { 64 }).min(complete_train / 2);

    let names: Vec<&str> = inferred.modalities.iter().map(|m| m.name.as_str()).collect();
    let set = ModalitySet::from_names(names).map_err(DataError::from)?;
    let branches = inferred
        .modalities
        .iter()
        .map(|m| branch(&manifest, m, opts.quick))
        .collect::<Result<Vec<_>, _>>()?;
    let model = GenericNetConfig {
        modalities: set,
        branches,
        trunk_hidden: if opts.quick { vec![32] } else { vec![128, 64] },
        n_classes: spec.classes.len() as i64,
        fusion: GenericFusion::Concat,
    };
    let has_images =
        inferred.modalities.iter().any(|m| matches!(m.decoder, ManifestDecoder::Image { .. }));
    let dataset = DatasetSpec::Manifest(source);
    let epochs = if opts.quick { 10 } else { 30 };
    let make = |role: FitRole| {
        let mut c = from_mfeat3_preset(role, &dataset, &model, epochs);
        c.device = opts.device.clone();
        c.data.batch_size = batch;
        // Decoded images kept in memory (within 1 GiB per split): later epochs skip decoding.
        c.data.decoded_cache_mb = if has_images { 1024 } else { 0 };
        if opts.quick {
            c.method.begin_epoch = 4;
            c.method.mining_start = 1;
            c.schedule = LrSchedule::Constant;
            c.eval.every = 3;
        }
        c
    };
    let teacher_dir = out.join(FitRole::Teacher.name());
    let mut runs = Vec::new();
    for role in [FitRole::Teacher, FitRole::Unified, FitRole::Mmanet] {
        let mut config = make(role);
        config.name = role.name().to_string();
        if role == FitRole::Mmanet {
            config.teacher = Some(TeacherConfig {
                checkpoint: teacher_dir.join("checkpoints").join("best.safetensors"),
            });
        }
        // Validates every field (the teacher file need not exist yet).
        config.clone().check()?;
        runs.push(FitRun { role, dir: out.join(role.name()), config });
    }
    tracing::info!(
        manifest = %manifest.display(),
        modalities = inferred.modalities.len(),
        classes = spec.classes.len(),
        complete_train,
        batch,
        "fit plan"
    );
    Ok(FitPlan { manifest, inferred, classes: spec.classes, complete_train, runs })
}

/// The `mfeat3-*` preset of `role` (teacher, unified, MMANet) with the manifest's data set
/// and network and `epochs` epochs (the learning-rate step at 2/3 of them).
pub(crate) fn from_mfeat3_preset(
    role: FitRole,
    dataset: &DatasetSpec,
    model: &GenericNetConfig,
    epochs: usize,
) -> TrainConfig {
    let name = match role {
        FitRole::Teacher => "mfeat3-teacher",
        FitRole::Unified => "mfeat3-unified",
        FitRole::Mmanet => "mfeat3-mmanet",
    };
    let mut c = crate::presets::preset(name).expect("an embedded preset");
    c.data.dataset = dataset.clone();
    c.model = NetConfig::Generic(model.clone());
    c.epochs = epochs;
    c.schedule = LrSchedule::WarmupMultiStep {
        warmup_epochs: 0,
        milestones: vec![epochs * 2 / 3],
        gamma: 0.1,
    };
    c
}

/// The generic branch for one modality's decoder.
fn branch(manifest: &Path, m: &ManifestModality, quick: bool) -> Result<BranchConfig, FitError> {
    let out_dim = if quick { 16 } else { 64 };
    let cnn = |in_channels: i64| BranchConfig::SmallCnn {
        in_channels,
        channels: if quick { vec![8, 16] } else { vec![16, 32] },
        out_dim,
    };
    let mlp = |in_dim: i64| BranchConfig::Mlp {
        in_dim,
        hidden: if quick { vec![32] } else { vec![128] },
        out_dim,
    };
    Ok(match &m.decoder {
        ManifestDecoder::Image { channels, .. } => cnn(*channels as i64),
        ManifestDecoder::Vector { len, .. } => mlp(*len as i64),
        ManifestDecoder::Array { shape } if shape.len() == 1 => mlp(shape[0]),
        ManifestDecoder::Array { shape } if shape.len() == 3 => cnn(shape[0]),
        ManifestDecoder::Array { shape } => {
            return Err(FitError::Unsupported {
                path: manifest.to_path_buf(),
                column: m.name.clone(),
                message: format!("no generic branch reads an array of shape {shape:?}"),
            });
        }
        ManifestDecoder::Sequence { features, .. } => BranchConfig::Conv1d {
            in_features: *features as i64,
            channels: if quick { vec![8] } else { vec![32, 64] },
            kernel: 3,
            out_dim,
        },
    })
}
