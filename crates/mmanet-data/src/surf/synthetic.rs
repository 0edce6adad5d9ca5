//! A seeded synthetic face-anti-spoofing set in the CASIA-SURF list layout.
//!
//! Each sample is a face-like ellipse seen by three cameras. The label (1 = real) is
//! recoverable from every modality, at different difficulty:
//! - RGB (easy): real faces are skin-toned; spoofs are greyish-blue with moiré stripes.
//! - depth (medium): real faces bulge (a strong dome profile); spoofs are nearly flat planes
//!   with a weak, random curvature, under heavy noise.
//! - IR (hard): real faces are on average a little brighter, spoofs carry faint stripes;
//!   the brightness ranges overlap and the noise is strong.

use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::memory::normal;
use crate::seeding::{Stream, derive_rng};
use crate::{DataError, Result};

/// What [`write_synthetic_surf`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticSurf {
    /// The data root.
    pub root: PathBuf,
    /// List files, relative to the root: `train_list.txt`, `val_private_list.txt`,
    /// `test_private_list.txt`.
    pub lists: [String; 3],
    /// Samples per list.
    pub counts: [usize; 3],
}

const SPLITS: [(&str, &str); 3] = [
    ("Training", "train_list.txt"),
    ("Val", "val_private_list.txt"),
    ("Testing", "test_private_list.txt"),
];

/// Writes `n` training samples and `max(n / 4, 2)` validation and test samples of
/// `size x size` JPEGs under `dir` (`<Split>/<real_part|fake_part>/<id>/{color,depth,ir}/0.jpg`)
/// with the three CASIA-SURF list files. Labels are drawn with probability 1/2. Deterministic
/// for a given `(n, seed, size)`.
pub fn write_synthetic_surf(dir: &Path, n: usize, seed: u64, size: usize) -> Result<SyntheticSurf> {
    if size < 8 || n == 0 {
        return Err(DataError::Config("synthetic SURF: need n >= 1 and size >= 8".into()));
    }
    let held_out = (n / 4).max(2);
    let counts = [n, held_out, held_out];
    for (split, ((folder, list), count)) in SPLITS.iter().zip(counts).enumerate() {
        let lines = (0..count)
            .into_par_iter()
            .map(|i| {
                let mut rng = derive_rng(seed, split as u64, i as u64, Stream::Generate);
                let real = rng.random_bool(0.5);
                let part = if real { "real_part" } else { "fake_part" };
                let rel = format!("{folder}/{part}/{i:05}");
                let [rgb, depth, ir] = render_face(&mut rng, real, size);
                let paths = ["color", "depth", "ir"].map(|m| format!("{rel}/{m}/0.jpg"));
                write_jpeg(&dir.join(&paths[0]), &rgb, size, 3)?;
                write_jpeg(&dir.join(&paths[1]), &depth, size, 1)?;
                write_jpeg(&dir.join(&paths[2]), &ir, size, 1)?;
                Ok(format!("{} {} {} {}\n", paths[0], paths[1], paths[2], u8::from(real)))
            })
            .collect::<Result<Vec<String>>>()?;
        // The list last, atomically: a list on disk means every image it names is complete.
        mmanet_fs::write(&dir.join(list), lines.concat().as_bytes())?;
    }
    Ok(SyntheticSurf { root: dir.to_path_buf(), lists: SPLITS.map(|(_, l)| l.to_string()), counts })
}

fn write_jpeg(path: &Path, pixels: &[u8], size: usize, channels: usize) -> Result<()> {
    if let Some(parent) = path.parent() {
        mmanet_fs::create_dir_all(parent)?;
    }
    let color = if channels == 3 { ExtendedColorType::Rgb8 } else { ExtendedColorType::L8 };
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 92)
        .write_image(pixels, size as u32, size as u32, color)
        .map_err(|e| DataError::decode(path, format!("JPEG encoding failed: {e}")))?;
    mmanet_fs::write(path, &jpeg)?;
    Ok(())
}

fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Renders RGB (interleaved RGB8), depth and IR (L8) of one face.
fn render_face(rng: &mut ChaCha8Rng, real: bool, size: usize) -> [Vec<u8>; 3] {
    let s = size as f32;
    let (cx, cy) =
        (s / 2.0 + s * rng.random_range(-0.1..0.1), s / 2.0 + s * rng.random_range(-0.1..0.1));
    let (ax, ay) = (s * rng.random_range(0.25..0.33), s * rng.random_range(0.32..0.4));
    let bg = [
        rng.random_range(10.0..90.0f32),
        rng.random_range(10.0..90.0),
        rng.random_range(10.0..90.0),
    ];
    let tone_jitter = rng.random_range(-20.0..20.0f32);
    // RGB: skin tone vs greyish blue with moiré.
    let face_rgb = if real {
        [200.0 + tone_jitter, 150.0 + tone_jitter, 120.0 + tone_jitter]
    } else {
        [140.0 + tone_jitter, 150.0 + tone_jitter, 175.0 + tone_jitter]
    };
    let moire_period = rng.random_range(3.0..6.0f32);
    // Depth: dome height and base level.
    let dome = if real { rng.random_range(90.0..140.0f32) } else { rng.random_range(0.0..60.0) };
    let base = rng.random_range(60.0..110.0f32);
    let tilt = rng.random_range(-0.5..0.5f32);
    // IR: overlapping brightness ranges, faint stripes for spoofs.
    let ir_level =
        if real { rng.random_range(105.0..165.0f32) } else { rng.random_range(90.0..150.0) };
    let ir_stripe = if real { 0.0 } else { 6.0 };

    let mut rgb = Vec::with_capacity(size * size * 3);
    let mut depth = Vec::with_capacity(size * size);
    let mut ir = Vec::with_capacity(size * size);
    for y in 0..size {
        for x in 0..size {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let r2 = ((fx - cx) / ax).powi(2) + ((fy - cy) / ay).powi(2);
            let inside = r2 < 1.0;
            let stripes = (std::f32::consts::TAU * (fx + 0.5 * fy) / moire_period).sin();
            for k in 0..3 {
                let v = if inside {
                    face_rgb[k] + if real { 0.0 } else { 25.0 * stripes }
                } else {
                    bg[k]
                };
                rgb.push(to_u8(v + 8.0 * normal(rng)));
            }
            let d = if inside { base + tilt * (fx - cx) + dome * (1.0 - r2).sqrt() } else { 0.0 };
            depth.push(to_u8(d + 25.0 * normal(rng)));
            let i = if inside {
                ir_level + ir_stripe * (std::f32::consts::TAU * fy / 4.0).sin()
            } else {
                30.0
            };
            ir.push(to_u8(i + 30.0 * normal(rng)));
        }
    }
    [rgb, depth, ir]
}
