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

use super::{Image8, Planar8, warp_x86};

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
        assert!(c == 1 || c == 3, "1 or 3 channels, not {c}");
        let planar = Planar8::from_interleaved(src);
        let n = self.width;
        let mut data = vec![0u8; self.height * n * c];
        let mut rows = RowScratch::default();
        let mut vals = vec![0f32; n];
        // Normalising by (v - 0) * 1 leaves the rounded values (exact integers in f32).
        let identity = Normalise { mean: 0.0, scale: 1.0 };
        for (y, row) in data.chunks_exact_mut(n * c).enumerate() {
            let span = self.row_coordinates(&planar, y, 0, false, n, &mut rows);
            for k in 0..c {
                rows.plane_row_into(&planar, k, span, identity, &mut vals, true);
                for (px, v) in row.chunks_exact_mut(c).zip(&vals) {
                    px[k] = *v as u8;
                }
            }
        }
        Image8 { height: self.height, width: n, channels: c, data }
    }

    /// Writes the `size x size` window at `(top, left)` of the rotated canvas, mirrored
    /// left-right when `flip`, normalised by `norm`, channel-first into `out`. A one-channel
    /// `src` fills all three planes (as `cv2.imread` would have replicated it).
    ///
    /// Converts `src` to planes first; [`CanvasRotation::warp_window_planar`] reads planes
    /// directly.
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
        norm: Normalise,
        out: &mut [f32],
    ) {
        let planar = Planar8::from_interleaved(src);
        self.warp_window_planar(&planar, top, left, size, flip, norm, out);
    }

    /// [`CanvasRotation::warp_window_chw`] for a planar source (1 or 3 planes).
    ///
    /// # Shapes
    /// `out` holds `3 * size * size` values (`[3, size, size]`); `src` is
    /// `[planes, height, width]` with 1 or 3 planes.
    ///
    /// # Panics
    /// As [`CanvasRotation::warp_window_chw`].
    #[allow(clippy::too_many_arguments)]
    pub fn warp_window_planar(
        &self,
        src: &Planar8,
        top: usize,
        left: usize,
        size: usize,
        flip: bool,
        norm: Normalise,
        out: &mut [f32],
    ) {
        self.warp_windows_planar(
            std::slice::from_ref(src),
            top,
            left,
            size,
            flip,
            norm,
            &mut [out],
        );
    }

    /// [`CanvasRotation::warp_window_planar`] for several sources of one size (the
    /// modalities of a sample), `srcs[m]` into `outs[m]`.
    ///
    /// Per canvas row: the source coordinates and offsets of the window's pixels once for all
    /// sources, then per plane the interior pixels on AVX2 where present (gathered from the
    /// plane and blended eight at a time), the rest by a gather of the four taps and one
    /// vectorisable blend-and-normalise pass.
    ///
    /// # Shapes
    /// `outs[m]` holds `3 * size * size` values (`[3, size, size]`); every `srcs[m]` is
    /// `[planes, height, width]` with 1 or 3 planes and the same height and width.
    ///
    /// # Panics
    /// As [`CanvasRotation::warp_window_chw`]; also when the sources differ in size or
    /// `outs` and `srcs` differ in length.
    #[allow(clippy::too_many_arguments)]
    pub fn warp_windows_planar(
        &self,
        srcs: &[Planar8],
        top: usize,
        left: usize,
        size: usize,
        flip: bool,
        norm: Normalise,
        outs: &mut [&mut [f32]],
    ) {
        self.warp_windows_with(srcs, (top, left, size), flip, norm, outs, true);
    }

    /// [`CanvasRotation::warp_windows_planar`], the interior pixels on AVX2 only when `simd`
    /// (and the CPU has it).
    fn warp_windows_with(
        &self,
        srcs: &[Planar8],
        (top, left, size): (usize, usize, usize),
        flip: bool,
        norm: Normalise,
        outs: &mut [&mut [f32]],
        simd: bool,
    ) {
        assert_eq!(srcs.len(), outs.len(), "one output per source");
        let Some(first) = srcs.first() else { return };
        assert!(top + size <= self.height && left + size <= self.width, "window off the canvas");
        let plane = size * size;
        for (src, out) in srcs.iter().zip(outs.iter()) {
            assert!(src.planes == 1 || src.planes == 3, "1 or 3 channels, not {}", src.planes);
            assert_eq!((src.height, src.width), (first.height, first.width), "source sizes");
            assert_eq!(out.len(), 3 * plane, "output length");
        }
        ROWS.with_borrow_mut(|scratch| {
            for i in 0..size {
                let span = self.row_coordinates(first, top + i, left, flip, size, scratch);
                let row = i * size;
                for (src, out) in srcs.iter().zip(outs.iter_mut()) {
                    for k in 0..src.planes {
                        let out = &mut out[k * plane + row..][..size];
                        scratch.plane_row_into(src, k, span, norm, out, simd);
                    }
                    if src.planes == 1 {
                        let (p0, rest) = out.split_at_mut(plane);
                        let r0 = &p0[row..row + size];
                        rest[row..row + size].copy_from_slice(r0);
                        rest[plane + row..plane + row + size].copy_from_slice(r0);
                    }
                }
            }
        });
    }

    /// Source coordinates and weights of canvas row `y` at columns `x0 + j` (or
    /// `x0 + n - 1 - j` when `flip`), `j < n`, into `rows`, in one vectorisable pass; returns
    /// the span `lo..hi` of pixels whose four taps all lie inside `src`.
    ///
    /// Source coordinates are monotone along a canvas row (each is a rounded linear function
    /// of the column), so those pixels are contiguous.
    fn row_coordinates(
        &self,
        src: &Planar8,
        y: usize,
        x0: usize,
        flip: bool,
        n: usize,
        rows: &mut RowScratch,
    ) -> (usize, usize) {
        // The floor below is exact for |coordinate| < 2^22.
        assert!(src.width < 1 << 20 && src.height < 1 << 20, "source too large");
        let [m0, m1, m2, m3, m4, m5] = self.inverse;
        let yf = y as f32;
        let (row_x, row_y) = (m1 * yf + m2, m4 * yf + m5);
        rows.resize(n);
        let (start, step) = if flip { ((x0 + n - 1) as f32, -1.0) } else { (x0 as f32, 1.0) };
        let coords = rows.ix.iter_mut().zip(&mut rows.iy).zip(&mut rows.a).zip(&mut rows.b);
        for (j, (((ix, iy), a), b)) in coords.enumerate() {
            let xf = start + step * j as f32;
            let (sx, sy) = (m0 * xf + row_x, m3 * xf + row_y);
            let ((fx, x), (fy, yy)) = (floor_parts(sx), floor_parts(sy));
            (*ix, *iy, *a, *b) = (x, yy, sx - fx, sy - fy);
        }
        let (w, h) = (src.width as i32, src.height as i32);
        let inside = |j: usize| {
            let (ix, iy) = (rows.ix[j], rows.iy[j]);
            ix >= 0 && iy >= 0 && ix + 1 < w && iy + 1 < h
        };
        let lo = (0..n).find(|&j| inside(j)).unwrap_or(n);
        let hi = (lo..n).rfind(|&j| inside(j)).map_or(lo, |j| j + 1);
        debug_assert!((lo..hi).all(inside), "interior span");
        let w = src.width as u32;
        let offsets = rows.off[lo..hi].iter_mut().zip(&rows.ix[lo..hi]).zip(&rows.iy[lo..hi]);
        for ((o, &x), &y) in offsets {
            *o = y as u32 * w + x as u32;
        }
        (lo, hi)
    }
}

