//! [`Image8`]: 8-bit HWC images as `cv2.imread` gives them, decoded straight from JPEG with
//! zune-jpeg, and OpenCV's fixed-point bilinear resize of 8-bit images.
//!
//! OpenCV resizes and warps 8-bit images in 8 bits (rounding after each step), so keeping the
//! pipeline in `u8` is both faster and closer to the reference than f32 intermediates.

use std::path::Path;

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::hresize_x86::{self, PlaneTaps, Tap};
use super::{Image, Planar8};
use crate::{DataError, Result};

/// An interleaved (HWC) 8-bit image with 1 (grey) or 3 (BGR) channels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Image8 {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels per pixel.
    pub channels: usize,
    /// `height * width * channels` values, row-major, channels last.
    pub data: Vec<u8>,
}

impl Image8 {
    /// Checks the buffer length.
    pub fn new(height: usize, width: usize, channels: usize, data: Vec<u8>) -> Result<Self> {
        if data.len() != height * width * channels {
            return Err(DataError::shape(
                "image buffer",
                format!("{height}x{width}x{channels}"),
                data.len(),
            ));
        }
        Ok(Image8 { height, width, channels, data })
    }

    /// The value at row `y`, column `x`, channel `c` (panics outside the image).
    #[inline]
    pub fn at(&self, y: usize, x: usize, c: usize) -> u8 {
        self.data[(y * self.width + x) * self.channels + c]
    }

    /// The same pixels as f32.
    pub fn to_f32(&self) -> Image {
        Image {
            height: self.height,
            width: self.width,
            channels: self.channels,
            data: self.data.iter().map(|&v| f32::from(v)).collect(),
        }
    }

    /// Resizes the geometry and the buffer, keeping the allocation.
    fn reshape(&mut self, height: usize, width: usize, channels: usize) {
        self.height = height;
        self.width = width;
        self.channels = channels;
        self.data.resize(height * width * channels, 0);
    }

    /// `cv2.resize(img, (width, height))` (`INTER_LINEAR`) on 8 bits, bit-exact with OpenCV
    /// 5.0's fixed-point path (checked with opencv-python 5.0.0 on random images).
    pub fn resize_bilinear(&self, height: usize, width: usize) -> Image8 {
        let mut out = Image8::default();
        self.resize_bilinear_into(height, width, &mut out, &mut ResizeScratch::default());
        out
    }

    /// [`Image8::resize_bilinear`] into `out`, reusing its buffer and `scratch`.
    ///
    /// OpenCV's arithmetic: weights `round(w * 2048)` per axis; the horizontal pass keeps
    /// `int` sums `S = a0 * p0 + a1 * p1`; the vertical pass computes
    /// `(((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16) + 2) >> 2`.
    pub fn resize_bilinear_into(
        &self,
        height: usize,
        width: usize,
        out: &mut Image8,
        scratch: &mut ResizeScratch,
    ) {
        let c = self.channels;
        out.reshape(height, width, c);
        if height == 0 || width == 0 || self.height == 0 || self.width == 0 {
            out.data.fill(0);
            return;
        }
        let row_out = width * c;
        scratch.set_x_taps(self.width, width, c);
        scratch.rows[0].resize(row_out, 0);
        scratch.rows[1].resize(row_out, 0);
        let mut cached = [usize::MAX; 2];
        let src_row = self.width * c;
        let ys = fixed_taps(self.height, height);
        for (orow, (y0, y1, f)) in out.data.chunks_exact_mut(row_out).zip(ys) {
            // Slot 0 holds the horizontal pass of row y0, slot 1 that of y1 (unless equal).
            if cached[0] != y0 {
                if cached[1] == y0 {
                    scratch.rows.swap(0, 1);
                    cached.swap(0, 1);
                } else {
                    let src = &self.data[y0 * src_row..(y0 + 1) * src_row];
                    hresize_row(src, c, &scratch.xofs, &scratch.xw, &mut scratch.rows[0]);
                    cached[0] = y0;
                }
            }
            if y1 != y0 && cached[1] != y1 {
                let src = &self.data[y1 * src_row..(y1 + 1) * src_row];
                hresize_row(src, c, &scratch.xofs, &scratch.xw, &mut scratch.rows[1]);
                cached[1] = y1;
            }
            let (b0, b1) = weights_2048(f);
            let s1 = if y1 == y0 { &scratch.rows[0] } else { &scratch.rows[1] };
            vresize_row(&scratch.rows[0], s1, b0, b1, orow);
        }
    }

