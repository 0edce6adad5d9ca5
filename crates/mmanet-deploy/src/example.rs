//! A tiny, seeded model file with one modality of each input kind (an 8x8 grey image, a
//! 6-number vector, a sequence of 2-feature steps): for tests, benchmarks and trying the
//! server without training anything. Its weights are a random initialisation.

use mmanet_core::ModalitySet;
use mmanet_data::input_spec::{ColorOrder, Decoder, INPUT_SPEC_VERSION, InputModality};
use mmanet_data::split::Standardizer;
use mmanet_data::{InputSpec, Task};
use mmanet_models::factory::{NetConfig, build_net};
use mmanet_models::generic::{BranchConfig, GenericFusion, GenericNetConfig};
use mmanet_models::{NetRole, checkpoint};

use crate::Result;
use crate::format::{Identity, ModelFile, ModelMetadata, Network};

/// The example's modalities, in order: `camera` (image), `audio` (vector), `imu` (sequence).
pub const MODALITIES: [&str; 3] = ["camera", "audio", "imu"];

/// A 3-class model over [`MODALITIES`], initialised from `seed`.
pub fn tiny_model(seed: i64) -> Result<ModelFile> {
    let set = ModalitySet::from_names(MODALITIES).expect("valid names");
    let model = NetConfig::Generic(GenericNetConfig {
        modalities: set.clone(),
        branches: vec![
            BranchConfig::SmallCnn { in_channels: 1, channels: vec![4, 8], out_dim: 8 },
            BranchConfig::Mlp { in_dim: 6, hidden: vec![8], out_dim: 8 },
            BranchConfig::Conv1d { in_features: 2, channels: vec![4], kernel: 3, out_dim: 8 },
        ],
        trunk_hidden: vec![16],
        n_classes: 3,
        fusion: GenericFusion::Concat,
    });
    let decoders = [
        Decoder::Image {
            color: ColorOrder::Grey,
            size: Some([8, 8]),
            mean: [127.5; 3],
            std: [64.0; 3],
        },
        Decoder::Vector {
            shape: vec![6],
            standardize: Some(Standardizer { mean: vec![1.0; 6], std: vec![2.0; 6] }),
        },
        Decoder::Sequence { max_len: 5, features: 2, standardize: None },
    ];
    let spec = InputSpec {
        version: INPUT_SPEC_VERSION,
        dataset: "example".into(),
        task: Task::Classification { num_classes: 3 },
        classes: vec!["low".into(), "mid".into(), "high".into()],
        modalities: set
            .modalities()
            .iter()
            .zip(decoders)
            .map(|(m, decoder)| InputModality {
                name: m.name().to_string(),
                symbol: m.symbol().to_string(),
                decoder,
            })
            .collect(),
    };
    random_model(model, spec, seed, &format!("example-seed{seed}"))
}

/// The deployment network of `model` with a random initialisation drawn from `seed`, as a
/// model file carrying `spec` (for benchmarks and smoke tests of an architecture before any
/// training: `cargo xtask bench serve` serves the mfeat3 and CASIA-SURF architectures so).
pub fn random_model(
    model: NetConfig,
    spec: InputSpec,
    seed: i64,
    run_name: &str,
) -> Result<ModelFile> {
    tch::manual_seed(seed);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _net = build_net(&vs.root(), &model, NetRole::Deployment)?;
    let identity = Identity {
        run_name: run_name.to_string(),
        config_sha256: mmanet_fs::sha256_hex(format!("{model:?}").as_bytes()),
        checkpoint_sha256: String::new(),
        mmanet_version: env!("CARGO_PKG_VERSION").to_string(),
        created: None,
    };
    let metadata = ModelMetadata::new(Network::Deployment, model, spec, identity)?;
    Ok(ModelFile { metadata, tensors: checkpoint::named_variables(&vs) })
}
