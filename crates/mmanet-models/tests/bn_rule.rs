//! The BatchNorm rule for placeholders through whole networks: with the batch's availability
//! installed, a sample's placeholder for a modality it lacks changes neither any row's output
//! nor any running statistic of a training-mode forward; without it (the control) it changes
//! the kept rows' outputs and the branch's running statistics.

use mmanet_core::ModalitySet;
use mmanet_models::layers::with_availability;
use mmanet_models::resnet::BlockKind;
use mmanet_models::{
    BranchConfig, ClsNetConfig, EsaNet, EsaNetConfig, GenericFusion, GenericNet, GenericNetConfig,
    MultiModalNet, NetRole, StudentNet,
};
use tch::{Device, Kind, Tensor, nn};

const O: (Kind, Device) = (Kind::Float, Device::Cpu);

/// A network and its var store; its buffers as built, restored before every forward.
struct Net {
    vs: nn::VarStore,
    net: Box<dyn MultiModalNet>,
    initial: Vec<(String, Tensor)>,
}

impl Net {
    fn new(build: impl FnOnce(&nn::Path<'_>) -> Box<dyn MultiModalNet>) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = build(&vs.root());
        let initial = buffers(&vs);
        Net { vs, net, initial }
    }

    /// One training-mode forward from the initial buffers: the logits and every buffer
    /// (running statistics, `num_batches_tracked`) by name afterwards.
    fn run(
        &self,
        inputs: &[Tensor],
        mask: &Tensor,
        avail: Option<&Tensor>,
    ) -> (Tensor, Vec<(String, Tensor)>) {
        let vars = self.vs.variables();
        tch::no_grad(|| {
            for (n, t) in &self.initial {
                vars[n].shallow_clone().copy_(t);
            }
        });
        let out = match avail {
            Some(a) => with_availability(a, || self.net.forward_t(inputs, mask, true)),
            None => self.net.forward_t(inputs, mask, true),
        };
        (out.logits.detach(), buffers(&self.vs))
    }
}

/// Copies of the buffers of `vs`, sorted by name.
fn buffers(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut b: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| !t.requires_grad())
        .map(|(n, t)| (n, t.detach().copy()))
        .collect();
    b.sort_by(|x, y| x.0.cmp(&y.0));
    b
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// A batch for [`check`]: `inputs` with zero placeholders where `avail` is 0, `other` the same
/// with those placeholders replaced, the drawn `mask` (0 wherever `avail` is 0).
struct Case {
    inputs: Vec<Tensor>,
    other: Vec<Tensor>,
    mask: Tensor,
    avail: Tensor,
}

/// `branch` is a parameter prefix of a branch that has a placeholder; `kept` are rows with
/// every modality.
fn check(name: &str, net: &Net, case: &Case, branch: &str, kept: &[i64]) {
    let Case { inputs, other, mask, avail } = case;
    let (y, bufs) = net.run(inputs, mask, Some(avail));
    let (y2, bufs2) = net.run(other, mask, Some(avail));
    assert!(bool::try_from(y.isfinite().all()).unwrap(), "{name}: finite");
    let d = max_diff(&y, &y2);
    assert!(d < 1e-6, "{name}: a placeholder changed the outputs by {d}");
    let mut in_branch = 0;
    for ((n, a), (_, b)) in bufs.iter().zip(&bufs2) {
        if n.contains("running") {
            let d = max_diff(&a.to_kind(Kind::Double), &b.to_kind(Kind::Double));
            assert!(d < 1e-6, "{name}: a placeholder changed {n} by {d}");
            in_branch += usize::from(n.starts_with(branch));
        }
    }
    assert!(in_branch > 0, "{name}: no running statistics under {branch}");

    // Control: without the availability the placeholders shift the branch's statistics, and
    // through them the rows that have the modality.
    let (c, cbufs) = net.run(inputs, mask, None);
    let (c2, cbufs2) = net.run(other, mask, None);
    let idx = Tensor::from_slice(kept);
    let d = max_diff(&c.index_select(0, &idx), &c2.index_select(0, &idx));
    assert!(d > 1e-4, "{name}: without the rule the kept rows moved by {d} only");
    let moved = cbufs.iter().zip(&cbufs2).any(|((n, a), (_, b))| {
        n.starts_with(branch) && n.contains("running_mean") && max_diff(a, b) > 1e-4
    });
    assert!(moved, "{name}: without the rule {branch}'s running statistics stay");
    // With the rule, the kept rows differ from the control (the placeholders left the stats).
    assert!(max_diff(&y.index_select(0, &idx), &c.index_select(0, &idx)) > 1e-6, "{name}");
}

/// `inputs` with row `row` of modality `m` replaced by noise, per pair.
fn replace_rows(inputs: &[Tensor], pairs: &[(usize, i64)]) -> Vec<Tensor> {
    let out: Vec<Tensor> = inputs.iter().map(Tensor::copy).collect();
    for &(m, row) in pairs {
        let mut r = out[m].narrow(0, row, 1);
        let noise = Tensor::randn(r.size().as_slice(), O) * 5.0 + 2.0;
        r.copy_(&noise);
    }
    out
}

/// Zero placeholders where `avail` is 0, as the loader fills them.
fn zero_missing(inputs: Vec<Tensor>, pairs: &[(usize, i64)]) -> Vec<Tensor> {
    for &(m, row) in pairs {
        let _ = inputs[m].narrow(0, row, 1).zero_();
    }
    inputs
}

fn matrix(rows: &[&[f32]]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
}

#[test]
fn cls_student_placeholders_leave_branch_statistics_and_outputs() {
    let cfg = ClsNetConfig::surf().with_width(4);
    let net = Net::new(|p| Box::new(StudentNet::new(p, &cfg)));
    let missing = [(0usize, 1i64), (2, 3)];
    let inputs = zero_missing((0..3).map(|_| Tensor::randn([5, 3, 32, 32], O)).collect(), &missing);
    let other = replace_rows(&inputs, &missing);
    let avail =
        matrix(&[&[1., 1., 1.], &[0., 1., 1.], &[1., 1., 1.], &[1., 1., 0.], &[1., 1., 1.]]);
    // Row 0 drops depth although it has it (a drawn combination): still real data.
    let mask = matrix(&[&[1., 0., 1.], &[0., 1., 1.], &[1., 1., 1.], &[1., 1., 0.], &[1., 1., 1.]]);
    let case = Case { inputs, other, mask, avail };
    check("cls", &net, &case, "special_bone_rgb.", &[0, 2, 4]);
}

#[test]
fn generic_net_placeholders_leave_branch_statistics_and_outputs() {
    let cfg = GenericNetConfig {
        modalities: ModalitySet::from_names(["image", "audio", "accelerometer"]).unwrap(),
        branches: vec![
            BranchConfig::SmallCnn { in_channels: 1, channels: vec![4, 8], out_dim: 6 },
            BranchConfig::Conv1d { in_features: 5, channels: vec![8], kernel: 3, out_dim: 6 },
            BranchConfig::Mlp { in_dim: 7, hidden: vec![10], out_dim: 6 },
        ],
        trunk_hidden: vec![12, 9],
        n_classes: 4,
        fusion: GenericFusion::Concat,
    };
    let net = Net::new(|p| Box::new(GenericNet::new(p, &cfg, NetRole::Student).unwrap()));
    let missing = [(0usize, 0i64), (1, 2), (2, 2)];
    let inputs = zero_missing(
        vec![
            Tensor::randn([4, 1, 12, 12], O),
            Tensor::randn([4, 10, 5], O),
            Tensor::randn([4, 7], O),
        ],
        &missing,
    );
    let other = replace_rows(&inputs, &missing);
    let avail = matrix(&[&[0., 1., 1.], &[1., 1., 1.], &[1., 0., 0.], &[1., 1., 1.]]);
    let mask = matrix(&[&[0., 1., 0.], &[1., 1., 1.], &[1., 0., 0.], &[1., 0., 1.]]);
    let case = Case { inputs, other, mask, avail };
    for branch in ["special_bone_image.", "special_bone_audio.", "special_bone_accelerometer."] {
        check("generic", &net, &case, branch, &[1, 3]);
    }
}

#[test]
fn esanet_placeholders_leave_rgb_stem_depth_encoder_and_outputs() {
    let cfg = EsaNetConfig::tiny(BlockKind::Basic);
    let net = Net::new(|p| Box::new(EsaNet::new(p, &cfg, NetRole::Student).unwrap()));
    let missing = [(0usize, 1i64), (1, 2)];
    let inputs = zero_missing(
        vec![Tensor::randn([4, 3, 64, 64], O), Tensor::randn([4, 1, 64, 64], O)],
        &missing,
    );
    let other = replace_rows(&inputs, &missing);
    let avail = matrix(&[&[1., 1.], &[0., 1.], &[1., 0.], &[1., 1.]]);
    let mask = matrix(&[&[1., 0.], &[0., 1.], &[1., 0.], &[1., 1.]]);
    let case = Case { inputs, other, mask, avail };
    check("esanet rgb", &net, &case, "encoder_rgb.bn1.", &[0, 3]);
    check("esanet depth", &net, &case, "encoder_depth.", &[0, 3]);
}
