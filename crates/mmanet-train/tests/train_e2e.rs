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

/// libtorch's random generator is global to the process and the tests of this file run on
/// parallel threads: runs compared for exact equality must not interleave their weight
/// initialisations with another test's draws, so every test here holds this lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tiny CASIA-SURF-shaped problem: 3 modalities of 3x16x16, RGB clean, IR noisy.
fn config(stage: Stage, epochs: usize) -> TrainConfig {
    TrainConfig {
        name: "tiny".into(),
        seed: 7,
        device: "cpu".into(),
        stage,
        epochs,
        skip_zero_lr_epochs: false,
        checkpoint_keep: 0,
        data: DataConfig {
            dataset: DatasetSpec::Toy(mmanet_data::toy::ToySource {
                modalities: ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set"),
                shapes: vec![vec![3, 16, 16]; 3],
                noise: vec![0.5, 1.0, 3.0],
                num_classes: 2,
                sizes: [48, 24, 24],
            }),
            batch_size: 8,
            threads: 1,
            prefetch: 2,
            train_combos: vec![],
            skip_bad_samples: false,
            decoded_cache_mb: 0,
            class_weighting: Default::default(),
            missing: None,
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
        eval: EvalConfig {
            combos: vec![],
            batch_size: 16,
            every: 1,
            bona_fide_label: Some(1),
            selection: Default::default(),
            select_after: None,
        },
        teacher: None,
        compute: Default::default(),
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
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let teacher = train_teacher(dir.path());
    let run = RunDir::create(dir.path().join("student")).unwrap();
    let mut t = Trainer::new(student_config(&teacher, 4).check().unwrap(), run.clone()).unwrap();
    let summary = t.run(&mut Silent).unwrap();

    // Mining after epochs 0 and 1, weak set selected before MAD/MAR switch on at epoch 3.
    let weak = summary.weak_set.expect("weak set mined");
    assert_eq!(weak.len(), 3, "worst pair plus its two singles: {weak:?}");
    assert_eq!(weak[0].split('+').count(), 2, "{weak:?}");
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
    let _serial = serial();
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
    let _serial = serial();
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
    let _serial = serial();
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
    c.set("compute.amp=true").unwrap();
    c.set("compute.channels_last=true").unwrap();
    assert!(c.compute.amp && c.compute.channels_last);
    let err = c.clone().set("compute.bf16=true").unwrap_err().to_string();
    assert!(err.contains("bf16"), "{err}");
    let round = TrainConfig::from_toml_str(&c.to_toml(), Path::new("y.toml")).unwrap();
    assert_eq!(round, c);
    // A decoded-image cache the reader cannot keep.
    let mut c = config(Stage::Teacher, 2);
    c.data.decoded_cache_mb = 64;
    let err = c.check().unwrap_err().to_string();
    assert!(err.contains("data.decoded_cache_mb") && err.contains("toy"), "{err}");
}

/// `data.decoded_cache_mb` changes nothing but speed: a teacher trained on the synthetic
/// CASIA-SURF files with the cache has bit-identical weights to one without.
#[test]
fn the_decoded_image_cache_leaves_training_unchanged() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut weights = Vec::new();
    for cache_mb in [0, 64] {
        let mut cfg = config(Stage::Teacher, 2);
        cfg.data.dataset = DatasetSpec::SyntheticSurf(mmanet_data::surf::SyntheticSurfSource {
            root: dir.path().join("surf"),
            n: 16,
            size: 24,
            resize: 20,
            crop: 16,
        });
        cfg.data.threads = 2;
        cfg.data.decoded_cache_mb = cache_mb;
        let run = RunDir::create(dir.path().join(format!("run-{cache_mb}"))).unwrap();
        Trainer::new(cfg.check().unwrap(), run.clone()).unwrap().run(&mut Silent).unwrap();
        let mut w = tch::Tensor::read_safetensors(run.last_weights()).unwrap();
        w.sort_by(|a, b| a.0.cmp(&b.0));
        weights.push(w);
    }
    assert!(!weights[0].is_empty());
    assert_eq!(weights[0].len(), weights[1].len());
    for ((n, a), (m, b)) in weights[0].iter().zip(&weights[1]) {
        assert_eq!(n, m);
        assert!(a.equal(b), "{n} differs");
    }
}

/// Stops after a fixed number of steps (what the app does on Ctrl-C).
struct StopAfter(usize, usize);

impl mmanet_train::Observer for StopAfter {
    fn on_step(&mut self, _e: usize, _s: usize, _l: &mmanet_train::state::LossBreakdown) {
        self.1 += 1;
    }
    fn should_stop(&self) -> bool {
        self.1 >= self.0
    }
}

#[test]
fn stop_mid_epoch_then_resume_is_exact() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let teacher = train_teacher(dir.path());
    let cfg = student_config(&teacher, 4);

    let straight = RunDir::create(dir.path().join("straight")).unwrap();
    Trainer::new(cfg.clone().check().unwrap(), straight.clone())
        .unwrap()
        .train_epochs(4, &mut Silent)
        .unwrap();

    // 6 batches per epoch: stop in the middle of epoch 3 (after 15 steps).
    let split = RunDir::create(dir.path().join("split")).unwrap();
    let mut t = Trainer::new(cfg.check().unwrap(), split.clone()).unwrap();
    let err = t.train_epochs(4, &mut StopAfter(15, 0)).unwrap_err();
    assert!(matches!(err, TrainError::Interrupted { epoch: 2, step: 3 }), "{err}");
    drop(t);
    let mut t = Trainer::resume(split.clone()).unwrap();
    assert_eq!(t.state().partial.as_ref().map(|p| (p.epoch, p.steps)), Some((2, 3)));
    t.train_epochs(10, &mut Silent).unwrap();

    let read = |p: &Path| {
        let mut v = Tensor::read_safetensors(p).unwrap();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    for ((na, ta), (_, tb)) in
        read(&straight.last_weights()).iter().zip(&read(&split.last_weights()))
    {
        assert!(ta.equal(tb), "{na} differs after a mid-epoch resume");
    }
}

#[test]
fn nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    let _serial = serial();
    let mut cfg = config(Stage::Teacher, 4);
    // Epochs 0 and 1 train normally; from epoch 2 the rate is multiplied by 1e12.
    cfg.schedule =
        LrSchedule::WarmupMultiStep { warmup_epochs: 0, milestones: vec![1], gamma: 1e12 };
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path()).unwrap();
    let mut t = Trainer::new(cfg.check().unwrap(), run.clone()).unwrap();
    let err = t.run(&mut Silent).unwrap_err();
    assert!(matches!(err, TrainError::NonFinite { epoch: 2, .. }), "{err}");
    assert!(err.to_string().contains("non-finite loss"), "{err}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.state()).unwrap()).unwrap();
    assert_eq!(state["next_epoch"], 2);
    for (name, w) in Tensor::read_safetensors(run.last_weights()).unwrap() {
        assert!(
            w.to_kind(tch::Kind::Double).isfinite().all().int64_value(&[]) == 1,
            "{name} is not finite in the kept checkpoint"
        );
    }
}

