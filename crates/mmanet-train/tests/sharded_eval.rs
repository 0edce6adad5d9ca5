//! Evaluation split over two ranks (two threads, a Gloo group on 127.0.0.1) equals one
//! process exactly: the per-combination report, the per-sample predictions weak-set mining
//! uses, and the as-observed score of incomplete data; each rank forwards only its part.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mmanet_core::ModalitySet;
use mmanet_data::missing::{MissingConfig, WithMissing};
use mmanet_data::{DataSource, Dataset, LoaderConfig, Split};
use mmanet_metrics::CombinationReport;
use mmanet_models::{MultiModalNet, NetOutput};
use mmanet_sys::ProcessGroup;
use mmanet_train::evaluate::{
    ObservedScore, Ranks, Scoring, eval_loader, evaluate_observed_on, evaluate_on, predict_combo_on,
};
use mmanet_train::parallel::DataParallel;
use tch::{Device, Kind, Tensor};

const K: i64 = 3;

/// Masked sum of one fixed linear map per modality (`[B, D_m] -> [B, K]`), counting the rows
/// it is run on. Its weights are a function of the shapes, so every thread builds the same net.
struct CountingNet {
    set: ModalitySet,
    weights: Vec<Tensor>,
    rows: Arc<AtomicUsize>,
}

impl CountingNet {
    fn new(set: ModalitySet, dims: &[i64]) -> Self {
        let weights = dims
            .iter()
            .enumerate()
            .map(|(m, &d)| {
                (Tensor::arange(d * K, (Kind::Float, Device::Cpu)) * (0.7 + m as f64))
                    .sin()
                    .view([d, K])
            })
            .collect();
        CountingNet { set, weights, rows: Arc::new(AtomicUsize::new(0)) }
    }
}

impl MultiModalNet for CountingNet {
    fn forward_t(&self, inputs: &[Tensor], mask: &Tensor, _train: bool) -> NetOutput {
        self.rows.fetch_add(inputs[0].size()[0] as usize, Ordering::Relaxed);
        let logits = self
            .weights
            .iter()
            .zip(inputs)
            .enumerate()
            .map(|(m, (w, x))| x.matmul(w) * mask.select(1, m as i64).unsqueeze(1))
            .reduce(|a, b| a + b)
            .expect("two modalities");
        NetOutput {
            features: vec![logits.shallow_clone()],
            logits,
            aux_logits: None,
            side_logits: Vec::new(),
            aux_side_logits: Vec::new(),
        }
    }

    fn modalities(&self) -> &ModalitySet {
        &self.set
    }
}

/// 37 test samples (batches of 8 do not split evenly over 2 ranks), 40 % of them incomplete.
fn test_split() -> Arc<dyn Dataset> {
    let set = ModalitySet::from_names(["rgb", "depth"]).unwrap();
    let toy = mmanet_data::toy::ToySource {
        modalities: set,
        shapes: vec![vec![6], vec![4]],
        noise: vec![1.0, 2.0],
        num_classes: K as usize,
        sizes: [8, 8, 37],
    };
    let complete = toy.open(Split::Test, 5).unwrap();
    let missing = MissingConfig { rate: 0.4, seed: 2, splits: vec![Split::Test] };
    Arc::new(WithMissing::new(complete, &missing, Split::Test).unwrap())
}

type Scores = (CombinationReport, Vec<(Vec<i64>, Vec<i64>)>, ObservedScore, usize);

fn score(mut ranks: Ranks<'_>) -> Scores {
    let data = test_split();
    let set = data.modalities().clone();
    let net = CountingNet::new(set.clone(), &[6, 4]);
    let loader = eval_loader(data, LoaderConfig::eval(8)).unwrap();
    let combos: Vec<_> = ["R", "D", "R+D"].map(|c| set.parse_mask(c).unwrap()).into();
    let device = Device::Cpu;
    let report =
        evaluate_on(&net, &loader, &combos, Scoring::Accuracy, device, ranks.as_deref_mut())
            .unwrap();
    let complete = loader.restricted(loader.samples_with(set.full())).unwrap();
    let predictions = combos
        .iter()
        .map(|&c| predict_combo_on(&net, &complete, c, device, ranks.as_deref_mut()).unwrap())
        .collect();
    let observed = evaluate_observed_on(&net, &loader, Scoring::Accuracy, device, ranks).unwrap();
    (report, predictions, observed, net.rows.load(Ordering::Relaxed))
}

#[test]
fn two_ranks_score_exactly_what_one_process_scores_each_forwarding_its_part() {
    let (report, predictions, observed, rows) = score(None);
    assert_eq!(report.rows().len(), 3);
    assert!(observed.patterns.len() > 1, "{:?}", observed.patterns);
    assert_eq!(observed.samples, 37);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ranks: Vec<_> = (0..2)
        .map(|r| {
            std::thread::spawn(move || {
                let group =
                    ProcessGroup::new(r, 2, "127.0.0.1", port, Duration::from_secs(30)).unwrap();
                let mut dp = DataParallel::new(group);
                score(Some(&mut dp))
            })
        })
        .collect();
    let per_rank: Vec<Scores> = ranks.into_iter().map(|h| h.join().unwrap()).collect();
    for (r, (rep, preds, obs, _)) in per_rank.iter().enumerate() {
        assert_eq!(rep, &report, "rank {r}: report");
        assert_eq!(preds, &predictions, "rank {r}: per-sample predictions");
        assert_eq!(obs, &observed, "rank {r}: as observed");
    }
    // Each rank forwarded its positions only: together exactly the single-process rows.
    let (r0, r1) = (per_rank[0].3, per_rank[1].3);
    assert_eq!(r0 + r1, rows);
    assert!(r0 < rows && r1 < rows && r0.abs_diff(r1) <= rows / 4, "{r0} + {r1} of {rows}");
}

/// A data-parallel rank on CUDA needs the NCCL backend: without it (a CPU libtorch, or a group
/// joined without a CUDA device) the trainer refuses the config before touching the device.
#[test]
fn data_parallel_cuda_without_nccl_is_a_config_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let group = ProcessGroup::new(0, 1, "127.0.0.1", port, Duration::from_secs(30)).unwrap();
    let mut cfg = mmanet_train::presets::preset("toy-teacher").unwrap();
    cfg.device = "cuda".into();
    let dir = tempfile::tempdir().unwrap();
    let run = mmanet_train::run_dir::RunDir::create(dir.path().join("run")).unwrap();
    let Err(e) =
        mmanet_train::Trainer::new_parallel(cfg.check().unwrap(), run, DataParallel::new(group))
    else {
        panic!("a CUDA rank without NCCL must be refused");
    };
    let e = e.to_string();
    assert!(e.contains("device"), "{e}");
    if mmanet_sys::nccl_built() {
        assert!(e.contains("without a CUDA device"), "{e}");
    } else {
        assert!(e.contains("NCCL backend") && e.contains("setup --cuda"), "{e}");
    }
}
