//! The fault hook, in a process of its own (the hook is process-wide, so nothing else may
//! write files while this runs).

use mmanet_fs::Op;
use mmanet_fs::fault::{Action, Plan, configure, count, seen};
/// The hook is process-wide: its tests run as one test.
#[test]
fn counts_traces_and_fails_the_planned_operation_only() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let p = dir.path().join("x.json");
    configure(Some(Plan { trace: Some(trace.clone()), ..Plan::count_only() }));
    mmanet_fs::write(&p, b"1").unwrap();
    assert_eq!(count(), 4, "write, fsync, rename, fsync-dir");
    let ops: Vec<Op> = seen().into_iter().map(|(op, _)| op).collect();
    assert_eq!(ops, [Op::Write, Op::Sync, Op::Rename, Op::SyncDir]);
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.starts_with(&format!("0 write {}\n", p.display())), "{text}");
    assert_eq!(text.lines().count(), 4);

    // Each index of a write fails it and leaves the old content and no temporary.
    for at in 0..4 {
        configure(Some(Plan::act_at(at, Action::NoSpace)));
        let err = mmanet_fs::write(&p, b"2").unwrap_err();
        assert!(err.to_string().contains("No space left on device"), "{err}");
        let expected = [Op::Write, Op::Sync, Op::Rename, Op::SyncDir][at as usize];
        assert_eq!(err.op, expected);
        let content = std::fs::read(&p).unwrap();
        // Only the folder fsync comes after the rename.
        assert_eq!(content, if at == 3 { b"2" } else { b"1" });
        mmanet_fs::write(&p, b"1").unwrap();
    }
    configure(Some(Plan::act_at(1, Action::Io)));
    mmanet_fs::remove_file(&dir.path().join("none")).unwrap();
    let err = mmanet_fs::append(&dir.path().join("log"), b"x").unwrap_err();
    assert!(err.to_string().contains("log: append failed: Input/output error"), "{err}");
    configure(None);
    assert_eq!(count(), 0);
    mmanet_fs::write(&p, b"3").unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| mmanet_fs::is_temp_name(&e.file_name().to_string_lossy()))
        .collect();
    assert!(leftovers.is_empty());
    assert_eq!(Action::parse("enospc"), Some(Action::NoSpace));
    assert_eq!(Action::parse("kill"), None);
}
