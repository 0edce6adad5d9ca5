//! Inferring a manifest's modalities and decoders from its columns and cells (`mmanet fit`).
//!
//! Every column but `id`, `label`, `split` and `group` is a modality. Its decoder follows from
//! its non-empty cells, which must all be of one kind:
//!
//! | cells | decoder |
//! | --- | --- |
//! | numbers in the cell (`0.1 0.2 0.3`; a JSON array in JSONL), all of one length | `vector` (standardised) |
//! | `.png` / `.jpg` / `.jpeg` files | `image`: the first file's size (longer side capped at [`MAX_IMAGE_SIDE`], aspect kept), 1 channel when every inspected file is grey, else 3 |
//! | `.npy` files of shape `[D]` | `vector` of `D` (standardised) |
//! | `.npy` files of shape `[T, F]` (`T` may vary) | `sequence`, `max_len` = the longest `T` (capped at [`MAX_SEQUENCE_LEN`]) |
//! | `.npy` files of shape `[C, H, W]` | `array` of that shape |
//! | `.txt` files | `vector` of as many numbers as the first file holds |

use std::path::{Path, PathBuf};

use super::parse::{self, Cell, RESERVED, Row};
use super::{ManifestDecoder, ManifestModality};
use crate::{DataError, Result};

/// Longest image side `fit` trains on; larger images are resized down to it.
pub const MAX_IMAGE_SIDE: usize = 64;
/// Longest sequence `fit` pads to; longer ones are cut.
pub const MAX_SEQUENCE_LEN: usize = 512;
/// Images inspected per column for their colour type.
const COLOUR_PROBES: usize = 256;

/// A manifest's modalities as [`infer_modalities`] found them.
#[derive(Clone, Debug, PartialEq)]
pub struct Inferred {
    /// One per modality column, in the manifest's column order.
    pub modalities: Vec<ManifestModality>,
    /// Samples (rows).
    pub samples: usize,
    /// Samples that have every modality.
    pub complete: usize,
    /// Whether the manifest has a `split` column.
    pub has_split: bool,
}

/// The kind of one cell, with what the decoder needs of it.
#[derive(Clone, Debug, PartialEq)]
enum CellKind {
    Values(usize),
    Image(PathBuf),
    Npy(Vec<usize>),
    Text(PathBuf),
}

impl CellKind {
    fn what(&self) -> &'static str {
        match self {
            CellKind::Values(_) => "numbers in the cell",
            CellKind::Image(_) => "an image file",
            CellKind::Npy(_) => "a .npy file",
            CellKind::Text(_) => "a text file",
        }
    }
}

/// Reads the manifest at `path` (CSV with a header, or JSON Lines) and infers one modality per
/// column that is not `id`, `label`, `split` or `group`, with its decoder (see the module
/// docs). Errors name the manifest, the line and the column.
pub fn infer_modalities(path: &Path) -> Result<Inferred> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let columns = modality_columns(path, &text)?;
    if columns.is_empty() {
        return Err(DataError::list(
            path,
            1,
            "no modality column (every column is id, label, split or group)",
        ));
    }
    let numeric = vec![true; columns.len()];
    let rows = parse::parse(path, &text, &columns, &numeric)?.strict(path)?;
    let mut modalities = Vec::with_capacity(columns.len());
    for (m, name) in columns.iter().enumerate() {
        let decoder = infer_column(path, &rows, m, name)?;
        tracing::info!(column = %name, ?decoder, "inferred decoder");
        modalities.push(ManifestModality { name: name.clone(), symbol: None, decoder });
    }
    Ok(Inferred {
        modalities,
        samples: rows.len(),
        complete: rows.iter().filter(|r| r.cells.iter().all(Option::is_some)).count(),
        has_split: rows.iter().any(|r| r.split.is_some()),
    })
}

/// The modality columns, in order: a CSV's header, or the keys of a JSONL file's lines in the
/// order they first appear.
fn modality_columns(path: &Path, text: &str) -> Result<Vec<String>> {
    let jsonl = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"));
    let mut out: Vec<String> = Vec::new();
    if jsonl {
        for (k, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(raw)
                .map_err(|e| DataError::list(path, k + 1, format!("not a JSON object: {e}")))?;
            let obj =
                v.as_object().ok_or_else(|| DataError::list(path, k + 1, "not a JSON object"))?;
            for key in obj.keys() {
                if !RESERVED.contains(&key.as_str()) && !out.contains(key) {
                    out.push(key.clone());
                }
            }
        }
    } else {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
        let header =
            reader.headers().map_err(|e| DataError::list(path, 1, format!("header: {e}")))?;
        for h in header.iter().map(str::trim) {
            if out.iter().any(|c| c == h) {
                return Err(DataError::list(path, 1, format!("column `{h}` appears twice")));
            }
            if !RESERVED.contains(&h) {
                out.push(h.to_string());
            }
        }
    }
    Ok(out)
}

