//! Writes reports to files in a temporary directory and reads them back, as the app's
//! `eval` and `report` verbs do.

use mmanet_metrics::{AggregateReport, CombinationReport, ConfusionMatrix};

/// A segmentation report over R, D, R+D built from tiny hand-made 2-class confusion matrices:
/// run `k` predicts every pixel correctly except `k + c` of them for combination index `c`.
fn run_report(k: usize) -> CombinationReport {
    let labels = [1, 1, 1, 1, 2, 2, 2, 2, 0, 0];
    let mut report = CombinationReport::segmentation();
    for (c, combination) in ["R", "D", "R+D"].into_iter().enumerate() {
        let mut preds: Vec<i64> = labels.iter().map(|l| (l - 1).max(0)).collect();
        for p in preds.iter_mut().take(k + c) {
            *p = 1 - *p;
        }
        let mut cm = ConfusionMatrix::new(2).unwrap();
        cm.update(&labels, &preds).unwrap();
        report.insert(combination, &cm.metric_values()).unwrap();
    }
    report
}

#[test]
fn reports_round_trip_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<CombinationReport> = (0..3).map(run_report).collect();
    for (k, r) in runs.iter().enumerate() {
        std::fs::write(dir.path().join(format!("run{k}.json")), r.to_json()).unwrap();
    }
    let loaded: Vec<CombinationReport> = (0..3)
        .map(|k| {
            let text = std::fs::read_to_string(dir.path().join(format!("run{k}.json"))).unwrap();
            CombinationReport::from_json(&text).unwrap()
        })
        .collect();
    assert_eq!(loaded, runs);
    // Run 0, combination R: every pixel right -> mIoU 1; R+D (index 2): 2 of 8 wrong.
    assert_eq!(loaded[0].rows()[0].values, vec![1.0, 1.0]);
    assert_eq!(loaded[0].rows()[2].values[1], 6.0 / 8.0);

    let agg = CombinationReport::aggregate(&loaded).unwrap();
    let path = dir.path().join("aggregate.json");
    std::fs::write(&path, agg.to_json()).unwrap();
    let back = AggregateReport::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back, agg);
    // Pixel accuracy of R over runs: 8/8, 7/8, 6/8 -> mean 0.875, sample std 0.125.
    let r = &back.rows()[0];
    assert!((r.mean[1] - 0.875).abs() < 1e-12 && (r.std[1] - 0.125).abs() < 1e-12, "{r:?}");
    assert!(back.to_markdown().contains("| R | "));
    assert_eq!(back.to_csv().lines().count(), 1 + 3 + 1);
}
