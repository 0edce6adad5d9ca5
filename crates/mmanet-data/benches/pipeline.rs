//! CASIA-SURF training pipeline throughput: decode three ~180x180 JPEGs per sample, apply the
//! reference augmentation (144 resize, rotation, 112 crop, flip), collate batches of 64;
//! samples per second at 1 and 2 decoding threads; and each stage alone on one thread (decode
//! of the three files, the 180 -> 144 resize, the rotated 112x112 window).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mmanet_core::ModalitySet;
use mmanet_data::surf::{SurfAugment, SurfDataset, write_synthetic_surf};
use mmanet_data::transform::{
    CanvasRotation, Image8, Normalise, Planar8, ResizeScratch, decode_bgr_into, read_bgr,
};
use mmanet_data::{DataLoader, Dataset, LoaderConfig, MaskPolicy};

const SAMPLES: usize = 128;
const BATCH: usize = 64;

fn pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let info = write_synthetic_surf(dir.path(), SAMPLES, 0, 180).expect("synthetic SURF");
    let ds: Arc<dyn Dataset> = Arc::new(
        SurfDataset::open(dir.path(), &info.lists[0])
            .expect("list")
            .with_augment(SurfAugment::train())
            .expect("augment"),
    );
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let mut group = c.benchmark_group("surf_train_pipeline");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(SAMPLES as u64));
    for threads in [1usize, 2] {
        let cfg = LoaderConfig { threads, prefetch: 2, ..LoaderConfig::train(BATCH, 0) };
        let loader =
            DataLoader::new(ds.clone(), MaskPolicy::uniform_all(&set), cfg).expect("loader");
        let mut epoch = 0u64;
        group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
            b.iter(|| {
                epoch += 1;
                for batch in loader.iter(epoch) {
                    black_box(batch.expect("batch").inputs[0].size());
                }
            })
        });
    }
    group.finish();
}

/// The stages of one sample on one thread: decode (bytes already in memory), resize, rotation.
fn stages(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let info = write_synthetic_surf(dir.path(), 4, 0, 180).expect("synthetic SURF");
    let ds = SurfDataset::open(dir.path(), &info.lists[0]).expect("list");
    let paths = &ds.entries()[0].paths;
    let bytes: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).expect("file")).collect();
    let images: Vec<Image8> = paths.iter().map(|p| read_bgr(p).expect("decode")).collect();
    let mut group = c.benchmark_group("surf_sample_stages");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    group.bench_function("decode_3_jpegs", |b| {
        let mut out = Image8::default();
        b.iter(|| {
            for (bytes, p) in bytes.iter().zip(paths) {
                decode_bgr_into(bytes, p, &mut out).expect("decode");
                black_box(&out.data);
            }
        })
    });
    let mut resized: Vec<Image8> = images.iter().map(|i| i.resize_bilinear(144, 144)).collect();
    let mut planar: Vec<Planar8> = resized.iter().map(Planar8::from_interleaved).collect();
    group.bench_function("resize_3_to_144", |b| {
        let mut scratch = ResizeScratch::default();
        b.iter(|| {
            for (img, out) in images.iter().zip(resized.iter_mut()) {
                img.resize_bilinear_into(144, 144, out, &mut scratch);
            }
            black_box(&resized);
        })
    });
    group.bench_function("resize_3_to_144_planar", |b| {
        let mut scratch = ResizeScratch::default();
        b.iter(|| {
            for (img, out) in images.iter().zip(planar.iter_mut()) {
                img.resize_bilinear_planar_into(144, 144, out, &mut scratch);
            }
            black_box(&planar);
        })
    });
    for angle in [0, 17, 30] {
        let rot = CanvasRotation::new(144, 144, angle, 0.8);
        let mut outs = vec![vec![0f32; 3 * 112 * 112]; planar.len()];
        group.bench_with_input(BenchmarkId::new("rotate_3_planar_112", angle), &angle, |b, _| {
            b.iter(|| {
                let mut slots: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
                rot.warp_windows_planar(&planar, 1, 2, 112, true, Normalise::SURF, &mut slots);
                black_box(&outs);
            })
        });
    }
    for angle in [0, 30] {
        let rot = CanvasRotation::new(144, 144, angle, 0.8);
        let mut out = vec![0f32; 3 * 112 * 112];
        group.bench_with_input(BenchmarkId::new("rotate_3_window_112", angle), &angle, |b, _| {
            b.iter(|| {
                for img in &resized {
                    rot.warp_window_chw(img, 1, 2, 112, true, Normalise::SURF, &mut out);
                    black_box(&out);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline, stages);
criterion_main!(benches);
