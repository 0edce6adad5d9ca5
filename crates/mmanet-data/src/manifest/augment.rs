//! [`ImageAugment`]: the CASIA-SURF training transform for a manifest's image modalities, run
//! by the same 8-bit pipeline as the SURF reader (decode, resize, rotated crop window, flip and
//! normalisation in one pass).

use serde::{Deserialize, Serialize};

use super::ManifestDecoder;
use crate::surf::{ImageOut, SurfAugment};
use crate::transform::{ChannelOrder, Normalise};
use crate::{DataError, Result};

/// `augment = { resize = 144, max_angle = 30, canvas_ratio = 0.8 }` on an image decoder: in
/// training, resize to `resize x resize` (bilinear) -> rotate by a uniform integer angle in
/// `[-max_angle, max_angle]` on a canvas of `canvas_ratio` -> a random `size` crop ->
/// horizontal flip with probability 0.5 when `flip` -> `(x / 255 - mean) / std`. The test
/// transform stays a resize to `size`. Image modalities with equal decoders share one set of
/// draws per sample (aligned cameras keep their alignment). Needs a square `size` and
/// `channels = 3` (grey files fill the three channels).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageAugment {
    /// Side of the first resize (144 in the CASIA-SURF reference).
    pub resize: usize,
    /// Largest rotation in degrees (30); 0: no rotation.
    #[serde(default = "thirty")]
    pub max_angle: i32,
    /// Canvas shrink factor of the rotation (0.8); 1 with `max_angle = 0`: a plain crop.
    #[serde(default = "canvas")]
    pub canvas_ratio: f64,
}

fn thirty() -> i32 {
    30
}
fn canvas() -> f64 {
    0.8
}

/// Image modalities that share one augmentation per sample.
#[derive(Clone, Debug)]
pub(super) struct AugmentGroup {
    /// The transform.
    pub augment: SurfAugment,
    /// Normalisation and channel order of the outputs.
    pub out: ImageOut,
    /// The modalities, in order.
    pub members: Vec<usize>,
}

impl ImageAugment {
    /// Checks the transform for an image decoder of `size` and `channels`; errors name
    /// `field`.
    pub(super) fn check(&self, field: &str, size: [usize; 2], channels: usize) -> Result<()> {
        let bad = |why: String| Err(DataError::field(field, why));
        if size[0] != size[1] {
            return bad(format!("needs a square size, got {size:?}"));
        }
        if channels != 3 {
            return bad("needs channels = 3 (grey files fill the three channels)".into());
        }
        if !(0..=180).contains(&self.max_angle) {
            return bad(format!("max_angle must be in 0..=180, got {}", self.max_angle));
        }
        if !(self.canvas_ratio > 0.0 && self.canvas_ratio <= 1.0) {
            return bad(format!("canvas_ratio must be in (0, 1], got {}", self.canvas_ratio));
        }
        self.surf(size[0], false).validate().or_else(|e| bad(e.to_string()))
    }

    fn surf(&self, crop: usize, flip: bool) -> SurfAugment {
        SurfAugment {
            train: true,
            resize: self.resize,
            crop,
            max_angle: self.max_angle,
            canvas_ratio: self.canvas_ratio,
            flip_prob: if flip { 0.5 } else { 0.0 },
        }
    }
}

/// The augmentation groups of `decoders` (the training split's): modalities with equal
/// augmented image decoders form one group, in order of their first member.
pub(super) fn groups<'a>(decoders: impl Iterator<Item = &'a ManifestDecoder>) -> Vec<AugmentGroup> {
    let mut keys: Vec<&ManifestDecoder> = Vec::new();
    let mut out: Vec<AugmentGroup> = Vec::new();
    for (m, d) in decoders.enumerate() {
        let ManifestDecoder::Image { size, mean, std, flip, augment: Some(a), .. } = d else {
            continue;
        };
        match keys.iter().position(|k| *k == d) {
            Some(g) => out[g].members.push(m),
            None => {
                keys.push(d);
                let norm = Normalise { mean: mean * 255.0, scale: 1.0 / (std * 255.0) };
                out.push(AugmentGroup {
                    augment: a.surf(size[0], *flip),
                    out: ImageOut { norm, order: ChannelOrder::Rgb },
                    members: vec![m],
                });
            }
        }
    }
    out
}
