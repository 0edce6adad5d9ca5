//! Image arithmetic in the reference's (OpenCV's) conventions: HWC f32 images, bilinear and
//! nearest resizing, the rotation with the 0.8 canvas rule, crops, flips and HSV jitter; and
//! the 8-bit path of the CASIA-SURF pipeline ([`Image8`], [`read_bgr`], [`CanvasRotation`]),
//! which rounds to u8 after each step as OpenCV does.
//!
//! Coordinates follow OpenCV: pixel `(x, y)` sits at integer coordinates, resizing maps pixel
//! centres (`src = (dst + 0.5) * scale - 0.5`). On [`Image`] values stay f32 throughout;
//! OpenCV's rounding to uint8 after each step is not reproduced (at most half a grey level
//! apart).

use std::path::Path;

use crate::{DataError, Result};

mod canvas_rotation;
mod hresize_x86;
mod image8;
mod planar8;
mod warp_x86;

pub use canvas_rotation::{CanvasRotation, Normalise};
pub(crate) use image8::{ChannelOrder, read_any_order_into};
pub use image8::{Image8, ResizeScratch, decode_bgr_into, read_bgr, read_bgr_into};
pub use planar8::Planar8;

/// An interleaved (HWC) f32 image.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels per pixel.
    pub channels: usize,
    /// `height * width * channels` values, row-major, channels last.
    pub data: Vec<f32>,
}

impl Image {
    /// A constant image.
    pub fn filled(height: usize, width: usize, channels: usize, value: f32) -> Self {
        Image { height, width, channels, data: vec![value; height * width * channels] }
    }

    /// Checks the buffer length.
    pub fn new(height: usize, width: usize, channels: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != height * width * channels {
            return Err(DataError::shape(
                "image buffer",
                format!("{height}x{width}x{channels}"),
                data.len(),
            ));
        }
        Ok(Image { height, width, channels, data })
    }

    /// The value at row `y`, column `x`, channel `c` (panics outside the image).
    #[inline]
    pub fn at(&self, y: usize, x: usize, c: usize) -> f32 {
        self.data[(y * self.width + x) * self.channels + c]
    }

    /// Bilinear resize with OpenCV's `INTER_LINEAR` coordinate mapping (no antialiasing).
    pub fn resize_bilinear(&self, height: usize, width: usize) -> Image {
        let xs = linear_taps(self.width, width);
        let ys = linear_taps(self.height, height);
        let c = self.channels;
        let row_len = self.width * c;
        let mut out = vec![0f32; height * width * c];
        // Horizontal pass of the two source rows, then the vertical blend.
        let mut top = vec![0f32; width * c];
        let mut bot = vec![0f32; width * c];
        let hpass = |src: &[f32], dst: &mut [f32]| {
            for (o, &(x0, x1, fx)) in dst.chunks_exact_mut(c).zip(&xs) {
                let (a, b) = (&src[x0 * c..x0 * c + c], &src[x1 * c..x1 * c + c]);
                for k in 0..c {
                    o[k] = a[k] + (b[k] - a[k]) * fx;
                }
            }
        };
        for (orow, &(y0, y1, fy)) in out.chunks_exact_mut(width * c).zip(&ys) {
            hpass(&self.data[y0 * row_len..(y0 + 1) * row_len], &mut top);
            hpass(&self.data[y1 * row_len..(y1 + 1) * row_len], &mut bot);
            for ((o, t), b) in orow.iter_mut().zip(&top).zip(&bot) {
                *o = t + (b - t) * fy;
            }
        }
        Image { height, width, channels: c, data: out }
    }

    /// Nearest-neighbour resize with OpenCV's `INTER_NEAREST` mapping (`src = floor(dst * scale)`).
    pub fn resize_nearest(&self, height: usize, width: usize) -> Image {
        let map = |src: usize, dst: usize, i: usize| ((i * src) / dst).min(src - 1);
        let c = self.channels;
        let mut out = Vec::with_capacity(height * width * c);
        for y in 0..height {
            let sy = map(self.height, height, y);
            for x in 0..width {
                let sx = map(self.width, width, x);
                let base = (sy * self.width + sx) * c;
                out.extend_from_slice(&self.data[base..base + c]);
            }
        }
        Image { height, width, channels: c, data: out }
    }

