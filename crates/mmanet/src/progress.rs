//! Progress bars for training, fed by the trainer's [`Observer`] events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use mmanet_train::Observer;
use mmanet_train::state::{EpochRecord, LossBreakdown};

/// Draws one bar per epoch on stderr (loss, samples/s and steps/s) and prints a line per
/// finished epoch.
pub(crate) struct Bars {
    label: String,
    epochs: usize,
    batch_size: usize,
    bar: Option<ProgressBar>,
    /// Steps of the current epoch and when its first step started.
    steps: usize,
    started: Option<Instant>,
    quiet: bool,
    stop: Arc<AtomicBool>,
}

impl Bars {
    /// `batch_size`: training samples per step (the loader drops the last incomplete batch,
    /// so every step has exactly this many).
    pub(crate) fn new(label: &str, epochs: usize, batch_size: usize, quiet: bool) -> Self {
        Bars {
            label: label.to_string(),
            epochs,
            batch_size,
            bar: None,
            steps: 0,
            started: None,
            quiet,
            stop: stop_flag(),
        }
    }
}

/// `"<samples/s> samples/s, <steps/s> steps/s"` for `steps` steps of `batch_size` samples in
/// `seconds`.
fn throughput(steps: usize, batch_size: usize, seconds: f64) -> String {
    if seconds <= 0.0 || steps == 0 {
        return "- samples/s".to_string();
    }
    let steps_per_s = steps as f64 / seconds;
    format!("{:.1} samples/s, {steps_per_s:.2} steps/s", steps_per_s * batch_size as f64)
}

/// Set by Ctrl-C: the trainer stops after the current step with a checkpoint written.
pub(crate) fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let installed = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                std::process::exit(130); // a second Ctrl-C: leave now
            }
            eprintln!(
                "\nstop requested (Ctrl-C or SIGTERM): stopping after this step (again: quit at once)"
            );
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
                "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{} epoch {}/{} lr {lr:.1e}", self.label, epoch + 1, self.epochs));
        self.bar = Some(bar);
        self.steps = 0;
        self.started = Some(Instant::now());
    }

    fn on_step(&mut self, _epoch: usize, _step: usize, loss: &LossBreakdown) {
        self.steps += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            let secs = self.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
            bar.set_message(format!(
                "loss {:.4} | {}",
                loss.total,
                throughput(self.steps, self.batch_size, secs)
            ));
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
        // Training throughput: the steps of this epoch over the time since its first step
        // (validation, which follows, is not counted).
        let secs = self.started.take().map_or(0.0, |t| t.elapsed().as_secs_f64());
        eprintln!(
            "{} epoch {:>3}/{}: loss {:.4} (ce {:.4}, distill {:.4}, mar {:.4}){val} [{:.1}s, {}]",
            self.label,
            r.epoch + 1,
            self.epochs,
            l.total,
            l.ce,
            l.distill,
            l.mar,
            r.seconds,
            throughput(self.steps, self.batch_size, secs)
        );
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn on_weak_set(&mut self, weak: &[String]) {
        if !self.quiet {
            eprintln!("{}: weak set mined: {}", self.label, weak.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::throughput;

    #[test]
    fn throughput_counts_samples_not_steps() {
        // 10 steps of 64 samples in 2 s: 320 samples/s, 5 steps/s.
        assert_eq!(throughput(10, 64, 2.0), "320.0 samples/s, 5.00 steps/s");
        assert_eq!(throughput(0, 64, 2.0), "- samples/s");
        assert_eq!(throughput(3, 8, 0.0), "- samples/s");
    }
}
