//! Generic nets: shapes for every branch kind, exact masking, sequence lengths, backward.

use mmanet_core::{Fidelity, ModalitySet};
use mmanet_models::{
    BranchConfig, GenericFusion, GenericNet, GenericNetConfig, ModelError, MultiModalNet, NetRole,
};
use tch::{Device, Kind, Tensor, nn};

fn cfg(fusion: GenericFusion) -> GenericNetConfig {
    GenericNetConfig {
        // The task's order: image, audio, accelerometer.
        modalities: ModalitySet::from_names(["image", "audio", "accelerometer"]).unwrap(),
        branches: vec![
            BranchConfig::SmallCnn { in_channels: 1, channels: vec![4, 8], out_dim: 6 },
            BranchConfig::Conv1d { in_features: 5, channels: vec![8], kernel: 3, out_dim: 6 },
            BranchConfig::Mlp { in_dim: 7, hidden: vec![10], out_dim: 6 },
        ],
        trunk_hidden: vec![12, 9],
        n_classes: 4,
        fusion,
    }
}

fn inputs(b: i64) -> Vec<Tensor> {
    let o = (Kind::Float, Device::Cpu);
    vec![Tensor::randn([b, 1, 28, 28], o), Tensor::randn([b, 10, 5], o), Tensor::randn([b, 7], o)]
}

fn mask(rows: &[[f32; 3]]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, 3])
}

#[test]
fn shapes_for_every_role() {
    tch::manual_seed(20);
    for role in [NetRole::Teacher, NetRole::Deployment, NetRole::Student] {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = GenericNet::new(&vs.root(), &cfg(GenericFusion::Concat), role).unwrap();
        let out = tch::no_grad(|| net.forward_t(&inputs(3), &mask(&[[1., 0., 1.]; 3]), false));
        assert_eq!(out.logits.size(), [3, 4]);
        assert_eq!(out.features.len(), 2);
        assert_eq!(out.features[0].size(), [3, 12]);
        assert_eq!(out.features[1].size(), [3, 9]);
        assert_eq!(out.aux_logits.is_some(), role == NetRole::Student);
        let has_aux = vs.variables().keys().any(|k| k.starts_with("auxi_bone."));
        assert_eq!(has_aux, role == NetRole::Student);
    }
}

#[test]
fn small_image_16x15_and_sequence_lengths_accepted() {
    tch::manual_seed(21);
    let mut c = cfg(GenericFusion::Concat);
    c.branches[0] = BranchConfig::SmallCnn { in_channels: 1, channels: vec![4, 4], out_dim: 6 };
    let vs = nn::VarStore::new(Device::Cpu);
    let net = GenericNet::new(&vs.root(), &c, NetRole::Student).unwrap();
    let mut x = inputs(2);
    x[0] = Tensor::randn([2, 1, 16, 15], (Kind::Float, Device::Cpu));
    x.push(Tensor::from_slice(&[10i64, 4]));
    let out = tch::no_grad(|| net.forward_t(&x, &mask(&[[1., 1., 1.]; 2]), false));
    assert_eq!(out.logits.size(), [2, 4]);
    // Wrong number of inputs is a typed error.
    x.push(Tensor::from_slice(&[1i64, 1]));
    let m = mask(&[[1., 1., 1.]; 2]);
    assert!(matches!(net.f_forward(&x, &m, false), Err(ModelError::Inputs(_))));
}

#[test]
fn padding_beyond_length_changes_nothing() {
    tch::manual_seed(22);
    let vs = nn::VarStore::new(Device::Cpu);
    let net =
        GenericNet::new(&vs.root(), &cfg(GenericFusion::Concat), NetRole::Deployment).unwrap();
    let mut x = inputs(2);
    x.push(Tensor::from_slice(&[6i64, 10]));
    let m = mask(&[[1., 1., 1.]; 2]);
    let a = tch::no_grad(|| net.forward_t(&x, &m, false));
    let y: Vec<Tensor> = x.iter().map(|t| t.copy()).collect();
    // Steps 6..10 of sample 0 are padding.
    y[1].get(0).narrow(0, 6, 4).copy_(&Tensor::randn([4, 5], (Kind::Float, Device::Cpu)));
    let b = tch::no_grad(|| net.forward_t(&y, &m, false));
    assert!(a.logits.get(0).allclose(&b.logits.get(0), 1e-6, 1e-7, false));
    // Without lengths, the same change does matter.
    let a2 = tch::no_grad(|| net.forward_t(&x[..3], &m, false));
    let b2 = tch::no_grad(|| net.forward_t(&y[..3], &m, false));
    assert!(!a2.logits.get(0).equal(&b2.logits.get(0)));
}

