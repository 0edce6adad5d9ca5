//! [`InputSpec`]: what a trained model needs to turn raw inputs into network inputs, as data.
//!
//! Every reader produces one ([`crate::DataSource::input_spec`]); the trainer writes it to the
//! run folder before the first epoch and prediction reads it, so prediction has no
//! per-data-set code. Per modality it holds the decoder and the test-time transform as
//! parameters (resize size, normalisation mean and std, standardiser statistics, sequence
//! length), plus the class names and the task.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cityscapes::{CityscapesDepth, read_cityscapes_depth};
use crate::split::Standardizer;
use crate::transform::{Image, read_bgr, read_gray_unchanged, read_rgb};
use crate::{DataError, ModalityData, Result, Task};

/// The format version of [`InputSpec`]; readers refuse another major version.
pub const INPUT_SPEC_VERSION: u32 = 1;

/// The inputs of a trained model: its modalities in the task's order, their decoders, the
/// class names and the task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// [`INPUT_SPEC_VERSION`].
    pub version: u32,
    /// The data set's short name.
    pub dataset: String,
    /// The task and its number of classes.
    pub task: Task,
    /// One name per class index (classification) or per label id `1..=C` (segmentation).
    pub classes: Vec<String>,
    /// One entry per modality, in the task's order (position `m` = mask column `m`).
    pub modalities: Vec<InputModality>,
}

/// One modality's name, symbol and decoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputModality {
    /// The modality's name (`rgb`).
    pub name: String,
    /// Its mask symbol (`R`).
    pub symbol: String,
    /// How a raw input becomes the network's input.
    pub decoder: Decoder,
}

/// The channel order an 8-bit image is read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorOrder {
    /// Three channels in BGR order, as `cv2.imread` gives them (grey files are replicated).
    Bgr,
    /// Three channels in RGB order (grey files are replicated).
    Rgb,
    /// One grey channel (colour files are converted; 16-bit files scaled to 8 bits).
    Grey,
}

/// How one modality's raw input is decoded and transformed at test time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Decoder {
    /// An 8-bit image file (PNG, JPEG): read in `color` order, resized bilinearly to `size`
    /// (`[height, width]`; `None` keeps the file's size), then `(x - mean[c]) / std[c]` per
    /// channel, as `[3, H, W]` (`[1, H, W]` for grey, which uses `mean[0]`, `std[0]`).
    Image {
        /// Channel order.
        color: ColorOrder,
        /// Output `[height, width]`; `None`: the input's size.
        size: Option<[usize; 2]>,
        /// Per-channel mean (on the 0-255 scale).
        mean: [f32; 3],
        /// Per-channel standard deviation (on the 0-255 scale).
        std: [f32; 3],
    },
    /// A single-channel PNG read unchanged (8 or 16 bit, e.g. depth in mm), resized
    /// nearest-neighbour to `size` when given, then `(x - mean) / std`, as `[1, H, W]`.
    GreyPng {
        /// Output `[height, width]`; `None`: the input's size.
        size: Option<[usize; 2]>,
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
    /// Cityscapes raw depth (float16 `.npy`, metres) or disparity (uint16 PNG), resized
    /// nearest-neighbour to `size` when given, normalised as the reader does (invalid 0 stays
    /// 0), as `[1, H, W]`.
    CityscapesDepth {
        /// Depth or disparity.
        depth: CityscapesDepth,
        /// Output `[height, width]`; `None`: the input's size.
        size: Option<[usize; 2]>,
    },
    /// Numbers (a text file of whitespace- or comma-separated values, or the values
    /// themselves): standardised with the training split's statistics when given, then viewed
    /// as `shape` (e.g. `[76]`, or `[1, 16, 15]` for a vector read by an image branch).
    Vector {
        /// The network input shape; its product is the number of values.
        shape: Vec<i64>,
        /// Per-feature training statistics, if the reader standardises.
        #[serde(default)]
        standardize: Option<Standardizer>,
    },
    /// A `[T, features]` sequence (a text file with one time step per line, or the values),
    /// standardised per feature when given, padded with zeros or cut to `max_len` steps; the
    /// true length is kept.
    Sequence {
        /// Padded length.
        max_len: usize,
        /// Features per step.
        features: usize,
        /// Per-feature training statistics, if the reader standardises.
        #[serde(default)]
        standardize: Option<Standardizer>,
    },
}

