//! `/metrics`: Prometheus text format (requests and errors by kind, batch sizes, latency,
//! and with `--cuda-graph` the forward passes by how they ran).

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// The server's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) requests: IntCounterVec,
    pub(crate) errors: IntCounterVec,
    pub(crate) batch_size: Histogram,
    pub(crate) latency: Histogram,
    pub(crate) dropped: IntCounter,
    /// `--cuda-graph`: forward passes by `how` (`replay`, `eager`) and graphs captured.
    graph_passes: IntCounterVec,
    graph_captures: IntCounter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("mmanet_requests_total", "Prediction requests by HTTP status."),
            &["status"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new("mmanet_errors_total", "Refused or failed requests by kind."),
            &["kind"],
        )
        .expect("valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("mmanet_batch_size", "Samples per forward pass.")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )
        .expect("valid metric");
        let latency = Histogram::with_opts(
            HistogramOpts::new("mmanet_request_seconds", "Prediction latency, request to answer.")
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16).expect("valid buckets")),
        )
        .expect("valid metric");
        let dropped = IntCounter::new(
            "mmanet_dropped_total",
            "Queued requests whose client hung up before their batch ran.",
        )
        .expect("valid metric");
        let graph_passes = IntCounterVec::new(
            Opts::new(
                "mmanet_graph_passes_total",
                "With --cuda-graph: forward passes replayed from a CUDA graph or run eagerly.",
            ),
            &["how"],
        )
        .expect("valid metric");
        let graph_captures = IntCounter::new(
            "mmanet_graph_captures_total",
            "With --cuda-graph: CUDA graphs captured.",
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(batch_size.clone()),
            Box::new(latency.clone()),
            Box::new(dropped.clone()),
            Box::new(graph_passes.clone()),
            Box::new(graph_captures.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Metrics {
            registry,
            requests,
            errors,
            batch_size,
            latency,
            dropped,
            graph_passes,
            graph_captures,
        }
    }

    /// Brings the graph counters up to the predictor's counts (nothing without graphs).
    pub(crate) fn note_graphs(&self, predictor: &mmanet_deploy::Predictor) {
        let Some(c) = predictor.graph_counts() else { return };
        let up = |counter: &IntCounter, to: u64| counter.inc_by(to.saturating_sub(counter.get()));
        up(&self.graph_passes.with_label_values(&["replay"]), c.replays);
        up(&self.graph_passes.with_label_values(&["eager"]), c.eager);
        up(&self.graph_captures, c.captures);
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> String {
        let mut buf = Vec::new();
        prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text");
        String::from_utf8(buf).expect("UTF-8 metrics")
    }
}
