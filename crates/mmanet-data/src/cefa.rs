//! CASIA-SURF CeFA, race protocol `race_prot_rdi_4@5` (docs/method.md §8.2).
//!
//! Layout: `<root>/<Race>/<any>/<video>/<modal>/<frames>` with Race in {AF, CA, EA}, video
//! names `R_ID_Dev_Sess_PAI` (e.g. `1_000_1_1_1`; R 1 = AF, 2 = CA, 3 = EA; PAI 1 = real,
//! 2 = cloth/print, 3 = photo, 4 = screen) and modal folders `profile` (RGB), `depth`, `ir`.
//! Every frame is a sample; the frame lists of the three modalities are sorted by path and
//! aligned by position. Labels follow the reference: **real = 0, attack = 1** (the opposite of
//! CASIA-SURF). Images are read as 3-channel BGR and transformed like CASIA-SURF
//! ([`SurfAugment`]).

use std::path::{Path, PathBuf};

use mmanet_core::ModalitySet;
use rand_chacha::ChaCha8Rng;

use crate::dataset::{get_via_into, index_error};
use crate::surf::SurfAugment;
use crate::surf::read_augment_into;
use crate::{DataError, Dataset, Result, Sample, Target, Task};

/// A split of protocol `race_prot_rdi_4@5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CefaSplit {
    /// EA, subject IDs 0-199, devices {1, 3}, sessions {1, 2}, PAI {1, 4}.
    Train,
    /// EA, IDs 200-299, PAI {1, 4}.
    Dev,
    /// AF, IDs 300-499, PAI {1, 2}.
    Test,
}

/// The parsed name `R_ID_Dev_Sess_PAI` of a video folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CefaVideo {
    /// Race code: 1 = AF, 2 = CA, 3 = EA.
    pub race: u32,
    /// Subject ID.
    pub id: u32,
    /// Device.
    pub device: u32,
    /// Session.
    pub session: u32,
    /// Presentation attack instrument: 1 = real.
    pub pai: u32,
}

impl CefaVideo {
    /// Parses `R_ID_Dev_Sess_PAI`; `None` for other names.
    pub fn parse(name: &str) -> Option<Self> {
        let v: Vec<u32> = name.split('_').map(|p| p.parse().ok()).collect::<Option<_>>()?;
        match v.as_slice() {
            [race, id, device, session, pai] => Some(CefaVideo {
                race: *race,
                id: *id,
                device: *device,
                session: *session,
                pai: *pai,
            }),
            _ => None,
        }
    }

    /// Whether the protocol puts this video in `split`.
    pub fn in_split(&self, split: CefaSplit) -> bool {
        match split {
            CefaSplit::Train => {
                self.race == 3
                    && self.id < 200
                    && matches!(self.device, 1 | 3)
                    && matches!(self.session, 1 | 2)
                    && matches!(self.pai, 1 | 4)
            }
            CefaSplit::Dev => {
                self.race == 3 && (200..300).contains(&self.id) && matches!(self.pai, 1 | 4)
            }
            CefaSplit::Test => {
                self.race == 1 && (300..500).contains(&self.id) && matches!(self.pai, 1 | 2)
            }
        }
    }
}

/// The modal folders, in the canonical R, D, I order.
const MODALS: [&str; 3] = ["profile", "depth", "ir"];

/// One CeFA split: every frame of every selected video.
#[derive(Clone, Debug)]
pub struct CefaDataset {
    frames: Vec<([PathBuf; 3], i64)>,
    modalities: ModalitySet,
    augment: SurfAugment,
}

impl CefaDataset {
    /// Scans `root` for the videos of `split`. Uses the test transform until
    /// [`CefaDataset::with_augment`]. Fails when the three modalities of a video hold different
    /// numbers of frames, or when no video matches.
    pub fn open(root: impl AsRef<Path>, split: CefaSplit) -> Result<Self> {
        let root = root.as_ref();
        let race = match split {
            CefaSplit::Train | CefaSplit::Dev => "EA",
            CefaSplit::Test => "AF",
        };
        let mut videos = Vec::new();
        for subject in sorted_dirs(&root.join(race))? {
            for video in sorted_dirs(&subject)? {
                let name = video.file_name().map(|n| n.to_string_lossy().into_owned());
                if let Some(v) = name.as_deref().and_then(CefaVideo::parse) {
                    if v.in_split(split) {
                        videos.push((video, v));
                    }
                }
            }
        }
        let mut frames = Vec::new();
        for (dir, v) in &videos {
            let lists =
                MODALS.iter().map(|m| sorted_files(&dir.join(m))).collect::<Result<Vec<_>>>()?;
            let n = lists[0].len();
            if let Some((k, l)) = lists.iter().enumerate().find(|(_, l)| l.len() != n) {
                return Err(DataError::shape(
                    format!("{}: frames of `{}`", dir.display(), MODALS[k]),
                    n,
                    l.len(),
                ));
            }
            let label = i64::from(v.pai != 1);
            let [r, d, ir] = <[Vec<PathBuf>; 3]>::try_from(lists).expect("three modals");
            for ((r, d), ir) in r.into_iter().zip(d).zip(ir) {
                frames.push(([r, d, ir], label));
            }
        }
        if frames.is_empty() {
            return Err(DataError::Config(format!(
                "{}: no CeFA frames for split {split:?}",
                root.join(race).display()
            )));
        }
        Ok(CefaDataset {
            frames,
            modalities: crate::surf::surf_modalities(),
            augment: SurfAugment::test(),
        })
    }

