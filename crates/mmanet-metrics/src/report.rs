//! [`CombinationReport`]: one row of named metric values per modality combination, plus the
//! average row, rendered as Markdown, CSV or JSON (schema: `docs/report_schema.md`).

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{AggregateReport, BinaryCounts, ConfusionMatrix, MetricsError, Result};

/// The metric values of one modality combination, aligned with
/// [`CombinationReport::metrics`].
#[derive(Clone, Debug, PartialEq)]
pub struct CombinationRow {
    /// The combination of modalities present at evaluation, as its mask string (`R+D`).
    pub combination: String,
    /// One value per metric, in the report's metric order.
    pub values: Vec<f64>,
}

/// Per-combination results of one trained model, as in the paper's tables: one row per
/// modality combination (its mask string, `R+D`), in the order they were inserted (callers
/// insert in the paper's order, `R, D, I, R+D, R+I, D+I, R+D+I`), plus the average row over
/// all combinations.
///
/// Values are **fractions** (0.1753 for an ACER of 17.53 %). CSV and JSON keep the fractions at
/// full precision; [`CombinationReport::to_markdown`] shows percent with two decimals, as the
/// paper does. Every value must be finite.
///
/// Serializes to the JSON documented in `docs/report_schema.md` (`"kind":
/// "combination_report"`); deserializing checks the shape and the stored average.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "ReportJson", try_from = "ReportJson")]
pub struct CombinationReport {
    metrics: Vec<String>,
    rows: Vec<CombinationRow>,
}

impl CombinationReport {
    /// An empty report with the given metric columns; fails on an empty, repeated or
    /// unprintable name (see [`MetricsError::InvalidMetricName`]).
    pub fn new<I, S>(metrics: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let metrics: Vec<String> = metrics.into_iter().map(Into::into).collect();
        check_metric_names(&metrics)?;
        Ok(CombinationReport { metrics, rows: Vec::new() })
    }

    /// An empty report with the columns of [`BinaryCounts::METRIC_NAMES`]
    /// (`acer, apcer, bpcer, accuracy`).
    pub fn classification() -> Self {
        Self::new(BinaryCounts::METRIC_NAMES).expect("valid built-in names")
    }

    /// An empty report with the columns of [`ConfusionMatrix::METRIC_NAMES`]
    /// (`miou, pixel_acc`).
    pub fn segmentation() -> Self {
        Self::new(ConfusionMatrix::METRIC_NAMES).expect("valid built-in names")
    }

    /// Appends the row of `combination`, one value per metric in order. Fails on a wrong number of values, a non-finite value or a combination
    /// already present; the report is then unchanged.
    pub fn insert(&mut self, combination: impl Into<String>, values: &[f64]) -> Result<()> {
        let combination = combination.into();
        check_values(&self.metrics, &combination, values)?;
        if combination.trim().is_empty() {
            return Err(MetricsError::InvalidReport("empty combination label".into()));
        }
        if self.rows.iter().any(|r| r.combination == combination) {
            return Err(MetricsError::DuplicateCombination(combination));
        }
        self.rows.push(CombinationRow { combination, values: values.to_vec() });
        Ok(())
    }

    /// The metric names (columns), in order.
    pub fn metrics(&self) -> &[String] {
        &self.metrics
    }

    /// The rows, in the paper's combination order.
    pub fn rows(&self) -> &[CombinationRow] {
        &self.rows
    }

    /// The value of `metric` for `combination`, if both are in the report.
    pub fn value(&self, combination: &str, metric: &str) -> Option<f64> {
        let col = self.metrics.iter().position(|m| m == metric)?;
        self.rows.iter().find(|r| r.combination == combination).map(|r| r.values[col])
    }

    /// The average row: per metric, the mean over all combinations; `None` when there are no
    /// rows.
    pub fn average(&self) -> Option<Vec<f64>> {
        if self.rows.is_empty() {
            return None;
        }
        let n = self.rows.len() as f64;
        Some(
            (0..self.metrics.len())
                .map(|c| self.rows.iter().map(|r| r.values[c]).sum::<f64>() / n)
                .collect(),
        )
    }

