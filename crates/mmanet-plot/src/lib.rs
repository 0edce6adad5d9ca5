//! SVG charts of a metric per modality combination, without libtorch.
//!
//! A [`CombinationChart`] puts the modality combinations on the x axis and draws one
//! [`Series`] per model: a line with markers, `± std` error bars where a [`Point`] has a
//! spread, NaN points skipped. The y range follows the data (±2, clamped to `0..=100`, so
//! values are normally percent), the canvas widens with the number of combinations and the x
//! labels turn vertical beyond 12 combinations. [`combination_chart`] writes it with plotters'
//! SVG backend. Both the `mmanet` app (`report.svg`) and `cargo xtask repro` (`results.svg`)
//! draw through it.
//!
//! ```
//! use mmanet_plot::{CombinationChart, Point, Series, combination_chart};
//!
//! let chart = CombinationChart {
//!     title: "mfeat: accuracy per modality combination".into(),
//!     y_label: "accuracy (%)".into(),
//!     combinations: vec!["fou".into(), "kar".into(), "fou+kar".into()],
//!     series: vec![Series {
//!         name: "MMANet".into(),
//!         points: vec![Point::with_std(81.0, 1.5), Point::new(f64::NAN), Point::new(95.0)],
//!     }],
//!     ..CombinationChart::default()
//! };
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("chart.svg");
//! combination_chart(&path, &chart)?;
//! assert!(std::fs::read_to_string(&path)?.starts_with("<svg"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod chart;
mod draw;
mod error;
mod layout;

pub use chart::{CombinationChart, LegendCorner, Point, Series};
pub use draw::combination_chart;
pub use error::{PlotError, Result};