    /// [`Image8::resize_bilinear_into`] writing the planes of the result (CHW) into `out`:
    /// the same values bit for bit, in the layout [`super::CanvasRotation`] reads.
    ///
    /// The horizontal pass keeps `S >> 4` as i16 (`S <= 255 * 2049`, so `S >> 4 <= 32655`)
    /// for every source row, two rows per sweep over the column taps; the vertical pass is
    /// then `((s * b) >> 16)` on 16 bits, OpenCV's own SIMD form, which vectorises
    /// (`pmulhuw`).
    ///
    /// # Shapes
    /// `out` becomes `[channels, height, width]`.
    pub fn resize_bilinear_planar_into(
        &self,
        height: usize,
        width: usize,
        out: &mut Planar8,
        scratch: &mut ResizeScratch,
    ) {
        self.resize_planar_ordered(height, width, out, scratch, ChannelOrder::Bgr);
    }

    /// [`Image8::resize_bilinear_planar_into`] for an image whose channels are in `order`:
    /// the planes come out in BGR order either way (RGB channels are written in reverse).
    pub(crate) fn resize_planar_ordered(
        &self,
        height: usize,
        width: usize,
        out: &mut Planar8,
        scratch: &mut ResizeScratch,
        order: ChannelOrder,
    ) {
        self.resize_planar_with(height, width, out, scratch, order, hresize_x86::available());
    }

    /// [`Image8::resize_planar_ordered`], its horizontal pass on SIMD plane rows
    /// ([`Image8::hresize_planes`]) when `simd` and there are 1 or 3 channels, else scalar
    /// ([`hresize_two_rows_planar`]): the same values either way.
    fn resize_planar_with(
        &self,
        height: usize,
        width: usize,
        out: &mut Planar8,
        scratch: &mut ResizeScratch,
        order: ChannelOrder,
        simd: bool,
    ) {
        let c = self.channels;
        let reverse = order == ChannelOrder::Rgb && c > 1;
        out.reshape(height, width, c);
        if height == 0 || width == 0 || self.height == 0 || self.width == 0 || c == 0 {
            out.data.fill(0);
            return;
        }
        let src_row = self.width * c;
        let row16 = c * width;
        scratch.rows16.resize(self.height * row16, 0);
        if simd && (c == 1 || c == 3) {
            self.hresize_planes(width, scratch);
        } else {
            scratch.set_x_taps(self.width, width, c);
            let ResizeScratch { xofs, xw, rows16: all, .. } = scratch;
            // The horizontal pass of every source row first (two rows per sweep over the
            // column taps, sharing their loads), then the vertical pass reading two per
            // output row.
            let mut src_pairs = self.data.chunks_exact(2 * src_row);
            let mut dst_pairs = all.chunks_exact_mut(2 * row16);
            for (s, d) in (&mut src_pairs).zip(&mut dst_pairs) {
                let (s0, s1) = s.split_at(src_row);
                let (d0, d1) = d.split_at_mut(row16);
                hresize_two_rows_planar(s0, s1, c, xofs, xw, d0, d1);
            }
            if let (Some(s), Some(d)) =
                (src_pairs.remainder().get(..src_row), dst_pairs.into_remainder().get_mut(..row16))
            {
                hresize_row_planar(s, c, xofs, xw, d);
            }
        }
        let all = &scratch.rows16;
        let plane = height * width;
        // The row taps (cached per height pair, as the column taps).
        let (key, row_taps) = &mut scratch.row_taps;
        if *key != Some((self.height, height)) {
            *row_taps = column_taps(self.height, height);
            *key = Some((self.height, height));
        }
        for (y, &(y0, y1, b0, b1)) in row_taps.iter().enumerate() {
            let (y0, y1) = (y0 as usize, y1 as usize);
            let s0 = &all[y0 * row16..(y0 + 1) * row16];
            let s1 = &all[y1 * row16..(y1 + 1) * row16];
            let planes = s0.chunks_exact(width).zip(s1.chunks_exact(width));
            for (k, (p, q)) in planes.enumerate() {
                let k = if reverse { c - 1 - k } else { k };
                let dst = &mut out.data[k * plane + y * width..][..width];
                vresize_row_i16(p, q, b0, b1, dst, simd);
            }
        }
    }
}