    /// The reference's `RondomRotion_multi` for one integer `angle` in degrees:
    /// `M = getRotationMatrix2D((w/2, h/2), -angle, 1)`, canvas
    /// `nw = int(h|sin|r + w|cos|r)`, `nh = int(h|cos|r + w|sin|r)` with `r = canvas_ratio`
    /// (0.8 in the reference), the translation shifted by `(nw/2 - w/2, nh/2 - h/2)`, then
    /// `warpAffine` (bilinear, black border).
    pub fn rotate_canvas(&self, angle: i32, canvas_ratio: f64) -> Image {
        let (h, w) = (self.height as f64, self.width as f64);
        let (cx, cy) = (w / 2.0, h / 2.0);
        let a = (-f64::from(angle)).to_radians();
        let (alpha, beta) = (a.cos(), a.sin());
        let (cos, sin) = (alpha.abs() * canvas_ratio, beta.abs() * canvas_ratio);
        let nw = (h * sin + w * cos) as usize;
        let nh = (h * cos + w * sin) as usize;
        // Forward map [[alpha, beta, tx], [-beta, alpha, ty]].
        let tx = (1.0 - alpha) * cx - beta * cy + (nw as f64 / 2.0 - cx);
        let ty = beta * cx + (1.0 - alpha) * cy + (nh as f64 / 2.0 - cy);
        let c = self.channels;
        let mut out = vec![0f32; nh * nw * c];
        let (hi, wi) = (self.height as i64, self.width as i64);
        for y in 0..nh {
            for x in 0..nw {
                let (dx, dy) = (x as f64 - tx, y as f64 - ty);
                // Inverse of a rotation: its transpose (det = 1).
                let sx = alpha * dx - beta * dy;
                let sy = beta * dx + alpha * dy;
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
                let (x0, y0) = (x0 as i64, y0 as i64);
                if x0 < -1 || y0 < -1 || x0 >= wi || y0 >= hi {
                    continue; // all four taps outside: black
                }
                let dst = &mut out[(y * nw + x) * c..(y * nw + x + 1) * c];
                if x0 >= 0 && y0 >= 0 && x0 + 1 < wi && y0 + 1 < hi {
                    // Interior: all four taps inside.
                    let b0 = (y0 as usize * self.width + x0 as usize) * c;
                    let b1 = b0 + self.width * c;
                    let (r0, r1) = (&self.data[b0..b0 + 2 * c], &self.data[b1..b1 + 2 * c]);
                    for k in 0..c {
                        let t = r0[k] + (r0[c + k] - r0[k]) * fx;
                        let b = r1[k] + (r1[c + k] - r1[k]) * fx;
                        dst[k] = t + (b - t) * fy;
                    }
                    continue;
                }
                // Border: bilinear weights of the 4 taps; taps outside the image read as 0.
                let taps = [
                    (y0, x0, (1.0 - fx) * (1.0 - fy)),
                    (y0, x0 + 1, fx * (1.0 - fy)),
                    (y0 + 1, x0, (1.0 - fx) * fy),
                    (y0 + 1, x0 + 1, fx * fy),
                ];
                for (ty_, tx_, wgt) in taps {
                    if ty_ < 0 || tx_ < 0 || ty_ >= hi || tx_ >= wi || wgt == 0.0 {
                        continue;
                    }
                    let base = (ty_ as usize * self.width + tx_ as usize) * c;
                    for (d, v) in dst.iter_mut().zip(&self.data[base..base + c]) {
                        *d += wgt * v;
                    }
                }
            }
        }
        Image { height: nh, width: nw, channels: c, data: out }
    }

    /// The `height x width` window at `(top, left)`; fails when it does not fit.
    pub fn crop(&self, top: usize, left: usize, height: usize, width: usize) -> Result<Image> {
        if top + height > self.height || left + width > self.width {
            return Err(DataError::shape(
                "crop",
                format!("a window inside {}x{}", self.height, self.width),
                format!("{height}x{width} at ({top}, {left})"),
            ));
        }
        let c = self.channels;
        let mut out = Vec::with_capacity(height * width * c);
        for y in top..top + height {
            let base = (y * self.width + left) * c;
            out.extend_from_slice(&self.data[base..base + width * c]);
        }
        Ok(Image { height, width, channels: c, data: out })
    }

    /// Mirrors left-right in place (`cv2.flip(img, 1)`).
    pub fn flip_horizontal(&mut self) {
        let c = self.channels;
        for y in 0..self.height {
            let row = &mut self.data[y * self.width * c..(y + 1) * self.width * c];
            for x in 0..self.width / 2 {
                let (l, r) = (x * c, (self.width - 1 - x) * c);
                for k in 0..c {
                    row.swap(l + k, r + k);
                }
            }
        }
    }

