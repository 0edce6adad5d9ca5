//! Named, complete configurations: the paper's settings and small CPU-sized ones.
//!
//! `mmanet config print --preset NAME` prints any of them as TOML, so a config never starts
//! from a blank file.

use std::path::PathBuf;

use mmanet_core::{Fidelity, ModalitySet};
use mmanet_models::{ClsFusion, ClsNetConfig};

use crate::config::{Distillation, EvalConfig, MethodConfig, Stage, TeacherConfig, TrainConfig};
use crate::data_spec::{DataConfig, DatasetSpec};
use crate::optim::OptimizerConfig;
use crate::schedule::LrSchedule;
use mmanet_models::factory::NetConfig;

/// The preset names with a one-line description.
pub const PRESETS: &[(&str, &str)] = &[
    ("demo-teacher", "synthetic CASIA-SURF-like JPEGs, small net: the teacher (CPU, ~1 min)"),
    (
        "demo-mmanet",
        "synthetic CASIA-SURF-like JPEGs, small net: the MMANet student (CPU, minutes)",
    ),
    ("demo-unified", "the demo's modality-dropout baseline (no teacher, no MAR)"),
    ("toy-teacher", "seeded Gaussian toy images, tiny net: teacher (seconds)"),
    ("toy-mmanet", "seeded Gaussian toy images, tiny net: MMANet student (seconds)"),
    ("surf-teacher", "CASIA-SURF teacher, the paper's hyper-parameters"),
    ("surf-mmanet", "CASIA-SURF MMANet student (MAD 30, MAR 0.5), the paper's hyper-parameters"),
    ("surf-unified", "CASIA-SURF SF-MD baseline: modality dropout, no teacher, no MAR"),
    ("surf-sp", "CASIA-SURF ablation: SP distillation, no MAR"),
    ("surf-mad", "CASIA-SURF ablation: MAD only"),
    ("surf-mar", "CASIA-SURF ablation: MAR only"),
    ("surf-hemis", "CASIA-SURF HeMIS mean/variance fusion with modality dropout"),
];

/// The preset called `name`, if any.
pub fn preset(name: &str) -> Option<TrainConfig> {
    let cfg = match name {
        "demo-teacher" => demo(Stage::Teacher),
        "demo-mmanet" => demo(Stage::Student),
        "demo-unified" => without_teacher(demo(Stage::Student), "demo-unified"),
        "toy-teacher" => toy(Stage::Teacher),
        "toy-mmanet" => toy(Stage::Student),
        "surf-teacher" => surf(Stage::Teacher),
        "surf-mmanet" => surf(Stage::Student),
        "surf-unified" => without_teacher(surf(Stage::Student), "surf-unified"),
        "surf-sp" => {
            let mut c = surf(Stage::Student);
            c.name = "surf-sp".into();
            c.method.distillation = Distillation::Sp;
            c.method.mar = false;
            c
        }
        "surf-mad" => {
            let mut c = surf(Stage::Student);
            c.name = "surf-mad".into();
            c.method.mar = false;
            c
        }
        "surf-mar" => {
            let mut c = surf(Stage::Student);
            c.name = "surf-mar".into();
            c.method.distillation = Distillation::None;
            c.teacher = None;
            c
        }
        "surf-hemis" => {
            let mut c = without_teacher(surf(Stage::Student), "surf-hemis");
            #[allow(irrefutable_let_patterns)] // more model kinds will follow
            if let NetConfig::Cls(m) = &mut c.model {
                m.fusion = ClsFusion::MeanVar { fidelity: Fidelity::Paper };
            }
            c
        }
        _ => return None,
    };
    Some(cfg)
}

fn without_teacher(mut c: TrainConfig, name: &str) -> TrainConfig {
    c.name = name.into();
    c.method.distillation = Distillation::None;
    c.method.mar = false;
    c.teacher = None;
    c
}

