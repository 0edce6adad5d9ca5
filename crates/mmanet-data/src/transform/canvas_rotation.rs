//! [`CanvasRotation`]: the reference's `RondomRotion_multi` on 8-bit images, evaluated only
//! where it is needed (the crop window), with crop, flip, normalisation and HWC -> CHW fused
//! into the one write.
//!
//! Arithmetic of OpenCV 5.0's `warpAffine` (`INTER_LINEAR`, black border) on 8-bit images: the
//! inverse map in f64 (`invertAffineTransform`) rounded to f32, source coordinates
//! `sx = m0 * x + (m1 * y + m2)` in f32, bilinear interpolation in f32 with taps outside the
//! image reading 0, then rounding half to even. Checked against opencv-python 5.0.0 on random
//! 144x144 images at 36 angle/image pairs: 42 of 735 726 pixels differ, each by 1 (ties at
//! `.5` decided by the last bit of float rounding).

use super::Image8;

/// The rotation of a `src_height x src_width` image by an integer angle onto the reduced
/// canvas: `M = getRotationMatrix2D((w/2, h/2), -angle, 1)`, canvas
/// `nw = int((h|sin|) * r + (w|cos|) * r)`, `nh = int((h|cos|) * r + (w|sin|) * r)` with
/// `r = canvas_ratio` (0.8 in the reference), the translation shifted by
/// `(nw/2 - w/2, nh/2 - h/2)`.
#[derive(Clone, Debug, PartialEq)]
pub struct CanvasRotation {
    /// Canvas rows `nh`.
    pub height: usize,
    /// Canvas columns `nw`.
    pub width: usize,
    /// Inverse map `[m0, m1, m2, m3, m4, m5]`: canvas `(x, y)` reads source
    /// `(m0 x + m1 y + m2, m3 x + m4 y + m5)`.
    inverse: [f32; 6],
}

impl CanvasRotation {
    /// The geometry for `angle` degrees (positive turns clockwise on screen, as the
    /// reference's `-angle` passed to OpenCV does).
    pub fn new(src_height: usize, src_width: usize, angle: i32, canvas_ratio: f64) -> Self {
        let (h, w) = (src_height as f64, src_width as f64);
        // Point2f centre: w / 2 is exact in f32 for any realistic size.
        let (cx, cy) = (w / 2.0, h / 2.0);
        let a = (-f64::from(angle)).to_radians();
        let (alpha, beta) = (a.cos(), a.sin());
        let (cos, sin) = (alpha.abs(), beta.abs());
        // Same operation order as the reference's Python.
        let nw = ((h * sin) * canvas_ratio + (w * cos) * canvas_ratio) as usize;
        let nh = ((h * cos) * canvas_ratio + (w * sin) * canvas_ratio) as usize;
        let m = [
            alpha,
            beta,
            (1.0 - alpha) * cx - beta * cy + (nw as f64 / 2.0 - cx),
            -beta,
            alpha,
            beta * cx + (1.0 - alpha) * cy + (nh as f64 / 2.0 - cy),
        ];
        // cv2.invertAffineTransform.
        let d = m[0] * m[4] - m[1] * m[3];
        let d = if d != 0.0 { 1.0 / d } else { 0.0 };
        let (a11, a22, a12, a21) = (m[4] * d, m[0] * d, -m[1] * d, -m[3] * d);
        let b1 = -a11 * m[2] - a12 * m[5];
        let b2 = -a21 * m[2] - a22 * m[5];
        let inverse = [a11, a12, b1, a21, a22, b2].map(|v| v as f32);
        CanvasRotation { height: nh, width: nw, inverse }
    }

    /// The whole rotated canvas, like `cv2.warpAffine(src, M, (nw, nh))`.
    ///
    /// # Panics
    /// When `src` has 2 or more than 3 channels.
    pub fn warp(&self, src: &Image8) -> Image8 {
        let c = src.channels;
        let mut data = vec![0u8; self.height * self.width * c];
        let mut px = vec![[0u8; 3]; self.width];
        for (y, row) in data.chunks_exact_mut(self.width * c).enumerate() {
            match c {
                1 => self.sample_span::<1>(src, y, 0, &mut px),
                3 => self.sample_span::<3>(src, y, 0, &mut px),
                c => panic!("1 or 3 channels, not {c}"),
            }
            for (d, p) in row.chunks_exact_mut(c).zip(&px) {
                d.copy_from_slice(&p[..c]);
            }
        }
        Image8 { height: self.height, width: self.width, channels: c, data }
    }

