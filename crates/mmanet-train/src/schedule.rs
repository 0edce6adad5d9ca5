//! Learning-rate (and momentum) schedules, evaluated per epoch as the reference does.

use serde::{Deserialize, Serialize};

/// A per-epoch schedule. The reference steps every scheduler once per epoch, at its start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", from = "LrScheduleRepr")]
pub enum LrSchedule {
    /// The base rate at every epoch.
    Constant,
    /// The classification schedule (`GradualWarmupScheduler(total_epoch=W, multiplier=1)` then
    /// `MultiStepLR(milestones, gamma)` on `epoch - W`), as the effective table of docs/method.md §5.1:
    /// `lr(e) = base * (e - 1) / W` for `1 <= e <= W` (so epoch 1 runs at 0), then
    /// `base * gamma^k` with `k = #{m in milestones : e - W - 1 >= m}`. Epoch 0 gives 0.
    WarmupMultiStep {
        /// Warm-up length `W` in epochs (reference: 5).
        warmup_epochs: usize,
        /// Milestones counted after the warm-up (reference: 16, 33, 50).
        milestones: Vec<usize>,
        /// Decay factor at each milestone (reference: 0.1).
        gamma: f64,
    },
    /// PyTorch's `OneCycleLR` with cosine annealing and momentum cycling, stepped once per
    /// epoch (`total_steps = epochs`), as the segmentation reference.
    OneCycle {
        /// Fraction of the cycle spent increasing the rate (reference: 0.1).
        pct_start: f64,
        /// `initial_lr = max_lr / div_factor` (reference: 25).
        div_factor: f64,
        /// `min_lr = initial_lr / final_div_factor` (reference: 1e4).
        final_div_factor: f64,
        /// Momentum (or Adam beta1) at the rate's minimum (reference: 0.95).
        max_momentum: f64,
        /// Momentum at the rate's peak (reference: 0.85).
        base_momentum: f64,
    },
}

/// How [`LrSchedule`] is read: `Constant` as a struct variant, so that a key beside `kind =
/// "constant"` (a leftover `milestones`) is refused; serde ignores extra keys of an internally
/// tagged unit variant.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum LrScheduleRepr {
    Constant {},
    WarmupMultiStep {
        warmup_epochs: usize,
        milestones: Vec<usize>,
        gamma: f64,
    },
    OneCycle {
        pct_start: f64,
        div_factor: f64,
        final_div_factor: f64,
        max_momentum: f64,
        base_momentum: f64,
    },
}

impl From<LrScheduleRepr> for LrSchedule {
    fn from(r: LrScheduleRepr) -> Self {
        match r {
            LrScheduleRepr::Constant {} => LrSchedule::Constant,
            LrScheduleRepr::WarmupMultiStep { warmup_epochs, milestones, gamma } => {
                LrSchedule::WarmupMultiStep { warmup_epochs, milestones, gamma }
            }
            LrScheduleRepr::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
                max_momentum,
                base_momentum,
            } => LrSchedule::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
                max_momentum,
                base_momentum,
            },
        }
    }
}

impl LrSchedule {
    /// The classification reference: warm-up 5, milestones 16/33/50, gamma 0.1.
    pub fn reference_classification() -> Self {
        LrSchedule::WarmupMultiStep { warmup_epochs: 5, milestones: vec![16, 33, 50], gamma: 0.1 }
    }

    /// The segmentation reference: one cycle, pct_start 0.1, div 25, final div 1e4, momentum
    /// 0.95 -> 0.85 -> 0.95.
    pub fn reference_segmentation() -> Self {
        LrSchedule::OneCycle {
            pct_start: 0.1,
            div_factor: 25.0,
            final_div_factor: 1e4,
            max_momentum: 0.95,
            base_momentum: 0.85,
        }
    }

    /// Learning rate at `epoch` (0-based) of `total_epochs`, for base (peak) rate `base`.
    pub fn lr(&self, base: f64, epoch: usize, total_epochs: usize) -> f64 {
        match self {
            LrSchedule::Constant => base,
            LrSchedule::WarmupMultiStep { warmup_epochs, milestones, gamma } => {
                let w = *warmup_epochs;
                if w > 0 && epoch <= w {
                    return base * epoch.saturating_sub(1) as f64 / w as f64;
                }
                let after = epoch.saturating_sub(w + 1);
                let k = milestones.iter().filter(|&&m| after >= m).count();
                base * gamma.powi(k as i32)
            }
            LrSchedule::OneCycle { .. } => self.one_cycle(base, epoch, total_epochs).0,
        }
    }

