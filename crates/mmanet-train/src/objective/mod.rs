//! The objective seam: each task's training loss (CE, the distillation variants, MAR) and its
//! weak-set mining behind one trait, [`Objective`], chosen once from the task by [`for_task`].
//!
//! The trainer keeps the loop (batches, phases, backward, checkpoints) and asks the objective
//! for the loss of a batch; the benchmarks (`examples/bench_step.rs`,
//! `examples/bench_seg_step.rs`) call the same objectives. Every match over
//! [`Distillation`](crate::Distillation) in an objective is exhaustive, so a variant a task has
//! no form of is refused by [`TaskKind::check_method`] when the config is checked
//! (docs/architecture.md, "The objective seam").
//!
//! - [`classification`]: CE, SP or MAD on the deepest tapped feature, MAR of the `auxi_bone`
//!   head, prediction-based mining.
//! - [`segmentation`]: the class weights, multi-scale weighted CE, MAD over the tapped fused
//!   maps, MAR of the regularization decoder, mIoU-based mining.
//!
//! A new objective implements [`Objective`]; `examples/custom_objective.rs` adds logit
//! distillation to [`ClassificationObjective`] and runs it on a tiny batch.

pub mod classification;
pub mod segmentation;
mod terms;

use mmanet_core::ModalitySet;
use mmanet_data::{Batch, DataLoader, Task};
use mmanet_losses::WeakSet;
use mmanet_models::{MultiModalNet, NetOutput};
use tch::{Device, Kind, Tensor};

use crate::TrainError;
use crate::config::{MethodConfig, ValidConfig};
use crate::evaluate::Ranks;
use crate::state::MiningEpoch;

pub use classification::ClassificationObjective;
pub use segmentation::SegmentationObjective;
pub use terms::LossTerms;

/// What the loss of one batch needs besides the batch: the networks and what this epoch's
/// phase switches on. The caller (the trainer) gates the phases: before `begin_epoch`
/// `teacher` and `weak` are `None` and the loss is the task's CE alone.
pub struct Step<'a> {
    /// The trained network; run in train mode on the batch's mask.
    pub student: &'a dyn MultiModalNet,
    /// The frozen teacher when distillation is on in this epoch (run without gradient).
    pub teacher: Option<&'a dyn MultiModalNet>,
    /// The weak set when MAR is on in this epoch.
    pub weak: Option<&'a WeakSet>,
    /// `[B, M]` f32 0/1 on the batch's device: the modalities each sample of the batch really
    /// has, when the training data are incomplete (`None`: every sample is complete).
    /// [`Step::forward`] installs them around the student's training-mode forward (the
    /// BatchNorm rule for placeholders: [`mmanet_models::layers::with_availability`]); both
    /// objectives run the teacher with them and distil on the complete rows.
    pub available: Option<Tensor>,
    /// Run the forward passes under fp16 autocast (their outputs come back in f32, so every
    /// loss is computed in f32).
    pub amp: bool,
    /// The step is being captured as a CUDA graph (`compute.cuda_graph`): nothing may read
    /// the device, so the BatchNorm rule runs on every branch under an availability instead
    /// of first checking which columns are complete (the same statistics, up to rounding).
    pub capturable: bool,
}

impl Step<'_> {
    /// Runs `net` on `inputs`, under fp16 autocast when [`Step::amp`] is set. When `net` is
    /// [`Step::student`] in training mode on incomplete data ([`Step::available`]), each
    /// modality branch's BatchNorms compute their statistics over the rows that really have
    /// the modality ([`mmanet_models::layers::with_availability`]); the teacher, evaluation
    /// mode and complete data run as before.
    ///
    /// # Shapes
    /// - `inputs[m]`: `[B, ...]`; `mask`: `[B, M]`; output: as the network's.
    pub fn forward(
        &self,
        net: &dyn MultiModalNet,
        inputs: &[Tensor],
        mask: &Tensor,
        train: bool,
    ) -> NetOutput {
        let run = || {
            if !self.amp {
                return net.forward_t(inputs, mask, train);
            }
            tch::autocast(true, || net.forward_t(inputs, mask, train)).to_kind(Kind::Float)
        };
        match self.branch_availability(net, train) {
            Some(avail) if self.capturable => {
                mmanet_models::layers::with_availability_every_branch(avail, run)
            }
            Some(avail) => mmanet_models::layers::with_availability(avail, run),
            None => run(),
        }
    }

    /// The `[B, M]` 0/1 availability the BatchNorm rule uses for a forward of `net`: `Some`
    /// only for the student in training mode on incomplete data.
    fn branch_availability(&self, net: &dyn MultiModalNet, train: bool) -> Option<&Tensor> {
        let available = self.available.as_ref()?;
        let student = std::ptr::eq(
            std::ptr::from_ref(net).cast::<u8>(),
            std::ptr::from_ref(self.student).cast::<u8>(),
        );
        (train && student).then_some(available)
    }
}

