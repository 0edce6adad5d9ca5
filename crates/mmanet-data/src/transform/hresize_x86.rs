//! The horizontal pass of the planar 8-bit bilinear resize on x86_64 SIMD (AVX2, else SSSE3,
//! detected at run time; std caches the detection), bit-exact with the scalar pass of
//! [`super::image8`].
//!
//! One plane row (contiguous `u8`) at a time, outputs in octets: each half of an octet (four
//! outputs) loads 16 source bytes at a precomputed base, `pshufb` gathers the four
//! `(p0, p1)` tap pairs as i16, `pmaddwd` with the interleaved weights `(a0, a1)` gives the
//! exact i32 sums `a0 * p0 + a1 * p1`, shifted right by 4 and packed to i16 (the sums are at
//! most `255 * 2049 >> 4 = 32655`, so the pack never saturates). Octets whose taps do not fit
//! 16 bytes (downscales beyond about 4x), rows narrower than 16 and the last `width % 8`
//! outputs take the scalar formula. AVX2 does two octets per step (each octet's two windows
//! in the two 128-bit lanes). Colour rows are first split into three planes. The vertical
//! pass has its AVX2 form here too ([`vresize_row_simd`], `pmulhuw` on 32 outputs per step).

// The workspace denies `unsafe_code`; this module is the one exception: SIMD intrinsics are
// unsafe functions (`#[target_feature]`, unaligned loads through raw pointers). Every unsafe
// block states why it is sound, the public functions are safe and check all bounds.
#![allow(unsafe_code)]

/// One output's taps in plane units: `(x0, x1, a0, a1)`, the output being
/// `(a0 * src[x0] + a1 * src[x1]) >> 4` (rows: the same for the vertical pass).
pub(super) type Tap = (u32, u32, i16, i16);

/// The precomputed column taps of one resize width pair, in plane units.
#[derive(Clone, Debug, Default)]
pub(super) struct PlaneTaps {
    /// `(source width, output width)` these taps were computed for.
    key: Option<(usize, usize)>,
    /// Per output column: `(x0, x1, a0, a1)`, the scalar form.
    taps: Vec<Tap>,
    /// Per octet of outputs (`width / 8` of them).
    octets: Vec<Octet>,
}

/// Eight outputs: two halves of four, each a 16-byte window of the source row.
#[derive(Clone, Copy, Debug, Default)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // Only the x86 SIMD reads them.
struct Octet {
    /// Whether both halves fit their window (else the scalar formula is used).
    simd: bool,
    /// The first source byte of each half's window (`base + 16 <= source width`).
    base: [u32; 2],
    /// Per half, the `pshufb` mask: output `j` reads bytes `4j..4j + 4` =
    /// `[x0 - base, zero, x1 - base, zero]`, i.e. `(p0, p1)` as two little-endian i16.
    mask: [[u8; 16]; 2],
    /// Per half, the weights `(a0, a1)` of its four outputs, interleaved.
    weights: [[i16; 8]; 2],
}

/// `pshufb` index that writes zero.
const ZERO: u8 = 0x80;

impl PlaneTaps {
    /// Recomputes the taps for `src_width -> width` unless they are already those, from the
    /// per-column `(x0, x1, a0, a1)` that `taps` yields (called only when the key changes).
    pub(super) fn set(&mut self, src_width: usize, width: usize, taps: impl FnOnce() -> Vec<Tap>) {
        if self.key == Some((src_width, width)) {
            return;
        }
        self.taps = taps();
        assert_eq!(self.taps.len(), width, "one tap per output column");
        self.octets.clear();
        for group in self.taps.chunks_exact(8) {
            let mut o = Octet { simd: src_width >= 16, ..Octet::default() };
            for (h, quad) in group.chunks_exact(4).enumerate() {
                let lo = quad.iter().map(|t| t.0.min(t.1)).min().unwrap_or(0) as usize;
                let hi = quad.iter().map(|t| t.0.max(t.1)).max().unwrap_or(0) as usize;
                // The window starts at the first tap, moved left at the right border.
                let base = lo.min(src_width.saturating_sub(16));
                if hi >= base + 16 || base + 16 > src_width {
                    o.simd = false;
                    continue;
                }
                o.base[h] = base as u32;
                for (j, &(x0, x1, a0, a1)) in quad.iter().enumerate() {
                    let m = [(x0 as usize - base) as u8, ZERO, (x1 as usize - base) as u8, ZERO];
                    o.mask[h][4 * j..4 * j + 4].copy_from_slice(&m);
                    o.weights[h][2 * j] = a0;
                    o.weights[h][2 * j + 1] = a1;
                }
            }
            self.octets.push(o);
        }
        self.key = Some((src_width, width));
    }

