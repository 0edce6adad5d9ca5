//! Keeps `docs/report_schema.md` honest: its JSON examples must parse, and its Markdown and
//! CSV examples must be exactly what the parsed reports render.

use std::path::Path;

use mmanet_metrics::{AggregateReport, CombinationReport};

/// The fenced blocks of `lang` in `doc`, in order.
fn blocks(doc: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    doc.split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().expect("closed fence").to_string())
        .collect()
}

#[test]
fn schema_doc_examples_match_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/report_schema.md");
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let json = blocks(&doc, "json");
    let text = blocks(&doc, "text");
    assert_eq!((json.len(), text.len()), (2, 4), "expected 2 JSON and 4 text examples");

    let report = CombinationReport::from_json(&json[0]).expect("combination example parses");
    assert_eq!(report.rows().len(), 3);
    assert_eq!(report.to_markdown(), text[0]);
    assert_eq!(report.to_csv(), text[1]);

    let agg = AggregateReport::from_json(&json[1]).expect("aggregate example parses");
    assert_eq!(agg.runs(), 3);
    assert_eq!(agg.to_markdown(), text[2]);
    assert_eq!(agg.to_csv(), text[3]);
    // Round trip through the crate's own JSON.
    assert_eq!(AggregateReport::from_json(&agg.to_json()).unwrap(), agg);
}
