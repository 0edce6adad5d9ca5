//! Configurations shared by the integration tests of this crate.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use mmanet_models::EsaNetConfig;
use mmanet_models::factory::NetConfig;
use mmanet_models::resnet::{BlockKind, ResNetConfig};
use mmanet_train::config::EvalConfig;
use mmanet_train::data_spec::{DataConfig, DatasetSpec};
use mmanet_train::optim::OptimizerConfig;
use mmanet_train::schedule::LrSchedule;
use mmanet_train::{MethodConfig, Stage, TrainConfig};

/// An ESANet small enough for a CPU test (width 8, one block per stage, 5 classes).
pub fn tiny_esanet() -> EsaNetConfig {
    EsaNetConfig {
        encoder: ResNetConfig {
            block: BlockKind::Basic,
            layers: [1, 1, 1, 1],
            in_channels: 3,
            width: 8,
        },
        n_classes: 5,
        decoder_channels: [32, 16, 8],
        decoder_blocks: 1,
        ..EsaNetConfig::nyuv2()
    }
}

/// A tiny segmentation run on the synthetic NYUv2 layout (8 samples of 64x64 under `root`):
/// MAD 4 / MAR 0.2 from epoch 1, mining from epoch 0, constant SGD.
pub fn tiny_segmentation(stage: Stage, root: PathBuf, epochs: usize) -> TrainConfig {
    TrainConfig {
        name: "tiny-seg".into(),
        seed: 3,
        device: "cpu".into(),
        stage,
        epochs,
        skip_zero_lr_epochs: false,
        checkpoint_keep: 0,
        data: DataConfig {
            dataset: DatasetSpec::SyntheticNyuv2(mmanet_data::nyuv2::SyntheticNyuv2Source {
                root,
                n: 8,
                size: [64, 64],
                crop: [64, 64],
                val_fraction: 0.0,
            }),
            batch_size: 4,
            threads: 1,
            prefetch: 2,
            train_combos: vec![],
            skip_bad_samples: false,
            decoded_cache_mb: 0,
            class_weighting: mmanet_train::objective::segmentation::ClassWeighting::None,
            missing: None,
        },
        model: NetConfig::Esanet(tiny_esanet()),
        method: MethodConfig {
            lambda_mad: 4.0,
            lambda_mar: 0.2,
            begin_epoch: 1,
            mining_start: 0,
            ..MethodConfig::mmanet_classification()
        },
        optimizer: OptimizerConfig::Sgd {
            lr: 0.01,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-4,
        },
        schedule: LrSchedule::Constant,
        eval: EvalConfig {
            combos: vec![],
            batch_size: 4,
            every: 1,
            bona_fide_label: None,
            selection: Default::default(),
            select_after: None,
        },
        teacher: None,
        compute: Default::default(),
    }
}