impl Image8 {
    /// The horizontal pass of every row into `scratch.rows16` plane row by plane row
    /// ([`hresize_x86::hresize_plane_row`]); colour rows are split into planes first.
    fn hresize_planes(&self, width: usize, scratch: &mut ResizeScratch) {
        let (c, n) = (self.channels, self.width);
        let ResizeScratch { plane_taps, colour_row, rows16, .. } = scratch;
        plane_taps.set(n, width, || column_taps(n, width));
        colour_row.resize(3 * n, 0);
        let (p0, rest) = colour_row.split_at_mut(n);
        let (p1, p2) = rest.split_at_mut(n);
        for (src, dst) in self.data.chunks_exact(c * n).zip(rows16.chunks_exact_mut(c * width)) {
            if c == 1 {
                hresize_x86::hresize_plane_row(src, plane_taps, dst);
                continue;
            }
            hresize_x86::deinterleave3(src, p0, p1, p2);
            for (p, d) in [&*p0, &*p1, &*p2].into_iter().zip(dst.chunks_exact_mut(width)) {
                hresize_x86::hresize_plane_row(p, plane_taps, d);
            }
        }
    }
}

/// Reusable buffers of [`Image8::resize_bilinear_into`] and
/// [`Image8::resize_bilinear_planar_into`].
#[derive(Clone, Debug, Default)]
pub struct ResizeScratch {
    xofs: Vec<(u32, u32)>,
    xw: Vec<(i32, i32)>,
    rows: [Vec<i32>; 2],
    /// `S >> 4` of every source row, each row plane after plane.
    rows16: Vec<i16>,
    /// The column taps of the SIMD plane pass.
    plane_taps: PlaneTaps,
    /// One colour row split into its three planes.
    colour_row: Vec<u8>,
    /// `(source height, height)` and the row taps `(y0, y1, b0, b1)` for it.
    row_taps: (Option<(usize, usize)>, Vec<Tap>),
}

impl ResizeScratch {
    /// Per output column: the first source element, the step to the second, the weights.
    fn set_x_taps(&mut self, src_width: usize, width: usize, c: usize) {
        self.xofs.clear();
        self.xw.clear();
        for (x0, x1, f) in fixed_taps(src_width, width) {
            self.xofs.push(((x0 * c) as u32, ((x1 - x0) * c) as u32));
            self.xw.push(weights_2048(f));
        }
    }
}

/// The horizontal pass into planes: `dst[k * width + x] = (a0 * p0 + a1 * p1) >> 4`.
fn hresize_row_planar(
    src: &[u8],
    c: usize,
    xofs: &[(u32, u32)],
    xw: &[(i32, i32)],
    dst: &mut [i16],
) {
    match c {
        1 => hresize_row_planar_c::<1>(src, xofs, xw, dst),
        3 => hresize_row_planar_c::<3>(src, xofs, xw, dst),
        _ => {
            let width = xofs.len();
            for (k, plane) in dst.chunks_exact_mut(width).enumerate().take(c) {
                for ((d, &(o, step)), &(a0, a1)) in plane.iter_mut().zip(xofs).zip(xw) {
                    let o = o as usize + k;
                    let s = i32::from(src[o]) * a0 + i32::from(src[o + step as usize]) * a1;
                    *d = (s >> 4) as i16;
                }
            }
        }
    }
}

