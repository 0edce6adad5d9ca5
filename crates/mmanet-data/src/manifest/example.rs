//! The example manifest data set (`cargo xtask data example-manifest`, `mmanet data
//! example-manifest`): UCI Multiple Features' 2,000 handwritten digits as a user's own files
//! would be, with views really missing.
//!
//! ```text
//! OUT/manifest.csv         id,label,pixel,fourier,karhunen_loeve
//! OUT/pixel/d0000.png      the 16x15 pixel view, values 0-6 scaled to 0-255 (8-bit grey PNG)
//! ```
//!
//! `fourier` (76 numbers) and `karhunen_loeve` (64) are inline vectors; `label` is the digit's
//! name (`zero` ... `nine`). There is no `split` column: the manifest reader's seeded split,
//! stratified by label, applies. A seeded 30 % of the samples (exactly `round(0.3 n)`) lack one
//! or two of the three views, each drawn uniformly among the six non-empty proper subsets
//! ([`crate::missing::MissingConfig`]); a lacking pixel view has no PNG and an empty cell.

use std::path::{Path, PathBuf};

use mmanet_core::ModalitySet;

use crate::missing::MissingConfig;
use crate::{DataError, Result, Split};

/// The digits' names, in label order.
pub const DIGITS: [&str; 10] =
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

/// The example's three views, as manifest columns.
pub const EXAMPLE_VIEWS: [&str; 3] = ["pixel", "fourier", "karhunen_loeve"];

/// What [`write_mfeat_example`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ExampleSummary {
    /// `OUT/manifest.csv`.
    pub manifest: PathBuf,
    /// Samples written.
    pub samples: usize,
    /// Samples lacking one or two views.
    pub incomplete: usize,
}

/// Writes the example manifest data set into `out` from the UCI mfeat files in `mfeat`
/// (`mfeat-pix.csv`, `mfeat-fou.csv`, `mfeat-kar.csv`): all 2,000 digits, or with `subset`
/// a seeded subset of that many, stratified by digit. `seed` picks the subset and the
/// missing views; `missing` is the fraction of incomplete samples (the example uses 0.3).
pub fn write_mfeat_example(
    mfeat: &Path,
    out: &Path,
    subset: Option<usize>,
    seed: u64,
    missing: f64,
) -> Result<ExampleSummary> {
    let read = |file: &str, dim: usize| {
        crate::mfeat::read_mfeat_csv(&mfeat.join(file), dim)
            .map_err(|e| crate::source::fetch_hint(e, "mfeat"))
    };
    let (pix, labels) = read("mfeat-pix.csv", 240)?;
    let (fou, _) = read("mfeat-fou.csv", 76)?;
    let (kar, _) = read("mfeat-kar.csv", 64)?;
    if fou.len() != pix.len() || kar.len() != pix.len() {
        return Err(DataError::shape(
            mfeat.display().to_string(),
            format!("{} rows in every view", pix.len()),
            format!("{} and {}", fou.len(), kar.len()),
        ));
    }
    let chosen: Vec<usize> = match subset {
        Some(n) if n < labels.len() => {
            let frac = n as f64 / labels.len() as f64;
            crate::split::stratified_split(&labels, frac, seed).1
        }
        Some(_) | None => (0..labels.len()).collect(),
    };
    let set = ModalitySet::from_names(EXAMPLE_VIEWS)?;
    let rule = MissingConfig { rate: missing, seed, splits: vec![Split::Train] };
    let availability = rule.availability(&set, Split::Train, chosen.len())?;

    mmanet_fs::create_dir_all(&out.join("pixel"))?;
    let mut csv = String::from("id,label,pixel,fourier,karhunen_loeve\n");
    let mut incomplete = 0;
    for (k, &i) in chosen.iter().enumerate() {
        let id = format!("d{i:04}");
        let has = |m: usize| availability[k].contains(m);
        incomplete += usize::from(availability[k] != set.full());
        let pixel = if has(0) {
            let rel = format!("pixel/{id}.png");
            write_pixel_png(&out.join(&rel), &pix[i])?;
            rel
        } else {
            String::new()
        };
        let numbers = |v: &[f32]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ");
        let fourier = if has(1) { numbers(&fou[i]) } else { String::new() };
        let kl = if has(2) { numbers(&kar[i]) } else { String::new() };
        let label = DIGITS.get(labels[i] as usize).ok_or_else(|| {
            DataError::list(mfeat.join("mfeat-pix.csv"), i + 1, format!("label {}", labels[i]))
        })?;
        csv += &format!("{id},{label},{pixel},{fourier},{kl}\n");
    }
    let manifest = out.join("manifest.csv");
    mmanet_fs::write(&manifest, csv.as_bytes())?;
    tracing::info!(samples = chosen.len(), incomplete, out = %out.display(), "example manifest written");
    Ok(ExampleSummary { manifest, samples: chosen.len(), incomplete })
}

/// The 240 pixel averages (0-6, 16 rows of 15) as an 8-bit grey PNG scaled to 0-255.
fn write_pixel_png(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> =
        values.iter().map(|v| (v.clamp(0.0, 6.0) * 255.0 / 6.0).round() as u8).collect();
    let img = image::GrayImage::from_raw(15, 16, bytes)
        .ok_or_else(|| DataError::shape(path.display().to_string(), 240, values.len()))?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| DataError::decode(path, format!("PNG encoding failed: {e}")))?;
    mmanet_fs::write(path, png.get_ref())?;
    Ok(())
}
