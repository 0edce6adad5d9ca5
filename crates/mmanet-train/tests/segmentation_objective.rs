//! The segmentation objective's terms against the released code's behaviour
//! (docs/method.md §2.2): MAR sums the class-weighted CE over all four outputs of the
//! regularization decoder (full resolution, /8, /16, /32) on the weak samples only, so the
//! decoder's side heads train; and SP distillation, which has no segmentation form, is refused
//! at config check instead of silently training MAD; and `model.pretrained` starts a fresh run's
//! encoders from torchvision-named ImageNet weights.

mod common;

use common::{tiny_esanet, tiny_segmentation};
use mmanet_core::{Fidelity, ModalitySet};
use mmanet_losses::WeakSet;
use mmanet_models::{EsaNet, MultiModalNet, NetRole};
use mmanet_train::config::TeacherConfig;
use mmanet_train::objective::segmentation::{multiscale_ce, segmentation_mar};
use mmanet_train::{Distillation, Stage, TrainError};
use tch::{Device, Kind, Tensor, nn};

const B: i64 = 4;
const K: i64 = 5;
const HW: i64 = 64;

/// Class-weighted CE of one scale computed on the host in f64, independently of the crate's
/// losses: logits `[B, K, h, w]`, labels taken from the full-resolution `[B, HW, HW]` map at
/// every `factor`-th pixel (nearest downsampling by an integer factor), samples `keep` only.
/// Returns `(Σ w_y · CE, Σ w_y)` over the non-void pixels.
fn host_weighted_ce(
    logits: &Tensor,
    labels: &[i64],
    factor: i64,
    keep: &[i64],
    weights: &[f64],
) -> (f64, f64) {
    let size = logits.size();
    let (h, w) = (size[2], size[3]);
    assert_eq!((h * factor, w * factor), (HW, HW));
    let z: Vec<f64> = Vec::<f32>::try_from(logits.to_kind(Kind::Float).contiguous().view([-1]))
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    let at = |b: i64, k: i64, y: i64, x: i64| z[(((b * K + k) * h + y) * w + x) as usize];
    let (mut num, mut den) = (0.0, 0.0);
    for &b in keep {
        for y in 0..h {
            for x in 0..w {
                let l = labels[((b * HW + y * factor) * HW + x * factor) as usize];
                if l == 0 {
                    continue; // void
                }
                let c = l - 1;
                let m = (0..K).map(|k| at(b, k, y, x)).fold(f64::NEG_INFINITY, f64::max);
                let lse = m + (0..K).map(|k| (at(b, k, y, x) - m).exp()).sum::<f64>().ln();
                let wc = weights[c as usize];
                num += wc * (lse - at(b, c, y, x));
                den += wc;
            }
        }
    }
    (num, den)
}

fn grad_abs_sum(vars: &std::collections::HashMap<String, Tensor>, name: &str) -> f64 {
    let v = vars.get(name).unwrap_or_else(|| panic!("no variable {name}"));
    let g = v.grad();
    if g.defined() { g.abs().sum(Kind::Double).double_value(&[]) } else { 0.0 }
}

