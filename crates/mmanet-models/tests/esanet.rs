//! ESANet at 64x64 on CPU: shapes, masking at the fusion points, backward, names, init.

use mmanet_models::checkpoint::{named_variables, write_safetensors_atomic};
use mmanet_models::esanet::EsaNetPretrained;
use mmanet_models::esanet::blocks::UpsamplePad;
use mmanet_models::resnet::BlockKind;
use mmanet_models::resnet::ResNetEncoder;
use mmanet_models::{EsaNet, EsaNetConfig, ModelError, MultiModalNet, NetRole};
use tch::{Device, Kind, Tensor, nn};

fn inputs(b: i64) -> Vec<Tensor> {
    let o = (Kind::Float, Device::Cpu);
    vec![Tensor::randn([b, 3, 64, 64], o), Tensor::randn([b, 1, 64, 64], o)]
}

#[test]
fn train_and_eval_shapes() {
    tch::manual_seed(30);
    for block in [BlockKind::Basic, BlockKind::Bottleneck] {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = EsaNet::new(&vs.root(), &EsaNetConfig::tiny(block), NetRole::Student).unwrap();
        let m = Tensor::from_slice(&[1f32, 1., 0., 1.]).view([2, 2]);
        let out = net.forward_t(&inputs(2), &m, true);
        assert_eq!(out.logits.size(), [2, 5, 64, 64]);
        let sides: Vec<Vec<i64>> = out.side_logits.iter().map(Tensor::size).collect();
        assert_eq!(sides, vec![vec![2, 5, 8, 8], vec![2, 5, 4, 4], vec![2, 5, 2, 2]]);
        let feats: Vec<Vec<i64>> = out.features.iter().map(Tensor::size).collect();
        assert_eq!(
            feats,
            vec![
                vec![2, 32, 2, 2],  // context /32
                vec![2, 32, 4, 4],  // skip3 /16
                vec![2, 16, 8, 8],  // skip2 /8
                vec![2, 8, 16, 16], // skip1 /4
                vec![2, 32, 4, 4],  // decoder feat_32 (after module 1, /16)
                vec![2, 16, 8, 8],  // feat_16
                vec![2, 8, 16, 16], // feat_8
            ]
        );
        assert_eq!(out.aux_logits.unwrap().size(), [2, 5, 64, 64]);
        let aux_sides: Vec<Vec<i64>> = out.aux_side_logits.iter().map(Tensor::size).collect();
        assert_eq!(aux_sides, sides, "auxi_decoder's side outputs: /8, /16, /32");
        let out = tch::no_grad(|| net.forward_t(&inputs(2), &m, false));
        assert!(out.side_logits.is_empty());
        assert!(out.aux_side_logits.is_empty());
    }
}

#[test]
fn nyuv2_resnet50_shapes_and_names() {
    tch::manual_seed(31);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = EsaNet::new(&vs.root(), &EsaNetConfig::nyuv2(), NetRole::Teacher).unwrap();
    let out = tch::no_grad(|| {
        net.forward_t(&inputs(2), &Tensor::ones([2, 2], (Kind::Float, Device::Cpu)), false)
    });
    assert_eq!(out.logits.size(), [2, 40, 64, 64]);
    assert_eq!(out.features[0].size(), [2, 512, 2, 2]);
    assert_eq!(out.features[3].size(), [2, 128, 16, 16]);
    assert!(out.aux_logits.is_none());
    let vars = vs.variables();
    for name in [
        "encoder_rgb.conv1.weight",
        "encoder_depth.layer4.2.conv3.weight",
        "se_layer0.se_rgb.fc.0.weight",
        "se_layer4.se_depth.fc.2.bias",
        "skip_layer1.0.conv.weight",
        "skip_layer3.0.bn.running_var",
        "context_module.features.1.1.conv.weight",
        "context_module.final_conv.conv.weight",
        "decoder.decoder_module_1.conv3x3.conv.weight",
        "decoder.decoder_module_3.decoder_blocks.2.conv1x3_2.bias",
        "decoder.decoder_module_2.side_output.weight",
        "decoder.decoder_module_2.upsample.conv.weight",
        "decoder.conv_out.weight",
        "decoder.upsample2.conv.bias",
    ] {
        assert!(vars.contains_key(name), "missing {name}");
    }
    assert_eq!(vars["encoder_depth.conv1.weight"].size(), [64, 1, 7, 7]);
    // PPM: 2048 -> 2 x 1024, concat 4096 -> 512 (docs/method.md §3.2).
    assert_eq!(vars["context_module.final_conv.conv.weight"].size(), [512, 4096, 1, 1]);
    assert!(!vars.keys().any(|k| k.starts_with("auxi_decoder.")));
}

