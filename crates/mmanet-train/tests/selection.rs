//! `eval.selection` end to end on the toy set: `random-masks` validates with one seeded mask
//! per sample drawn from the training combinations (checked against an independent pass), and
//! `last-epoch` keeps the last weights.

use std::path::Path;

use mmanet_data::{DataLoader, LoaderConfig, MaskPolicy, Split};
use mmanet_train::evaluate::net_inputs;
use mmanet_train::run_dir::RunDir;
use mmanet_train::{Selection, Silent, TrainConfig, Trainer};
use tch::{Kind, Tensor};

/// The toy modality-dropout student (no teacher, no MAR): 4 epochs of seconds.
fn unified(selection: Selection) -> TrainConfig {
    let mut c = mmanet_train::presets::preset("toy-unified").unwrap();
    c.data.threads = 1;
    c.eval.bona_fide_label = None; // plain accuracy
    c.eval.selection = selection;
    c
}

fn tensors(path: &Path) -> Vec<(String, Tensor)> {
    let mut v = Tensor::read_safetensors(path).unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn random_mask_validation_scores_seeded_drawn_masks() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = unified(Selection::RandomMasks);
    cfg.set_data_root(dir.path());
    let cfg = cfg.check().unwrap();
    let epochs = cfg.epochs;
    let run = RunDir::create(dir.path().join("run")).unwrap();
    let mut t = Trainer::new(cfg.clone(), run).unwrap();
    assert_eq!(t.train_epochs(epochs, &mut Silent).unwrap(), epochs);
    let last = t.state().history.last().unwrap().val.expect("the last epoch is validated");

    // Independently: the validation split, one mask per sample drawn uniformly from the seven
    // training combinations with the run seed, the net in eval mode, plain accuracy.
    let val = cfg.data.dataset.open(Split::Val, cfg.seed).unwrap();
    let set = cfg.set().clone();
    let policy = MaskPolicy::Uniform(set.default_training_combinations());
    let config = LoaderConfig { seed: cfg.seed, ..cfg.data.eval_loader(cfg.eval.batch_size) };
    let loader = DataLoader::new(val, policy, config).unwrap();
    let (mut correct, mut total, mut rows) = (0i64, 0i64, Vec::new());
    tch::no_grad(|| {
        for batch in loader.iter(0) {
            let batch = batch.unwrap();
            let out = t.net().forward_t(&net_inputs(&batch), &batch.mask, false);
            let hit = out.logits.argmax(1, false).eq_tensor(&batch.targets);
            correct += hit.sum(Kind::Int64).int64_value(&[]);
            total += batch.targets.size()[0];
            rows.extend(Vec::<f32>::try_from(batch.mask.flatten(0, -1)).unwrap());
        }
    });
    let masks: std::collections::HashSet<Vec<u32>> =
        rows.chunks(3).map(|r| r.iter().map(|v| v.to_bits()).collect()).collect();
    assert!(masks.len() > 2, "the drawn masks vary across samples: {masks:?}");
    let expected = correct as f64 / total as f64;
    assert!((last - expected).abs() < 1e-12, "random-mask validation {last} vs {expected}");
    let best = t.state().best.expect("a selected epoch");
    let max = t.state().history.iter().filter_map(|r| r.val).fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(best.score, max);
}

#[test]
fn last_epoch_selection_keeps_the_last_weights() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = unified(Selection::LastEpoch);
    cfg.set_data_root(dir.path());
    let cfg = cfg.check().unwrap();
    let epochs = cfg.epochs;
    let run = RunDir::create(dir.path().join("run")).unwrap();
    let mut t = Trainer::new(cfg, run.clone()).unwrap();
    let summary = t.run(&mut Silent).unwrap();
    let best = summary.best.expect("the last epoch is kept");
    assert_eq!(best.epoch, epochs - 1);
    assert_eq!(Some(best.score), t.state().history.last().unwrap().val);
    let (kept, last) = (tensors(&run.best_weights()), tensors(&run.last_weights()));
    assert_eq!(kept.len(), last.len());
    for ((n, a), (m, b)) in kept.iter().zip(&last) {
        assert_eq!(n, m);
        assert!(a.equal(b), "{n} differs between best and last");
    }
}