#[test]
fn mask_zeroes_a_branch_exactly() {
    tch::manual_seed(23);
    for fusion in [
        GenericFusion::Concat,
        GenericFusion::MeanVar { fidelity: Fidelity::Paper },
        GenericFusion::MeanVar { fidelity: Fidelity::ReferenceCode },
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = GenericNet::new(&vs.root(), &cfg(fusion), NetRole::Student).unwrap();
        let x = inputs(2);
        let m = mask(&[[1., 0., 1.], [0., 1., 0.]]);
        if fusion == GenericFusion::Concat {
            let fused = tch::no_grad(|| net.f_fused(&x, &m, false).unwrap());
            assert_eq!(fused.size(), [2, 18]);
            // Sample 0 lacks audio (columns 6..12), sample 1 image and accelerometer.
            assert_eq!(fused.get(0).narrow(0, 6, 6).abs().sum(Kind::Float).double_value(&[]), 0.0);
            assert_eq!(fused.get(1).narrow(0, 0, 6).abs().sum(Kind::Float).double_value(&[]), 0.0);
            assert_eq!(fused.get(1).narrow(0, 12, 6).abs().sum(Kind::Float).double_value(&[]), 0.0);
        }
        let a = tch::no_grad(|| net.forward_t(&x, &m, false));
        let y: Vec<Tensor> = x.iter().map(|t| t.copy()).collect();
        y[1].get(0).copy_(&Tensor::randn([10, 5], (Kind::Float, Device::Cpu)));
        y[0].get(1).copy_(&Tensor::randn([1, 28, 28], (Kind::Float, Device::Cpu)));
        y[2].get(1).copy_(&Tensor::randn([7], (Kind::Float, Device::Cpu)));
        let b = tch::no_grad(|| net.forward_t(&y, &m, false));
        assert!(a.logits.equal(&b.logits), "{fusion:?}");
        assert!(a.aux_logits.unwrap().equal(&b.aux_logits.unwrap()));
    }
}

#[test]
fn backward_reaches_branches_from_both_heads() {
    tch::manual_seed(24);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = GenericNet::new(&vs.root(), &cfg(GenericFusion::Concat), NetRole::Student).unwrap();
    let y = Tensor::from_slice(&[0i64, 1, 2, 3]);
    let g = |n: &str| {
        let t = vs.variables()[n].grad();
        if t.defined() { t.abs().sum(Kind::Float).double_value(&[]) } else { 0.0 }
    };
    // The aux loss alone reaches every branch and R, not the main trunk.
    let out = net.forward_t(&inputs(4), &mask(&[[1., 1., 1.]; 4]), true);
    out.aux_logits.unwrap().cross_entropy_for_logits(&y).backward();
    assert!(g("special_bone_image.0.conv.weight") > 0.0);
    assert!(g("special_bone_audio.0.conv.weight") > 0.0);
    assert!(g("special_bone_accelerometer.0.fc.weight") > 0.0);
    assert!(g("auxi_bone.out.weight") > 0.0);
    assert_eq!(g("shared_bone.0.fc.weight"), 0.0);
    // The main loss reaches the trunk.
    let out = net.forward_t(&inputs(4), &mask(&[[1., 1., 1.]; 4]), true);
    out.logits.cross_entropy_for_logits(&y).backward();
    assert!(g("shared_bone.0.fc.weight") > 0.0);
}

#[test]
fn config_checks_and_serde() {
    let mut c = cfg(GenericFusion::Concat);
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<GenericNetConfig>(&json).unwrap(), c);
    c.branches.pop();
    assert!(matches!(c.check(), Err(ModelError::Config(_))));
    let mut c = cfg(GenericFusion::MeanVar { fidelity: Fidelity::Paper });
    c.branches[2] = BranchConfig::Mlp { in_dim: 7, hidden: vec![], out_dim: 5 };
    assert!(matches!(c.check(), Err(ModelError::Config(_))));
}

#[test]
fn factory_builds_every_architecture_and_role() {
    use mmanet_models::{ClsNetConfig, EsaNetConfig, NetConfig, build_net};
    tch::manual_seed(25);
    let cfgs = [
        NetConfig::Cls(ClsNetConfig::surf().with_width(4)),
        NetConfig::Generic(cfg(GenericFusion::Concat)),
        NetConfig::Esanet(EsaNetConfig::nyuv2_r34()),
    ];
    for c in &cfgs {
        let json = serde_json::to_string(c).unwrap();
        assert_eq!(&serde_json::from_str::<NetConfig>(&json).unwrap(), c);
        for role in [NetRole::Teacher, NetRole::Deployment, NetRole::Student] {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = build_net(&vs.root(), c, role).unwrap();
            assert_eq!(net.modalities(), &c.modalities());
            let aux = vs.variables().keys().any(|k| k.starts_with("auxi_"));
            assert_eq!(aux, role == NetRole::Student, "{role:?}");
        }
    }
    // A cls forward through the box.
    let vs = nn::VarStore::new(Device::Cpu);
    let net = build_net(&vs.root(), &cfgs[0], NetRole::Student).unwrap();
    let x: Vec<Tensor> =
        (0..3).map(|_| Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu))).collect();
    let out = tch::no_grad(|| {
        net.forward_t(&x, &Tensor::ones([2, 3], (Kind::Float, Device::Cpu)), false)
    });
    assert_eq!(out.logits.size(), [2, 2]);
}
