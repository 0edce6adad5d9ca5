//! `mmanet export`, `inspect` and `predict`: the model file and prediction from it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mmanet_data::input_spec::Decoder;
use mmanet_deploy::format::ModelFile;
use mmanet_deploy::predictor::{histogram, label_png};
use mmanet_deploy::{ModelMetadata, Output, Predictor, RawInput, prepare};

pub(crate) struct PredictArgs {
    pub(crate) model: PathBuf,
    pub(crate) weights: String,
    pub(crate) inputs: Vec<String>,
    pub(crate) manifest: Option<PathBuf>,
    pub(crate) batch_size: usize,
    pub(crate) device: String,
    pub(crate) out: Option<PathBuf>,
}

pub(crate) fn export(
    run_dir: &Path,
    weights: &str,
    out: Option<PathBuf>,
    date: bool,
) -> Result<()> {
    let out = out.unwrap_or_else(|| run_dir.join("model.safetensors"));
    let created = date.then(now_rfc3339);
    let w = mmanet_train::export::export_run(run_dir, weights, &out, created)?;
    let meta = mmanet_deploy::read_metadata(&out)?;
    eprintln!(
        "wrote {} ({} bytes, sha256 {}): the {:?} network of {}, modalities {}",
        out.display(),
        w.bytes,
        &w.sha256[..16],
        meta.network,
        meta.identity.run_name,
        names(&meta).join(", ")
    );
    Ok(())
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), UTC.
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

fn names(meta: &ModelMetadata) -> Vec<String> {
    meta.input_spec.modalities.iter().map(|m| format!("{} ({})", m.name, m.symbol)).collect()
}

/// A human-readable description of a decoder.
fn describe_decoder(d: &Decoder) -> String {
    match d {
        Decoder::Image { color, size, mean, std } => format!(
            "image, {color:?}, {}, (x - {mean:?}) / {std:?}",
            size.map_or("its own size".to_string(), |[h, w]| format!("resized to {h}x{w}"))
        ),
        Decoder::GreyPng { size, mean, std } => format!(
            "grey PNG read unchanged, {}, (x - {mean}) / {std}",
            size.map_or("its own size".to_string(), |[h, w]| format!("resized to {h}x{w}"))
        ),
        Decoder::CityscapesDepth { depth, size } => format!(
            "Cityscapes {depth:?}, {}",
            size.map_or("its own size".to_string(), |[h, w]| format!("resized to {h}x{w}"))
        ),
        Decoder::Vector { shape, standardize } => format!(
            "{} numbers as {shape:?}{}",
            shape.iter().product::<i64>(),
            if standardize.is_some() { ", standardised with training statistics" } else { "" }
        ),
        Decoder::Sequence { max_len, features, standardize } => format!(
            "sequence of {features}-feature steps, padded or cut to {max_len}{}",
            if standardize.is_some() { ", standardised" } else { "" }
        ),
    }
}

pub(crate) fn inspect(model: &Path, json: bool) -> Result<()> {
    let meta = mmanet_deploy::read_metadata(model)?;
    if json {
        let map: serde_json::Map<String, serde_json::Value> = meta
            .to_map()
            .into_iter()
            .map(|(k, v)| {
                let value = serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v));
                (k, value)
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
        return Ok(());
    }
    let mut s = String::new();
    writeln!(s, "{}", model.display())?;
    writeln!(s, "  format version  {}", meta.format_version)?;
    writeln!(s, "  network         {:?}", meta.network)?;
    writeln!(s, "  task            {:?}", meta.input_spec.task)?;
    writeln!(s, "  data set        {}", meta.input_spec.dataset)?;
    writeln!(s, "  classes         {}", meta.input_spec.classes.join(", "))?;
    writeln!(s, "  modalities")?;
    for m in &meta.input_spec.modalities {
        writeln!(s, "    {:<12} {:<3} {}", m.name, m.symbol, describe_decoder(&m.decoder))?;
    }
    let arch = serde_json::to_value(&meta.model)?;
    writeln!(s, "  architecture    {}", arch["arch"].as_str().unwrap_or("?"))?;
    let id = &meta.identity;
    writeln!(s, "  run             {}", id.run_name)?;
    writeln!(s, "  config sha256   {}", id.config_sha256)?;
    writeln!(s, "  weights from    sha256 {}", id.checkpoint_sha256)?;
    writeln!(s, "  exported by     mmanet {}", id.mmanet_version)?;
    if let Some(c) = &id.created {
        writeln!(s, "  exported on     {c}")?;
    }
    print!("{s}");
    Ok(())
}

/// A model file, or a run folder's model built in memory.
fn load_model(model: &Path, weights: &str) -> Result<ModelFile> {
    if model.is_dir() {
        return Ok(mmanet_train::export::model_file_for_run(model, weights, None)?);
    }
    Ok(mmanet_deploy::read_model_file(model)?)
}

pub(crate) fn predict(a: &PredictArgs) -> Result<()> {
    let device = mmanet_train::config::parse_device(&a.device)?;
    let predictor = Predictor::new(load_model(&a.model, &a.weights)?, device)?;
    match &a.manifest {
        Some(m) => predict_manifest(&predictor, m, a.batch_size.max(1), a.out.as_deref()),
        None => predict_one(&predictor, &a.inputs, a.out.as_deref()),
    }
}