#[test]
fn mar_sums_four_auxiliary_scales_on_weak_samples_and_trains_the_side_heads() {
    tch::manual_seed(7);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = EsaNet::new(&vs.root(), &tiny_esanet(), NetRole::Student).unwrap();
    let o = (Kind::Float, Device::Cpu);
    let inputs = vec![Tensor::randn([B, 3, HW, HW], o), Tensor::randn([B, 1, HW, HW], o)];
    // (RGB, depth) per sample: R+D, D, R, D. With the weak set {D}, samples 1 and 3 are weak.
    let mask = Tensor::from_slice(&[1f32, 1., 0., 1., 1., 0., 0., 1.]).view([B, 2]);
    let weak_samples = [1i64, 3];
    let set = ModalitySet::from_names(["rgb", "depth"]).unwrap();
    let weak = WeakSet::new(set.clone(), vec![set.parse_mask("D").unwrap()]).unwrap();
    let labels = Tensor::randint_low(0, K + 1, [B, HW, HW], (Kind::Int64, Device::Cpu));
    let label_host = Vec::<i64>::try_from(labels.view([-1])).unwrap();
    let weights_host = [0.5, 1.0, 2.0, 1.5, 0.8];
    let class_weights = Tensor::from_slice(&weights_host).to_kind(Kind::Float);

    for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
        for v in vs.trainable_variables() {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        let out = net.forward_t(&inputs, &mask, true);
        assert_eq!(out.aux_side_logits.len(), 3, "auxi_decoder side outputs /8, /16, /32");
        let (_, scale_labels) = multiscale_ce(&out, &labels, &class_weights).unwrap();
        let mar =
            segmentation_mar(&out, &scale_labels, &mask, &weak, &class_weights, fidelity, false)
                .unwrap();

        // Independent value: Σ over the four auxiliary outputs of the weighted CE, each
        // normalised by its own weighted count of non-void pixels of the weak samples.
        let aux = out.aux_logits.as_ref().unwrap();
        let outputs: Vec<(&Tensor, i64)> =
            std::iter::once((aux, 1)).chain(out.aux_side_logits.iter().zip([8, 16, 32])).collect();
        let per_scale: Vec<f64> = outputs
            .iter()
            .map(|(l, f)| {
                let (num, den) = host_weighted_ce(l, &label_host, *f, &weak_samples, &weights_host);
                num / den
            })
            .collect();
        let expected: f64 = per_scale.iter().sum();
        let got = mar.double_value(&[]);
        assert!(
            (got - expected).abs() <= 1e-5 * expected.abs(),
            "{fidelity}: MAR {got} vs the four-scale sum {expected} (per scale {per_scale:?})"
        );
        assert!(
            (got - per_scale[0]).abs() > 1e-3 * expected,
            "{fidelity}: MAR must not be the full-resolution term alone"
        );
        // The static form a captured step uses (weak samples kept by a flag) gives the same.
        let fixed =
            segmentation_mar(&out, &scale_labels, &mask, &weak, &class_weights, fidelity, true)
                .unwrap()
                .double_value(&[]);
        assert!((fixed - got).abs() <= 1e-6 * got.abs(), "{fidelity}: static {fixed} vs {got}");

        mar.backward();
        let vars = vs.variables();
        for i in 1..=3 {
            let aux_side = format!("auxi_decoder.decoder_module_{i}.side_output.weight");
            assert!(
                grad_abs_sum(&vars, &aux_side) > 0.0,
                "{fidelity}: {aux_side} gets no gradient"
            );
            let main_side = format!("decoder.decoder_module_{i}.side_output.weight");
            assert_eq!(grad_abs_sum(&vars, &main_side), 0.0, "{fidelity}: MAR reached {main_side}");
        }
        assert!(grad_abs_sum(&vars, "auxi_decoder.conv_out.weight") > 0.0);
    }
}

#[test]
fn mar_refuses_outputs_without_side_scales() {
    tch::manual_seed(8);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = EsaNet::new(&vs.root(), &tiny_esanet(), NetRole::Student).unwrap();
    let o = (Kind::Float, Device::Cpu);
    let inputs = vec![Tensor::randn([2, 3, HW, HW], o), Tensor::randn([2, 1, HW, HW], o)];
    let mask = Tensor::from_slice(&[0f32, 1., 1., 1.]).view([2, 2]);
    let set = ModalitySet::from_names(["rgb", "depth"]).unwrap();
    let weak = WeakSet::new(set.clone(), vec![set.parse_mask("D").unwrap()]).unwrap();
    let labels = Tensor::randint_low(0, K + 1, [2, HW, HW], (Kind::Int64, Device::Cpu));
    let w = Tensor::ones([K], o);
    let train = net.forward_t(&inputs, &mask, true);
    let (_, scale_labels) = multiscale_ce(&train, &labels, &w).unwrap();
    // An eval-mode forward has no side outputs: MAR must not quietly fall back to one scale.
    let eval = tch::no_grad(|| net.forward_t(&inputs, &mask, false));
    let err = segmentation_mar(&eval, &scale_labels, &mask, &weak, &w, Fidelity::Paper, false);
    assert!(matches!(err, Err(TrainError::Config { ref field, .. }) if field == "method.mar"));
}