    /// How many octets run on SIMD (where [`available`]).
    #[cfg(test)]
    pub(super) fn simd_octets(&self) -> usize {
        self.octets.iter().filter(|o| o.simd).count()
    }
}

/// Whether the SIMD pass runs on this CPU (SSSE3 at least; std caches the detection).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX2 forms run on this CPU (std caches the detection).
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `dst[x] = (a0 * src[x0] + a1 * src[x1]) >> 4` for every output column of `taps`: SIMD
/// octets where [`available`] and the octet fits, the scalar formula elsewhere.
///
/// # Panics
/// When `src` is not `taps`' source width or `dst` not its output width.
pub(super) fn hresize_plane_row(src: &[u8], taps: &PlaneTaps, dst: &mut [i16]) {
    let (src_width, width) = taps.key.unwrap_or((0, 0));
    assert_eq!((src.len(), dst.len()), (src_width, width), "plane row sizes");
    let scalar_from = simd_octets(src, taps, dst);
    for (d, &(x0, x1, a0, a1)) in dst[scalar_from..].iter_mut().zip(&taps.taps[scalar_from..]) {
        *d = tap(src, x0, x1, a0, a1);
    }
}

/// The SIMD octets of [`hresize_plane_row`] where AVX2 or SSSE3 is present; returns how many leading
/// outputs are done (`8 * octets`, or 0).
#[cfg(target_arch = "x86_64")]
fn simd_octets(src: &[u8], taps: &PlaneTaps, dst: &mut [i16]) -> usize {
    if has_avx2() {
        // SAFETY: AVX2 is present (checked just above).
        unsafe { hresize_octets_avx2(src, &taps.octets, &taps.taps, dst) };
    } else if available() {
        // SAFETY: SSSE3 is present (checked just above).
        unsafe { hresize_octets(src, &taps.octets, &taps.taps, dst) };
    } else {
        return 0;
    }
    8 * taps.octets.len()
}

#[cfg(not(target_arch = "x86_64"))]
fn simd_octets(_: &[u8], _: &PlaneTaps, _: &mut [i16]) -> usize {
    0
}

#[inline]
fn tap(src: &[u8], x0: u32, x1: u32, a0: i16, a1: i16) -> i16 {
    let s =
        i32::from(src[x0 as usize]) * i32::from(a0) + i32::from(src[x1 as usize]) * i32::from(a1);
    (s >> 4) as i16
}

/// The octets of [`hresize_plane_row`] on SSSE3: `dst[..8 * octets.len()]`.
///
/// # Safety
/// SSSE3 must be available. (Every access is bounds-checked: octets built for another source
/// width panic rather than read outside `src`.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn hresize_octets(src: &[u8], octets: &[Octet], taps: &[Tap], dst: &mut [i16]) {
    let out = &mut dst[..8 * octets.len()];
    for ((o, d), t) in octets.iter().zip(out.chunks_exact_mut(8)).zip(taps.chunks_exact(8)) {
        octet_ssse3(src, o, t, d);
    }
}