#[test]
fn missing_teacher_checkpoint_and_corrupt_config_are_clear_errors() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-teacher.safetensors");
    let cfg = student_config(&missing, 2).check().unwrap();
    let err = Trainer::new(cfg, RunDir::create(dir.path().join("s")).unwrap()).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("no-teacher.safetensors") && msg.contains("not found"), "{msg}");

    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "name = \"x\"\nseed = [unclosed\n").unwrap();
    let msg = TrainConfig::from_toml_path(&path).unwrap_err().to_string();
    assert!(msg.contains("broken.toml") && msg.contains("line 2"), "{msg}");
    let msg = TrainConfig::from_toml_path(&dir.path().join("absent.toml")).unwrap_err().to_string();
    assert!(msg.contains("absent.toml"), "{msg}");
}

#[test]
fn run_folder_holds_log_weak_set_and_kept_checkpoints() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let teacher = train_teacher(dir.path());
    let mut cfg = student_config(&teacher, 4);
    cfg.checkpoint_keep = 2;
    let run = RunDir::create(dir.path().join("s")).unwrap();
    Trainer::new(cfg.check().unwrap(), run.clone()).unwrap().run(&mut Silent).unwrap();
    let weak: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.weak_set()).unwrap()).unwrap();
    assert_eq!(weak["weak_set"].as_array().unwrap().len(), 3);
    let log = std::fs::read_to_string(run.log()).unwrap();
    assert_eq!(log.lines().filter(|l| l.starts_with("epoch ")).count(), 4);
    assert!(
        !run.epoch_weights(1).exists()
            && run.epoch_weights(2).exists()
            && run.epoch_weights(3).exists()
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.report("json")).unwrap()).unwrap();
    assert_eq!(report["task"], "classification");
    assert_eq!(report["results"][0]["combinations"].as_array().unwrap().len(), 7);
}

#[test]
fn teacher_trained_on_modality_subsets_masks_and_loads_as_a_teacher() {
    let _serial = serial();
    // The CeFA reference trains its teacher on R, D, I and R+D+I (1/4 each).
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Stage::Teacher, 1);
    cfg.data.train_combos = ["R", "D", "I", "R+D+I"].iter().map(|s| s.parse().unwrap()).collect();
    let run = RunDir::create(dir.path().join("t")).unwrap();
    let mut t = Trainer::new(cfg.check().unwrap(), run.clone()).unwrap();
    t.run(&mut Silent).unwrap();
    // It is a masked network: with only R present, changing the IR input changes nothing.
    let x: Vec<Tensor> =
        (0..3).map(|_| Tensor::randn([2, 3, 16, 16], tch::kind::FLOAT_CPU)).collect();
    let mask = Tensor::from_slice(&[1f32, 0., 0., 1., 0., 0.]).view([2, 3]);
    let mut y = x.iter().map(Tensor::shallow_clone).collect::<Vec<_>>();
    y[2] = Tensor::randn([2, 3, 16, 16], tch::kind::FLOAT_CPU);
    let a = t.net().forward_t(&x, &mask, false).logits;
    let b = t.net().forward_t(&y, &mask, false).logits;
    assert!(a.allclose(&b, 1e-6, 1e-6, false));
    // And a student distils from it.
    let student = student_config(&run.last_weights(), 1).check().unwrap();
    Trainer::new(student, RunDir::create(dir.path().join("s")).unwrap()).unwrap();
}
