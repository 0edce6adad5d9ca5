//! A seeded synthetic RGB-D segmentation set in the ESANet NYUv2 layout.
//!
//! A wall (depth 3.8-5 m, blue-grey) holds 3-6 rectangular or elliptic objects of four kinds:
//!
//! | class | colour | depth | separable from |
//! |---|---|---|---|
//! | 1 | red | near (1.2-1.6 m) | 2 and 4 by colour only, 3 by either |
//! | 2 | green | near | 1 and 4 by colour only, 3 by either |
//! | 3 | grey | middle (2.4-2.8 m) | 4 by depth only |
//! | 4 | grey | near | 3 by depth only |
//! | 5 | wall | far | all by either |
//!
//! so a model that misses a modality loses measurable mIoU. A 2-pixel frame is void (0).

use std::path::{Path, PathBuf};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::memory::normal;
use crate::seeding::{Stream, derive_rng};
use crate::{DataError, Result};

/// Number of classes of the synthetic set (labels `1..=5`, 0 = void).
pub const SYNTHETIC_NYUV2_CLASSES: usize = 5;

/// What [`write_synthetic_nyuv2`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticNyuv2 {
    /// The data root.
    pub root: PathBuf,
    /// Train and test sample counts.
    pub counts: [usize; 2],
    /// Number of classes (the `labels_<C>` folder).
    pub num_classes: usize,
}

/// Writes `n` training and `max(n / 4, 2)` test scenes of `height x width` under `dir`
/// (`train.txt`, `test.txt`, `<split>/{rgb,depth,labels_5}/<id>.png`, ids `%04d` from 1).
/// Deterministic for given arguments.
pub fn write_synthetic_nyuv2(
    dir: &Path,
    n: usize,
    seed: u64,
    height: usize,
    width: usize,
) -> Result<SyntheticNyuv2> {
    if n == 0 || height < 8 || width < 8 {
        return Err(DataError::Config("synthetic NYUv2: need n >= 1 and sides >= 8".into()));
    }
    let counts = [n, (n / 4).max(2)];
    for (s, (split, count)) in ["train", "test"].into_iter().zip(counts).enumerate() {
        let ids: Vec<String> = (1..=count).map(|i| format!("{i:04}")).collect();
        ids.par_iter().enumerate().try_for_each(|(i, id)| {
            let mut rng = derive_rng(seed, 100 + s as u64, i as u64, Stream::Generate);
            let (rgb, depth, labels) = render_scene(&mut rng, height, width);
            let base = dir.join(split);
            let (w, h) = (width as u32, height as u32);
            save(&base.join("rgb").join(format!("{id}.png")), |p| {
                image::RgbImage::from_raw(w, h, rgb)
                    .expect("sized buffer")
                    .write_to(p, image::ImageFormat::Png)
            })?;
            save(&base.join("depth").join(format!("{id}.png")), |p| {
                image::ImageBuffer::<image::Luma<u16>, _>::from_raw(w, h, depth)
                    .expect("sized buffer")
                    .write_to(p, image::ImageFormat::Png)
            })?;
            let label_dir = format!("labels_{SYNTHETIC_NYUV2_CLASSES}");
            save(&base.join(label_dir).join(format!("{id}.png")), |p| {
                image::GrayImage::from_raw(w, h, labels)
                    .expect("sized buffer")
                    .write_to(p, image::ImageFormat::Png)
            })
        })?;
        // The list last, atomically: a list on disk means every image it names is complete.
        let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
        mmanet_fs::write(&dir.join(format!("{split}.txt")), text.as_bytes())?;
    }
    Ok(SyntheticNyuv2 { root: dir.to_path_buf(), counts, num_classes: SYNTHETIC_NYUV2_CLASSES })
}

/// Encodes with `encode` into memory, then writes atomically ([`mmanet_fs::write`]).
fn save(
    path: &Path,
    encode: impl FnOnce(&mut std::io::Cursor<Vec<u8>>) -> image::ImageResult<()>,
) -> Result<()> {
    if let Some(parent) = path.parent() {
        mmanet_fs::create_dir_all(parent)?;
    }
    let mut png = std::io::Cursor::new(Vec::new());
    encode(&mut png).map_err(|e| DataError::decode(path, format!("PNG encoding failed: {e}")))?;
    mmanet_fs::write(path, png.get_ref())?;
    Ok(())
}

/// RGB8 interleaved, depth u16 mm, labels u8.
fn render_scene(rng: &mut ChaCha8Rng, h: usize, w: usize) -> (Vec<u8>, Vec<u16>, Vec<u8>) {
    let mut class = vec![5u8; h * w];
    let mut colour = vec![[0f32; 3]; h * w];
    let mut depth = vec![0f32; h * w];
    let wall = [
        rng.random_range(70.0..100.0f32),
        rng.random_range(90.0..120.0),
        rng.random_range(150.0..190.0),
    ];
    let wall_near = rng.random_range(3800.0..4400.0f32);
    for y in 0..h {
        for x in 0..w {
            colour[y * w + x] = wall;
            depth[y * w + x] = wall_near + 600.0 * y as f32 / h as f32;
        }
    }
    let n_objects = rng.random_range(3..=6);
    for _ in 0..n_objects {
        let k: u8 = rng.random_range(1..=4);
        let shade = rng.random_range(-20.0..20.0f32);
        let rgb = match k {
            1 => [190.0 + shade, 60.0, 50.0],
            2 => [60.0, 170.0 + shade, 70.0],
            _ => [128.0 + shade; 3],
        };
        let d = if k == 3 {
            rng.random_range(2400.0..2800.0f32)
        } else {
            rng.random_range(1200.0..1600.0)
        };
        let (oh, ow) = (rng.random_range(h / 5..=h / 2), rng.random_range(w / 5..=w / 2));
        let (top, left) = (rng.random_range(0..=h - oh), rng.random_range(0..=w - ow));
        let ellipse = rng.random_bool(0.5);
        for y in top..top + oh {
            for x in left..left + ow {
                let (u, v) = (
                    (x as f32 + 0.5 - left as f32 - ow as f32 / 2.0) / (ow as f32 / 2.0),
                    (y as f32 + 0.5 - top as f32 - oh as f32 / 2.0) / (oh as f32 / 2.0),
                );
                if !ellipse || u * u + v * v <= 1.0 {
                    class[y * w + x] = k;
                    colour[y * w + x] = rgb;
                    depth[y * w + x] = d;
                }
            }
        }
    }
    let mut out_rgb = Vec::with_capacity(h * w * 3);
    let mut out_depth = Vec::with_capacity(h * w);
    for p in 0..h * w {
        for c in colour[p] {
            out_rgb.push((c + 10.0 * normal(rng)).round().clamp(0.0, 255.0) as u8);
        }
        out_depth.push((depth[p] + 60.0 * normal(rng)).round().clamp(1.0, 65535.0) as u16);
    }
    for y in 0..h {
        for x in 0..w {
            if y < 2 || x < 2 || y >= h - 2 || x >= w - 2 {
                class[y * w + x] = 0;
            }
        }
    }
    (out_rgb, out_depth, class)
}
