//! A minimal reader for NumPy `.npy` files (little-endian `f2`, `f4`, `f8`, `i4`, `i8`, C order).

use std::path::Path;

use crate::{DataError, Result};

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray<T> {
    /// The shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<T>,
}

/// Reads a `.npy` file as f32 (from `<f2`, `<f4`, `<f8`, `|u1`, `<u2`, `<i4` or `<i8`;
/// integers above 2^24 round to the nearest f32).
pub fn read_npy_f32(path: &Path) -> Result<NpyArray<f32>> {
    let (descr, shape, body) = read_raw(path)?;
    check_body(path, &descr, &shape, &body)?;
    let data = match descr.as_str() {
        "<f4" => {
            body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        "<f8" => body
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        "<f2" => {
            body.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect()
        }
        "|u1" | "<u1" => body.iter().map(|&b| f32::from(b)).collect(),
        "<u2" => {
            body.chunks_exact(2).map(|c| f32::from(u16::from_le_bytes([c[0], c[1]]))).collect()
        }
        "<i4" => body
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        "<i8" => body
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => {
            return Err(DataError::decode(
                path,
                format!("dtype {other}, expected <f2, <f4, <f8, |u1, <u2, <i4 or <i8"),
            ));
        }
    };
    checked(path, shape, data)
}

/// IEEE 754 half precision (binary16) bits to f32, exactly (subnormals, inf and NaN included).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f32::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

/// Reads a `.npy` file as i64 (from `<i8` or `<i4`).
pub fn read_npy_i64(path: &Path) -> Result<NpyArray<i64>> {
    let (descr, shape, body) = read_raw(path)?;
    check_body(path, &descr, &shape, &body)?;
    let data = match descr.as_str() {
        "<i8" => body
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        "<i4" => body
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        other => {
            return Err(DataError::decode(path, format!("dtype {other}, expected <i8 or <i4")));
        }
    };
    checked(path, shape, data)
}

fn checked<T>(path: &Path, shape: Vec<usize>, data: Vec<T>) -> Result<NpyArray<T>> {
    let n = elements(&shape).ok_or_else(|| overflow(path, &shape))?;
    if n != data.len() {
        return Err(DataError::shape(path.display().to_string(), n, data.len()));
    }
    Ok(NpyArray { shape, data })
}

/// The number of elements of `shape`, `None` when it overflows `usize`.
fn elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

fn overflow(path: &Path, shape: &[usize]) -> DataError {
    DataError::decode(path, format!("shape {shape:?} has more elements than memory can hold"))
}

/// Refuses a header whose shape does not match the bytes after it, before a value is decoded:
/// an array is never sized by the header's claim, only by the file it came in (a header
/// promising 10^12 elements in a small file is this error, not an allocation).
fn check_body(path: &Path, descr: &str, shape: &[usize], body: &[u8]) -> Result<()> {
    let item = match descr.get(1..) {
        Some("u1") => 1,
        Some("f2" | "u2") => 2,
        Some("f4" | "i4") => 4,
        Some("f8" | "i8") => 8,
        // An unknown dtype is refused by the caller, naming the dtypes it reads.
        Some(_) | None => return Ok(()),
    };
    let n = elements(shape).ok_or_else(|| overflow(path, shape))?;
    let want = n.checked_mul(item).ok_or_else(|| overflow(path, shape))?;
    if want != body.len() {
        return Err(DataError::decode(
            path,
            format!(
                "header promises shape {shape:?} of {descr} ({want} bytes), the file holds {} \
                 bytes of data",
                body.len()
            ),
        ));
    }
    Ok(())
}

/// The shape a `.npy` file declares, from its header alone (the data is not read).
pub fn read_npy_shape(path: &Path) -> Result<Vec<usize>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut head = vec![0u8; 12];
    let n = f.read(&mut head).map_err(|e| DataError::io(path, e))?;
    head.truncate(n);
    let hlen = match head.get(6) {
        Some(1) if head.len() >= 10 => usize::from(u16::from_le_bytes([head[8], head[9]])) + 10,
        Some(2 | 3) if head.len() >= 12 => {
            u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize + 12
        }
        _ => 0,
    };
    let mut bytes = head;
    if hlen > bytes.len() {
        let mut rest = vec![0u8; hlen - bytes.len()];
        f.read_exact(&mut rest).map_err(|e| DataError::io(path, e))?;
        bytes.extend_from_slice(&rest);
    }
    parse_raw(path, bytes).map(|(_, shape, _)| shape)
}

