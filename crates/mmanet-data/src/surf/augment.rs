//! [`SurfAugment`]: the reference's CASIA-SURF train and test transforms.

use std::cell::RefCell;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::transform::{CanvasRotation, ChannelOrder, Image8, Normalise, Planar8, ResizeScratch};
use crate::{DataError, Result};

/// The CASIA-SURF transform (docs/method.md §5.1), the same geometry for all
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

    /// Transforms the modalities of one sample (HWC 8-bit images of 1 or 3 channels, any
    /// size) to `[3, crop, crop]` normalised arrays.
    ///
    /// # Shapes
    /// Each returned vector holds `3 * crop * crop` values (`[3, crop, crop]`).
    pub fn apply(&self, images: &[Image8], rng: &mut ChaCha8Rng) -> Result<Vec<Vec<f32>>> {
        let mut out = vec![vec![0f32; 3 * self.crop * self.crop]; images.len()];
        let mut slices: Vec<&mut [f32]> = out.iter_mut().map(Vec::as_mut_slice).collect();
        self.apply_into(images, rng, &mut slices)?;
        Ok(out)
    }

    /// [`SurfAugment::apply`] writing modality `m` into `outs[m]`, with per-thread scratch
    /// buffers (no allocation once warm).
    ///
    /// Random draws, in order: the angle (uniform integer in `[-max_angle, max_angle]`), the
    /// flip (Bernoulli `flip_prob`), the crop row then column (uniform in `0..canvas - crop`,
    /// none when equal), as `np.random` in the reference. Only the crop window of the rotated
    /// canvas is computed; crop, flip, `(x - 127.5) / 128` and HWC -> CHW are one write.
    ///
    /// # Shapes
    /// `outs[m]` holds `3 * crop * crop` values (`[3, crop, crop]`), one per image.
    pub fn apply_into(
        &self,
        images: &[Image8],
        rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
    ) -> Result<()> {
        self.apply_into_ordered(images, |_| ChannelOrder::Bgr, rng, outs)
    }

    /// [`SurfAugment::apply_into`] for images whose colour channels are in `order(m)` (BGR or
    /// RGB): the outputs are BGR either way.
    pub(crate) fn apply_into_ordered(
        &self,
        images: &[Image8],
        order: impl Fn(usize) -> ChannelOrder,
        rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
    ) -> Result<()> {
        self.apply_into_with(images, order, Normalise::SURF, rng, outs)
    }

    /// [`SurfAugment::apply_into_ordered`] normalising with `norm` instead of the reference's
    /// `(x - 127.5) / 128` (the manifest reader's image modalities).
    pub(crate) fn apply_into_with(
        &self,
        images: &[Image8],
        order: impl Fn(usize) -> ChannelOrder,
        norm: Normalise,
        rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
    ) -> Result<()> {
        self.apply_keeping(images, order, norm, rng, outs, |_| {})
    }

    /// [`SurfAugment::apply_into_with`] handing the deterministic stage's planes (see
    /// [`SurfAugment::random_stage`]) to `keep` before the random stage runs on them.
    pub(crate) fn apply_keeping(
        &self,
        images: &[Image8],
        order: impl Fn(usize) -> ChannelOrder,
        norm: Normalise,
        rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
        keep: impl FnOnce(&[Planar8]),
    ) -> Result<()> {
        self.check_outputs(images.len(), outs)?;
        if let Some(i) = images.iter().find(|i| !matches!(i.channels, 1 | 3) || i.data.is_empty()) {
            return Err(DataError::shape(
                "SURF image",
                "a non-empty image with 1 or 3 channels",
                format!("{}x{}x{}", i.height, i.width, i.channels),
            ));
        }
        let side = self.planes_side();
        SCRATCH.with_borrow_mut(|(resized, scratch)| {
            if resized.len() < images.len() {
                resized.resize_with(images.len(), Planar8::default);
            }
            let resized = &mut resized[..images.len()];
            for (m, (img, planes)) in images.iter().zip(resized.iter_mut()).enumerate() {
                img.resize_planar_ordered(side, side, planes, scratch, order(m));
            }
            keep(resized);
            self.random_stage(resized, norm, rng, outs)
        })
    }

    /// The side of the deterministic stage's planes: `resize` in training (the rotation's
    /// source), `crop` for the test transform (its output).
    pub(crate) fn planes_side(&self) -> usize {
        if self.train { self.resize } else { self.crop }
    }

    fn check_outputs(&self, n: usize, outs: &[&mut [f32]]) -> Result<()> {
        let side = self.crop;
        if outs.len() != n {
            return Err(DataError::shape("SURF outputs", n, outs.len()));
        }
        if let Some(o) = outs.iter().find(|o| o.len() != 3 * side * side) {
            return Err(DataError::shape("SURF output", format!("[3, {side}, {side}]"), o.len()));
        }
        Ok(())
    }

    /// The random stage, from the deterministic stage's planes (each image resized
    /// bilinearly to [`SurfAugment::planes_side`] squared, BGR plane order): in training the
    /// draws of [`SurfAugment::apply_into`] and the rotated, cropped, flipped window; for the
    /// test transform the planes themselves. Both normalised with `norm` into `outs`.
    ///
    /// # Shapes
    /// `planes[m]` is `[1 or 3, side, side]`; `outs[m]` holds `3 * crop * crop` values.
    pub(crate) fn random_stage(
        &self,
        planes: &[Planar8],
        norm: Normalise,
        rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
    ) -> Result<()> {
        self.check_outputs(planes.len(), outs)?;
        let side = self.crop;
        let want = self.planes_side();
        if let Some(p) = planes.iter().find(|p| p.height != want || p.width != want) {
            return Err(DataError::shape(
                "SURF planes",
                format!("{want}x{want}"),
                format!("{}x{}", p.height, p.width),
            ));
        }
        if !self.train {
            for (p, out) in planes.iter().zip(outs.iter_mut()) {
                write_chw(p, norm, out);
            }
            return Ok(());
        }
        let angle = rng.random_range(-self.max_angle..=self.max_angle);
        let flip = rng.random_bool(self.flip_prob.clamp(0.0, 1.0));
        if planes.is_empty() {
            return Ok(());
        }
        let rot = CanvasRotation::new(self.resize, self.resize, angle, self.canvas_ratio);
        let (h, w) = (rot.height, rot.width);
        if h < side || w < side {
            return Err(DataError::shape(
                "crop",
                format!("a window inside {h}x{w}"),
                format!("{side}x{side}"),
            ));
        }
        // np.random.randint(0, h - size): exclusive upper bound; 0 when equal.
        let top = if h > side { rng.random_range(0..h - side) } else { 0 };
        let left = if w > side { rng.random_range(0..w - side) } else { 0 };
        // One set of row coordinates for all modalities (same size, same rotation).
        rot.warp_windows_planar(planes, top, left, side, flip, norm, outs);
        Ok(())
    }
}