/// The octets of [`hresize_plane_row`] on AVX2, two at a time (one 256-bit `pshufb`,
/// `pmaddwd` and shift per octet, the two packed and reordered into 16 outputs).
///
/// # Safety
/// AVX2 must be available (bounds are checked as in [`hresize_octets`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn hresize_octets_avx2(src: &[u8], octets: &[Octet], taps: &[Tap], dst: &mut [i16]) {
    use std::arch::x86_64::{
        __m256i, _mm256_packs_epi32, _mm256_permute4x64_epi64, _mm256_storeu_si256,
    };
    let out = &mut dst[..8 * octets.len()];
    let mut pairs = octets.chunks_exact(2);
    let mut outs = out.chunks_exact_mut(16);
    let mut tap_pairs = taps.chunks_exact(16);
    for ((p, d), t) in (&mut pairs).zip(&mut outs).zip(&mut tap_pairs) {
        if p[0].simd && p[1].simd {
            // 64-bit quarters after the pack: [o0 0..4, o1 0..4, o0 4..8, o1 4..8].
            let packed = _mm256_packs_epi32(octet_avx2(src, &p[0]), octet_avx2(src, &p[1]));
            let ordered = _mm256_permute4x64_epi64::<0b11_01_10_00>(packed);
            // SAFETY: `d` is a chunk of exactly 16 i16 = 32 bytes; unaligned store.
            unsafe { _mm256_storeu_si256(d.as_mut_ptr().cast::<__m256i>(), ordered) };
        } else {
            let (d0, d1) = d.split_at_mut(8);
            octet_ssse3(src, &p[0], &t[..8], d0);
            octet_ssse3(src, &p[1], &t[8..], d1);
        }
    }
    if let ([o], d, t) = (pairs.remainder(), outs.into_remainder(), tap_pairs.remainder()) {
        octet_ssse3(src, o, t, d);
    }
}

/// One octet on SSSE3 (or the scalar formula where it does not fit its windows).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
#[inline]
fn octet_ssse3(src: &[u8], o: &Octet, t: &[Tap], d: &mut [i16]) {
    use std::arch::x86_64::{__m128i, _mm_packs_epi32, _mm_storeu_si128};
    let d: &mut [i16; 8] = d.try_into().expect("8 outputs per octet");
    if !o.simd {
        for (di, &(x0, x1, a0, a1)) in d.iter_mut().zip(t) {
            *di = tap(src, x0, x1, a0, a1);
        }
        return;
    }
    let packed = _mm_packs_epi32(half(src, o, 0), half(src, o, 1));
    // SAFETY: `d` is exactly 8 i16 = 16 bytes; unaligned store.
    unsafe { _mm_storeu_si128(d.as_mut_ptr().cast::<__m128i>(), packed) };
}

/// The eight outputs of an octet, `(a0 * p0 + a1 * p1) >> 4` as i32: outputs 0..4 in the low
/// 128-bit lane, 4..8 in the high one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn octet_avx2(src: &[u8], o: &Octet) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::{
        __m128i, __m256i, _mm_loadu_si128, _mm256_castsi128_si256, _mm256_inserti128_si256,
        _mm256_loadu_si256, _mm256_madd_epi16, _mm256_shuffle_epi8, _mm256_srai_epi32,
    };
    let w0 = &src[o.base[0] as usize..][..16];
    let w1 = &src[o.base[1] as usize..][..16];
    // SAFETY: `w0` and `w1` are bounds-checked 16-byte slices; `o.mask` and `o.weights` are
    // 32 bytes each (two 16-byte arrays, contiguous); the unaligned loads read exactly those.
    let (v0, v1, m, w) = unsafe {
        (
            _mm_loadu_si128(w0.as_ptr().cast::<__m128i>()),
            _mm_loadu_si128(w1.as_ptr().cast::<__m128i>()),
            _mm256_loadu_si256(o.mask.as_ptr().cast::<__m256i>()),
            _mm256_loadu_si256(o.weights.as_ptr().cast::<__m256i>()),
        )
    };
    let v = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(v0), v1);
    _mm256_srai_epi32::<4>(_mm256_madd_epi16(_mm256_shuffle_epi8(v, m), w))
}

