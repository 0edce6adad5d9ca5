//! One MMANet student training step on the CASIA-SURF architecture, timed (issue 8).
//!
//! The step: the trainer's objective ([`ClassificationObjective`] past `begin_epoch`): student
//! forward (train) with one random modality combination per sample, frozen teacher forward
//! (eval, no grad), `CE + 30 * MAD + 0.5 * MAR` (weak set R+I, R, I; the released code's
//! reductions, `Fidelity::ReferenceCode`); then backward, SGD (Nesterov 0.9, weight decay 5e-4). Data come from the real [`DataLoader`] over CASIA-SURF list files with the train
//! augmentation. `benches/pytorch/surf_step.py` is the PyTorch twin; both print the same JSON.
//!
//! ```text
//! bench_step --data DIR --generate N [--size 180]     write N synthetic samples and exit
//! bench_step --data DIR --load-breakdown N            one thread: decode vs augment, ms/sample
//! bench_step --data DIR [--batch 64] [--steps 10] [--warmup 2] [--threads 2]
//!            [--device cpu|cuda] [--amp] [--channels-last] [--cudnn-benchmark] [--cuda-graph]
//!            [--load-only] [--load-batches B] [--decoded-cache-mb MB] [--width 64] [--idle-mark-ms MS]
//!            [--malloc-default]
//! bench_step --synthetic-inputs --modalities M [--size 112] ...   random inputs, no loader
//! ```
//!
//! Like `mmanet`, the program keeps freed tensor memory in the process
//! ([`mmanet_train::cpu_memory`]); `--malloc-default` leaves glibc's allocator as it is, which is
//! what the PyTorch twin runs with. `--idle-mark-ms` leaves the GPU idle around the timed steps
//! for the busy-fraction probe (`benches/gpu_busy`).
//!
//! `--amp`: fp16 autocast for the network forwards, losses in f32, dynamic loss scaling
//! ([`mmanet_train::amp::GradScaler`]). `--channels-last`: NHWC weights and inputs. On CUDA
//! batches go through pinned memory with asynchronous copies ([`mmanet_train::transfer`]).
//! `--cuda-graph`: the step on static buffers, captured once as a CUDA graph after
//! [`WARMUP_STEPS`] eager steps and replayed ([`mmanet_train::captured`], what the trainer's
//! `compute.cuda_graph` runs); on CPU the same step runs eagerly on the buffers.
//! `--synthetic-inputs` times the step alone on random device tensors for `--modalities M`
//! branches (the cost-vs-M sweep); the weak set is then every single-modality combination.
//!
//! Output (one JSON line on stdout): `step_ms_median` (end-to-end, waiting for the batch
//! included), `compute_ms_median` (to-device copy + step), `samples_per_s` (timed steps, end to
//! end), `load_samples_per_s` (the loader alone, before training), `peak_rss_mib` (VmHWM).
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

mod common;

use common::{BoxResult, idle_mark, median, status_kib, sync};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use mmanet_core::{Fidelity, ModalityMask, ModalitySet};
use mmanet_data::surf::{SurfAugment, SurfDataset, write_synthetic_surf};
use mmanet_data::{Batch, BatchIter, DataLoader, LoaderConfig, MaskPolicy};
use mmanet_losses::WeakSet;
use mmanet_models::layout::{channels_last, to_channels_last};
use mmanet_models::{ClsNetConfig, StudentNet, TeacherNet};
use mmanet_train::MethodConfig;
use mmanet_train::amp::GradScaler;
use mmanet_train::captured::{
    CapturedStep, StaticBatch, WARMUP_STEPS, device_side_update, note_device_step,
};
use mmanet_train::objective::{ClassificationObjective, Objective, Step};
use mmanet_train::optim::{Optimizer, OptimizerConfig};
use mmanet_train::transfer::{self, TransferOptions};
use tch::{Device, Kind, Tensor, nn::VarStore};

/// λ_MAD and λ_MAR of the reference scripts (docs/method.md §5.1).
const LAMBDA_MAD: f64 = 30.0;
const LAMBDA_MAR: f64 = 0.5;

#[derive(Debug)]
struct Args {
    data: PathBuf,
    generate: Option<usize>,
    size: usize,
    batch: usize,
    steps: usize,
    warmup: usize,
    threads: usize,
    device: Device,
    amp: bool,
    channels_last: bool,
    cudnn_benchmark: bool,
    cuda_graph: bool,
    synthetic: bool,
    modalities: usize,
    load_only: bool,
    /// The decoded-image cache's budget (0: none); filled by one untimed epoch first.
    decoded_cache_mb: usize,
    load_batches: usize,
    breakdown: usize,
    width: i64,
    seed: u64,
    idle_mark_ms: u64,
    malloc_default: bool,
}

