//! Progress bars for training, fed by the trainer's [`Observer`] events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use mmanet_core::ModalityMask;
use mmanet_train::Observer;
use mmanet_train::state::{EpochRecord, LossBreakdown};

/// Draws one bar per epoch on stderr and prints a line per finished epoch.
pub(crate) struct Bars {
    label: String,
    epochs: usize,
    bar: Option<ProgressBar>,
    quiet: bool,
    stop: Arc<AtomicBool>,
}

impl Bars {
    pub(crate) fn new(label: &str, epochs: usize, quiet: bool) -> Self {
        Bars { label: label.to_string(), epochs, bar: None, quiet, stop: stop_flag() }
    }
}

/// Set by Ctrl-C: the trainer stops after the current step with a checkpoint written.
fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let installed = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                std::process::exit(130); // a second Ctrl-C: leave now
            }
            eprintln!("\nCtrl-C: stopping after this step (press again to quit at once)");
        });
        if let Err(e) = installed {
            tracing::warn!("cannot install the Ctrl-C handler: {e}");
        }
        flag
    })
    .clone()
}

impl Observer for Bars {
    fn on_epoch_start(&mut self, epoch: usize, steps: usize, lr: f64) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ({elapsed}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{} epoch {}/{} lr {lr:.1e}", self.label, epoch + 1, self.epochs));
        self.bar = Some(bar);
    }

    fn on_step(&mut self, _epoch: usize, _step: usize, loss: &LossBreakdown) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", loss.total));
        }
    }

    fn on_epoch_end(&mut self, r: &EpochRecord) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.quiet {
            return;
        }
        let val = r.val.map(|v| format!(" val {:.2}%", 100.0 * v)).unwrap_or_default();
        let l = &r.loss;
        eprintln!(
            "{} epoch {:>3}/{}: loss {:.4} (ce {:.4}, distill {:.4}, mar {:.4}){val} [{:.1}s]",
            self.label,
            r.epoch + 1,
            self.epochs,
            l.total,
            l.ce,
            l.distill,
            l.mar,
            r.seconds
        );
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn on_weak_set(&mut self, weak: &[ModalityMask]) {
        if !self.quiet {
            let names: Vec<String> = weak.iter().map(ToString::to_string).collect();
            eprintln!("{}: weak set mined: {}", self.label, names.join(", "));
        }
    }
}
