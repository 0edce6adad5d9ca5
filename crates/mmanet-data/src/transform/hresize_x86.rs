//! The horizontal pass of the planar 8-bit bilinear resize on x86_64 SIMD (SSSE3, detected at
//! run time), bit-exact with the scalar pass of [`super::image8`].
//!
//! One plane row (contiguous `u8`) at a time, outputs in octets: each half of an octet (four
//! outputs) loads 16 source bytes at a precomputed base, `pshufb` gathers the four
//! `(p0, p1)` tap pairs as i16, `pmaddwd` with the interleaved weights `(a0, a1)` gives the
//! exact i32 sums `a0 * p0 + a1 * p1`, shifted right by 4 and packed to i16 (the sums are at
//! most `255 * 2049 >> 4 = 32655`, so the pack never saturates). Octets whose taps do not fit
//! 16 bytes (downscales beyond about 4x), rows narrower than 16 and the last `width % 8`
//! outputs take the scalar formula. Colour rows are first split into three planes.

// The workspace denies `unsafe_code`; this module is the one exception: SIMD intrinsics are
// unsafe functions (`#[target_feature]`, unaligned loads through raw pointers). Every unsafe
// block states why it is sound, the public functions are safe and check all bounds.
#![allow(unsafe_code)]

/// The precomputed column taps of one resize width pair, in plane units.
#[derive(Clone, Debug, Default)]
pub(super) struct PlaneTaps {
    /// `(source width, output width)` these taps were computed for.
    key: Option<(usize, usize)>,
    /// Per output column: `(x0, x1, a0, a1)`, the scalar form.
    taps: Vec<(u32, u32, i16, i16)>,
    /// Per octet of outputs (`width / 8` of them).
    octets: Vec<Octet>,
}

/// Eight outputs: two halves of four, each a 16-byte window of the source row.
#[derive(Clone, Copy, Debug, Default)]
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
    pub(super) fn set(
        &mut self,
        src_width: usize,
        width: usize,
        taps: impl FnOnce() -> Vec<(u32, u32, i16, i16)>,
    ) {
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

/// Whether the SIMD pass runs on this CPU (std caches the detection).
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

/// The SIMD octets of [`hresize_plane_row`] where SSSE3 is present; returns how many leading
/// outputs are done (`8 * octets`, or 0).
#[cfg(target_arch = "x86_64")]
fn simd_octets(src: &[u8], taps: &PlaneTaps, dst: &mut [i16]) -> usize {
    if !available() {
        return 0;
    }
    // SAFETY: SSSE3 is present (checked just above); `src` and `dst` have the lengths the
    // octets were built for (asserted by the caller), which is all `hresize_octets` relies on.
    unsafe { hresize_octets(src, &taps.octets, &taps.taps, dst) };
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

/// The octets of [`hresize_plane_row`]: `dst[..8 * octets.len()]`.
///
/// # Safety
/// SSSE3 must be available; `octets` must come from [`PlaneTaps::set`] for a source width of
/// `src.len()` (so every SIMD half has `base + 16 <= src.len()`; checked again here) and `dst`
/// must hold at least `8 * octets.len()` values (checked).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn hresize_octets(
    src: &[u8],
    octets: &[Octet],
    taps: &[(u32, u32, i16, i16)],
    dst: &mut [i16],
) {
    use std::arch::x86_64::{__m128i, _mm_packs_epi32, _mm_storeu_si128};
    let out = &mut dst[..8 * octets.len()];
    for ((o, d), t) in octets.iter().zip(out.chunks_exact_mut(8)).zip(taps.chunks_exact(8)) {
        if !o.simd {
            for (di, &(x0, x1, a0, a1)) in d.iter_mut().zip(t) {
                *di = tap(src, x0, x1, a0, a1);
            }
            continue;
        }
        let packed = _mm_packs_epi32(half(src, o, 0), half(src, o, 1));
        // SAFETY: `d` is a chunk of exactly 8 i16 = 16 bytes; unaligned store.
        unsafe { _mm_storeu_si128(d.as_mut_ptr().cast::<__m128i>(), packed) };
    }
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
