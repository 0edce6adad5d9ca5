//! The error type of `mmanet-plot`.

use std::path::PathBuf;

use plotters::drawing::DrawingAreaErrorKind;

/// Errors raised while drawing a chart.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The SVG file could not be written (for instance its folder does not exist).
    #[error(transparent)]
    Write(#[from] mmanet_fs::FsError),
    /// Plotters failed to lay the chart out (its message is part of this one and therefore
    /// not also the `source()`: a chain of causes states it once).
    #[error("drawing the chart {}: {error}", path.display())]
    Draw {
        /// The SVG file that was being written.
        path: PathBuf,
        /// What plotters reported.
        error: DrawingAreaErrorKind<std::io::Error>,
    },
}

/// `Result` with a [`PlotError`].
pub type Result<T, E = PlotError> = std::result::Result<T, E>;