/// [`hresize_row_planar`] of two source rows in one sweep over the column taps.
fn hresize_two_rows_planar(
    s0: &[u8],
    s1: &[u8],
    c: usize,
    xofs: &[(u32, u32)],
    xw: &[(i32, i32)],
    d0: &mut [i16],
    d1: &mut [i16],
) {
    match c {
        1 => hresize_two_rows_planar_c::<1>(s0, s1, xofs, xw, d0, d1),
        3 => hresize_two_rows_planar_c::<3>(s0, s1, xofs, xw, d0, d1),
        _ => {
            hresize_row_planar(s0, c, xofs, xw, d0);
            hresize_row_planar(s1, c, xofs, xw, d1);
        }
    }
}

fn hresize_two_rows_planar_c<const C: usize>(
    s0: &[u8],
    s1: &[u8],
    xofs: &[(u32, u32)],
    xw: &[(i32, i32)],
    d0: &mut [i16],
    d1: &mut [i16],
) {
    let width = xofs.len();
    let mut c0 = d0.chunks_exact_mut(width);
    let mut c1 = d1.chunks_exact_mut(width);
    let p0s: [&mut [i16]; C] = std::array::from_fn(|_| c0.next().expect("C planes"));
    let p1s: [&mut [i16]; C] = std::array::from_fn(|_| c1.next().expect("C planes"));
    for (x, (&(o, step), &(a0, a1))) in xofs.iter().zip(xw).enumerate() {
        let (o, step) = (o as usize, step as usize);
        let (r0, r1) = (&s0[o..o + step + C], &s1[o..o + step + C]);
        for k in 0..C {
            let v0 = i32::from(r0[k]) * a0 + i32::from(r0[step + k]) * a1;
            let v1 = i32::from(r1[k]) * a0 + i32::from(r1[step + k]) * a1;
            p0s[k][x] = (v0 >> 4) as i16;
            p1s[k][x] = (v1 >> 4) as i16;
        }
    }
}

/// [`hresize_row_planar`] for `C` channels: one pass over the columns, `C` planes written.
fn hresize_row_planar_c<const C: usize>(
    src: &[u8],
    xofs: &[(u32, u32)],
    xw: &[(i32, i32)],
    dst: &mut [i16],
) {
    let width = xofs.len();
    let mut chunks = dst.chunks_exact_mut(width);
    let planes: [&mut [i16]; C] = std::array::from_fn(|_| chunks.next().expect("C planes"));
    for (x, (&(o, step), &(a0, a1))) in xofs.iter().zip(xw).enumerate() {
        let (o, step) = (o as usize, step as usize);
        let p = &src[o..o + step + C];
        let (p0, p1) = (&p[..C], &p[p.len() - C..]);
        for k in 0..C {
            let s = i32::from(p0[k]) * a0 + i32::from(p1[k]) * a1;
            planes[k][x] = (s >> 4) as i16;
        }
    }
}

/// The vertical pass on 16 bits: `((s0 * b0 >> 16) + (s1 * b1 >> 16) + 2) >> 2`, saturated.
/// Every operand is non-negative (`s <= 32655`, `b <= 2049`), so the unsigned high-half
/// multiply (`pmulhuw`) gives OpenCV's signed one, and the sum (at most 2042) stays below 256
/// after the shift only when the input does (saturating anyway, as OpenCV). With `simd`, the
/// AVX2 form ([`hresize_x86::vresize_row_simd`]) does the leading multiples of 32 outputs.
fn vresize_row_i16(s0: &[i16], s1: &[i16], b0: i16, b1: i16, dst: &mut [u8], simd: bool) {
    let (b0, b1) = (b0 as u16, b1 as u16);
    let done = if simd { hresize_x86::vresize_row_simd(s0, s1, b0, b1, dst) } else { 0 };
    let rows = s0[done..].iter().zip(&s1[done..]);
    for (d, (&p, &q)) in dst[done..].iter_mut().zip(rows) {
        let m0 = ((u32::from(p as u16) * u32::from(b0)) >> 16) as u16;
        let m1 = ((u32::from(q as u16) * u32::from(b1)) >> 16) as u16;
        *d = ((m0 + m1 + 2) >> 2).min(255) as u8;
    }
}

