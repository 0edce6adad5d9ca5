//! `mmanet export` -> a copy of the model file alone in another folder -> `mmanet predict`
//! and `mmanet serve` on it: the server's answers equal `predict`'s, and SIGTERM stops it
//! cleanly (exit 0).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn mmanet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mmanet"));
    c.env("OMP_NUM_THREADS", "1");
    c
}

#[test]
fn a_moved_model_file_predicts_and_serves_alone() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let out = mmanet()
        .args(["-q", "demo", "--quick", "--device", "cpu", "--out"])
        .arg(&runs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = dir.path().join("model.safetensors");
    let out = mmanet()
        .arg("export")
        .arg(runs.join("toy-mmanet"))
        .arg("--out")
        .arg(&exported)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Only the file travels: the runs are deleted.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let model = elsewhere.join("m.safetensors");
    std::fs::rename(&exported, &model).unwrap();
    std::fs::remove_dir_all(&runs).unwrap();

    let meta = mmanet_deploy::read_metadata(&model).unwrap();
    let names: Vec<String> = meta.input_spec.modalities.iter().map(|m| m.name.clone()).collect();
    let dims: Vec<usize> = meta
        .input_spec
        .modalities
        .iter()
        .map(|m| m.decoder.fixed_shape().unwrap().iter().product::<i64>() as usize)
        .collect();
    let values = |m: usize| -> Vec<f32> {
        (0..dims[m]).map(|k| ((k * 7 + m) % 5) as f32 * 0.3 - 0.5).collect()
    };

    // `predict` on text files of the same numbers, first modality alone and all of them.
    let mut files = Vec::new();
    for (m, name) in names.iter().enumerate() {
        let f = elsewhere.join(format!("{name}.txt"));
        let text: Vec<String> = values(m).iter().map(|v| v.to_string()).collect();
        std::fs::write(&f, text.join(" ")).unwrap();
        files.push(f);
    }
    let predict = |ms: &[usize]| -> Vec<f64> {
        let mut c = mmanet();
        c.arg("predict").arg(&model);
        for &m in ms {
            c.arg("--input").arg(format!("{}={}", names[m], files[m].display()));
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| {
                l.rsplit_once(": ")
                    .filter(|_| l.starts_with("class "))
                    .map(|(_, p)| p.parse().unwrap())
            })
            .collect()
    };
    let all: Vec<usize> = (0..names.len()).collect();
    let want_first = predict(&[0]);
    let want_all = predict(&all);
    assert_eq!(want_first.len(), meta.input_spec.classes.len());

    let mut server = mmanet()
        .args(["serve"])
        .arg(&model)
        .args(["--addr", "127.0.0.1:0", "--threads", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the server prints its address").unwrap();
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let http =
        reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let t0 = Instant::now();
    while http.get(format!("http://{addr}/readyz")).send().map(|r| r.status().as_u16()).unwrap_or(0)
        != 200
    {
        assert!(t0.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    let ask = |ms: &[usize]| -> Vec<f64> {
        let inputs: serde_json::Map<String, Value> =
            ms.iter().map(|&m| (names[m].clone(), json!(values(m)))).collect();
        let v: Value = http
            .post(format!("http://{addr}/v1/predict"))
            .json(&json!({"inputs": inputs}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        meta.input_spec.classes.iter().map(|c| v["probabilities"][c].as_f64().unwrap()).collect()
    };
    // `predict` prints 4 decimals.
    let near = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4 + 1e-12);
    assert!(near(&ask(&[0]), &want_first), "{:?} vs {want_first:?}", ask(&[0]));
    assert!(near(&ask(&all), &want_all));

    // SIGTERM: a clean stop, exit status 0.
    let pid = server.id() as i32;
    assert_eq!(unsafe_free_kill(pid), 0);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = server.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// SIGTERM through the `kill` command (no `unsafe` in tests).
fn unsafe_free_kill(pid: i32) -> i32 {
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().code().unwrap_or(-1)
}
