//! MAD forward + backward benchmarks (single-threaded CPU libtorch).
//!
//! - classification: B = 64, layer4 maps `[64, 512, 4, 4]`, both fidelities;
//! - segmentation: the NYUv2 j1 scale, `[8, 512, 30, 40]` (N = 9,600 pixels), blocks of 4,800.
//!
//! Besides criterion's timings, each benchmark prints the process's peak resident memory over
//! one iteration (VmHWM after resetting it through `/proc/self/clear_refs`, minus VmRSS before).

#![allow(clippy::print_stderr, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use mmanet_losses::{Fidelity, GramBlocks, SegMadConfig, mad_classification, mad_segmentation};
use std::time::Duration;
use tch::{Device, Kind, Tensor};

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak RSS growth (MiB) while running `f` once, if the kernel lets us reset VmHWM.
fn peak_mib(f: impl FnOnce()) -> Option<f64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    let before = status_kib("VmRSS:")?;
    f();
    let peak = status_kib("VmHWM:")?;
    Some(peak.saturating_sub(before) as f64 / 1024.0)
}

fn report_peak(name: &str, f: impl FnOnce()) {
    match peak_mib(f) {
        Some(m) => eprintln!("{name}: peak RSS growth over one forward+backward: {m:.1} MiB"),
        None => eprintln!("{name}: peak memory unavailable (no /proc/self/clear_refs)"),
    }
}

fn classification(c: &mut Criterion) {
    tch::manual_seed(0);
    let opts = (Kind::Float, Device::Cpu);
    let student = Tensor::randn([64, 512, 4, 4], opts).set_requires_grad(true);
    let teacher = Tensor::randn([64, 512, 4, 4], opts);
    let logits = Tensor::randn([64, 2], opts);
    let mut group = c.benchmark_group("mad_classification_b64_512x4x4");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
        let step = || {
            mad_classification(&student, &teacher, &logits, fidelity).backward();
            let _ = student.grad().zero_();
        };
        report_peak(&format!("mad_classification {fidelity}"), step);
        group.bench_function(fidelity.to_string(), |b| b.iter(step));
    }
    group.finish();
}

fn segmentation(c: &mut Criterion) {
    tch::manual_seed(0);
    let opts = (Kind::Float, Device::Cpu);
    let student = Tensor::randn([8, 512, 30, 40], opts).set_requires_grad(true);
    let teacher = Tensor::randn([8, 512, 30, 40], opts);
    let pred = Tensor::randn([8, 512, 30, 40], opts);
    let cfg = SegMadConfig { blocks: GramBlocks::Size(4800), ..SegMadConfig::default() };
    let step = || {
        mad_segmentation(&[(&student, &teacher)], &pred, &cfg).backward();
        let _ = student.grad().zero_();
    };
    report_peak("mad_segmentation N=9600 C=512 block=4800", step);
    let mut group = c.benchmark_group("mad_segmentation_n9600_c512_block4800");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function("forward_backward", |b| b.iter(step));
    group.finish();
}

fn configure() -> Criterion {
    tch::set_num_threads(1);
    Criterion::default()
}

criterion_group! { name = benches; config = configure(); targets = classification, segmentation }
criterion_main!(benches);
