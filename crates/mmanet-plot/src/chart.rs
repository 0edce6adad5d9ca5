//! What a combination chart shows: labels, series and their points.

/// One value of a series at one combination: a mean and its spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The value drawn; a non-finite mean (NaN) is skipped (no marker, the line joins its
    /// neighbours).
    pub mean: f64,
    /// Half the height of the error bar around `mean`; 0 (or non-finite) draws no bar.
    pub std: f64,
}

impl Point {
    /// A point without an error bar.
    pub fn new(mean: f64) -> Self {
        Self { mean, std: 0.0 }
    }

    /// A point with a `± std` error bar.
    pub fn with_std(mean: f64, std: f64) -> Self {
        Self { mean, std }
    }

    /// Whether the point is drawn at all.
    pub fn is_drawn(&self) -> bool {
        self.mean.is_finite()
    }

    /// Whether the point gets an error bar.
    pub fn has_error_bar(&self) -> bool {
        self.is_drawn() && self.std.is_finite() && self.std > 0.0
    }
}

/// One line of the chart: a model's values, one [`Point`] per combination.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// One point per [`CombinationChart::combinations`] entry, in the same order; missing
    /// trailing points are treated as skipped.
    pub points: Vec<Point>,
}

/// The corner of the plot that holds the legend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegendCorner {
    /// Lower right: out of the way when higher values are better.
    #[default]
    LowerRight,
    /// Upper right: out of the way when lower values are better (error rates).
    UpperRight,
}

/// A metric per modality combination (x axis), one [`Series`] per model.
///
/// Values are in the metric's display unit, normally percent: the y range follows the data
/// (with error bars) plus a margin of 2, clamped to `0..=100`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CombinationChart {
    /// The caption above the plot.
    pub title: String,
    /// The y axis description, e.g. `"accuracy (%)"`.
    pub y_label: String,
    /// The x axis labels, e.g. `"R+D"`, one per combination.
    pub combinations: Vec<String>,
    /// The lines, drawn in order with distinct colours.
    pub series: Vec<Series>,
    /// Where the legend goes.
    pub legend: LegendCorner,
}
