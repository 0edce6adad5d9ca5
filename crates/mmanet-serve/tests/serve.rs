//! The server on loopback, driven by a real HTTP client: every modality subset, every kind of
//! bad request, concurrent clients equal to direct prediction, a full queue, and shutdown
//! draining in-flight requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use mmanet_deploy::{Output, Predictor, RawInput, example, prepare};
use mmanet_serve::{ServeConfig, ServerHandle, start};
use serde_json::{Value, json};

fn model_file(dir: &Path) -> PathBuf {
    let f = example::tiny_model(11).unwrap();
    let path = dir.join("model.safetensors");
    mmanet_deploy::write_model_file(&path, &f.metadata, &f.tensors).unwrap();
    path
}

fn png_bytes(seed: u8) -> Vec<u8> {
    let img = image::GrayImage::from_fn(8, 8, |x, y| {
        image::Luma([((x * 31 + y * 5 + u32::from(seed)) % 255) as u8])
    });
    let mut c = std::io::Cursor::new(Vec::new());
    img.write_to(&mut c, image::ImageFormat::Png).unwrap();
    c.into_inner()
}

fn serve(model: &Path, tweak: impl FnOnce(&mut ServeConfig)) -> ServerHandle {
    let mut cfg = ServeConfig { addr: "127.0.0.1:0".parse().unwrap(), ..ServeConfig::default() };
    tweak(&mut cfg);
    let h = start(model.to_path_buf(), cfg, false).unwrap();
    let url = format!("http://{}/readyz", h.addr);
    let t0 = Instant::now();
    while reqwest::blocking::get(&url).map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(t0.elapsed() < Duration::from_secs(30), "not ready in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    h
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// The JSON value and the direct-prediction raw input of modality `m` for sample `i`.
fn input(m: &str, i: u8, dir: &Path) -> (Value, RawInput) {
    match m {
        "camera" => {
            let bytes = png_bytes(i);
            let path = dir.join(format!("c{i}.png"));
            std::fs::write(&path, &bytes).unwrap();
            (
                json!({"base64": base64::engine::general_purpose::STANDARD.encode(&bytes)}),
                RawInput::File(path),
            )
        }
        "audio" => {
            let v: Vec<f32> = (0..6).map(|k| f32::from(i) * 0.25 + k as f32).collect();
            (json!(v), RawInput::Values { values: v, shape: None })
        }
        _ => {
            let v: Vec<f32> = (0..8).map(|k| (f32::from(i) - k as f32) * 0.1).collect();
            let nested: Vec<Vec<f32>> = v.chunks(2).map(<[f32]>::to_vec).collect();
            (json!(nested), RawInput::Values { values: v, shape: Some(vec![4, 2]) })
        }
    }
}

fn subsets() -> Vec<Vec<&'static str>> {
    let names = example::MODALITIES;
    (1u32..8)
        .map(|bits| {
            names
                .iter()
                .enumerate()
                .filter(|(k, _)| bits & (1 << k) != 0)
                .map(|(_, n)| *n)
                .collect()
        })
        .collect()
}

fn direct(p: &Predictor, inputs: Vec<(String, RawInput)>) -> Vec<f64> {
    let prep = prepare(p.metadata(), inputs, "").unwrap();
    match p.predict(&[prep]).unwrap().remove(0) {
        Output::Classes(c) => c,
        Output::LabelMap { .. } => panic!("classes"),
    }
}

fn probs(v: &Value, classes: &[String]) -> Vec<f64> {
    classes.iter().map(|c| v["probabilities"][c].as_f64().unwrap()).collect()
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1e-6))
}