    /// ESANet's `RandomHSV` on an RGB image with values in 0..=255 (matplotlib's
    /// `rgb_to_hsv` convention: H, S in 0..=1, V in 0..=255): `H *= h_scale`, `S *= s_scale`
    /// (clipped to 0..=1), `V += v_shift` (clipped to 0..=255).
    pub fn hsv_jitter(&mut self, h_scale: f32, s_scale: f32, v_shift: f32) {
        debug_assert_eq!(self.channels, 3);
        for px in self.data.chunks_exact_mut(3) {
            let (h, s, v) = rgb_to_hsv(px[0], px[1], px[2]);
            let (r, g, b) = hsv_to_rgb(
                (h * h_scale).clamp(0.0, 1.0),
                (s * s_scale).clamp(0.0, 1.0),
                (v + v_shift).clamp(0.0, 255.0),
            );
            px[0] = r;
            px[1] = g;
            px[2] = b;
        }
    }

    /// Channel-first copy with `(x - mean[c]) / std[c]`.
    ///
    /// # Shapes
    /// Returns `channels * height * width` values, i.e. a `[C, H, W]` array.
    pub fn to_chw_normalized(&self, mean: &[f32], std: &[f32]) -> Vec<f32> {
        let (hw, c) = (self.height * self.width, self.channels);
        let mut out = vec![0f32; hw * c];
        for (p, px) in self.data.chunks_exact(c).enumerate() {
            for k in 0..c {
                let (m, s) = (mean[k.min(mean.len() - 1)], std[k.min(std.len() - 1)]);
                out[k * hw + p] = (px[k] - m) / s;
            }
        }
        out
    }
}

/// For each output coordinate: the two source taps and the weight of the second.
fn linear_taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let s = (i as f64 + 0.5) * scale - 0.5;
            let mut i0 = s.floor();
            let mut f = s - i0;
            if i0 < 0.0 {
                i0 = 0.0;
                f = 0.0;
            }
            let i0 = i0 as usize;
            if i0 >= src - 1 { (src - 1, src - 1, 0.0) } else { (i0, i0 + 1, f as f32) }
        })
        .collect()
}

/// matplotlib `rgb_to_hsv` for values in 0..=255: H, S in 0..=1, V = max.
fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let s = if max > 0.0 { delta / max } else { 0.0 };
    let h = if delta <= 0.0 {
        0.0
    } else if max == r {
        ((g - b) / delta).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / delta + 2.0) / 6.0
    } else {
        ((r - g) / delta + 4.0) / 6.0
    };
    (h, s, max)
}

/// Inverse of [`rgb_to_hsv`].
fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = (h * 6.0).rem_euclid(6.0);
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match i as u32 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Reads an image as 3 channels in RGB order, values 0..=255.
pub fn read_rgb(path: &Path) -> Result<Image> {
    let img = decode(path)?.to_rgb8();
    let (w, h) = img.dimensions();
    let data = img.into_raw().into_iter().map(f32::from).collect();
    Image::new(h as usize, w as usize, 3, data)
}

