//! The worked example of docs/architecture.md, "The objective seam": a new objective behind
//! [`Objective`], run on a tiny batch.
//!
//! `LogitKd` is the classification objective plus Hinton's logit distillation,
//! `λ_KD · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))`, on top of CE (+ MAD + MAR when the
//! method switches them on). Mining is the classification objective's. The program checks that
//! before `begin_epoch` (no teacher in the [`Step`]) the loss is the CE alone, that with the
//! teacher the new term is positive and part of the total, and that the total back-propagates.
//! It also shows the config check's exhaustive match at work: SP distillation is refused for
//! segmentation by [`TaskKind::check_method`].
//!
//! ```text
//! cargo run -p mmanet-train --example custom_objective
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use mmanet_core::{ModalityMask, ModalitySet};
use mmanet_data::{Batch, DataLoader};
use mmanet_losses::WeakSet;
use mmanet_models::{MultiModalNet, NetOutput};
use mmanet_train::evaluate::Ranks;
use mmanet_train::objective::{ClassificationObjective, LossTerms, Objective, Step, TaskKind};
use mmanet_train::state::MiningEpoch;
use mmanet_train::{Distillation, MethodConfig, TrainError};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

const B: i64 = 6;
const D: i64 = 4;
const K: i64 = 3;

/// The classification objective plus logit distillation at temperature `temperature`.
struct LogitKd {
    base: ClassificationObjective,
    lambda_kd: f64,
    temperature: f64,
}

impl Objective for LogitKd {
    fn loss(&self, step: &Step<'_>, batch: &Batch) -> Result<LossTerms, TrainError> {
        let mut terms = self.base.loss(step, batch)?;
        if let Some(teacher) = step.teacher {
            // A second forward for clarity; a production objective would reuse the base's.
            let s = step.forward(step.student, &batch.inputs, &batch.mask, true).logits;
            let ones = batch.mask.ones_like();
            let t = tch::no_grad(|| step.forward(teacher, &batch.inputs, &ones, false)).logits;
            let tau = self.temperature;
            let kd = (&s / tau).log_softmax(1, Kind::Float).kl_div(
                &(&t / tau).log_softmax(1, Kind::Float),
                Reduction::Mean,
                true,
            ) * (tau * tau * self.lambda_kd);
            terms.add_distill(kd);
        }
        Ok(terms)
    }

    fn mine_epoch(
        &self,
        net: &dyn MultiModalNet,
        val: &DataLoader,
        epoch: usize,
        device: Device,
        ranks: Ranks<'_>,
    ) -> Result<MiningEpoch, TrainError> {
        self.base.mine_epoch(net, val, epoch, device, ranks)
    }

    fn select_weak_set(&self, history: &[MiningEpoch]) -> Result<WeakSet, TrainError> {
        self.base.select_weak_set(history)
    }
}

/// A tiny two-modality network on `[B, D]` vectors: masked sum of one linear branch per
/// modality (`features[0]`, `[B, 8]`), then a linear classifier (`logits`, `[B, K]`).
struct TinyNet {
    set: ModalitySet,
    branches: Vec<nn::Linear>,
    head: nn::Linear,
}

impl TinyNet {
    fn new(p: nn::Path<'_>, set: ModalitySet) -> Self {
        let branches = (0..set.len()).map(|m| nn::linear(&p / m, D, 8, Default::default()));
        let head = nn::linear(&p / "head", 8, K, Default::default());
        TinyNet { set, branches: branches.collect(), head }
    }
}

impl MultiModalNet for TinyNet {
    fn forward_t(&self, inputs: &[Tensor], mask: &Tensor, _train: bool) -> NetOutput {
        let fused = self
            .branches
            .iter()
            .zip(inputs)
            .enumerate()
            .map(|(m, (b, x))| b.forward(x).relu() * mask.select(1, m as i64).unsqueeze(1))
            .reduce(|a, b| a + b)
            .expect("at least one modality");
        NetOutput {
            logits: self.head.forward(&fused),
            features: vec![fused],
            aux_logits: None,
            side_logits: Vec::new(),
            aux_side_logits: Vec::new(),
        }
    }

    fn modalities(&self) -> &ModalitySet {
        &self.set
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tch::manual_seed(0);
    let set = ModalitySet::from_names(["a", "b"])?;
    let (s_vs, t_vs) = (VarStore::new(Device::Cpu), VarStore::new(Device::Cpu));
    let student = TinyNet::new(s_vs.root(), set.clone());
    let teacher = TinyNet::new(t_vs.root(), set.clone());

    // Samples alternate between both modalities and `a` alone.
    let a_only = set.parse_mask("a")?;
    let combos: Vec<ModalityMask> =
        (0..B).map(|i| if i % 2 == 0 { set.full() } else { a_only }).collect();
    let mask = mmanet_losses::presence_tensor(&set, &combos, Kind::Float, Device::Cpu)?;
    let batch = Batch {
        inputs: (0..set.len()).map(|_| Tensor::randn([B, D], (Kind::Float, Device::Cpu))).collect(),
        lengths: vec![None, None],
        mask,
        combos,
        targets: Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2]),
        indices: (0..B as usize).collect(),
    };

    // CE alone from the classification objective; the new term comes from `LogitKd`.
    let method = MethodConfig {
        distillation: Distillation::None,
        mar: false,
        ..MethodConfig::mmanet_classification()
    };
    let objective: Box<dyn Objective> = Box::new(LogitKd {
        base: ClassificationObjective::new(&method, set.clone(), K as usize),
        lambda_kd: 1.0,
        temperature: 4.0,
    });

    // Before `begin_epoch` the trainer passes no teacher: CE only.
    let early = Step {
        student: &student,
        teacher: None,
        weak: None,
        available: None,
        amp: false,
        capturable: false,
    };
    let before = objective.loss(&early, &batch)?.read();
    assert_eq!((before.distill, before.total), (0.0, before.ce));

    // After it, with the frozen teacher: CE + λ_KD · KD, and the total back-propagates.
    let late = Step { teacher: Some(&teacher), ..early };
    let terms = objective.loss(&late, &batch)?;
    let (loss, after) = (terms.total.shallow_clone(), terms.read());
    assert!(after.distill > 0.0, "the KD term is positive for different networks");
    assert!((after.total - (after.ce + after.distill)).abs() < 1e-6);
    loss.backward();
    let grad = s_vs.trainable_variables()[0].grad();
    assert!(grad.defined() && grad.abs().sum(Kind::Float).double_value(&[]) > 0.0);

    // The config check's exhaustive match: SP has no segmentation form.
    let sp = MethodConfig { distillation: Distillation::Sp, ..method };
    assert!(TaskKind::Classification.check_method(&sp).is_ok());
    let refused = TaskKind::Segmentation.check_method(&sp).expect_err("sp is refused");
    println!("before begin_epoch: {before:?}\nafter: {after:?}\nsegmentation + sp: {refused}");
    Ok(())
}
