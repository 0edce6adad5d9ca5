//! `mmanet serve`: an HTTP server for a model file ([`mmanet_deploy`]).
//!
//! - `POST /v1/predict`: JSON `{"inputs": {...}}` or `{"instances": [...]}` ([`request`]),
//!   or a multipart upload (one part per modality, named as the modality, holding its file);
//!   any non-empty subset of the model's modalities per instance.
//! - `GET /v1/model`, `/healthz`, `/readyz` (true once the model is loaded and warmed up),
//!   `/metrics` (Prometheus text).
//!
//! Requests are decoded on tokio's blocking pool and queued (bounded: a full queue answers
//! 503 with `Retry-After`) for the model's thread (the `batcher` module), which runs them together up
//! to `max_batch` samples or `max_delay`: one batch mixes modality subsets through the
//! per-sample mask. A client that hung up is dropped from the queue. Shutdown stops accepting,
//! answers what is in flight, then stops the model thread.

mod batcher;
mod error;
mod metrics;
pub mod request;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use error::ApiError;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen (`127.0.0.1:8080`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// Most samples in one forward pass.
    pub max_batch: usize,
    /// Longest wait for more requests after the first of a batch.
    pub max_delay: Duration,
    /// Requests waiting for the model at most; more are answered 503.
    pub queue_capacity: usize,
    /// Largest request body in bytes; larger ones are answered 413.
    pub max_body: usize,
    /// Longest time to receive a request body; slower clients are answered 408.
    pub read_timeout: Duration,
    /// The device the model runs on.
    pub device: tch::Device,
    /// Replay the forward pass from one CUDA graph per batch-size bucket up to `max_batch`
    /// (batches padded to the bucket; [`mmanet_deploy::graphs`]). On CPU batches are padded
    /// alike and run eagerly.
    pub cuda_graph: bool,
    /// Sleep before each batch: only for tests and load experiments (a slow model).
    pub inference_delay: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_batch: 32,
            max_delay: Duration::from_millis(2),
            queue_capacity: 256,
            max_body: 16 << 20,
            read_timeout: Duration::from_secs(10),
            device: tch::Device::Cpu,
            cuda_graph: false,
            inference_delay: Duration::ZERO,
        }
    }
}

/// An error starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The model file does not load.
    #[error("loading the model")]
    Model(#[from] mmanet_deploy::DeployError),
    /// The address cannot be bound, or the runtime failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The model thread failed.
    #[error("model thread: {0}")]
    ModelThread(String),
}

/// A running server (see [`start`]).
pub struct ServerHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl ServerHandle {
    /// Stops accepting, answers what is in flight, stops the model thread, and returns.
    pub fn shutdown(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.join()
    }

    /// Waits until the server stops (a signal, or [`ServerHandle::shutdown`] elsewhere).
    pub fn join(mut self) -> Result<(), ServeError> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ServeError::ModelThread("the server thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts serving the model file at `model` on a thread of its own and returns once the
/// address is bound (the model loads and warms up on its thread: `/readyz` says when).
/// `signals`: also stop on SIGTERM and Ctrl-C (the command does; tests do not).
pub fn start(model: PathBuf, cfg: ServeConfig, signals: bool) -> Result<ServerHandle, ServeError> {
    let metadata = mmanet_deploy::read_metadata(&model)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mmanet-http")
        .build()
        .map_err(|e| ServeError::Io { what: "starting the runtime".into(), source: e })?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(cfg.addr))
        .map_err(|e| ServeError::Io { what: format!("binding {}", cfg.addr), source: e })?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Io { what: "reading the bound address".into(), source: e })?;
    let ready = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(metrics::Metrics::new());
    let limits = batcher::Limits {
        max_batch: cfg.max_batch.max(1),
        max_delay: cfg.max_delay,
        capacity: cfg.queue_capacity,
        inference_delay: cfg.inference_delay,
    };
    let (device, graphs) = (cfg.device, cfg.cuda_graph.then_some(limits.max_batch));
    let (queue, model_thread) = batcher::start(
        move || {
            let p = mmanet_deploy::Predictor::load(&model, device).map_err(|e| error_chain(&e))?;
            match graphs {
                Some(max_batch) => p.with_cuda_graphs(max_batch).map_err(|e| error_chain(&e)),
                None => Ok(p),
            }
        },
        limits,
        ready.clone(),
        metrics.clone(),
    );
    let uploads = tempfile::Builder::new()
        .prefix("mmanet-serve-")
        .tempdir()
        .map_err(|e| ServeError::Io { what: "making a folder for uploads".into(), source: e })?;
    let state = Arc::new(routes::State {
        metadata: Arc::new(metadata),
        queue,
        ready,
        metrics,
        uploads,
        upload_seq: Default::default(),
    });
    let app = routes::router(state, &cfg);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("mmanet-serve".into())
        .spawn(move || {
            let served = runtime.block_on(async move {
                let stop = async move {
                    if signals {
                        tokio::select! {
                            _ = rx => {}
                            _ = shutdown_signal() => tracing::info!("signal: shutting down"),
                        }
                    } else {
                        let _ = rx.await;
                    }
                };
                axum::serve(listener, app).with_graceful_shutdown(stop).await
            });
            // Every queue sender was in the router's state, dropped with it: the model
            // thread ends after the jobs in flight.
            runtime.shutdown_timeout(Duration::from_secs(5));
            let model = model_thread
                .join()
                .map_err(|_| ServeError::ModelThread("the model thread panicked".into()))?;
            served.map_err(|e| ServeError::Io { what: "serving".into(), source: e })?;
            model.map_err(ServeError::ModelThread)
        })
        .map_err(|e| ServeError::Io { what: "spawning the server thread".into(), source: e })?;
    Ok(ServerHandle { addr, shutdown: Some(tx), thread: Some(thread) })
}

/// SIGTERM (what torchrun, systemd and Kubernetes send) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("no SIGTERM handler ({e}); Ctrl-C only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// An error and its causes on one line, each once.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if parts.last() != Some(&s) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}
