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
    // As the embedded file is, its description comment included.
    assert_eq!(text, mmanet_train::presets::find("surf-mmanet").unwrap().text);
    assert!(text.starts_with("# CASIA-SURF MMANet student"), "{text}");

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
    let from_run = String::from_utf8(out.stdout).unwrap();
    assert_eq!(from_run.lines().count(), 4, "header, 2 rows, average");

    // The model file alone, copied elsewhere, scored on the data of a config: the same table.
    let moved = tempfile::tempdir().unwrap();
    let file = moved.path().join("model.safetensors");
    std::fs::copy(&deploy, &file).unwrap();
    let config = dir.path().join("toy-mmanet/config.toml");
    let out = mmanet()
        .arg("eval")
        .arg(&file)
        .arg("--config")
        .arg(&config)
        .args(["--combos", "R,D+I", "--format", "csv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), from_run);
    let out = mmanet().arg("eval").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is a model file") && stderr.contains("--config"), "{stderr}");
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

/// Runs `mmanet ARGS` in `dir`, expecting a failure; returns its stderr after checking the
/// error-chain format: `error: TOP`, then one `  caused by: ...` line per cause (further lines
/// of a multi-line message indented deeper), and no cause text twice.
fn failing(dir: &std::path::Path, args: &[&str]) -> String {
    let out = mmanet().arg("-q").args(args).current_dir(dir).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.first().is_some_and(|l| l.starts_with("error: ")), "{stderr}");
    let mut causes = vec![lines[0].trim_start_matches("error: ")];
    for l in &lines[1..] {
        if let Some(c) = l.strip_prefix("  caused by: ") {
            causes.push(c);
        } else {
            assert!(l.starts_with("      "), "not a cause nor a continuation: `{l}` in\n{stderr}");
        }
    }
    for (i, c) in causes.iter().enumerate() {
        // Each cause once: no cause repeats another's text, and no line states its own message
        // twice ("X: No such file (os error 2): No such file (os error 2)").
        assert!(!causes[..i].contains(c), "cause `{c}` twice in\n{stderr}");
        assert!(c.matches("(os error").count() <= 1, "the system's error twice in `{c}`");
        if let Some((head, tail)) = c.split_once(": ") {
            assert!(!tail.contains(&format!("{head}: ")), "`{head}` repeats in `{c}`");
        }
    }
    stderr
}

#[test]
fn errors_state_each_cause_once_one_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A missing config file: the path and the system's message, once.
    let e = failing(d, &["train", "--config", "absent.toml"]);
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    assert!(e.contains("absent.toml"), "{e}");

    // A config that does not parse: the file, then the parser's excerpt (several lines).
    std::fs::write(d.join("bad.toml"), "name = 3\n").unwrap();
    let e = failing(d, &["train", "--config", "bad.toml"]);
    assert!(e.contains("bad.toml") && e.contains("line 1"), "{e}");

    // A list file with a bad line (relative config and data root, as a user types them): the
    // list named once, with its line.
    let cfg = mmanet_train::presets::preset("surf-teacher").unwrap().to_toml();
    let cfg = cfg.replace("root = \"data/CASIA-SURF\"", "root = \"surf\"");
    assert!(cfg.contains("root = \"surf\""), "{cfg}");
    std::fs::write(d.join("surf.toml"), cfg).unwrap();
    std::fs::create_dir(d.join("surf")).unwrap();
    for list in ["train_list.txt", "val_private_list.txt", "test_private_list.txt"] {
        std::fs::write(d.join("surf").join(list), "a.jpg b.jpg c.jpg 1\na.jpg b.jpg 7\n").unwrap();
    }
    let e = failing(d, &["data", "check", "--config", "surf.toml"]);
    assert!(e.starts_with("error: surf/train_list.txt:2: expected"), "{e}");

    // Weights that are not a safetensors file, and weights that do not exist.
    std::fs::write(d.join("w.safetensors"), "not a checkpoint at all").unwrap();
    let e = failing(d, &["inspect", "w.safetensors"]);
    assert!(e.contains("w.safetensors: not a safetensors file"), "{e}");
    let e = failing(d, &["predict", "gone.safetensors", "--input", "rgb=x.png"]);
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");

    // An input libtorch refuses in the forward pass (a 1x1 image on a model whose camera takes
    // each file's own size): the manifest row named, libtorch's message once, no panic text.
    let mut f = mmanet_deploy::example::tiny_model(0).unwrap();
    let mmanet_data::input_spec::Decoder::Image { size, .. } =
        &mut f.metadata.input_spec.modalities[0].decoder
    else {
        unreachable!()
    };
    *size = None;
    mmanet_deploy::write_model_file(&d.join("free.safetensors"), &f.metadata, &f.tensors).unwrap();
    image::GrayImage::from_pixel(8, 8, image::Luma([3])).save(d.join("ok.png")).unwrap();
    image::GrayImage::from_pixel(1, 1, image::Luma([3])).save(d.join("tiny.png")).unwrap();
    std::fs::write(d.join("rows.csv"), "id,camera\na,ok.png\nb,tiny.png\n").unwrap();
    let e = failing(d, &["predict", "free.safetensors", "--manifest", "rows.csv"]);
    assert!(e.starts_with("error: rows.csv:3 (id b)"), "{e}");
    assert_eq!(e.matches("too small").count(), 1, "{e}");
    assert!(!e.contains("panicked"), "{e}");
}