#[test]
fn masked_modality_contributes_nothing() {
    tch::manual_seed(32);
    let vs = nn::VarStore::new(Device::Cpu);
    let net =
        EsaNet::new(&vs.root(), &EsaNetConfig::tiny(BlockKind::Basic), NetRole::Student).unwrap();
    let x = inputs(2);
    // Sample 0 is depth-only, sample 1 RGB-only.
    let m = Tensor::from_slice(&[0f32, 1., 1., 0.]).view([2, 2]);
    let a = tch::no_grad(|| net.forward_t(&x, &m, false));
    let y: Vec<Tensor> = x.iter().map(|t| t.copy()).collect();
    y[0].get(0).copy_(&Tensor::randn([3, 64, 64], (Kind::Float, Device::Cpu)));
    y[1].get(1).copy_(&Tensor::randn([1, 64, 64], (Kind::Float, Device::Cpu)));
    let b = tch::no_grad(|| net.forward_t(&y, &m, false));
    assert!(a.logits.equal(&b.logits));
    assert!(a.aux_logits.unwrap().equal(&b.aux_logits.unwrap()));
    for (fa, fb) in a.features.iter().zip(&b.features) {
        assert!(fa.equal(fb));
    }
    // A present modality does matter.
    y[1].get(0).copy_(&Tensor::randn([1, 64, 64], (Kind::Float, Device::Cpu)));
    let c = tch::no_grad(|| net.forward_t(&y, &m, false));
    assert!(!a.logits.get(0).equal(&c.logits.get(0)));
}

#[test]
fn backward_reaches_both_encoders_through_auxi_decoder() {
    tch::manual_seed(33);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = EsaNet::new(&vs.root(), &EsaNetConfig::tiny(BlockKind::Bottleneck), NetRole::Student)
        .unwrap();
    let out = net.forward_t(&inputs(2), &Tensor::ones([2, 2], (Kind::Float, Device::Cpu)), true);
    let target = Tensor::randint(5, [2, 64, 64], (Kind::Int64, Device::Cpu));
    let aux = out.aux_logits.unwrap();
    let loss = aux.log_softmax(1, Kind::Float).nll_loss_nd::<Tensor>(
        &target,
        None,
        tch::Reduction::Mean,
        -100,
    );
    loss.backward();
    let vars = vs.variables();
    let g = |n: &str| {
        let t = vars[n].grad();
        if t.defined() { t.abs().sum(Kind::Float).double_value(&[]) } else { 0.0 }
    };
    assert!(g("encoder_rgb.conv1.weight") > 0.0);
    assert!(g("encoder_depth.conv1.weight") > 0.0);
    assert!(g("auxi_decoder.conv_out.weight") > 0.0);
    assert_eq!(g("decoder.conv_out.weight"), 0.0);
}

#[test]
fn learned_upsampling_starts_bilinear_like() {
    tch::manual_seed(34);
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = EsaNet::new(&vs.root(), &EsaNetConfig::tiny(BlockKind::Basic), NetRole::Deployment)
        .unwrap();
    let vars = vs.variables();
    let w = &vars["decoder.upsample1.conv.weight"];
    assert_eq!(w.size(), [5, 1, 3, 3]);
    // [[1,2,1],[2,4,2],[1,2,1]] / 16 (ESANet Upsample, learned-3x3).
    let k = Tensor::from_slice(&[1f32, 2., 1., 2., 4., 2., 1., 2., 1.]).view([1, 1, 3, 3]) / 16.0;
    assert!(w.equal(&k.expand([5, 1, 3, 3], false)));
    assert_eq!(vars["decoder.upsample1.conv.bias"].abs().sum(Kind::Float).double_value(&[]), 0.0);
    // A constant map stays constant away from the zero-padded border.
    let x = Tensor::ones([1, 5, 4, 4], (Kind::Float, Device::Cpu));
    let up = tch::nn::Module::forward(
        &mmanet_models::esanet::blocks::LearnedUpsample::new(
            &vs.root().sub("probe"),
            5,
            UpsamplePad::Zero,
        ),
        &x,
    );
    assert_eq!(up.size(), [1, 5, 8, 8]);
    assert!((up.get(0).get(0).get(3).get(3).double_value(&[]) - 1.0).abs() < 1e-6);
}

