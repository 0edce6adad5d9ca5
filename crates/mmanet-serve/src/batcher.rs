//! The model's thread: it owns the [`Predictor`] (libtorch tensors are not `Sync`), takes jobs
//! from a bounded queue and runs them together, up to `max_batch` samples or until
//! `max_delay` after the first job of a batch, whatever modality subsets they carry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use mmanet_deploy::{Output, Predictor, Prepared};
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// One request's samples and where to send their outputs.
pub(crate) struct Job {
    pub(crate) samples: Vec<Prepared>,
    pub(crate) reply: oneshot::Sender<Result<Vec<Output>, String>>,
}

/// Why a job was not queued.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The queue is full: try again later.
    Full,
    /// The model thread has stopped.
    Stopped,
}

/// The sending side of the queue.
#[derive(Clone)]
pub(crate) struct Queue {
    tx: SyncSender<Job>,
}

impl Queue {
    pub(crate) fn submit(&self, job: Job) -> Result<(), Refused> {
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Disconnected(_) => Refused::Stopped,
        })
    }
}

/// Batching limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_batch: usize,
    pub(crate) max_delay: Duration,
    pub(crate) capacity: usize,
    /// Sleep before each batch (tests and load experiments only).
    pub(crate) inference_delay: Duration,
}

/// Starts the model thread: `load` runs on it (the predictor never leaves it); `ready` turns
/// true after the warm-up pass. The thread ends when every [`Queue`] is dropped.
pub(crate) fn start(
    load: impl FnOnce() -> Result<Predictor, String> + Send + 'static,
    limits: Limits,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> (Queue, std::thread::JoinHandle<Result<(), String>>) {
    let (tx, rx) = sync_channel::<Job>(limits.capacity.max(1));
    let handle = std::thread::Builder::new()
        .name("mmanet-model".into())
        .spawn(move || {
            let predictor = load()?;
            predictor.warm_up().map_err(|e| format!("warm-up: {}", crate::error_chain(&e)))?;
            metrics.note_graphs(&predictor);
            ready.store(true, Ordering::SeqCst);
            tracing::info!("model loaded and warmed up");
            run(&predictor, &rx, limits, &metrics);
            Ok(())
        })
        .expect("spawn the model thread");
    (Queue { tx }, handle)
}

fn run(predictor: &Predictor, rx: &Receiver<Job>, limits: Limits, metrics: &Metrics) {
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + limits.max_delay;
        let mut jobs = vec![first];
        let mut n: usize = jobs[0].samples.len();
        while n < limits.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(job) => {
                    n += job.samples.len();
                    jobs.push(job);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // A client that hung up is dropped from the batch.
        let before = jobs.len();
        jobs.retain(|j| !j.reply.is_closed());
        metrics.dropped.inc_by((before - jobs.len()) as u64);
        if jobs.is_empty() {
            continue;
        }
        if !limits.inference_delay.is_zero() {
            std::thread::sleep(limits.inference_delay);
        }
        let samples: Vec<Prepared> = jobs.iter().flat_map(|j| j.samples.iter().cloned()).collect();
        metrics.batch_size.observe(samples.len() as f64);
        let predicted = predictor.predict(&samples);
        metrics.note_graphs(predictor);
        match predicted {
            Ok(outputs) => {
                let mut outputs = outputs.into_iter();
                for job in jobs {
                    let mine: Vec<Output> = outputs.by_ref().take(job.samples.len()).collect();
                    // A receiver gone since the check above: nothing to answer.
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) if jobs.len() == 1 => {
                tracing::error!("prediction failed: {e}");
                for job in jobs {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
            Err(e) => {
                // One request's input (an image libtorch refuses) must not fail the requests
                // batched with it: each is run again alone.
                tracing::warn!(
                    "a batch of {} requests failed ({e}); running each alone",
                    jobs.len()
                );
                for job in jobs {
                    let alone = predictor.predict(&job.samples).map_err(|e| {
                        tracing::error!("prediction failed: {e}");
                        e.to_string()
                    });
                    let _ = job.reply.send(alone);
                }
            }
        }
    }
}