    /// A Markdown table: a `Combination` column, one column per metric in percent with two
    /// decimals, and a final `Average` row (omitted when there are no rows).
    pub fn to_markdown(&self) -> String {
        let mut lines = vec![markdown_header(&self.metrics)];
        for row in &self.rows {
            let cells: Vec<String> = row.values.iter().map(|v| percent(*v)).collect();
            lines.push(markdown_row(&row.combination.to_string(), &cells));
        }
        if let Some(avg) = self.average() {
            let cells: Vec<String> = avg.iter().map(|v| percent(*v)).collect();
            lines.push(markdown_row("Average", &cells));
        }
        lines.join("\n") + "\n"
    }

    /// CSV with a header `combination,<metric>,...`, one line per row and a final `average`
    /// line; values are fractions at full (round-trip) precision.
    pub fn to_csv(&self) -> String {
        let mut lines = vec![csv_line("combination", self.metrics.iter().cloned())];
        for row in &self.rows {
            lines.push(csv_line(
                &row.combination.to_string(),
                row.values.iter().map(|v| csv_number(*v)),
            ));
        }
        if let Some(avg) = self.average() {
            lines.push(csv_line("average", avg.iter().map(|v| csv_number(*v))));
        }
        lines.join("\n") + "\n"
    }

    /// Pretty-printed JSON (schema: `docs/report_schema.md`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// Parses and validates the JSON written by [`CombinationReport::to_json`].
    pub fn from_json(json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| MetricsError::InvalidReport(e.to_string()))
    }

    /// Mean and sample standard deviation of each cell over several runs (the paper averages
    /// three trained models). See [`AggregateReport`].
    pub fn aggregate(reports: &[CombinationReport]) -> Result<AggregateReport> {
        AggregateReport::from_runs(reports)
    }
}

// ---- shared helpers (also used by the aggregate report) --------------------------------------

pub(crate) fn check_metric_names(metrics: &[String]) -> Result<()> {
    for (i, name) in metrics.iter().enumerate() {
        let bad_char = name.chars().any(|c| matches!(c, ',' | '|' | '"' | '\n' | '\r'));
        if name.trim().is_empty() || bad_char || metrics[..i].contains(name) {
            return Err(MetricsError::InvalidMetricName(name.clone()));
        }
    }
    Ok(())
}

pub(crate) fn check_values(
    metrics: &[String],
    combination: impl fmt::Display,
    values: &[f64],
) -> Result<()> {
    if values.len() != metrics.len() {
        return Err(MetricsError::ValueCount {
            combination: combination.to_string(),
            expected: metrics.len(),
            got: values.len(),
        });
    }
    if let Some((metric, value)) = metrics.iter().zip(values).find(|(_, v)| !v.is_finite()) {
        return Err(MetricsError::NonFinite {
            combination: combination.to_string(),
            metric: metric.clone(),
            value: *value,
        });
    }
    Ok(())
}

pub(crate) fn percent(v: f64) -> String {
    format!("{:.2}", v * 100.0)
}

pub(crate) fn markdown_header(metrics: &[String]) -> String {
    let names: Vec<String> = metrics.iter().map(|m| format!("{m} (%)")).collect();
    let rule = std::iter::once(":---".to_string())
        .chain(metrics.iter().map(|_| "---:".to_string()))
        .collect::<Vec<_>>();
    format!("{}\n| {} |", markdown_row("Combination", &names), rule.join(" | "))
}

pub(crate) fn markdown_row(first: &str, cells: &[String]) -> String {
    let mut all = vec![first.to_string()];
    all.extend(cells.iter().cloned());
    format!("| {} |", all.join(" | "))
}

/// Shortest text that parses back to the same `f64`, with an exponent for tiny or huge values
/// (`0.045`, `1.0`, `3.4e-17`).
pub(crate) fn csv_number(v: f64) -> String {
    format!("{v:?}")
}

pub(crate) fn csv_line(first: &str, rest: impl Iterator<Item = String>) -> String {
    std::iter::once(first.to_string()).chain(rest).collect::<Vec<_>>().join(",")
}

