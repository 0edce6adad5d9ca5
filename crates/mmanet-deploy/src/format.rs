//! The model file: one safetensors file holding the deployment network's weights and, in its
//! `__metadata__` map (string to string, each value a JSON document), everything needed to
//! run it: the architecture, the input spec and the run's identity. docs/model_format.md
//! lists the keys.
//!
//! Written through [`mmanet_fs::write`] (atomic, fsynced). The safetensors crate writes the
//! metadata map in hash order; the header is re-emitted with sorted keys so that two exports
//! of one checkpoint are byte-identical.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use mmanet_data::InputSpec;
use mmanet_models::factory::NetConfig;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::{DeployError, Result};

/// The format version this build writes (`MAJOR.MINOR`).
pub const FORMAT_VERSION: &str = "1.0";
/// The major version this build reads; a file of another major version is refused.
pub const FORMAT_MAJOR: u32 = 1;

/// The `__metadata__` keys.
pub mod keys {
    /// `"1.0"`: [`super::FORMAT_VERSION`].
    pub const FORMAT_VERSION: &str = "format_version";
    /// JSON of the architecture ([`mmanet_models::factory::NetConfig`], `arch`-tagged).
    pub const MODEL: &str = "model";
    /// JSON of the [`mmanet_data::InputSpec`]: modalities, decoders, test transforms,
    /// input scaling, class names, task.
    pub const INPUT_SPEC: &str = "input_spec";
    /// JSON of the [`super::Identity`].
    pub const IDENTITY: &str = "identity";
    /// `"deployment"` (any subset of the modalities) or `"teacher"` (all of them).
    pub const NETWORK: &str = "network";
    /// Every key, in the order docs/model_format.md lists them.
    pub const ALL: [&str; 5] = [FORMAT_VERSION, NETWORK, MODEL, INPUT_SPEC, IDENTITY];
}

/// Where a model file came from. No path and, unless asked for, no date: two exports of one
/// checkpoint are byte-identical.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The run's name (`mfeat3-mmanet`).
    pub run_name: String,
    /// sha256 of the run's resolved config (TOML text).
    pub config_sha256: String,
    /// sha256 of the checkpoint file the weights were taken from.
    pub checkpoint_sha256: String,
    /// The mmanet version that exported the file.
    pub mmanet_version: String,
    /// When the file was exported (RFC 3339), only when asked (`mmanet export --date`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// Which network of a run a model file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// The deployment network: any non-empty subset of the modalities (absent ones masked).
    Deployment,
    /// A teacher: trained on complete data, it ignores the mask; absent modalities enter as
    /// zeros, so its predictions from a subset are not what it was trained for.
    Teacher,
}

impl Network {
    /// The models crate's role.
    pub fn role(self) -> mmanet_models::NetRole {
        match self {
            Network::Deployment => mmanet_models::NetRole::Deployment,
            Network::Teacher => mmanet_models::NetRole::Teacher,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Network::Deployment => "deployment",
            Network::Teacher => "teacher",
        }
    }
}

/// Everything a model file says besides its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelMetadata {
    /// `MAJOR.MINOR` of the file.
    pub format_version: String,
    /// Which network the weights are.
    pub network: Network,
    /// The network's architecture.
    pub model: NetConfig,
    /// How raw inputs become network inputs, the classes and the task.
    pub input_spec: InputSpec,
    /// Where the file came from.
    pub identity: Identity,
}

impl ModelMetadata {
    /// Metadata of the current [`FORMAT_VERSION`]; checks that the architecture and the input
    /// spec name the same modalities in the same order.
    pub fn new(
        network: Network,
        model: NetConfig,
        input_spec: InputSpec,
        identity: Identity,
    ) -> Result<Self> {
        let m = ModelMetadata {
            format_version: FORMAT_VERSION.to_string(),
            network,
            model,
            input_spec,
            identity,
        };
        m.check(Path::new("<metadata>"))?;
        Ok(m)
    }

