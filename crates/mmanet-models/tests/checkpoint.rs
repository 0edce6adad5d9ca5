//! Checkpoints: exact round trips, strict-load errors, deployment export, torchvision weights.

use mmanet_models::checkpoint::{
    LoadMode, export_deployment, load_torchvision_resnet, load_var_store, named_variables,
    save_var_store, write_safetensors_atomic,
};
use mmanet_models::resnet::{BlockKind, ResNetConfig, ResNetEncoder};
use mmanet_models::{ClsNetConfig, DeploymentNet, ModelError, MultiModalNet, StudentNet};
use tch::{Device, Kind, Tensor, nn};

fn small() -> ClsNetConfig {
    ClsNetConfig::surf().with_width(4)
}

#[test]
fn save_load_round_trip_is_exact() {
    tch::manual_seed(10);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("student.safetensors");
    let a = nn::VarStore::new(Device::Cpu);
    let net_a = StudentNet::new(&a.root(), &small());
    // Make buffers non-trivial: one train forward updates running stats and counters.
    let x: Vec<Tensor> =
        (0..3).map(|_| Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu))).collect();
    let m = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
    let _ = tch::no_grad(|| net_a.forward_t(&x, &m, true));
    save_var_store(&a, &path).unwrap();
    // Only the final file is left in the directory (the temporary was renamed).
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1);

    tch::manual_seed(11);
    let b = nn::VarStore::new(Device::Cpu);
    let net_b = StudentNet::new(&b.root(), &small());
    let report = load_var_store(&b, &path, LoadMode::Strict).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    let (va, vb) = (named_variables(&a), named_variables(&b));
    assert_eq!(va.len(), vb.len());
    for ((na, ta), (nb, tb)) in va.iter().zip(&vb) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after round trip");
    }
    let oa = tch::no_grad(|| net_a.forward_t(&x, &m, false));
    let ob = tch::no_grad(|| net_b.forward_t(&x, &m, false));
    assert!(oa.logits.equal(&ob.logits));
}

#[test]
fn strict_load_lists_missing_and_unexpected() {
    tch::manual_seed(12);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.safetensors");
    let d = nn::VarStore::new(Device::Cpu);
    let _deploy = DeploymentNet::new(&d.root(), &small());
    let mut named = named_variables(&d);
    named.retain(|(n, _)| n != "shared_bone.4.bias");
    named.push(("extra.weight".into(), Tensor::zeros([1], (Kind::Float, Device::Cpu))));
    write_safetensors_atomic(&named, &path).unwrap();
    let s = nn::VarStore::new(Device::Cpu);
    let _student = StudentNet::new(&s.root(), &small());
    match load_var_store(&s, &path, LoadMode::Strict) {
        Err(ModelError::NameMismatch { missing, unexpected }) => {
            assert!(missing.contains(&"shared_bone.4.bias".to_string()));
            assert!(missing.iter().any(|n| n.starts_with("auxi_bone.")));
            assert_eq!(unexpected, vec!["extra.weight".to_string()]);
        }
        other => panic!("expected NameMismatch, got {other:?}"),
    }
    // Partial load reports the same sets and succeeds.
    let rep = load_var_store(&s, &path, LoadMode::Partial).unwrap();
    assert_eq!(rep.unexpected, vec!["extra.weight".to_string()]);
}

#[test]
fn shape_mismatch_names_the_tensor() {
    tch::manual_seed(13);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.safetensors");
    let wide = nn::VarStore::new(Device::Cpu);
    let _w = DeploymentNet::new(&wide.root(), &ClsNetConfig::surf().with_width(8));
    save_var_store(&wide, &path).unwrap();
    let narrow = nn::VarStore::new(Device::Cpu);
    let _n = DeploymentNet::new(&narrow.root(), &small());
    match load_var_store(&narrow, &path, LoadMode::Strict) {
        Err(ModelError::ShapeMismatch { name, expected, got }) => {
            assert!(!name.is_empty());
            assert_ne!(expected, got);
            let msg = ModelError::ShapeMismatch { name: name.clone(), expected, got }.to_string();
            assert!(msg.contains(&name));
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
}

#[test]
fn export_drops_regularizer_and_loads_into_deployment_net() {
    tch::manual_seed(14);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.safetensors");
    let s = nn::VarStore::new(Device::Cpu);
    let student = StudentNet::new(&s.root(), &small());
    export_deployment(&s, &path).unwrap();
    let d = nn::VarStore::new(Device::Cpu);
    let deploy = DeploymentNet::new(&d.root(), &small());
    load_var_store(&d, &path, LoadMode::Strict).unwrap();
    let x: Vec<Tensor> =
        (0..3).map(|_| Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu))).collect();
    let m = Tensor::from_slice(&[1f32, 0., 1., 1., 1., 0.]).view([2, 3]);
    let a = tch::no_grad(|| student.forward_t(&x, &m, false));
    let b = tch::no_grad(|| deploy.forward_t(&x, &m, false));
    assert!(a.logits.equal(&b.logits));
}

#[test]
fn torchvision_weights_load_with_summed_depth_stem() {
    tch::manual_seed(15);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tv.safetensors");
    // A tiny synthetic "torchvision" ResNet (width 4, one block per stage, RGB stem) plus an fc
    // and without num_batches_tracked, as in torchvision's released files.
    let cfg = |c| ResNetConfig {
        block: BlockKind::Bottleneck,
        layers: [1, 1, 1, 1],
        in_channels: c,
        width: 4,
    };
    let src = nn::VarStore::new(Device::Cpu);
    let _enc = ResNetEncoder::new(&src.root(), &cfg(3));
    let mut named = named_variables(&src);
    named.retain(|(n, _)| !n.ends_with("num_batches_tracked"));
    named.push(("fc.weight".into(), Tensor::zeros([10, 128], (Kind::Float, Device::Cpu))));
    named.push(("fc.bias".into(), Tensor::zeros([10], (Kind::Float, Device::Cpu))));
    write_safetensors_atomic(&named, &path).unwrap();

    let dst = nn::VarStore::new(Device::Cpu);
    let depth = ResNetEncoder::new(&(dst.root() / "encoder_depth"), &cfg(1));
    let rgb = ResNetEncoder::new(&(dst.root() / "encoder_rgb"), &cfg(3));
    let rep = load_torchvision_resnet(&dst, "encoder_depth.", &path).unwrap();
    assert!(rep.missing.iter().all(|n| n.ends_with("num_batches_tracked")));
    load_torchvision_resnet(&dst, "encoder_rgb.", &path).unwrap();
    let sv = src.variables();
    let dv = dst.variables();
    let stem = &sv["conv1.weight"]; // [4, 3, 7, 7]
    assert!(dv["encoder_depth.conv1.weight"].allclose(
        &stem.sum_dim_intlist(1, true, None),
        1e-6,
        1e-7,
        false
    ));
    assert!(dv["encoder_rgb.layer3.0.conv2.weight"].equal(&sv["layer3.0.conv2.weight"]));
    // With the summed stem, a 1-channel image d behaves like the RGB image (d, d, d).
    let d = Tensor::randn([1, 1, 64, 64], (Kind::Float, Device::Cpu));
    use tch::nn::ModuleT;
    let a = tch::no_grad(|| depth.forward_t(&d, false));
    let b = tch::no_grad(|| rgb.forward_t(&d.repeat([1, 3, 1, 1]), false));
    assert!(a.allclose(&b, 1e-4, 1e-5, false));
}