    /// Momentum (SGD) or beta1 (Adam) at `epoch`, when the schedule cycles it.
    pub fn momentum(&self, epoch: usize, total_epochs: usize) -> Option<f64> {
        match self {
            LrSchedule::OneCycle { .. } => Some(self.one_cycle(1.0, epoch, total_epochs).1),
            _ => None,
        }
    }

    fn one_cycle(&self, max_lr: f64, step: usize, total: usize) -> (f64, f64) {
        let LrSchedule::OneCycle {
            pct_start,
            div_factor,
            final_div_factor,
            max_momentum,
            base_momentum,
        } = self
        else {
            unreachable!("one_cycle on another schedule")
        };
        let initial = max_lr / div_factor;
        let min_lr = initial / final_div_factor;
        let end1 = (pct_start * total as f64) - 1.0;
        let end2 = total as f64 - 1.0;
        let s = step as f64;
        let cos = |start: f64, end: f64, pct: f64| {
            end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
        };
        if s <= end1 {
            let pct = if end1 > 0.0 { s / end1 } else { 1.0 };
            (cos(initial, max_lr, pct), cos(*max_momentum, *base_momentum, pct))
        } else {
            let pct = ((s - end1) / (end2 - end1).max(f64::MIN_POSITIVE)).min(1.0);
            (cos(max_lr, min_lr, pct), cos(*base_momentum, *max_momentum, pct))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_reference_matches_the_spec_table() {
        // docs/method.md §5.1: e1 = 0; e2 0.2; e3 0.4; e4 0.6; e5 0.8; e6-e21 1; e22-e38 0.1;
        // e39-e55 0.01; e56-e99 0.001 (times base 1e-3).
        let s = LrSchedule::reference_classification();
        let lr = |e| s.lr(1.0, e, 100);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(lr(0), 0.0) && close(lr(1), 0.0));
        for (e, want) in [(2, 0.2), (3, 0.4), (4, 0.6), (5, 0.8), (6, 1.0), (21, 1.0)] {
            assert!(close(lr(e), want), "epoch {e}: {} != {want}", lr(e));
        }
        for (e, want) in [(22, 0.1), (38, 0.1), (39, 0.01), (55, 0.01), (56, 0.001), (99, 0.001)] {
            assert!(close(lr(e), want), "epoch {e}: {} != {want}", lr(e));
        }
    }

    #[test]
    fn one_cycle_matches_pytorch_endpoints() {
        // torch.optim.lr_scheduler.OneCycleLR(max_lr=0.01, total_steps=300, pct_start=0.1):
        // step 0 -> 0.01/25 = 4e-4 with momentum 0.95; step 29 -> 0.01 with momentum 0.85;
        // step 299 -> 4e-4/1e4 = 4e-8 with momentum 0.95.
        let s = LrSchedule::reference_segmentation();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 + 1e-9 * b.abs();
        assert!(close(s.lr(0.01, 0, 300), 4e-4));
        assert!(close(s.momentum(0, 300).unwrap(), 0.95));
        assert!(close(s.lr(0.01, 29, 300), 0.01));
        assert!(close(s.momentum(29, 300).unwrap(), 0.85));
        assert!(close(s.lr(0.01, 299, 300), 4e-8));
        assert!(close(s.momentum(299, 300).unwrap(), 0.95));
        // Monotone up then down.
        let lrs: Vec<f64> = (0..300).map(|e| s.lr(0.01, e, 300)).collect();
        assert!(lrs[..30].windows(2).all(|w| w[0] < w[1]));
        assert!(lrs[29..].windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn constant_has_no_momentum_cycle() {
        assert_eq!(LrSchedule::Constant.lr(0.5, 7, 10), 0.5);
        assert_eq!(LrSchedule::Constant.momentum(7, 10), None);
    }
}