/// Four outputs of an octet: `(a0 * p0 + a1 * p1) >> 4` as i32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
#[inline]
fn half(src: &[u8], o: &Octet, h: usize) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_madd_epi16, _mm_shuffle_epi8, _mm_srai_epi32,
    };
    let window = &src[o.base[h] as usize..][..16];
    // SAFETY: `window`, `o.mask[h]` and `o.weights[h]` are 16 bytes each (the slice above is
    // bounds-checked); the unaligned loads read exactly those 16 bytes.
    let (v, m, w) = unsafe {
        (
            _mm_loadu_si128(window.as_ptr().cast::<__m128i>()),
            _mm_loadu_si128(o.mask[h].as_ptr().cast::<__m128i>()),
            _mm_loadu_si128(o.weights[h].as_ptr().cast::<__m128i>()),
        )
    };
    _mm_srai_epi32::<4>(_mm_madd_epi16(_mm_shuffle_epi8(v, m), w))
}

/// The vertical pass of [`super::image8`] on AVX2, 32 outputs per step:
/// `dst[i] = min(255, ((s0[i] * b0 >> 16) + (s1[i] * b1 >> 16) + 2) >> 2)` on unsigned 16 bits
/// (`pmulhuw`; the pack to u8 saturates). Returns how many leading outputs it wrote (a
/// multiple of 32, 0 without AVX2); the caller does the rest.
///
/// # Panics
/// When the three slices differ in length.
pub(super) fn vresize_row_simd(s0: &[i16], s1: &[i16], b0: u16, b1: u16, dst: &mut [u8]) -> usize {
    assert!(s0.len() == dst.len() && s1.len() == dst.len(), "row lengths");
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 is present (checked just above).
        return unsafe { vresize_row_avx2(s0, s1, b0, b1, dst) };
    }
    let _ = (s0, s1, b0, b1, dst);
    0
}

/// [`vresize_row_simd`] itself.
///
/// # Safety
/// AVX2 must be available (every load and store is of a bounds-checked 32-byte chunk).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vresize_row_avx2(s0: &[i16], s1: &[i16], b0: u16, b1: u16, dst: &mut [u8]) -> usize {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi16, _mm256_loadu_si256, _mm256_mulhi_epu16, _mm256_packus_epi16,
        _mm256_permute4x64_epi64, _mm256_set1_epi16, _mm256_srli_epi16, _mm256_storeu_si256,
    };
    let (w0, w1) = (_mm256_set1_epi16(b0 as i16), _mm256_set1_epi16(b1 as i16));
    let two = _mm256_set1_epi16(2);
    let mut done = 0;
    let rows = s0.chunks_exact(32).zip(s1.chunks_exact(32));
    for ((p, q), d) in rows.zip(dst.chunks_exact_mut(32)) {
        // SAFETY: `p` and `q` are 32 i16 (two 32-byte loads each), `d` 32 bytes; unaligned.
        let (p0, p1, q0, q1) = unsafe {
            let (p, q) = (p.as_ptr().cast::<__m256i>(), q.as_ptr().cast::<__m256i>());
            (
                _mm256_loadu_si256(p),
                _mm256_loadu_si256(p.add(1)),
                _mm256_loadu_si256(q),
                _mm256_loadu_si256(q.add(1)),
            )
        };
        let sum = |p, q| {
            let m = _mm256_add_epi16(_mm256_mulhi_epu16(p, w0), _mm256_mulhi_epu16(q, w1));
            _mm256_srli_epi16::<2>(_mm256_add_epi16(m, two))
        };
        // The in-lane pack interleaves 64-bit quarters: [lo 0..8, hi 0..8, lo 8..16, hi 8..16].
        let packed = _mm256_packus_epi16(sum(p0, q0), sum(p1, q1));
        let ordered = _mm256_permute4x64_epi64::<0b11_01_10_00>(packed);
        // SAFETY: `d` is exactly 32 bytes; unaligned store.
        unsafe { _mm256_storeu_si256(d.as_mut_ptr().cast::<__m256i>(), ordered) };
        done += 32;
    }
    done
}