/// Per-row buffers of the rotation (one set per thread).
#[derive(Debug, Default)]
struct RowScratch {
    ix: Vec<i32>,
    iy: Vec<i32>,
    /// `iy * width + ix` (the first tap's offset in a plane) inside the interior span.
    off: Vec<u32>,
    a: Vec<f32>,
    b: Vec<f32>,
    /// The taps of one plane: `[q00, q01]` (upper row) and `[q10, q11]` (lower row).
    q: [Vec<[u8; 2]>; 2],
}

thread_local! {
    /// This thread's rotation row buffers.
    static ROWS: std::cell::RefCell<RowScratch> = std::cell::RefCell::default();
}

impl RowScratch {
    fn resize(&mut self, n: usize) {
        self.ix.resize(n, 0);
        self.iy.resize(n, 0);
        self.off.resize(n, 0);
        self.a.resize(n, 0.0);
        self.b.resize(n, 0.0);
        for q in &mut self.q {
            q.resize(n, [0; 2]);
        }
    }

    /// `out[j] = (lerp2(taps of pixel j) - mean) * scale` for plane `k` of `src` and the
    /// `n = out.len()` pixels of the row whose coordinates are in `self` (interior span
    /// `lo..hi`): the interior on AVX2 when `simd` and the CPU has it
    /// ([`warp_x86::blend_interior`]), everything else by [`RowScratch::gather`] and
    /// [`RowScratch::blend_range`].
    fn plane_row_into(
        &mut self,
        src: &Planar8,
        k: usize,
        (lo, hi): (usize, usize),
        norm: Normalise,
        out: &mut [f32],
        simd: bool,
    ) {
        let done = if simd {
            let (a, b) = (&self.a[lo..hi], &self.b[lo..hi]);
            let (plane, off, norm) = (src.plane(k), &self.off[lo..hi], (norm.mean, norm.scale));
            warp_x86::blend_interior(plane, src.width, off, (a, b), norm, &mut out[lo..hi])
        } else {
            0
        };
        self.gather(src, k, (lo, hi), lo + done);
        self.blend_range(norm, out, 0..lo);
        self.blend_range(norm, out, lo + done..out.len());
    }

