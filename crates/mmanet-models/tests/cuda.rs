//! CUDA cases (feature `cuda`): the same small nets on `Device::Cuda(0)` agree with the CPU.
#![cfg(feature = "cuda")]

use mmanet_models::esanet::blocks::UpsamplePad;
use mmanet_models::resnet::{BlockKind, ResNetConfig};
use mmanet_models::{ClsNetConfig, EsaNet, EsaNetConfig, MultiModalNet, NetRole, StudentNet};
use tch::{Device, Kind, Tensor, nn};

#[test]
fn cls_student_cuda_matches_cpu() {
    if !tch::Cuda::is_available() {
        tracing::warn!("CUDA not available; skipping");
        return;
    }
    tch::manual_seed(40);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let net = StudentNet::new(&vs.root(), &ClsNetConfig::surf().with_width(16));
    let x: Vec<Tensor> =
        (0..3).map(|_| Tensor::randn([4, 3, 112, 112], (Kind::Float, Device::Cpu))).collect();
    let m = Tensor::from_slice(&[1f32, 0., 1., 0., 1., 1., 1., 1., 1., 0., 0., 1.]).view([4, 3]);
    let cpu = tch::no_grad(|| net.forward_t(&x, &m, false));
    vs.set_device(Device::Cuda(0));
    let xg: Vec<Tensor> = x.iter().map(|t| t.to_device(Device::Cuda(0))).collect();
    let gpu = tch::no_grad(|| net.forward_t(&xg, &m.to_device(Device::Cuda(0)), false));
    assert!(gpu.logits.to_device(Device::Cpu).allclose(&cpu.logits, 1e-3, 1e-4, false));
    let aux = gpu.aux_logits.unwrap().to_device(Device::Cpu);
    assert!(aux.allclose(&cpu.aux_logits.unwrap(), 1e-3, 1e-4, false));
}

#[test]
fn esanet_student_runs_on_cuda() {
    if !tch::Cuda::is_available() {
        tracing::warn!("CUDA not available; skipping");
        return;
    }
    tch::manual_seed(41);
    let cfg = EsaNetConfig {
        encoder: ResNetConfig {
            block: BlockKind::Bottleneck,
            layers: [1, 1, 1, 1],
            in_channels: 3,
            width: 16,
        },
        decoder_channels: [64, 32, 16],
        decoder_blocks: 1,
        upsample_pad: UpsamplePad::Zero,
        ..EsaNetConfig::nyuv2()
    };
    let vs = nn::VarStore::new(Device::Cuda(0));
    let net = EsaNet::new(&vs.root(), &cfg, NetRole::Student).unwrap();
    let o = (Kind::Float, Device::Cuda(0));
    let x = vec![Tensor::randn([2, 3, 64, 64], o), Tensor::randn([2, 1, 64, 64], o)];
    let out = net.forward_t(&x, &Tensor::ones([2, 2], o), true);
    assert_eq!(out.logits.size(), [2, 40, 64, 64]);
    (out.logits.mean(Kind::Float) + out.aux_logits.unwrap().mean(Kind::Float)).backward();
    let g = vs.variables()["encoder_depth.conv1.weight"].grad();
    assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0);
}
