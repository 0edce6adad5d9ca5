//! Network forward (+ backward) benchmarks on single-threaded CPU libtorch.
//!
//! - `surf_student`: official CASIA-SURF student (width 64), B = 4, 3 x 112x112, train mode,
//!   forward + backward of CE(S) + CE(R);
//! - `esanet_r34_student`: ESANet ResNet34 student, B = 2, 64x64 RGB-D, train mode,
//!   forward + backward of the mean logits of both decoders.

#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mmanet_models::{ClsNetConfig, EsaNet, EsaNetConfig, MultiModalNet, NetRole, StudentNet};
use std::time::Duration;
use tch::{Device, Kind, Tensor, nn};

fn surf(c: &mut Criterion) {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = StudentNet::new(&vs.root(), &ClsNetConfig::surf());
    let b = 4;
    let x: Vec<Tensor> =
        (0..3).map(|_| Tensor::randn([b, 3, 112, 112], (Kind::Float, Device::Cpu))).collect();
    let m = Tensor::ones([b, 3], (Kind::Float, Device::Cpu));
    let y = Tensor::zeros([b], (Kind::Int64, Device::Cpu));
    let mut g = c.benchmark_group("surf_student");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function(BenchmarkId::new("fwd_bwd", format!("B{b}_112_RDI")), |bench| {
        bench.iter(|| {
            let out = net.forward_t(&x, &m, true);
            let loss = out.logits.cross_entropy_for_logits(&y)
                + out.aux_logits.unwrap().cross_entropy_for_logits(&y);
            loss.backward();
        })
    });
    g.finish();
}

fn esanet(c: &mut Criterion) {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = EsaNet::new(&vs.root(), &EsaNetConfig::nyuv2_r34(), NetRole::Student).unwrap();
    let o = (Kind::Float, Device::Cpu);
    let x = vec![Tensor::randn([2, 3, 64, 64], o), Tensor::randn([2, 1, 64, 64], o)];
    let m = Tensor::ones([2, 2], o);
    let mut g = c.benchmark_group("esanet_r34_student");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function(BenchmarkId::new("fwd_bwd", "B2_64_RD"), |bench| {
        bench.iter(|| {
            let out = net.forward_t(&x, &m, true);
            (out.logits.mean(Kind::Float) + out.aux_logits.unwrap().mean(Kind::Float)).backward();
        })
    });
    g.finish();
}

criterion_group!(benches, surf, esanet);
criterion_main!(benches);