#[test]
fn every_subset_answers_as_direct_prediction_and_concurrent_clients_agree() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_file(dir.path());
    let h = serve(&model, |c| c.max_delay = Duration::from_millis(5));
    let p = Predictor::load(&model, tch::Device::Cpu).unwrap();
    let classes = p.metadata().input_spec.classes.clone();
    let url = format!("http://{}/v1/predict", h.addr);
    let http = client();

    let info: Value =
        http.get(format!("http://{}/v1/model", h.addr)).send().unwrap().json().unwrap();
    assert_eq!(info["modalities"].as_array().unwrap().len(), 3);
    assert_eq!(info["classes"], json!(["low", "mid", "high"]));
    assert_eq!(http.get(format!("http://{}/healthz", h.addr)).send().unwrap().status(), 200);

    let mut expected = Vec::new();
    for (i, subset) in subsets().into_iter().enumerate() {
        let mut body = serde_json::Map::new();
        let mut raw = Vec::new();
        for m in &subset {
            let (v, r) = input(m, i as u8, dir.path());
            body.insert((*m).to_string(), v);
            raw.push(((*m).to_string(), r));
        }
        let want = direct(&p, raw);
        let r = http.post(&url).json(&json!({"inputs": body})).send().unwrap();
        assert_eq!(r.status(), 200, "{subset:?}");
        let v: Value = r.json().unwrap();
        assert_eq!(v["present"], json!(subset));
        assert!(close(&probs(&v, &classes), &want), "{subset:?}: {v} vs {want:?}");
        expected.push((body, want));
    }
    // A batch request mixing every subset.
    let instances: Vec<Value> = expected.iter().map(|(b, _)| json!({"inputs": b})).collect();
    let v: Value =
        http.post(&url).json(&json!({"instances": instances})).send().unwrap().json().unwrap();
    for (got, (_, want)) in v["predictions"].as_array().unwrap().iter().zip(&expected) {
        assert!(close(&probs(got, &classes), want));
    }
    // Multipart: the camera's file and the audio's numbers as a text file.
    let form = reqwest::blocking::multipart::Form::new()
        .part("camera", reqwest::blocking::multipart::Part::bytes(png_bytes(0)).file_name("c.png"))
        .part("audio", reqwest::blocking::multipart::Part::bytes(b"0 1 2 3 4 5".to_vec()));
    let v: Value = http.post(&url).multipart(form).send().unwrap().json().unwrap();
    let (_, cam) = input("camera", 0, dir.path());
    let want = direct(
        &p,
        vec![
            ("camera".into(), cam),
            (
                "audio".into(),
                RawInput::Values { values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], shape: None },
            ),
        ],
    );
    assert!(close(&probs(&v, &classes), &want), "{v}");

    // Concurrent clients: 8 threads x 7 requests, every answer equals direct prediction.
    std::thread::scope(|s| {
        for t in 0..8 {
            let (url, expected, classes) = (&url, &expected, &classes);
            s.spawn(move || {
                let http = client();
                for k in 0..7 {
                    let (body, want) = &expected[(t + k) % expected.len()];
                    let v: Value = http
                        .post(url)
                        .json(&json!({"inputs": body}))
                        .send()
                        .unwrap()
                        .json()
                        .unwrap();
                    assert!(close(&probs(&v, classes), want), "thread {t}: {v}");
                }
            });
        }
    });
    let m = http.get(format!("http://{}/metrics", h.addr)).send().unwrap().text().unwrap();
    assert!(
        m.contains("mmanet_requests_total{status=\"200\"}")
            && m.contains("mmanet_batch_size_bucket"),
        "{m}"
    );
    h.shutdown().unwrap();
}

