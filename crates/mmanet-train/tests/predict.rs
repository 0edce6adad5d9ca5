//! `predict` from any subset of modality files: a tiny synthetic CASIA-SURF run (images), a
//! tiny mfeat run (standardised text features) and a tiny synthetic NYUv2 run (label PNG).

mod common;

use std::path::Path;

use mmanet_core::ModalitySet;
use mmanet_data::Sample;
use mmanet_data::input_spec::Decoder;
use mmanet_models::ClsNetConfig;
use mmanet_models::factory::NetConfig;
use mmanet_train::config::EvalConfig;
use mmanet_train::data_spec::{DataConfig, DatasetSpec, Split};
use mmanet_train::evaluate::load_for_eval;
use mmanet_train::model_spec::ModelSpecExt;
use mmanet_train::optim::OptimizerConfig;
use mmanet_train::predict::{
    INPUT_SPEC_FILE, input_spec_for_run, load_input_spec, predict, predict_segmentation,
};
use mmanet_train::run_dir::RunDir;
use mmanet_train::schedule::LrSchedule;
use mmanet_train::{Distillation, MethodConfig, Silent, Stage, TrainConfig, Trainer, ValidConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// Test sample 0 as evaluation reads it.
fn first_test_sample(valid: &ValidConfig) -> Sample {
    let test = valid.data.dataset.open(Split::Test, valid.seed).unwrap();
    test.get(0, &mut ChaCha8Rng::seed_from_u64(0)).unwrap()
}

/// The network's logits on `sample` with every modality present, as evaluation computes them.
fn evaluation_logits(valid: &ValidConfig, weights: &Path, sample: &Sample) -> Tensor {
    let (_vs, net) = load_for_eval(valid, weights).unwrap();
    let xs: Vec<Tensor> = sample
        .inputs
        .iter()
        .map(|x| Tensor::from_slice(&x.data).view(x.shape.as_slice()).unsqueeze(0))
        .collect();
    let mask = Tensor::ones([1, xs.len() as i64], (Kind::Float, tch::Device::Cpu));
    tch::no_grad(|| net.forward_t(&xs, &mask, false)).logits
}

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
            dataset: DatasetSpec::SyntheticSurf(mmanet_data::surf::SyntheticSurfSource {
                root: data.clone(),
                n: 8,
                size: 20,
                resize: 16,
                crop: 12,
            }),
            batch_size: 4,
            threads: 1,
            prefetch: 1,
            train_combos: vec![],
            skip_bad_samples: false,
            decoded_cache_mb: 0,
            class_weighting: Default::default(),
            missing: None,
        },
        model: NetConfig::Cls(ClsNetConfig::surf().with_width(4)),
        method: MethodConfig {
            distillation: Distillation::None,
            mar: false,
            ..MethodConfig::mmanet_classification()
        },
        optimizer: OptimizerConfig::reference_sgd(),
        schedule: LrSchedule::Constant,
        eval: EvalConfig {
            combos: vec![],
            batch_size: 4,
            every: 1,
            bona_fide_label: Some(1),
            selection: Default::default(),
            select_after: None,
        },
        teacher: None,
        compute: Default::default(),
    };
    assert_eq!(
        cfg.model.modalities(),
        ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set")
    );
    let run = RunDir::create(dir.path().join("run")).unwrap();
    let valid = cfg.check().unwrap();
    Trainer::new(valid.clone(), run.clone()).unwrap().run(&mut Silent).unwrap();

    // The first test sample's files.
    let list = std::fs::read_to_string(data.join("test_private_list.txt")).unwrap();
    let f: Vec<&str> = list.lines().next().unwrap().split(' ').collect();
    let file = |i: usize| data.join(f[i]);
    // The trainer wrote the input spec: CASIA-SURF's test transform as data.
    assert!(run.root().join(INPUT_SPEC_FILE).is_file());
    let spec = input_spec_for_run(&valid, run.root()).unwrap();
    assert_eq!(spec.classes, ["attack", "real"]);
    assert!(spec.modalities.iter().all(|m| matches!(
        m.decoder,
        Decoder::Image { size: Some([s, t]), .. } if s == t
    )));

    let all = predict(
        &valid,
        &spec,
        &run.last_weights(),
        &[
            ("rgb".to_string(), file(0)),
            ("depth".to_string(), file(1)),
            ("ir".to_string(), file(2)),
        ],
    )
    .unwrap();
    assert_eq!(all.present, ["rgb", "depth", "ir"]);
    assert_eq!(all.probabilities.len(), 2);
    assert!((all.probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    // The spec's decoders give what evaluation gives: the reader's tensors of that sample.
    let logits = evaluation_logits(&valid, &run.last_weights(), &first_test_sample(&valid));
    let want = Vec::<f64>::try_from(logits.softmax(1, Kind::Double).view([-1])).unwrap();
    let diff = all.probabilities.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(diff < 1e-6, "predict {:?} vs evaluation {want:?}", all.probabilities);

    let rgb = predict(&valid, &spec, &run.last_weights(), &[("rgb".to_string(), file(0))]).unwrap();
    assert_eq!(rgb.present, ["rgb"]);
    assert!((rgb.probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-9);

    let err =
        predict(&valid, &spec, &run.last_weights(), &[("audio".to_string(), file(0))]).unwrap_err();
    assert!(
        err.to_string().contains("unknown modality `audio`") && err.to_string().contains("rgb (R)"),
        "{err}"
    );
    let err =
        predict(&valid, &spec, &run.last_weights(), &[("rgb".to_string(), data.join("nope.jpg"))])
            .unwrap_err();
    assert!(err.to_string().contains("nope.jpg"), "{err}");
}

/// Writes the three mfeat views of the demo (Pix 240, Fou 76, Kar 64 features) with `n` rows,
/// label `i % 10`, raw values far from zero mean / unit variance so that standardisation
/// matters. Returns the raw rows per view.
fn write_mfeat(dir: &Path, n: usize) -> Vec<Vec<Vec<f32>>> {
    let views = [("mfeat-pix.csv", 240), ("mfeat-fou.csv", 76), ("mfeat-kar.csv", 64)];
    let mut out = Vec::new();
    for (v, (file, dim)) in views.into_iter().enumerate() {
        let mut text: String = (0..dim).map(|j| format!("f{j},")).collect::<String>() + "label\n";
        let mut rows = Vec::new();
        for i in 0..n {
            let label = i % 10;
            let row: Vec<f32> = (0..dim)
                .map(|j| {
                    let noise = ((i * 31 + j * 17 + v * 7) % 97) as f32;
                    300.0 + 25.0 * noise + 40.0 * (label * (j % 3)) as f32
                })
                .collect();
            for x in &row {
                text += &format!("{x},");
            }
            text += &format!("{label}\n");
            rows.push(row);
        }
        std::fs::write(dir.join(file), text).unwrap();
        out.push(rows);
    }
    out
}

fn write_numbers(path: &Path, values: &[f32]) {
    let text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    std::fs::write(path, text.join(" ")).unwrap();
}

#[test]
fn text_features_are_standardised_as_in_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mfeat");
    std::fs::create_dir_all(&data).unwrap();
    let raw = write_mfeat(&data, 100);
    let mut cfg = mmanet_train::presets::preset("mfeat3-teacher").unwrap();
    cfg.device = "cpu".into();
    cfg.epochs = 1;
    cfg.set_data_root(&data);
    let valid = cfg.check().unwrap();
    let run = RunDir::create(dir.path().join("run")).unwrap();
    Trainer::new(valid.clone(), run.clone()).unwrap().run(&mut Silent).unwrap();
    // The saved spec holds the reader's standardisation (fitted on the training split).
    let loaded = load_input_spec(run.root()).unwrap().expect("input_spec.json");
    assert_eq!(loaded, valid.data.dataset.input_spec(valid.seed).unwrap());
    let stats = |m: usize| match &loaded.modalities[m].decoder {
        Decoder::Vector { standardize: Some(s), .. } => s.clone(),
        other => panic!("modality {m}: {other:?}"),
    };
    assert_eq!(stats(1).mean.len(), 76);

    // Test sample 0 as evaluation sees it (standardised by the reader), and its raw row.
    let sample = first_test_sample(&valid);
    let set = valid.model.set();
    let fou = set.position("fourier").unwrap();
    let row = (0..raw[1].len())
        .find(|&i| {
            let mut v = raw[1][i].clone();
            stats(fou).apply(&mut v);
            v == sample.inputs[fou].data
        })
        .expect("the test sample's raw row");
    let views = ["pixel", "fourier", "karhunen_loeve"];
    let inputs: Vec<(String, std::path::PathBuf)> = views
        .iter()
        .enumerate()
        .map(|(v, m)| {
            let p = dir.path().join(format!("{m}.txt"));
            write_numbers(&p, &raw[v][row]);
            (m.to_string(), p)
        })
        .collect();

    // Evaluation's probabilities: the network on the reader's tensors, every modality present.
    let logits = evaluation_logits(&valid, &run.last_weights(), &sample);
    let want = Vec::<f64>::try_from(logits.softmax(1, Kind::Double).view([-1])).unwrap();

    let got = predict(&valid, &loaded, &run.last_weights(), &inputs).unwrap();
    assert_eq!(got.present, views);
    let diff = got.probabilities.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(diff < 1e-6, "predict {:?} vs evaluation {want:?}", got.probabilities);
    // Without the scaling the raw features give other probabilities.
    let mut raw_spec = loaded.clone();
    for m in &mut raw_spec.modalities {
        if let Decoder::Vector { standardize, .. } = &mut m.decoder {
            *standardize = None;
        }
    }
    let unscaled = predict(&valid, &raw_spec, &run.last_weights(), &inputs).unwrap();
    let d2 =
        unscaled.probabilities.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(d2 > 1e-3, "standardisation had no effect");
    // A view with the wrong number of values is an error naming the file.
    write_numbers(&inputs[1].1, &raw[1][row][..10]);
    let err = predict(&valid, &loaded, &run.last_weights(), &inputs[1..2]).unwrap_err();
    let name = inputs[1].1.file_name().unwrap().to_str().unwrap().to_string();
    assert!(err.to_string().contains(&name) && err.to_string().contains("got 10"), "{err}");
}

#[test]
fn segmentation_writes_a_label_png_matching_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let valid = common::tiny_segmentation(Stage::Teacher, data.clone(), 1).check().unwrap();
    let run = RunDir::create(dir.path().join("run")).unwrap();
    Trainer::new(valid.clone(), run.clone()).unwrap().run(&mut Silent).unwrap();
    let weights = run.last_weights();
    let rgb = data.join("test/rgb/0001.png");
    let depth = data.join("test/depth/0001.png");

    let spec = input_spec_for_run(&valid, run.root()).unwrap();
    let p = predict_segmentation(
        &valid,
        &spec,
        &weights,
        &[("depth".to_string(), depth.clone()), ("rgb".to_string(), rgb.clone())],
    )
    .unwrap();
    assert_eq!(p.present, ["rgb", "depth"]);
    assert_eq!((p.height, p.width, p.labels.len()), (64, 64, 64 * 64));

    // Evaluation's labels: argmax of the network on the reader's tensors, plus 1 (0 = void).
    let logits = evaluation_logits(&valid, &weights, &first_test_sample(&valid));
    let want = Vec::<i64>::try_from((logits.argmax(1, false) + 1).flatten(0, -1)).unwrap();
    let got: Vec<i64> = p.labels.iter().map(|l| i64::from(*l)).collect();
    assert_eq!(got, want);
    assert_eq!(p.histogram(5)[0], 0, "void is never predicted");

    let out = dir.path().join("pred/labels.png");
    p.write_png(&out).unwrap();
    let back = image::open(&out).unwrap().to_luma8();
    assert_eq!(back.dimensions(), (64, 64));
    assert_eq!(back.into_raw(), p.labels);

    // RGB alone, at a size that is not a multiple of 32: the map keeps the input size.
    let crop = image::open(&rgb).unwrap().crop_imm(0, 0, 56, 40);
    let small = dir.path().join("small.png");
    crop.save(&small).unwrap();
    let r = predict_segmentation(&valid, &spec, &weights, &[("rgb".to_string(), small.clone())])
        .unwrap();
    assert_eq!((r.present.as_slice(), r.height, r.width), (["rgb".to_string()].as_slice(), 40, 56));
    assert!(r.labels.iter().all(|l| (1..=5).contains(l)));

    // Inputs of different sizes, and the classification entry point, are errors.
    let err = predict_segmentation(
        &valid,
        &spec,
        &weights,
        &[("rgb".to_string(), small), ("depth".to_string(), depth)],
    )
    .unwrap_err();
    assert!(err.to_string().contains("0001.png"), "{err}");
    let err = predict(&valid, &spec, &weights, &[("rgb".to_string(), rgb)]).unwrap_err();
    assert!(err.to_string().contains("label map"), "{err}");
}