/// `(descr, shape, data bytes)`.
fn read_raw(path: &Path) -> Result<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_raw(path, bytes)
}

/// Parses the header of `bytes` (a whole `.npy` file, or its header alone).
fn parse_raw(path: &Path, bytes: Vec<u8>) -> Result<(String, Vec<usize>, Vec<u8>)> {
    let bad = |m: &str| DataError::decode(path, m.to_string());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (bad magic)"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(bad(&format!("unsupported .npy version {v}"))),
    };
    let header = bytes.get(start..start + hlen).ok_or_else(|| bad("truncated header"))?;
    let header = String::from_utf8_lossy(header);
    let field = |key: &str| -> Option<String> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest.to_string())
    };
    let descr = field("descr")
        .and_then(|r| r.strip_prefix('\'').and_then(|r| r.split('\'').next().map(str::to_string)))
        .ok_or_else(|| bad("no descr in header"))?;
    let fortran = field("fortran_order").is_some_and(|r| r.starts_with("True"));
    if fortran {
        return Err(bad("Fortran-order arrays are not supported"));
    }
    let shape_txt = field("shape")
        .and_then(|r| r.strip_prefix('(').and_then(|r| r.split(')').next().map(str::to_string)))
        .ok_or_else(|| bad("no shape in header"))?;
    let shape = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad(&format!("bad shape entry `{s}`"))))
        .collect::<Result<Vec<_>>>()?;
    Ok((descr, shape, bytes[start + hlen..].to_vec()))
}

/// Writes a little-endian `.npy` file (version 1) with `descr` (`<f4` or `<i8`) from raw
/// bytes; used by tests and fixtures.
pub fn write_npy(path: &Path, descr: &str, shape: &[usize], body: &[u8]) -> Result<()> {
    let shape_txt = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    mmanet_fs::write(path, &out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_f32_and_i64_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        let vals = [1.5f32, -2.0, 3.25, 0.0, 7.0, 8.0];
        let body: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_npy(&p, "<f4", &[2, 3], &body).unwrap();
        let a = read_npy_f32(&p).unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.data, vals);
        // The header is padded to a multiple of 64 bytes, as NumPy does.
        assert_eq!((std::fs::read(&p).unwrap().len() - body.len()) % 64, 0);
        let q = dir.path().join("y.npy");
        let ints = [3i64, -1, 92];
        write_npy(&q, "<i8", &[3], &ints.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(read_npy_i64(&q).unwrap().data, ints);
        assert!(read_npy_i64(&p).unwrap_err().to_string().contains("x.npy"));
        // float16 (Cityscapes `depth_raw`): 0x3c00 = 1.0, 0xc000 = -2.0, 0x5bd0 = 250.0,
        // 0x7bff = 65504 (the largest half), 0x0001 = 2^-24 (the smallest subnormal).
        let halves = [0x3c00u16, 0xc000, 0x5bd0, 0x7bff, 0x0001];
        let r = dir.path().join("h.npy");
        write_npy(
            &r,
            "<f2",
            &[5],
            &halves.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(read_npy_f32(&r).unwrap().data, [1.0, -2.0, 250.0, 65504.0, 2f32.powi(-24)]);
        std::fs::write(&p, b"hello").unwrap();
        assert!(read_npy_f32(&p).unwrap_err().to_string().contains("bad magic"));
    }
}