impl Decoder {
    /// The network input shape of one sample when it does not depend on the input (the zero
    /// placeholder of an absent modality); `None` for images kept at their own size.
    pub fn fixed_shape(&self) -> Option<Vec<i64>> {
        match self {
            Decoder::Image { color, size, .. } => {
                let c = if *color == ColorOrder::Grey { 1 } else { 3 };
                size.map(|[h, w]| vec![c, h as i64, w as i64])
            }
            Decoder::GreyPng { size, .. } | Decoder::CityscapesDepth { size, .. } => {
                size.map(|[h, w]| vec![1, h as i64, w as i64])
            }
            Decoder::Vector { shape, .. } => Some(shape.clone()),
            Decoder::Sequence { max_len, features, .. } => {
                Some(vec![*max_len as i64, *features as i64])
            }
        }
    }

    /// Channels of an image-like decoder (3 or 1); `None` for vectors and sequences.
    pub fn channels(&self) -> Option<usize> {
        match self {
            Decoder::Image { color: ColorOrder::Grey, .. } => Some(1),
            Decoder::Image { .. } => Some(3),
            Decoder::GreyPng { .. } | Decoder::CityscapesDepth { .. } => Some(1),
            Decoder::Vector { .. } | Decoder::Sequence { .. } => None,
        }
    }

    /// Whether the decoder reads a 2-D image.
    pub fn is_image(&self) -> bool {
        self.channels().is_some()
    }

    /// Decodes the file at `path` to the network's input.
    ///
    /// `size_override` replaces an image decoder's `size` (segmentation runs inputs at a
    /// multiple of the network's stride). Errors name the file.
    ///
    /// # Shapes
    /// The result is `[3, H, W]` / `[1, H, W]` for images, `shape` for vectors,
    /// `[max_len, features]` (with its true length) for sequences.
    pub fn decode_file(
        &self,
        path: &Path,
        size_override: Option<[usize; 2]>,
    ) -> Result<ModalityData> {
        match self {
            Decoder::Image { color, size, mean, std } => {
                let target = size_override.or(*size);
                let img = match (color, target) {
                    // The 8-bit resize of the training pipeline (bit-exact with OpenCV's).
                    (ColorOrder::Bgr, Some([h, w])) => {
                        read_bgr(path)?.resize_bilinear(h, w).to_f32()
                    }
                    (ColorOrder::Bgr, None) => read_bgr(path)?.to_f32(),
                    (ColorOrder::Rgb, _) => read_rgb(path)?,
                    (ColorOrder::Grey, _) => {
                        let img = read_grey8(path)?;
                        return image_input(img, target, true, &mean[..1], &std[..1]);
                    }
                };
                image_input(grey3(img), target, true, mean, std)
            }
            Decoder::GreyPng { size, mean, std } => {
                let img = read_gray_unchanged(path)?;
                image_input(img, size_override.or(*size), false, &[*mean], &[*std])
            }
            Decoder::CityscapesDepth { depth, size } => {
                let img = read_cityscapes_depth(path)?;
                let img = match size_override.or(*size) {
                    Some([h, w]) if (h, w) != (img.height, img.width) => img.resize_nearest(h, w),
                    _ => img,
                };
                let (h, w) = (img.height, img.width);
                let mut v = img.data;
                depth.normalize(&mut v);
                ModalityData::new(v, vec![1, h as i64, w as i64])
            }
            Decoder::Vector { .. } | Decoder::Sequence { .. } if is_npy(path) => {
                let a = crate::npy::read_npy_f32(path)?;
                self.check_npy_shape(&a.shape).map_err(|m| DataError::decode(path, m))?;
                self.decode_values(a.data).map_err(|e| name_file(e, path))
            }
            Decoder::Vector { .. } | Decoder::Sequence { .. } => {
                let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
                let values = parse_numbers(&text).map_err(|m| DataError::decode(path, m))?;
                self.decode_values(values).map_err(|e| name_file(e, path))
            }
        }
    }

