//! Simulated missingness (`data.missing`) through training: the teacher sees complete samples
//! only, the incomplete samples are listed in `missing.json`, and every combination is scored on
//! the test samples that have its modalities.

use mmanet_data::missing::MissingConfig;
use mmanet_train::presets::preset;
use mmanet_train::run_dir::RunDir;
use mmanet_train::trainer::MISSING_FILE;
use mmanet_train::{Distillation, Silent, Trainer};

fn with_missing(name: &str, rate: f64, epochs: usize) -> mmanet_train::TrainConfig {
    let mut cfg = preset(name).unwrap();
    cfg.device = "cpu".into();
    cfg.epochs = epochs;
    cfg.data.missing = Some(MissingConfig {
        rate,
        seed: 5,
        splits: vec![mmanet_data::Split::Train, mmanet_data::Split::Val, mmanet_data::Split::Test],
    });
    cfg
}

#[test]
fn teacher_trains_on_complete_samples_and_the_pattern_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_missing("toy-teacher", 0.5, 1);
    // The config round-trips through TOML with its missingness.
    let text = cfg.to_toml();
    assert!(text.contains("[data.missing]"), "{text}");
    let run = RunDir::create(dir.path().join("teacher")).unwrap();
    Trainer::new(cfg.check().unwrap(), run.clone()).unwrap().run(&mut Silent).unwrap();
    let missing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.root().join(MISSING_FILE)).unwrap())
            .unwrap();
    for split in ["train", "val", "test"] {
        let n = missing[split]["samples"].as_u64().unwrap() as usize;
        let rows = missing[split]["incomplete"].as_array().unwrap();
        assert_eq!(rows.len(), (n as f64 * 0.5).round() as usize, "{split}");
        for r in rows {
            let a = r["available"].as_str().unwrap();
            assert!(!a.is_empty() && a != "R+D+I", "{split}: {a}");
        }
    }
}

#[test]
fn a_teacher_without_enough_complete_samples_is_refused_with_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_missing("toy-teacher", 0.95, 1);
    let run = RunDir::create(dir.path().join("teacher")).unwrap();
    let err = Trainer::new(cfg.check().unwrap(), run).err().expect("refused").to_string();
    assert!(err.contains("complete samples only") && err.contains("data.train_combos"), "{err}");
    assert!(err.contains("3 of the 64 training samples"), "{err}");
}

#[test]
fn student_scores_each_combination_on_the_samples_that_have_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = with_missing("toy-unified", 0.3, 2);
    cfg.method.distillation = Distillation::None;
    let run = RunDir::create(dir.path().join("student")).unwrap();
    let summary = Trainer::new(cfg.check().unwrap(), run).unwrap().run(&mut Silent).unwrap();
    let labels: Vec<&str> = summary.report.rows().iter().map(|r| r.combination.as_str()).collect();
    assert_eq!(labels, ["R", "D", "I", "R+D", "R+I", "D+I", "R+D+I"]);
    assert!(summary.report.rows().iter().all(|r| r.values.iter().all(|v| v.is_finite())));
}

#[test]
fn mmanet_student_distils_on_the_complete_rows_of_incomplete_data() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = RunDir::create(dir.path().join("teacher")).unwrap();
    let tcfg = with_missing("toy-teacher", 0.3, 1);
    Trainer::new(tcfg.check().unwrap(), teacher.clone()).unwrap().run(&mut Silent).unwrap();
    let mut cfg = with_missing("toy-mmanet", 0.3, 4);
    cfg.teacher = Some(mmanet_train::config::TeacherConfig { checkpoint: teacher.last_weights() });
    let run = RunDir::create(dir.path().join("student")).unwrap();
    let mut t = Trainer::new(cfg.check().unwrap(), run).unwrap();
    t.run(&mut Silent).unwrap();
    let h = &t.state().history;
    // MAD switches on after begin_epoch (2) and stays finite with 30 % incomplete samples.
    assert!(h[3].loss.distill > 0.0 && h[3].loss.distill.is_finite(), "{:?}", h[3].loss);
    assert!(h.iter().all(|r| r.loss.total.is_finite()));
}

#[test]
fn data_check_counts_the_missingness_patterns_per_split() {
    let cfg = with_missing("toy-teacher", 0.25, 1);
    let s = mmanet_train::data_check::check_data_config(&cfg.data, cfg.seed).unwrap();
    for summary in &s.splits {
        let total: usize = summary.patterns.values().sum();
        assert_eq!(total, summary.samples);
        let complete = summary.patterns.get("R+D+I").copied().unwrap_or(0);
        assert_eq!(complete, summary.samples - (summary.samples as f64 * 0.25).round() as usize);
        assert!(summary.patterns.len() > 1, "{:?}", summary.patterns);
    }
}

/// `compute.sync_batchnorm` is accepted on incomplete training data (the cross-rank form of
/// the BatchNorm rule is `crates/mmanet/tests/distributed.rs`) and inert in one process: the
/// same weights as without it.
#[test]
fn sync_batchnorm_on_incomplete_training_data_is_inert_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let weights = |sync: bool| {
        let mut cfg = with_missing("toy-unified", 0.3, 1);
        cfg.compute.sync_batchnorm = sync;
        let run = RunDir::create(dir.path().join(format!("sync-{sync}"))).unwrap();
        Trainer::new(cfg.check().unwrap(), run.clone()).unwrap().run(&mut Silent).unwrap();
        tch::Tensor::read_safetensors(run.root().join("checkpoints/last.safetensors")).unwrap()
    };
    let (with, without) = (weights(true), weights(false));
    let without: std::collections::HashMap<_, _> = without.into_iter().collect();
    assert!(!with.is_empty() && with.len() == without.len());
    for (name, a) in &with {
        assert!(a.equal(&without[name]), "{name} differs");
    }
}
