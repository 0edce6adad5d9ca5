//! Inputs of many samples from a prediction manifest: a CSV file with a header holding an
//! `id` column and one column per modality (named as the model names it, or by its symbol),
//! each cell a path relative to the manifest's folder, the numbers themselves (vector and
//! sequence modalities: space- or comma-separated), or empty when the sample lacks it. Other
//! columns (`label`, `split`, `group`, ...) are ignored, so a training manifest works as is.

use std::path::Path;

use mmanet_data::input_spec::parse_numbers;

use crate::format::ModelMetadata;
use crate::input::RawInput;
use crate::{DeployError, Result};

/// One manifest row: its id, 1-based line and the raw inputs it has.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestRow {
    /// The `id` cell.
    pub id: String,
    /// The line in the file (the header is line 1).
    pub line: usize,
    /// `(modality name, input)` for each non-empty modality cell.
    pub inputs: Vec<(String, RawInput)>,
}

/// Reads the prediction manifest at `path` for the model `meta` describes. Errors name the
/// file, the line and the column.
pub fn read_manifest(path: &Path, meta: &ModelMetadata) -> Result<Vec<ManifestRow>> {
    let at =
        |line: usize, msg: String| DeployError::input(format!("{}:{line}", path.display()), msg);
    let text = std::fs::read_to_string(path)
        .map_err(|e| DeployError::Read { path: path.to_path_buf(), source: e })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| at(1, format!("header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let id_col = header
        .iter()
        .position(|h| h == "id")
        .ok_or_else(|| at(1, "the header needs an `id` column".into()))?;
    let spec = &meta.input_spec;
    let columns: Vec<(usize, usize)> = spec
        .modalities
        .iter()
        .enumerate()
        .filter_map(|(m, md)| {
            header.iter().position(|h| *h == md.name || *h == md.symbol).map(|c| (m, c))
        })
        .collect();
    if columns.is_empty() {
        let names: Vec<&str> = spec.modalities.iter().map(|m| m.name.as_str()).collect();
        return Err(at(
            1,
            format!("no column names a modality of the model ({})", names.join(", ")),
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            at(line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.len() != header.len() {
            return Err(at(
                line,
                format!("{} cells, the header has {}", record.len(), header.len()),
            ));
        }
        let id = record.get(id_col).unwrap_or_default().trim().to_string();
        let mut inputs = Vec::new();
        for &(m, c) in &columns {
            let cell = record.get(c).unwrap_or_default().trim();
            if cell.is_empty() {
                continue;
            }
            let md = &spec.modalities[m];
            // Numbers for vector and sequence modalities when the cell parses as numbers;
            // otherwise (and always for images) a path.
            let numbers = if md.decoder.is_image() { None } else { parse_numbers(cell).ok() };
            let raw = match numbers {
                Some(values) if !values.is_empty() => RawInput::Values { values, shape: None },
                Some(_) | None => RawInput::File(dir.join(cell)),
            };
            inputs.push((md.name.clone(), raw));
        }
        rows.push(ManifestRow { id, line, inputs });
    }
    Ok(rows)
}
