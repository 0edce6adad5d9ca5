//! Cityscapes in the ESANet "cityscapes-with-depth" layout (docs/method.md §8.4).
//!
//! ```text
//! <root>/<split>_rgb.txt             one `<city>/<file>` entry per line
//! <root>/<split>_depth_raw.txt       (or <split>_disparity_raw.txt)
//! <root>/<split>_labels_19.txt       (or <split>_labels_33.txt)
//! <root>/<split>/rgb/<entry>                 8-bit RGB png
//! <root>/<split>/depth_raw/<entry>           float16 .npy, metres (disparity converted)
//! <root>/<split>/disparity_raw/<entry>       uint16 png, the raw Cityscapes disparity
//! <root>/<split>/labels_19/<entry>           uint8 png: 0 = void, 1..=19 = trainId + 1
//! <root>/<split>/labels_33/<entry>           uint8 png: the official labelIds 0..=33
//! ```
//!
//! Splits are `train`, `valid` and `test`. Depth follows ESANet's `depth_mode = 'raw'`:
//! float16 depth is cast to f32 and values above 300 m are set to 0 (invalid), then
//! `(d - 31.7156) / 38.7028` (disparity: `(d - 9069.71) / 7178.34`) with invalid zeros
//! kept at 0. RGB is `/255` then ImageNet-normalised; augmentation is NYUv2's
//! ([`Nyuv2Augment`]) with the Cityscapes rescale range `[0.5, 2.0]`
//! ([`cityscapes_train_augment`]).

use std::path::{Path, PathBuf};

use mmanet_core::ModalitySet;
use rand_chacha::ChaCha8Rng;

use crate::dataset::index_error;
use crate::npy::read_npy_f32;
use crate::nyuv2::{Nyuv2Augment, check_segmentation_files, imagenet_chw};
use crate::transform::{Image, read_gray_unchanged, read_rgb};
use crate::{DataError, Dataset, ModalityData, Result, Sample, Target, Task};

/// Number of evaluated classes (void excluded): labels `1..=19`, 0 = void.
pub const CITYSCAPES_CLASSES: usize = 19;
/// Mean of the float16 depth in metres (ESANet `Cityscapes`, `disparity_instead_of_depth=False`).
pub const CITYSCAPES_DEPTH_MEAN: f32 = 31.715_62;
/// Standard deviation of the depth in metres.
pub const CITYSCAPES_DEPTH_STD: f32 = 38.702_81;
/// Mean of the raw uint16 disparity (ESANet `Cityscapes`, `disparity_instead_of_depth=True`).
pub const CITYSCAPES_DISPARITY_MEAN: f32 = 9_069.706;
/// Standard deviation of the raw disparity.
pub const CITYSCAPES_DISPARITY_STD: f32 = 7_178.336;
/// Depth above this many metres is invalid and set to 0 (ESANet `load_depth`).
pub const CITYSCAPES_MAX_DEPTH: f32 = 300.0;

/// `labels_19` value of each official Cityscapes labelId `0..=33`: trainId + 1 for the 19
/// evaluated classes, 0 (void) for the rest (cityscapesScripts `labels.py`,
/// `ignoreInEval = False`; ESANet `CLASS_MAPPING_REDUCED`).
pub const LABEL_ID_TO_LABELS_19: [u8; 34] = [
    0, 0, 0, 0, 0, 0,
    0, // unlabeled, ego vehicle, rectification border, out of roi, static, dynamic, ground
    1, 2, // road, sidewalk
    0, 0, // parking, rail track
    3, 4, 5, // building, wall, fence
    0, 0, 0, // guard rail, bridge, tunnel
    6, 0, // pole, polegroup
    7, 8, 9, 10, 11, // traffic light, traffic sign, vegetation, terrain, sky
    12, 13, 14, 15, 16, // person, rider, car, truck, bus
    0, 0, // caravan, trailer
    17, 18, 19, // train, motorcycle, bicycle
];