    /// Writes the `size x size` window at `(top, left)` of the rotated canvas, mirrored
    /// left-right when `flip`, through `lut` (value -> output, e.g. `(v - 127.5) / 128`),
    /// channel-first into `out`. A one-channel `src` fills all three planes (as `cv2.imread`
    /// would have replicated it).
    ///
    /// # Shapes
    /// `out` holds `3 * size * size` values (`[3, size, size]`); `src` has 1 or 3 channels.
    ///
    /// # Panics
    /// When the window leaves the canvas, `out` has another length, or `src` has 2 or more
    /// than 3 channels.
    #[allow(clippy::too_many_arguments)]
    pub fn warp_window_chw(
        &self,
        src: &Image8,
        top: usize,
        left: usize,
        size: usize,
        flip: bool,
        lut: &[f32; 256],
        out: &mut [f32],
    ) {
        assert!(top + size <= self.height && left + size <= self.width, "window off the canvas");
        let plane = size * size;
        assert_eq!(out.len(), 3 * plane, "output length");
        let (p0, rest) = out.split_at_mut(plane);
        let (p1, p2) = rest.split_at_mut(plane);
        let mut px = vec![[0u8; 3]; size];
        for i in 0..size {
            match src.channels {
                1 => self.sample_span::<1>(src, top + i, left, &mut px),
                3 => self.sample_span::<3>(src, top + i, left, &mut px),
                c => panic!("1 or 3 channels, not {c}"),
            }
            if flip {
                px.reverse();
            }
            let row = i * size..(i + 1) * size;
            let (r0, r1, r2) = (&mut p0[row.clone()], &mut p1[row.clone()], &mut p2[row]);
            for (((p, a), b), c) in px.iter().zip(r0).zip(r1).zip(r2) {
                (*a, *b, *c) =
                    (lut[usize::from(p[0])], lut[usize::from(p[1])], lut[usize::from(p[2])]);
            }
        }
    }

    /// Bilinear samples of canvas row `y`, columns `x0..x0 + out.len()`; a one-channel source
    /// is replicated to the three values of each pixel.
    #[inline]
    fn sample_span<const C: usize>(&self, src: &Image8, y: usize, x0: usize, out: &mut [[u8; 3]]) {
        let [m0, m1, m2, m3, m4, m5] = self.inverse;
        let (w, h) = (src.width as i32, src.height as i32);
        let stride = src.width * C;
        let yf = y as f32;
        let (row_x, row_y) = (m1 * yf + m2, m4 * yf + m5);
        let data = &src.data[..src.height * stride];
        for (x, px) in (x0..).zip(out.iter_mut()) {
            let xf = x as f32;
            let (sx, sy) = (m0 * xf + row_x, m3 * xf + row_y);
            let (ix, iy) = (floor_i32(sx), floor_i32(sy));
            let (a, b) = (sx - ix as f32, sy - iy as f32);
            let mut v = [0u8; C];
            if ix >= 0 && iy >= 0 && ix + 1 < w && iy + 1 < h {
                let base = iy as usize * stride + ix as usize * C;
                let (r0, r1) =
                    (&data[base..base + 2 * C], &data[base + stride..base + stride + 2 * C]);
                for k in 0..C {
                    v[k] = lerp2(
                        f32::from(r0[k]),
                        f32::from(r0[C + k]),
                        f32::from(r1[k]),
                        f32::from(r1[C + k]),
                        a,
                        b,
                    );
                }
            } else if ix >= -1 && iy >= -1 && ix < w && iy < h {
                let tap = |ty: i32, tx: i32, k: usize| -> f32 {
                    if ty < 0 || tx < 0 || ty >= h || tx >= w {
                        0.0
                    } else {
                        f32::from(data[ty as usize * stride + tx as usize * C + k])
                    }
                };
                for (k, vk) in v.iter_mut().enumerate() {
                    *vk = lerp2(
                        tap(iy, ix, k),
                        tap(iy, ix + 1, k),
                        tap(iy + 1, ix, k),
                        tap(iy + 1, ix + 1, k),
                        a,
                        b,
                    );
                }
            }
            *px = if C == 1 { [v[0]; 3] } else { std::array::from_fn(|k| v[k.min(C - 1)]) };
        }
    }
}