fn kind_of(path: &Path, line: usize, column: &str, cell: &Cell) -> Result<CellKind> {
    let file = match cell {
        Cell::Values(v) => return Ok(CellKind::Values(v.len())),
        Cell::File(f) => f,
    };
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "png" | "jpg" | "jpeg" => Ok(CellKind::Image(file.clone())),
        "npy" => crate::npy::read_npy_shape(file)
            .map(CellKind::Npy)
            .map_err(|e| DataError::list(path, line, format!("column `{column}`: {e}"))),
        "txt" => Ok(CellKind::Text(file.clone())),
        other => Err(DataError::list(
            path,
            line,
            format!(
                "column `{column}`: {} has an extension (`{other}`) no decoder reads \
                 (.png, .jpg, .jpeg, .npy, .txt, or numbers in the cell)",
                file.display()
            ),
        )),
    }
}

/// The decoder of column `m` from its non-empty cells.
fn infer_column(path: &Path, rows: &[Row], m: usize, name: &str) -> Result<ManifestDecoder> {
    let cells: Vec<(usize, CellKind)> = rows
        .iter()
        .filter_map(|r| r.cells[m].as_ref().map(|c| (r.line, c)))
        .map(|(line, c)| kind_of(path, line, name, c).map(|k| (line, k)))
        .collect::<Result<_>>()?;
    let Some((first_line, first)) = cells.first().cloned() else {
        return Err(DataError::list(path, 1, format!("column `{name}`: every cell is empty")));
    };
    let err =
        |line: usize, msg: String| DataError::list(path, line, format!("column `{name}`: {msg}"));
    for (line, k) in &cells {
        if std::mem::discriminant(k) != std::mem::discriminant(&first) {
            return Err(err(
                *line,
                format!("{}, but line {first_line} holds {}", k.what(), first.what()),
            ));
        }
    }
    Ok(match &first {
        CellKind::Values(len) => {
            for (line, k) in &cells {
                if let CellKind::Values(n) = k {
                    if n != len {
                        return Err(err(
                            *line,
                            format!("{n} numbers, but line {first_line} holds {len}"),
                        ));
                    }
                }
            }
            ManifestDecoder::Vector { len: *len, standardize: true }
        }
        CellKind::Text(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| DataError::io(file, e))?;
            let len = text
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|t| !t.is_empty())
                .count();
            if len == 0 {
                return Err(err(first_line, format!("{} holds no number", file.display())));
            }
            ManifestDecoder::Vector { len, standardize: true }
        }
        CellKind::Image(file) => {
            let (w, h) = image::image_dimensions(file)
                .map_err(|e| err(first_line, format!("{}: {e}", file.display())))?;
            let size = capped_size(h as usize, w as usize);
            let mut grey = true;
            for (line, k) in cells.iter().take(COLOUR_PROBES) {
                if let CellKind::Image(f) = k {
                    grey &= is_grey(f).map_err(|e| err(*line, format!("{}: {e}", f.display())))?;
                }
            }
            ManifestDecoder::Image {
                size,
                channels: if grey { 1 } else { 3 },
                mean: 0.5,
                std: 0.5,
                flip: false,
                augment: None,
            }
        }
        CellKind::Npy(shape) => {
            npy_decoder(&cells, first_line, shape).map_err(|(l, m)| err(l, m))?
        }
    })
}

/// `[h, w]` with the longer side at most [`MAX_IMAGE_SIDE`], aspect ratio kept.
fn capped_size(h: usize, w: usize) -> [usize; 2] {
    let side = h.max(w);
    if side <= MAX_IMAGE_SIDE {
        return [h.max(1), w.max(1)];
    }
    let scale = |x: usize| ((x * MAX_IMAGE_SIDE) as f64 / side as f64).round().max(1.0) as usize;
    [scale(h), scale(w)]
}

fn is_grey(file: &Path) -> std::result::Result<bool, image::ImageError> {
    use image::ImageDecoder;
    let decoder = image::ImageReader::open(file)?.with_guessed_format()?.into_decoder()?;
    Ok(matches!(
        decoder.color_type(),
        image::ColorType::L8
            | image::ColorType::La8
            | image::ColorType::L16
            | image::ColorType::La16
    ))
}

