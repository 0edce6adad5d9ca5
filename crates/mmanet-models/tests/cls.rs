//! Classification nets on CPU with small widths: shapes, feature-level masking, gradient paths,
//! HeMIS fusion.

use mmanet_core::Fidelity;
use mmanet_models::{
    ClsFusion, ClsNetConfig, DeploymentNet, MultiModalNet, StudentNet, TeacherNet,
};
use tch::{Device, Kind, Tensor, nn};

fn inputs(b: i64, hw: i64) -> Vec<Tensor> {
    (0..3).map(|_| Tensor::randn([b, 3, hw, hw], (Kind::Float, Device::Cpu))).collect()
}

fn mask(rows: &[[f32; 3]]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, 3])
}

#[test]
fn surf_shapes_at_112() {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ClsNetConfig::surf();
    let student = StudentNet::new(&vs.root(), &cfg);
    let out = tch::no_grad(|| {
        student.forward_t(&inputs(2, 112), &mask(&[[1., 1., 1.], [0., 1., 0.]]), false)
    });
    assert_eq!(out.logits.size(), [2, 2]);
    assert_eq!(out.features[0].size(), [2, 256, 7, 7]);
    assert_eq!(out.features[1].size(), [2, 512, 4, 4]);
    assert_eq!(out.aux_logits.unwrap().size(), [2, 2]);
    assert!(out.side_logits.is_empty());
    // 316 official state_dict entries (fixture.md), incl. num_batches_tracked.
    assert_eq!(vs.variables().len(), 316);
    assert_eq!(student.modalities().len(), 3);
}

#[test]
fn masked_modality_contributes_nothing() {
    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ClsNetConfig::surf().with_width(8);
    let student = StudentNet::new(&vs.root(), &cfg);
    let x = inputs(3, 32);
    // Sample 0 lacks depth, sample 1 lacks RGB and IR, sample 2 has everything.
    let m = mask(&[[1., 0., 1.], [0., 1., 0.], [1., 1., 1.]]);
    let a = tch::no_grad(|| student.forward_t(&x, &m, false));
    let y: Vec<Tensor> = x.iter().map(|t| t.copy()).collect();
    // Change depth of sample 0 and RGB/IR of sample 1.
    y[1].get(0).copy_(&Tensor::randn([3, 32, 32], (Kind::Float, Device::Cpu)));
    y[0].get(1).copy_(&Tensor::randn([3, 32, 32], (Kind::Float, Device::Cpu)));
    y[2].get(1).copy_(&Tensor::randn([3, 32, 32], (Kind::Float, Device::Cpu)));
    let b = tch::no_grad(|| student.forward_t(&y, &m, false));
    for i in 0..2 {
        assert!(a.logits.get(i).equal(&b.logits.get(i)), "sample {i} changed");
        assert!(a.features[1].get(i).equal(&b.features[1].get(i)));
        assert!(
            a.aux_logits.as_ref().unwrap().get(i).equal(&b.aux_logits.as_ref().unwrap().get(i))
        );
    }
    // Sample 2 has all modalities present, so its output does react to its inputs.
    y[0].get(2).copy_(&Tensor::randn([3, 32, 32], (Kind::Float, Device::Cpu)));
    let c = tch::no_grad(|| student.forward_t(&y, &m, false));
    assert!(!a.logits.get(2).equal(&c.logits.get(2)));
}