/// Splits interleaved 3-channel pixels into three planes: `planes[k][i] = src[3 * i + k]`.
///
/// # Panics
/// When the planes are not `src.len() / 3` long or `src.len()` is not a multiple of 3.
pub(super) fn deinterleave3(src: &[u8], p0: &mut [u8], p1: &mut [u8], p2: &mut [u8]) {
    let n = src.len() / 3;
    assert!(src.len() == 3 * n && p0.len() == n && p1.len() == n && p2.len() == n, "plane sizes");
    let done = simd_deinterleave3(src, p0, p1, p2);
    let rest = src[3 * done..].chunks_exact(3);
    for (((px, a), b), c) in rest.zip(&mut p0[done..]).zip(&mut p1[done..]).zip(&mut p2[done..]) {
        (*a, *b, *c) = (px[0], px[1], px[2]);
    }
}

/// [`deinterleave3_ssse3`] where SSSE3 is present; returns the number of pixels done.
#[cfg(target_arch = "x86_64")]
fn simd_deinterleave3(src: &[u8], p0: &mut [u8], p1: &mut [u8], p2: &mut [u8]) -> usize {
    if !available() {
        return 0;
    }
    // SAFETY: SSSE3 is present (checked just above); the lengths are asserted by the caller.
    unsafe { deinterleave3_ssse3(src, p0, p1, p2) }
}

#[cfg(not(target_arch = "x86_64"))]
fn simd_deinterleave3(_: &[u8], _: &mut [u8], _: &mut [u8], _: &mut [u8]) -> usize {
    0
}