/// Reads a one-channel image keeping its bit depth (uint16 depth PNGs in mm, uint8 labels).
pub fn read_gray_unchanged(path: &Path) -> Result<Image> {
    let img = decode(path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data: Vec<f32> = match img {
        image::DynamicImage::ImageLuma8(g) => g.into_raw().into_iter().map(f32::from).collect(),
        image::DynamicImage::ImageLuma16(g) => g.into_raw().into_iter().map(f32::from).collect(),
        other => {
            return Err(DataError::decode(
                path,
                format!("expected a one-channel image, got {:?}", other.color()),
            ));
        }
    };
    Image::new(h, w, 1, data)
}

fn decode(path: &Path) -> Result<image::DynamicImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    reader.decode().map_err(|e| DataError::decode(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize) -> Image {
        Image::new(h, w, 1, (0..h * w).map(|v| v as f32).collect()).unwrap()
    }

    #[test]
    fn bilinear_downscale_by_two_averages_pixel_pairs() {
        // INTER_LINEAR at scale 2: src = 2*dst + 0.5, i.e. the mean of pixels 2i and 2i+1.
        let img = Image::new(1, 4, 1, vec![0.0, 2.0, 4.0, 8.0]).unwrap();
        assert_eq!(img.resize_bilinear(1, 2).data, [1.0, 6.0]);
        // Upscaling clamps at the borders: src = (i + 0.5) / 2 - 0.5.
        let img = Image::new(1, 2, 1, vec![0.0, 4.0]).unwrap();
        assert_eq!(img.resize_bilinear(1, 4).data, [0.0, 1.0, 3.0, 4.0]);
        // Identity size is the identity.
        let r = ramp(5, 7);
        assert_eq!(r.resize_bilinear(5, 7), r);
    }

    #[test]
    fn nearest_resize_takes_floor_positions() {
        let img = Image::new(1, 4, 1, vec![0.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(img.resize_nearest(1, 2).data, [0.0, 2.0]);
        assert_eq!(img.resize_nearest(1, 8).data, [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
    }

    #[test]
    fn rotation_at_zero_gives_the_reference_canvas_and_shift() {
        // 144 -> int(144 * 0.8) = 115, the size quoted in docs/method.md §5.1.
        let img = Image::filled(144, 144, 3, 100.0);
        let r = img.rotate_canvas(0, 0.8);
        assert_eq!((r.height, r.width, r.channels), (115, 115, 3));
        // Translation nw/2 - w/2 = 57.5 - 72 = -14.5: dst(x) = src(x + 14.5), all inside.
        assert!(r.data.iter().all(|v| (*v - 100.0).abs() < 1e-4));
        let ramp = ramp(144, 144);
        let r = ramp.rotate_canvas(0, 0.8);
        let expected = ramp.at(14, 14, 0) * 0.25
            + ramp.at(14, 15, 0) * 0.25
            + ramp.at(15, 14, 0) * 0.25
            + ramp.at(15, 15, 0) * 0.25;
        assert!((r.at(0, 0, 0) - expected).abs() < 1e-3);
    }

    #[test]
    fn rotation_by_90_matches_opencv_matrix() {
        // getRotationMatrix2D((2, 2), -90, 1) = [[0, -1, 4], [1, 0, 0]] (OpenCV docs formula),
        // so dst(x', y') = src(x = y', y = 4 - x'); column x' = 0 reads row 4: outside -> 0.
        let img = ramp(4, 4);
        let r = img.rotate_canvas(90, 1.0);
        assert_eq!((r.height, r.width), (4, 4));
        for yp in 0..4 {
            for xp in 0..4 {
                let expected = if xp == 0 { 0.0 } else { img.at(4 - xp, yp, 0) };
                assert!((r.at(yp, xp, 0) - expected).abs() < 1e-3, "({yp},{xp})");
            }
        }
        // A 30 degree turn enlarges the canvas: int(144 * 0.8 * (sin + cos)).
        let r = Image::filled(144, 144, 1, 1.0).rotate_canvas(30, 0.8);
        let side = (144.0 * 0.8 * (30f64.to_radians().sin() + 30f64.to_radians().cos())) as usize;
        assert_eq!((r.height, r.width), (side, side));
        // Corners fall outside the rotated square: black border.
        assert_eq!(r.at(0, 0, 0), 0.0);
        assert!((r.at(side / 2, side / 2, 0) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn crop_flip_and_normalise() {
        let img = ramp(4, 5);
        let c = img.crop(1, 2, 2, 3).unwrap();
        assert_eq!(c.data, [7.0, 8.0, 9.0, 12.0, 13.0, 14.0]);
        assert!(img.crop(3, 0, 2, 2).is_err());
        let mut f = c.clone();
        f.flip_horizontal();
        assert_eq!(f.data, [9.0, 8.0, 7.0, 14.0, 13.0, 12.0]);
        let rgb = Image::new(1, 2, 3, vec![127.5, 0.0, 255.0, 255.5, 127.5, 0.0]).unwrap();
        let chw = rgb.to_chw_normalized(&[127.5], &[128.0]);
        assert_eq!(chw, [0.0, 1.0, -127.5 / 128.0, 0.0, 127.5 / 128.0, -127.5 / 128.0]);
    }

    #[test]
    fn hsv_round_trip_and_jitter() {
        for (r, g, b) in
            [(255.0, 0.0, 0.0), (10.0, 200.0, 30.0), (7.0, 7.0, 7.0), (90.0, 20.0, 250.0)]
        {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let (r2, g2, b2) = hsv_to_rgb(h, s, v);
            assert!((r - r2).abs() < 1e-3 && (g - g2).abs() < 1e-3 && (b - b2).abs() < 1e-3);
        }
        let mut img = Image::new(1, 1, 3, vec![200.0, 100.0, 50.0]).unwrap();
        img.hsv_jitter(1.0, 1.0, 20.0);
        // V shift adds to the max and keeps the ratios of S: (220, 110, 55).
        assert!((img.data[0] - 220.0).abs() < 1e-3 && (img.data[2] - 55.0).abs() < 1e-3);
        let mut grey = Image::new(1, 1, 3, vec![50.0, 50.0, 50.0]).unwrap();
        grey.hsv_jitter(1.1, 1.1, 0.0);
        assert_eq!(grey.data, [50.0, 50.0, 50.0]);
    }
}
