//! `Predictor::with_cuda_graphs`: batches padded to the batch-size buckets give every sample
//! what eager prediction gives it, whatever the mix of modality subsets and the batch length;
//! on CPU nothing is captured and every pass is counted as eager.

use std::path::Path;

use mmanet_deploy::graphs::{GraphCounts, WARMUP_RUNS};
use mmanet_deploy::{Output, Predictor, Prepared, RawInput, example, prepare};

fn grey_png(path: &Path, seed: u8) {
    let img = image::GrayImage::from_fn(8, 8, |x, y| {
        image::Luma([((x * 17 + y * 3 + u32::from(seed) * 29) % 251) as u8])
    });
    img.save(path).unwrap();
}

/// Sample `i`: one of the 7 non-empty subsets of (camera, audio, imu), with values of its own.
fn sample(p: &Predictor, dir: &Path, i: usize) -> Prepared {
    let bits = i % 7 + 1;
    let mut raw = Vec::new();
    if bits & 1 != 0 {
        let img = dir.join(format!("c{i}.png"));
        grey_png(&img, i as u8);
        raw.push(("camera".to_string(), RawInput::File(img)));
    }
    if bits & 2 != 0 {
        let v = (0..6).map(|k| (i * 7 + k) as f32 * 0.3 - 2.0).collect();
        raw.push(("audio".to_string(), RawInput::Values { values: v, shape: None }));
    }
    if bits & 4 != 0 {
        let v = (0..8).map(|k| ((i + k) % 5) as f32 * 0.5 - 1.0).collect();
        raw.push(("imu".to_string(), RawInput::Values { values: v, shape: Some(vec![4, 2]) }));
    }
    prepare(p.metadata(), raw, "").unwrap()
}

fn classes(o: &Output) -> &[f64] {
    match o {
        Output::Classes(c) => c,
        Output::LabelMap { .. } => panic!("a classifier"),
    }
}

#[test]
fn padded_bucketed_passes_equal_eager_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let eager = Predictor::new(example::tiny_model(5).unwrap(), tch::Device::Cpu).unwrap();
    let graphs = Predictor::new(example::tiny_model(5).unwrap(), tch::Device::Cpu)
        .unwrap()
        .with_cuda_graphs(4)
        .unwrap();
    assert_eq!(eager.graph_counts(), None);
    assert_eq!(graphs.graph_counts(), Some(GraphCounts::default()));

    // Buckets 1, 2, 4: three warm-up passes each (two before the capture, and the capture).
    graphs.warm_up().unwrap();
    let warm = 3 * (WARMUP_RUNS as u64 + 1);
    assert_eq!(graphs.graph_counts(), Some(GraphCounts { captures: 0, replays: 0, eager: warm }));

    let samples: Vec<Prepared> = (0..11).map(|i| sample(&eager, dir.path(), i)).collect();
    let mut passes = warm;
    // 11 samples: chunks of 4, 4 and 3 (padded to 4); then 1 to 5 samples (5: 4 + 1).
    for n in [11, 1, 2, 3, 4, 5] {
        let batch = &samples[..n];
        let want = eager.predict(batch).unwrap();
        let got = graphs.predict(batch).unwrap();
        assert_eq!(got.len(), n);
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            let (w, g) = (classes(w), classes(g));
            let close = w.iter().zip(g).all(|(a, b)| (a - b).abs() <= 1e-5 * a.abs().max(1e-6));
            assert!(close, "n = {n}, sample {k}: {w:?} vs {g:?}");
        }
        passes += n.div_ceil(4) as u64;
        assert_eq!(graphs.graph_counts().unwrap().eager, passes, "n = {n}");
    }
    // The subsets matter: samples 0 (camera) and 1 (audio) differ.
    let two = graphs.predict(&samples[..2]).unwrap();
    assert_ne!(classes(&two[0]), classes(&two[1]));
}
