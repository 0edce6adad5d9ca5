//! Injected write errors, in-process (the fault hook is process-wide: this file holds one
//! test). A run is traced once; then every file operation of it fails in turn with "No space
//! left on device": the trainer must return a typed error naming the operation and the file,
//! leave a `state.json` whose files all match their sha256, and a resume must end with the
//! uninterrupted run's weights bit for bit.
#![allow(clippy::print_stderr)]

use mmanet_fs::Op;
use mmanet_fs::fault::{self, Action, Plan};
use mmanet_train::presets::preset;
use mmanet_train::run_dir::RunDir;
use mmanet_train::{Silent, TrainConfig, TrainError, Trainer};

fn toy() -> TrainConfig {
    let mut c = preset("toy-teacher").unwrap();
    c.device = "cpu".into();
    c.epochs = 2;
    c.data.threads = 1;
    c
}

/// `Trainer::new` (or `resume` when a state exists) and the whole run with its report.
fn train(run: &RunDir) -> Result<(), TrainError> {
    let mut t = if run.state().exists() {
        Trainer::resume(run.clone())?
    } else {
        Trainer::new(toy().check()?, run.clone())?
    };
    t.run(&mut Silent).map(|_| ())
}

fn sha(run: &RunDir) -> (String, String, String) {
    let s = run.read_state().unwrap();
    let f = |r| s.file(r, None).unwrap().sha256.clone();
    use mmanet_train::state::FileRole::{Best, Last, Optimizer};
    (f(Last), f(Optimizer), f(Best))
}

#[test]
fn every_file_operation_fails_cleanly_and_the_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    fault::configure(Some(Plan::count_only()));
    let reference = RunDir::create(dir.path().join("reference")).unwrap();
    train(&reference).unwrap();
    let ops = fault::seen();
    fault::configure(None);
    let want = sha(&reference);
    let report = std::fs::read_to_string(reference.report("json")).unwrap();
    assert!(ops.len() > 40, "{} operations", ops.len());

    let (mut stopped, mut warned) = (0, 0);
    for (at, (op, path)) in ops.iter().enumerate() {
        let root = dir.path().join(format!("run-{at}"));
        fault::configure(Some(Plan::act_at(at as u64, Action::NoSpace)));
        let result = RunDir::create(&root).and_then(|run| train(&run));
        fault::configure(None);
        let run = RunDir::create(&root).unwrap();
        match result {
            Err(TrainError::File(e)) => {
                assert_eq!((e.op, e.source.kind()), (*op, std::io::ErrorKind::StorageFull));
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let msg = e.to_string();
                assert!(msg.contains(&name) && msg.contains("No space left on device"), "{msg}");
                stopped += 1;
            }
            // Removing an older file is housekeeping: a warning, retried after the next commit.
            Ok(()) if *op == Op::Remove => warned += 1,
            other => panic!("operation {at} ({op} {}): {other:?}", path.display()),
        }
        if run.state().exists() {
            let state = run.read_state().unwrap();
            run.verify(&state.checkpoint)
                .unwrap_or_else(|e| panic!("after an error at {at} ({op}): {e}"));
        }
        train(&run).unwrap_or_else(|e| panic!("resuming after an error at {at} ({op}): {e}"));
        assert_eq!(sha(&run), want, "after an error at {at} ({op} {})", path.display());
        assert_eq!(std::fs::read_to_string(run.report("json")).unwrap(), report);
        std::fs::remove_dir_all(&root).unwrap();
    }
    eprintln!(
        "write errors: {} operations, {stopped} stopped the run cleanly, {warned} removals warned",
        ops.len()
    );
    assert!(stopped > 0 && warned > 0);
}