fn present(meta: &ModelMetadata, present: &[bool]) -> String {
    let s: Vec<&str> = mmanet_deploy::present_modalities(&meta.input_spec, present)
        .map(|m| m.symbol.as_str())
        .collect();
    s.join("+")
}

fn predict_one(p: &Predictor, inputs: &[String], out: Option<&Path>) -> Result<()> {
    let meta = p.metadata();
    let raw = inputs
        .iter()
        .map(|a| {
            let (m, f) = a
                .split_once('=')
                .with_context(|| format!("--input `{a}`: expected MODALITY=FILE"))?;
            Ok((m.to_string(), RawInput::File(PathBuf::from(f))))
        })
        .collect::<Result<Vec<_>>>()?;
    let prepared = prepare(meta, raw, "").context("--input")?;
    let output = p.predict(std::slice::from_ref(&prepared))?.remove(0);
    println!("present: {}", present(meta, &prepared.present));
    match output {
        Output::Classes(probs) => {
            if out.is_some() {
                bail!("--out is for segmentation models; this one prints class probabilities");
            }
            for (k, prob) in probs.iter().enumerate() {
                let name =
                    meta.input_spec.classes.get(k).map_or(String::new(), |c| format!(" ({c})"));
                println!("class {k}{name}: {prob:.4}");
            }
        }
        Output::LabelMap { height, width, labels } => {
            let out =
                out.context("a segmentation model writes a label map: give --out FILE.png")?;
            mmanet_fs::write(out, &label_png(height, width, &labels)?)?;
            let c = match meta.input_spec.task {
                mmanet_data::Task::Segmentation { num_classes }
                | mmanet_data::Task::Classification { num_classes } => num_classes,
            };
            println!("wrote {} ({height}x{width}, labels 1..={c})", out.display());
            let total = labels.len().max(1) as f64;
            for (k, n) in histogram(&labels, c).iter().enumerate().skip(1) {
                if *n > 0 {
                    println!("label {k}: {:.2}% of pixels", 100.0 * *n as f64 / total);
                }
            }
        }
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn predict_manifest(
    p: &Predictor,
    manifest: &Path,
    batch: usize,
    out: Option<&Path>,
) -> Result<()> {
    let meta = p.metadata();
    let rows = mmanet_deploy::manifest::read_manifest(manifest, meta)?;
    let segmentation = matches!(meta.input_spec.task, mmanet_data::Task::Segmentation { .. });
    if segmentation && out.is_none() {
        bail!("a segmentation model writes label maps: give --out FOLDER");
    }
    let bar = indicatif::ProgressBar::new(rows.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} samples {per_sec} eta {eta}")
            .expect("valid template"),
    );
    let mut csv = String::from("id,class,probability,present\n");
    for chunk in rows.chunks(batch) {
        let prepared = chunk
            .iter()
            .map(|r| {
                prepare(
                    meta,
                    r.inputs.clone(),
                    &format!("{}:{} (id {})", manifest.display(), r.line, r.id),
                )
            })
            .collect::<mmanet_deploy::Result<Vec<_>>>()?;
        let outputs = match p.predict(&prepared) {
            Ok(outputs) => outputs,
            // Name the row: the first that fails alone (libtorch refusing its input).
            Err(e) => {
                for (row, prep) in chunk.iter().zip(&prepared) {
                    if let Err(alone) = p.predict(std::slice::from_ref(prep)) {
                        let at = format!("{}:{} (id {})", manifest.display(), row.line, row.id);
                        return Err(anyhow::Error::new(alone).context(at));
                    }
                }
                return Err(e.into());
            }
        };
        for ((row, prep), output) in chunk.iter().zip(&prepared).zip(outputs) {
            let used = present(meta, &prep.present);
            match output {
                Output::Classes(probs) => {
                    let (k, pk) = mmanet_deploy::predictor::best_class(&probs);
                    let name =
                        meta.input_spec.classes.get(k).cloned().unwrap_or_else(|| k.to_string());
                    writeln!(csv, "{},{},{pk:.6},{used}", csv_field(&row.id), csv_field(&name))?;
                }
                Output::LabelMap { height, width, labels } => {
                    let dir = out.expect("checked above");
                    mmanet_fs::create_dir_all(dir)?;
                    let file = dir.join(format!("{}.png", row.id.replace(['/', '\\'], "_")));
                    mmanet_fs::write(&file, &label_png(height, width, &labels)?)?;
                    writeln!(
                        csv,
                        "{},{},,{used}",
                        csv_field(&row.id),
                        csv_field(&file.display().to_string())
                    )?;
                }
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    match (out, segmentation) {
        (Some(dir), true) => {
            let path = dir.join("predictions.csv");
            mmanet_fs::write(&path, csv.as_bytes())?;
            eprintln!("wrote {} label maps and {}", rows.len(), path.display());
        }
        (Some(path), false) => {
            mmanet_fs::write(path, csv.as_bytes())?;
            eprintln!("wrote {} predictions to {}", rows.len(), path.display());
        }
        (None, _) => print!("{csv}"),
    }
    Ok(())
}