/// Relative closeness used when checking a stored average against the rows.
pub(crate) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A JSON object `{"<metric>": value, ...}` written in the report's metric order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NamedValues(pub(crate) Vec<(String, f64)>);

impl NamedValues {
    pub(crate) fn from_columns(metrics: &[String], values: &[f64]) -> Self {
        NamedValues(metrics.iter().cloned().zip(values.iter().copied()).collect())
    }

    /// The values in `metrics` order; fails on a missing, extra or repeated key.
    pub(crate) fn into_columns(self, metrics: &[String], what: &str) -> Result<Vec<f64>> {
        let names: Vec<&String> = self.0.iter().map(|(k, _)| k).collect();
        let mut sorted_names = names.clone();
        sorted_names.sort();
        sorted_names.dedup();
        let mut expected: Vec<&String> = metrics.iter().collect();
        expected.sort();
        if sorted_names.len() != names.len() || sorted_names != expected {
            return Err(MetricsError::InvalidReport(format!(
                "{what} has metrics {names:?}, the report declares {metrics:?}"
            )));
        }
        Ok(metrics
            .iter()
            .map(|m| self.0.iter().find(|(k, _)| k == m).expect("checked above").1)
            .collect())
    }
}

impl Serialize for NamedValues {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for NamedValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NamedValues;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping metric names to numbers")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut a: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, f64>()? {
                    out.push((k, v));
                }
                Ok(NamedValues(out))
            }
        }
        d.deserialize_map(V)
    }
}

// ---- JSON form -----------------------------------------------------------------------------