#[test]
fn sp_distillation_is_refused_for_segmentation_at_check_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tiny_segmentation(Stage::Student, dir.path().join("data"), 2);
    cfg.teacher = Some(TeacherConfig { checkpoint: dir.path().join("teacher.safetensors") });
    cfg.clone().check().expect("the MAD config is valid");
    cfg.method.distillation = Distillation::Sp;
    match cfg.check() {
        Err(TrainError::Config { field, message }) => {
            assert_eq!(field, "method.distillation", "{message}");
            assert!(message.contains("sp"), "{message}");
        }
        other => panic!("SP on ESANet must be a config error, got {other:?}"),
    }
    // SP stays available for classification (the surf-sp ablation).
    let surf_sp = mmanet_train::presets::preset("surf-sp").unwrap();
    assert_eq!(surf_sp.method.distillation, Distillation::Sp);
    surf_sp.check().expect("SP on a classification net is valid");
}

#[test]
fn pretrained_encoders_initialise_a_fresh_run_from_a_config_relative_file() {
    use mmanet_models::checkpoint::{named_variables, write_safetensors_atomic};
    use mmanet_models::esanet::EsaNetPretrained;
    use mmanet_models::factory::NetConfig;
    use mmanet_models::resnet::ResNetEncoder;
    use mmanet_train::TrainConfig;
    use mmanet_train::run_dir::RunDir;

    tch::manual_seed(9);
    let dir = tempfile::tempdir().unwrap();
    // A torchvision-named file for the tiny encoder (no num_batches_tracked, with fc.*).
    let encoder = tiny_esanet().encoder;
    let src = nn::VarStore::new(Device::Cpu);
    let _enc = ResNetEncoder::new(&src.root(), &encoder);
    let mut named = named_variables(&src);
    named.retain(|(n, _)| !n.ends_with("num_batches_tracked"));
    named.push((
        "fc.weight".into(),
        Tensor::zeros([1000, encoder.channels()[4]], (Kind::Float, Device::Cpu)),
    ));
    named.push(("fc.bias".into(), Tensor::zeros([1000], (Kind::Float, Device::Cpu))));
    std::fs::create_dir(dir.path().join("imagenet")).unwrap();
    let file = dir.path().join("imagenet").join("r18.safetensors");
    write_safetensors_atomic(&named, &file).unwrap();

    // The config names the file relative to itself.
    let mut cfg = tiny_segmentation(Stage::Teacher, dir.path().join("data"), 1);
    let NetConfig::Esanet(m) = &mut cfg.model else { unreachable!("an ESANet config") };
    let relative = std::path::PathBuf::from("imagenet/r18.safetensors");
    m.pretrained = Some(EsaNetPretrained { rgb: relative.clone(), depth: relative });
    let cfg_path = dir.path().join("cfg.toml");
    std::fs::write(&cfg_path, cfg.to_toml()).unwrap();
    let cfg = TrainConfig::from_toml_path(&cfg_path).unwrap();

    let run = RunDir::create(dir.path().join("run")).unwrap();
    let t = mmanet_train::Trainer::new(cfg.clone().check().unwrap(), run.clone()).unwrap();
    let (v, sv) = (t.var_store().variables(), src.variables());
    for name in ["conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer4.0.bn2.bias"] {
        assert!(v[&format!("encoder_rgb.{name}")].equal(&sv[name]), "rgb {name}");
    }
    assert!(v["encoder_depth.layer3.0.conv2.weight"].equal(&sv["layer3.0.conv2.weight"]));
    let stem = sv["conv1.weight"].sum_dim_intlist(1, true, None);
    assert!(v["encoder_depth.conv1.weight"].allclose(&stem, 1e-6, 1e-7, false));

    // The run folder's copy of the config still names the same file.
    let stored = TrainConfig::from_toml_path(&run.config()).unwrap();
    assert_eq!(stored.with_absolute_paths(), cfg.with_absolute_paths());
    let NetConfig::Esanet(m) = &stored.model else { unreachable!() };
    let p = m.pretrained.as_ref().unwrap();
    assert!(p.rgb.is_absolute() && p.rgb.ends_with("imagenet/r18.safetensors"), "{p:?}");

    // A missing file is an error naming the setting.
    let mut gone = cfg;
    let NetConfig::Esanet(m) = &mut gone.model else { unreachable!() };
    m.pretrained.as_mut().unwrap().depth = dir.path().join("absent.safetensors");
    let run = RunDir::create(dir.path().join("run2")).unwrap();
    match mmanet_train::Trainer::new(gone.check().unwrap(), run) {
        Err(TrainError::Config { field, message }) => {
            assert_eq!(field, "model.pretrained");
            assert!(message.contains("absent.safetensors"), "{message}");
        }
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("a missing pretrained file must fail"),
    }
}