/// The `labels_19` value (0 = void, 1..=19) of an official labelId; ids outside `0..=33`
/// (e.g. -1, the license plate) are void.
pub fn labels_19_from_label_id(label_id: i64) -> u8 {
    usize::try_from(label_id).ok().and_then(|i| LABEL_ID_TO_LABELS_19.get(i)).copied().unwrap_or(0)
}

/// Which depth files a [`CityscapesDataset`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CityscapesDepth {
    /// `depth_raw/*.npy`: float16 metres (MMANet's `--raw_depth`).
    #[default]
    Depth,
    /// `disparity_raw/*.png`: the uint16 disparity as shipped (ESANet's default).
    Disparity,
}

impl CityscapesDepth {
    /// The folder and list-file stem (`depth_raw` or `disparity_raw`).
    pub fn dir(self) -> &'static str {
        match self {
            CityscapesDepth::Depth => "depth_raw",
            CityscapesDepth::Disparity => "disparity_raw",
        }
    }

    /// `(mean, std)` of the normalisation.
    pub fn stats(self) -> (f32, f32) {
        match self {
            CityscapesDepth::Depth => (CITYSCAPES_DEPTH_MEAN, CITYSCAPES_DEPTH_STD),
            CityscapesDepth::Disparity => (CITYSCAPES_DISPARITY_MEAN, CITYSCAPES_DISPARITY_STD),
        }
    }

    /// Normalises raw values in place as ESANet's `Normalize(depth_mode='raw')`: 0 (invalid)
    /// stays 0, everything else becomes `(d - mean) / std`.
    pub fn normalize(self, values: &mut [f32]) {
        let (mean, std) = self.stats();
        for v in values.iter_mut().filter(|v| **v != 0.0) {
            *v = (*v - mean) / std;
        }
    }
}

/// The Cityscapes training transform: NYUv2's with rescale `U[0.5, 2.0]` and a
/// `crop_height x crop_width` crop (reference: 512 x 1024).
pub fn cityscapes_train_augment(crop_height: usize, crop_width: usize) -> Nyuv2Augment {
    Nyuv2Augment { scale_min: 0.5, scale_max: 2.0, ..Nyuv2Augment::train(crop_height, crop_width) }
}

/// One entry of the three list files and the line it came from.
#[derive(Clone, Debug)]
struct Entry {
    rgb: String,
    depth: String,
    labels: String,
    line: usize,
}

/// One Cityscapes split: modalities R, D; 19 (or 33) classes plus void.
///
/// Samples: RGB `[3, H, W]` (ImageNet-normalised), depth `[1, H, W]` (see
/// [`CityscapesDepth::normalize`]), labels `H * W` (0 = void).
#[derive(Clone, Debug)]
pub struct CityscapesDataset {
    root: PathBuf,
    split: String,
    rgb_list: PathBuf,
    entries: Vec<Entry>,
    num_classes: usize,
    depth: CityscapesDepth,
    modalities: ModalitySet,
    augment: Nyuv2Augment,
    eval_size: Option<[usize; 2]>,
}

