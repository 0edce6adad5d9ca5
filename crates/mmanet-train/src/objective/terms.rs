//! [`LossTerms`]: the loss of one batch as device tensors, read back in one transfer.
//!
//! An objective returns its terms as tensors and never reads them: the trainer reads all four
//! with one host synchronisation per step ([`LossTerms::read`]), and a captured CUDA graph
//! (`compute.cuda_graph`) copies them into its output buffer instead ([`LossTerms::parts`]),
//! since a capture cannot read the device.

use tch::{Kind, Tensor};

use crate::state::LossBreakdown;

/// The total to back-propagate and its parts, each already multiplied by its λ.
#[derive(Debug)]
pub struct LossTerms {
    /// `[]`: `ce + distill + mar`.
    pub total: Tensor,
    /// `[]`: the deployment network's cross-entropy.
    pub ce: Tensor,
    /// `[]`: λ_MAD · MAD (or λ · SP); `None` when distillation is off in this step.
    pub distill: Option<Tensor>,
    /// `[]`: λ_MAR · MAR; `None` when MAR is off in this step.
    pub mar: Option<Tensor>,
}

impl LossTerms {
    /// The terms of a step with the cross-entropy alone.
    ///
    /// # Shapes
    /// - `ce`: `[]`.
    pub fn new(ce: Tensor) -> Self {
        LossTerms { total: ce.shallow_clone(), ce, distill: None, mar: None }
    }

    /// Adds a distillation term (to `distill` and to `total`).
    ///
    /// # Shapes
    /// - `d`: `[]`.
    pub fn add_distill(&mut self, d: Tensor) {
        self.total = &self.total + &d;
        self.distill = Some(match self.distill.take() {
            Some(prev) => prev + d,
            None => d,
        });
    }

    /// Adds the MAR term (to `mar` and to `total`).
    ///
    /// # Shapes
    /// - `r`: `[]`.
    pub fn add_mar(&mut self, r: Tensor) {
        self.total = &self.total + &r;
        self.mar = Some(match self.mar.take() {
            Some(prev) => prev + r,
            None => r,
        });
    }

    /// `total, ce, distill, mar` in one detached f32 tensor on the loss's device (0 for a term
    /// that is off); no host synchronisation.
    ///
    /// # Shapes
    /// - output: `[4]`.
    pub fn parts(&self) -> Tensor {
        let _guard = tch::no_grad_guard();
        let f = |t: &Tensor| t.detach().to_kind(Kind::Float).reshape([1]);
        let off = || self.ce.zeros_like().to_kind(Kind::Float).reshape([1]);
        let pieces = [
            f(&self.total),
            f(&self.ce),
            self.distill.as_ref().map_or_else(off, f),
            self.mar.as_ref().map_or_else(off, f),
        ];
        Tensor::cat(&pieces, 0)
    }

    /// The terms as numbers: one device-to-host transfer.
    pub fn read(&self) -> LossBreakdown {
        LossBreakdown::from_parts(&self.parts())
    }
}

impl LossBreakdown {
    /// The numbers of a [`LossTerms::parts`] tensor (one device-to-host transfer).
    ///
    /// # Shapes
    /// - `parts`: `[4]` (`total, ce, distill, mar`), any float kind and device.
    pub fn from_parts(parts: &Tensor) -> LossBreakdown {
        let v: Vec<f64> = Vec::try_from(parts.to_kind(Kind::Double).to_device(tch::Device::Cpu))
            .unwrap_or_else(|_| vec![f64::NAN; 4]);
        let at = |i: usize| v.get(i).copied().unwrap_or(f64::NAN);
        LossBreakdown { total: at(0), ce: at(1), distill: at(2), mar: at(3) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_add_up_and_read_back_in_one_tensor() {
        let ce = Tensor::from(1.5f32);
        let mut terms = LossTerms::new(ce);
        assert_eq!(terms.read(), LossBreakdown { total: 1.5, ce: 1.5, distill: 0.0, mar: 0.0 });
        terms.add_distill(Tensor::from(0.25f32));
        terms.add_mar(Tensor::from(0.125f32));
        terms.add_mar(Tensor::from(0.125f32));
        assert_eq!(terms.parts().size(), [4]);
        assert_eq!(terms.read(), LossBreakdown { total: 2.0, ce: 1.5, distill: 0.25, mar: 0.25 });
        // The cross-entropy tensor itself is left as it was (no in-place sum).
        assert_eq!(terms.ce.double_value(&[]), 1.5);
    }
}