    /// A `.npy` file's shape against the decoder's: an array of rank 2 or more must have
    /// exactly its shape; a vector any shape of as many values (`(n,)`, `(1, n)`, ...); a
    /// sequence `[T, features]`.
    fn check_npy_shape(&self, shape: &[usize]) -> std::result::Result<(), String> {
        let ok = match self {
            Decoder::Vector { shape: want, .. } if want.len() >= 2 => {
                shape.iter().map(|&d| d as i64).eq(want.iter().copied())
            }
            Decoder::Vector { shape: want, .. } => {
                shape.iter().product::<usize>() as i64 == want.iter().product::<i64>()
            }
            Decoder::Sequence { features, .. } => {
                matches!(shape, [_, f] if f == features) || (*features == 1 && shape.len() == 1)
            }
            _ => true,
        };
        if ok {
            return Ok(());
        }
        let want = match self {
            Decoder::Sequence { features, .. } => format!("[T, {features}]"),
            Decoder::Vector { shape, .. } => format!("{shape:?}"),
            _ => String::new(),
        };
        Err(format!("shape {shape:?}, expected {want}"))
    }

    /// Decodes raw numbers given directly (a manifest cell, a request) for a vector or
    /// sequence decoder (a sequence's steps one after the other).
    ///
    /// # Shapes
    /// `values` holds `product(shape)` numbers (vector) or `T * features` (sequence).
    pub fn decode_values(&self, mut values: Vec<f32>) -> Result<ModalityData> {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(DataError::shape(
                "values",
                "finite numbers",
                format!("value {} = {}", i + 1, values[i]),
            ));
        }
        match self {
            Decoder::Vector { shape, standardize } => {
                let n: i64 = shape.iter().product();
                if values.len() as i64 != n {
                    return Err(DataError::shape(
                        "values",
                        format!("{n} for {shape:?}"),
                        values.len(),
                    ));
                }
                if let Some(s) = standardize {
                    s.apply(&mut values);
                }
                ModalityData::new(values, shape.clone())
            }
            Decoder::Sequence { max_len, features, standardize } => {
                if *features == 0 || values.is_empty() || values.len() % features != 0 {
                    return Err(DataError::shape(
                        "sequence",
                        format!("rows of {features} features"),
                        values.len(),
                    ));
                }
                if let Some(s) = standardize {
                    for step in values.chunks_exact_mut(*features) {
                        s.apply(step);
                    }
                }
                let steps = (values.len() / features).min(*max_len);
                values.truncate(steps * features);
                values.resize(max_len * features, 0.0);
                ModalityData::sequence(
                    values,
                    vec![*max_len as i64, *features as i64],
                    steps as i64,
                )
            }
            other => Err(DataError::Config(format!(
                "a {} input is a file, not numbers",
                other.kind_name()
            ))),
        }
    }

    /// The decoder's `kind` as configs write it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Decoder::Image { .. } => "image",
            Decoder::GreyPng { .. } => "grey_png",
            Decoder::CityscapesDepth { .. } => "cityscapes_depth",
            Decoder::Vector { .. } => "vector",
            Decoder::Sequence { .. } => "sequence",
        }
    }
}

/// The most values one decoded input of one modality may hold (2^28: 1 GiB as f32), so that
/// a spec read from a file cannot size a sample's memory beyond what any real input needs
/// (a 4K RGB frame holds 2^24.6).
pub const MAX_INPUT_VALUES: u128 = 1 << 28;

