//! The chart's geometry from its data: y range, canvas size, label orientation, series offsets.

use crate::chart::CombinationChart;

/// Beyond this many combinations the x labels are drawn vertically.
pub(crate) const MAX_HORIZONTAL_LABELS: usize = 12;

/// Margin added above and below the data, in y units.
const Y_MARGIN: f64 = 2.0;

/// Whether the x labels are vertical (more than [`MAX_HORIZONTAL_LABELS`] combinations).
pub(crate) fn vertical_labels(chart: &CombinationChart) -> bool {
    chart.combinations.len() > MAX_HORIZONTAL_LABELS
}

/// The y range: every drawn point's `mean ± std`, widened by 2 and clamped to `0..=100`;
/// `0..100` when nothing is drawn or the data lie entirely outside `0..=100`.
pub(crate) fn y_range(chart: &CombinationChart) -> (f64, f64) {
    let ends =
        chart.series.iter().flat_map(|s| s.points.iter()).filter(|p| p.is_drawn()).flat_map(|p| {
            let d = if p.has_error_bar() { p.std } else { 0.0 };
            [p.mean - d, p.mean + d]
        });
    let (lo, hi) = ends.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = ((lo - Y_MARGIN).max(0.0), (hi + Y_MARGIN).min(100.0));
    if lo < hi { (lo, hi) } else { (0.0, 100.0) }
}

/// The canvas size in pixels: wider with more combinations, taller with vertical labels.
pub(crate) fn canvas_size(chart: &CombinationChart) -> (u32, u32) {
    let n = chart.combinations.len().max(1);
    let (width, height) =
        if vertical_labels(chart) { (200 + 22 * n, 560) } else { ((160 + 80 * n).max(640), 440) };
    (u32::try_from(width).unwrap_or(u32::MAX), height)
}

/// The x offset of series `k`: side by side within a combination when the chart has error
/// bars (so the bars do not overlap), 0 otherwise.
pub(crate) fn series_offset(chart: &CombinationChart, k: usize) -> f64 {
    let bars = chart.series.iter().flat_map(|s| s.points.iter()).any(|p| p.has_error_bar());
    if bars { (k as f64 - (chart.series.len() as f64 - 1.0) / 2.0) * 0.06 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{Point, Series};

    fn chart(points: Vec<Point>) -> CombinationChart {
        CombinationChart {
            combinations: (0..points.len()).map(|i| format!("c{i}")).collect(),
            series: vec![Series { name: "m".into(), points }],
            ..CombinationChart::default()
        }
    }

    #[test]
    fn y_range_covers_error_bars_with_margin_and_skips_nan() {
        let c = chart(vec![Point::with_std(50.0, 5.0), Point::new(f64::NAN), Point::new(60.0)]);
        // 50 - 5 - 2 = 43, 60 + 2 = 62
        assert_eq!(y_range(&c), (43.0, 62.0));
    }

    #[test]
    fn y_range_is_clamped_to_percent() {
        let c = chart(vec![Point::with_std(1.0, 3.0), Point::new(99.5)]);
        assert_eq!(y_range(&c), (0.0, 100.0));
        let c = chart(vec![Point::new(f64::NAN)]);
        assert_eq!(y_range(&c), (0.0, 100.0));
    }

    #[test]
    fn width_grows_and_labels_turn_vertical_beyond_twelve() {
        let small = chart(vec![Point::new(1.0); 3]);
        let twelve = chart(vec![Point::new(1.0); 12]);
        let many = chart(vec![Point::new(1.0); 15]);
        assert!(!vertical_labels(&twelve));
        assert!(vertical_labels(&many));
        assert_eq!(canvas_size(&small), (640, 440));
        assert!(canvas_size(&twelve).0 > canvas_size(&small).0);
        assert!(canvas_size(&many).1 > canvas_size(&twelve).1);
    }

    #[test]
    fn series_are_offset_only_with_error_bars() {
        let mut c = chart(vec![Point::new(1.0)]);
        c.series.push(c.series[0].clone());
        assert_eq!(series_offset(&c, 0), 0.0);
        c.series[1].points[0].std = 1.0;
        assert!(series_offset(&c, 0) < 0.0 && series_offset(&c, 1) > 0.0);
    }
}
