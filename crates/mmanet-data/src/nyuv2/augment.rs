//! [`Nyuv2Augment`]: ESANet's segmentation transforms.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::transform::Image;
use crate::{DataError, Result};

/// NYUv2 refined-depth mean in mm (ESANet, docs/method.md §5.2).
pub const DEPTH_MEAN: f32 = 2841.9494;
/// NYUv2 refined-depth standard deviation in mm.
pub const DEPTH_STD: f32 = 1417.2594;
/// ImageNet channel means (RGB, on 0..1 values).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Normalised arrays of one segmentation sample.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentationArrays {
    /// `[3, H, W]` RGB, ImageNet-normalised.
    pub rgb: Vec<f32>,
    /// `[1, H, W]` depth, `(d - DEPTH_MEAN) / DEPTH_STD`.
    pub depth: Vec<f32>,
    /// `H * W` labels, 0 = void.
    pub labels: Vec<i64>,
    /// `H`.
    pub height: usize,
    /// `W`.
    pub width: usize,
}

/// The segmentation transform, one geometry for RGB, depth and labels.
///
/// - train: random rescale by `U[scale_min, scale_max]` (RGB bilinear, depth and labels
///   nearest) -> random `crop_height x crop_width` window (an image not larger than the crop
///   is resized to the crop instead, as ESANet does) -> HSV jitter on RGB (H, S times `U[0.9, 1.1]`, V plus `U[-25, 25]`)
///   -> horizontal flip with probability `flip_prob`.
/// - test: nothing (native resolution).
///
/// Then RGB `/255`, ImageNet normalisation; depth `(d - 2841.9494) / 1417.2594`.
#[derive(Clone, Debug, PartialEq)]
pub struct Nyuv2Augment {
    /// Random augmentation (train) or none (test).
    pub train: bool,
    /// Crop rows (480 in the reference).
    pub crop_height: usize,
    /// Crop columns (640).
    pub crop_width: usize,
    /// Smallest rescale factor (1.0).
    pub scale_min: f32,
    /// Largest rescale factor (1.4).
    pub scale_max: f32,
    /// Hue and saturation scale range (0.9..1.1).
    pub hs_range: (f32, f32),
    /// Value shift bound (25).
    pub v_shift: f32,
    /// Flip probability (0.5).
    pub flip_prob: f64,
}

impl Nyuv2Augment {
    /// Training transform with a `height x width` crop.
    pub fn train(crop_height: usize, crop_width: usize) -> Self {
        Nyuv2Augment {
            train: true,
            crop_height,
            crop_width,
            scale_min: 1.0,
            scale_max: 1.4,
            hs_range: (0.9, 1.1),
            v_shift: 25.0,
            flip_prob: 0.5,
        }
    }

    /// Evaluation: no augmentation.
    pub fn test() -> Self {
        Nyuv2Augment { train: false, ..Self::train(480, 640) }
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.train
            && (self.crop_height == 0
                || self.crop_width == 0
                || !(self.scale_min > 0.0 && self.scale_min <= self.scale_max))
        {
            return Err(DataError::Config(format!("invalid NYUv2 augmentation {self:?}")));
        }
        Ok(())
    }

    /// Transforms RGB (HWC, 0..255), depth (1 channel, mm) and labels (1 channel) together.
    /// Returns normalised `[3, H, W]` RGB, `[1, H, W]` depth and `H * W` labels.
    ///
    /// # Shapes
    /// Train: `H, W` = the crop; test: the input size.
    pub fn apply(
        &self,
        rgb: Image,
        depth: Image,
        labels: Image,
        rng: &mut ChaCha8Rng,
    ) -> Result<SegmentationArrays> {
        let (rgb, depth, labels) = self.transform_images(rgb, depth, labels, rng)?;
        Ok(SegmentationArrays {
            rgb: imagenet_chw(&rgb),
            depth: depth.to_chw_normalized(&[DEPTH_MEAN], &[DEPTH_STD]),
            labels: labels.data.iter().map(|v| *v as i64).collect(),
            height: rgb.height,
            width: rgb.width,
        })
    }

    /// The geometric and colour part of [`Nyuv2Augment::apply`] without normalisation (shared
    /// with the Cityscapes reader, whose depth normalisation differs).
    pub(crate) fn transform_images(
        &self,
        rgb: Image,
        depth: Image,
        labels: Image,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Image, Image, Image)> {
        let (mut rgb, mut depth, mut labels) = (rgb, depth, labels);
        if self.train {
            let s = rng.random_range(self.scale_min..=self.scale_max);
            let h = (s * rgb.height as f32).round() as usize;
            let w = (s * rgb.width as f32).round() as usize;
            rgb = rgb.resize_bilinear(h, w);
            depth = depth.resize_nearest(h, w);
            labels = labels.resize_nearest(h, w);
            let (ch, cw) = (self.crop_height, self.crop_width);
            if h <= ch || w <= cw {
                // ESANet's RandomCrop: too small to crop, so resize to the crop size instead.
                rgb = rgb.resize_bilinear(ch, cw);
                depth = depth.resize_nearest(ch, cw);
                labels = labels.resize_nearest(ch, cw);
            } else {
                // np.random.randint(0, h - crop): exclusive upper bound.
                let top = rng.random_range(0..h - ch);
                let left = rng.random_range(0..w - cw);
                rgb = rgb.crop(top, left, ch, cw)?;
                depth = depth.crop(top, left, ch, cw)?;
                labels = labels.crop(top, left, ch, cw)?;
            }
            let (lo, hi) = self.hs_range;
            let (hs, ss) = (rng.random_range(lo..=hi), rng.random_range(lo..=hi));
            let vs = rng.random_range(-self.v_shift..=self.v_shift);
            rgb.hsv_jitter(hs, ss, vs);
            if rng.random_bool(self.flip_prob.clamp(0.0, 1.0)) {
                rgb.flip_horizontal();
                depth.flip_horizontal();
                labels.flip_horizontal();
            }
        }
        Ok((rgb, depth, labels))
    }
}

/// RGB (HWC, 0..255) to `[3, H, W]`: `/255`, then ImageNet mean and std.
pub(crate) fn imagenet_chw(rgb: &Image) -> Vec<f32> {
    let mean: Vec<f32> = IMAGENET_MEAN.iter().map(|m| m * 255.0).collect();
    let std: Vec<f32> = IMAGENET_STD.iter().map(|s| s * 255.0).collect();
    rgb.to_chw_normalized(&mean, &std)
}
