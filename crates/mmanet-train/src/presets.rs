//! Named, complete configurations: the paper's settings and small CPU-sized ones.
//!
//! Each preset is a TOML file in `crates/mmanet-train/presets/`, embedded in the binary at
//! build time and listed once, in [`PRESETS`]; its first line is a comment with its one-line
//! description. The file is the whole config (no preset derives from another), so
//! `mmanet config print --preset NAME` prints it as it is and a config never starts from a
//! blank file. Paths inside name places relative to the working directory.

use crate::config::TrainConfig;

/// One embedded preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// Its name (the file's stem, and the config's `name`).
    pub name: &'static str,
    /// The TOML file as written, comments included.
    pub text: &'static str,
}

impl Preset {
    /// The one-line description: the file's first line without its `# `.
    pub fn description(&self) -> &'static str {
        let first = self.text.lines().next().unwrap_or_default();
        first.strip_prefix('#').map_or("", str::trim)
    }

    /// The preset as a config (every embedded file parses: a test reads them all).
    pub fn config(&self) -> TrainConfig {
        TrainConfig::from_toml_str(self.text, std::path::Path::new(self.name))
            .unwrap_or_else(|e| panic!("embedded preset {}: {e}", self.name))
    }
}

/// `presets!["a", "b"]`: each name with `presets/<name>.toml` embedded.
macro_rules! presets {
    ($($name:literal),* $(,)?) => {
        &[$(Preset { name: $name, text: include_str!(concat!("../presets/", $name, ".toml")) }),*]
    };
}

/// Every preset, in the order `mmanet config list` shows them.
pub const PRESETS: &[Preset] = presets![
    "demo-teacher",
    "demo-mmanet",
    "demo-unified",
    "toy-teacher",
    "toy-mmanet",
    "toy-unified",
    "surf-teacher",
    "surf-mmanet",
    "surf-unified",
    "surf-sp",
    "surf-mad",
    "surf-mar",
    "surf-hemis",
    "cefa-teacher",
    "cefa-mmanet",
    "mfeat3-teacher",
    "mfeat3-mmanet",
    "mfeat3-unified",
    "mfeat3-sp",
    "mfeat3-mad",
    "mfeat3-mar",
    "mfeat3-mmanet-ref",
    "mfeat6-teacher",
    "mfeat6-mmanet",
    "mfeat6-unified",
    "mfeat6-sp",
    "mfeat6-mad",
    "mfeat6-mar",
    "mfeat6-mmanet-ref",
    "avmnist-teacher",
    "avmnist-mmanet",
    "avmnist-unified",
    "avmnist-sp",
    "avmnist-mad",
    "avmnist-mar",
    "avmnist-mmanet-ref",
    "basicmotions-teacher",
    "basicmotions-mmanet",
    "nyuv2-teacher",
    "nyuv2-mmanet",
    "cityscapes-teacher",
    "cityscapes-mmanet",
    "synth-nyuv2-teacher",
    "synth-nyuv2-mmanet",
    "synth-nyuv2-unified",
];