impl CityscapesDataset {
    /// Reads `<root>/<split>_rgb.txt`, `<split>_<depth dir>.txt` and
    /// `<split>_labels_<num_classes>.txt` (blank lines skipped; the three must list the same
    /// number of entries). `num_classes` is 19 (or 33 for the full label set). Uses no
    /// augmentation and the native resolution until [`CityscapesDataset::with_augment`] /
    /// [`CityscapesDataset::with_eval_size`].
    pub fn open(
        root: impl AsRef<Path>,
        split: &str,
        num_classes: usize,
        depth: CityscapesDepth,
    ) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let stems = ["rgb".to_string(), depth.dir().to_string(), format!("labels_{num_classes}")];
        let mut lists: Vec<(PathBuf, Vec<(String, usize)>)> = Vec::new();
        for stem in &stems {
            let path = root.join(format!("{split}_{stem}.txt"));
            let entries = read_list(&path)?;
            lists.push((path, entries));
        }
        let rgb_list = lists[0].0.clone();
        let n = lists[0].1.len();
        if n == 0 || num_classes == 0 {
            return Err(DataError::list(&rgb_list, 1, "no entries (or zero classes)"));
        }
        for (path, e) in &lists[1..] {
            if e.len() != n {
                return Err(DataError::shape(
                    path.display().to_string(),
                    format!("{n} entries (as {})", rgb_list.display()),
                    e.len(),
                ));
            }
        }
        let entries = (0..n)
            .map(|i| Entry {
                rgb: lists[0].1[i].0.clone(),
                depth: lists[1].1[i].0.clone(),
                labels: lists[2].1[i].0.clone(),
                line: lists[0].1[i].1,
            })
            .collect();
        Ok(CityscapesDataset {
            root,
            split: split.to_string(),
            rgb_list,
            entries,
            num_classes,
            depth,
            modalities: crate::nyuv2::rgbd_modalities(),
            augment: Nyuv2Augment::test(),
            eval_size: None,
        })
    }

    /// Sets the transform (e.g. [`cityscapes_train_augment`]).
    pub fn with_augment(mut self, augment: Nyuv2Augment) -> Result<Self> {
        augment.validate()?;
        self.augment = augment;
        Ok(self)
    }

    /// Without augmentation, resizes every sample to `[height, width]` (RGB bilinear, depth
    /// and labels nearest) before normalising, so evaluation runs at the training resolution
    /// (ESANet evaluates at 512 x 1024). `None` keeps the native size.
    pub fn with_eval_size(mut self, size: Option<[usize; 2]>) -> Result<Self> {
        if size.is_some_and(|[h, w]| h == 0 || w == 0) {
            return Err(DataError::Config(format!("Cityscapes eval size {size:?}")));
        }
        self.eval_size = size;
        Ok(self)
    }

    /// The RGB, depth and label paths of sample `index`.
    pub fn paths(&self, index: usize) -> Result<[PathBuf; 3]> {
        let e = self.entries.get(index).ok_or_else(|| index_error(index, self.entries.len()))?;
        let dir = self.root.join(&self.split);
        Ok([
            dir.join("rgb").join(&e.rgb),
            dir.join(self.depth.dir()).join(&e.depth),
            dir.join(format!("labels_{}", self.num_classes)).join(&e.labels),
        ])
    }

    /// The depth files read.
    pub fn depth(&self) -> CityscapesDepth {
        self.depth
    }
}

/// One `<city>/<file>` entry per line; an entry with spaces is an error naming the line.
fn read_list(path: &Path) -> Result<Vec<(String, usize)>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            [] => {}
            [entry] => out.push((entry.to_string(), i + 1)),
            _ => return Err(DataError::list(path, i + 1, "expected one `<city>/<file>` entry")),
        }
    }
    Ok(out)
}

/// Reads a depth file: float16/float32 `.npy` (`[H, W]` or `[H, W, 1]`, values above
/// 300 m set to 0) or a one-channel png kept at its bit depth.
pub fn read_cityscapes_depth(path: &Path) -> Result<Image> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
        let a = read_npy_f32(path)?;
        let (h, w) = match a.shape[..] {
            [h, w] | [h, w, 1] if h > 0 && w > 0 => (h, w),
            _ => {
                return Err(DataError::decode(
                    path,
                    format!("depth shape {:?}, expected [H, W] with H, W >= 1", a.shape),
                ));
            }
        };
        let data = a
            .data
            .into_iter()
            .map(|d| if d > CITYSCAPES_MAX_DEPTH || !d.is_finite() { 0.0 } else { d })
            .collect();
        return Image::new(h, w, 1, data);
    }
    read_gray_unchanged(path)
}