/// `floor(v)` for |v| < 2^31 without a libm call (baseline x86-64 has no `roundss`).
#[inline(always)]
fn floor_i32(v: f32) -> i32 {
    let t = v as i32; // towards zero (saturating)
    t - i32::from((t as f32) > v)
}

/// OpenCV's f32 bilinear blend, rounded half to even and saturated to u8.
#[inline(always)]
fn lerp2(q00: f32, q01: f32, q10: f32, q11: f32, a: f32, b: f32) -> u8 {
    let top = q00 + a * (q01 - q00);
    let bot = q10 + a * (q11 - q10);
    let v = top + b * (bot - top);
    // Round half to even without a libm call: adding 2^23 leaves no fraction bits, and the
    // default rounding mode is to nearest, ties to even (exact for 0 <= v < 2^23; v is a
    // convex blend of 0..=255 values up to float error).
    const MAGIC: f32 = 8_388_608.0;
    ((v.max(0.0) + MAGIC) - MAGIC).min(255.0) as u8
}

/// `(v - 127.5) / 128` for every 8-bit value, the reference's CASIA-SURF normalisation.
pub fn surf_normalisation_lut() -> [f32; 256] {
    std::array::from_fn(|v| (v as f32 - 127.5) / 128.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Image;

    fn noise(h: usize, w: usize, c: usize) -> Image8 {
        let mut s = 7u32;
        let data = (0..h * w * c)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (s >> 16) as u8
            })
            .collect();
        Image8::new(h, w, c, data).unwrap()
    }

    #[test]
    fn canvas_sizes_follow_the_reference() {
        // 144 -> int(144 * 0.8) = 115 at angle 0 (mmanet_spec.md 5.1), and at 30 degrees
        // int(144 * 0.5 * 0.8 + 144 * cos(30) * 0.8) = int(57.6 + 99.77) = 157.
        let r = CanvasRotation::new(144, 144, 0, 0.8);
        assert_eq!((r.height, r.width), (115, 115));
        let r = CanvasRotation::new(144, 144, 30, 0.8);
        assert_eq!((r.height, r.width), (157, 157));
        let r = CanvasRotation::new(144, 144, -30, 0.8);
        assert_eq!((r.height, r.width), (157, 157));
    }

    #[test]
    fn u8_warp_is_within_one_level_of_the_f32_rotation() {
        // The f32 path (`Image::rotate_canvas`, an independent per-pixel implementation in f64
        // coordinates) rounded to u8: the two differ only by float rounding.
        let img = noise(144, 144, 3);
        let f = img.to_f32();
        for angle in [-30, -11, 0, 1, 17, 30] {
            let r = CanvasRotation::new(144, 144, angle, 0.8);
            let ours = r.warp(&img);
            let reference: Image = f.rotate_canvas(angle, 0.8);
            assert_eq!((ours.height, ours.width), (reference.height, reference.width));
            let diffs: Vec<u8> = ours
                .data
                .iter()
                .zip(&reference.data)
                .map(|(a, b)| a.abs_diff(b.round_ties_even().clamp(0.0, 255.0) as u8))
                .collect();
            let max = diffs.iter().max().copied().unwrap();
            let off = diffs.iter().filter(|d| **d > 0).count() as f64 / diffs.len() as f64;
            assert!(max <= 1 && off < 0.01, "angle {angle}: max {max}, {off} differ");
        }
    }

    #[test]
    fn window_equals_warp_then_crop_flip_and_normalise() {
        let lut = surf_normalisation_lut();
        for (c, angle, flip) in [(3, 13, false), (3, -29, true), (1, 0, true), (1, 22, false)] {
            let img = noise(40, 40, c);
            let r = CanvasRotation::new(40, 40, angle, 0.8);
            let full = r.warp(&img);
            let (size, top, left) = (28, 2, 3);
            let mut out = vec![f32::NAN; 3 * size * size];
            r.warp_window_chw(&img, top, left, size, flip, &lut, &mut out);
            for k in 0..3 {
                for i in 0..size {
                    for j in 0..size {
                        let jj = if flip { size - 1 - j } else { j };
                        let v = full.at(top + i, left + jj, k.min(c - 1));
                        assert_eq!(out[(k * size + i) * size + j], lut[usize::from(v)]);
                    }
                }
            }
        }
    }
}
