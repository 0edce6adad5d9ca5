//! The error type of `mmanet-plot`.

use std::path::PathBuf;

use plotters::drawing::DrawingAreaErrorKind;

/// Errors raised while drawing a chart.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The SVG file could not be written (for instance its folder does not exist).
    #[error(transparent)]
    Write(#[from] mmanet_fs::FsError),
    /// Plotters failed to lay the chart out.
    #[error("drawing the chart {}: {source}", path.display())]
    Draw {
        /// The SVG file that was being written.
        path: PathBuf,
        /// What plotters reported.
        #[source]
        source: DrawingAreaErrorKind<std::io::Error>,
    },
}

/// `Result` with a [`PlotError`].
pub type Result<T, E = PlotError> = std::result::Result<T, E>;
