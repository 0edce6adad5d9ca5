//! The `mmanet` command as a user types it.

use std::process::Command;

fn mmanet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mmanet"));
    c.env("OMP_NUM_THREADS", "1");
    c
}

#[test]
fn config_print_is_a_valid_config_and_unknown_presets_are_named() {
    let out = mmanet().args(["config", "print", "--preset", "surf-mmanet"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let cfg =
        mmanet_train::TrainConfig::from_toml_str(&text, std::path::Path::new("stdout")).unwrap();
    assert_eq!(cfg.method.lambda_mad, 30.0);

    let out = mmanet().args(["config", "print", "--preset", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown preset `nope`"));
}

#[test]
fn quick_demo_writes_reports_and_export_drops_the_regularizer() {
    let dir = tempfile::tempdir().unwrap();
    let out = mmanet()
        .args(["-q", "demo", "--quick", "--device", "cpu", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("| **Average** |"), "{stdout}");
    for f in ["report.json", "report.md", "report.svg"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["results"][0]["combinations"].as_array().unwrap().len(), 7);

    let deploy = dir.path().join("deploy.safetensors");
    let out = mmanet()
        .arg("export")
        .arg(dir.path().join("toy-mmanet"))
        .args(["--weights", "last", "--out"])
        .arg(&deploy)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Two exports of one checkpoint are byte-identical.
    let again = dir.path().join("again.safetensors");
    let out = mmanet()
        .arg("export")
        .arg(dir.path().join("toy-mmanet"))
        .args(["--weights", "last", "--out"])
        .arg(&again)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&deploy).unwrap(), std::fs::read(&again).unwrap());
    let out = mmanet().arg("inspect").arg(&deploy).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("format version  1.0") && text.contains("toy-mmanet"), "{text}");
    let names: Vec<String> =
        tch::Tensor::read_safetensors(&deploy).unwrap().into_iter().map(|(n, _)| n).collect();
    assert!(!names.is_empty() && names.iter().all(|n| !n.starts_with("auxi_bone")));

    let out = mmanet()
        .args(["eval"])
        .arg(dir.path().join("toy-mmanet"))
        .args(["--weights"])
        .arg(&deploy)
        .args(["--combos", "R,D+I", "--format", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count(),
        4,
        "header, 2 rows, average"
    );
}

#[test]
fn predict_writes_a_segmentation_label_png() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = dir.path().join("run");
    let out = mmanet()
        .args(["-q", "train", "--preset", "synth-nyuv2-teacher", "--run-dir"])
        .arg(&run)
        .args(["--set", "epochs=1", "--set", "device=\"cpu\""])
        .args(["--set", "data.dataset.n=4", "--set", "data.dataset.size=[64, 64]"])
        .args(["--set", "data.dataset.crop=[64, 64]", "--set", "data.batch_size=2"])
        .arg("--set")
        .arg(format!("data.dataset.root={:?}", data.to_str().unwrap()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let input = |m: &str, sub: &str| format!("{m}={}", data.join(sub).display());
    let png = dir.path().join("pred.png");
    let out = mmanet()
        .args(["predict"])
        .arg(&run)
        .args(["--weights", "last", "--input", &input("rgb", "test/rgb/0001.png")])
        .args(["--input", &input("depth", "test/depth/0001.png"), "--out"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("present: R+D") && stdout.contains("64x64"), "{stdout}");
    let labels = image::open(&png).unwrap().to_luma8();
    assert_eq!(labels.dimensions(), (64, 64));
    // Synthetic NYUv2 has 5 classes: ids 1..=5, void 0 never predicted.
    assert!(labels.pixels().all(|p| (1..=5).contains(&p[0])));

    let out = mmanet()
        .args(["predict"])
        .arg(&run)
        .args(["--weights", "last", "--input", &input("depth", "test/depth/0001.png")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out FILE.png"));
}