thread_local! {
    /// The resized images (planes) and the resize buffers of this worker thread.
    static SCRATCH: RefCell<(Vec<Planar8>, ResizeScratch)> = RefCell::default();
}

/// Planes (1 or 3) -> `[3, H, W]` normalised; a grey plane fills all three.
fn write_chw(img: &Planar8, norm: Normalise, out: &mut [f32]) {
    let hw = img.height * img.width;
    for (k, dst) in out.chunks_exact_mut(hw).enumerate() {
        for (d, &v) in dst.iter_mut().zip(img.plane(k.min(img.planes - 1))) {
            *d = (f32::from(v) - norm.mean) * norm.scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::{Stream, derive_rng};
    use crate::transform::Image;

    /// The straightforward f32 pipeline this crate used before the 8-bit path (resize, full
    /// canvas rotation, crop, flip, normalise, each step a new f32 image), with the same draws.
    fn reference_f32(aug: &SurfAugment, images: &[Image], rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
        let normalise = |img: &Image| img.to_chw_normalized(&[127.5], &[128.0]);
        let grey3 = |img: Image| {
            if img.channels == 3 {
                return img;
            }
            let data = img.data.iter().flat_map(|&v| [v, v, v]).collect();
            Image::new(img.height, img.width, 3, data).unwrap()
        };
        if !aug.train {
            return images
                .iter()
                .map(|i| normalise(&grey3(i.resize_bilinear(aug.crop, aug.crop))))
                .collect();
        }
        let angle = rng.random_range(-aug.max_angle..=aug.max_angle);
        let flip = rng.random_bool(aug.flip_prob);
        let mut offsets = None;
        images
            .iter()
            .map(|img| {
                let r = img.resize_bilinear(aug.resize, aug.resize).rotate_canvas(angle, 0.8);
                let (top, left) = *offsets.get_or_insert_with(|| {
                    let y = if r.height > aug.crop {
                        rng.random_range(0..r.height - aug.crop)
                    } else {
                        0
                    };
                    let x = if r.width > aug.crop {
                        rng.random_range(0..r.width - aug.crop)
                    } else {
                        0
                    };
                    (y, x)
                });
                let mut c = r.crop(top, left, aug.crop, aug.crop).unwrap();
                if flip {
                    c.flip_horizontal();
                }
                normalise(&grey3(c))
            })
            .collect()
    }

    fn noise(h: usize, w: usize, c: usize, seed: u64) -> Image8 {
        let mut rng = derive_rng(seed, 0, 0, Stream::Generate);
        // Smooth-ish content (as photographs are) plus noise, so that interpolation matters.
        let data = (0..h * w * c)
            .map(|i| {
                let (y, x) = ((i / c) / w, (i / c) % w);
                let base = 128.0 + 90.0 * ((x as f32 / 7.0).sin() * (y as f32 / 11.0).cos());
                (base + rng.random_range(-30.0..30.0f32)).clamp(0.0, 255.0) as u8
            })
            .collect();
        Image8::new(h, w, c, data).unwrap()
    }

    #[test]
    fn u8_pipeline_matches_the_f32_reference_within_rounding() {
        // Tolerance: the 8-bit path rounds to u8 after the resize and after the rotation, as
        // OpenCV does; the f32 path does not. Each rounding moves a value by at most half a
        // level, and the rotation interpolates between rounded neighbours, so a pixel may
        // differ by up to ~1.5 levels (3 / 256 after normalisation); on average far less.
        let images = [noise(50, 46, 3, 1), noise(50, 46, 1, 2), noise(50, 46, 1, 3)];
        let f32_images: Vec<Image> = images.iter().map(Image8::to_f32).collect();
        for (train, seeds) in [(true, 0..12u64), (false, 0..1)] {
            let aug = SurfAugment::sized(train, 40, 28);
            for seed in seeds {
                let mut r1 = derive_rng(seed, 0, 0, Stream::Augment);
                let mut r2 = r1.clone();
                let ours = aug.apply(&images, &mut r1).unwrap();
                let reference = reference_f32(&aug, &f32_images, &mut r2);
                assert_eq!(r1, r2, "same random draws");
                for (a, b) in ours.iter().zip(&reference) {
                    assert_eq!(a.len(), b.len());
                    let d: Vec<f32> = a.iter().zip(b).map(|(x, y)| (x - y).abs() * 128.0).collect();
                    let max = d.iter().copied().fold(0.0, f32::max);
                    let mean = d.iter().sum::<f32>() / d.len() as f32;
                    assert!(max <= 1.5 + 1e-3, "train {train}, seed {seed}: max {max} levels");
                    assert!(mean <= 0.35, "train {train}, seed {seed}: mean {mean} levels");
                }
            }
        }
    }

    #[test]
    fn outputs_are_checked_and_reusable() {
        let aug = SurfAugment::sized(true, 40, 28);
        let images = [noise(30, 30, 3, 4)];
        let mut rng = derive_rng(0, 0, 0, Stream::Augment);
        let mut short = vec![0f32; 10];
        assert!(aug.apply_into(&images, &mut rng, &mut [&mut short]).is_err());
        let two = [noise(30, 30, 3, 4), Image8::new(2, 2, 2, vec![0; 8]).unwrap()];
        assert!(aug.apply(&two, &mut rng).is_err());
        // Writing into a dirty buffer gives the same result as a fresh one.
        let mut buf = vec![f32::NAN; 3 * 28 * 28];
        let mut r1 = derive_rng(5, 0, 0, Stream::Augment);
        aug.apply_into(&images, &mut r1.clone(), &mut [&mut buf]).unwrap();
        assert_eq!(buf, aug.apply(&images, &mut r1).unwrap()[0]);
    }
}
