//! The manifest reader against the CASIA-SURF reader on the same JPEGs with the same training
//! chain (resize 144, rotation up to 30 degrees, 112 crop, flip, normalise), batches of 64 from
//! the same loader at 1 and 2 decoding threads. The two are interleaved: each round times one
//! epoch of each, in alternating order, so drifts of a shared machine hit both alike; the
//! result is each reader's median samples/s and the median of the per-round ratios
//! manifest / SURF (target: at least 0.90).
//!
//! `cargo bench -p mmanet-data --bench manifest_loader [-- --quick]`, or through
//! `cargo xtask bench loader`; writes `target/bench/manifest_loader.json`.

#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mmanet_data::manifest::{
    ImageAugment, ManifestDecoder, ManifestModality, ManifestSource, SplitFractions,
};
use mmanet_data::surf::{SurfAugment, SurfDataset, write_synthetic_surf};
use mmanet_data::{DataLoader, DataSource, Dataset, LoaderConfig, MaskPolicy, Split};

const SAMPLES: usize = 256;
const BATCH: usize = 64;

fn manifest_over(dir: &Path, surf: &SurfDataset) -> ManifestSource {
    let mut csv = String::from("id,label,split,rgb,depth,ir\n");
    for (i, e) in surf.entries().iter().enumerate() {
        let p: Vec<String> = e.paths.iter().map(|p| p.display().to_string()).collect();
        csv += &format!("s{i},{},train,{},{},{}\n", e.label, p[0], p[1], p[2]);
    }
    let path = dir.join("surf.csv");
    std::fs::write(&path, csv).expect("manifest");
    // SURF's `(x - 127.5) / 128` as `(x / 255 - mean) / std`.
    let decoder = ManifestDecoder::Image {
        size: [112, 112],
        channels: 3,
        mean: 0.5,
        std: 128.0 / 255.0,
        flip: true,
        augment: Some(ImageAugment { resize: 144, max_angle: 30, canvas_ratio: 0.8 }),
    };
    let modality =
        |name: &str| ManifestModality { name: name.into(), symbol: None, decoder: decoder.clone() };
    ManifestSource {
        path,
        modalities: vec![modality("rgb"), modality("depth"), modality("ir")],
        classes: vec!["0".into(), "1".into()],
        split: SplitFractions::default(),
        cache: Default::default(),
    }
}

/// Seconds for one epoch of `loader`.
fn epoch(loader: &DataLoader, epoch: u64) -> f64 {
    let t = Instant::now();
    let mut n = 0;
    for batch in loader.iter(epoch) {
        n += std::hint::black_box(batch.expect("batch").inputs[0].size()[0]);
    }
    assert_eq!(n as usize, SAMPLES / BATCH * BATCH);
    t.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; without it (`cargo test --all-targets`) this is a smoke
    // run: one round, nothing written.
    let smoke = !args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = if smoke {
        1
    } else if quick {
        3
    } else {
        15
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let info = write_synthetic_surf(dir.path(), SAMPLES, 0, 180).expect("synthetic SURF");
    let surf = SurfDataset::open(dir.path(), &info.lists[0])
        .expect("list")
        .with_augment(SurfAugment::train())
        .expect("augment");
    let manifest = manifest_over(dir.path(), &surf);
    manifest.check().expect("manifest config");
    let manifest = manifest.open(Split::Train, 0).expect("manifest");
    let surf: Arc<dyn Dataset> = Arc::new(surf);
    assert_eq!(manifest.len(), surf.len());
    let mut results = Vec::new();
    for threads in [1usize, 2] {
        let cfg = LoaderConfig { threads, prefetch: 2, ..LoaderConfig::train(BATCH, 0) };
        let loader = |d: &Arc<dyn Dataset>| {
            DataLoader::new(d.clone(), MaskPolicy::uniform_all(d.modalities()), cfg.clone())
                .expect("loader")
        };
        let (a, b) = (loader(&surf), loader(&manifest));
        // Warm-up: page cache, thread-local buffers.
        epoch(&a, 0);
        epoch(&b, 0);
        let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..rounds {
            let e = r as u64 + 1;
            let (sa, sb) = if r % 2 == 0 {
                let sa = epoch(&a, e);
                (sa, epoch(&b, e))
            } else {
                let sb = epoch(&b, e);
                (epoch(&a, e), sb)
            };
            ta.push(SAMPLES as f64 / sa);
            tb.push(SAMPLES as f64 / sb);
            ratio.push(sa / sb);
        }
        let (surf_sps, manifest_sps, ratio) =
            (median(&mut ta), median(&mut tb), median(&mut ratio));
        println!(
            "threads {threads}: SURF {surf_sps:.0} samples/s, manifest {manifest_sps:.0} samples/s, \
             manifest / SURF {ratio:.3} (median of {rounds} interleaved rounds; target >= 0.90: {})",
            if ratio >= 0.90 { "met" } else { "missed" }
        );
        results.push(serde_json::json!({
            "threads": threads,
            "surf_samples_per_s": surf_sps,
            "manifest_samples_per_s": manifest_sps,
            "ratio_manifest_over_surf": ratio,
            "rounds": rounds,
        }));
    }
    if smoke {
        return;
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    let json = serde_json::json!({
        "bench": "manifest_loader",
        "samples": SAMPLES,
        "batch": BATCH,
        "image_side": 180,
        "results": results,
    });
    let path = out.join("manifest_loader.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json") + "\n")
        .expect("write");
    eprintln!("wrote {}", path.display());
}