impl Dataset for CityscapesDataset {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn modalities(&self) -> &ModalitySet {
        &self.modalities
    }

    fn task(&self) -> Task {
        Task::Segmentation { num_classes: self.num_classes }
    }

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        let [rp, dp, lp] = self.paths(index)?;
        let line = self.entries[index].line;
        let ctx = |e: DataError| DataError::list(&self.rgb_list, line, e.to_string());
        let mut rgb = read_rgb(&rp).map_err(ctx)?;
        let mut depth = read_cityscapes_depth(&dp).map_err(ctx)?;
        let mut labels = read_gray_unchanged(&lp).map_err(ctx)?;
        check_segmentation_files(&rgb, [(&depth, &dp), (&labels, &lp)], self.num_classes)
            .map_err(ctx)?;
        if let (false, Some([h, w])) = (self.augment.train, self.eval_size) {
            rgb = rgb.resize_bilinear(h, w);
            depth = depth.resize_nearest(h, w);
            labels = labels.resize_nearest(h, w);
        }
        let (rgb, depth, labels) = self.augment.transform_images(rgb, depth, labels, rng)?;
        let (h, w) = (rgb.height, rgb.width);
        let (hi, wi) = (h as i64, w as i64);
        let mut d = depth.data;
        self.depth.normalize(&mut d);
        Ok(Sample {
            inputs: vec![
                ModalityData::new(imagenet_chw(&rgb), vec![3, hi, wi])?,
                ModalityData::new(d, vec![1, hi, wi])?,
            ],
            target: Target::Segmentation {
                labels: labels.data.iter().map(|v| *v as i64).collect(),
                height: h,
                width: w,
            },
        })
    }
}

/// Cityscapes in the ESANet "cityscapes-with-depth" layout (`{split}_rgb.txt`,
/// `{split}_depth_raw.txt` or `{split}_disparity_raw.txt`, `{split}_labels_<C>.txt`,
/// `{split}/{rgb,depth_raw,disparity_raw,labels_<C>}/<city>/<file>`); splits `train` and
/// `valid`. Validation (mining, model selection) and the final test both read `valid`, as the
/// reference does (Cityscapes' test labels are not public).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CityscapesSource {
    /// Data root.
    pub root: PathBuf,
    /// Number of classes (19, void excluded; 33 for the full label set).
    pub num_classes: usize,
    /// `depth` (float16 metres, `depth_raw/*.npy`, MMANet's `--raw_depth`) or `disparity`
    /// (uint16 `disparity_raw/*.png`).
    #[serde(default)]
    pub depth: CityscapesDepth,
    /// Training crop `[height, width]` (reference: 512 x 1024) after a random rescale by
    /// `U[0.5, 2.0]`.
    pub crop: [usize; 2],
    /// Evaluation resize `[height, width]` (RGB bilinear, depth and labels nearest); absent:
    /// the native 1024 x 2048.
    #[serde(default)]
    pub eval_size: Option<[usize; 2]>,
}