    fn check(&self, path: &Path) -> Result<()> {
        self.input_spec.check().map_err(|e| DeployError::format(path, e.to_string()))?;
        self.model
            .check()
            .map_err(|e| DeployError::format(path, format!("{}: {e}", keys::MODEL)))?;
        let set = self.model.modalities();
        let spec: Vec<&str> = self.input_spec.modalities.iter().map(|m| m.name.as_str()).collect();
        if !spec.iter().copied().eq(set.names()) {
            return Err(DeployError::format(
                path,
                format!(
                    "{} names the modalities {spec:?}, {} {}",
                    keys::INPUT_SPEC,
                    keys::MODEL,
                    set.describe()
                ),
            ));
        }
        // Each decoder's output fits its branch: a mismatch would fail inside libtorch at the
        // first forward pass.
        for (i, (m, want)) in self.input_spec.modalities.iter().zip(self.model.inputs()).enumerate()
        {
            let d = &m.decoder;
            // A free-size image stands as 1x1: `accepts` reads only an image's channels.
            let (shape, gives) = match (d.fixed_shape(), d.channels()) {
                (Some(s), _) => (Some(s.clone()), format!("{s:?}")),
                (None, Some(c)) => (Some(vec![c as i64, 1, 1]), format!("[{c}, any, any]")),
                (None, None) => (None, "inputs of any shape".to_string()),
            };
            if !shape.as_deref().is_some_and(|s| want.accepts(s)) {
                return Err(DeployError::format(
                    path,
                    format!(
                        "{}.modalities[{i}] ({}): the decoder gives {gives} per sample, the \
                         network's branch takes {want}",
                        keys::INPUT_SPEC,
                        m.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The `__metadata__` map.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (keys::FORMAT_VERSION.to_string(), self.format_version.clone()),
            (keys::NETWORK.to_string(), self.network.name().to_string()),
            (keys::MODEL.to_string(), json(&self.model)),
            (keys::INPUT_SPEC.to_string(), json(&self.input_spec)),
            (keys::IDENTITY.to_string(), json(&self.identity)),
        ])
    }

    /// Reads the `__metadata__` map of the file `path` (for messages): the version first (a
    /// newer major version is refused before anything else is parsed), then each key.
    pub fn from_map(map: &HashMap<String, String>, path: &Path) -> Result<Self> {
        let get = |key: &str| {
            map.get(key).ok_or_else(|| {
                DeployError::format(
                    path,
                    format!("no `{key}` in the metadata: not an mmanet model file"),
                )
            })
        };
        let version = get(keys::FORMAT_VERSION)?;
        let major = version.split('.').next().and_then(|m| m.parse::<u32>().ok());
        if major != Some(FORMAT_MAJOR) {
            return Err(DeployError::Version {
                path: path.to_path_buf(),
                found: version.clone(),
                supported: FORMAT_MAJOR,
            });
        }
        fn parse<T: serde::de::DeserializeOwned>(text: &str, key: &str, path: &Path) -> Result<T> {
            serde_json::from_str(text)
                .map_err(|e| DeployError::format(path, format!("metadata `{key}`: {e}")))
        }
        let network = match get(keys::NETWORK)?.as_str() {
            "deployment" => Network::Deployment,
            "teacher" => Network::Teacher,
            other => {
                return Err(DeployError::format(
                    path,
                    format!("metadata `{}`: `{other}` is not deployment or teacher", keys::NETWORK),
                ));
            }
        };
        let m = ModelMetadata {
            format_version: version.clone(),
            network,
            model: parse(get(keys::MODEL)?, keys::MODEL, path)?,
            input_spec: parse(get(keys::INPUT_SPEC)?, keys::INPUT_SPEC, path)?,
            identity: parse(get(keys::IDENTITY)?, keys::IDENTITY, path)?,
        };
        m.check(path)?;
        Ok(m)
    }
}

/// JSON text of a metadata value (serialising these types cannot fail).
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("metadata types serialise")
}

/// A model file's content: its metadata and named tensors (CPU).
pub struct ModelFile {
    /// The metadata.
    pub metadata: ModelMetadata,
    /// The deployment network's variables, by their `state_dict` names, sorted.
    pub tensors: Vec<(String, Tensor)>,
}

impl std::fmt::Debug for ModelFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFile")
            .field("metadata", &self.metadata)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

fn dtype_of(kind: Kind, name: &str) -> Result<Dtype> {
    Ok(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        other => {
            return Err(DeployError::input(
                format!("tensor `{name}`"),
                format!("kind {other:?} has no safetensors dtype here"),
            ));
        }
    })
}

/// The bytes of a safetensors file holding `tensors` (copied to dense CPU tensors) and
/// `metadata`, with a header whose keys are sorted (byte-identical for identical input).
pub fn to_bytes(metadata: &ModelMetadata, tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let mut dense: Vec<(String, Tensor, Vec<u8>, Dtype)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.detach().to_device(tch::Device::Cpu).contiguous();
        let dtype = dtype_of(t.kind(), name)?;
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, numel)?;
        dense.push((name.clone(), t, bytes, dtype));
    }
    let views = dense
        .iter()
        .map(|(name, t, bytes, dtype)| {
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            TensorView::new(*dtype, shape, bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| DeployError::input(format!("tensor `{name}`"), e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let map: HashMap<String, String> = metadata.to_map().into_iter().collect();
    let raw = safetensors::serialize(views, &Some(map))
        .map_err(|e| DeployError::format("<memory>", e.to_string()))?;
    Ok(canonical_header(&raw))
}

/// Re-emits a safetensors buffer's JSON header with sorted keys (the data is unchanged).
fn canonical_header(raw: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(raw[..8].try_into().expect("8-byte length")) as usize;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&raw[8..8 + n]).expect("the header safetensors just wrote");
    let sorted: BTreeMap<String, serde_json::Value> = header
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::Object(o) if k == "__metadata__" => {
                let m: BTreeMap<String, serde_json::Value> = o.into_iter().collect();
                (k, serde_json::to_value(m).expect("a map of strings"))
            }
            other => (k, other),
        })
        .collect();
    let mut text = serde_json::to_vec(&sorted).expect("JSON values");
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + text.len() + raw.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&raw[8 + n..]);
    out
}