fn parse_args() -> BoxResult<Args> {
    let mut a = Args {
        data: PathBuf::from("target/bench/surf-synthetic"),
        generate: None,
        size: 180,
        batch: 64,
        steps: 10,
        warmup: 2,
        threads: 1,
        device: Device::Cpu,
        amp: false,
        channels_last: false,
        cudnn_benchmark: false,
        cuda_graph: false,
        synthetic: false,
        modalities: 3,
        load_only: false,
        decoded_cache_mb: 0,
        load_batches: 0,
        breakdown: 0,
        width: 64,
        seed: 0,
        idle_mark_ms: 0,
        malloc_default: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let mut value = || -> BoxResult<String> {
            i += 1;
            args.get(i).cloned().ok_or_else(|| format!("{flag} needs a value").into())
        };
        match flag {
            "--data" => a.data = PathBuf::from(value()?),
            "--generate" => a.generate = Some(value()?.parse()?),
            "--size" => a.size = value()?.parse()?,
            "--batch" => a.batch = value()?.parse()?,
            "--steps" => a.steps = value()?.parse()?,
            "--warmup" => a.warmup = value()?.parse()?,
            "--threads" => a.threads = value()?.parse()?,
            "--width" => a.width = value()?.parse()?,
            "--load-batches" => a.load_batches = value()?.parse()?,
            "--load-breakdown" => a.breakdown = value()?.parse()?,
            "--seed" => a.seed = value()?.parse()?,
            "--idle-mark-ms" => a.idle_mark_ms = value()?.parse()?,
            "--malloc-default" => a.malloc_default = true,
            "--device" => {
                a.device = match value()?.as_str() {
                    "cpu" => Device::Cpu,
                    "cuda" => Device::Cuda(0),
                    other => return Err(format!("--device {other}: expected cpu or cuda").into()),
                }
            }
            "--amp" => a.amp = true,
            "--channels-last" => a.channels_last = true,
            "--cudnn-benchmark" => a.cudnn_benchmark = true,
            "--cuda-graph" => a.cuda_graph = true,
            "--synthetic-inputs" => a.synthetic = true,
            "--modalities" => a.modalities = value()?.parse()?,
            "--load-only" => a.load_only = true,
            "--decoded-cache-mb" => a.decoded_cache_mb = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "bench_step --data DIR [--generate N [--size 180]] [--batch N] [--steps S] \
                     [--warmup W] [--threads T] [--device cpu|cuda] [--amp] [--channels-last] \
                     [--cudnn-benchmark] [--cuda-graph] [--load-only] [--load-batches B] [--decoded-cache-mb MB] [--load-breakdown N] \
                     [--width 64] [--seed 0] [--synthetic-inputs --modalities M --size 112] \
                     [--idle-mark-ms MS] [--malloc-default]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`").into()),
        }
        i += 1;
    }
    if a.batch == 0 || a.steps == 0 || a.threads == 0 {
        return Err("--batch, --steps and --threads must be positive".into());
    }
    if !(1..=8).contains(&a.modalities) {
        return Err("--modalities must be 1 to 8".into());
    }
    Ok(a)
}

/// Endless batches: epoch after epoch of the loader.
struct Batches<'a> {
    loader: &'a DataLoader,
    epoch: u64,
    iter: BatchIter,
}

impl<'a> Batches<'a> {
    fn new(loader: &'a DataLoader) -> Self {
        Batches { loader, epoch: 0, iter: loader.iter(0) }
    }

    fn next_batch(&mut self) -> BoxResult<Batch> {
        loop {
            match self.iter.next() {
                Some(b) => return Ok(b?),
                None => {
                    self.epoch += 1;
                    self.iter = self.loader.iter(self.epoch);
                }
            }
        }
    }
}

struct Nets {
    objective: ClassificationObjective,
    teacher: TeacherNet,
    student: StudentNet,
    opt: Optimizer,
    scaler: GradScaler,
    weak: WeakSet,
    amp: bool,
    /// `--cuda-graph`: the captured step.
    graph: Option<CapturedStep>,
    t_vs: VarStore,
    s_vs: VarStore,
}

