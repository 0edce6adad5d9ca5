//! A run's deployment network as one model file ([`mmanet_deploy::format`]): the weights of a
//! student (or baseline) checkpoint without the regularization head, the architecture, the
//! run's input spec and its identity. What `mmanet export` and `mmanet fit` write.

use std::path::Path;

use mmanet_data::InputSpec;
use mmanet_deploy::{Identity, ModelFile, ModelMetadata, Network};
use mmanet_models::checkpoint;

use crate::evaluate::load_net;
use crate::model_spec::Role;
use crate::predict::input_spec_for_run;
use crate::run_dir::RunDir;
use crate::state::FileRole;
use crate::{Stage, TrainConfig, TrainError, ValidConfig};

/// The model file of `cfg`'s deployment network (a teacher run: its teacher) with the weights of `weights` (a student or
/// baseline checkpoint, or an exported deployment checkpoint); `config_toml` is the run's
/// resolved config (hashed into the identity); `created` an optional export date.
///
/// The weights are loaded strictly into the deployment network first, so a file that does
/// not fit the architecture is refused here rather than at prediction.
pub fn model_file(
    cfg: &ValidConfig,
    spec: InputSpec,
    weights: &Path,
    config_toml: &str,
    created: Option<String>,
) -> Result<ModelFile, TrainError> {
    let (network, role) = match cfg.stage {
        Stage::Student => (Network::Deployment, Role::Deployment),
        Stage::Teacher => {
            tracing::warn!(
                "exporting a teacher: it was trained on complete data and ignores the mask; \
                 export a student or baseline run for any subset of the modalities"
            );
            (Network::Teacher, Role::Teacher)
        }
    };
    let (vs, _net) = load_net(&cfg.model, role, tch::Device::Cpu, weights, "not found")?;
    let checkpoint_sha256 =
        mmanet_fs::sha256_file(weights).map_err(|e| TrainError::io(weights, e))?.sha256;
    let identity = Identity {
        run_name: cfg.name.clone(),
        config_sha256: mmanet_fs::sha256_hex(config_toml.as_bytes()),
        checkpoint_sha256,
        mmanet_version: env!("CARGO_PKG_VERSION").to_string(),
        created,
    };
    // The weights are in the file; where the encoders' initial weights came from is not part
    // of the architecture a model file describes.
    let mut model = cfg.model.clone();
    if let mmanet_models::factory::NetConfig::Esanet(c) = &mut model {
        c.pretrained = None;
    }
    let metadata = ModelMetadata::new(network, model, spec, identity)?;
    Ok(ModelFile { metadata, tensors: checkpoint::named_variables(&vs) })
}

/// The model file of the run in `run_dir`, with the weights `weights` names: `best`, `last`
/// (resolved through the run's `state.json`, hashes checked) or a safetensors path.
pub fn model_file_for_run(
    run_dir: &Path,
    weights: &str,
    created: Option<String>,
) -> Result<ModelFile, TrainError> {
    let run = RunDir::create(run_dir)?;
    let config_path = run.config();
    let toml =
        std::fs::read_to_string(&config_path).map_err(|e| TrainError::io(&config_path, e))?;
    let cfg = TrainConfig::from_toml_path(&config_path)?.check()?;
    let path = match weights {
        "best" => run.weights(FileRole::Best)?,
        "last" => run.weights(FileRole::Last)?,
        other => other.into(),
    };
    let spec = input_spec_for_run(&cfg, run.root())?;
    model_file(&cfg, spec, &path, &toml, created)
}

/// Writes the model file of a run (see [`model_file_for_run`]) to `out`, atomically.
pub fn export_run(
    run_dir: &Path,
    weights: &str,
    out: &Path,
    created: Option<String>,
) -> Result<mmanet_fs::Written, TrainError> {
    let file = model_file_for_run(run_dir, weights, created)?;
    Ok(mmanet_deploy::write_model_file(out, &file.metadata, &file.tensors)?)
}
