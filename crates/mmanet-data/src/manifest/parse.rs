//! Reading a manifest file (CSV with a header, or JSON Lines) into rows, with errors naming the
//! file, the line and the column.

use std::path::{Path, PathBuf};

use crate::{DataError, Result};

/// Columns a manifest reserves (besides one column per modality).
pub const RESERVED: [&str; 4] = ["id", "label", "split", "group"];

/// One modality cell of a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// A file, resolved against the manifest's folder.
    File(PathBuf),
    /// Numbers given in the cell itself.
    Values(Vec<f32>),
}

/// One sample of a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// 1-based line of the file (the header is line 1 of a CSV).
    pub line: usize,
    /// The `id` column.
    pub id: String,
    /// The `label` column as written (a class name or index).
    pub label: String,
    /// The `split` column, if any (`train`, `val`, `test`).
    pub split: Option<String>,
    /// The `group` column, if any (e.g. the subject).
    pub group: Option<String>,
    /// One cell per declared modality, in the declared order; `None` when the sample lacks it.
    pub cells: Vec<Option<Cell>>,
}

/// A line of the manifest that cannot be a sample (wrong column count, a path that does not
/// exist, an unknown class, a duplicate id, ...): an error, or with `skip_bad_samples` a
/// counted skip.
#[derive(Clone, Debug, PartialEq)]
pub struct BadRow {
    /// 1-based line of the file.
    pub line: usize,
    /// What is wrong, naming the column where one is at fault.
    pub message: String,
}

/// The rows of a manifest, and the lines that are not valid samples.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub rows: Vec<Row>,
    pub bad: Vec<BadRow>,
}

impl Parsed {
    /// The rows, or the first bad line as an error.
    pub(crate) fn strict(self, path: &Path) -> Result<Vec<Row>> {
        match self.bad.first() {
            Some(b) => Err(DataError::list(path, b.line, b.message.clone())),
            None => Ok(self.rows),
        }
    }

    /// Files a row-level error as a bad line; any other error (the file itself, the header)
    /// is returned.
    fn file(&mut self, e: DataError) -> Result<()> {
        match e {
            DataError::ListFormat { line, message, .. } => {
                self.bad.push(BadRow { line, message });
                Ok(())
            }
            other => Err(other),
        }
    }
}

/// Parses `text` (the file at `path`) as CSV or, for a `.jsonl` / `.ndjson` file, JSON Lines.
/// `modalities` are the declared modality names; `numeric[m]` says whether modality `m`'s
/// cells may hold numbers (vector decoders) rather than paths. Errors of the file as a whole
/// (no `id`/`label` header, a column the config does not declare or lacks) are returned;
/// errors of one line are collected in [`Parsed::bad`].
pub(crate) fn parse(
    path: &Path,
    text: &str,
    modalities: &[String],
    numeric: &[bool],
) -> Result<Parsed> {
    let jsonl = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"));
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut parsed = if jsonl {
        parse_jsonl(path, dir, text, modalities, numeric)?
    } else {
        parse_csv(path, dir, text, modalities, numeric)?
    };
    check_rows(path, &mut parsed)?;
    Ok(parsed)
}

fn parse_csv(
    path: &Path,
    dir: &Path,
    text: &str,
    modalities: &[String],
    numeric: &[bool],
) -> Result<Parsed> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| DataError::list(path, 1, format!("header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (id, label) = match (col("id"), col("label")) {
        (Some(i), Some(l)) => (i, l),
        _ => return Err(DataError::list(path, 1, "the header needs an `id` and a `label` column")),
    };
    check_columns(path, &header, modalities)?;
    let mod_cols: Vec<usize> = modalities.iter().map(|m| col(m).expect("checked")).collect();
    let (split, group) = (col("split"), col("group"));
    let mut parsed = Parsed::default();
    for record in reader.records() {
        let row = record
            .map_err(|e| {
                let line = e.position().map_or(0, |p| p.line() as usize);
                DataError::list(path, line, e.to_string())
            })
            .and_then(|record| {
                let line = record.position().map_or(0, |p| p.line() as usize);
                if record.iter().all(|f| f.trim().is_empty()) {
                    return Ok(None);
                }
                if record.len() != header.len() {
                    return Err(DataError::list(
                        path,
                        line,
                        format!("{} columns, the header has {}", record.len(), header.len()),
                    ));
                }
                let field = |c: usize| record.get(c).unwrap_or("").trim().to_string();
                let optional = |c: Option<usize>| c.map(field).filter(|v| !v.is_empty());
                let mut cells = Vec::with_capacity(modalities.len());
                for (m, &c) in mod_cols.iter().enumerate() {
                    let v = field(c);
                    cells.push(if v.is_empty() {
                        None
                    } else {
                        Some(text_cell(path, line, &modalities[m], &v, numeric[m], dir)?)
                    });
                }
                Ok(Some(Row {
                    line,
                    id: field(id),
                    label: field(label),
                    split: optional(split),
                    group: optional(group),
                    cells,
                }))
            });
        match row {
            Ok(Some(row)) => parsed.rows.push(row),
            Ok(None) => {}
            Err(e) => parsed.file(e)?,
        }
    }
    Ok(parsed)
}

fn parse_jsonl(
    path: &Path,
    dir: &Path,
    text: &str,
    modalities: &[String],
    numeric: &[bool],
) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    for (k, raw) in text.lines().enumerate() {
        let line = k + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match jsonl_row(path, dir, line, raw, modalities, numeric) {
            Ok(row) => parsed.rows.push(row),
            Err(e) => parsed.file(e)?,
        }
    }
    Ok(parsed)
}

