//! A user's own data through the whole method: a CSV manifest of PNG images and inline vectors
//! with modalities really missing trains a teacher (on the complete samples) and an MMANet
//! student, and `predict` reads raw files through the run's input spec.

use std::path::Path;

use mmanet_core::ModalitySet;
use mmanet_models::factory::NetConfig;
use mmanet_models::{BranchConfig, GenericFusion, GenericNetConfig};
use mmanet_train::data_spec::DatasetSpec;
use mmanet_train::predict::{input_spec_for_run, predict};
use mmanet_train::run_dir::RunDir;
use mmanet_train::{Silent, Stage, TrainConfig, Trainer};

/// 60 samples of 2 classes: the class shows in the image brightness and the vector's sign;
/// 20 % lack the image, 10 % the vector.
fn write_manifest(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let mut csv = String::from("id,label,camera,imu\n");
    for i in 0..60 {
        let (label, v) = if i % 2 == 0 { ("calm", 40u8) } else { ("busy", 210u8) };
        let cam = if i % 5 == 1 {
            String::new()
        } else {
            let p = format!("img/{i}.png");
            image::RgbImage::from_pixel(8, 8, image::Rgb([v, v, v / 2 + (i as u8 % 7)]))
                .save(dir.join(&p))
                .unwrap();
            p
        };
        let s = if i % 2 == 0 { -1.0 } else { 1.0 };
        let imu = if i % 10 == 4 { String::new() } else { format!("{} {} {}", s, s * 0.5, i % 3) };
        csv += &format!("s{i},{label},{cam},{imu}\n");
    }
    let path = dir.join("own.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

fn config(manifest: &Path, stage: Stage) -> TrainConfig {
    let toml = format!(
        r#"
[data.dataset]
kind = "manifest"
path = "{}"
split = {{ val = 0.2, test = 0.2, seed = 1 }}

[[data.dataset.modalities]]
name = "camera"
decoder = {{ kind = "image", size = [8, 8] }}

[[data.dataset.modalities]]
name = "imu"
decoder = {{ kind = "vector", len = 3 }}
"#,
        manifest.display()
    );
    let table: toml::Table = toml::from_str(&toml).unwrap();
    let dataset: DatasetSpec = table["data"]["dataset"].clone().try_into().unwrap();
    let preset = if stage == Stage::Teacher { "mfeat3-teacher" } else { "mfeat3-mmanet" };
    let mut cfg = mmanet_train::presets::preset(preset).unwrap();
    cfg.name = format!("own-{stage:?}");
    cfg.device = "cpu".into();
    cfg.epochs = 4;
    cfg.data.dataset = dataset;
    cfg.data.batch_size = 8;
    cfg.method.begin_epoch = 2;
    cfg.method.mining_start = 0;
    cfg.eval.every = 1;
    cfg.model = NetConfig::Generic(GenericNetConfig {
        modalities: ModalitySet::from_names(["camera", "imu"]).unwrap(),
        branches: vec![
            BranchConfig::SmallCnn { in_channels: 3, channels: vec![4, 8], out_dim: 8 },
            BranchConfig::Mlp { in_dim: 3, hidden: vec![8], out_dim: 8 },
        ],
        trunk_hidden: vec![16],
        n_classes: 2,
        fusion: GenericFusion::Concat,
    });
    cfg
}

#[test]
fn a_manifest_with_missing_modalities_trains_teacher_and_student_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path());
    let teacher = RunDir::create(dir.path().join("teacher")).unwrap();
    Trainer::new(config(&manifest, Stage::Teacher).check().unwrap(), teacher.clone())
        .unwrap()
        .run(&mut Silent)
        .unwrap();
    let mut cfg = config(&manifest, Stage::Student);
    cfg.teacher = Some(mmanet_train::config::TeacherConfig { checkpoint: teacher.last_weights() });
    let valid = cfg.check().unwrap();
    let run = RunDir::create(dir.path().join("student")).unwrap();
    let summary = Trainer::new(valid.clone(), run.clone()).unwrap().run(&mut Silent).unwrap();
    let labels: Vec<&str> = summary.report.rows().iter().map(|r| r.combination.as_str()).collect();
    assert_eq!(labels, ["C", "I", "C+I"]);
    let acc = summary.report.value("C+I", "accuracy").unwrap();
    assert!(acc > 0.5, "above chance with both modalities: {acc}");
    assert!(summary.weak_set.is_some());
    // Both tables in every report file: the test split has samples without the camera.
    let csv = std::fs::read_to_string(run.report("csv")).unwrap();
    assert!(csv.starts_with("combination,accuracy,samples\n"), "{csv}");
    assert!(csv.contains("\nobserved:I,") && csv.contains("\nobserved:all,"), "{csv}");
    let md = std::fs::read_to_string(run.report("md")).unwrap();
    assert!(md.contains("| **All (as observed)** |"), "{md}");
    let json = std::fs::read_to_string(run.report("json")).unwrap();
    assert!(json.contains("\"observed\""), "{json}");

    // Prediction from a raw image file alone and from a vector file alone.
    let spec = input_spec_for_run(&valid, run.root()).unwrap();
    assert_eq!(spec.classes, ["busy", "calm"]);
    let img = dir.path().join("img/2.png");
    let p = predict(&valid, &spec, &run.last_weights(), &[("camera".into(), img)]).unwrap();
    assert_eq!(p.present, ["camera"]);
    assert!((p.probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    let v = dir.path().join("imu.txt");
    std::fs::write(&v, "-1 -0.5 2").unwrap();
    let q = predict(&valid, &spec, &run.last_weights(), &[("imu".into(), v)]).unwrap();
    assert_eq!(q.present, ["imu"]);
}

#[test]
fn a_run_reads_its_manifest_once_and_skip_bad_samples_leaves_bad_lines_out() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path());
    // Lines 62-64: a file that does not exist, a duplicate id, a wrong column count.
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text += "s60,calm,img/none.png,1 1 1\ns0,busy,img/2.png,1 1 1\ns61,busy,img/2.png\n";
    std::fs::write(&manifest, text).unwrap();

    let cfg = config(&manifest, Stage::Teacher);
    let run = RunDir::create(dir.path().join("strict")).unwrap();
    let Err(err) =
        Trainer::new(cfg.clone().check().unwrap(), run).and_then(|mut t| t.run(&mut Silent))
    else {
        panic!("a bad line fails the run without skip_bad_samples");
    };
    let err = err.to_string();
    assert!(err.contains("own.csv:62") && err.contains("column `camera`"), "{err}");

    let mut cfg = cfg;
    cfg.data.skip_bad_samples = true;
    let valid = cfg.check().unwrap();
    let DatasetSpec::Manifest(source) = &valid.data.dataset else { unreachable!() };
    let cache = source.cache.clone();
    let check = mmanet_train::data_check::check_data_config(&valid.data, valid.seed).unwrap();
    let lines: Vec<&str> =
        check.bad_lines.iter().map(|l| l.rsplit("own.csv:").next().unwrap()).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("62: column `camera`"), "{lines:?}");
    assert!(lines[1].starts_with("63: column `id`: `s0` already on line 2"), "{lines:?}");
    assert!(lines[2].starts_with("64: 3 columns, the header has 4"), "{lines:?}");
    let samples: usize = check.splits.iter().map(|s| s.samples).sum();
    assert_eq!(samples, 60, "the good lines stay");
    assert_eq!(cache.reads(), 1);

    let run = RunDir::create(dir.path().join("skip")).unwrap();
    let summary = Trainer::new(valid, run).unwrap().run(&mut Silent).unwrap();
    assert!(summary.report.value("C+I", "accuracy").is_some());
    // Opening three splits several times, the input spec and the test report: one read.
    assert_eq!(cache.reads(), 1, "the manifest is read once per run");
}