/// `NetOutput` restricted to the samples `idx` (features and main logits; the rest unused by
/// segmentation MAD).
fn select_rows(out: &mmanet_models::NetOutput, idx: &Tensor) -> mmanet_models::NetOutput {
    mmanet_models::NetOutput {
        logits: out.logits.index_select(0, idx),
        features: out.features.iter().map(|f| f.index_select(0, idx)).collect(),
        aux_logits: None,
        side_logits: Vec::new(),
        aux_side_logits: Vec::new(),
    }
}

#[test]
fn mad_on_incomplete_data_distils_on_the_complete_samples_only() {
    use mmanet_data::Batch;
    use mmanet_train::MethodConfig;
    use mmanet_train::objective::segmentation::{SegmentationObjective, segmentation_mad};
    use mmanet_train::objective::{Objective, Step};

    tch::manual_seed(11);
    let (vs_s, vs_t) = (nn::VarStore::new(Device::Cpu), nn::VarStore::new(Device::Cpu));
    let student = EsaNet::new(&vs_s.root(), &tiny_esanet(), NetRole::Student).unwrap();
    let teacher = EsaNet::new(&vs_t.root(), &tiny_esanet(), NetRole::Teacher).unwrap();
    let o = (Kind::Float, Device::Cpu);
    let inputs = vec![Tensor::randn([B, 3, HW, HW], o), Tensor::randn([B, 1, HW, HW], o)];
    let set = ModalitySet::from_names(["rgb", "depth"]).unwrap();
    // Samples 0 and 2 are complete; 1 lacks RGB, 3 lacks depth. Each trains on a mask its
    // modalities allow.
    let available: Vec<_> = ["R+D", "D", "R+D", "R"].map(|m| set.parse_mask(m).unwrap()).into();
    let combos: Vec<_> = ["R+D", "D", "R", "R"].map(|m| set.parse_mask(m).unwrap()).into();
    let mask = mmanet_losses::presence_tensor(&set, &combos, Kind::Float, Device::Cpu).unwrap();
    let batch = Batch {
        inputs: inputs.iter().map(Tensor::shallow_clone).collect(),
        lengths: vec![None, None],
        mask: mask.shallow_clone(),
        combos,
        targets: Tensor::randint_low(0, K + 1, [B, HW, HW], (Kind::Int64, Device::Cpu)),
        indices: (0..B as usize).collect(),
    };
    let method = MethodConfig {
        distillation: Distillation::Mad,
        fidelity: Fidelity::Paper,
        ..MethodConfig::mmanet_classification()
    };
    let objective = SegmentationObjective::new(&method, set.clone(), Tensor::ones([K], o));
    let step = Step {
        student: &student,
        teacher: Some(&teacher),
        weak: None,
        available: Some(
            mmanet_losses::presence_tensor(&set, &available, Kind::Float, Device::Cpu).unwrap(),
        ),
        amp: false,
        capturable: false,
    };
    let parts = objective.loss(&step, &batch).unwrap().read();

    // Independently: MAD of the index-selected complete samples, with the same forward passes.
    let out = tch::no_grad(|| step.forward(&student, &inputs, &mask, true));
    let t_mask =
        mmanet_losses::presence_tensor(&set, &available, Kind::Float, Device::Cpu).unwrap();
    let t = tch::no_grad(|| step.forward(&teacher, &inputs, &t_mask, false));
    let complete = Tensor::from_slice(&[0i64, 2]);
    let sub = segmentation_mad(
        &select_rows(&out, &complete),
        &select_rows(&t, &complete),
        Fidelity::Paper,
        None,
    )
    .unwrap()
    .double_value(&[])
        * method.lambda_mad;
    assert!(sub > 0.0);
    assert!(
        (parts.distill - sub).abs() <= 1e-4 * sub,
        "MAD {} vs MAD of the complete sub-batch {sub}",
        parts.distill
    );
    // Control: MAD over every sample (placeholders included) is a different number.
    let all = segmentation_mad(&out, &t, Fidelity::Paper, None).unwrap().double_value(&[])
        * method.lambda_mad;
    assert!((all - sub).abs() > 1e-3 * sub, "the control must differ: {all} vs {sub}");
}
