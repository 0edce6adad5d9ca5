//! [`AggregateReport`]: mean ± sample standard deviation of [`CombinationReport`]s over runs.

use serde::{Deserialize, Serialize};

use crate::report::{
    NamedValues, REPORT_VERSION, check_kind_version, check_metric_names, check_values, csv_line,
    csv_number, markdown_header, markdown_row, percent,
};
use crate::{CombinationReport, MetricsError, Result};

/// Mean and sample standard deviation of one combination's metrics over the runs.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateRow {
    /// The combination.
    pub combination: String,
    /// Per metric, the mean over runs.
    pub mean: Vec<f64>,
    /// Per metric, the sample standard deviation over runs.
    pub std: Vec<f64>,
}

/// Several runs' [`CombinationReport`]s summarised cell by cell (the paper reports the average
/// of three trained models). Built by [`CombinationReport::aggregate`].
///
/// - Each cell holds the mean and the **sample** standard deviation (divisor `n - 1`) over the
///   `n` runs; with a single run the standard deviation is defined as 0.
/// - The average row is the mean and sample standard deviation of the runs' own average rows
///   (so its std measures run-to-run spread of the average, not spread over combinations).
/// - Values are fractions; [`AggregateReport::to_markdown`] shows `12.34 ± 0.56` in percent.
///
/// Serializes to the JSON documented in `docs/report_schema.md` (`"kind": "aggregate_report"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "AggregateJson", try_from = "AggregateJson")]
pub struct AggregateReport {
    metrics: Vec<String>,
    runs: usize,
    rows: Vec<AggregateRow>,
    average: Option<(Vec<f64>, Vec<f64>)>,
}

/// Mean and sample std (n - 1; 0 when n == 1) of the non-empty `xs`.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    // Identical values (or a single run): exactly that value and 0, free of rounding noise.
    if xs.iter().all(|x| *x == xs[0]) {
        return (xs[0], 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Per column, mean and std over the runs' vectors.
fn column_stats(runs: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    (0..runs[0].len()).map(|c| mean_std(&runs.iter().map(|r| r[c]).collect::<Vec<_>>())).unzip()
}

impl AggregateReport {
    pub(crate) fn from_runs(reports: &[CombinationReport]) -> Result<Self> {
        let first = reports.first().ok_or(MetricsError::NoRuns)?;
        let combos = |r: &CombinationReport| -> Vec<String> {
            r.rows().iter().map(|row| row.combination.clone()).collect()
        };
        for (run, r) in reports.iter().enumerate().skip(1) {
            if r.metrics() != first.metrics() {
                return Err(MetricsError::RunMismatch {
                    run,
                    detail: format!("metrics {:?} vs {:?}", r.metrics(), first.metrics()),
                });
            }
            if combos(r) != combos(first) {
                let show = |v: Vec<String>| {
                    v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                };
                return Err(MetricsError::RunMismatch {
                    run,
                    detail: format!(
                        "combinations [{}] vs [{}]",
                        show(combos(r)),
                        show(combos(first))
                    ),
                });
            }
        }
        let rows = first
            .rows()
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let per_run: Vec<Vec<f64>> =
                    reports.iter().map(|r| r.rows()[i].values.clone()).collect();
                let (mean, std) = column_stats(&per_run);
                AggregateRow { combination: row.combination.clone(), mean, std }
            })
            .collect();
        let averages: Option<Vec<Vec<f64>>> =
            reports.iter().map(CombinationReport::average).collect();
        Ok(AggregateReport {
            metrics: first.metrics().to_vec(),
            runs: reports.len(),
            rows,
            average: averages.map(|a| column_stats(&a)),
        })
    }

    /// The metric names (columns), in order.
    pub fn metrics(&self) -> &[String] {
        &self.metrics
    }

    /// Number of runs aggregated.
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// The rows, in the paper's combination order.
    pub fn rows(&self) -> &[AggregateRow] {
        &self.rows
    }

    /// `(mean, std)` of the runs' average rows; `None` when there are no combinations.
    pub fn average(&self) -> Option<(&[f64], &[f64])> {
        self.average.as_ref().map(|(m, s)| (m.as_slice(), s.as_slice()))
    }

    /// A Markdown table whose cells read `mean ± std` in percent with two decimals, with a
    /// final `Average` row.
    pub fn to_markdown(&self) -> String {
        let cells = |mean: &[f64], std: &[f64]| -> Vec<String> {
            mean.iter()
                .zip(std)
                .map(|(m, s)| format!("{} ± {}", percent(*m), percent(*s)))
                .collect()
        };
        let mut lines = vec![markdown_header(&self.metrics)];
        for row in &self.rows {
            lines.push(markdown_row(&row.combination.to_string(), &cells(&row.mean, &row.std)));
        }
        if let Some((mean, std)) = self.average() {
            lines.push(markdown_row("Average", &cells(mean, std)));
        }
        lines.join("\n") + "\n"
    }

    /// CSV with a header `combination,<metric>_mean,<metric>_std,...` and a final `average`
    /// line; fractions at full precision.
    pub fn to_csv(&self) -> String {
        let interleave = |mean: &[f64], std: &[f64]| -> Vec<String> {
            mean.iter().zip(std).flat_map(|(m, s)| [csv_number(*m), csv_number(*s)]).collect()
        };
        let header = self.metrics.iter().flat_map(|m| [format!("{m}_mean"), format!("{m}_std")]);
        let mut lines = vec![csv_line("combination", header)];
        for row in &self.rows {
            let cells = interleave(&row.mean, &row.std);
            lines.push(csv_line(&row.combination.to_string(), cells.into_iter()));
        }
        if let Some((mean, std)) = self.average() {
            lines.push(csv_line("average", interleave(mean, std).into_iter()));
        }
        lines.join("\n") + "\n"
    }

    /// Pretty-printed JSON (schema: `docs/report_schema.md`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// Parses and validates the JSON written by [`AggregateReport::to_json`].
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| MetricsError::InvalidReport(e.to_string()))
    }
}