/// The modality set of the run: CASIA-SURF's R, D, I, or `M` numbered modalities.
fn modality_set(args: &Args) -> BoxResult<ModalitySet> {
    if args.synthetic {
        Ok(ModalitySet::from_names((0..args.modalities).map(|k| format!("x{k}")))?)
    } else {
        Ok(ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set"))
    }
}

fn build_nets(args: &Args) -> BoxResult<Nets> {
    let set = modality_set(args)?;
    let cfg =
        ClsNetConfig { modalities: set.clone(), ..ClsNetConfig::surf() }.with_width(args.width);
    let mut t_vs = VarStore::new(args.device);
    let teacher = TeacherNet::new(&t_vs.root(), &cfg);
    t_vs.freeze();
    let s_vs = VarStore::new(args.device);
    let student = StudentNet::new(&s_vs.root(), &cfg);
    if args.channels_last {
        to_channels_last(&t_vs);
        to_channels_last(&s_vs);
    }
    let opt = Optimizer::new(&s_vs, OptimizerConfig::reference_sgd());
    let weak_combos: Vec<ModalityMask> = if args.synthetic {
        set.combinations().into_iter().filter(|c| c.count() == 1).collect()
    } else {
        set.parse_masks(&["R+I", "R", "I"])?
    };
    let weak = WeakSet::new(set.clone(), weak_combos)?;
    let scaler = GradScaler::new(args.amp, args.device);
    let method = MethodConfig {
        lambda_mad: LAMBDA_MAD,
        lambda_mar: LAMBDA_MAR,
        fidelity: Fidelity::ReferenceCode,
        ..MethodConfig::mmanet_classification()
    };
    let objective = ClassificationObjective::new(&method, set, cfg.n_classes as usize);
    if args.cuda_graph && args.device.is_cuda() && !mmanet_sys::cuda_graphs_built() {
        return Err("--cuda-graph: mmanet-sys was built without CUDA graphs \
                    (build against the CUDA libtorch: `cargo xtask setup --cuda`)"
            .into());
    }
    // Out: the loss, then device_side_update's two flags.
    let graph = args.cuda_graph.then(|| CapturedStep::new(args.device, 3));
    Ok(Nets { objective, teacher, student, opt, scaler, weak, amp: args.amp, graph, t_vs, s_vs })
}

/// One training step on a batch already on the device: the trainer's objective (forwards
/// under autocast with `--amp`, losses in f32), scaled backward, SGD step (skipped by the scaler
/// on Inf/NaN gradients).
fn train_step(nets: &mut Nets, batch: &Batch) -> BoxResult<f64> {
    if let Some(mut graph) = nets.graph.take() {
        let out = graph.run(batch, None, |s| captured_step(nets, s));
        nets.graph = Some(graph);
        let v: Vec<f32> = Vec::try_from(out?.to_device(Device::Cpu))?;
        if v[1] != 0.0 {
            return Err(format!("non-finite loss {}", v[0]).into());
        }
        note_device_step(&mut nets.opt, &mut nets.scaler, v[2] != 0.0);
        return Ok(f64::from(v[0]));
    }
    let terms = nets.objective.loss(&objective_step(nets, false), batch)?;
    let grads = nets.opt.backward(&nets.scaler.scale(&terms.total));
    nets.scaler.step(&mut nets.opt, grads);
    Ok(terms.read().total)
}

/// What the objective sees of the nets (complete data: no availability mask).
fn objective_step(nets: &Nets, capturable: bool) -> Step<'_> {
    Step {
        student: &nets.student,
        teacher: Some(&nets.teacher),
        weak: Some(&nets.weak),
        available: None,
        amp: nets.amp,
        capturable,
    }
}

/// The step `--cuda-graph` captures: the same objective on the static buffers (no host
/// reads), [`device_side_update`], and `[3]` out: the loss and the two flags.
fn captured_step(nets: &mut Nets, s: &StaticBatch) -> Result<(), mmanet_train::TrainError> {
    let terms = nets.objective.loss(&objective_step(nets, true), &s.batch)?;
    let flags = device_side_update(&mut nets.opt, &mut nets.scaler, &terms.total)?;
    let _guard = tch::no_grad_guard();
    s.out.shallow_clone().copy_(&Tensor::cat(&[terms.total.reshape([1]), flags], 0));
    Ok(())
}

/// The graph counts of a `--cuda-graph` run, for the JSON record.
fn graph_record(nets: &Nets) -> serde_json::Value {
    nets.graph.as_ref().map_or(serde_json::Value::Null, |g| {
        let c = g.counts();
        serde_json::json!({
            "captures": c.captures, "replays": c.replays, "eager": c.eager,
            "warmup_steps": WARMUP_STEPS,
        })
    })
}

