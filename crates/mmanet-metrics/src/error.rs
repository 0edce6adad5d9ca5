//! The error type of `mmanet-metrics`.

/// Errors raised while accumulating metrics or building reports.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// Labels and predictions of different lengths.
    #[error("length mismatch: {labels} labels but {preds} predictions")]
    LengthMismatch {
        /// Number of labels.
        labels: usize,
        /// Number of predictions.
        preds: usize,
    },
    /// A binary label or prediction that is neither 0 nor 1.
    #[error("binary {what} {value} at index {index} is neither 0 nor 1")]
    InvalidBinaryValue {
        /// `"label"` or `"prediction"`.
        what: &'static str,
        /// Position in the slice passed in.
        index: usize,
        /// The offending value.
        value: i64,
    },
    /// A [`crate::LabelConvention`] whose bona fide label is neither 0 nor 1.
    #[error("the bona fide label must be 0 or 1, got {0}")]
    InvalidConvention(i64),
    /// Two binary accumulators with different label conventions.
    #[error(
        "cannot merge counts with bona fide label {left} into counts with bona fide label {right}"
    )]
    ConventionMismatch {
        /// Bona fide label of the accumulator merged into.
        right: i64,
        /// Bona fide label of the accumulator merged from.
        left: i64,
    },
    /// A confusion matrix needs at least one class.
    #[error("a confusion matrix needs at least one class")]
    NoClasses,
    /// A segmentation label outside `0..=num_classes` (0 = void).
    #[error(
        "label {value} at index {index} is outside 0..={num_classes} (0 = void, 1..={num_classes} = classes)"
    )]
    LabelOutOfRange {
        /// Position in the slice passed in.
        index: usize,
        /// The offending value.
        value: i64,
        /// Number of classes of the matrix.
        num_classes: usize,
    },
    /// A predicted class index outside `0..num_classes`.
    #[error("predicted class {value} at index {index} is outside 0..{num_classes}")]
    PredictionOutOfRange {
        /// Position in the slice passed in.
        index: usize,
        /// The offending value.
        value: i64,
        /// Number of classes of the matrix.
        num_classes: usize,
    },
    /// Two confusion matrices of different sizes.
    #[error("cannot merge a confusion matrix of {left} classes into one of {right} classes")]
    ClassCountMismatch {
        /// Classes of the matrix merged into.
        right: usize,
        /// Classes of the matrix merged from.
        left: usize,
    },
    /// A metric name that is empty, repeated, or holds characters that break CSV or Markdown.
    #[error(
        "invalid metric name {0:?}: names must be non-empty, unique, and free of `,` `|` `\"` and line breaks"
    )]
    InvalidMetricName(String),
    /// A report row with the wrong number of values.
    #[error("row for {combination} has {got} values, the report has {expected} metrics")]
    ValueCount {
        /// The combination, displayed.
        combination: String,
        /// Number of metrics of the report.
        expected: usize,
        /// Number of values given.
        got: usize,
    },
    /// A combination given twice in one report.
    #[error("combination {0} appears twice in the report")]
    DuplicateCombination(String),
    /// A NaN or infinite metric value (JSON cannot hold it).
    #[error("metric {metric} of {combination} is not finite ({value})")]
    NonFinite {
        /// The combination, displayed.
        combination: String,
        /// The metric name.
        metric: String,
        /// The offending value.
        value: f64,
    },
    /// Aggregation over an empty list of reports.
    #[error("no reports to aggregate")]
    NoRuns,
    /// Reports that cannot be aggregated because they differ in shape.
    #[error("report {run} disagrees with report 0: {detail}")]
    RunMismatch {
        /// Index of the disagreeing report.
        run: usize,
        /// What differs.
        detail: String,
    },
    /// A serialized report that is well-formed JSON but not a valid report.
    #[error("invalid report: {0}")]
    InvalidReport(String),
    /// Raw counts (e.g. summed across processes) that no accumulation could produce.
    #[error("invalid raw counts: {0}")]
    InvalidCounts(String),
}

/// Result alias of this crate.
pub type Result<T, E = MetricsError> = std::result::Result<T, E>;