impl Decoder {
    /// Checks what the decoder would allocate and divide by, before any input is decoded:
    /// sizes of at least 1 whose product is at most [`MAX_INPUT_VALUES`], finite means and
    /// finite non-zero standard deviations, standardizers as long as what they standardise.
    /// Errors name `field`.
    pub fn check(&self, field: &str) -> Result<()> {
        let bad = |message: String| Err(DataError::field(field, message));
        let dims: Vec<u128> = match self {
            Decoder::Image { color, size, .. } => {
                let c = if *color == ColorOrder::Grey { 1 } else { 3 };
                size.map_or_else(Vec::new, |[h, w]| vec![c, h as u128, w as u128])
            }
            Decoder::GreyPng { size, .. } | Decoder::CityscapesDepth { size, .. } => {
                size.map_or_else(Vec::new, |[h, w]| vec![h as u128, w as u128])
            }
            Decoder::Vector { shape, .. } => {
                if let Some(d) = shape.iter().find(|&&d| d < 1) {
                    return bad(format!("shape {shape:?}: dimension {d} is not at least 1"));
                }
                shape.iter().map(|&d| d as u128).collect()
            }
            Decoder::Sequence { max_len, features, .. } => {
                vec![*max_len as u128, *features as u128]
            }
        };
        if dims.contains(&0) {
            return bad(format!("a size of 0 in {dims:?}"));
        }
        let values = dims
            .iter()
            .try_fold(1u128, |n, &d| n.checked_mul(d).filter(|&n| n <= MAX_INPUT_VALUES));
        let Some(values) = values else {
            return bad(format!("sizes {dims:?} hold more than {MAX_INPUT_VALUES} values"));
        };
        let normalise_ok = |mean: &[f32], std: &[f32]| {
            mean.iter().all(|m| m.is_finite()) && std.iter().all(|s| s.is_finite() && *s != 0.0)
        };
        let standardizer = |s: &Option<Standardizer>, len: u128, of: &str| match s {
            Some(s) if s.mean.len() as u128 != len || s.std.len() as u128 != len => bad(format!(
                "standardize has {} means and {} deviations for {len} {of}",
                s.mean.len(),
                s.std.len()
            )),
            Some(s) if !normalise_ok(&s.mean, &s.std) => {
                bad("standardize needs finite means and finite, non-zero deviations".into())
            }
            _ => Ok(()),
        };
        match self {
            Decoder::Image { mean, std, .. } if !normalise_ok(mean, std) => {
                bad(format!("mean {mean:?} / std {std:?}: finite values and non-zero deviations"))
            }
            Decoder::GreyPng { mean, std, .. } if !normalise_ok(&[*mean], &[*std]) => {
                bad(format!("mean {mean} / std {std}: finite values and a non-zero deviation"))
            }
            Decoder::Vector { standardize, .. } => standardizer(standardize, values, "values"),
            Decoder::Sequence { features, standardize, .. } => {
                standardizer(standardize, *features as u128, "features")
            }
            Decoder::Image { .. } | Decoder::GreyPng { .. } | Decoder::CityscapesDepth { .. } => {
                Ok(())
            }
        }
    }
}

impl InputSpec {
    /// Checks the version, that there is a modality, and every decoder ([`Decoder::check`]).
    pub fn check(&self) -> Result<()> {
        if self.version != INPUT_SPEC_VERSION {
            return Err(DataError::field(
                "input_spec.version",
                format!("version {} is not {INPUT_SPEC_VERSION}", self.version),
            ));
        }
        if self.modalities.is_empty() {
            return Err(DataError::field("input_spec.modalities", "no modality"));
        }
        for (i, m) in self.modalities.iter().enumerate() {
            m.decoder.check(&format!("input_spec.modalities[{i}] ({}).decoder", m.name))?;
        }
        Ok(())
    }

    /// Class names `0`, `1`, ... for `n` classes (readers without names).
    pub fn numbered_classes(n: usize, first: usize) -> Vec<String> {
        (first..first + n).map(|k| k.to_string()).collect()
    }
}