/// A batch of random inputs on the device: `M` modalities `[B, 3, size, size]`, one random
/// non-empty combination per sample, random binary labels.
fn synthetic_batch(args: &Args, set: &ModalitySet) -> Batch {
    let (b, m) = (args.batch as i64, set.len());
    let opts = (Kind::Float, args.device);
    let size = args.size as i64;
    let inputs: Vec<Tensor> = (0..m)
        .map(|_| {
            let x = Tensor::randn([b, 3, size, size], opts);
            if args.channels_last { channels_last(&x) } else { x }
        })
        .collect();
    let combos: Vec<ModalityMask> = {
        let all = set.combinations();
        let picks = Tensor::randint(all.len() as i64, [b], (Kind::Int64, tch::Device::Cpu));
        (0..b).map(|i| all[picks.int64_value(&[i]) as usize]).collect()
    };
    let mask: Vec<f32> = combos
        .iter()
        .flat_map(|c| (0..set.len()).map(move |md| f32::from(u8::from(c.contains(md)))))
        .collect();
    Batch {
        inputs,
        lengths: (0..m).map(|_| None).collect(),
        mask: Tensor::from_slice(&mask).view([b, m as i64]).to_device(args.device),
        combos,
        targets: Tensor::randint(2, [b], (Kind::Int64, args.device)),
        indices: (0..b as usize).collect(),
    }
}

/// Single-threaded cost of the loading stages per sample: JPEG decoding (3 files) and the
/// train augmentation (resize, rotation, crop, flip, normalisation of 3 modalities).
fn load_breakdown(args: &Args) -> BoxResult<()> {
    use rand::SeedableRng;
    let dataset = SurfDataset::open(&args.data, "train_list.txt")?;
    let augment = SurfAugment::train();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let (mut decode_s, mut augment_s) = (0.0, 0.0);
    let n = args.breakdown.min(dataset.entries().len());
    for e in &dataset.entries()[..n] {
        let t0 = Instant::now();
        let images = e
            .paths
            .iter()
            .map(|p| mmanet_data::transform::read_bgr(p))
            .collect::<Result<Vec<_>, _>>()?;
        let t1 = Instant::now();
        let out = augment.apply(&images, &mut rng)?;
        std::hint::black_box(out);
        decode_s += (t1 - t0).as_secs_f64();
        augment_s += t1.elapsed().as_secs_f64();
    }
    let record = serde_json::json!({
        "impl": "mmanet-rs",
        "mode": "load-breakdown",
        "samples": n,
        "decode_ms_per_sample": decode_s * 1e3 / n as f64,
        "augment_ms_per_sample": augment_s * 1e3 / n as f64,
    });
    println!("{record}");
    Ok(())
}

