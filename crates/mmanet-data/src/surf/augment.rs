//! [`SurfAugment`]: the reference's CASIA-SURF train and test transforms.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::transform::Image;
use crate::{DataError, Result};

/// The CASIA-SURF transform (mmanet_spec.md section 5.1), the same geometry for all
/// modalities of a sample.
///
/// - train: resize `resize x resize` (bilinear) -> rotate by an integer angle in
///   `[-max_angle, max_angle]` on the `canvas_ratio` canvas -> random `crop x crop` window ->
///   horizontal flip with probability `flip_prob` -> `(x - 127.5) / 128`.
/// - test: resize `crop x crop` -> `(x - 127.5) / 128`.
#[derive(Clone, Debug, PartialEq)]
pub struct SurfAugment {
    /// Random augmentation (train) or the deterministic test transform.
    pub train: bool,
    /// Side after the first resize (144 in the reference).
    pub resize: usize,
    /// Output side (112 in the reference).
    pub crop: usize,
    /// Largest rotation in degrees (30).
    pub max_angle: i32,
    /// Canvas shrink factor of the rotation (0.8).
    pub canvas_ratio: f64,
    /// Horizontal flip probability (0.5).
    pub flip_prob: f64,
}

impl SurfAugment {
    /// The reference training transform (144 -> rotate -> 112).
    pub fn train() -> Self {
        Self::sized(true, 144, 112)
    }

    /// The reference test transform (resize to 112).
    pub fn test() -> Self {
        Self::sized(false, 144, 112)
    }

    /// The same transform at another scale (tests use e.g. 40 -> 28).
    pub fn sized(train: bool, resize: usize, crop: usize) -> Self {
        SurfAugment { train, resize, crop, max_angle: 30, canvas_ratio: 0.8, flip_prob: 0.5 }
    }

    /// Checks that the smallest rotation canvas (at angle 0) still holds the crop.
    pub fn validate(&self) -> Result<()> {
        let canvas0 = (self.resize as f64 * self.canvas_ratio) as usize;
        if self.crop == 0 || (self.train && canvas0 < self.crop) {
            return Err(DataError::Config(format!(
                "SURF augmentation: crop {} must fit the rotation canvas int({} * {}) = {canvas0}",
                self.crop, self.resize, self.canvas_ratio
            )));
        }
        Ok(())
    }

    /// Transforms the modalities of one sample (HWC images, any size) to `[3, crop, crop]`
    /// normalised arrays.
    ///
    /// # Shapes
    /// Each returned vector holds `channels * crop * crop` values (`[C, crop, crop]`).
    pub fn apply(&self, images: &[Image], rng: &mut ChaCha8Rng) -> Result<Vec<Vec<f32>>> {
        let normalise = |img: &Image| img.to_chw_normalized(&[127.5], &[128.0]);
        if !self.train {
            return Ok(images
                .iter()
                .map(|i| normalise(&i.resize_bilinear(self.crop, self.crop)))
                .collect());
        }
        let angle = rng.random_range(-self.max_angle..=self.max_angle);
        let mut out_geometry: Option<(usize, usize)> = None;
        let flip = rng.random_bool(self.flip_prob.clamp(0.0, 1.0));
        let mut out = Vec::with_capacity(images.len());
        // Draw the crop offsets after seeing the canvas size (shared by all modalities).
        let mut offsets = None;
        for img in images {
            let rotated = img
                .resize_bilinear(self.resize, self.resize)
                .rotate_canvas(angle, self.canvas_ratio);
            let (h, w) = (rotated.height, rotated.width);
            if *out_geometry.get_or_insert((h, w)) != (h, w) {
                return Err(DataError::shape(
                    "SURF rotation canvas",
                    format!("{h}x{w}"),
                    "another size",
                ));
            }
            let (top, left) = *offsets.get_or_insert_with(|| {
                // np.random.randint(0, h - size): exclusive upper bound; 0 when equal.
                let y = if h > self.crop { rng.random_range(0..h - self.crop) } else { 0 };
                let x = if w > self.crop { rng.random_range(0..w - self.crop) } else { 0 };
                (y, x)
            });
            let mut c = rotated.crop(top, left, self.crop, self.crop)?;
            if flip {
                c.flip_horizontal();
            }
            out.push(normalise(&c));
        }
        Ok(out)
    }
}