/// The interleaved horizontal pass: `dst[x * c + k] = a0 * p0 + a1 * p1` (the planar pass,
/// [`hresize_row_planar`], is the one the loader runs).
fn hresize_row(src: &[u8], c: usize, xofs: &[(u32, u32)], xw: &[(i32, i32)], dst: &mut [i32]) {
    for ((d, &(o, step)), &(a0, a1)) in dst.chunks_exact_mut(c).zip(xofs).zip(xw) {
        let (o, step) = (o as usize, step as usize);
        for (k, dk) in d.iter_mut().enumerate() {
            *dk = i32::from(src[o + k]) * a0 + i32::from(src[o + step + k]) * a1;
        }
    }
}

fn vresize_row(s0: &[i32], s1: &[i32], b0: i32, b1: i32, dst: &mut [u8]) {
    for ((d, &p), &q) in dst.iter_mut().zip(s0).zip(s1) {
        let v = ((((p >> 4) * b0) >> 16) + (((q >> 4) * b1) >> 16) + 2) >> 2;
        *d = v.clamp(0, 255) as u8;
    }
}

/// Per output column of a plane row `src -> dst` wide: `(x0, x1, a0, a1)` (the weights, at
/// most 2048, fit i16).
pub(super) fn column_taps(src: usize, dst: usize) -> Vec<Tap> {
    let tap = |(x0, x1, f)| {
        let (a0, a1) = weights_2048(f);
        (x0 as u32, x1 as u32, a0 as i16, a1 as i16)
    };
    fixed_taps(src, dst).map(tap).collect()
}

/// `(round((1 - f) * 2048), round(f * 2048))` as OpenCV computes them (f32, ties to even).
fn weights_2048(f: f32) -> (i32, i32) {
    (((1.0 - f) * 2048.0).round_ties_even() as i32, (f * 2048.0).round_ties_even() as i32)
}

/// OpenCV's `INTER_LINEAR` taps in f32: `f = (i + 0.5) * scale - 0.5`, clamped at the borders.
fn fixed_taps(src: usize, dst: usize) -> impl Iterator<Item = (usize, usize, f32)> {
    let scale = src as f64 / dst as f64;
    (0..dst).map(move |i| {
        let s = ((i as f64 + 0.5) * scale - 0.5) as f32;
        let i0 = s.floor();
        let (i0, f) = if i0 < 0.0 { (0, 0.0) } else { (i0 as usize, s - i0) };
        if i0 >= src - 1 { (src - 1, src - 1, 0.0) } else { (i0, i0 + 1, f) }
    })
}

/// Reads an 8-bit image like `cv2.imread(path)` (BGR order, values 0..=255), except that
/// one-channel files stay one channel: `cv2.imread` would replicate them to three equal
/// channels, and every transform here treats a grey image as three equal channels.
///
/// JPEGs are decoded by zune-jpeg (SIMD, runtime-detected) straight to BGR or grey; other
/// formats go through the `image` crate.
pub fn read_bgr(path: &Path) -> Result<Image8> {
    let mut out = Image8::default();
    read_bgr_into(path, &mut out, &mut Vec::new())?;
    Ok(out)
}

/// [`read_bgr`] into `out`, reusing its buffer and `file` (the file's bytes).
pub fn read_bgr_into(path: &Path, out: &mut Image8, file: &mut Vec<u8>) -> Result<()> {
    read_file(path, file)?;
    decode_bgr_into(file, path, out)
}

/// The channel order of a decoded colour image (grey images are either).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChannelOrder {
    /// Blue, green, red: what [`read_bgr`] gives.
    Bgr,
    /// Red, green, blue: colour JPEGs as the decoder writes them.
    Rgb,
}

