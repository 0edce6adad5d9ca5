//! [`Planar8`]: 8-bit images stored plane by plane (CHW), the layout the rotation reads: each
//! plane is gathered with one source offset per pixel and no channel stride.

use super::Image8;

/// A channel-first (CHW) 8-bit image: `planes` planes of `height x width` values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Planar8 {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Number of planes (channels).
    pub planes: usize,
    /// `planes * height * width` values, plane after plane, each row-major.
    pub data: Vec<u8>,
}

impl Planar8 {
    /// Plane `k` (`height * width` values, row-major).
    ///
    /// # Panics
    /// When `k >= planes`.
    pub fn plane(&self, k: usize) -> &[u8] {
        assert!(k < self.planes, "plane {k} of {}", self.planes);
        let n = self.height * self.width;
        &self.data[k * n..(k + 1) * n]
    }

    /// The planes of an interleaved image.
    pub fn from_interleaved(img: &Image8) -> Planar8 {
        let mut out = Planar8::default();
        out.fill_from_interleaved(img);
        out
    }

    /// [`Planar8::from_interleaved`] into `self`, reusing its buffer.
    pub fn fill_from_interleaved(&mut self, img: &Image8) {
        let (c, n) = (img.channels, img.height * img.width);
        self.reshape(img.height, img.width, c);
        if c == 0 {
            return;
        }
        for (k, plane) in self.data.chunks_exact_mut(n.max(1)).enumerate().take(c) {
            for (d, px) in plane.iter_mut().zip(img.data.chunks_exact(c)) {
                *d = px[k];
            }
        }
    }

    /// The same pixels interleaved (HWC).
    pub fn to_interleaved(&self) -> Image8 {
        let (c, n) = (self.planes, self.height * self.width);
        let mut data = vec![0u8; n * c];
        for k in 0..c {
            for (px, v) in data.chunks_exact_mut(c).zip(self.plane(k)) {
                px[k] = *v;
            }
        }
        Image8 { height: self.height, width: self.width, channels: c, data }
    }

    /// Resizes the geometry and the buffer, keeping the allocation.
    pub(crate) fn reshape(&mut self, height: usize, width: usize, planes: usize) {
        self.height = height;
        self.width = width;
        self.planes = planes;
        self.data.resize(planes * height * width, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::image8::tests::noise;

    #[test]
    fn interleaved_round_trip_keeps_every_value() {
        for c in [1, 3] {
            let img = noise(5, 7, c, 9);
            let p = Planar8::from_interleaved(&img);
            assert_eq!((p.height, p.width, p.planes, p.data.len()), (5, 7, c, 5 * 7 * c));
            // Pixel (y, x) channel k sits in plane k at y * width + x.
            assert_eq!(p.plane(c - 1)[2 * 7 + 3], img.at(2, 3, c - 1));
            assert_eq!(p.to_interleaved(), img);
        }
    }
}