/// The decoder of a column of `.npy` files, or `(line, message)`.
fn npy_decoder(
    cells: &[(usize, CellKind)],
    first_line: usize,
    first: &[usize],
) -> std::result::Result<ManifestDecoder, (usize, String)> {
    let shapes = cells.iter().filter_map(|(l, k)| match k {
        CellKind::Npy(s) => Some((*l, s)),
        CellKind::Values(_) | CellKind::Image(_) | CellKind::Text(_) => None,
    });
    match first.len() {
        1 | 3 => {
            for (line, s) in shapes {
                if s.as_slice() != first {
                    return Err((
                        line,
                        format!("shape {s:?}, but line {first_line} has {first:?}"),
                    ));
                }
            }
            if first.contains(&0) {
                return Err((first_line, format!("shape {first:?} is empty")));
            }
            Ok(if first.len() == 1 {
                ManifestDecoder::Vector { len: first[0], standardize: true }
            } else {
                ManifestDecoder::Array { shape: first.iter().map(|&d| d as i64).collect() }
            })
        }
        2 => {
            let mut longest = 0;
            for (line, s) in shapes {
                if s.len() != 2 || s[1] != first[1] {
                    return Err((
                        line,
                        format!(
                            "shape {s:?}: a sequence of {} features (line {first_line}) was expected",
                            first[1]
                        ),
                    ));
                }
                longest = longest.max(s[0]);
            }
            if longest == 0 || first[1] == 0 {
                return Err((first_line, format!("shape {first:?} is empty")));
            }
            Ok(ManifestDecoder::Sequence {
                max_len: longest.min(MAX_SEQUENCE_LEN),
                features: first[1],
            })
        }
        n => Err((
            first_line,
            format!(
                "a .npy of {n} dimensions {first:?}: fit reads [D] vectors, [T, F] sequences \
                 and [C, H, W] arrays"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(path: &Path, shape: &[usize]) {
        let n: usize = shape.iter().product();
        let body: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
        crate::npy::write_npy(path, "<f4", shape, &body).unwrap();
    }

    #[test]
    fn decoders_follow_from_the_cells() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        image::RgbImage::new(120, 60).save(dir.join("a.png")).unwrap();
        image::GrayImage::new(8, 8).save(dir.join("g.png")).unwrap();
        npy(&dir.join("s1.npy"), &[5, 3]);
        npy(&dir.join("s2.npy"), &[9, 3]);
        npy(&dir.join("v.npy"), &[4]);
        std::fs::write(
            dir.join("m.csv"),
            "id,label,group,cam,grey,seq,vec,imu\n\
             1,a,g1,a.png,g.png,s1.npy,v.npy,0.1 0.2\n\
             2,b,g2,,g.png,s2.npy,,0.3 0.4\n",
        )
        .unwrap();
        let inf = infer_modalities(&dir.join("m.csv")).unwrap();
        let names: Vec<&str> = inf.modalities.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["cam", "grey", "seq", "vec", "imu"]);
        assert_eq!((inf.samples, inf.complete, inf.has_split), (2, 1, false));
        let d: Vec<&ManifestDecoder> = inf.modalities.iter().map(|m| &m.decoder).collect();
        assert!(
            matches!(d[0], ManifestDecoder::Image { size: [32, 64], channels: 3, .. }),
            "{:?}",
            d[0]
        );
        assert!(matches!(d[1], ManifestDecoder::Image { size: [8, 8], channels: 1, .. }));
        assert_eq!(*d[2], ManifestDecoder::Sequence { max_len: 9, features: 3 });
        assert_eq!(*d[3], ManifestDecoder::Vector { len: 4, standardize: true });
        assert_eq!(*d[4], ManifestDecoder::Vector { len: 2, standardize: true });
    }

    #[test]
    fn inconsistent_columns_are_errors_naming_line_and_column() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("m.csv");
        std::fs::write(&m, "id,label,imu\n1,a,0.1 0.2\n2,b,0.3\n").unwrap();
        let e = infer_modalities(&m).unwrap_err().to_string();
        assert!(e.contains("m.csv:3:") && e.contains("`imu`") && e.contains("1 numbers"), "{e}");

        image::GrayImage::new(4, 4).save(d.path().join("x.png")).unwrap();
        std::fs::write(&m, "id,label,imu\n1,a,0.1 0.2\n2,b,x.png\n").unwrap();
        let e = infer_modalities(&m).unwrap_err().to_string();
        assert!(e.contains("m.csv:3:") && e.contains("an image file"), "{e}");

        std::fs::write(&m, "id,label,imu,cam\n1,a,0.1,\n2,b,0.3,\n").unwrap();
        let e = infer_modalities(&m).unwrap_err().to_string();
        assert!(e.contains("`cam`: every cell is empty"), "{e}");

        std::fs::write(&m, "id,label,split\n1,a,train\n").unwrap();
        let e = infer_modalities(&m).unwrap_err().to_string();
        assert!(e.contains("no modality column"), "{e}");
    }
}