    /// The four taps of plane `k` of `src` for the row whose coordinates are in `self`:
    /// pixels `from..hi` of the interior span `lo..hi` without any test, those outside
    /// `lo..hi` reading 0 outside the source (pixels `lo..from` are left as they are).
    fn gather(&mut self, src: &Planar8, k: usize, (lo, hi): (usize, usize), from: usize) {
        let data = src.plane(k);
        let (w, h) = (src.width, src.height);
        let [upper, lower] = &mut self.q;
        let taps = upper[from..hi].iter_mut().zip(&mut lower[from..hi]);
        // Two 16-bit loads and stores per pixel (adjacent bytes).
        for ((up, low), &o) in taps.zip(&self.off[from..hi]) {
            let r = &data[o as usize..o as usize + w + 2];
            (*up, *low) = ([r[0], r[1]], [r[w], r[w + 1]]);
        }
        let (wi, hi_) = (w as i32, h as i32);
        let tap = |ty: i32, tx: i32| -> u8 {
            if ty < 0 || tx < 0 || ty >= hi_ || tx >= wi {
                0
            } else {
                data[ty as usize * w + tx as usize]
            }
        };
        for j in (0..lo).chain(hi..self.ix.len()) {
            let (x, y) = (self.ix[j], self.iy[j]);
            upper[j] = [tap(y, x), tap(y, x + 1)];
            lower[j] = [tap(y + 1, x), tap(y + 1, x + 1)];
        }
    }

