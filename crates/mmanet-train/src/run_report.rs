//! [`RunReport`]: the per-combination results of one or more models on one data set, in the
//! JSON shape users consume:
//!
//! ```json
//! {"dataset": "mfeat", "task": "classification", "modalities": ["Pix", "Fou", "Kar"],
//!  "results": [{"model": "mfeat3-mmanet",
//!               "combinations": [{"present": ["Pix"], "accuracy": 0.9625}, ...],
//!               "average": {"accuracy": 0.9543}}]}
//! ```
//! Metric values are fractions (accuracy, apcer, bpcer, acer, miou, pixel_acc).

use std::collections::BTreeMap;

use mmanet_metrics::CombinationReport;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// One combination's row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CombinationResult {
    /// Present modalities (symbols, canonical order).
    pub present: Vec<String>,
    /// Metric name -> value.
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
}

/// One model's rows and average.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// Model (run) name.
    pub model: String,
    /// One entry per combination, in the paper's order.
    pub combinations: Vec<CombinationResult>,
    /// Mean of each metric over the combinations.
    pub average: BTreeMap<String, f64>,
    /// The test samples as observed (each with the modalities it really has), when some
    /// lack modalities; absent in reports of complete data and in reports written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedResult>,
}

/// The "as observed" results of one model: per availability pattern and overall.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedResult {
    /// Samples scored.
    pub samples: usize,
    /// Metric name -> value over every sample.
    pub overall: BTreeMap<String, f64>,
    /// One entry per availability pattern that occurs, fewest modalities first.
    pub patterns: Vec<PatternResult>,
}

impl ObservedResult {
    /// `score`, its patterns written as symbols of `set`.
    pub fn new(set: &mmanet_core::ModalitySet, score: &crate::evaluate::ObservedScore) -> Self {
        let named = |v: &[f64]| score.metrics.iter().cloned().zip(v.iter().copied()).collect();
        ObservedResult {
            samples: score.samples,
            overall: named(&score.overall),
            patterns: score
                .patterns
                .iter()
                .map(|(mask, n, v)| PatternResult {
                    present: set.format(*mask).split('+').map(str::to_string).collect(),
                    samples: *n,
                    metrics: named(v),
                })
                .collect(),
        }
    }
}

/// One availability pattern's row of [`ObservedResult`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatternResult {
    /// The modalities these samples have (symbols, canonical order).
    pub present: Vec<String>,
    /// How many samples have exactly these.
    pub samples: usize,
    /// Metric name -> value.
    #[serde(flatten)]
    pub metrics: BTreeMap<String, f64>,
}

/// Results of several models on one data set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Data set name.
    pub dataset: String,
    /// `classification` or `segmentation`.
    pub task: String,
    /// The data set's modalities (symbols).
    pub modalities: Vec<String>,
    /// One entry per model.
    pub results: Vec<ModelResult>,
}

impl RunReport {
    /// An empty report.
    pub fn new(dataset: &str, task: &str, modalities: Vec<String>) -> Self {
        RunReport { dataset: dataset.into(), task: task.into(), modalities, results: Vec::new() }
    }

    /// Adds a model's [`CombinationReport`].
    pub fn push(&mut self, model: &str, report: &CombinationReport) {
        let names = report.metrics();
        let combinations = report
            .rows()
            .iter()
            .map(|r| CombinationResult {
                present: r.combination.split('+').map(str::to_string).collect(),
                metrics: names.iter().cloned().zip(r.values.iter().copied()).collect(),
            })
            .collect();
        let average =
            report.average().map(|a| names.iter().cloned().zip(a).collect()).unwrap_or_default();
        self.results.push(ModelResult {
            model: model.into(),
            combinations,
            average,
            observed: None,
        });
    }

    /// Attaches `score` (over `set`) to the last model's results.
    pub fn set_observed(
        &mut self,
        set: &mmanet_core::ModalitySet,
        score: &crate::evaluate::ObservedScore,
    ) {
        if let Some(last) = self.results.last_mut() {
            last.observed = Some(ObservedResult::new(set, score));
        }
    }

    /// The report of model `index` back as a [`CombinationReport`] (for aggregation).
    pub fn combination_report(&self, index: usize) -> Result<CombinationReport, TrainError> {
        let r = self.results.get(index).ok_or_else(|| TrainError::config("results", "no model"))?;
        let metrics: Vec<String> =
            r.combinations.first().map(|c| c.metrics.keys().cloned().collect()).unwrap_or_default();
        let mut out = CombinationReport::new(metrics.iter().map(String::as_str))?;
        for c in &r.combinations {
            let values: Vec<f64> = metrics.iter().map(|m| c.metrics[m]).collect();
            out.insert(c.present.join("+"), &values)?;
        }
        Ok(out)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialise")
    }

