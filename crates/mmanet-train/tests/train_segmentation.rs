//! End-to-end segmentation: a tiny ESANet teacher and MMANet student on the synthetic NYUv2
//! layout (multi-scale CE, segmentation MAD, mIoU mining, auxi_decoder MAR).

mod common;

use common::tiny_segmentation;
use mmanet_core::Fidelity;
use mmanet_train::config::TeacherConfig;
use mmanet_train::run_dir::RunDir;
use mmanet_train::{Silent, Stage, Trainer};

#[test]
fn esanet_teacher_then_student_with_mad_and_mar() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let trun = RunDir::create(dir.path().join("teacher")).unwrap();
    let mut t = Trainer::new(
        tiny_segmentation(Stage::Teacher, data.clone(), 1).check().unwrap(),
        trun.clone(),
    )
    .unwrap();
    let s = t.run(&mut Silent).unwrap();
    assert_eq!(s.report.metrics(), ["miou", "pixel_acc"]);

    for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
        let mut cfg = tiny_segmentation(Stage::Student, data.clone(), 3);
        cfg.method.fidelity = fidelity;
        cfg.teacher = Some(TeacherConfig { checkpoint: trun.last_weights() });
        let run = RunDir::create(dir.path().join(format!("student-{fidelity}"))).unwrap();
        let mut st = Trainer::new(cfg.check().unwrap(), run).unwrap();
        let s = st.run(&mut Silent).unwrap();
        let weak = s.weak_set.expect("weak set mined");
        assert_eq!(weak.len(), 1, "segmentation weak set is one single modality: {weak:?}");
        assert!(["R", "D"].contains(&weak[0].as_str()), "{weak:?}");
        let h = &st.state().history;
        assert!(h[..2].iter().all(|r| r.loss.distill == 0.0 && r.loss.mar == 0.0));
        assert!(h[2].loss.distill > 0.0, "{fidelity}: {:?}", h[2].loss);
        assert!(h.iter().all(|r| r.loss.total.is_finite()));
        assert_eq!(s.report.rows().len(), 3, "R, D, R+D");
    }
}