    /// Sets the transform.
    pub fn with_augment(mut self, augment: SurfAugment) -> Result<Self> {
        augment.validate()?;
        self.augment = augment;
        Ok(self)
    }

    /// Number of attack (label 1) frames.
    pub fn num_attack(&self) -> usize {
        self.frames.iter().filter(|f| f.1 == 1).count()
    }
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}

fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

impl Dataset for CefaDataset {
    fn len(&self) -> usize {
        self.frames.len()
    }

    fn modalities(&self) -> &ModalitySet {
        &self.modalities
    }

    fn task(&self) -> Task {
        Task::Classification { num_classes: 2 }
    }

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        get_via_into(self, index, rng)
    }

    fn fixed_shapes(&self) -> Option<Vec<Vec<i64>>> {
        let side = self.augment.crop as i64;
        Some(vec![vec![3, side, side]; 3])
    }

    fn get_into(
        &self,
        index: usize,
        rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
    ) -> Result<Target> {
        let (paths, label) =
            self.frames.get(index).ok_or_else(|| index_error(index, self.frames.len()))?;
        read_augment_into(paths, &self.augment, rng, outs, |e| e)?;
        Ok(Target::Class(*label))
    }
}

/// CASIA-SURF CeFA (race subset), protocol `race_prot_rdi_4@5`: train = EA IDs 0-199, val =
/// the 'dev' split (EA 200-299), test = AF 300-499; label 0 = real.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CefaSource {
    /// `<root>/<Race>/<Race>-<ID>/<video>/{profile,depth,ir}/<frames>`.
    pub root: std::path::PathBuf,
    /// Side after the first resize (reference: 144).
    pub resize: usize,
    /// Network input side (reference: 112).
    pub crop: usize,
}

impl crate::DataSource for CefaSource {
    fn name(&self) -> &'static str {
        "cefa"
    }

    fn check(&self) -> Result<()> {
        crate::surf::check_sizes(self.resize, self.crop)
    }

    fn root_mut(&mut self) -> Option<&mut std::path::PathBuf> {
        Some(&mut self.root)
    }

    fn open(&self, split: crate::Split, _seed: u64) -> Result<std::sync::Arc<dyn Dataset>> {
        let s = match split {
            crate::Split::Train => CefaSplit::Train,
            crate::Split::Val => CefaSplit::Dev,
            crate::Split::Test => CefaSplit::Test,
        };
        let augment = SurfAugment::sized(split == crate::Split::Train, self.resize, self.crop);
        Ok(std::sync::Arc::new(CefaDataset::open(&self.root, s)?.with_augment(augment)?))
    }

    fn input_spec(&self, _seed: u64) -> Result<crate::InputSpec> {
        // Label 0 is real in CeFA.
        Ok(crate::surf::surf_input_spec(self.name(), self.crop, ["real", "attack"]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeding::{Stream, derive_rng};

    fn video(root: &Path, race: &str, name: &str, frames: [usize; 3]) {
        for (m, n) in MODALS.iter().zip(frames) {
            let dir = root.join(race).join(format!("{race}-x")).join(name).join(m);
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..n {
                image::GrayImage::from_pixel(6, 6, image::Luma([f as u8 * 40]))
                    .save(dir.join(format!("{f:04}.jpg")))
                    .unwrap();
            }
        }
    }

    #[test]
    fn protocol_selects_videos_and_labels_attacks() {
        assert_eq!(
            CefaVideo::parse("3_012_1_2_4"),
            Some(CefaVideo { race: 3, id: 12, device: 1, session: 2, pai: 4 })
        );
        assert_eq!(CefaVideo::parse("3_012_1_2"), None);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        video(root, "EA", "3_001_1_1_1", [2, 2, 2]); // train, real
        video(root, "EA", "3_002_3_2_4", [3, 3, 3]); // train, screen attack
        video(root, "EA", "3_003_2_1_1", [1, 1, 1]); // device 2: not in train
        video(root, "EA", "3_201_2_1_1", [1, 1, 1]); // dev
        video(root, "AF", "1_300_1_1_2", [2, 2, 2]); // test, print attack
        video(root, "AF", "1_301_1_1_3", [2, 2, 2]); // PAI 3: not in test
        let train = CefaDataset::open(root, CefaSplit::Train).unwrap();
        assert_eq!((train.len(), train.num_attack()), (5, 3));
        assert_eq!(CefaDataset::open(root, CefaSplit::Dev).unwrap().len(), 1);
        let test = CefaDataset::open(root, CefaSplit::Test)
            .unwrap()
            .with_augment(SurfAugment::sized(false, 6, 4))
            .unwrap();
        assert_eq!((test.len(), test.num_attack()), (2, 2));
        let s = test.get(1, &mut derive_rng(0, 0, 0, Stream::Augment)).unwrap();
        assert_eq!(s.target, Target::Class(1));
        assert_eq!(s.inputs[2].shape, [3, 4, 4]);
        // Frame 1 of every modality has grey level 40 (JPEG: within a few levels).
        let v = s.inputs[0].data[0] * 128.0 + 127.5;
        assert!((v - 40.0).abs() < 4.0, "{v}");

        video(root, "AF", "1_302_1_1_1", [2, 1, 2]);
        let err = CefaDataset::open(root, CefaSplit::Test).unwrap_err().to_string();
        assert!(err.contains("1_302_1_1_1") && err.contains("depth"), "{err}");
    }
}