    /// Parses [`RunReport::to_json`] output.
    pub fn from_json(text: &str) -> Result<Self, TrainError> {
        serde_json::from_str(text).map_err(|e| TrainError::config("report", e.to_string()))
    }

    /// A Markdown table: one row per combination, one column per model and metric, plus the
    /// average (values in %).
    pub fn to_markdown(&self) -> String {
        let mut cols: Vec<(usize, String)> = Vec::new();
        for (i, r) in self.results.iter().enumerate() {
            for m in r.average.keys() {
                cols.push((i, m.clone()));
            }
        }
        let mut s = String::from("| Combination |");
        for (i, m) in &cols {
            s.push_str(&format!(" {} {} (%) |", self.results[*i].model, m));
        }
        s.push_str("\n| :--- |");
        s.push_str(&" ---: |".repeat(cols.len()));
        s.push('\n');
        let n = self.results.first().map_or(0, |r| r.combinations.len());
        for k in 0..n {
            let present = self.results[0].combinations[k].present.join("+");
            s.push_str(&format!("| {present} |"));
            for (i, m) in &cols {
                let v = self.results[*i].combinations.get(k).and_then(|c| c.metrics.get(m));
                s.push_str(&v.map_or(" - |".into(), |v| format!(" {:.2} |", 100.0 * v)));
            }
            s.push('\n');
        }
        s.push_str("| **Average** |");
        for (i, m) in &cols {
            s.push_str(&format!(" **{:.2}** |", 100.0 * self.results[*i].average[m]));
        }
        s.push('\n');
        s.push_str(&self.observed_markdown(&cols));
        s
    }

    /// The "as observed" Markdown table alone (empty when no model has one), one column per
    /// model and metric as in [`RunReport::to_markdown`].
    pub fn observed_table(&self) -> String {
        let cols: Vec<(usize, String)> = self
            .results
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.average.keys().map(move |m| (i, m.clone())))
            .collect();
        self.observed_markdown(&cols)
    }

    /// The "as observed" table (empty when no model has one): one row per availability
    /// pattern with its sample count, then every sample.
    fn observed_markdown(&self, cols: &[(usize, String)]) -> String {
        let Some(first) = self.results.iter().find_map(|r| r.observed.as_ref()) else {
            return String::new();
        };
        let mut s = String::from(
            "\nTest samples as observed (each with the modalities it really has):\n\n| Present | Samples |",
        );
        for (i, m) in cols {
            s.push_str(&format!(" {} {} (%) |", self.results[*i].model, m));
        }
        s.push_str("\n| :--- | ---: |");
        s.push_str(&" ---: |".repeat(cols.len()));
        s.push('\n');
        for p in &first.patterns {
            s.push_str(&format!("| {} | {} |", p.present.join("+"), p.samples));
            for (i, m) in cols {
                let v = self.results[*i].observed.as_ref().and_then(|o| {
                    o.patterns
                        .iter()
                        .find(|q| q.present == p.present)
                        .and_then(|q| q.metrics.get(m))
                });
                s.push_str(&v.map_or(" - |".into(), |v| format!(" {:.2} |", 100.0 * v)));
            }
            s.push('\n');
        }
        s.push_str(&format!("| **All (as observed)** | {} |", first.samples));
        for (i, m) in cols {
            let v = self.results[*i].observed.as_ref().and_then(|o| o.overall.get(m));
            s.push_str(&v.map_or(" - |".into(), |v| format!(" **{:.2}** |", 100.0 * v)));
        }
        s.push('\n');
        s
    }
}