/// A tiny CASIA-SURF-layout run (the toy teacher's network on 16 synthetic samples, 2 epochs)
/// in `dir/runs/t`, its data in `dir/data`, trained from `dir/cfg.toml` with relative paths.
fn train_tiny_surf_run(dir: &std::path::Path) {
    let ok = |c: &mut Command| {
        let out = c.current_dir(dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    ok(mmanet()
        .args(["-q", "data", "synth", "surf", "--out", "data", "--n", "16", "--size", "24"]));
    let toy = mmanet_train::presets::preset("toy-teacher").unwrap().to_toml();
    let (head, rest) = toy.split_once("[data.dataset]").unwrap();
    let model = &rest[rest.find("[model]").unwrap()..];
    let cfg = format!(
        "{head}[data.dataset]\nkind = \"surf\"\nroot = \"data\"\ntrain_list = \"train_list.txt\"\n\
         val_list = \"val_private_list.txt\"\ntest_list = \"test_private_list.txt\"\n\
         resize = 20\ncrop = 16\n\n{model}"
    );
    std::fs::write(dir.join("cfg.toml"), cfg).unwrap();
    ok(mmanet().args(["-q", "train", "--config", "cfg.toml", "--run-dir", "runs/t"]).args([
        "--set",
        "epochs=2",
        "--set",
        "device=\"cpu\"",
    ]));
}

#[test]
fn a_moved_run_resumes_and_evaluates_with_its_data_root_set() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    std::fs::create_dir(&a).unwrap();
    train_tiny_surf_run(&a);
    // Paths inside the run are relative to it; the data root as the user wrote it, from there.
    let stored = std::fs::read_to_string(a.join("runs/t/config.toml")).unwrap();
    assert!(stored.contains("root = \"../../data\""), "{stored}");
    let state = std::fs::read_to_string(a.join("runs/t/state.json")).unwrap();
    assert!(!state.contains(a.to_str().unwrap()), "an absolute path in state.json: {state}");
    let fp: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(fp["data"]["train_samples"], 16);
    assert_eq!(fp["data"]["files"].as_object().unwrap().len(), 3, "{state}");

    let run =
        |args: &[&str]| mmanet().arg("-q").args(args).current_dir(tmp.path()).output().unwrap();
    let eval = |run_dir: &str, extra: &[&str]| {
        let mut args = vec!["eval", run_dir, "--format", "csv"];
        args.extend(extra);
        run(&args)
    };
    let stdout = |o: &std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout.clone()).unwrap()
    };
    let before = stdout(&eval("a/runs/t", &[]));

    // The run folder and its data moved together: found without help.
    std::fs::rename(&a, tmp.path().join("b")).unwrap();
    assert_eq!(stdout(&eval("b/runs/t", &[])), before);

    // The run moved alone: the missing root is an error naming the key; `--set` points it at
    // the data (repeatable, and a run's training settings are not up for change).
    std::fs::create_dir(tmp.path().join("far")).unwrap();
    std::fs::rename(tmp.path().join("b/runs/t"), tmp.path().join("far/t")).unwrap();
    let o = eval("far/t", &[]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("data.dataset.root") && e.contains("does not exist"),
        "{e}"
    );
    let root = ["--set", "data.dataset.root=b/data", "--set", "data.threads=1"];
    assert_eq!(stdout(&eval("far/t", &root)), before);
    let o = run(&["resume", "far/t", "--set", "data.dataset.root=b/data"]);
    assert!(stdout(&o).contains("| Average |"));
    let o = run(&["resume", "far/t", "--set", "epochs=5"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("epochs"));

    // Changed data: the same samples listed differently warn, a changed count is refused.
    let list = tmp.path().join("b/data/train_list.txt");
    let text = std::fs::read_to_string(&list).unwrap();
    std::fs::write(&list, format!("\n{text}")).unwrap();
    let o = mmanet()
        .args(["resume", "far/t", "--set", "data.dataset.root=b/data"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && e.contains("list files changed"), "{e}");
    let first = text.lines().next().unwrap();
    std::fs::write(&list, format!("{text}{first}\n")).unwrap();
    let o = run(&["resume", "far/t", "--set", "data.dataset.root=b/data"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("16 training") && e.contains("now has 17"), "{e}");
}

/// `mmanet data check` on a manifest with a bad line: the line is listed and the check fails;
/// with `data.skip_bad_samples` it passes and says what will be skipped. A run trained on it
/// with the skip, evaluated by `mmanet eval`, prints the as-observed table too.
#[test]
fn data_check_lists_bad_manifest_lines_and_eval_scores_incomplete_data_as_observed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut csv = String::from("id,label,a,b\n");
    for i in 0..20 {
        csv += &format!("s{i},{},{i} 1,{}\n", i % 2, if i % 4 == 0 { "" } else { "2 3" });
    }
    csv += "s3,1,1 1,2 3\n"; // line 22: a duplicate id
    std::fs::write(d.join("m.csv"), csv).unwrap();
    use mmanet_data::manifest::{ManifestDecoder, ManifestModality, ManifestSource};
    let vector = |name: &str| ManifestModality {
        name: name.into(),
        symbol: None,
        decoder: ManifestDecoder::Vector { len: 2, standardize: true },
    };
    let mut cfg = mmanet_train::presets::preset("mfeat3-teacher").unwrap();
    cfg.data.dataset = mmanet_train::data_spec::DatasetSpec::Manifest(ManifestSource {
        path: "m.csv".into(),
        modalities: vec![vector("a"), vector("b")],
        classes: vec![],
        split: Default::default(),
        cache: Default::default(),
    });
    cfg.model = mmanet_models::factory::NetConfig::Generic(mmanet_models::GenericNetConfig {
        modalities: mmanet_core::ModalitySet::from_names(["a", "b"]).unwrap(),
        branches: vec![
            mmanet_models::BranchConfig::Mlp { in_dim: 2, hidden: vec![4], out_dim: 4 };
            2
        ],
        trunk_hidden: vec![4],
        n_classes: 2,
        fusion: mmanet_models::GenericFusion::Concat,
    });
    cfg.epochs = 2;
    cfg.data.batch_size = 4;
    cfg.eval.every = 1;
    for (skip, name) in [(false, "strict.toml"), (true, "skip.toml")] {
        cfg.data.skip_bad_samples = skip;
        std::fs::write(d.join(name), cfg.to_toml()).unwrap();
    }
    let e = failing(d, &["data", "check", "--config", "strict.toml"]);
    assert!(e.contains("1 bad lines or unreadable samples"), "{e}");
    let out = mmanet().args(["data", "check", "--config", "skip.toml"]).current_dir(d).output();
    let out = out.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("m.csv:22: column `id`: `s3` already on line 5"), "{text}");
    assert!(text.contains("will be skipped"), "{text}");
    assert_eq!(text.matches("modalities present: A: ").count(), 3, "{text}");

    // Trained on it, the run's eval prints both tables: a quarter of the samples lack `b`.
    let ok = |args: &[&str]| {
        let out = mmanet().arg("-q").args(args).current_dir(d).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&["train", "--config", "skip.toml", "--run-dir", "run"]);
    let csv = ok(&["eval", "run", "--format", "csv"]);
    assert!(csv.starts_with("combination,accuracy,samples\n"), "{csv}");
    assert!(csv.contains("\nobserved:A,") && csv.contains("\nobserved:all,"), "{csv}");
    let md = ok(&["eval", "run"]);
    assert!(md.contains("| **All (as observed)** |"), "{md}");
    // The teacher's test report scores the complete combination only.
    let report = std::fs::read_to_string(d.join("run/report.csv")).unwrap();
    let full = ok(&["eval", "run", "--format", "csv", "--combos", "A+B"]);
    assert_eq!(report, full, "eval prints the run's report.csv");
}
