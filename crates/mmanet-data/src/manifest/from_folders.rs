//! A manifest from the folder layout most users have: `ROOT/<modality>/<id>.<ext>`, one
//! folder per modality, one file per sample and modality (a sample without a file in a
//! folder lacks that modality), and a `labels.csv` with `id,label` (optionally `split`,
//! `group`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mmanet_core::ModalitySet;

use crate::{DataError, Result};

/// What [`manifest_from_folders`] built.
#[derive(Clone, Debug, PartialEq)]
pub struct FolderManifest {
    /// The manifest as CSV text (header `id,label[,split][,group],<modality>...`), paths
    /// relative to the manifest's folder where the files lie beneath it, else absolute.
    pub csv: String,
    /// The modalities (folder names, sorted).
    pub modalities: Vec<String>,
    /// Samples (rows of `labels.csv`).
    pub samples: usize,
    /// Samples that have every modality.
    pub complete: usize,
}

/// One row of `labels.csv`.
struct LabelRow {
    line: usize,
    id: String,
    label: String,
    split: Option<String>,
    group: Option<String>,
}

/// Builds a manifest from `root`'s modality folders and `labels` (see the module docs), for a
/// manifest file to be written at `manifest` (paths in it are relative to its folder).
///
/// Every folder of `root` whose name does not start with `.` is a modality (names as configs
/// require: `[a-z][a-z0-9_]*`, not `id`/`label`/`split`/`group`); files directly in `root`
/// are ignored. The id of `cam/s1.png` is `s1` (the file name up to its last `.`). Errors:
/// a folder name that is not a modality name, two files for one id in one folder (naming
/// both), a file whose id `labels.csv` lacks (naming the file), a `labels.csv` line without
/// an id or label, a duplicate id (naming both lines), and an id with no file at all.
pub fn manifest_from_folders(
    root: &Path,
    labels: &Path,
    manifest: &Path,
) -> Result<FolderManifest> {
    let label_rows = read_labels(labels)?;
    let mut folders: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| DataError::io(root, e))? {
        let entry = entry.map_err(|e| DataError::io(root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        folders.push((name, entry.path()));
    }
    folders.sort();
    if folders.is_empty() {
        return Err(DataError::Layout {
            path: root.to_path_buf(),
            message: "no modality folder (expected ROOT/<modality>/<id>.<ext>)".into(),
        });
    }
    let names: Vec<String> = folders.iter().map(|f| f.0.clone()).collect();
    ModalitySet::from_names(names.iter().map(String::as_str)).map_err(|e| DataError::Layout {
        path: root.to_path_buf(),
        message: format!("a modality folder's name: {e}"),
    })?;

    let index: BTreeMap<&str, usize> =
        label_rows.iter().enumerate().map(|(k, r)| (r.id.as_str(), k)).collect();
    let base = absolute(manifest.parent().unwrap_or(Path::new("")))?;
    // cells[sample][modality]
    let mut cells: Vec<Vec<Option<PathBuf>>> = vec![vec![None; folders.len()]; label_rows.len()];
    for (m, (name, dir)) in folders.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| DataError::io(dir, e))?
            .map(|e| e.map(|e| e.path()).map_err(|err| DataError::io(dir, err)))
            .collect::<Result<_>>()?;
        files.sort();
        for file in files {
            let fname =
                file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if fname.starts_with('.') || !file.is_file() {
                continue;
            }
            let id = fname.rsplit_once('.').map_or(fname.as_str(), |(stem, _)| stem);
            let Some(&k) = index.get(id) else {
                return Err(DataError::Layout {
                    path: file.clone(),
                    message: format!(
                        "id `{id}` (modality `{name}`) has no line in {}",
                        labels.display()
                    ),
                });
            };
            if let Some(other) = &cells[k][m] {
                return Err(DataError::Layout {
                    path: file.clone(),
                    message: format!(
                        "a second file for id `{id}` in `{name}`, besides {}",
                        other.display()
                    ),
                });
            }
            cells[k][m] = Some(file);
        }
    }
    for (r, row) in label_rows.iter().zip(&cells) {
        if row.iter().all(Option::is_none) {
            return Err(DataError::list(
                labels,
                r.line,
                format!("id `{}` has no file in any modality folder of {}", r.id, root.display()),
            ));
        }
    }

    let has_split = label_rows.iter().any(|r| r.split.is_some());
    let has_group = label_rows.iter().any(|r| r.group.is_some());
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["id".to_string(), "label".to_string()];
    if has_split {
        header.push("split".into());
    }
    if has_group {
        header.push("group".into());
    }
    header.extend(names.iter().cloned());
    let csv_err = |e: csv::Error| DataError::Config(format!("writing the manifest: {e}"));
    w.write_record(&header).map_err(csv_err)?;
    for (r, row) in label_rows.iter().zip(&cells) {
        let mut rec = vec![r.id.clone(), r.label.clone()];
        if has_split {
            rec.push(r.split.clone().unwrap_or_default());
        }
        if has_group {
            rec.push(r.group.clone().unwrap_or_default());
        }
        for cell in row {
            rec.push(match cell {
                None => String::new(),
                Some(f) => relative_to(&absolute(f)?, &base),
            });
        }
        w.write_record(&rec).map_err(csv_err)?;
    }
    let bytes =
        w.into_inner().map_err(|e| DataError::Config(format!("writing the manifest: {e}")))?;
    let complete = cells.iter().filter(|r| r.iter().all(Option::is_some)).count();
    tracing::info!(samples = label_rows.len(), complete, modalities = ?names, "manifest from folders");
    Ok(FolderManifest {
        csv: String::from_utf8(bytes)
            .map_err(|e| DataError::Config(format!("writing the manifest: {e}")))?,
        modalities: names,
        samples: label_rows.len(),
        complete,
    })
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| DataError::io(".", e))?;
    Ok(cwd.join(p))
}