/// A run's `report.csv`: `report`'s CSV (`combination,<metric>,...` and a final `average`
/// line, [`CombinationReport::to_csv`]) unchanged for complete test data. With `observed`, a
/// last column `samples` (empty on those lines) and, after `average`, one line per
/// availability pattern (`observed:R+D`, fewest modalities first) and `observed:all` over
/// every test sample, each with its sample count.
pub fn report_csv(report: &CombinationReport, observed: Option<&ObservedResult>) -> String {
    let plain = report.to_csv();
    let Some(o) = observed else {
        return plain;
    };
    let metrics = report.metrics();
    let mut lines: Vec<String> = plain.lines().map(str::to_string).collect();
    for (k, line) in lines.iter_mut().enumerate() {
        line.push_str(if k == 0 { ",samples" } else { "," });
    }
    let line = |name: String, values: &BTreeMap<String, f64>, samples: usize| {
        let cells =
            metrics.iter().map(|m| values.get(m).map_or(String::new(), |v| format!("{v:?}")));
        std::iter::once(name)
            .chain(cells)
            .chain([samples.to_string()])
            .collect::<Vec<_>>()
            .join(",")
    };
    for p in &o.patterns {
        lines.push(line(format!("observed:{}", p.present.join("+")), &p.metrics, p.samples));
    }
    lines.push(line("observed:all".into(), &o.overall, o.samples));
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_gains_the_observed_lines_only_for_incomplete_data() {
        let mut rep = CombinationReport::new(["acer", "accuracy"]).unwrap();
        rep.insert("R", &[0.25, 0.5]).unwrap();
        rep.insert("R+D", &[0.125, 0.75]).unwrap();
        assert_eq!(report_csv(&rep, None), rep.to_csv());
        let observed = ObservedResult {
            samples: 8,
            overall: BTreeMap::from([("acer".into(), 0.2), ("accuracy".into(), 0.625)]),
            patterns: vec![PatternResult {
                present: vec!["R".into()],
                samples: 3,
                metrics: BTreeMap::from([("acer".into(), 0.5), ("accuracy".into(), 0.25)]),
            }],
        };
        let csv = report_csv(&rep, Some(&observed));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "combination,acer,accuracy,samples");
        assert_eq!(lines[1], "R,0.25,0.5,");
        assert_eq!(lines[3], "average,0.1875,0.625,");
        assert_eq!(lines[4], "observed:R,0.5,0.25,3");
        assert_eq!(lines[5], "observed:all,0.2,0.625,8");
        assert_eq!(lines.len(), 6);
        // Every line has the header's number of cells.
        assert!(lines.iter().all(|l| l.split(',').count() == 4), "{csv}");
    }

    #[test]
    fn the_as_observed_results_round_trip_and_are_absent_for_complete_data() {
        let mut rep = CombinationReport::new(["accuracy"]).unwrap();
        rep.insert("R", &[0.5]).unwrap();
        rep.insert("R+D", &[0.75]).unwrap();
        let mut run = RunReport::new("toy", "classification", vec!["R".into(), "D".into()]);
        run.push("m", &rep);
        assert!(!run.to_json().contains("observed"), "complete data: the old shape");
        assert!(!run.to_markdown().contains("as observed"));
        let set = mmanet_core::ModalitySet::from_names(["rgb", "depth"]).unwrap();
        let score = crate::evaluate::ObservedScore {
            metrics: vec!["accuracy".into()],
            patterns: vec![
                (set.parse_mask("R").unwrap(), 3, vec![1.0 / 3.0]),
                (set.full(), 5, vec![0.8]),
            ],
            samples: 8,
            overall: vec![0.625],
        };
        run.set_observed(&set, &score);
        let back = RunReport::from_json(&run.to_json()).unwrap();
        assert_eq!(back, run);
        let o = back.results[0].observed.as_ref().unwrap();
        assert_eq!(o.patterns[1].present, ["R", "D"]);
        assert_eq!(o.patterns[1].samples, 5);
        let md = run.to_markdown();
        assert!(md.ends_with(&run.observed_table()), "{md}");
        assert!(md.contains("| R | 3 | 33.33 |"), "{md}");
        assert!(md.contains("| **All (as observed)** | 8 | **62.50** |"), "{md}");
    }

    #[test]
    fn json_shape_and_round_trip() {
        let mut rep = CombinationReport::new(["accuracy"]).unwrap();
        rep.insert("R", &[0.5]).unwrap();
        rep.insert("R+D", &[0.75]).unwrap();
        let mut r = RunReport::new("toy", "classification", vec!["R".into(), "D".into()]);
        r.push("m", &rep);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["results"][0]["combinations"][1]["present"], serde_json::json!(["R", "D"]));
        assert_eq!(v["results"][0]["combinations"][1]["accuracy"], 0.75);
        assert_eq!(v["results"][0]["average"]["accuracy"], 0.625);
        let back = RunReport::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.combination_report(0).unwrap(), rep);
        assert!(r.to_markdown().contains("| R+D | 75.00 |"));
        assert!(r.to_markdown().contains("**62.50**"));
    }
}