    /// `out[j] = (lerp2(taps of pixel j) - mean) * scale` for the pixels `j` in `range` of
    /// the last gathered plane (one vectorisable pass).
    fn blend_range(&self, norm: Normalise, out: &mut [f32], range: std::ops::Range<usize>) {
        let out = &mut out[range.clone()];
        let (a, b) = (&self.a[range.clone()], &self.b[range.clone()]);
        let [upper, lower] = self.q.each_ref().map(|q| &q[range.clone()]);
        for j in 0..out.len() {
            let taps = [upper[j][0], upper[j][1], lower[j][0], lower[j][1]].map(f32::from);
            out[j] = (lerp2(taps, a[j], b[j]) - norm.mean) * norm.scale;
        }
    }
}

/// `out = (v - mean) * scale` for each 8-bit value `v` of a warped window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalise {
    /// Subtracted first.
    pub mean: f32,
    /// Then multiplied.
    pub scale: f32,
}

impl Normalise {
    /// The reference's CASIA-SURF normalisation `(v - 127.5) / 128` (multiplying by 1/128 is
    /// exact: a power of two).
    pub const SURF: Normalise = Normalise { mean: 127.5, scale: 1.0 / 128.0 };
}

/// `(floor(v), floor(v) as i32)` for |v| < 2^22 in vectorisable arithmetic (baseline
/// x86-64 has no `roundps`, and `as i32` saturates): adding `1.5 * 2^23` rounds `v` to the
/// nearest integer, whose value then sits in the low mantissa bits; one step down when it
/// rounded up.
#[inline(always)]
fn floor_parts(v: f32) -> (f32, i32) {
    const MAGIC: f32 = 12_582_912.0;
    let t = v + MAGIC;
    let (r, i) = (t - MAGIC, t.to_bits() as i32 - 0x4B40_0000);
    let up = r > v;
    (r - f32::from(u8::from(up)), i - i32::from(up))
}