/// `file` relative to `base` when it lies beneath it (with `/` separators), else as is.
fn relative_to(file: &Path, base: &Path) -> String {
    match file.strip_prefix(base) {
        Ok(rel) => {
            rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
        }
        Err(_) => file.display().to_string(),
    }
}

fn read_labels(path: &Path) -> Result<Vec<LabelRow>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| DataError::list(path, 1, format!("header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(id), Some(label)) = (col("id"), col("label")) else {
        return Err(DataError::list(path, 1, "the header needs an `id` and a `label` column"));
    };
    if let Some(other) =
        header.iter().find(|h| !matches!(h.as_str(), "id" | "label" | "split" | "group"))
    {
        return Err(DataError::list(
            path,
            1,
            format!("column `{other}`: labels.csv holds id, label, split and group only"),
        ));
    }
    let (split, group) = (col("split"), col("group"));
    let mut rows: Vec<LabelRow> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            DataError::list(path, e.position().map_or(0, |p| p.line() as usize), e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
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
        let (i, l) = (field(id), field(label));
        if i.is_empty() {
            return Err(DataError::list(path, line, "column `id` is empty"));
        }
        if l.is_empty() {
            return Err(DataError::list(path, line, format!("column `label` is empty (id `{i}`)")));
        }
        if let Some(first) = seen.insert(i.clone(), line) {
            return Err(DataError::list(path, line, format!("id `{i}` already on line {first}")));
        }
        rows.push(LabelRow {
            line,
            id: i,
            label: l,
            split: optional(split),
            group: optional(group),
        });
    }
    if rows.is_empty() {
        return Err(DataError::list(path, 1, "no sample"));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn folders_and_labels_make_a_manifest_with_missing_cells() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        touch(&root.join("camera/s1.png"));
        touch(&root.join("camera/s2.png"));
        touch(&root.join("imu/s1.txt"));
        touch(&root.join("imu/s3.txt"));
        touch(&root.join("notes.md"));
        std::fs::write(
            root.join("labels.csv"),
            "id,label,split\ns1,walk,train\ns2,run,test\ns3,walk,\n",
        )
        .unwrap();
        let m = manifest_from_folders(root, &root.join("labels.csv"), &root.join("manifest.csv"))
            .unwrap();
        assert_eq!(m.modalities, ["camera", "imu"]);
        assert_eq!((m.samples, m.complete), (3, 1));
        assert_eq!(
            m.csv,
            "id,label,split,camera,imu\ns1,walk,train,camera/s1.png,imu/s1.txt\n\
             s2,run,test,camera/s2.png,\ns3,walk,,,imu/s3.txt\n"
        );
    }

    #[test]
    fn bad_layouts_are_errors_naming_the_file_or_line() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        touch(&root.join("camera/s1.png"));
        std::fs::write(root.join("labels.csv"), "id,label\ns1,a\ns2,b\ns1,c\n").unwrap();
        let out = root.join("m.csv");
        let e =
            manifest_from_folders(root, &root.join("labels.csv"), &out).unwrap_err().to_string();
        assert!(e.contains("labels.csv:4:") && e.contains("line 2"), "{e}");

        std::fs::write(root.join("labels.csv"), "id,label\ns1,a\ns2,b\n").unwrap();
        let e =
            manifest_from_folders(root, &root.join("labels.csv"), &out).unwrap_err().to_string();
        assert!(e.contains("labels.csv:3:") && e.contains("`s2` has no file"), "{e}");

        touch(&root.join("camera/s2.png"));
        touch(&root.join("camera/s9.png"));
        let e =
            manifest_from_folders(root, &root.join("labels.csv"), &out).unwrap_err().to_string();
        assert!(e.contains("s9.png") && e.contains("no line in"), "{e}");

        std::fs::remove_file(root.join("camera/s9.png")).unwrap();
        touch(&root.join("camera/s2.jpg"));
        let e =
            manifest_from_folders(root, &root.join("labels.csv"), &out).unwrap_err().to_string();
        assert!(e.contains("s2.png") && e.contains("s2.jpg"), "{e}");

        std::fs::remove_file(root.join("camera/s2.jpg")).unwrap();
        touch(&root.join("Bad Name/s1.png"));
        let e =
            manifest_from_folders(root, &root.join("labels.csv"), &out).unwrap_err().to_string();
        assert!(e.contains("Bad Name"), "{e}");
    }
}
