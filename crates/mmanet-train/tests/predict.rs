//! `predict` from any subset of modality files, on a tiny synthetic CASIA-SURF run.

use mmanet_core::{Modality, ModalitySet};
use mmanet_models::ClsNetConfig;
use mmanet_models::factory::NetConfig;
use mmanet_train::config::EvalConfig;
use mmanet_train::data_spec::{DataConfig, DatasetSpec};
use mmanet_train::optim::OptimizerConfig;
use mmanet_train::predict::predict;
use mmanet_train::run_dir::RunDir;
use mmanet_train::schedule::LrSchedule;
use mmanet_train::{Distillation, MethodConfig, Silent, Stage, TrainConfig, Trainer};

#[test]
fn predicts_from_any_subset_of_image_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = TrainConfig {
        name: "tiny-surf".into(),
        seed: 1,
        device: "cpu".into(),
        stage: Stage::Student,
        epochs: 1,
        skip_zero_lr_epochs: false,
        checkpoint_keep: 0,
        data: DataConfig {
            dataset: DatasetSpec::SyntheticSurf {
                root: data.clone(),
                n: 8,
                size: 20,
                resize: 16,
                crop: 12,
            },
            batch_size: 4,
            threads: 1,
            prefetch: 1,
            train_combos: vec![],
            skip_bad_samples: false,
            class_weighting: Default::default(),
        },
        model: NetConfig::Cls(ClsNetConfig::surf().with_width(4)),
        method: MethodConfig {
            distillation: Distillation::None,
            mar: false,
            ..MethodConfig::mmanet_classification()
        },
        optimizer: OptimizerConfig::reference_sgd(),
        schedule: LrSchedule::Constant,
        eval: EvalConfig { combos: vec![], batch_size: 4, every: 1, bona_fide_label: Some(1) },
        teacher: None,
        compute: Default::default(),
    };
    assert_eq!(cfg.model.modalities(), ModalitySet::surf());
    let run = RunDir::create(dir.path().join("run")).unwrap();
    let valid = cfg.check().unwrap();
    Trainer::new(valid.clone(), run.clone()).unwrap().run(&mut Silent).unwrap();

    // The first test sample's files.
    let list = std::fs::read_to_string(data.join("test_private_list.txt")).unwrap();
    let f: Vec<&str> = list.lines().next().unwrap().split(' ').collect();
    let file = |i: usize| data.join(f[i]);

    let all = predict(
        &valid,
        &run.last_weights(),
        &[(Modality::Rgb, file(0)), (Modality::Depth, file(1)), (Modality::Ir, file(2))],
    )
    .unwrap();
    assert_eq!(all.present, [Modality::Rgb, Modality::Depth, Modality::Ir]);
    assert_eq!(all.probabilities.len(), 2);
    assert!((all.probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-9);

    let rgb = predict(&valid, &run.last_weights(), &[(Modality::Rgb, file(0))]).unwrap();
    assert_eq!(rgb.present, [Modality::Rgb]);
    assert!((rgb.probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-9);

    let err = predict(&valid, &run.last_weights(), &[(Modality::Audio, file(0))]).unwrap_err();
    assert!(err.to_string().contains("no modality"), "{err}");
    let err = predict(&valid, &run.last_weights(), &[(Modality::Rgb, data.join("nope.jpg"))])
        .unwrap_err();
    assert!(err.to_string().contains("nope.jpg"), "{err}");
}