#[test]
fn teacher_ignores_mask_and_deployment_uses_it() {
    tch::manual_seed(3);
    let cfg = ClsNetConfig::surf().with_width(8);
    let tvs = nn::VarStore::new(Device::Cpu);
    let teacher = TeacherNet::new(&tvs.root(), &cfg);
    let dvs = nn::VarStore::new(Device::Cpu);
    let deploy = DeploymentNet::new(&dvs.root(), &cfg);
    let x = inputs(2, 32);
    let full = mask(&[[1., 1., 1.], [1., 1., 1.]]);
    let part = mask(&[[1., 0., 0.], [0., 0., 1.]]);
    let t1 = tch::no_grad(|| teacher.forward_t(&x, &full, false));
    let t2 = tch::no_grad(|| teacher.forward_t(&x, &part, false));
    assert!(t1.logits.equal(&t2.logits));
    let d1 = tch::no_grad(|| deploy.forward_t(&x, &full, false));
    let d2 = tch::no_grad(|| deploy.forward_t(&x, &part, false));
    assert!(!d1.logits.equal(&d2.logits));
    assert!(d1.aux_logits.is_none());
    // Names: the teacher and the deployment net have the same variables.
    let mut a: Vec<String> = tvs.variables().into_keys().collect();
    let mut b: Vec<String> = dvs.variables().into_keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn aux_loss_gradient_reaches_branches_not_main_trunk() {
    tch::manual_seed(4);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ClsNetConfig::surf().with_width(8);
    let student = StudentNet::new(&vs.root(), &cfg);
    let out = student.forward_t(&inputs(4, 32), &mask(&[[1., 1., 1.]; 4]), true);
    let targets = Tensor::from_slice(&[0i64, 1, 1, 0]);
    let loss = out.aux_logits.unwrap().cross_entropy_for_logits(&targets);
    loss.backward();
    let vars = vs.variables();
    let g = |n: &str| vars[n].grad().abs().sum(Kind::Float).double_value(&[]);
    for m in ["rgb", "depth", "ir"] {
        assert!(g(&format!("special_bone_{m}.0.weight")) > 0.0, "{m} branch has no gradient");
    }
    assert!(g("auxi_bone.4.weight") > 0.0);
    // The deployment trunk is not on the aux loss's path.
    assert!(!vars["shared_bone.4.weight"].grad().defined() || g("shared_bone.4.weight") == 0.0);
}

#[test]
fn config_roundtrips_through_serde() {
    let cfg = ClsNetConfig {
        fusion: ClsFusion::MeanVar { fidelity: Fidelity::ReferenceCode },
        ..ClsNetConfig::surf()
    };
    let json = serde_json::to_string(&cfg).unwrap();
    let back: ClsNetConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
    assert_eq!(ClsNetConfig::surf().fused_channels(), 384);
    assert_eq!(cfg.fused_channels(), 256);
}

#[test]
fn hemis_mean_var_shapes_and_mask_invariance() {
    tch::manual_seed(5);
    for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
        let cfg = ClsNetConfig { fusion: ClsFusion::MeanVar { fidelity }, ..ClsNetConfig::surf() }
            .with_width(8);
        let vs = nn::VarStore::new(Device::Cpu);
        let student = StudentNet::new(&vs.root(), &cfg);
        let x = inputs(2, 32);
        let m = mask(&[[1., 0., 1.], [0., 1., 0.]]);
        let fused = tch::no_grad(|| student.deployment().f_fused(&x, &m, false).unwrap());
        assert_eq!(fused.size(), [2, 32, 4, 4]); // mean (2w = 16) + var (16)
        // Sample 1 has a single modality: variance is zero.
        assert_eq!(fused.get(1).narrow(0, 16, 16).abs().sum(Kind::Float).double_value(&[]), 0.0);
        let a = tch::no_grad(|| student.forward_t(&x, &m, false));
        let y: Vec<Tensor> = x.iter().map(|t| t.copy()).collect();
        y[1].get(0).copy_(&Tensor::randn([3, 32, 32], (Kind::Float, Device::Cpu)));
        y[0].get(1).copy_(&Tensor::randn([3, 32, 32], (Kind::Float, Device::Cpu)));
        let b = tch::no_grad(|| student.forward_t(&y, &m, false));
        assert!(a.logits.equal(&b.logits), "{fidelity}: masked inputs changed the output");
    }
}

#[test]
fn hemis_fusion_formula() {
    // Two modalities present out of three, C = 1, 1x1 maps: values 1 and 3 (absent: 100).
    // Equivalent python code (official SURF_MV, absent features zeroed):
    //   mean = (1 + 3 + 0) / 2 = 2; var_code = ((1-2)^2 + (3-2)^2 + (0-2)^2) / 2 = 3;
    //   paper (present only): ((1-2)^2 + (3-2)^2) / 2 = 1.
    use mmanet_models::hemis::mean_var_fusion;
    let f = |v: f32| Tensor::from_slice(&[v]).view([1, 1, 1, 1]);
    let feats = [f(1.0), f(100.0), f(3.0)];
    let m = mask(&[[1., 0., 1.]]);
    let p = mean_var_fusion(&feats, &m, Fidelity::Paper).view([2]);
    let c = mean_var_fusion(&feats, &m, Fidelity::ReferenceCode).view([2]);
    assert_eq!(Vec::<f32>::try_from(&p).unwrap(), vec![2.0, 1.0]);
    assert_eq!(Vec::<f32>::try_from(&c).unwrap(), vec![2.0, 3.0]);
}
