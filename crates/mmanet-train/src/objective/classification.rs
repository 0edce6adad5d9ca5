//! The classification objective (docs/method.md §2.1): CE of the deployment network, plus
//! λ·SP or λ·MAD between the deepest tapped features of student and teacher, plus λ_MAR·MAR of
//! the `auxi_bone` head on the weak samples; mining compares predictions per candidate.

use mmanet_core::{Fidelity, ModalitySet};
use mmanet_data::{Batch, DataLoader};
use mmanet_losses::{ClassificationMiner, WeakSet};
use mmanet_models::{MultiModalNet, NetOutput};
use tch::{Device, Kind, Tensor};

use super::{LossTerms, Objective, Step, complete_rows};
use crate::TrainError;
use crate::config::{Distillation, MethodConfig};
use crate::evaluate::{Ranks, net_inputs, predict_combo_on};
use crate::state::MiningEpoch;

/// CE + λ_MAD·(SP | MAD) + λ_MAR·MAR for one-label-per-sample tasks.
pub struct ClassificationObjective {
    set: ModalitySet,
    num_classes: usize,
    distillation: Distillation,
    lambda_mad: f64,
    lambda_mar: f64,
    fidelity: Fidelity,
}

impl ClassificationObjective {
    /// The objective of `method` for a network over `set` with `num_classes` classes.
    pub fn new(method: &MethodConfig, set: ModalitySet, num_classes: usize) -> Self {
        ClassificationObjective {
            set,
            num_classes,
            distillation: method.distillation,
            lambda_mad: method.lambda_mad,
            lambda_mar: method.lambda_mar,
            fidelity: method.fidelity,
        }
    }

    /// Every distillation variant has a classification form.
    pub fn check_method(method: &MethodConfig) -> Result<(), TrainError> {
        match method.distillation {
            Distillation::None | Distillation::Sp | Distillation::Mad => Ok(()),
        }
    }
}

impl Objective for ClassificationObjective {
    fn loss(&self, step: &Step<'_>, batch: &Batch) -> Result<LossTerms, TrainError> {
        let inputs = net_inputs(batch);
        let out = step.forward(step.student, &inputs, &batch.mask, true);
        let mut terms = LossTerms::new(out.logits.cross_entropy_for_logits(&batch.targets));
        if let Some(teacher) = step.teacher {
            // The teacher sees each sample with the modalities it has (all of them for
            // complete data), and MAD runs on the rows it sees completely.
            let complete = complete_rows(step);
            let t_mask = match &complete {
                Some((available, _)) => available.shallow_clone(),
                None => batch.mask.ones_like(),
            };
            let t = tch::no_grad(|| step.forward(teacher, &inputs, &t_mask, false));
            let rows = complete.as_ref().map(|(_, rows)| rows);
            let d =
                distillation(&out, &t, self.distillation, self.fidelity, rows)? * self.lambda_mad;
            terms.add_distill(d);
        }
        if let (Some(weak), Some(aux)) = (step.weak, &out.aux_logits) {
            let r = mmanet_losses::f_mar_classification(
                aux,
                &batch.targets,
                &batch.mask,
                weak,
                self.fidelity,
            )? * self.lambda_mar;
            terms.add_mar(r);
        }
        Ok(terms)
    }

    fn mine_epoch(
        &self,
        net: &dyn MultiModalNet,
        val: &DataLoader,
        epoch: usize,
        device: Device,
        mut ranks: Ranks<'_>,
    ) -> Result<MiningEpoch, TrainError> {
        let miner = ClassificationMiner::new(self.set.clone(), self.num_classes)?;
        let (_, full) = predict_combo_on(net, val, self.set.full(), device, ranks.as_deref_mut())?;
        let mut candidates = Vec::new();
        for &c in miner.candidates() {
            candidates.push(predict_combo_on(net, val, c, device, ranks.as_deref_mut())?.1);
        }
        Ok(MiningEpoch { epoch, full, candidates, miou: Vec::new() })
    }

    fn select_weak_set(&self, history: &[MiningEpoch]) -> Result<WeakSet, TrainError> {
        let mut miner = ClassificationMiner::new(self.set.clone(), self.num_classes)?;
        for e in history {
            let per: Vec<&[i64]> = e.candidates.iter().map(Vec::as_slice).collect();
            miner.add_epoch(&e.full, &per)?;
        }
        let weak = miner.weak_set()?;
        tracing::info!(scores = ?miner.scores(), weak = %weak, "weak set selected");
        Ok(weak)
    }
}

/// The distillation term (unweighted) between student and teacher outputs, on the rows
/// `rows` marks (all rows when `None`).
///
/// # Shapes
/// - `features.last()`: `[B, ...]` for both; teacher `logits`: `[B, K]`; `rows`: `[B]` of 0/1.
/// - output: scalar.
pub fn distillation(
    student: &NetOutput,
    teacher: &NetOutput,
    kind: Distillation,
    fidelity: Fidelity,
    rows: Option<&Tensor>,
) -> Result<Tensor, TrainError> {
    let (s, t) = match (student.features.last(), teacher.features.last()) {
        (Some(s), Some(t)) => (s, t),
        _ => return Err(TrainError::config("model", "the network exposes no features for MAD")),
    };
    let z = &teacher.logits;
    Ok(match (kind, rows) {
        (Distillation::None, _) => s.zeros_like().sum(Kind::Float),
        (Distillation::Sp, None) => mmanet_losses::f_sp_loss(s, t)?,
        (Distillation::Sp, Some(r)) => mmanet_losses::f_sp_loss_rows(s, t, r)?,
        (Distillation::Mad, None) => mmanet_losses::f_mad_classification(s, t, z, fidelity)?,
        (Distillation::Mad, Some(r)) => {
            mmanet_losses::f_mad_classification_rows(s, t, z, fidelity, r)?
        }
    })
}