/// Every preset whose reader gives its input spec without reading data (the image readers):
/// its architecture and that spec make a model file the reader accepts (each decoder's output
/// fits its branch, no size above the weights), so no trained preset fails at export.
#[test]
fn every_preset_input_spec_fits_its_architecture() {
    let mut checked = Vec::new();
    for p in mmanet_train::presets::PRESETS {
        let cfg = p.config();
        let Ok(spec) = cfg.data.dataset.input_spec(cfg.seed) else { continue };
        let mut model = cfg.model.clone();
        if let NetConfig::Esanet(c) = &mut model {
            c.pretrained = None;
        }
        let identity = mmanet_deploy::Identity {
            run_name: p.name.to_string(),
            config_sha256: String::new(),
            checkpoint_sha256: String::new(),
            mmanet_version: String::new(),
            created: None,
        };
        let network = mmanet_deploy::Network::Deployment;
        if let Err(e) = mmanet_deploy::ModelMetadata::new(network, model, spec, identity) {
            panic!("preset {}: {e}", p.name);
        }
        checked.push(p.name);
    }
    for family in ["surf-", "cefa-", "nyuv2-", "cityscapes-"] {
        assert!(
            checked.iter().any(|n| n.starts_with(family)),
            "no {family} preset checked: {checked:?}"
        );
    }
}