/// [`read_bgr_into`] without the final swap of colour JPEGs, which then stay RGB (the planar
/// resize puts their planes in BGR order): the same values, one pass fewer.
pub(crate) fn read_any_order_into(
    path: &Path,
    out: &mut Image8,
    file: &mut Vec<u8>,
) -> Result<ChannelOrder> {
    read_file(path, file)?;
    decode_into(file, path, out, ChannelOrder::Rgb)
}

fn read_file(path: &Path, file: &mut Vec<u8>) -> Result<()> {
    use std::io::Read;
    file.clear();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(file))
        .map_err(|e| DataError::io(path, e))?;
    Ok(())
}

/// Decodes encoded image bytes as [`read_bgr`] does; `path` only names the file in errors.
pub fn decode_bgr_into(bytes: &[u8], path: &Path, out: &mut Image8) -> Result<()> {
    decode_into(bytes, path, out, ChannelOrder::Bgr).map(|_| ())
}

/// Decodes to grey or colour; colour JPEGs come out in `jpeg_order`, other colour images in
/// BGR. Returns the order of `out`.
fn decode_into(
    bytes: &[u8],
    path: &Path,
    out: &mut Image8,
    jpeg_order: ChannelOrder,
) -> Result<ChannelOrder> {
    if bytes.starts_with(&[0xFF, 0xD8]) && decode_jpeg_into(bytes, path, out, jpeg_order)? {
        return Ok(if out.channels == 3 { jpeg_order } else { ChannelOrder::Bgr });
    }
    let img = image::load_from_memory(bytes).map_err(|e| DataError::decode(path, e.to_string()))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if img.color().has_color() {
        let rgb = img.to_rgb8();
        out.reshape(h, w, 3);
        for (d, s) in out.data.chunks_exact_mut(3).zip(rgb.as_raw().chunks_exact(3)) {
            d.copy_from_slice(&[s[2], s[1], s[0]]);
        }
    } else {
        let grey = img.to_luma8();
        out.reshape(h, w, 1);
        out.data.copy_from_slice(grey.as_raw());
    }
    Ok(ChannelOrder::Bgr)
}

