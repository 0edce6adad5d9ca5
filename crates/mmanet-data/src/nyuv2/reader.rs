//! [`Nyuv2Dataset`]: reads one split of the ESANet NYUv2 layout.

use std::path::{Path, PathBuf};

use mmanet_core::ModalitySet;
use rand_chacha::ChaCha8Rng;

use super::Nyuv2Augment;
use crate::dataset::index_error;
use crate::transform::{Image, read_gray_unchanged, read_rgb};
use crate::{DataError, Dataset, ModalityData, Result, Sample, Target, Task};

/// One NYUv2 split: modalities R, D; `C` classes plus void.
///
/// Samples: RGB `[3, H, W]` (ImageNet-normalised), depth `[1, H, W]`
/// (`(d - 2841.9494) / 1417.2594`), labels `H * W` (0 = void).
#[derive(Clone, Debug)]
pub struct Nyuv2Dataset {
    root: PathBuf,
    split: String,
    list: PathBuf,
    ids: Vec<(String, usize)>,
    num_classes: usize,
    modalities: ModalitySet,
    augment: Nyuv2Augment,
}

impl Nyuv2Dataset {
    /// Reads `<root>/<split>.txt` (one id per line, blank lines skipped) for `labels_<num_classes>`.
    /// Uses no augmentation until [`Nyuv2Dataset::with_augment`].
    pub fn open(root: impl AsRef<Path>, split: &str, num_classes: usize) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let list = root.join(format!("{split}.txt"));
        let text = std::fs::read_to_string(&list).map_err(|e| DataError::io(&list, e))?;
        let mut ids = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [] => {}
                [id] => ids.push((id.to_string(), i + 1)),
                _ => {
                    return Err(DataError::list(&list, i + 1, "expected one sample id per line"));
                }
            }
        }
        if ids.is_empty() || num_classes == 0 {
            return Err(DataError::list(&list, 1, "no sample ids (or zero classes)"));
        }
        Ok(Nyuv2Dataset {
            root,
            split: split.to_string(),
            list,
            ids,
            num_classes,
            modalities: crate::nyuv2::rgbd_modalities(),
            augment: Nyuv2Augment::test(),
        })
    }

    /// Sets the transform.
    pub fn with_augment(mut self, augment: Nyuv2Augment) -> Result<Self> {
        augment.validate()?;
        self.augment = augment;
        Ok(self)
    }

    /// The RGB, depth and label paths of an id.
    pub fn paths(&self, id: &str) -> [PathBuf; 3] {
        let dir = self.root.join(&self.split);
        [
            dir.join("rgb").join(format!("{id}.png")),
            dir.join("depth").join(format!("{id}.png")),
            dir.join(format!("labels_{}", self.num_classes)).join(format!("{id}.png")),
        ]
    }
}

impl Dataset for Nyuv2Dataset {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn modalities(&self) -> &ModalitySet {
        &self.modalities
    }

    fn task(&self) -> Task {
        Task::Segmentation { num_classes: self.num_classes }
    }

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        let (id, line) = self.ids.get(index).ok_or_else(|| index_error(index, self.ids.len()))?;
        let ctx = |e: DataError| DataError::list(&self.list, *line, format!("id {id}: {e}"));
        let [rp, dp, lp] = self.paths(id);
        let rgb = read_rgb(&rp).map_err(ctx)?;
        let depth = read_gray_unchanged(&dp).map_err(ctx)?;
        let labels = read_gray_unchanged(&lp).map_err(ctx)?;
        check_segmentation_files(&rgb, [(&depth, &dp), (&labels, &lp)], self.num_classes)?;
        let a = self.augment.apply(rgb, depth, labels, rng)?;
        let (h, w) = (a.height, a.width);
        let (hi, wi) = (h as i64, w as i64);
        Ok(Sample {
            inputs: vec![
                ModalityData::new(a.rgb, vec![3, hi, wi])?,
                ModalityData::new(a.depth, vec![1, hi, wi])?,
            ],
            target: Target::Segmentation { labels: a.labels, height: h, width: w },
        })
    }
}

/// Checks that depth and labels have the RGB size and that no label exceeds `num_classes`
/// (0 = void); errors name the file at fault.
pub(crate) fn check_segmentation_files(
    rgb: &Image,
    [(depth, dp), (labels, lp)]: [(&Image, &Path); 2],
    num_classes: usize,
) -> Result<()> {
    for (img, p) in [(depth, dp), (labels, lp)] {
        if (img.height, img.width) != (rgb.height, rgb.width) {
            return Err(DataError::shape(
                p.display().to_string(),
                format!("{}x{} (the RGB size)", rgb.height, rgb.width),
                format!("{}x{}", img.height, img.width),
            ));
        }
    }
    if let Some(bad) = labels.data.iter().find(|v| **v as usize > num_classes) {
        return Err(DataError::decode(lp, format!("label {bad} above the {num_classes} classes")));
    }
    Ok(())
}