/// One JSON Lines line (1-based `line`) as a row.
fn jsonl_row(
    path: &Path,
    dir: &Path,
    line: usize,
    raw: &str,
    modalities: &[String],
    numeric: &[bool],
) -> Result<Row> {
    let v: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| DataError::list(path, line, format!("not a JSON object: {e}")))?;
    let obj = v.as_object().ok_or_else(|| DataError::list(path, line, "not a JSON object"))?;
    let keys: Vec<String> = obj.keys().cloned().collect();
    check_columns(path, &keys, modalities).map_err(|e| match e {
        DataError::ListFormat { message, .. } => DataError::list(path, line, message),
        other => other,
    })?;
    let scalar = |key: &str| -> Result<Option<String>> {
        match obj.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(DataError::list(
                path,
                line,
                format!("column `{key}`: {other} is not a string or number"),
            )),
        }
    };
    let id = scalar("id")?.ok_or_else(|| DataError::list(path, line, "column `id` is missing"))?;
    let label =
        scalar("label")?.ok_or_else(|| DataError::list(path, line, "column `label` is missing"))?;
    let mut cells = Vec::with_capacity(modalities.len());
    for (m, name) in modalities.iter().enumerate() {
        cells.push(match obj.get(name) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
            Some(serde_json::Value::String(s)) => {
                Some(text_cell(path, line, name, s.trim(), numeric[m], dir)?)
            }
            Some(serde_json::Value::Array(_)) if numeric[m] => {
                let mut values = Vec::new();
                flatten_numbers(&obj[name], &mut values)
                    .map_err(|w| DataError::list(path, line, format!("column `{name}`: {w}")))?;
                Some(Cell::Values(values))
            }
            Some(other) => {
                return Err(DataError::list(
                    path,
                    line,
                    format!(
                        "column `{name}`: expected a path{}, got {other}",
                        if numeric[m] { " or an array of numbers" } else { "" }
                    ),
                ));
            }
        });
    }
    Ok(Row { line, id, label, split: scalar("split")?, group: scalar("group")?, cells })
}

/// Every column is `id`, `label`, `split`, `group` or a declared modality, and every declared
/// modality has a column.
fn check_columns(path: &Path, columns: &[String], modalities: &[String]) -> Result<()> {
    for c in columns {
        if !RESERVED.contains(&c.as_str()) && !modalities.contains(c) {
            return Err(DataError::list(
                path,
                1,
                format!(
                    "column `{c}` is not a modality the config declares ({})",
                    modalities.join(", ")
                ),
            ));
        }
    }
    for m in modalities {
        if !columns.contains(m) {
            return Err(DataError::list(
                path,
                1,
                format!("the config declares modality `{m}`, the manifest has no such column"),
            ));
        }
    }
    Ok(())
}

/// A text cell: numbers (for a vector modality, when every token is a number) or a path.
fn text_cell(
    path: &Path,
    line: usize,
    column: &str,
    v: &str,
    numeric: bool,
    dir: &Path,
) -> Result<Cell> {
    if numeric {
        let tokens: Vec<&str> = v.split_whitespace().collect();
        let parsed: std::result::Result<Vec<f32>, _> =
            tokens.iter().map(|t| t.parse::<f32>()).collect();
        if let Ok(values) = parsed {
            if let Some(bad) = values.iter().position(|x| !x.is_finite()) {
                return Err(DataError::list(
                    path,
                    line,
                    format!("column `{column}`: value {} is not finite", bad + 1),
                ));
            }
            return Ok(Cell::Values(values));
        }
    }
    let p = PathBuf::from(v);
    let resolved = if p.is_relative() { dir.join(p) } else { p };
    if !resolved.is_file() {
        return Err(DataError::list(
            path,
            line,
            format!("column `{column}`: {} does not exist", resolved.display()),
        ));
    }
    Ok(Cell::File(resolved))
}

fn flatten_numbers(v: &serde_json::Value, out: &mut Vec<f32>) -> std::result::Result<(), String> {
    match v {
        serde_json::Value::Array(items) => items.iter().try_for_each(|x| flatten_numbers(x, out)),
        serde_json::Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN) as f32;
            if x.is_finite() {
                out.push(x);
                Ok(())
            } else {
                Err(format!("{n} is not a finite f32"))
            }
        }
        other => Err(format!("{other} is not a number")),
    }
}

/// Ids are unique, and every row has an id, a label, a known split and at least one
/// modality; rows that break a rule move to [`Parsed::bad`] (a duplicate id: every occurrence
/// after the first).
fn check_rows(path: &Path, parsed: &mut Parsed) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    let rows = std::mem::take(&mut parsed.rows);
    for r in rows {
        let problem = if r.id.is_empty() {
            Some("column `id` is empty".to_string())
        } else if r.label.is_empty() {
            Some("column `label` is empty".to_string())
        } else if let Some(first) = seen.get(&r.id) {
            Some(format!("column `id`: `{}` already on line {first}", r.id))
        } else if r.cells.iter().all(Option::is_none) {
            Some(format!("sample `{}` has no modality at all", r.id))
        } else {
            match &r.split {
                Some(s) if !matches!(s.as_str(), "train" | "val" | "test") => {
                    Some(format!("column `split`: `{s}` is not train, val or test"))
                }
                _ => None,
            }
        };
        match problem {
            Some(message) => parsed.bad.push(BadRow { line: r.line, message }),
            None => {
                seen.insert(r.id.clone(), r.line);
                parsed.rows.push(r);
            }
        }
    }
    parsed.bad.sort_by_key(|b| b.line);
    if parsed.rows.is_empty() && parsed.bad.is_empty() {
        return Err(DataError::list(path, 1, "no sample"));
    }
    Ok(())
}
