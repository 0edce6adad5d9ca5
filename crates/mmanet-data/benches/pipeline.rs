//! CASIA-SURF training pipeline throughput: decode three ~180x180 JPEGs per sample, apply the
//! reference augmentation (144 resize, rotation, 112 crop, flip), collate batches of 64;
//! samples per second at 1 and 2 decoding threads.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mmanet_core::ModalitySet;
use mmanet_data::surf::{SurfAugment, SurfDataset, write_synthetic_surf};
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
    let set = ModalitySet::surf();
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

criterion_group!(benches, pipeline);
criterion_main!(benches);
