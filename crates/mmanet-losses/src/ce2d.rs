//! Class-weighted 2-D cross-entropy with a void class (docs/method.md §6.3; ESANet's
//! `src/utils.py::CrossEntropyLoss2d`) and ESANet's median-frequency class weights.
//!
//! Labels use 0 for void and `1..=C` for the classes. Per scale:
//!
//! `L = Σ_{p non-void} w_{y_p} · CE(z_p, y_p − 1) / Σ_{p non-void} w_{y_p}`
//!
//! and the multi-scale loss is the sum over scales (full resolution and the side outputs, each
//! with its own, nearest-downsampled, labels). A scale whose pixels are all void contributes 0
//! (the reference divides 0 by 0).

use tch::{Kind, Reduction, Tensor};

use crate::{LossError, Result, check};

const OP: &str = "weighted_ce_2d";

/// Class-weighted cross-entropy of one scale, normalised by the weighted count of non-void
/// pixels (docs/method.md §6.3).
///
/// # Shapes
/// - `logits`: `[B, C, H, W]`, float.
/// - `labels`: `[B, H, W]`, integer, 0 = void, `1..=C` = classes.
/// - `class_weights`: `[C]`, float (converted to `logits`' kind and device).
/// - output: scalar.
pub fn weighted_ce_2d(logits: &Tensor, labels: &Tensor, class_weights: &Tensor) -> Tensor {
    f_weighted_ce_2d(logits, labels, class_weights).expect("weighted_ce_2d")
}

/// Fallible [`weighted_ce_2d`].
///
/// # Shapes
/// See [`weighted_ce_2d`].
pub fn f_weighted_ce_2d(
    logits: &Tensor,
    labels: &Tensor,
    class_weights: &Tensor,
) -> Result<Tensor> {
    weighted_ce_2d_over(logits, labels, class_weights, None)
}

/// [`weighted_ce_2d`] over the samples `rows` keeps, with static shapes (no boolean indexing:
/// what a captured CUDA graph needs). Equals [`weighted_ce_2d`] of the kept samples alone to
/// rounding when their logits are finite; 0 when `rows` keeps none.
///
/// # Shapes
/// - `logits`, `labels`, `class_weights`: as [`weighted_ce_2d`].
/// - `rows`: `[B]` bool.
/// - output: scalar.
pub fn f_weighted_ce_2d_rows(
    logits: &Tensor,
    labels: &Tensor,
    class_weights: &Tensor,
    rows: &Tensor,
) -> Result<Tensor> {
    check::rank(OP, "rows", rows, 1)?;
    check::same_dim(OP, logits, 0, rows, 0)?;
    weighted_ce_2d_over(logits, labels, class_weights, Some(rows))
}

/// The weighted CE of the pixels of every sample, or of those `rows` keeps.
///
/// # Shapes
/// As [`f_weighted_ce_2d_rows`].
fn weighted_ce_2d_over(
    logits: &Tensor,
    labels: &Tensor,
    class_weights: &Tensor,
    rows: Option<&Tensor>,
) -> Result<Tensor> {
    check::rank(OP, "logits", logits, 4)?;
    check::rank(OP, "labels", labels, 3)?;
    check::rank(OP, "class_weights", class_weights, 1)?;
    let kind = check::float(OP, "logits", logits)?;
    check::integer(OP, "labels", labels)?;
    let (ls, ys) = (logits.size(), labels.size());
    if ls[0] != ys[0] || ls[2..] != ys[1..] || class_weights.size()[0] != ls[1] {
        return Err(LossError::Shape { op: OP, lhs: ls, rhs: ys });
    }
    let weights = class_weights.f_to_kind(kind)?.f_to(logits.device())?;
    let target = labels.f_to_kind(Kind::Int64)?.f_sub_scalar(1)?;
    // reduction 'none' with a weight gives w_y · CE per pixel and 0 at ignored pixels.
    let mut per_pixel =
        logits.f_cross_entropy_loss(&target, Some(&weights), Reduction::None, -1, 0.0)?;
    let mut valid = target.f_ge(0)?;
    if let Some(rows) = rows {
        let keep = rows.f_to_kind(Kind::Bool)?.f_view([ls[0], 1, 1])?;
        // `where`, not a product: a dropped sample's non-finite loss stays out.
        per_pixel = per_pixel.f_where_scalarother(&keep, 0.0)?;
        valid = valid.f_logical_and(&keep)?;
    }
    let w_y = weights.f_index_select(0, &target.f_clamp_min(0)?.f_reshape([-1])?)?;
    let divisor = w_y.f_mul(&valid.f_reshape([-1])?.f_to_kind(kind)?)?.f_sum(None)?;
    let positive = divisor.f_gt(0.0)?;
    let divisor = divisor.f_where_scalarother(&positive, 1.0)?;
    Ok(per_pixel.f_sum(None)?.f_div(&divisor)?)
}

