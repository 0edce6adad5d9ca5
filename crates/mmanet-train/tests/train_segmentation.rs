//! End-to-end segmentation: a tiny ESANet teacher and MMANet student on the synthetic NYUv2
//! layout (multi-scale CE, segmentation MAD, mIoU mining, auxi_decoder MAR).

use std::path::PathBuf;

use mmanet_core::Fidelity;
use mmanet_models::EsaNetConfig;
use mmanet_models::factory::NetConfig;
use mmanet_models::resnet::{BlockKind, ResNetConfig};
use mmanet_train::config::{EvalConfig, TeacherConfig};
use mmanet_train::data_spec::{DataConfig, DatasetSpec};
use mmanet_train::optim::OptimizerConfig;
use mmanet_train::run_dir::RunDir;
use mmanet_train::schedule::LrSchedule;
use mmanet_train::{MethodConfig, Silent, Stage, TrainConfig, Trainer};

fn tiny_esanet() -> EsaNetConfig {
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

fn config(stage: Stage, root: PathBuf, epochs: usize) -> TrainConfig {
    TrainConfig {
        name: "tiny-seg".into(),
        seed: 3,
        device: "cpu".into(),
        stage,
        epochs,
        skip_zero_lr_epochs: false,
        checkpoint_keep: 0,
        data: DataConfig {
            dataset: DatasetSpec::SyntheticNyuv2 { root, n: 8, size: [64, 64], crop: [64, 64] },
            batch_size: 4,
            threads: 1,
            prefetch: 2,
            train_combos: vec![],
            skip_bad_samples: false,
            class_weighting: mmanet_train::segmentation::ClassWeighting::None,
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
        eval: EvalConfig { combos: vec![], batch_size: 4, every: 1, bona_fide_label: None },
        teacher: None,
        compute: Default::default(),
    }
}

#[test]
fn esanet_teacher_then_student_with_mad_and_mar() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let trun = RunDir::create(dir.path().join("teacher")).unwrap();
    let mut t =
        Trainer::new(config(Stage::Teacher, data.clone(), 1).check().unwrap(), trun.clone())
            .unwrap();
    let s = t.run(&mut Silent).unwrap();
    assert_eq!(s.report.metrics(), ["miou", "pixel_acc"]);

    for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
        let mut cfg = config(Stage::Student, data.clone(), 3);
        cfg.method.fidelity = fidelity;
        cfg.teacher = Some(TeacherConfig { checkpoint: trun.last_weights() });
        let run = RunDir::create(dir.path().join(format!("student-{fidelity}"))).unwrap();
        let mut st = Trainer::new(cfg.check().unwrap(), run).unwrap();
        let s = st.run(&mut Silent).unwrap();
        let weak = s.weak_set.expect("weak set mined");
        assert_eq!(weak.len(), 1, "segmentation weak set is one single modality: {weak:?}");
        assert_eq!(weak[0].count(), 1);
        let h = &st.state().history;
        assert!(h[..2].iter().all(|r| r.loss.distill == 0.0 && r.loss.mar == 0.0));
        assert!(h[2].loss.distill > 0.0, "{fidelity}: {:?}", h[2].loss);
        assert!(h.iter().all(|r| r.loss.total.is_finite()));
        assert_eq!(s.report.rows().len(), 3, "R, D, R+D");
    }
}
