//! Run files written by mmanet before modalities were names (`tests/fixtures/v0_1`, see its
//! README) read back with the same meaning: configs and their mask strings, `state.json` (the
//! weak set and the mining inputs), `weak_set.json`, reports, the input scaling and the
//! checkpoints' parameter names.

use std::path::{Path, PathBuf};

use mmanet_data::input_spec::Decoder;
use mmanet_losses::{ClassificationMiner, WeakSet};
use mmanet_train::TrainConfig;
use mmanet_train::evaluate::load_for_eval;
use mmanet_train::run_report::RunReport;
use mmanet_train::state::TrainState;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0_1").join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(fixture(rel)).unwrap()
}

fn json(rel: &str) -> serde_json::Value {
    serde_json::from_str(&read(rel)).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[test]
fn mfeat_run_files_keep_their_modalities_masks_and_weights() {
    let cfg = TrainConfig::from_toml_path(&fixture("mfeat3-mmanet/config.toml")).unwrap();
    let cfg = cfg.check().unwrap();
    let set = cfg.set().clone();
    assert_eq!(set.to_string(), "Pix+Fou+Kar");
    assert_eq!(set.names().collect::<Vec<_>>(), ["pixel", "fourier", "karhunen_loeve"]);
    // The config re-serialises to the same modality lists (bare names, as before).
    let again = TrainConfig::from_toml_str(&cfg.to_toml(), Path::new("again.toml")).unwrap();
    assert_eq!(again.to_toml(), cfg.to_toml());

    // state.json: the weak set parses against the task and prints back unchanged.
    let state: TrainState = serde_json::from_str(&read("mfeat3-mmanet/state.json")).unwrap();
    let weak = state.weak_set.clone().expect("mined weak set");
    assert_eq!(weak, ["Pix+Kar", "Pix", "Kar"]);
    let masks = set.parse_masks(&weak).unwrap();
    assert_eq!(set.format_all(&masks), weak);
    // weak_set.json holds the same strings.
    assert_eq!(strings(&json("mfeat3-mmanet/weak_set.json")["weak_set"]), weak);

    // The stored mining inputs, replayed through today's miner, select the same weak set (so
    // the candidate order is unchanged).
    let mut miner = ClassificationMiner::new(set.clone(), 10).unwrap();
    for e in &state.mining {
        let per: Vec<&[i64]> = e.candidates.iter().map(Vec::as_slice).collect();
        miner.add_epoch(&e.full, &per).unwrap();
    }
    assert_eq!(miner.weak_set().unwrap().names(), weak);
    let w = WeakSet::new(set.clone(), masks).unwrap();
    assert_eq!(w.to_string(), "[Pix+Kar, Pix, Kar]");

    // report.json: rows keep their combination strings and values.
    let report = RunReport::from_json(&read("mfeat3-mmanet/report.json")).unwrap();
    assert_eq!(report.modalities, ["Pix", "Fou", "Kar"]);
    let rows = report.combination_report(0).unwrap();
    let labels: Vec<&str> = rows.rows().iter().map(|r| r.combination.as_str()).collect();
    assert_eq!(labels, set.format_all(&set.combinations()));
    let mut rebuilt = RunReport::new(&report.dataset, &report.task, report.modalities.clone());
    rebuilt.push(&report.results[0].model, &rows);
    assert_eq!(rebuilt, report);

    // input_scaling.json's modality names are today's names.
    let scaling = json("mfeat3-mmanet/input_scaling.json");
    let names: Vec<&str> = scaling["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["modality"].as_str().unwrap())
        .collect();
    assert_eq!(names, set.names().collect::<Vec<_>>());

    // The checkpoint loads strictly into the network today's config builds
    // (`special_bone_pixel.*`, ...).
    let (_vs, net) = load_for_eval(&cfg, &fixture("mfeat3-mmanet/checkpoints/best.safetensors"))
        .expect("an old checkpoint loads");
    assert_eq!(net.modalities(), &set);
}

#[test]
fn toy_run_files_and_the_demo_report_read_back() {
    let cfg = TrainConfig::from_toml_path(&fixture("toy-mmanet/config.toml")).unwrap();
    let cfg = cfg.check().unwrap();
    let set = cfg.set().clone();
    assert_eq!(set.to_string(), "R+D+I");
    let state: TrainState = serde_json::from_str(&read("toy-mmanet/state.json")).unwrap();
    let weak = state.weak_set.clone().unwrap();
    assert_eq!(set.format_all(&set.parse_masks(&weak).unwrap()), weak);
    assert_eq!(strings(&json("toy-mmanet/weak_set.json")["weak_set"]), weak);
    // The data set's input spec: vectors of the toy shapes, nothing standardised.
    let spec = cfg.data.dataset.input_spec(cfg.seed).unwrap();
    assert_eq!(spec.modalities.len(), 3);
    assert!(spec.modalities.iter().all(|m| matches!(
        &m.decoder,
        Decoder::Vector { shape, standardize: None } if shape == &[3, 16, 16]
    )));

    // The demo's combined report (MMANet and the dropout baseline) round-trips.
    let demo = RunReport::from_json(&read("demo-report.json")).unwrap();
    assert_eq!(demo.results.len(), 2);
    for k in 0..demo.results.len() {
        let rows = demo.combination_report(k).unwrap();
        for row in rows.rows() {
            set.parse_mask(&row.combination).unwrap();
        }
    }
    let back: serde_json::Value = serde_json::from_str(&demo.to_json()).unwrap();
    assert_eq!(back, json("demo-report.json"));
}
