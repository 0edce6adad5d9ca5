//! Writing combination charts: labels, series names, skipped NaN points, error bars, errors.

use mmanet_plot::{CombinationChart, PlotError, Point, Series, combination_chart};

fn chart(combinations: &[&str], series: Vec<Series>) -> CombinationChart {
    CombinationChart {
        title: "test chart".into(),
        y_label: "accuracy (%)".into(),
        combinations: combinations.iter().map(|c| c.to_string()).collect(),
        series,
        ..CombinationChart::default()
    }
}

fn write(chart: &CombinationChart) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chart.svg");
    combination_chart(&path, chart).unwrap();
    std::fs::read_to_string(&path).unwrap()
}

/// The trimmed contents of every `<text>` element (plotters writes each on its own line).
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// Polylines in a series colour (not black) drawn one pixel wide: the error bars.
fn error_bars(svg: &str) -> usize {
    svg.split("<polyline")
        .skip(1)
        .filter(|p| !p.contains("stroke=\"#000000\"") && p.contains("stroke-width=\"1\""))
        .count()
}

fn series(name: &str, points: Vec<Point>) -> Series {
    Series { name: name.into(), points }
}

#[test]
fn svg_holds_every_combination_label_and_series_name() {
    let combos = ["RGB", "Depth", "IR", "RGB+Depth", "RGB+IR", "Depth+IR", "RGB+Depth+IR"];
    let c = chart(
        &combos,
        vec![
            series("MMANet", (0..7).map(|i| Point::new(80.0 + f64::from(i))).collect()),
            series("Baseline", (0..7).map(|i| Point::new(70.0 + f64::from(i))).collect()),
        ],
    );
    let svg = write(&c);
    assert!(svg.starts_with("<svg"));
    let texts = texts(&svg);
    for label in combos.iter().chain(&["MMANet", "Baseline", "test chart", "accuracy (%)"]) {
        assert!(texts.iter().any(|t| t == label), "{label} missing from {texts:?}");
    }
}

#[test]
fn vertical_labels_beyond_twelve_combinations_are_all_written() {
    // 15 = the non-empty subsets of 4 modalities, as in the mfeat-4 / synthetic experiments.
    let combos: Vec<String> = (1..16).map(|m| format!("m{m}")).collect();
    let names: Vec<&str> = combos.iter().map(String::as_str).collect();
    let c = chart(&names, vec![series("a", vec![Point::with_std(50.0, 2.0); 15])]);
    let svg = write(&c);
    let texts = texts(&svg);
    for label in &names {
        assert!(texts.iter().any(|t| t == label), "{label} missing from {texts:?}");
    }
    assert!(svg.contains("rotate(90"), "vertical labels are rotated");
}

#[test]
fn nan_points_are_skipped_and_error_bars_drawn_only_where_std_is_positive() {
    let one = |points| write(&chart(&["a", "b", "c"], vec![series("s", points)]));
    let all = one(vec![Point::new(50.0), Point::new(55.0), Point::new(60.0)]);
    let with_nan = one(vec![Point::new(50.0), Point::new(f64::NAN), Point::new(60.0)]);
    // One marker (circle) per drawn point; the legend's sample is a line, not a circle.
    assert_eq!(all.matches("<circle").count(), 3);
    assert_eq!(with_nan.matches("<circle").count(), 2);
    assert!(!with_nan.contains("NaN"), "a NaN coordinate reached the SVG");

    let bars = one(vec![Point::with_std(50.0, 3.0), Point::new(55.0), Point::with_std(60.0, 1.0)]);
    // Two points with std > 0, two bars; none without.
    assert_eq!(error_bars(&bars), 2);
    assert_eq!(error_bars(&all), 0);
}

#[test]
fn unwritable_path_gives_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_such_folder").join("chart.svg");
    let err = combination_chart(&path, &chart(&["a"], vec![series("s", vec![Point::new(1.0)])]))
        .unwrap_err();
    let PlotError::Write(e) = &err else { panic!("expected a write error, got {err:?}") };
    assert_eq!(e.path, path);
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}