/// The embedded preset called `name`, if any.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The preset called `name` as a config, if any.
pub fn preset(name: &str) -> Option<TrainConfig> {
    find(name).map(Preset::config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Selection;
    use crate::data_spec::DatasetSpec;
    use crate::optim::OptimizerConfig;
    use mmanet_models::factory::NetConfig;

    #[test]
    fn every_preset_parses_validates_and_round_trips_through_toml() {
        for p in PRESETS {
            let name = &p.name;
            let cfg = TrainConfig::from_toml_str(p.text, std::path::Path::new(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&cfg.name, name, "a preset's `name` is its file's stem");
            assert!(!p.description().is_empty(), "{name}: the first line describes it");
            let text = cfg.to_toml();
            let back = TrainConfig::from_toml_str(&text, std::path::Path::new(name)).unwrap();
            assert_eq!(back, cfg, "{name}");
            cfg.check().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(preset("nope").is_none());
    }

    #[test]
    fn baselines_and_ablations_differ_from_their_mmanet_preset_only_in_the_method() {
        use crate::config::{Distillation, MethodConfig};
        use mmanet_core::Fidelity;
        // (suffix, distillation, MAR, fidelity, keeps the teacher)
        let variants = [
            ("unified", Distillation::None, false, Fidelity::Paper, false),
            ("sp", Distillation::Sp, false, Fidelity::Paper, true),
            ("mad", Distillation::Mad, false, Fidelity::Paper, true),
            ("mar", Distillation::None, true, Fidelity::Paper, false),
            ("mmanet-ref", Distillation::Mad, true, Fidelity::ReferenceCode, true),
        ];
        let mut checked = 0;
        for p in PRESETS {
            for (suffix, distillation, mar, fidelity, teacher) in variants {
                let Some(prefix) = p.name.strip_suffix(&format!("-{suffix}")) else { continue };
                let Some(mmanet) = preset(&format!("{prefix}-mmanet")) else { continue };
                let mut expected = mmanet.clone();
                expected.name = p.name.to_string();
                expected.method = MethodConfig { distillation, mar, fidelity, ..mmanet.method };
                if !teacher {
                    expected.teacher = None;
                }
                assert_eq!(p.config(), expected, "{}", p.name);
                checked += 1;
            }
        }
        // surf 4, demo 1, toy 1, mfeat3 5, mfeat6 5, avmnist 5, synth-nyuv2 1.
        assert_eq!(checked, 22);
    }

    #[test]
    fn the_segmentation_presets_name_the_pretrained_setting() {
        use mmanet_models::factory::NetConfig;
        for name in ["nyuv2-teacher", "nyuv2-mmanet", "cityscapes-teacher", "cityscapes-mmanet"] {
            let p = find(name).unwrap();
            let NetConfig::Esanet(m) = p.config().model else { panic!("{name}: ESANet") };
            assert_eq!(m.pretrained, None, "{name}: off until the file exists");
            // Uncommented, the line is a valid setting for both encoders.
            let on = p.text.replace("# pretrained = ", "pretrained = ");
            let cfg = TrainConfig::from_toml_str(&on, std::path::Path::new(name)).unwrap();
            let NetConfig::Esanet(m) = cfg.model else { panic!() };
            let file = std::path::PathBuf::from("data/imagenet/resnet50.safetensors");
            let p = m.pretrained.expect("set");
            assert_eq!((p.rgb, p.depth), (file.clone(), file), "{name}");
        }
    }

    #[test]
    fn the_preset_folder_holds_exactly_the_listed_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("presets");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = PRESETS.iter().map(|p| format!("{}.toml", p.name)).collect();
        listed.sort();
        assert_eq!(on_disk, listed, "every file in {} is listed in PRESETS once", dir.display());
        for p in PRESETS {
            let file = std::fs::read_to_string(dir.join(format!("{}.toml", p.name))).unwrap();
            assert_eq!(file, p.text, "{}: the embedded text is the file", p.name);
        }
    }

    #[test]
    fn no_preset_selects_its_weights_on_a_test_split() {
        let mut test_split_validated = Vec::new();
        for p in PRESETS {
            let (name, cfg) = (&p.name, p.config());
            if cfg.data.dataset.validation_is_test() {
                test_split_validated.push(*name);
                assert_eq!(cfg.eval.selection, Selection::LastEpoch, "{name} selects on test");
            }
        }
        // The layouts without a validation split (NYUv2, its synthetic copy, Cityscapes).
        for name in ["nyuv2-mmanet", "synth-nyuv2-teacher", "cityscapes-mmanet"] {
            assert!(test_split_validated.contains(&name), "{name}: {test_split_validated:?}");
        }
        let surf = preset("surf-mmanet").unwrap();
        assert!(!surf.data.dataset.validation_is_test());
    }

    #[test]
    fn reference_presets_select_as_the_released_code() {
        // Classification (train_base_multi, train_knowledge_distill_patch_feature_auxi_weak):
        // the best validation accuracy under random masks, for epochs after 30.
        let classification = [
            "surf-teacher",
            "surf-mmanet",
            "surf-unified",
            "surf-sp",
            "surf-mad",
            "surf-mar",
            "surf-hemis",
            "cefa-teacher",
            "cefa-mmanet",
        ];
        // Segmentation (train_missing_mmanet.py): the last epoch is tested.
        let segmentation =
            ["nyuv2-teacher", "nyuv2-mmanet", "cityscapes-teacher", "cityscapes-mmanet"];
        for p in PRESETS {
            let c = p.config();
            let rule = (c.eval.selection, c.eval.select_after);
            if classification.contains(&p.name) {
                assert_eq!(rule, (Selection::RandomMasks, Some(30)), "{}", p.name);
                assert!(c.epochs > 31, "{}: epochs left to select", p.name);
            } else if segmentation.contains(&p.name) {
                assert_eq!(rule, (Selection::LastEpoch, None), "{}", p.name);
            } else if !c.data.dataset.validation_is_test() {
                // This project's own presets: the default, the mean over fixed combinations.
                assert_eq!(rule, (Selection::MeanOverCombinations, None), "{}", p.name);
            }
        }
    }

    #[test]
    fn surf_presets_carry_the_paper_settings() {
        let c = preset("surf-mmanet").unwrap();
        assert_eq!(
            (c.method.lambda_mad, c.method.lambda_mar, c.method.begin_epoch),
            (30.0, 0.5, 5)
        );
        assert_eq!(c.data.batch_size, 64);
        assert_eq!(c.epochs, 100);
        assert_eq!(c.optimizer, OptimizerConfig::reference_sgd());
        let u = preset("surf-unified").unwrap();
        let cs = preset("cityscapes-mmanet").unwrap();
        assert_eq!(
            (cs.method.lambda_mad, cs.method.lambda_mar, cs.method.begin_epoch),
            (10.0, 0.1, 10)
        );
        assert!(matches!(
            cs.data.dataset,
            DatasetSpec::Cityscapes(mmanet_data::cityscapes::CityscapesSource {
                num_classes: 19,
                crop: [512, 1024],
                ..
            })
        ));
        assert!(matches!(cs.optimizer, OptimizerConfig::Adam { lr, .. } if lr == 1e-4));
        assert!(
            matches!(&cs.model, NetConfig::Esanet(m) if m.n_classes == 19 && m.context_bins == [1, 2, 4, 8])
        );
        assert!(cs.teacher.is_some() && preset("cityscapes-teacher").unwrap().teacher.is_none());
        assert!(!u.method.mar && u.teacher.is_none());
    }
}