#[test]
fn bad_requests_get_a_4xx_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_file(dir.path());
    let h = serve(&model, |c| {
        c.max_body = 4096;
        c.read_timeout = Duration::from_millis(500);
    });
    let url = format!("http://{}/v1/predict", h.addr);
    let http = client();
    let send = |body: &str| {
        let r = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap())
    };
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let cases: Vec<(String, u16, &str)> = vec![
        ("{\"inputs\": ".into(), 400, "body"),
        ("[1, 2]".into(), 400, "body"),
        (r#"{"inputs": {"lidar": [1]}}"#.into(), 422, "inputs.lidar"),
        (r#"{"inputs": {}}"#.into(), 422, "inputs"),
        (r#"{"inputs": {"audio": [1, 2, 3]}}"#.into(), 422, "inputs.audio"),
        (r#"{"inputs": {"audio": [[1, 2], [3, 4], [5, 6]]}}"#.into(), 422, "inputs.audio"),
        (r#"{"inputs": {"audio": [1, 2, 3, 4, 5, 1e999]}}"#.into(), 400, "body"),
        (r#"{"inputs": {"audio": [1, 2, 3, 4, 5, "NaN"]}}"#.into(), 400, "inputs.audio"),
        (r#"{"inputs": {"audio": [1, 2, 3, 4, 5, 3e38, 3e39]}}"#.into(), 400, "inputs.audio"),
        (format!(r#"{{"inputs": {{"camera": {{"base64": "{}"}}}}}}"#, b64(b"not an image")), 422, "inputs.camera"),
        (r#"{"inputs": {"camera": [1, 2, 3]}}"#.into(), 422, "inputs.camera"),
        (r#"{"instances": [{"inputs": {"audio": [1,2,3,4,5,6]}}, {"inputs": {"imu": [[1, 2, 3]]}}]}"#.into(), 422, "instances[1].inputs.imu"),
        (r#"{"inputs": {"audio": [1,2,3,4,5,6]}, "extra": 1}"#.into(), 400, "extra"),
    ];
    for (body, status, field) in &cases {
        let (got, v) = send(body);
        assert_eq!(got, *status, "{body}: {v}");
        assert_eq!(v["error"]["field"].as_str().unwrap(), *field, "{body}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    // A body over --max-body.
    let big = format!(r#"{{"inputs": {{"audio": [{}]}}}}"#, vec!["1.0"; 2000].join(","));
    let (got, v) = send(&big);
    assert_eq!(got, 413, "{v}");
    // A slow client: headers, then a body that never comes: 408 within the read timeout.
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"in").unwrap();
    let t0 = Instant::now();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The server still answers, and never said 5xx.
    let (got, _) = send(r#"{"inputs": {"audio": [1,2,3,4,5,6]}}"#);
    assert_eq!(got, 200);
    let m = http.get(format!("http://{}/metrics", h.addr)).send().unwrap().text().unwrap();
    assert!(!m.contains("status=\"5"), "{m}");
    h.shutdown().unwrap();
}

#[test]
fn a_full_queue_answers_503_and_shutdown_drains_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_file(dir.path());
    let h = serve(&model, |c| {
        c.queue_capacity = 1;
        c.max_batch = 1;
        c.inference_delay = Duration::from_millis(400);
    });
    let url = format!("http://{}/v1/predict", h.addr);
    let body = json!({"inputs": {"audio": [1, 2, 3, 4, 5, 6]}});
    // 6 at once: one runs, one waits, the rest find the queue full.
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let r = client().post(&url).json(&body).send().unwrap();
                    let retry =
                        r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                    (r.status().as_u16(), retry)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let full: Vec<_> = statuses.iter().filter(|(s, _)| *s == 503).collect();
    assert!(
        !full.is_empty() && full.iter().all(|(_, r)| r.as_deref() == Some("1")),
        "{statuses:?}"
    );
    assert!(statuses.iter().any(|(s, _)| *s == 200), "{statuses:?}");

    // Shutdown while a request is in flight: it is answered, then the server stops.
    let in_flight = std::thread::spawn({
        let url = url.clone();
        let body = body.clone();
        move || client().post(&url).json(&body).send().unwrap().status().as_u16()
    });
    std::thread::sleep(Duration::from_millis(150));
    h.shutdown().unwrap();
    assert_eq!(in_flight.join().unwrap(), 200);
}

/// The value of the Prometheus sample `name` (with its labels) in `text`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn graph_replayed_serving_pads_to_buckets_and_answers_as_direct_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_file(dir.path());
    let h = serve(&model, |c| {
        c.cuda_graph = true;
        c.max_batch = 4;
        c.max_delay = Duration::from_millis(10);
    });
    let p = Predictor::load(&model, tch::Device::Cpu).unwrap();
    let classes = p.metadata().input_spec.classes.clone();
    let url = format!("http://{}/v1/predict", h.addr);
    let http = client();
    let m = http.get(format!("http://{}/metrics", h.addr)).send().unwrap().text().unwrap();
    // Warm-up: buckets 1, 2 and 4, three passes each, all eager on CPU.
    assert_eq!(metric(&m, "mmanet_graph_passes_total{how=\"eager\"}"), Some(9.0), "{m}");

    let expected: Vec<(serde_json::Map<String, Value>, Vec<f64>)> = subsets()
        .into_iter()
        .enumerate()
        .map(|(i, subset)| {
            let mut body = serde_json::Map::new();
            let mut raw = Vec::new();
            for m in &subset {
                let (v, r) = input(m, i as u8 + 3, dir.path());
                body.insert((*m).to_string(), v);
                raw.push(((*m).to_string(), r));
            }
            let want = direct(&p, raw);
            (body, want)
        })
        .collect();
    // 7 instances in one request: passes of 4 and 3 (padded to 4).
    let instances: Vec<Value> = expected.iter().map(|(b, _)| json!({"inputs": b})).collect();
    let v: Value =
        http.post(&url).json(&json!({"instances": instances})).send().unwrap().json().unwrap();
    let got = v["predictions"].as_array().unwrap();
    assert_eq!(got.len(), 7);
    for (got, (_, want)) in got.iter().zip(&expected) {
        assert!(close(&probs(got, &classes), want), "{got} vs {want:?}");
    }
    // Concurrent clients: batches of any size up to 4 mixing the subsets.
    std::thread::scope(|s| {
        for t in 0..6 {
            let (url, expected, classes) = (&url, &expected, &classes);
            s.spawn(move || {
                let http = client();
                for k in 0..5 {
                    let (body, want) = &expected[(t + k) % expected.len()];
                    let r = http.post(url).json(&json!({"inputs": body})).send().unwrap();
                    let v: Value = r.json().unwrap();
                    assert!(close(&probs(&v, classes), want), "thread {t}: {v}");
                }
            });
        }
    });
    let m = http.get(format!("http://{}/metrics", h.addr)).send().unwrap().text().unwrap();
    let eager = metric(&m, "mmanet_graph_passes_total{how=\"eager\"}").unwrap();
    // At least 2 passes for the 7 instances and 1 per batch of the 30 requests (at most 30).
    assert!((9.0 + 2.0 + 8.0..=9.0 + 2.0 + 30.0).contains(&eager), "{eager}\n{m}");
    assert_eq!(metric(&m, "mmanet_graph_passes_total{how=\"replay\"}"), Some(0.0), "{m}");
    assert_eq!(metric(&m, "mmanet_graph_captures_total"), Some(0.0), "{m}");
    h.shutdown().unwrap();
}

/// A request libtorch refuses inside the forward pass (a 1x1 image on a model whose camera
/// modality takes the file's own size, too small for the CNN's pooling) gets a 500 naming the
/// model; the requests batched with it are answered, and the server goes on.
#[test]
fn a_request_that_fails_in_libtorch_fails_alone_and_the_server_goes_on() {
    use mmanet_data::input_spec::Decoder;
    let dir = tempfile::tempdir().unwrap();
    let mut f = example::tiny_model(11).unwrap();
    let Decoder::Image { size, .. } = &mut f.metadata.input_spec.modalities[0].decoder else {
        unreachable!()
    };
    *size = None;
    let model = dir.path().join("free-size.safetensors");
    mmanet_deploy::write_model_file(&model, &f.metadata, &f.tensors).unwrap();
    // One batch of all three: the window is far longer than the requests take to arrive.
    let h = serve(&model, |c| {
        c.max_batch = 8;
        c.max_delay = Duration::from_secs(2);
    });
    let url = format!("http://{}/v1/predict", h.addr);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut tiny = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_pixel(1, 1, image::Luma([9]))
        .write_to(&mut tiny, image::ImageFormat::Png)
        .unwrap();
    let body = |png: &[u8]| json!({"inputs": {"camera": {"base64": b64(png)}}});
    let bodies = [body(&png_bytes(1)), body(tiny.get_ref()), body(&png_bytes(2))];
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let hs: Vec<_> = bodies
            .iter()
            .map(|b| {
                s.spawn(|| {
                    let r = client().post(&url).json(b).send().unwrap();
                    (r.status().as_u16(), r.json::<Value>().unwrap())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(answers[0].0, 200, "{answers:?}");
    assert_eq!(answers[2].0, 200, "{answers:?}");
    assert_eq!(answers[1].0, 500, "{answers:?}");
    let err = &answers[1].1["error"];
    assert_eq!(err["kind"], "prediction", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("forward pass") && message.contains("too small"), "{message}");
    let m = client().get(format!("http://{}/metrics", h.addr)).send().unwrap().text().unwrap();
    assert_eq!(metric(&m, "mmanet_batch_size_count"), Some(1.0), "one batch of three: {m}");
    assert_eq!(metric(&m, "mmanet_batch_size_sum"), Some(3.0), "{m}");
    // Later requests are served.
    let r = client().post(&url).json(&body(&png_bytes(3))).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    h.shutdown().unwrap();
}