/// A task's training objective: the loss of a batch, and the weak-set mining MAR relies on.
pub trait Objective: Send {
    /// The loss of one batch and its parts (each term already multiplied by its λ).
    ///
    /// # Shapes
    /// - `batch.inputs[m]`: `[B, ...]`; `batch.mask`: `[B, M]`; `batch.targets`: `[B]`
    ///   (classification) or `[B, H, W]` (segmentation, 0 = void).
    /// - output: the scalar to back-propagate and its parts, as tensors (the objective does not
    ///   read them: a captured step cannot, and the trainer reads them in one transfer).
    fn loss(&self, step: &Step<'_>, batch: &Batch) -> Result<LossTerms, TrainError>;

    /// Scores `net` on `val` (the complete validation samples) with the full combination and
    /// each mining candidate after the training pass of mining epoch `epoch`, split over
    /// `ranks` in a data-parallel run (every rank gets the same record); the trainer records
    /// the result in the run state, so that a resumed run mines exactly.
    fn mine_epoch(
        &self,
        net: &dyn MultiModalNet,
        val: &DataLoader,
        epoch: usize,
        device: Device,
        ranks: Ranks<'_>,
    ) -> Result<MiningEpoch, TrainError>;

    /// The weak set that the recorded mining epochs select.
    fn select_weak_set(&self, history: &[MiningEpoch]) -> Result<WeakSet, TrainError>;
}

/// The kinds of task, each with its objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// One label per sample ([`ClassificationObjective`]).
    Classification,
    /// One label per pixel ([`SegmentationObjective`]).
    Segmentation,
}

impl TaskKind {
    /// The kind of a data set's task.
    pub fn of(task: Task) -> Self {
        match task {
            Task::Classification { .. } => TaskKind::Classification,
            Task::Segmentation { .. } => TaskKind::Segmentation,
        }
    }

    /// Refuses a method whose loss variants the task's objective has no form of (called by
    /// [`TrainConfig::check`](crate::TrainConfig::check) for students).
    pub fn check_method(self, method: &MethodConfig) -> Result<(), TrainError> {
        match self {
            TaskKind::Classification => ClassificationObjective::check_method(method),
            TaskKind::Segmentation => SegmentationObjective::check_method(method),
        }
    }
}

/// The objective of a run, chosen once from the task of its data (segmentation class weights
/// are computed here, over the training split when median-frequency weighting is set).
pub fn for_task(
    cfg: &ValidConfig,
    task: Task,
    device: Device,
) -> Result<Box<dyn Objective>, TrainError> {
    let set = cfg.set().clone();
    Ok(match task {
        Task::Classification { num_classes } => {
            Box::new(ClassificationObjective::new(&cfg.method, set, num_classes))
        }
        Task::Segmentation { num_classes } => {
            let weights = segmentation::class_weights(cfg, num_classes, device)?;
            Box::new(SegmentationObjective::new(&cfg.method, set, weights))
        }
    })
}

/// For incomplete data ([`Step::available`]), the batch's `[B, M]` availability mask (the mask
/// the teacher runs with) and its `[B]` complete-row indicator (the rows distillation uses),
/// both on the batch's device, computed there; `None` for complete data.
pub(crate) fn complete_rows(step: &Step<'_>) -> Option<(Tensor, Tensor)> {
    let available = step.available.as_ref()?;
    let mask = available.to_kind(Kind::Float);
    let rows = mask.amin(1, false);
    Some((mask, rows))
}