fn main() -> BoxResult<()> {
    let args = parse_args()?;
    if let Some(n) = args.generate {
        let t0 = Instant::now();
        let s = write_synthetic_surf(&args.data, n, args.seed, args.size)?;
        eprintln!(
            "wrote {:?} samples ({}x{}) under {} in {:.1} s",
            s.counts,
            args.size,
            args.size,
            s.root.display(),
            t0.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if args.breakdown > 0 {
        return load_breakdown(&args);
    }
    // As `mmanet` does: freed tensor memory stays in the process (unless --malloc-default).
    let keep_freed_memory = !args.malloc_default && mmanet_train::cpu_memory::keep_freed_memory();
    tch::set_num_threads(args.threads as i32);
    tch::manual_seed(args.seed as i64);
    if args.cudnn_benchmark {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut record = serde_json::json!({
        "impl": "mmanet-rs",
        "device": format!("{:?}", args.device).to_lowercase(),
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "cudnn_benchmark": args.cudnn_benchmark,
        "cuda_graph": args.cuda_graph,
        "keep_freed_memory": keep_freed_memory,
        "width": args.width,
        "modalities": if args.synthetic { args.modalities } else { 3 },
    });

    if args.synthetic {
        // The step alone on random device tensors (no loader): cost as a function of M.
        record["mode"] = "synthetic-step".into();
        record["size"] = args.size.into();
        let set = modality_set(&args)?;
        let mut nets = build_nets(&args)?;
        let batches: Vec<Batch> = (0..4).map(|_| synthetic_batch(&args, &set)).collect();
        let mut times = Vec::new();
        let mut last_loss = f64::NAN;
        for step in 0..args.warmup + args.steps {
            if step == args.warmup {
                idle_mark(args.idle_mark_ms, args.device);
            }
            let t0 = Instant::now();
            last_loss = train_step(&mut nets, &batches[step % batches.len()])?;
            sync(args.device);
            if step >= args.warmup {
                times.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        idle_mark(args.idle_mark_ms, args.device);
        record["step_ms_median"] = median(&times).into();
        record["samples_per_s"] = (args.batch as f64 * 1e3 / median(&times)).into();
        record["step_ms_all"] = times.into();
        record["last_loss"] = last_loss.into();
        record["n_params_student"] = n_params(&nets.s_vs).into();
        record["n_params_teacher"] = n_params(&nets.t_vs).into();
        record["graph"] = graph_record(&nets);
    } else {
        run_with_loader(&args, &mut record)?;
    }
    record["peak_rss_mib"] = status_kib("VmHWM:").map(|k| k as f64 / 1024.0).into();
    record["torch_threads"] = tch::get_num_threads().into();
    println!("{record}");
    Ok(())
}

fn n_params(vs: &VarStore) -> i64 {
    vs.variables().values().map(Tensor::numel).sum::<usize>() as i64
}

/// Phase 1: the loader alone; phase 2 (unless `--load-only`): training steps fed by the loader.
fn run_with_loader(args: &Args, record: &mut serde_json::Value) -> BoxResult<()> {
    let dataset = SurfDataset::open(&args.data, "train_list.txt")?
        .with_augment(SurfAugment::train())?
        .with_decoded_cache(args.decoded_cache_mb << 20);
    let n_samples = mmanet_data::Dataset::len(&dataset);
    let dataset = Arc::new(dataset);
    let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let loader_cfg = LoaderConfig {
        threads: args.threads,
        pin_memory: args.device.is_cuda().then_some(args.device),
        ..LoaderConfig::train(args.batch, args.seed)
    };
    let loader = DataLoader::new(dataset.clone(), MaskPolicy::uniform_all(&set), loader_cfg)?;
    if loader.num_batches() == 0 {
        return Err(format!("{n_samples} samples hold no batch of {}", args.batch).into());
    }
    if let Some(cache) = dataset.decoded_cache() {
        // Fill the cache with one untimed epoch (its contents do not depend on the epoch).
        for batch in loader.iter(1 << 40) {
            batch?;
        }
        let s = cache.stats();
        record["decoded_cache"] = serde_json::json!({
            "budget_mib": args.decoded_cache_mb, "entries": s.entries, "bytes": s.bytes,
        });
    }
    let load_batches = if args.load_batches == 0 { args.steps } else { args.load_batches };

    // Phase 1: the loader alone (decode, augment, collate), after `warmup` batches.
    let load_samples_per_s = {
        let mut batches = Batches::new(&loader);
        for _ in 0..args.warmup {
            batches.next_batch()?;
        }
        let t0 = Instant::now();
        let mut n = 0usize;
        for _ in 0..load_batches {
            n += batches.next_batch()?.len();
        }
        n as f64 / t0.elapsed().as_secs_f64()
    };
    record["mode"] = if args.load_only { "load" } else { "step" }.into();
    record["n_samples"] = n_samples.into();
    record["load_batches"] = load_batches.into();
    record["load_samples_per_s"] = load_samples_per_s.into();
    if args.load_only {
        return Ok(());
    }

    // Phase 2: training steps, loading included.
    let mut nets = build_nets(args)?;
    let transfer_options = TransferOptions { channels_last: args.channels_last };
    let mut batches = Batches::new(&loader);
    let (mut e2e, mut compute) = (Vec::new(), Vec::new());
    let mut last_loss = f64::NAN;
    let mut timed_total = 0.0;
    for step in 0..args.warmup + args.steps {
        if step == args.warmup {
            idle_mark(args.idle_mark_ms, args.device);
        }
        let t0 = Instant::now();
        let batch = batches.next_batch()?;
        let t1 = Instant::now();
        let batch = transfer::to_device(batch, args.device, transfer_options);
        last_loss = train_step(&mut nets, &batch)?;
        sync(args.device);
        let t2 = Instant::now();
        if step >= args.warmup {
            e2e.push((t2 - t0).as_secs_f64() * 1e3);
            compute.push((t2 - t1).as_secs_f64() * 1e3);
            timed_total += (t2 - t0).as_secs_f64();
        }
    }
    idle_mark(args.idle_mark_ms, args.device);
    record["step_ms_median"] = median(&e2e).into();
    record["compute_ms_median"] = median(&compute).into();
    record["samples_per_s"] = ((args.steps * args.batch) as f64 / timed_total).into();
    record["step_ms_all"] = e2e.into();
    record["last_loss"] = last_loss.into();
    record["skipped_steps"] = nets.scaler.skipped_steps().into();
    record["graph"] = graph_record(&nets);
    record["n_params_student"] = n_params(&nets.s_vs).into();
    if let Device::Cuda(_) = args.device {
        // libtorch's caching allocator statistics are not exposed by tch; run.sh samples
        // nvidia-smi instead.
        record["gpu_max_mem_mib"] = serde_json::Value::Null;
    }
    Ok(())
}