// ---- JSON form -----------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsJson {
    mean: NamedValues,
    std: NamedValues,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggRowJson {
    combination: String,
    mean: NamedValues,
    std: NamedValues,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateJson {
    kind: String,
    version: u32,
    runs: usize,
    metrics: Vec<String>,
    rows: Vec<AggRowJson>,
    #[serde(default)]
    average: Option<StatsJson>,
}

impl From<AggregateReport> for AggregateJson {
    fn from(r: AggregateReport) -> Self {
        let named = |v: &[f64]| NamedValues::from_columns(&r.metrics, v);
        let rows = r
            .rows
            .iter()
            .map(|row| AggRowJson {
                combination: row.combination.clone(),
                mean: named(&row.mean),
                std: named(&row.std),
            })
            .collect();
        let average = r.average().map(|(m, s)| StatsJson { mean: named(m), std: named(s) });
        AggregateJson {
            kind: "aggregate_report".into(),
            version: REPORT_VERSION,
            runs: r.runs,
            metrics: r.metrics.clone(),
            rows,
            average,
        }
    }
}

impl TryFrom<AggregateJson> for AggregateReport {
    type Error = MetricsError;

    fn try_from(j: AggregateJson) -> Result<Self> {
        check_kind_version(&j.kind, j.version, "aggregate_report")?;
        check_metric_names(&j.metrics)?;
        if j.runs == 0 {
            return Err(MetricsError::InvalidReport("runs must be at least 1".into()));
        }
        let metrics = j.metrics;
        let columns = |v: NamedValues, label: &str, what: &str| -> Result<Vec<f64>> {
            let cols = v.into_columns(&metrics, &format!("{what} of {label}"))?;
            check_values(&metrics, label, &cols)?;
            if what == "std" && cols.iter().any(|s| *s < 0.0) {
                return Err(MetricsError::InvalidReport(format!("negative std in {label}")));
            }
            Ok(cols)
        };
        let mut rows: Vec<AggregateRow> = Vec::with_capacity(j.rows.len());
        for row in j.rows {
            let label = row.combination.to_string();
            if rows.iter().any(|r| r.combination == row.combination) {
                return Err(MetricsError::DuplicateCombination(label));
            }
            let mean = columns(row.mean, &label, "mean")?;
            let std = columns(row.std, &label, "std")?;
            rows.push(AggregateRow { combination: row.combination.clone(), mean, std });
        }
        let average = match (j.average, rows.is_empty()) {
            (Some(s), false) => {
                Some((columns(s.mean, "average", "mean")?, columns(s.std, "average", "std")?))
            }
            (None, true) => None,
            (Some(_), true) => {
                return Err(MetricsError::InvalidReport(
                    "average given for an empty report".into(),
                ));
            }
            (None, false) => {
                return Err(MetricsError::InvalidReport("average is missing".into()));
            }
        };
        Ok(AggregateReport { metrics, runs: j.runs, rows, average })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::close;

    fn mask(s: &str) -> &str {
        s
    }

    /// Three hand-made runs over R and R+D with metrics (acer, accuracy).
    /// R acer: 0.10, 0.12, 0.14 -> mean 0.12, sample std sqrt((0.02^2 + 0 + 0.02^2) / 2) = 0.02.
    /// R+D acer: 0.04 in every run -> mean 0.04, std 0.
    /// accuracy R: 0.9, 0.8, 0.7 -> mean 0.8, std 0.1; R+D: 0.95, 0.95, 0.98 -> mean 0.96,
    /// std sqrt((0.01^2 * 2 + 0.02^2) / 2) = sqrt(0.0003).
    /// Run averages of acer: 0.07, 0.08, 0.09 -> mean 0.08, std 0.01; of accuracy: 0.925, 0.875,
    /// 0.84 -> mean 0.88, std sqrt((0.045^2 + 0.005^2 + 0.04^2) / 2) = 0.04272.
    fn runs() -> Vec<CombinationReport> {
        let data =
            [([0.10, 0.9], [0.04, 0.95]), ([0.12, 0.8], [0.04, 0.95]), ([0.14, 0.7], [0.04, 0.98])];
        data.iter()
            .map(|(r, rd)| {
                let mut rep = CombinationReport::new(["acer", "accuracy"]).unwrap();
                rep.insert(mask("R"), r).unwrap();
                rep.insert(mask("R+D"), rd).unwrap();
                rep
            })
            .collect()
    }

    #[test]
    fn mean_and_sample_std_per_cell() {
        let agg = CombinationReport::aggregate(&runs()).unwrap();
        assert_eq!(agg.runs(), 3);
        let r = &agg.rows()[0];
        assert_eq!(r.combination, mask("R"));
        assert!(close(r.mean[0], 0.12) && close(r.std[0], 0.02), "{r:?}");
        assert!(close(r.mean[1], 0.8) && close(r.std[1], 0.1), "{r:?}");
        let rd = &agg.rows()[1];
        assert!(close(rd.mean[0], 0.04) && rd.std[0].abs() < 1e-15, "{rd:?}");
        assert!(close(rd.mean[1], 0.96) && close(rd.std[1], 0.0003f64.sqrt()), "{rd:?}");
        let (mean, std) = agg.average().unwrap();
        assert!(close(mean[0], 0.08) && close(std[0], 0.01), "{mean:?} {std:?}");
    }

    #[test]
    fn renders_markdown_and_csv() {
        let agg = CombinationReport::aggregate(&runs()).unwrap();
        let md = agg.to_markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "| Combination | acer (%) | accuracy (%) |");
        assert_eq!(lines[2], "| R | 12.00 ± 2.00 | 80.00 ± 10.00 |");
        assert_eq!(lines[3], "| R+D | 4.00 ± 0.00 | 96.00 ± 1.73 |");
        assert_eq!(lines[4], "| Average | 8.00 ± 1.00 | 88.00 ± 4.27 |");
        let csv = agg.to_csv();
        assert_eq!(
            csv.lines().next().unwrap(),
            "combination,acer_mean,acer_std,accuracy_mean,accuracy_std"
        );
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.lines().nth(1).unwrap().starts_with("R,0.12"));
    }

    #[test]
    fn json_round_trip() {
        let agg = CombinationReport::aggregate(&runs()).unwrap();
        let json = agg.to_json();
        assert_eq!(AggregateReport::from_json(&json).unwrap(), agg);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kind"], "aggregate_report");
        assert_eq!(v["runs"], 3);
        assert!(
            AggregateReport::from_json(&json.replacen("\"runs\": 3", "\"runs\": 0", 1)).is_err()
        );
        assert!(CombinationReport::from_json(&json).is_err());
    }

    #[test]
    fn single_run_has_zero_std() {
        let agg = CombinationReport::aggregate(&runs()[..1]).unwrap();
        assert!(agg.rows().iter().all(|r| r.std.iter().all(|s| *s == 0.0)));
        assert_eq!(agg.rows()[0].mean, vec![0.10, 0.9]);
    }

    #[test]
    fn disagreeing_runs_are_errors() {
        assert_eq!(CombinationReport::aggregate(&[]), Err(MetricsError::NoRuns));
        let mut more = runs();
        more[2].insert(mask("I"), &[0.2, 0.7]).unwrap();
        assert!(matches!(
            CombinationReport::aggregate(&more),
            Err(MetricsError::RunMismatch { run: 2, .. })
        ));
        let mut other = runs();
        other[1] = CombinationReport::new(["accuracy", "acer"]).unwrap();
        assert!(matches!(
            CombinationReport::aggregate(&other),
            Err(MetricsError::RunMismatch { run: 1, .. })
        ));
    }
}
