//! End-to-end training on a tiny seeded data set: teacher, MMANet student, resume, bad configs.

use std::path::Path;

use mmanet_core::{Fidelity, ModalitySet};
use mmanet_models::ClsNetConfig;
use mmanet_models::factory::NetConfig;
use mmanet_train::config::{EvalConfig, TeacherConfig};
use mmanet_train::data_spec::{DataConfig, DatasetSpec};
use mmanet_train::optim::OptimizerConfig;
use mmanet_train::run_dir::RunDir;
use mmanet_train::schedule::LrSchedule;
use mmanet_train::{Distillation, MethodConfig, Silent, Stage, TrainConfig, TrainError, Trainer};
use tch::Tensor;

/// Tiny CASIA-SURF-shaped problem: 3 modalities of 3x16x16, RGB clean, IR noisy.
fn config(stage: Stage, epochs: usize) -> TrainConfig {
    TrainConfig {
        name: "tiny".into(),
        seed: 7,
        device: "cpu".into(),
        stage,
        epochs,
        skip_zero_lr_epochs: false,
        data: DataConfig {
            dataset: DatasetSpec::Toy {
                modalities: ModalitySet::surf(),
                shapes: vec![vec![3, 16, 16]; 3],
                noise: vec![0.5, 1.0, 3.0],
                num_classes: 2,
                sizes: [48, 24, 24],
            },
            batch_size: 8,
            threads: 1,
            prefetch: 2,
            train_combos: vec![],
            skip_bad_samples: false,
            class_weighting: Default::default(),
        },
        model: NetConfig::Cls(ClsNetConfig::surf().with_width(4)),
        method: MethodConfig {
            begin_epoch: 2,
            mining_start: 0,
            lambda_mad: 3.0,
            ..MethodConfig::mmanet_classification()
        },
        optimizer: OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
        },
        schedule: LrSchedule::Constant,
        eval: EvalConfig { combos: vec![], batch_size: 16, every: 1, bona_fide_label: Some(1) },
        teacher: None,
    }
}

fn train_teacher(dir: &Path) -> std::path::PathBuf {
    let run = RunDir::create(dir.join("teacher")).unwrap();
    let cfg = config(Stage::Teacher, 3).check().unwrap();
    let mut t = Trainer::new(cfg, run.clone()).unwrap();
    let summary = t.run(&mut Silent).unwrap();
    assert_eq!(summary.report.rows().len(), 1, "a teacher is scored on the full combination");
    run.best_weights()
}

fn student_config(teacher: &Path, epochs: usize) -> TrainConfig {
    let mut cfg = config(Stage::Student, epochs);
    cfg.teacher = Some(TeacherConfig { checkpoint: teacher.to_path_buf() });
    cfg
}

#[test]
fn teacher_then_mmanet_student() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = train_teacher(dir.path());
    let run = RunDir::create(dir.path().join("student")).unwrap();
    let mut t = Trainer::new(student_config(&teacher, 4).check().unwrap(), run.clone()).unwrap();
    let summary = t.run(&mut Silent).unwrap();

    // Mining after epochs 0 and 1, weak set selected before MAD/MAR switch on at epoch 3.
    let weak = summary.weak_set.expect("weak set mined");
    assert_eq!(weak.len(), 3, "worst pair plus its two singles: {weak:?}");
    assert_eq!(weak[0].count(), 2);
    let h = &t.state().history;
    assert_eq!(h.len(), 4);
    assert!(h[..3].iter().all(|r| r.loss.distill == 0.0 && r.loss.mar == 0.0));
    assert!(h[3].loss.distill > 0.0 && h[3].loss.mar > 0.0, "{:?}", h[3].loss);
    assert!(h.iter().all(|r| r.loss.total.is_finite() && r.val.is_some()));
    assert_eq!(summary.report.rows().len(), 7);
    for f in ["config.toml", "state.json", "metrics.csv", "report.md", "report.json"] {
        assert!(run.root().join(f).exists(), "{f} missing");
    }
    let csv = std::fs::read_to_string(run.metrics()).unwrap();
    assert_eq!(csv.lines().count(), 5);
}

#[test]
fn interrupted_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = train_teacher(dir.path());
    let mut cfg = student_config(&teacher, 4);
    cfg.method.fidelity = Fidelity::ReferenceCode;

    let straight = RunDir::create(dir.path().join("straight")).unwrap();
    let mut a = Trainer::new(cfg.clone().check().unwrap(), straight.clone()).unwrap();
    a.train_epochs(4, &mut Silent).unwrap();

    let split = RunDir::create(dir.path().join("split")).unwrap();
    let mut b = Trainer::new(cfg.check().unwrap(), split.clone()).unwrap();
    assert_eq!(b.train_epochs(2, &mut Silent).unwrap(), 2);
    drop(b);
    let mut b = Trainer::resume(split.clone()).unwrap();
    assert_eq!(b.state().next_epoch, 2);
    assert_eq!(b.train_epochs(10, &mut Silent).unwrap(), 2);

    assert_eq!(a.state().weak_set, b.state().weak_set);
    let read = |p: &Path| {
        let mut v = Tensor::read_safetensors(p).unwrap();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (wa, wb) = (read(&straight.last_weights()), read(&split.last_weights()));
    assert_eq!(wa.len(), wb.len());
    for ((na, ta), (nb, tb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after resume");
    }
}

#[test]
fn unified_baseline_needs_no_teacher_and_distillation_needs_one() {
    let mut cfg = config(Stage::Student, 2);
    cfg.method.distillation = Distillation::None;
    cfg.method.mar = false;
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(cfg.check().unwrap(), RunDir::create(dir.path()).unwrap()).unwrap();
    let s = t.run(&mut Silent).unwrap();
    assert!(s.weak_set.is_none());
    assert!(t.state().history.iter().all(|r| r.loss.distill == 0.0 && r.loss.mar == 0.0));

    let err = config(Stage::Student, 2).check().unwrap_err();
    assert!(err.to_string().contains("teacher.checkpoint"), "{err}");
}

#[test]
fn bad_configs_name_the_field() {
    let good = config(Stage::Teacher, 2).to_toml();
    let unknown = good.replacen("seed = 7", "seed = 7\nsede = 3", 1);
    let err = TrainConfig::from_toml_str(&unknown, Path::new("x.toml")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("x.toml") && msg.contains("sede"), "{msg}");

    let mut c = config(Stage::Teacher, 2);
    c.data.batch_size = 0;
    assert!(c.check().unwrap_err().to_string().contains("data.batch_size"));
    let mut c = config(Stage::Teacher, 2);
    c.device = "tpu".into();
    assert!(c.check().unwrap_err().to_string().contains("device"));
    let mut c = config(Stage::Student, 3);
    c.method.distillation = Distillation::None;
    c.method.mining_start = 5;
    assert!(c.check().unwrap_err().to_string().contains("method.mining_start"));

    let mut c = config(Stage::Teacher, 2);
    c.set("method.fidelity=reference-code").unwrap();
    c.set("epochs=9").unwrap();
    assert_eq!((c.method.fidelity, c.epochs), (Fidelity::ReferenceCode, 9));
    assert!(matches!(c.set("epochz=1"), Err(TrainError::Config { .. })));
    let round = TrainConfig::from_toml_str(&c.to_toml(), Path::new("y.toml")).unwrap();
    assert_eq!(round, c);
}