/// A torchvision-named ResNet file (`conv1`, `bn1`, `layer1..4`, `fc`; no
/// `num_batches_tracked`, as torchvision's released files) for `cfg`'s encoder, written from an
/// independently initialised encoder; returns its tensors by name.
fn torchvision_file(
    cfg: &EsaNetConfig,
    path: &std::path::Path,
    drop: &str,
) -> std::collections::HashMap<String, Tensor> {
    let src = nn::VarStore::new(Device::Cpu);
    let _enc = ResNetEncoder::new(&src.root(), &cfg.encoder);
    let mut named = named_variables(&src);
    named.retain(|(n, _)| !n.ends_with("num_batches_tracked") && n != drop);
    let o = (Kind::Float, Device::Cpu);
    named.push(("fc.weight".into(), Tensor::randn([1000, cfg.encoder.channels()[4]], o)));
    named.push(("fc.bias".into(), Tensor::randn([1000], o)));
    write_safetensors_atomic(&named, path).unwrap();
    named.into_iter().collect()
}

#[test]
fn pretrained_encoders_load_torchvision_names_and_sum_the_depth_stem() {
    tch::manual_seed(33);
    let dir = tempfile::tempdir().unwrap();
    for block in [BlockKind::Basic, BlockKind::Bottleneck] {
        let cfg = EsaNetConfig::tiny(block);
        let (rgb_file, depth_file) =
            (dir.path().join("rgb.safetensors"), dir.path().join("d.safetensors"));
        let rgb = torchvision_file(&cfg, &rgb_file, "");
        let depth = torchvision_file(&cfg, &depth_file, "");
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = EsaNet::new(&vs.root(), &cfg, NetRole::Student).unwrap();
        let before = vs.variables();
        let decoder_before = before["decoder.conv_out.weight"].copy();
        let p = EsaNetPretrained { rgb: rgb_file.clone(), depth: depth_file.clone() };
        let [r, d] = p.load(&vs).unwrap();
        assert!(r.missing.iter().chain(&d.missing).all(|n| n.ends_with("num_batches_tracked")));
        let v = vs.variables();
        for name in rgb.keys().filter(|n| !n.starts_with("fc.")) {
            assert!(v[&format!("encoder_rgb.{name}")].equal(&rgb[name]), "{block:?} rgb {name}");
            if name != "conv1.weight" {
                assert!(
                    v[&format!("encoder_depth.{name}")].equal(&depth[name]),
                    "{block:?} {name}"
                );
            }
        }
        // The depth stem [w, 1, 7, 7] is the file's [w, 3, 7, 7] summed over its input channels.
        let stem = depth["conv1.weight"].sum_dim_intlist(1, true, None);
        assert_eq!(v["encoder_depth.conv1.weight"].size(), [8, 1, 7, 7]);
        assert!(v["encoder_depth.conv1.weight"].allclose(&stem, 1e-6, 1e-7, false));
        // Nothing outside the encoders changes.
        assert!(v["decoder.conv_out.weight"].equal(&decoder_before));
    }

    // A file that lacks an encoder weight is refused naming it.
    let cfg = EsaNetConfig::tiny(BlockKind::Basic);
    let bad = dir.path().join("bad.safetensors");
    torchvision_file(&cfg, &bad, "layer2.0.bn1.weight");
    let vs = nn::VarStore::new(Device::Cpu);
    let _net = EsaNet::new(&vs.root(), &cfg, NetRole::Teacher).unwrap();
    let p = EsaNetPretrained { rgb: bad.clone(), depth: bad };
    match p.load(&vs) {
        Err(ModelError::NameMismatch { missing, .. }) => {
            assert_eq!(missing, ["encoder_rgb.layer2.0.bn1.weight"]);
        }
        other => panic!("expected a name mismatch, got {other:?}"),
    }
}

#[test]
fn the_pretrained_setting_is_optional_and_checked_by_name() {
    let mut cfg = EsaNetConfig::tiny(BlockKind::Basic);
    let text = serde_json::to_string(&cfg).unwrap();
    assert!(!text.contains("pretrained"), "unset, it is not written: {text}");
    cfg.pretrained =
        Some(EsaNetPretrained { rgb: "r.safetensors".into(), depth: "d.safetensors".into() });
    let text = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<EsaNetConfig>(&text).unwrap(), cfg);
    let typo = text.replace("\"depth\":\"d", "\"dept\":\"d");
    assert_ne!(typo, text);
    let err = serde_json::from_str::<EsaNetConfig>(&typo).unwrap_err().to_string();
    assert!(err.contains("dept"), "{err}");
}