/// Writes a model file atomically and durably; returns its sha256 and size.
pub fn write_model_file(
    path: &Path,
    metadata: &ModelMetadata,
    tensors: &[(String, Tensor)],
) -> Result<mmanet_fs::Written> {
    let bytes = to_bytes(metadata, tensors)?;
    Ok(mmanet_fs::write(path, &bytes)?)
}

/// Parses a model file's bytes (`path` names it in errors): the header is validated by the
/// safetensors crate (lengths, offsets, dtypes) before any tensor is made.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<ModelFile> {
    // Offsets past the file overflow inside the safetensors crate: checked first.
    mmanet_models::checkpoint::check_safetensors_offsets(bytes)
        .map_err(|m| DeployError::format(path, format!("not a safetensors file: {m}")))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| DeployError::format(path, format!("not a safetensors file: {e}")))?;
    let map = header.metadata().clone().ok_or_else(|| {
        DeployError::format(
            path,
            "no `__metadata__`: a plain checkpoint, not a model file (make one with `mmanet export`)",
        )
    })?;
    let metadata = ModelMetadata::from_map(&map, path)?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| DeployError::format(path, format!("not a safetensors file: {e}")))?;
    let mut tensors = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let kind = mmanet_models::checkpoint::tch_kind(view.dtype()).ok_or_else(|| {
            DeployError::format(
                path,
                format!("tensor `{name}`: dtype {:?} is not read by this build", view.dtype()),
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)?;
        tensors.push((name, t));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    check_sizes(&metadata, &tensors, path)?;
    Ok(ModelFile { metadata, tensors })
}

/// Refuses an architecture with a size (a width, a count) above the number of weight values
/// in the file: a network that matches its weights has none, so a mutated or crafted header
/// cannot make [`crate::Predictor::new`] allocate layers by its claim.
fn check_sizes(metadata: &ModelMetadata, tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    let values: i64 = tensors.iter().map(|(_, t)| t.numel() as i64).sum();
    match metadata.model.sizes().into_iter().find(|(_, v)| *v > values) {
        Some((name, v)) => Err(DeployError::format(
            path,
            format!(
                "metadata `{}`: `{name}` = {v} is more than the {values} weight values of the \
                 file: the architecture does not match the weights",
                keys::MODEL
            ),
        )),
        None => Ok(()),
    }
}

/// Reads a model file.
pub fn read_model_file(path: &Path) -> Result<ModelFile> {
    let bytes = std::fs::read(path)
        .map_err(|e| DeployError::Read { path: PathBuf::from(path), source: e })?;
    from_bytes(&bytes, path)
}

/// Reads only a model file's metadata (the header; the weights are not loaded).
pub fn read_metadata(path: &Path) -> Result<ModelMetadata> {
    use std::io::Read;
    let read = |e| DeployError::Read { path: PathBuf::from(path), source: e };
    let mut f = std::fs::File::open(path).map_err(read)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(read)?;
    let n = u64::from_le_bytes(len);
    let file_len = f.metadata().map_err(read)?.len();
    if n > file_len.saturating_sub(8) || n > 100_000_000 {
        return Err(DeployError::format(
            path,
            format!("not a safetensors file: header of {n} bytes in a file of {file_len}"),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(read)?;
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "__metadata__")]
        metadata: Option<HashMap<String, String>>,
    }
    let head: Head = serde_json::from_slice(&header)
        .map_err(|e| DeployError::format(path, format!("not a safetensors header: {e}")))?;
    let map = head.metadata.ok_or_else(|| {
        DeployError::format(path, "no `__metadata__`: a plain checkpoint, not a model file")
    })?;
    ModelMetadata::from_map(&map, path)
}