/// The `[B, M]` f32 0/1 availability tensor over `set` of one sample availability per row, on
/// `device` (what [`Step::available`] holds).
pub fn availability_tensor(
    set: &ModalitySet,
    available: &[mmanet_core::ModalityMask],
    device: Device,
) -> Result<Tensor, TrainError> {
    Ok(mmanet_losses::presence_tensor(set, available, Kind::Float, device)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Distillation;
    use mmanet_core::ModalityMask;
    use mmanet_models::{BranchConfig, GenericFusion, GenericNet, GenericNetConfig, NetRole};

    /// A two-modality MLP net (BatchNorm in each branch) on its own var store.
    fn mlp_net(role: NetRole) -> (tch::nn::VarStore, GenericNet) {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let cfg = GenericNetConfig {
            modalities: ModalitySet::from_names(["a", "b"]).unwrap(),
            branches: vec![BranchConfig::Mlp { in_dim: 3, hidden: vec![4], out_dim: 4 }; 2],
            trunk_hidden: vec![5],
            n_classes: 2,
            fusion: GenericFusion::Concat,
        };
        let net = GenericNet::new(&vs.root(), &cfg, role).unwrap();
        (vs, net)
    }

    /// `special_bone_a`'s running mean after one training-mode `Step::forward` of the
    /// student or of the teacher, from running statistics (0, 1), for each placeholder value
    /// in row 1 of modality `a` (which row 1 lacks).
    fn branch_means(of_teacher: bool) -> Vec<Tensor> {
        let (vs, student) = mlp_net(NetRole::Student);
        let (tvs, teacher) = mlp_net(NetRole::Teacher);
        let o = (Kind::Float, Device::Cpu);
        let (a, b) = (Tensor::randn([3, 3], o), Tensor::randn([3, 3], o));
        let set = student.modalities().clone();
        let (full, only_b) = (set.full(), ModalityMask::single(1));
        let available = vec![full, only_b, full];
        let mask =
            mmanet_losses::presence_tensor(&set, &available, Kind::Float, Device::Cpu).unwrap();
        let step = Step {
            student: &student,
            teacher: Some(&teacher),
            weak: None,
            available: Some(mask.shallow_clone()),
            amp: false,
            capturable: false,
        };
        let (net, store): (&dyn MultiModalNet, _) =
            if of_teacher { (&teacher, &tvs) } else { (&student, &vs) };
        let mean = store.variables()["special_bone_a.0.bn.running_mean"].shallow_clone();
        [0.0, 7.0]
            .iter()
            .map(|&p| {
                let a = a.copy();
                let _ = a.narrow(0, 1, 1).fill_(p);
                let _ = tch::no_grad(|| mean.shallow_clone().zero_());
                let _ = step.forward(net, &[a, b.shallow_clone()], &mask, true);
                mean.copy()
            })
            .collect()
    }

    #[test]
    fn the_students_branch_statistics_skip_the_placeholders_and_the_teachers_do_not() {
        let student = branch_means(false);
        assert_eq!(student[0], student[1], "the student's placeholder moved its statistics");
        let teacher = branch_means(true);
        assert_ne!(teacher[0], teacher[1], "the teacher runs without the rule");
    }

    fn method(distillation: Distillation) -> MethodConfig {
        MethodConfig { distillation, ..MethodConfig::mmanet_classification() }
    }

    #[test]
    fn the_task_decides_which_distillation_variants_exist() {
        let kinds = [TaskKind::Classification, TaskKind::Segmentation];
        assert_eq!(
            kinds,
            [
                TaskKind::of(Task::Classification { num_classes: 2 }),
                TaskKind::of(Task::Segmentation { num_classes: 40 })
            ]
        );
        for d in [Distillation::None, Distillation::Sp, Distillation::Mad] {
            assert!(TaskKind::Classification.check_method(&method(d)).is_ok(), "{d:?}");
        }
        for d in [Distillation::None, Distillation::Mad] {
            assert!(TaskKind::Segmentation.check_method(&method(d)).is_ok(), "{d:?}");
        }
        match TaskKind::Segmentation.check_method(&method(Distillation::Sp)) {
            Err(TrainError::Config { field, message }) => {
                assert_eq!(field, "method.distillation");
                assert_eq!(message, segmentation::SP_SEGMENTATION_UNSUPPORTED);
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