pub(crate) const REPORT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RowJson {
    combination: String,
    values: NamedValues,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportJson {
    kind: String,
    version: u32,
    metrics: Vec<String>,
    rows: Vec<RowJson>,
    #[serde(default)]
    average: Option<NamedValues>,
}

impl From<CombinationReport> for ReportJson {
    fn from(r: CombinationReport) -> Self {
        let average = r.average().map(|a| NamedValues::from_columns(&r.metrics, &a));
        let rows = r
            .rows
            .iter()
            .map(|row| RowJson {
                combination: row.combination.clone(),
                values: NamedValues::from_columns(&r.metrics, &row.values),
            })
            .collect();
        ReportJson {
            kind: "combination_report".into(),
            version: REPORT_VERSION,
            metrics: r.metrics,
            rows,
            average,
        }
    }
}

impl TryFrom<ReportJson> for CombinationReport {
    type Error = MetricsError;

    fn try_from(j: ReportJson) -> Result<Self> {
        check_kind_version(&j.kind, j.version, "combination_report")?;
        let mut report = CombinationReport::new(j.metrics)?;
        for row in j.rows {
            let what = format!("row {}", row.combination);
            let values = row.values.into_columns(&report.metrics, &what)?;
            report.insert(row.combination, &values)?;
        }
        match (j.average, report.average()) {
            (None, _) => {}
            (Some(_), None) => {
                return Err(MetricsError::InvalidReport(
                    "average given for an empty report".into(),
                ));
            }
            (Some(stored), Some(computed)) => {
                let stored = stored.into_columns(&report.metrics, "average")?;
                if !stored.iter().zip(&computed).all(|(a, b)| close(*a, *b)) {
                    return Err(MetricsError::InvalidReport(format!(
                        "stored average {stored:?} is not the mean of the rows {computed:?}"
                    )));
                }
            }
        }
        Ok(report)
    }
}

pub(crate) fn check_kind_version(kind: &str, version: u32, expected: &str) -> Result<()> {
    if kind != expected {
        return Err(MetricsError::InvalidReport(format!(
            "kind is {kind:?}, expected {expected:?}"
        )));
    }
    if version != REPORT_VERSION {
        return Err(MetricsError::InvalidReport(format!(
            "version {version} is not supported (expected {REPORT_VERSION})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(s: &str) -> &str {
        s
    }

    /// Rows in the paper's order; values are hand-picked fractions.
    fn sample() -> CombinationReport {
        let mut r = CombinationReport::new(["acer", "accuracy"]).unwrap();
        r.insert(mask("R"), &[0.1001, 0.9]).unwrap();
        r.insert(mask("D"), &[0.0445, 0.95]).unwrap();
        r.insert(mask("R+D+I"), &[0.02, 0.98]).unwrap();
        r
    }

    #[test]
    fn rows_keep_insertion_order_and_average_is_the_mean() {
        let r = sample();
        let names: Vec<String> = r.rows().iter().map(|row| row.combination.to_string()).collect();
        assert_eq!(names, ["R", "D", "R+D+I"]);
        let avg = r.average().unwrap();
        assert!(close(avg[0], (0.1001 + 0.0445 + 0.02) / 3.0));
        assert!(close(avg[1], (0.9 + 0.95 + 0.98) / 3.0));
        assert_eq!(r.value(mask("D"), "acer"), Some(0.0445));
        assert_eq!(r.value(mask("I"), "acer"), None);
        assert_eq!(r.value(mask("D"), "miou"), None);
    }

    #[test]
    fn insert_rejects_bad_rows_without_changing_the_report() {
        let mut r = sample();
        let before = r.clone();
        assert_eq!(
            r.insert(mask("R"), &[0.1, 0.9]),
            Err(MetricsError::DuplicateCombination("R".into()))
        );
        assert!(matches!(
            r.insert(mask("I"), &[0.1]),
            Err(MetricsError::ValueCount { expected: 2, got: 1, .. })
        ));
        assert!(matches!(
            r.insert(mask("I"), &[f64::NAN, 0.1]),
            Err(MetricsError::NonFinite { .. })
        ));
        assert_eq!(r, before);
        for bad in [vec!["a", "a"], vec![""], vec!["a,b"], vec!["x|y"]] {
            assert!(matches!(CombinationReport::new(bad), Err(MetricsError::InvalidMetricName(_))));
        }
    }

    #[test]
    fn markdown_shows_percent_with_average_row() {
        let md = sample().to_markdown();
        let expected = "\
| Combination | acer (%) | accuracy (%) |
| :--- | ---: | ---: |
| R | 10.01 | 90.00 |
| D | 4.45 | 95.00 |
| R+D+I | 2.00 | 98.00 |
| Average | 5.49 | 94.33 |
";
        assert_eq!(md, expected);
        let empty = CombinationReport::segmentation().to_markdown();
        assert_eq!(empty.lines().count(), 2);
    }

    #[test]
    fn csv_keeps_full_precision_fractions() {
        let csv = sample().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "combination,acer,accuracy");
        assert_eq!(lines[1], "R,0.1001,0.9");
        assert_eq!(csv_number(3.4e-17), "3.4e-17");
        assert_eq!(csv_number(0.0), "0.0");
        assert_eq!(lines[3], "R+D+I,0.02,0.98");
        let avg: Vec<f64> = lines[4].split(',').skip(1).map(|v| v.parse().unwrap()).collect();
        assert_eq!(Some(avg), sample().average());
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn json_round_trips_and_is_validated() {
        let r = sample();
        let json = r.to_json();
        assert_eq!(CombinationReport::from_json(&json).unwrap(), r);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kind"], "combination_report");
        assert_eq!(v["rows"][0]["combination"], "R");
        assert_eq!(v["rows"][0]["values"]["acer"], 0.1001);
        // A tampered average, a missing metric and a wrong kind are all rejected.
        let tampered =
            json.replacen("\"average\": {\n    \"acer\": ", "\"average\": {\n    \"acer\": 1", 1);
        assert_ne!(tampered, json);
        assert!(CombinationReport::from_json(&tampered).is_err());
        let missing = json.replacen("\"acer\": 0.1001,", "", 1);
        assert!(CombinationReport::from_json(&missing).is_err());
        let wrong_kind = json.replacen("combination_report", "aggregate_report", 1);
        assert!(CombinationReport::from_json(&wrong_kind).is_err());
        // The average may be omitted: it is recomputed.
        let mut no_avg = v.clone();
        no_avg.as_object_mut().unwrap().remove("average");
        assert_eq!(CombinationReport::from_json(&no_avg.to_string()).unwrap(), r);
    }
}