/// Decodes a JPEG with zune-jpeg, colour in `order`; `Ok(false)` for colour spaces it cannot
/// give as RGB/BGR or grey (CMYK, YCCK, ...), which the caller hands to the `image` crate.
fn decode_jpeg_into(
    bytes: &[u8],
    path: &Path,
    out: &mut Image8,
    order: ChannelOrder,
) -> Result<bool> {
    let err = |e: zune_jpeg::errors::DecodeErrors| DataError::decode(path, e.to_string());
    // Colour is decoded to RGB (zune-jpeg's AVX2 colour conversion; its BGR output is
    // scalar) and swapped to BGR here.
    let options = DecoderOptions::new_fast().set_strict_mode(false);
    let mut dec = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    dec.decode_headers().map_err(err)?;
    let (target, channels) = match dec.input_colorspace() {
        Some(ColorSpace::Luma) => (ColorSpace::Luma, 1),
        Some(ColorSpace::YCbCr) => (ColorSpace::RGB, 3),
        _ => return Ok(false),
    };
    dec.set_options(options.jpeg_set_out_colorspace(target));
    let (w, h) = dec.dimensions().ok_or_else(|| DataError::decode(path, "no JPEG dimensions"))?;
    out.reshape(h, w, channels);
    dec.decode_into(&mut out.data).map_err(err)?;
    if channels == 3 && order == ChannelOrder::Bgr {
        for px in out.data.chunks_exact_mut(3) {
            px.swap(0, 2);
        }
    }
    Ok(true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The f32 bilinear resize rounded to u8: the arithmetic without OpenCV's fixed point.
    fn reference_resize(img: &Image8, h: usize, w: usize) -> Vec<u8> {
        let r = img.to_f32().resize_bilinear(h, w);
        r.data.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect()
    }

    /// Deterministic noise images for the transform tests (also used by `canvas_rotation`).
    pub(crate) fn noise(h: usize, w: usize, c: usize, seed: u32) -> Image8 {
        // A fixed LCG: deterministic noise without a generator dependency.
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
        let data = (0..h * w * c)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (s >> 16) as u8
            })
            .collect();
        Image8::new(h, w, c, data).unwrap()
    }

    #[test]
    fn fixed_point_resize_is_within_one_level_of_exact_bilinear() {
        for (h, w, c, oh, ow) in [(180, 180, 3, 144, 144), (37, 23, 1, 16, 29), (9, 9, 3, 9, 9)] {
            let img = noise(h, w, c, (h * w) as u32);
            let ours = img.resize_bilinear(oh, ow);
            assert_eq!((ours.height, ours.width, ours.channels), (oh, ow, c));
            let exact = reference_resize(&img, oh, ow);
            let max = ours.data.iter().zip(&exact).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
            assert!(max <= 1, "{h}x{w} -> {oh}x{ow}: {max}");
        }
        // Identity size is the identity.
        let img = noise(9, 9, 3, 1);
        assert_eq!(img.resize_bilinear(9, 9), img);
    }

    #[test]
    fn planar_resize_equals_the_interleaved_resize_bit_for_bit() {
        // Down, up, identity and odd sizes; one scratch reused across all of them.
        let (mut out, mut scratch) = (Planar8::default(), ResizeScratch::default());
        let cases = [(180, 180, 3, 144, 144), (180, 176, 1, 144, 144), (37, 23, 3, 16, 29)];
        for (h, w, c, oh, ow) in cases.into_iter().chain([(9, 9, 1, 9, 9), (1, 4, 3, 3, 2)]) {
            let img = noise(h, w, c, (h * w + c) as u32);
            img.resize_bilinear_planar_into(oh, ow, &mut out, &mut scratch);
            assert_eq!((out.height, out.width, out.planes), (oh, ow, c));
            assert_eq!(
                out.to_interleaved(),
                img.resize_bilinear(oh, ow),
                "{h}x{w}x{c} -> {oh}x{ow}"
            );
        }
        // Saturated input: the largest horizontal sums still fit the 16-bit pass.
        let white = Image8::new(7, 5, 3, vec![255; 105]).unwrap();
        white.resize_bilinear_planar_into(4, 3, &mut out, &mut scratch);
        assert!(out.data.iter().all(|&v| v == 255));
    }

    #[test]
    fn simd_passes_equal_the_scalar_passes_bit_for_bit() {
        // Random sizes (a fixed LCG): widths 1..=220 (below 16, not multiples of 8),
        // downscales to 1/5 and upscales to 2x, both channel orders; one scratch reused for
        // every SIMD call (its taps are cached per width pair) and one for the scalar calls.
        let (mut simd, mut scalar) = (Planar8::default(), Planar8::default());
        let (mut s_simd, mut s_scalar) = (ResizeScratch::default(), ResizeScratch::default());
        let mut state = 99u32;
        let mut next = |n: usize| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 8) as usize % n
        };
        let mut cases = vec![(180, 180, 3, 144, 144), (180, 180, 1, 144, 144), (16, 64, 1, 16, 16)];
        cases.extend([(5, 180, 3, 5, 45), (3, 17, 3, 2, 15), (2, 15, 1, 2, 31), (4, 16, 3, 4, 8)]);
        for _ in 0..400 {
            let (h, w, c) = (1 + next(24), 1 + next(220), [1, 3][next(2)]);
            let ow = (w / 5).max(1) + next(2 * w + 4 - (w / 5).max(1));
            cases.push((h, w, c, 1 + next(30), ow));
        }
        for (i, &(h, w, c, oh, ow)) in cases.iter().enumerate() {
            let img = noise(h, w, c, i as u32);
            for order in [ChannelOrder::Bgr, ChannelOrder::Rgb] {
                img.resize_planar_with(oh, ow, &mut simd, &mut s_simd, order, true);
                img.resize_planar_with(oh, ow, &mut scalar, &mut s_scalar, order, false);
                let shape = |p: &Planar8| (p.height, p.width, p.planes, p.data.len());
                let first_diff = simd.data.iter().zip(&scalar.data).position(|(a, b)| a != b);
                let case = format!("{h}x{w}x{c} -> {oh}x{ow}, {order:?}");
                assert_eq!((shape(&simd), first_diff), (shape(&scalar), None), "{case}");
            }
        }
        // The loader's sizes do run on SIMD: all 18 octets of 180 -> 144 fit their windows.
        let img = noise(180, 180, 3, 5);
        img.resize_planar_with(144, 144, &mut simd, &mut s_simd, ChannelOrder::Rgb, true);
        assert_eq!(s_simd.plane_taps.simd_octets(), 144 / 8);
        // Saturated input: the largest sums pack to i16 without saturating.
        let white = Image8::new(3, 40, 3, vec![255; 360]).unwrap();
        white.resize_planar_with(2, 37, &mut simd, &mut s_simd, ChannelOrder::Bgr, true);
        assert!(simd.data.iter().all(|&v| v == 255));
    }

    #[test]
    fn fixed_point_resize_matches_opencv_examples() {
        // Outputs of opencv-python 5.0.0's cv2.resize(np.array([row], np.uint8), (w, 1)).
        // Scale 2: taps are pixel pairs with weights 1024/1024; a 1-row source has vertical
        // weights 2048/0: ((2048 >> 4) * 2048 >> 16 + 2) >> 2 = 1.
        let img = Image8::new(1, 4, 1, vec![0, 2, 4, 8]).unwrap();
        assert_eq!(img.resize_bilinear(1, 2).data, [1, 6]);
        // Ties: (0 + 3) / 2 = 1.5 rounds up in OpenCV's fixed point (+2 >> 2).
        let img = Image8::new(1, 4, 1, vec![0, 3, 0, 3]).unwrap();
        assert_eq!(img.resize_bilinear(1, 2).data, [2, 2]);
        // Scale 5/3: weights round(2048 / 3) = 683 and 1365.
        let img = Image8::new(1, 5, 1, vec![0, 3, 0, 3, 5]).unwrap();
        assert_eq!(img.resize_bilinear(1, 3).data, [1, 0, 4]);
    }

    #[test]
    fn grey_and_colour_jpegs_decode_to_grey_and_bgr() {
        let dir = tempfile::tempdir().unwrap();
        let rgb = dir.path().join("rgb.jpg");
        image::RgbImage::from_pixel(16, 8, image::Rgb([250, 10, 10])).save(&rgb).unwrap();
        let grey = dir.path().join("grey.jpg");
        image::GrayImage::from_pixel(8, 8, image::Luma([77])).save(&grey).unwrap();
        let png = dir.path().join("rgb.png");
        image::RgbImage::from_pixel(5, 3, image::Rgb([1, 2, 3])).save(&png).unwrap();
        let c = read_bgr(&rgb).unwrap();
        assert_eq!((c.height, c.width, c.channels), (8, 16, 3));
        // BGR order; JPEG keeps a flat colour within a few levels.
        assert!(c.data.chunks_exact(3).all(|p| p[0] < 25 && p[2] > 235), "{:?}", &c.data[..3]);
        let g = read_bgr(&grey).unwrap();
        assert_eq!((g.height, g.width, g.channels), (8, 8, 1));
        assert!(g.data.iter().all(|v| v.abs_diff(77) <= 2));
        let p = read_bgr(&png).unwrap();
        assert_eq!((p.channels, &p.data[..3]), (3, &[3, 2, 1][..]));
        let bad = dir.path().join("bad.jpg");
        std::fs::write(&bad, [0xFF, 0xD8, 0xFF, 0x00, 1, 2]).unwrap();
        assert!(read_bgr(&bad).unwrap_err().to_string().contains("bad.jpg"));
        // Reusing buffers gives the same result.
        let (mut out, mut file) = (Image8::default(), Vec::new());
        read_bgr_into(&rgb, &mut out, &mut file).unwrap();
        read_bgr_into(&grey, &mut out, &mut file).unwrap();
        assert_eq!(out, g);
    }
}