impl crate::DataSource for CityscapesSource {
    fn name(&self) -> &'static str {
        "cityscapes"
    }

    fn check(&self) -> Result<()> {
        if !matches!(self.num_classes, 19 | 33) {
            return Err(DataError::field(
                "num_classes",
                format!("Cityscapes has 19 (or 33) classes, got {}", self.num_classes),
            ));
        }
        if self.eval_size.is_some_and(|[h, w]| h == 0 || w == 0) {
            return Err(DataError::field("eval_size", "sides must be >= 1"));
        }
        cityscapes_train_augment(self.crop[0], self.crop[1])
            .validate()
            .map_err(|e| DataError::field("crop", e.to_string()))
    }

    fn root_mut(&mut self) -> Option<&mut PathBuf> {
        Some(&mut self.root)
    }

    fn open(&self, split: crate::Split, _seed: u64) -> Result<std::sync::Arc<dyn Dataset>> {
        let train = split == crate::Split::Train;
        let data = CityscapesDataset::open(
            &self.root,
            if train { "train" } else { "valid" },
            self.num_classes,
            self.depth,
        )?;
        Ok(std::sync::Arc::new(if train {
            data.with_augment(cityscapes_train_augment(self.crop[0], self.crop[1]))?
        } else {
            data.with_eval_size(self.eval_size)?
        }))
    }

    /// Validation and test both read `valid` (the test split has no public labels; the
    /// reference reports on `valid`).
    fn validation_is_test(&self) -> bool {
        true
    }

    fn input_spec(&self, _seed: u64) -> Result<crate::InputSpec> {
        use crate::input_spec::{Decoder, INPUT_SPEC_VERSION, InputModality, InputSpec};
        let set = crate::nyuv2::rgbd_modalities();
        let m = |k: usize, decoder: Decoder| InputModality {
            name: set.modalities()[k].name().to_string(),
            symbol: set.modalities()[k].symbol().to_string(),
            decoder,
        };
        Ok(InputSpec {
            version: INPUT_SPEC_VERSION,
            dataset: self.name().to_string(),
            task: Task::Segmentation { num_classes: self.num_classes },
            classes: InputSpec::numbered_classes(self.num_classes, 1),
            modalities: vec![
                m(0, crate::nyuv2::imagenet_rgb(self.eval_size)),
                m(1, Decoder::CityscapesDepth { depth: self.depth, size: self.eval_size }),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_ids_map_to_train_ids_plus_one() {
        // cityscapesScripts labels.py: road id 7 -> trainId 0, sky 23 -> 10, bicycle 33 -> 18.
        assert_eq!(labels_19_from_label_id(7), 1);
        assert_eq!(labels_19_from_label_id(23), 11);
        assert_eq!(labels_19_from_label_id(33), 19);
        // Not evaluated: parking 9, polegroup 18, caravan 29; out of range: license plate -1.
        for id in [0, 9, 18, 29, -1, 34] {
            assert_eq!(labels_19_from_label_id(id), 0, "id {id}");
        }
        // Each of the 19 classes appears exactly once.
        let mut seen: Vec<u8> = LABEL_ID_TO_LABELS_19.iter().copied().filter(|v| *v > 0).collect();
        seen.sort_unstable();
        assert_eq!(seen, (1..=19).collect::<Vec<u8>>());
    }

    #[test]
    fn depth_normalisation_keeps_invalid_zeros() {
        // ESANet's stats: (31.7156 - 31.7156) / 38.7028 = 0, (70.4184 - 31.7156) / 38.7028 = 1.
        let mut v = [0.0, 31.715_62, 70.418_43];
        CityscapesDepth::Depth.normalize(&mut v);
        assert_eq!(v[..2], [0.0, 0.0]);
        assert!((v[2] - 1.0).abs() < 1e-5, "{v:?}");
        let mut d = [0.0, 9_069.706 - 7_178.336];
        CityscapesDepth::Disparity.normalize(&mut d);
        assert_eq!(d[0], 0.0);
        assert!((d[1] + 1.0).abs() < 1e-6);
    }

    /// Writes `n` samples of `h x w` of split `train` in the official layout: RGB pixel
    /// `(y, x)` = `(10 y, 10 x, 7)`, float16 depth cycling through 0 (invalid), 32 m, 64 m and
    /// 400 m (> 300: invalid), labels `(y * w + x) % 20` (0 = void).
    fn write_layout(root: &Path, n: usize, h: usize, w: usize) {
        // float16 bits: 32.0 = 0x5000, 64.0 = 0x5400, 400.0 = 0x5e40.
        let depth_bits = [0u16, 0x5000, 0x5400, 0x5e40];
        let (mut rgb_l, mut dep_l, mut lab_l) = (String::new(), String::new(), String::new());
        for i in 0..n {
            let stem = format!("aachen/aachen_{i:06}_000019");
            let split = root.join("train");
            for d in ["rgb/aachen", "depth_raw/aachen", "disparity_raw/aachen", "labels_19/aachen"]
            {
                std::fs::create_dir_all(split.join(d)).unwrap();
            }
            let rgb = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
                image::Rgb([10 * y as u8, 10 * x as u8, 7])
            });
            rgb.save(split.join("rgb").join(format!("{stem}_leftImg8bit.png"))).unwrap();
            let body: Vec<u8> = (0..h * w).flat_map(|p| depth_bits[p % 4].to_le_bytes()).collect();
            let dpath = split.join("depth_raw").join(format!("{stem}_depth.npy"));
            crate::npy::write_npy(&dpath, "<f2", &[h, w], &body).unwrap();
            let disp =
                image::ImageBuffer::<image::Luma<u16>, _>::from_fn(w as u32, h as u32, |x, _| {
                    image::Luma([if x == 0 { 0 } else { 9_070 }])
                });
            disp.save(split.join("disparity_raw").join(format!("{stem}_disparity.png"))).unwrap();
            let labels = image::GrayImage::from_fn(w as u32, h as u32, |x, y| {
                image::Luma([((y as usize * w + x as usize) % 20) as u8])
            });
            labels
                .save(split.join("labels_19").join(format!("{stem}_gtFine_labelIds.png")))
                .unwrap();
            rgb_l += &format!("{stem}_leftImg8bit.png\n");
            dep_l += &format!("{stem}_depth.npy\n");
            lab_l += &format!("{stem}_gtFine_labelIds.png\n");
        }
        let disp_l = dep_l.replace("_depth.npy", "_disparity.png");
        std::fs::write(root.join("train_rgb.txt"), rgb_l).unwrap();
        std::fs::write(root.join("train_depth_raw.txt"), dep_l).unwrap();
        std::fs::write(root.join("train_disparity_raw.txt"), disp_l).unwrap();
        std::fs::write(root.join("train_labels_19.txt"), lab_l).unwrap();
    }

    fn rng() -> ChaCha8Rng {
        rand::SeedableRng::seed_from_u64(3)
    }

    #[test]
    fn reads_the_official_layout_with_depth_and_void() {
        let dir = tempfile::tempdir().unwrap();
        let (h, w) = (6, 10);
        write_layout(dir.path(), 2, h, w);
        let data =
            CityscapesDataset::open(dir.path(), "train", 19, CityscapesDepth::Depth).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data.task(), Task::Segmentation { num_classes: 19 });
        let s = data.get(1, &mut rng()).unwrap();
        assert_eq!(s.inputs[0].shape, [3, h as i64, w as i64]);
        assert_eq!(s.inputs[1].shape, [1, h as i64, w as i64]);
        let Target::Segmentation { labels, height, width } = &s.target else { panic!() };
        assert_eq!((*height, *width), (h, w));
        // Labels pass through unchanged: 0 stays void, 19 is the last class.
        let want: Vec<i64> = (0..h * w).map(|p| (p % 20) as i64).collect();
        assert_eq!(labels, &want);
        // Depth: 0 and 400 m are invalid (0); 32 m and 64 m are (d - 31.7156) / 38.7028.
        let d = &s.inputs[1].data;
        let norm = |m: f32| (m - CITYSCAPES_DEPTH_MEAN) / CITYSCAPES_DEPTH_STD;
        assert_eq!(d[0], 0.0);
        assert!((d[1] - norm(32.0)).abs() < 1e-6 && (d[2] - norm(64.0)).abs() < 1e-6);
        assert_eq!(d[3], 0.0);
        // RGB pixel (1, 2) = (10, 20, 7): /255 then ImageNet mean/std, channel-first.
        let r = &s.inputs[0].data;
        let p = w + 2;
        assert!((r[p] - (10.0 / 255.0 - 0.485) / 0.229).abs() < 1e-5);
        assert!((r[h * w + p] - (20.0 / 255.0 - 0.456) / 0.224).abs() < 1e-5);
        assert!((r[2 * h * w + p] - (7.0 / 255.0 - 0.406) / 0.225).abs() < 1e-5);
    }

    #[test]
    fn reads_disparity_resizes_for_eval_and_crops_for_training() {
        let dir = tempfile::tempdir().unwrap();
        write_layout(dir.path(), 1, 8, 16);
        let disp = CityscapesDataset::open(dir.path(), "train", 19, CityscapesDepth::Disparity)
            .unwrap()
            .get(0, &mut rng())
            .unwrap();
        let d = &disp.inputs[1].data;
        // Column 0 holds disparity 0 (invalid, kept 0); 9070 -> (9070 - 9069.706) / 7178.336.
        assert_eq!(d[0], 0.0);
        assert!((d[1] - (9_070.0 - 9_069.706) / 7_178.336).abs() < 1e-6);
        let eval = CityscapesDataset::open(dir.path(), "train", 19, CityscapesDepth::Depth)
            .unwrap()
            .with_eval_size(Some([4, 8]))
            .unwrap();
        let s = eval.get(0, &mut rng()).unwrap();
        assert_eq!(s.inputs[0].shape, [3, 4, 8]);
        let Target::Segmentation { labels, .. } = &s.target else { panic!() };
        // Nearest halving keeps the even source pixels: (y, x) -> (2y, 2x).
        assert_eq!(labels[8 + 3], ((2 * 16 + 6) % 20) as i64);
        let train = CityscapesDataset::open(dir.path(), "train", 19, CityscapesDepth::Depth)
            .unwrap()
            .with_augment(cityscapes_train_augment(4, 6))
            .unwrap();
        let a = train.get(0, &mut rng()).unwrap();
        let b = train.get(0, &mut rng()).unwrap();
        assert_eq!(a.inputs[1].shape, [1, 4, 6]);
        assert_eq!(a, b, "same rng seed, same sample");
        let Target::Segmentation { labels, .. } = &a.target else { panic!() };
        assert!(labels.iter().all(|l| (0..=19).contains(l)));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write_layout(dir.path(), 2, 4, 4);
        let data =
            CityscapesDataset::open(dir.path(), "train", 19, CityscapesDepth::Depth).unwrap();
        let [_, depth, _] = data.paths(1).unwrap();
        std::fs::remove_file(&depth).unwrap();
        let e = data.get(1, &mut rng()).unwrap_err().to_string();
        assert!(
            e.contains("train_rgb.txt:2") && e.contains("aachen_000001_000019_depth.npy"),
            "{e}"
        );
        // A label above 19.
        let [_, _, lab] = data.paths(0).unwrap();
        image::GrayImage::from_pixel(4, 4, image::Luma([20])).save(&lab).unwrap();
        let e = data.get(0, &mut rng()).unwrap_err().to_string();
        assert!(e.contains("label 20") && e.contains("gtFine_labelIds.png"), "{e}");
        // Lists of different lengths, and a malformed line.
        std::fs::write(dir.path().join("train_labels_19.txt"), "a.png\n").unwrap();
        let e = CityscapesDataset::open(dir.path(), "train", 19, CityscapesDepth::Depth)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train_labels_19.txt"), "{e}");
        std::fs::write(dir.path().join("train_rgb.txt"), "a.png\nb.png c.png\n").unwrap();
        let e = CityscapesDataset::open(dir.path(), "train", 19, CityscapesDepth::Depth)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train_rgb.txt:2"), "{e}");
        let e = CityscapesDataset::open(dir.path(), "valid", 19, CityscapesDepth::Depth)
            .unwrap_err()
            .to_string();
        assert!(e.contains("valid_rgb.txt"), "{e}");
    }
}