/// OpenCV's f32 bilinear blend of `[q00, q01, q10, q11]`, rounded half to even and
/// saturated to 0..=255 (returned as an f32 integer).
#[inline(always)]
fn lerp2([q00, q01, q10, q11]: [f32; 4], a: f32, b: f32) -> f32 {
    let top = q00 + a * (q01 - q00);
    let bot = q10 + a * (q11 - q10);
    let v = top + b * (bot - top);
    // Round half to even without a libm call: adding 2^23 leaves no fraction bits, and the
    // default rounding mode is to nearest, ties to even (exact for 0 <= v < 2^23; v is a
    // convex blend of 0..=255 values up to float error).
    const MAGIC: f32 = 8_388_608.0;
    ((v.max(0.0) + MAGIC) - MAGIC).min(255.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Image;
    use crate::transform::image8::tests::noise;

    #[test]
    fn several_sources_at_once_equal_one_at_a_time() {
        // A sample's modalities (colour, grey, grey) share the row coordinates; each output
        // must be what the source alone gives (grey replicated to three planes).
        let images = [noise(30, 30, 3, 11), noise(30, 30, 1, 12), noise(30, 30, 1, 13)];
        let planar: Vec<Planar8> = images.iter().map(Planar8::from_interleaved).collect();
        let (norm, size) = (Normalise::SURF, 20);
        for (angle, flip) in [(-27, true), (0, false), (14, true)] {
            let r = CanvasRotation::new(30, 30, angle, 0.8);
            let (top, left) = (r.height - size, 1);
            let mut outs = vec![vec![f32::NAN; 3 * size * size]; 3];
            let mut slots: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
            r.warp_windows_planar(&planar, top, left, size, flip, norm, &mut slots);
            for (img, out) in images.iter().zip(&outs) {
                let mut alone = vec![0f32; 3 * size * size];
                r.warp_window_chw(img, top, left, size, flip, norm, &mut alone);
                assert_eq!(out, &alone, "angle {angle}, {} channels", img.channels);
            }
        }
    }

    #[test]
    fn floor_parts_is_floor() {
        // Integers, halves (ties), values just either side of integers, negatives, and the
        // coordinate range of a rotation of a 2^20 image.
        let eps = [0.0, 0.5, 1e-6, -1e-6, 0.999_99, 0.25];
        for base in [-1_048_576.0f32, -200.0, -1.0, 0.0, 1.0, 2.0, 143.0, 1_048_575.0] {
            for e in eps {
                let v = base + e;
                let (f, i) = floor_parts(v);
                assert_eq!((f, i), (v.floor(), v.floor() as i32), "v = {v}");
            }
        }
    }

    #[test]
    fn canvas_sizes_follow_the_reference() {
        // 144 -> int(144 * 0.8) = 115 at angle 0 (docs/method.md §5.1), and at 30 degrees
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
        let img = noise(144, 144, 3, 7);
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

    /// The per-pixel arithmetic the span-based rows replace: source coordinates of each
    /// output pixel, four taps reading 0 outside the source, [`lerp2`], normalisation.
    fn per_pixel_window(
        r: &CanvasRotation,
        src: &Image8,
        (top, left, size): (usize, usize, usize),
        flip: bool,
        norm: Normalise,
    ) -> Vec<f32> {
        let [m0, m1, m2, m3, m4, m5] = r.inverse;
        let (w, h, c) = (src.width as i32, src.height as i32, src.channels);
        let tap = |y: i32, x: i32, k: usize| {
            let outside = y < 0 || x < 0 || y >= h || x >= w;
            if outside { 0.0 } else { f32::from(src.at(y as usize, x as usize, k)) }
        };
        let mut out = vec![0f32; 3 * size * size];
        for k in 0..3 {
            let ch = k.min(c - 1);
            for i in 0..size {
                let yf = (top + i) as f32;
                for j in 0..size {
                    let xf = (if flip { left + size - 1 - j } else { left + j }) as f32;
                    let (sx, sy) = (m0 * xf + (m1 * yf + m2), m3 * xf + (m4 * yf + m5));
                    let (fx, fy) = (sx.floor(), sy.floor());
                    let (x0, y0) = (fx as i32, fy as i32);
                    let taps = [
                        tap(y0, x0, ch),
                        tap(y0, x0 + 1, ch),
                        tap(y0 + 1, x0, ch),
                        tap(y0 + 1, x0 + 1, ch),
                    ];
                    let v = lerp2(taps, sx - fx, sy - fy);
                    out[(k * size + i) * size + j] = (v - norm.mean) * norm.scale;
                }
            }
        }
        out
    }

    #[test]
    fn span_rows_equal_the_per_pixel_arithmetic_bit_for_bit() {
        // Windows in the canvas corners and centre, at angles whose canvas corners map outside
        // the source (border taps) and at 0 (all inside), both flips, grey and colour.
        let norm = Normalise::SURF;
        for (c, seed) in [(1, 3), (3, 4)] {
            let img = noise(40, 37, c, seed);
            for angle in [-30, -23, -8, 0, 5, 19, 30] {
                let r = CanvasRotation::new(40, 37, angle, 0.8);
                let size = 24;
                let (bottom, right) = (r.height - size, r.width - size);
                for (top, left) in [(0, 0), (bottom, right), (0, right), (bottom / 2, right / 2)] {
                    for flip in [false, true] {
                        let mut out = vec![f32::NAN; 3 * size * size];
                        r.warp_window_chw(&img, top, left, size, flip, norm, &mut out);
                        let reference = per_pixel_window(&r, &img, (top, left, size), flip, norm);
                        let same =
                            out.iter().zip(&reference).all(|(a, b)| a.to_bits() == b.to_bits());
                        assert!(same, "c {c}, angle {angle}, window ({top}, {left}), flip {flip}");
                    }
                }
            }
        }
    }

    #[test]
    fn avx2_interior_equals_the_scalar_rows_bit_for_bit() {
        // Random angles (within and beyond +-30), canvas ratios, source sizes from 2x2 to
        // 200x200 (square and not), 1 and 3 planes, windows anywhere on the canvas, both flips,
        // the SURF and an arbitrary normalisation: the AVX2 interior against the scalar rows,
        // and (a sample) both against the per-pixel arithmetic.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: usize| {
            // xorshift64* (Vigna), reduced modulo n: enough spread for test cases.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        };
        let simd = warp_x86::available();
        let mut simd_pixels = 0;
        for case in 0..400 {
            let (h, w) = match case % 4 {
                0 => (3, 3),
                1 => (2 + next(12), 2 + next(12)),
                2 => (8 + next(60), 8 + next(60)),
                _ => (100 + next(101), 100 + next(101)),
            };
            let c = [1, 3][next(2)];
            let angle = if case % 3 == 0 { next(361) as i32 - 180 } else { next(61) as i32 - 30 };
            let ratio = [0.8, 1.0, 1.3][next(3)];
            let r = CanvasRotation::new(h, w, angle, ratio);
            if r.height == 0 || r.width == 0 {
                continue;
            }
            let size = 1 + next(r.height.min(r.width));
            let (top, left) = (next(r.height - size + 1), next(r.width - size + 1));
            let flip = next(2) == 1;
            let norm = [Normalise::SURF, Normalise { mean: 3.25, scale: -0.7 }][next(2)];
            let img = noise(h, w, c, case);
            let planar = Planar8::from_interleaved(&img);
            let window = (top, left, size);
            let run = |simd: bool| {
                let mut out = vec![f32::NAN; 3 * size * size];
                let planes = std::slice::from_ref(&planar);
                r.warp_windows_with(planes, window, flip, norm, &mut [&mut out], simd);
                out.into_iter().map(f32::to_bits).collect::<Vec<u32>>()
            };
            let scalar = run(false);
            let label = format!("{h}x{w}x{c}, angle {angle}, ratio {ratio}, {window:?}, {flip}");
            if case % 10 == 0 {
                let reference = per_pixel_window(&r, &img, window, flip, norm);
                let reference: Vec<u32> = reference.into_iter().map(f32::to_bits).collect();
                assert!(scalar == reference, "scalar, {label}");
            }
            if simd {
                assert!(run(true) == scalar, "AVX2, {label}");
                simd_pixels += interior_octet_pixels(&r, &planar, window, flip);
            }
        }
        // The AVX2 half has run on a good share of pixels (not only fallbacks).
        assert!(!simd || simd_pixels > 100_000, "{simd_pixels} pixels on AVX2");
    }

    /// How many of a window's pixels (per plane) the AVX2 interior covers: the interior spans
    /// of 8 pixels or more.
    fn interior_octet_pixels(
        r: &CanvasRotation,
        src: &Planar8,
        (top, left, size): (usize, usize, usize),
        flip: bool,
    ) -> usize {
        let mut rows = RowScratch::default();
        let spans = (0..size).map(|i| r.row_coordinates(src, top + i, left, flip, size, &mut rows));
        spans.map(|(lo, hi)| if hi - lo >= 8 { hi - lo } else { 0 }).sum()
    }

    #[test]
    fn window_equals_warp_then_crop_flip_and_normalise() {
        let norm = Normalise::SURF;
        for (c, angle, flip) in [(3, 13, false), (3, -29, true), (1, 0, true), (1, 22, false)] {
            let img = noise(40, 40, c, 7);
            let r = CanvasRotation::new(40, 40, angle, 0.8);
            let full = r.warp(&img);
            let (size, top, left) = (28, 2, 3);
            let mut out = vec![f32::NAN; 3 * size * size];
            r.warp_window_chw(&img, top, left, size, flip, norm, &mut out);
            for k in 0..3 {
                for i in 0..size {
                    for j in 0..size {
                        let jj = if flip { size - 1 - j } else { j };
                        let v = full.at(top + i, left + jj, k.min(c - 1));
                        assert_eq!(out[(k * size + i) * size + j], (f32::from(v) - 127.5) / 128.0);
                    }
                }
            }
        }
    }
}