/// CASIA-SURF with the reference's settings (mmanet_spec.md §5.1).
fn surf(stage: Stage) -> TrainConfig {
    let name = match stage {
        Stage::Teacher => "surf-teacher",
        Stage::Student => "surf-mmanet",
    };
    TrainConfig {
        name: name.into(),
        seed: 0,
        device: "auto".into(),
        stage,
        epochs: 100,
        skip_zero_lr_epochs: true,
        data: DataConfig {
            dataset: DatasetSpec::Surf {
                root: PathBuf::from("data/CASIA-SURF"),
                train_list: PathBuf::from("train_list.txt"),
                val_list: PathBuf::from("val_private_list.txt"),
                test_list: PathBuf::from("test_private_list.txt"),
                resize: 144,
                crop: 112,
            },
            batch_size: 64,
            threads: 4,
            prefetch: 4,
            train_combos: vec![],
            skip_bad_samples: false,
            class_weighting: Default::default(),
        },
        model: NetConfig::Cls(ClsNetConfig::surf()),
        method: MethodConfig::mmanet_classification(),
        optimizer: OptimizerConfig::reference_sgd(),
        schedule: LrSchedule::reference_classification(),
        eval: EvalConfig { combos: vec![], batch_size: 64, every: 1, bona_fide_label: Some(1) },
        teacher: (stage == Stage::Student).then(|| TeacherConfig {
            checkpoint: PathBuf::from("runs/surf-teacher/checkpoints/best.safetensors"),
        }),
    }
}

/// The demo: synthetic CASIA-SURF-like JPEGs at 48 px, a width-16 net, 2 CPU cores.
fn demo(stage: Stage) -> TrainConfig {
    let mut c = surf(stage);
    c.name = match stage {
        Stage::Teacher => "demo-teacher",
        Stage::Student => "demo-mmanet",
    }
    .into();
    c.device = "auto".into();
    c.epochs = if stage == Stage::Teacher { 6 } else { 10 };
    c.data.dataset = DatasetSpec::SyntheticSurf {
        root: PathBuf::from("data/synthetic-surf"),
        n: 640,
        size: 48,
        resize: 40,
        crop: 32,
    };
    c.data.batch_size = 32;
    c.data.threads = 2;
    c.model = NetConfig::Cls(ClsNetConfig::surf().with_width(16));
    c.method.begin_epoch = 4;
    c.method.mining_start = 1;
    c.optimizer =
        OptimizerConfig::Sgd { lr: 0.02, momentum: 0.9, nesterov: true, weight_decay: 5e-4 };
    c.schedule = LrSchedule::WarmupMultiStep { warmup_epochs: 0, milestones: vec![7], gamma: 0.1 };
    c.skip_zero_lr_epochs = false;
    c.eval.every = 2;
    c.eval.batch_size = 64;
    if let Some(t) = &mut c.teacher {
        t.checkpoint = PathBuf::from("runs/demo-teacher/checkpoints/best.safetensors");
    }
    c
}

/// Seeded Gaussian toy images: runs in seconds; for smoke tests.
fn toy(stage: Stage) -> TrainConfig {
    let mut c = demo(stage);
    c.name = match stage {
        Stage::Teacher => "toy-teacher",
        Stage::Student => "toy-mmanet",
    }
    .into();
    c.epochs = 4;
    c.data.dataset = DatasetSpec::Toy {
        modalities: ModalitySet::surf(),
        shapes: vec![vec![3, 16, 16]; 3],
        noise: vec![0.5, 1.0, 3.0],
        num_classes: 2,
        sizes: [64, 32, 32],
    };
    c.data.batch_size = 16;
    c.model = NetConfig::Cls(ClsNetConfig::surf().with_width(4));
    c.method.begin_epoch = 2;
    c.method.mining_start = 0;
    c.schedule = LrSchedule::Constant;
    c.skip_zero_lr_epochs = false;
    c.eval.every = 1;
    if let Some(t) = &mut c.teacher {
        t.checkpoint = PathBuf::from("runs/toy-teacher/checkpoints/best.safetensors");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_and_round_trips_through_toml() {
        for (name, _) in PRESETS {
            let cfg = preset(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(&cfg.name, name);
            let text = cfg.to_toml();
            let back = TrainConfig::from_toml_str(&text, std::path::Path::new(name)).unwrap();
            assert_eq!(back, cfg, "{name}");
            cfg.check().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(preset("nope").is_none());
    }

    #[test]
    fn surf_presets_carry_the_paper_settings() {
        let c = preset("surf-mmanet").unwrap();
        assert_eq!(
            (c.method.lambda_mad, c.method.lambda_mar, c.method.begin_epoch),
            (30.0, 0.5, 5)
        );
        assert_eq!(c.data.batch_size, 64);
        assert_eq!(c.epochs, 100);
        assert_eq!(c.optimizer, OptimizerConfig::reference_sgd());
        let u = preset("surf-unified").unwrap();
        assert!(!u.method.mar && u.teacher.is_none());
    }
}
