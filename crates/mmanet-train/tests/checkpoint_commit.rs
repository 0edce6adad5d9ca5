//! The checkpoint commit protocol (docs/architecture.md): what `state.json` names, kept
//! epochs and best weights as references, hash checks on resume, and runs written before the
//! protocol resuming into it.

use std::path::Path;

use mmanet_train::presets::preset;
use mmanet_train::run_dir::RunDir;
use mmanet_train::state::{FileRole, TrainState};
use mmanet_train::{Silent, TrainConfig, TrainError, Trainer};
use tch::Tensor;

/// libtorch's generator is global and runs compared for equality must not interleave their
/// initialisations: every test here holds this lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The toy teacher preset (the CASIA-SURF architecture at width 4) on the CPU.
fn toy(epochs: usize) -> TrainConfig {
    let mut c = preset("toy-teacher").unwrap();
    c.device = "cpu".into();
    c.epochs = epochs;
    c.data.threads = 1;
    c
}

fn weights(p: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(p).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn assert_same_weights(a: &Path, b: &Path) {
    let (wa, wb) = (weights(a), weights(b));
    assert_eq!(wa.len(), wb.len());
    for ((na, ta), (nb, tb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn state_json_names_each_file_once_and_kept_epochs_share_the_weights() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = toy(4);
    cfg.checkpoint_keep = 2;
    let run = RunDir::create(dir.path()).unwrap();
    Trainer::new(cfg.check().unwrap(), run.clone()).unwrap().train_epochs(4, &mut Silent).unwrap();
    let state = run.read_state().unwrap();
    let file = |role, epoch| state.file(role, epoch).map(|f| f.file.as_str());
    assert_eq!(file(FileRole::Last, None), Some("checkpoints/weights-e0003.safetensors"));
    assert_eq!(file(FileRole::Optimizer, None), Some("checkpoints/optim-e0003.safetensors"));
    assert_eq!(file(FileRole::Epoch, Some(3)), file(FileRole::Last, None));
    assert_eq!(file(FileRole::Epoch, Some(2)), Some("checkpoints/weights-e0002.safetensors"));
    assert_eq!(file(FileRole::Epoch, Some(1)), None, "only the last two epochs are kept");
    let best = state.best.unwrap().epoch;
    assert_eq!(
        file(FileRole::Best, None).unwrap(),
        format!("checkpoints/weights-e{best:04}.safetensors")
    );
    run.verify(&state.checkpoint).unwrap();
    // The folder holds the named files and the two names users know, nothing else.
    let mut want: Vec<String> = state
        .checkpoint
        .iter()
        .map(|f| f.file.trim_start_matches("checkpoints/").to_string())
        .chain(["best.safetensors".into(), "last.safetensors".into()])
        .collect();
    want.sort();
    want.dedup();
    assert_eq!(names(&run.checkpoints()), want);
    assert_eq!(run.last_weights(), run.root().join(file(FileRole::Last, None).unwrap()));
    assert_same_weights(&run.checkpoints().join("last.safetensors"), &run.last_weights());
    assert_same_weights(&run.checkpoints().join("best.safetensors"), &run.best_weights());
    assert_eq!(run.epoch_weights(2), run.root().join("checkpoints/weights-e0002.safetensors"));
}

#[test]
fn resume_refuses_a_file_that_changed_after_the_commit() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::create(dir.path()).unwrap();
    let mut t = Trainer::new(toy(3).check().unwrap(), run.clone()).unwrap();
    t.train_epochs(1, &mut Silent).unwrap();
    drop(t);
    let optim = run.last_optimizer();
    let mut bytes = std::fs::read(&optim).unwrap();
    let k = bytes.len() / 2;
    bytes[k] = bytes[k].wrapping_add(1);
    std::fs::write(&optim, &bytes).unwrap();
    let err = Trainer::resume(run.clone()).err().expect("a changed file is refused");
    assert!(matches!(err, TrainError::Checkpoint { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("optim-e0000.safetensors") && msg.contains("sha256 mismatch"), "{msg}");
    std::fs::remove_file(&optim).unwrap();
    let msg = Trainer::resume(run).err().unwrap().to_string();
    assert!(msg.contains("optim-e0000.safetensors") && msg.contains("missing"), "{msg}");
}

/// Turns a run folder into the layout of runs written before the commit protocol: fixed
/// names, no file list in `state.json`.
fn to_legacy(run: &RunDir) {
    let state = run.read_state().unwrap();
    let ck = run.checkpoints();
    let path = |role| run.root().join(&state.file(role, None).unwrap().file);
    let (last, optim, best) =
        (path(FileRole::Last), path(FileRole::Optimizer), path(FileRole::Best));
    for alias in ["last.safetensors", "best.safetensors"] {
        std::fs::remove_file(ck.join(alias)).unwrap();
    }
    std::fs::copy(&best, ck.join("best.safetensors")).unwrap();
    std::fs::rename(&last, ck.join("last.safetensors")).unwrap();
    std::fs::rename(&optim, ck.join("last.optim.safetensors")).unwrap();
    for name in names(&ck) {
        if name.starts_with("weights-") || name.starts_with("optim-") {
            std::fs::remove_file(ck.join(name)).unwrap();
        }
    }
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.state()).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("checkpoint");
    std::fs::write(run.state(), serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let back: TrainState = serde_json::from_str(&std::fs::read_to_string(run.state()).unwrap())
        .expect("a state without a file list still reads");
    assert!(back.checkpoint.is_empty());
}

#[test]
fn a_run_written_before_the_protocol_resumes_exactly_and_moves_to_it() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let straight = RunDir::create(dir.path().join("straight")).unwrap();
    Trainer::new(toy(4).check().unwrap(), straight.clone())
        .unwrap()
        .train_epochs(4, &mut Silent)
        .unwrap();

    let split = RunDir::create(dir.path().join("split")).unwrap();
    Trainer::new(toy(4).check().unwrap(), split.clone())
        .unwrap()
        .train_epochs(2, &mut Silent)
        .unwrap();
    to_legacy(&split);
    assert_eq!(split.last_weights(), split.checkpoints().join("last.safetensors"));
    let legacy_best = std::fs::read(split.checkpoints().join("best.safetensors")).unwrap();
    // A best score no later epoch beats: the old best file must be carried into the new
    // protocol rather than replaced.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(split.state()).unwrap()).unwrap();
    json["best"]["score"] = serde_json::json!(2.0);
    std::fs::write(split.state(), json.to_string()).unwrap();

    let mut t = Trainer::resume(split.clone()).unwrap();
    assert_eq!(t.state().next_epoch, 2);
    t.train_epochs(10, &mut Silent).unwrap();
    assert_same_weights(&straight.last_weights(), &split.last_weights());
    let state = split.read_state().unwrap();
    assert!(!state.checkpoint.is_empty(), "the first commit writes the file list");
    split.verify(&state.checkpoint).unwrap();
    assert_eq!(std::fs::read(split.best_weights()).unwrap(), legacy_best);
    assert_ne!(split.best_weights(), split.checkpoints().join("best.safetensors"));
    let left = names(&split.checkpoints());
    assert!(!left.contains(&"last.optim.safetensors".to_string()), "{left:?}");
    assert_eq!(std::fs::read(split.checkpoints().join("best.safetensors")).unwrap(), legacy_best);
}