/// The SIMD part of [`deinterleave3`], 16 pixels (48 bytes) at a time; returns the number of
/// pixels done.
///
/// # Safety
/// SSSE3 must be available; the planes must hold `src.len() / 3` values (all slices are
/// bounds-checked before each load and store anyway).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn deinterleave3_ssse3(src: &[u8], p0: &mut [u8], p1: &mut [u8], p2: &mut [u8]) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_or_si128, _mm_shuffle_epi8, _mm_storeu_si128,
    };
    // Mask `[k][v]`: byte `i` of plane `k` comes from byte `3i + k` of the 48, which lies in
    // vector `(3i + k) / 16`; the masks of the other vectors write zero there.
    const MASKS: [[[u8; 16]; 3]; 3] = {
        let mut m = [[[ZERO; 16]; 3]; 3];
        let mut k = 0;
        while k < 3 {
            let mut i = 0;
            while i < 16 {
                let b = 3 * i + k;
                m[k][b / 16][i] = (b % 16) as u8;
                i += 1;
            }
            k += 1;
        }
        m
    };
    let mut done = 0;
    let planes = [p0, p1, p2];
    for px in src.chunks_exact(48) {
        // SAFETY: `px` is exactly 48 bytes, read as three unaligned 16-byte loads.
        let v = unsafe {
            let p = px.as_ptr().cast::<__m128i>();
            [_mm_loadu_si128(p), _mm_loadu_si128(p.add(1)), _mm_loadu_si128(p.add(2))]
        };
        for (k, mk) in MASKS.iter().enumerate() {
            let dst = &mut planes[k][done..done + 16];
            // SAFETY: the masks are 16 bytes each; `dst` is a bounds-checked 16-byte slice.
            unsafe {
                let a = _mm_shuffle_epi8(v[0], _mm_loadu_si128(mk[0].as_ptr().cast::<__m128i>()));
                let b = _mm_shuffle_epi8(v[1], _mm_loadu_si128(mk[1].as_ptr().cast::<__m128i>()));
                let c = _mm_shuffle_epi8(v[2], _mm_loadu_si128(mk[2].as_ptr().cast::<__m128i>()));
                let r = _mm_or_si128(_mm_or_si128(a, b), c);
                _mm_storeu_si128(dst.as_mut_ptr().cast::<__m128i>(), r);
            }
        }
        done += 16;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::super::image8::column_taps;
    use super::*;

    #[test]
    fn every_simd_level_equals_the_scalar_formula() {
        // Down to 1/5 (octets that do not fit their windows), up to 2.4x, widths below 16 and
        // not multiples of 8; a source row of noise with 0 and 255 at both ends.
        let sizes = [(180, 144), (16, 16), (17, 8), (15, 40), (64, 16), (200, 40), (180, 45)];
        let sizes = sizes.into_iter().chain([(37, 90), (100, 23), (90, 17), (33, 32), (40, 9)]);
        let mut taps = PlaneTaps::default();
        for (n, w) in sizes {
            taps.set(n, w, || column_taps(n, w));
            let mut src: Vec<u8> = (0..n as u32).map(|i| (i * 97 + n as u32) as u8).collect();
            src[0] = 255;
            src[n - 1] = 255;
            src[n / 2] = 0;
            let expected: Vec<i16> =
                taps.taps.iter().map(|&(x0, x1, a0, a1)| tap(&src, x0, x1, a0, a1)).collect();
            let mut dst = vec![-1; w];
            hresize_plane_row(&src, &taps, &mut dst);
            assert_eq!(dst, expected, "dispatched, {n} -> {w}");
            #[cfg(target_arch = "x86_64")]
            {
                let done = 8 * taps.octets.len();
                if std::arch::is_x86_feature_detected!("ssse3") {
                    dst.fill(-1);
                    // SAFETY: SSSE3 is present (checked just above).
                    unsafe { hresize_octets(&src, &taps.octets, &taps.taps, &mut dst) };
                    assert_eq!(dst[..done], expected[..done], "SSSE3, {n} -> {w}");
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    dst.fill(-1);
                    // SAFETY: AVX2 is present (checked just above).
                    unsafe { hresize_octets_avx2(&src, &taps.octets, &taps.taps, &mut dst) };
                    assert_eq!(dst[..done], expected[..done], "AVX2, {n} -> {w}");
                }
            }
        }
    }

    #[test]
    fn octets_fit_their_windows_up_to_4x_down() {
        // Four outputs at scale s span at most 3s + 2 source pixels: 14 <= 16 at 4x.
        let mut taps = PlaneTaps::default();
        for (n, w) in [(180, 144), (180, 45), (400, 100), (31, 16)] {
            taps.set(n, w, || column_taps(n, w));
            assert_eq!(taps.simd_octets(), w / 8, "{n} -> {w}");
        }
        // Beyond (5x) some do not, and rows narrower than 16 never do.
        taps.set(200, 40, || column_taps(200, 40));
        assert!(taps.simd_octets() < 5);
        taps.set(15, 40, || column_taps(15, 40));
        assert_eq!(taps.simd_octets(), 0);
    }

    #[test]
    fn vertical_simd_equals_the_scalar_formula_and_saturates() {
        // Any sums up to 32655 and weights up to 2049, including pairs past 255 (saturated).
        let n = 100;
        let s0: Vec<i16> = (0..n).map(|i| (i * 7919 % 32656) as i16).collect();
        let mut s1: Vec<i16> = (0..n).map(|i| (i * 104_729 % 32656) as i16).collect();
        s1[3] = 32655;
        for (b0, b1) in [(2048u16, 0u16), (1024, 1024), (683, 1365), (2049, 2049), (0, 0)] {
            let mut dst = vec![7u8; n];
            let done = vresize_row_simd(&s0, &s1, b0, b1, &mut dst);
            assert_eq!(done, if has_avx2() { 96 } else { 0 });
            for i in 0..done {
                let m0 = (u32::from(s0[i] as u16) * u32::from(b0)) >> 16;
                let m1 = (u32::from(s1[i] as u16) * u32::from(b1)) >> 16;
                assert_eq!(u32::from(dst[i]), ((m0 + m1 + 2) >> 2).min(255), "{i}, {b0}/{b1}");
            }
            assert!(dst[done..].iter().all(|&v| v == 7), "only the first {done} written");
        }
    }

    #[test]
    fn deinterleave3_splits_every_length() {
        for n in [0, 1, 15, 16, 17, 47, 48, 180] {
            let src: Vec<u8> = (0..3 * n).map(|i| (i * 7 % 256) as u8).collect();
            let (mut a, mut b, mut c) = (vec![0; n], vec![0; n], vec![0; n]);
            deinterleave3(&src, &mut a, &mut b, &mut c);
            for (i, px) in src.chunks_exact(3).enumerate() {
                assert_eq!([a[i], b[i], c[i]], [px[0], px[1], px[2]], "pixel {i} of {n}");
            }
        }
    }
}