fn is_npy(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// Puts the file's name in a shape error.
fn name_file(e: DataError, path: &Path) -> DataError {
    match e {
        DataError::Shape { context, expected, got } => {
            DataError::Shape { context: format!("{}: {context}", path.display()), expected, got }
        }
        other => other,
    }
}

/// An image as one 8-bit grey channel, values 0..=255.
fn read_grey8(path: &Path) -> Result<Image> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let img =
        image::load_from_memory(&bytes).map_err(|e| DataError::decode(path, e.to_string()))?;
    let g = img.to_luma8();
    let (w, h) = g.dimensions();
    Image::new(h as usize, w as usize, 1, g.into_raw().into_iter().map(f32::from).collect())
}

/// A grey image replicated to three channels (colour images pass unchanged).
fn grey3(img: Image) -> Image {
    if img.channels != 1 {
        return img;
    }
    let data = img.data.iter().flat_map(|&v| [v, v, v]).collect();
    Image::new(img.height, img.width, 3, data).expect("3 channels of the same size")
}

/// Resizes (bilinear for colour, nearest for grey maps) and normalises to CHW.
fn image_input(
    img: Image,
    size: Option<[usize; 2]>,
    bilinear: bool,
    mean: &[f32],
    std: &[f32],
) -> Result<ModalityData> {
    let img = match size {
        Some([h, w]) if (h, w) != (img.height, img.width) => {
            if bilinear {
                img.resize_bilinear(h, w)
            } else {
                img.resize_nearest(h, w)
            }
        }
        _ => img,
    };
    let (c, h, w) = (img.channels, img.height, img.width);
    ModalityData::new(img.to_chw_normalized(mean, std), vec![c as i64, h as i64, w as i64])
}

/// Whitespace- or comma-separated numbers; the error names the value's 1-based position.
pub fn parse_numbers(text: &str) -> std::result::Result<Vec<f32>, String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .enumerate()
        .map(|(i, tok)| tok.parse::<f32>().map_err(|e| format!("value {}: `{tok}`: {e}", i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(d: Decoder, says: &str) {
        let e = d.check("input_spec.modalities[0] (m).decoder").unwrap_err().to_string();
        assert!(e.contains("modalities[0] (m).decoder") && e.contains(says), "{e}");
    }

    fn standardizer(n: usize) -> Option<Standardizer> {
        Some(Standardizer { mean: vec![0.0; n], std: vec![1.0; n] })
    }

    #[test]
    fn decoders_that_would_overflow_allocate_or_index_past_their_tables_are_refused() {
        let image =
            |size, std| Decoder::Image { color: ColorOrder::Rgb, size, mean: [0.0; 3], std };
        assert!(image(Some([480, 640]), [1.0; 3]).check("f").is_ok());
        assert!(image(None, [1.0; 3]).check("f").is_ok());
        refused(image(Some([0, 640]), [1.0; 3]), "size of 0");
        refused(image(Some([1 << 20, 1 << 20]), [1.0; 3]), "more than");
        refused(image(Some([usize::MAX, usize::MAX]), [1.0; 3]), "more than");
        refused(image(Some([8, 8]), [1.0, 0.0, 1.0]), "non-zero");
        refused(image(Some([8, 8]), [1.0, f32::NAN, 1.0]), "finite");
        let vector = |shape: Vec<i64>, standardize| Decoder::Vector { shape, standardize };
        assert!(vector(vec![2, 3], standardizer(6)).check("f").is_ok());
        refused(vector(vec![2, -3], None), "dimension -3");
        refused(vector(vec![i64::MAX, i64::MAX], None), "more than");
        refused(vector(vec![6], standardizer(5)), "5 means");
        let mut zero_std = standardizer(6);
        zero_std.as_mut().unwrap().std[2] = 0.0;
        refused(vector(vec![6], zero_std), "non-zero");
        let sequence =
            |max_len, standardize| Decoder::Sequence { max_len, features: 4, standardize };
        assert!(sequence(100, standardizer(4)).check("f").is_ok());
        refused(sequence(0, None), "size of 0");
        refused(sequence(1 << 40, None), "more than");
        refused(sequence(100, standardizer(400)), "for 4 features");
        let grey = Decoder::GreyPng { size: Some([8, 8]), mean: 0.0, std: 0.0 };
        refused(grey, "non-zero");
    }
}