/// Sum of [`weighted_ce_2d`] over scales, each a `(logits, labels)` pair (docs/method.md §6.3: full
/// resolution, /8, /16, /32 for ESANet's decoder).
///
/// # Shapes
/// - `scales[j]`: `([B, C, H_j, W_j], [B, H_j, W_j])`; `class_weights`: `[C]`.
/// - output: scalar.
pub fn multiscale_weighted_ce_2d(scales: &[(&Tensor, &Tensor)], class_weights: &Tensor) -> Tensor {
    f_multiscale_weighted_ce_2d(scales, class_weights).expect("multiscale_weighted_ce_2d")
}

/// Fallible [`multiscale_weighted_ce_2d`]; fails on an empty list.
///
/// # Shapes
/// See [`multiscale_weighted_ce_2d`].
pub fn f_multiscale_weighted_ce_2d(
    scales: &[(&Tensor, &Tensor)],
    class_weights: &Tensor,
) -> Result<Tensor> {
    multiscale_over(scales, class_weights, None)
}

/// [`f_multiscale_weighted_ce_2d`] over the samples `rows` keeps ([`f_weighted_ce_2d_rows`]
/// per scale).
///
/// # Shapes
/// - `scales[j]`: `([B, C, H_j, W_j], [B, H_j, W_j])`; `class_weights`: `[C]`; `rows`: `[B]`
///   bool.
/// - output: scalar.
pub fn f_multiscale_weighted_ce_2d_rows(
    scales: &[(&Tensor, &Tensor)],
    class_weights: &Tensor,
    rows: &Tensor,
) -> Result<Tensor> {
    multiscale_over(scales, class_weights, Some(rows))
}

/// The sum over scales of every sample's, or the kept samples', weighted CE.
fn multiscale_over(
    scales: &[(&Tensor, &Tensor)],
    class_weights: &Tensor,
    rows: Option<&Tensor>,
) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (logits, labels) in scales {
        let l = match rows {
            Some(rows) => f_weighted_ce_2d_rows(logits, labels, class_weights, rows)?,
            None => f_weighted_ce_2d(logits, labels, class_weights)?,
        };
        total = Some(match total {
            None => l,
            Some(t) => t.f_add(&l)?,
        });
    }
    total.ok_or_else(|| {
        LossError::Invalid("multiscale_weighted_ce_2d needs at least one scale".into())
    })
}

/// Pixel statistics for median-frequency class weights, accumulated image by image as ESANet's
/// `compute_class_weights` does. Index 0 is void; classes are `1..=C`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassPixelCounts {
    pixels_per_class: Vec<u64>,
    image_pixels_with_class: Vec<u64>,
}

impl ClassPixelCounts {
    /// Empty counts for `num_classes` classes plus void.
    pub fn new(num_classes: usize) -> Self {
        ClassPixelCounts {
            pixels_per_class: vec![0; num_classes + 1],
            image_pixels_with_class: vec![0; num_classes + 1],
        }
    }

    /// Adds one label image (values `0..=C`, 0 = void): every label's pixel count, and the image's
    /// total pixel count to every label present in it. Fails on a value above `C`.
    pub fn add_image(&mut self, labels: &[u32]) -> Result<()> {
        let mut hist = vec![0u64; self.pixels_per_class.len()];
        for &l in labels {
            let slot = hist.get_mut(l as usize).ok_or_else(|| {
                LossError::Invalid(format!("label {l} above {}", self.pixels_per_class.len() - 1))
            })?;
            *slot += 1;
        }
        let total = labels.len() as u64;
        for (k, h) in hist.into_iter().enumerate() {
            self.pixels_per_class[k] += h;
            if h > 0 {
                self.image_pixels_with_class[k] += total;
            }
        }
        Ok(())
    }

    /// Pixel counts per label, void (index 0) included.
    pub fn pixels_per_class(&self) -> &[u64] {
        &self.pixels_per_class
    }

    /// Per label, the total pixels of the images where it occurs, void (index 0) included.
    pub fn image_pixels_with_class(&self) -> &[u64] {
        &self.image_pixels_with_class
    }

    /// Median-frequency weights for classes `1..=C` (void dropped), following ESANet:
    /// `freq_c = pixels_c / (pixels of the images where c occurs)`,
    /// `w_c = median(freq) / freq_c`, with numpy's median (the mean of the two middle values for
    /// an even C). Fails, as ESANet does (it raises on NaN weights), when a class never occurs.
    pub fn median_frequency_weights(&self) -> Result<Vec<f64>> {
        let freq = self.pixels_per_class[1..]
            .iter()
            .zip(&self.image_pixels_with_class[1..])
            .enumerate()
            .map(|(c, (&n, &d))| {
                if n == 0 {
                    Err(LossError::Invalid(format!(
                        "class {} never occurs: its weight would be NaN",
                        c + 1
                    )))
                } else {
                    Ok(n as f64 / d as f64)
                }
            })
            .collect::<Result<Vec<f64>>>()?;
        if freq.is_empty() {
            return Err(LossError::Invalid("no classes".into()));
        }
        let mut sorted = freq.clone();
        sorted.sort_by(f64::total_cmp);
        let k = sorted.len();
        let median =
            if k % 2 == 1 { sorted[k / 2] } else { 0.5 * (sorted[k / 2 - 1] + sorted[k / 2]) };
        Ok(freq.into_iter().map(|f| median / f).collect())
    }
}
