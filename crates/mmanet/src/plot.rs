//! An SVG plot of a report: one metric per combination, one series per model.

use std::path::Path;

use anyhow::Result;
use mmanet_plot::{CombinationChart, Point, Series, combination_chart};
use mmanet_train::run_report::RunReport;

/// Draws `metric` (a fraction, shown in %) for every model of `report` into `path`.
pub(crate) fn write_svg(report: &RunReport, metric: &str, path: &Path) -> Result<()> {
    combination_chart(path, &chart(report, metric))?;
    Ok(())
}

/// The chart of `metric` in %: the first model's combinations on the x axis, a missing metric
/// as NaN (skipped).
fn chart(report: &RunReport, metric: &str) -> CombinationChart {
    let combinations = report
        .results
        .first()
        .map(|r| r.combinations.iter().map(|c| c.present.join("+")).collect())
        .unwrap_or_default();
    let series = report
        .results
        .iter()
        .map(|r| Series {
            name: r.model.clone(),
            points: r
                .combinations
                .iter()
                .map(|c| Point::new(100.0 * c.metrics.get(metric).copied().unwrap_or(f64::NAN)))
                .collect(),
        })
        .collect();
    CombinationChart {
        title: format!("{}: {metric} per modality combination", report.dataset),
        y_label: format!("{metric} (%)"),
        combinations,
        series,
        ..CombinationChart::default()
    }
}
