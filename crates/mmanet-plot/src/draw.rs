//! Drawing a [`CombinationChart`] into an SVG file with plotters.

use std::path::Path;

use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::chart::{CombinationChart, LegendCorner, Point};
use crate::error::{PlotError, Result};
use crate::layout::{canvas_size, series_offset, vertical_labels, y_range};

type DrawResult = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Writes `chart` as an SVG file at `path` (created or replaced atomically through
/// [`mmanet_fs::write`]).
///
/// One line with round markers per series, `± std` error bars where a point's `std > 0`,
/// NaN points skipped, a legend, x labels turned vertical beyond 12 combinations and a
/// canvas that widens with the number of combinations.
///
/// # Errors
///
/// [`PlotError::Write`], naming `path`, when the file cannot be written (e.g. its folder does
/// not exist); [`PlotError::Draw`] when plotters fails to lay the chart out.
pub fn combination_chart(path: &Path, chart: &CombinationChart) -> Result<()> {
    let mut svg = String::new();
    draw(&mut svg, chart).map_err(|error| PlotError::Draw { path: path.to_path_buf(), error })?;
    // Through the workspace's atomic, durable write (temporary file, fsync, rename).
    mmanet_fs::write(path, svg.as_bytes())?;
    Ok(())
}

fn draw(svg: &mut String, chart: &CombinationChart) -> DrawResult {
    let (lo, hi) = y_range(chart);
    let n = chart.combinations.len().max(1);
    let vertical = vertical_labels(chart);
    let root = SVGBackend::with_string(svg, canvas_size(chart)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut plot = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(if vertical { 150 } else { 60 })
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), lo..hi)?;
    // Vertical labels start at the axis and run downwards; drawn by hand below.
    let label_style = if vertical {
        TextStyle::from(("sans-serif", 11).into_font().transform(FontTransform::Rotate90))
            .pos(Pos::new(HPos::Left, VPos::Center))
    } else {
        TextStyle::from(("sans-serif", 13).into_font())
    };
    let names = &chart.combinations;
    plot.configure_mesh()
        .x_labels(n)
        .x_label_style(label_style.clone())
        .x_label_formatter(&|x| {
            let i = x.round();
            let on_tick = (x - i).abs() < 1e-6 && i >= 0.0;
            match names.get(i as usize) {
                Some(name) if on_tick && !vertical => name.clone(),
                _ => String::new(),
            }
        })
        .y_desc(&chart.y_label)
        .draw()?;
    if vertical {
        for (i, name) in names.iter().enumerate() {
            let (x, y) = plot.backend_coord(&(i as f64, lo));
            root.draw(&Text::new(name.clone(), (x, y + 6), label_style.clone()))?;
        }
    }
    for (k, series) in chart.series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let shift = series_offset(chart, k);
        let drawn: Vec<(f64, Point)> = series
            .points
            .iter()
            .take(chart.combinations.len())
            .enumerate()
            .filter(|(_, p)| p.is_drawn())
            .map(|(i, p)| (i as f64 + shift, *p))
            .collect();
        plot.draw_series(drawn.iter().filter(|(_, p)| p.has_error_bar()).map(|(x, p)| {
            PathElement::new(
                vec![(*x, p.mean - p.std), (*x, p.mean + p.std)],
                color.stroke_width(1),
            )
        }))?;
        let line: Vec<(f64, f64)> = drawn.iter().map(|(x, p)| (*x, p.mean)).collect();
        plot.draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
            .label(series.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        plot.draw_series(line.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
    }
    plot.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(match chart.legend {
            LegendCorner::LowerRight => SeriesLabelPosition::LowerRight,
            LegendCorner::UpperRight => SeriesLabelPosition::UpperRight,
        })
        .draw()?;
    root.present()
}
