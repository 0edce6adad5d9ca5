//! Checkpoints: atomic safetensors saves, strict/partial loads with typed errors, deployment
//! export (drops R) and torchvision ResNet weights.
//!
//! Names are the `VarStore` names (separator `.`), which are the official PyTorch `state_dict`
//! names, so official checkpoints converted to safetensors load 1:1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use tch::Tensor;
use tch::nn::VarStore;

use crate::{ModelError, Result};

/// Name prefixes of the regularization network R, dropped at deployment.
pub const REGULARIZER_PREFIXES: [&str; 2] = ["auxi_bone.", "auxi_decoder."];

/// How strictly a load matches names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Every network variable must be in the file and every file entry in the network.
    Strict,
    /// Load what matches; report the rest.
    Partial,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Variables set from the source.
    pub loaded: Vec<String>,
    /// Network variables the source lacks (sorted).
    pub missing: Vec<String>,
    /// Source entries the network does not have (sorted).
    pub unexpected: Vec<String>,
}

/// Reads every tensor of a safetensors file (kinds as stored), sorted by name.
///
/// The header is validated before a tensor is built, so no tensor is sized by a header's
/// claim (memory follows the file's length): first here, every tensor's `data_offsets` must lie
/// inside the file ([`check_safetensors_offsets`]: the `safetensors` crate adds the last offset
/// to the header length unchecked, which overflows on a claim near `u64::MAX`), then by the
/// crate (header size bounded, offsets contiguous and equal to shape times dtype size). A
/// dimension libtorch cannot hold (above `i64::MAX`) or a dtype it lacks is a
/// [`ModelError::Safetensors`] naming the file and the tensor.
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    let bad = |message: String| ModelError::Safetensors { path: path.to_path_buf(), message };
    let bytes =
        std::fs::read(path).map_err(|error| ModelError::Io { path: path.to_path_buf(), error })?;
    check_safetensors_offsets(&bytes)
        .map_err(|m| bad(format!("not a valid safetensors file: {m}")))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let mut out = Vec::with_capacity(file.len());
    for (name, view) in file.tensors() {
        let shape = view
            .shape()
            .iter()
            .map(|&d| i64::try_from(d))
            .collect::<std::result::Result<Vec<i64>, _>>()
            .map_err(|_| bad(format!("tensor `{name}`: shape {:?} is too large", view.shape())))?;
        let kind = tch_kind(view.dtype())
            .ok_or_else(|| bad(format!("tensor `{name}`: unsupported dtype {:?}", view.dtype())))?;
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        out.push((name, t));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Checks that the header length and every tensor's `data_offsets` of a safetensors file lie
/// inside it (what `safetensors::SafeTensors::deserialize` relies on without checking: its
/// `buffer_end + 8 + n` overflows, a panic in debug builds and a wrapped, possibly accepted
/// sum in release builds, for an end offset near `u64::MAX`). The rest of the header is the
/// crate's to check.
pub fn check_safetensors_offsets(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some((len, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(format!("{} bytes, no header", bytes.len()));
    };
    let n = u64::from_le_bytes(*len);
    let header = usize::try_from(n)
        .ok()
        .and_then(|n| rest.get(..n))
        .ok_or_else(|| format!("header length {n} exceeds the file ({} bytes)", bytes.len()))?;
    let data = (rest.len() - header.len()) as u64;
    // Malformed JSON is the crate's error to report (it names what is wrong).
    let Ok(serde_json::Value::Object(entries)) = serde_json::from_slice(header) else {
        return Ok(());
    };
    for (name, entry) in &entries {
        let offsets = entry.get("data_offsets").and_then(|o| o.as_array());
        if let Some([start, end]) = offsets.map(Vec::as_slice) {
            if let (Some(start), Some(end)) = (start.as_u64(), end.as_u64()) {
                if start > end || end > data {
                    return Err(format!(
                        "tensor `{name}`: data_offsets [{start}, {end}] outside the {data} \
                         data bytes of the file"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The libtorch kind of a safetensors dtype (`None`: libtorch has none).
pub fn tch_kind(dtype: safetensors::Dtype) -> Option<tch::Kind> {
    use safetensors::Dtype;
    use tch::Kind;
    Some(match dtype {
        Dtype::BOOL => Kind::Bool,
        Dtype::U8 => Kind::Uint8,
        Dtype::I8 => Kind::Int8,
        Dtype::I16 => Kind::Int16,
        Dtype::I32 => Kind::Int,
        Dtype::I64 => Kind::Int64,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::U16 | Dtype::U32 | Dtype::U64 | Dtype::F8_E5M2 | Dtype::F8_E4M3 => return None,
        // The enum is non-exhaustive: a dtype added later is one libtorch is not known to have.
        _ => return None,
    })
}

/// Writes named tensors to `path` through [`mmanet_fs::write_with`]: a temporary file in the
/// same folder, fsynced, renamed over `path`, the folder fsynced, so a crash never leaves a
/// half-written checkpoint under the final name. Tensors are copied to dense CPU tensors first
/// (GPU and channels-last tensors are written in the file's row-major layout). Returns the
/// file's sha256 and size.
pub fn write_safetensors_atomic(
    named: &[(String, Tensor)],
    path: impl AsRef<Path>,
) -> Result<mmanet_fs::Written> {
    let path = path.as_ref();
    if path.file_name().is_none() {
        return Err(ModelError::Inputs(format!("not a file path: {}", path.display())));
    }
    let mut sorted: Vec<(String, Tensor)> = named
        .iter()
        .map(|(n, t)| (n.clone(), t.detach().to_device(tch::Device::Cpu).contiguous()))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(mmanet_fs::write_with(path, |tmp| {
        Tensor::write_safetensors(&sorted, tmp).map_err(std::io::Error::other)
    })?)
}

/// All variables of a store (trainable and buffers), sorted by name.
pub fn named_variables(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Saves every variable of `vs` to a safetensors file, atomically; returns its sha256 and size.
pub fn save_var_store(vs: &VarStore, path: impl AsRef<Path>) -> Result<mmanet_fs::Written> {
    write_safetensors_atomic(&named_variables(vs), path)
}

/// Copies `named` into the variables of `vs` with the same names, converting each source to the
/// variable's kind and device (fp16 files load into f32 nets).
///
/// Strict mode fails with [`ModelError::NameMismatch`] listing missing and unexpected names
/// before anything is copied. A shape difference fails with [`ModelError::ShapeMismatch`] naming
/// the tensor, also before anything is copied.
pub fn load_named(vs: &VarStore, named: &[(String, Tensor)], mode: LoadMode) -> Result<LoadReport> {
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let src: BTreeMap<&str, &Tensor> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let var_names: BTreeSet<&str> = vars.keys().map(String::as_str).collect();
    let src_names: BTreeSet<&str> = src.keys().copied().collect();
    let missing: Vec<String> = var_names.difference(&src_names).map(|s| s.to_string()).collect();
    let unexpected: Vec<String> = src_names.difference(&var_names).map(|s| s.to_string()).collect();
    if mode == LoadMode::Strict && (!missing.is_empty() || !unexpected.is_empty()) {
        return Err(ModelError::NameMismatch { missing, unexpected });
    }
    for (name, var) in &vars {
        if let Some(t) = src.get(name.as_str()) {
            if t.size() != var.size() {
                return Err(ModelError::ShapeMismatch {
                    name: name.clone(),
                    expected: var.size(),
                    got: t.size(),
                });
            }
        }
    }
    let mut loaded = Vec::new();
    for (name, var) in &vars {
        if let Some(t) = src.get(name.as_str()) {
            let mut dst = var.shallow_clone();
            tch::no_grad(|| dst.f_copy_(&t.to_kind(var.kind()).to_device(var.device())))?;
            loaded.push(name.clone());
        }
    }
    Ok(LoadReport { loaded, missing, unexpected })
}

/// Loads a safetensors file into `vs` (see [`load_named`]).
pub fn load_var_store(vs: &VarStore, path: impl AsRef<Path>, mode: LoadMode) -> Result<LoadReport> {
    load_named(vs, &read_safetensors(path)?, mode)
}

/// The entries whose name starts with `prefix`, with the prefix removed
/// (e.g. `student.` entries of a fixture file).
pub fn strip_prefix(named: &[(String, Tensor)], prefix: &str) -> Vec<(String, Tensor)> {
    named
        .iter()
        .filter_map(|(n, t)| n.strip_prefix(prefix).map(|s| (s.to_string(), t.shallow_clone())))
        .collect()
}

/// The entries that do not belong to the regularization network R
/// ([`REGULARIZER_PREFIXES`]).
pub fn without_regularizer(named: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    named
        .iter()
        .filter(|(n, _)| !REGULARIZER_PREFIXES.iter().any(|p| n.starts_with(p)))
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect()
}

/// Saves the student's deployment network: every variable except `auxi_bone.*` /
/// `auxi_decoder.*`, as the reference does at deployment. The file loads strictly into a
/// [`crate::DeploymentNet`] (or an ESANet without `auxi_decoder`).
pub fn export_deployment(student: &VarStore, path: impl AsRef<Path>) -> Result<mmanet_fs::Written> {
    write_safetensors_atomic(&without_regularizer(&named_variables(student)), path)
}

/// Loads torchvision ResNet weights (`conv1.weight`, `bn1.*`, `layerN.*`) into the variables of
/// `vs` under `prefix` (e.g. `"encoder_depth."`); `fc.*` is ignored.
///
/// If the encoder's stem has fewer input channels than the file's (a 1-channel depth stem), the
/// file's `conv1.weight` `[64, 3, k, k]` is summed over its input channels (ESANet's
/// `load_pretrained_with_different_encoder_block` for depth). `num_batches_tracked` is often
/// absent from torchvision files; such variables keep their values and are reported missing.
/// Any other encoder variable missing from the file is an error.
pub fn load_torchvision_resnet(
    vs: &VarStore,
    prefix: &str,
    path: impl AsRef<Path>,
) -> Result<LoadReport> {
    let vars = vs.variables();
    let mut mapped = Vec::new();
    for (name, t) in read_safetensors(path)? {
        if name.starts_with("fc.") {
            continue;
        }
        let full = format!("{prefix}{name}");
        let t = match vars.get(&full) {
            Some(v) if name == "conv1.weight" && v.size()[1] != t.size()[1] && v.size()[1] == 1 => {
                t.to_kind(tch::Kind::Float).sum_dim_intlist(1, true, None) // [64, 1, k, k]
            }
            _ => t,
        };
        mapped.push((full, t));
    }
    let mapped_names: BTreeSet<&str> = mapped.iter().map(|(n, _)| n.as_str()).collect();
    let missing: Vec<String> = vars
        .keys()
        .filter(|n| n.starts_with(prefix) && !mapped_names.contains(n.as_str()))
        .cloned()
        .collect();
    let unexpected: Vec<String> =
        mapped_names.iter().filter(|n| !vars.contains_key(**n)).map(|n| n.to_string()).collect();
    let hard_missing: Vec<String> =
        missing.iter().filter(|n| !n.ends_with("num_batches_tracked")).cloned().collect();
    if !hard_missing.is_empty() || !unexpected.is_empty() {
        return Err(ModelError::NameMismatch { missing: hard_missing, unexpected });
    }
    let report = load_named(vs, &mapped, LoadMode::Partial)?;
    Ok(LoadReport { loaded: report.loaded, missing, unexpected })
}
