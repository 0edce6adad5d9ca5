//! An SVG plot of a report: one metric per combination, one series per model.

use std::path::Path;

use anyhow::{Context, Result};
use mmanet_train::run_report::RunReport;
use plotters::prelude::*;

/// Draws `metric` (a fraction, shown in %) for every model of `report` into `path`.
pub(crate) fn write_svg(report: &RunReport, metric: &str, path: &Path) -> Result<()> {
    let labels: Vec<String> = report
        .results
        .first()
        .map(|r| r.combinations.iter().map(|c| c.present.join("+")).collect())
        .unwrap_or_default();
    let series: Vec<(String, Vec<f64>)> = report
        .results
        .iter()
        .map(|r| {
            let v = r
                .combinations
                .iter()
                .map(|c| 100.0 * c.metrics.get(metric).copied().unwrap_or(f64::NAN));
            (r.model.clone(), v.collect())
        })
        .collect();
    let all = series.iter().flat_map(|s| s.1.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) =
        if lo <= hi { ((lo - 2.0).max(0.0), (hi + 2.0).min(100.0)) } else { (0.0, 100.0) };
    let width = (160 + 70 * labels.len()).max(640) as u32;
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = labels.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: {metric} per modality combination", report.dataset),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), lo..hi)?;
    let names = labels.clone();
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&move |x| {
            let i = x.round() as i64;
            if (x - i as f64).abs() < 1e-6 && i >= 0 && (i as usize) < names.len() {
                names[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc(format!("{metric} (%)"))
        .draw()?;
    for (k, (name, values)) in series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let points: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| (i as f64, *v))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
