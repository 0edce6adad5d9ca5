//! One MMANet student training step on NYUv2-sized ESANet, timed (issue 8, segmentation).
//!
//! The step is the trainer's segmentation objective after `begin_epoch`, the same
//! `mmanet_train::objective::SegmentationObjective` the trainer calls: the student
//! (ESANet with `auxi_decoder`, train mode) with one random combination per sample (RGB, depth,
//! RGB-D, 1/3 each); the frozen teacher (ESANet, no grad, all-ones mask; eval mode under the
//! preset's `Fidelity::Paper`, train mode under `--reference-code`); the loss
//! `Σ_scales CE2d(S) + λ_MAD · MAD_seg(fuse_cache[0..3]) + λ_MAR · MAR_seg(auxi_decoder)`
//! with the `nyuv2-mmanet` preset's λ (4.0 / 0.2), weak set W = [depth] (the reference's
//! hard-coded choice), class weights all ones; backward; the preset's SGD (lr 0.01, momentum
//! 0.9, Nesterov, weight decay 1e-4). Under `--amp` both forwards run in `tch::autocast`
//! (fp16 on CUDA), the losses in f32 on the outputs cast to f32 (as `bench_step`), and the
//! backward and step go through `mmanet_train::amp::GradScaler`. `--amp-losses` computes the
//! losses under autocast too, as the released code does: the fp16 Gram products of segmentation
//! MAD can then overflow (an untrained eval-mode teacher's context map reaches |x| ~ 60 over 512
//! channels) and the affected scale's NaN is replaced by 0.
//!
//! Inputs are random tensors created once on the device (no loading): RGB `[B, 3, H, W]`, depth
//! `[B, 1, H, W]` (standard normal), labels `[B, H, W]` uniform in `0..=40` (0 = void), resized
//! per output scale inside the objective as in the trainer. `benches/pytorch/esanet_step.py` is the PyTorch
//! twin; both print the same JSON keys.
//!
//! ```text
//! bench_seg_step [--batch 8] [--height 480] [--width 640] [--steps 10] [--warmup 3]
//!                [--device cpu|cuda] [--amp] [--threads 1] [--seed 0] [--encoder r50|r34]
//!                [--reference-code] [--amp-losses] [--channels-last] [--cudnn-benchmark]
//!                [--idle-mark-ms MS] [--cuda-graph]
//! ```
//!
//! `--cuda-graph`: the step on static buffers, captured once as a CUDA graph after the eager
//! warm-up steps and replayed ([`mmanet_train::captured`], as `compute.cuda_graph`; MAR keeps
//! the weak samples by a flag instead of boolean indexing); on CPU it runs eagerly on the
//! buffers.
//!
//! `BENCH_SEG_DEBUG=1` prints, per tapped scale and step, the largest magnitudes and that
//! scale's MAD alone (stderr), from one extra forward of both networks per step (without
//! gradient, BatchNorm statistics updated as in the step's own forward).
//!
//! Output (one JSON line on stdout): `step_ms_median`, `step_ms_all` (each timed step, CUDA
//! synchronised), `samples_per_s`, `last_loss` and its parts, `n_params_teacher`,
//! `n_params_student` (trainable parameters), `peak_rss_mib` (VmHWM) and, on CUDA,
//! `gpu_mem_used_mib` (nvidia-smi's memory of this process after the run: the caching
//! allocator's peak reservation plus the CUDA context; tch exposes no allocator statistics).
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

mod common;

use common::{BoxResult, idle_mark, median, status_kib, sync};
use std::time::Instant;

use mmanet_core::{Fidelity, ModalityMask};
use mmanet_data::Batch;
use mmanet_losses::{SegMadConfig, WeakSet, f_mad_segmentation};
use mmanet_models::layout::{channels_last, to_channels_last};
use mmanet_models::{EsaNetConfig, MultiModalNet, NetConfig, NetOutput, NetRole, build_net};
use mmanet_train::MethodConfig;
use mmanet_train::amp::GradScaler;
use mmanet_train::captured::{CapturedStep, StaticBatch, device_side_update, note_device_step};
use mmanet_train::objective::segmentation::teacher_prediction;
use mmanet_train::objective::{LossTerms, Objective, SegmentationObjective, Step};
use mmanet_train::optim::Optimizer;
use mmanet_train::state::LossBreakdown;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor, nn::VarStore};

/// The preset whose model, λ and optimiser the step uses.
const PRESET: &str = "nyuv2-mmanet";
/// Per-sample training combinations (RGB, depth): RGB, depth, RGB-D (docs/method.md §4).
const COMBINATIONS: [[f32; 2]; 3] = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];

#[derive(Debug)]
struct Args {
    batch: i64,
    height: i64,
    width: i64,
    steps: usize,
    warmup: usize,
    threads: usize,
    device: Device,
    amp: bool,
    seed: u64,
    encoder: String,
    reference_code: bool,
    amp_losses: bool,
    channels_last: bool,
    cudnn_benchmark: bool,
    cuda_graph: bool,
    idle_mark_ms: u64,
}

fn parse_args() -> BoxResult<Args> {
    let mut a = Args {
        batch: 8,
        height: 480,
        width: 640,
        steps: 10,
        warmup: 3,
        threads: 1,
        device: Device::Cpu,
        amp: false,
        seed: 0,
        encoder: "r50".into(),
        reference_code: false,
        amp_losses: false,
        channels_last: false,
        cudnn_benchmark: false,
        cuda_graph: false,
        idle_mark_ms: 0,
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
            "--batch" => a.batch = value()?.parse()?,
            "--height" => a.height = value()?.parse()?,
            "--width" => a.width = value()?.parse()?,
            "--steps" => a.steps = value()?.parse()?,
            "--warmup" => a.warmup = value()?.parse()?,
            "--threads" => a.threads = value()?.parse()?,
            "--seed" => a.seed = value()?.parse()?,
            "--encoder" => a.encoder = value()?,
            "--device" => {
                a.device = match value()?.as_str() {
                    "cpu" => Device::Cpu,
                    "cuda" => Device::Cuda(0),
                    other => return Err(format!("--device {other}: expected cpu or cuda").into()),
                }
            }
            "--amp" => a.amp = true,
            "--reference-code" => a.reference_code = true,
            "--amp-losses" => a.amp_losses = true,
            "--channels-last" => a.channels_last = true,
            "--cudnn-benchmark" => a.cudnn_benchmark = true,
            "--cuda-graph" => a.cuda_graph = true,
            "--idle-mark-ms" => a.idle_mark_ms = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "bench_seg_step [--batch 8] [--height 480] [--width 640] [--steps 10] \
                     [--warmup 3] [--device cpu|cuda] [--amp] [--threads 1] [--seed 0] \
                     [--encoder r50|r34] [--reference-code] [--amp-losses] \
                     [--channels-last] [--cudnn-benchmark] [--idle-mark-ms MS] [--cuda-graph]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`").into()),
        }
        i += 1;
    }
    if a.batch < 1 || a.steps == 0 || a.threads == 0 {
        return Err("--batch, --steps and --threads must be positive".into());
    }
    if a.height % 32 != 0 || a.width % 32 != 0 || a.height < 32 || a.width < 32 {
        return Err("--height and --width must be positive multiples of 32".into());
    }
    if a.encoder != "r50" && a.encoder != "r34" {
        return Err(format!("--encoder {}: expected r50 or r34", a.encoder).into());
    }
    Ok(a)
}

/// GPU memory of this process per nvidia-smi (MiB) and where the number comes from: the
/// process's row of `--query-compute-apps`, else (PID namespaces hide it) the whole GPU's
/// `memory.used`. `None` when nvidia-smi is not there.
fn gpu_mem_used_mib() -> Option<(f64, &'static str)> {
    let run = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("nvidia-smi").args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let pid = std::process::id().to_string();
    if let Some(text) =
        run(&["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
    {
        for line in text.lines() {
            let mut parts = line.split(',').map(str::trim);
            if parts.next() == Some(pid.as_str()) {
                if let Some(mib) = parts.next().and_then(|m| m.parse().ok()) {
                    return Some((mib, "nvidia-smi compute-apps (this process)"));
                }
            }
        }
    }
    let text = run(&["--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"])?;
    let mib = text.lines().next()?.trim().parse().ok()?;
    Some((mib, "nvidia-smi memory.used (whole GPU 0)"))
}

fn n_params(vs: &VarStore) -> i64 {
    vs.trainable_variables().iter().map(Tensor::numel).map(|n| n as i64).sum()
}

/// The step's constant inputs, on the device.
struct Inputs {
    /// `[rgb [B, 3, H, W], depth [B, 1, H, W]]`.
    images: Vec<Tensor>,
    /// Labels at full resolution (`[B, H, W]` i64, 0 = void).
    labels: Tensor,
}

fn make_inputs(args: &Args, n_classes: i64) -> Inputs {
    let (b, h, w, dev) = (args.batch, args.height, args.width, args.device);
    let layout = |x: Tensor| if args.channels_last { channels_last(&x) } else { x };
    let rgb = layout(Tensor::randn([b, 3, h, w], (Kind::Float, dev)));
    let depth = layout(Tensor::randn([b, 1, h, w], (Kind::Float, dev)));
    let labels = Tensor::randint_low(0, n_classes + 1, [b, h, w], (Kind::Int64, dev));
    Inputs { images: vec![rgb, depth], labels }
}

/// The batch of one step: the constant inputs with one random combination per sample
/// (`mask` `[B, 2]` f32 on the device).
fn random_batch(rng: &mut ChaCha8Rng, x: &Inputs, batch: i64, device: Device) -> Batch {
    let picks: Vec<[f32; 2]> =
        (0..batch).map(|_| COMBINATIONS[rng.random_range(0..COMBINATIONS.len())]).collect();
    let rows: Vec<f32> = picks.iter().flatten().copied().collect();
    let combos = picks
        .iter()
        .map(|[rgb, depth]| {
            ModalityMask::from_bits(u32::from(*rgb > 0.0) | u32::from(*depth > 0.0) << 1)
                .expect("a non-empty combination")
        })
        .collect();
    Batch {
        inputs: x.images.iter().map(Tensor::shallow_clone).collect(),
        lengths: vec![None, None],
        mask: Tensor::from_slice(&rows).view([batch, 2]).to_device(device),
        combos,
        targets: x.labels.shallow_clone(),
        indices: (0..batch as usize).collect(),
    }
}

struct Setup {
    objective: SegmentationObjective,
    teacher: Box<dyn MultiModalNet>,
    student: Box<dyn MultiModalNet>,
    _s_vs: VarStore,
    opt: Optimizer,
    scaler: GradScaler,
    weak: WeakSet,
    lambda_mad: f64,
    lambda_mar: f64,
    fidelity: Fidelity,
    /// `--cuda-graph`: the captured step (its `[6]` out: the loss parts, then the two flags).
    graph: Option<CapturedStep>,
}

/// The network outputs `(student, teacher)` as the objective runs them (for `BENCH_SEG_DEBUG`):
/// the student in train mode with `mask`, the teacher without gradient with an all-ones mask
/// (train mode only under `--reference-code`).
fn forward(s: &Setup, batch: &Batch) -> (NetOutput, NetOutput) {
    let out = s.student.forward_t(&batch.inputs, &batch.mask, true);
    let teacher_train = s.fidelity == Fidelity::ReferenceCode;
    let ones = batch.mask.ones_like();
    let t = tch::no_grad(|| s.teacher.forward_t(&batch.inputs, &ones, teacher_train));
    (out, t)
}

/// `BENCH_SEG_DEBUG=1`: per tapped scale, the largest magnitudes and the scale's MAD alone.
fn debug_mad(pairs: &[(&Tensor, &Tensor)], pred: &Tensor) -> BoxResult<()> {
    let amax = |t: &Tensor| t.abs().max().to_kind(Kind::Float).double_value(&[]);
    let cfg = SegMadConfig::default();
    for (j, (st, te)) in pairs.iter().enumerate() {
        let one = tch::no_grad(|| f_mad_segmentation(&[(*st, *te)], pred, &cfg))?;
        eprintln!(
            "debug scale {j}: {:?} {:?} |s|max {:.4e} |t|max {:.4e} |pred|max {:.4e} mad {:.6}",
            st.size(),
            st.kind(),
            amax(st),
            amax(te),
            amax(pred),
            one.double_value(&[])
        );
    }
    Ok(())
}

/// The trainer's objective past `begin_epoch` (forwards under autocast with `--amp`, losses in
/// f32, or under autocast too with `--amp-losses`), scaled backward, SGD step (skipped by the
/// scaler on Inf/NaN gradients).
fn train_step(s: &mut Setup, batch: &Batch, args: &Args) -> BoxResult<(f64, LossBreakdown)> {
    if std::env::var_os("BENCH_SEG_DEBUG").is_some() {
        let (out, t) = tch::no_grad(|| tch::autocast(args.amp, || forward(s, batch)));
        let pairs: Vec<(&Tensor, &Tensor)> = out.features.iter().zip(&t.features).take(3).collect();
        debug_mad(&pairs, &teacher_prediction(&t, s.fidelity)?)?;
    }
    if let Some(mut graph) = s.graph.take() {
        let out = graph.run(batch, None, |b| captured_step(s, b, args));
        s.graph = Some(graph);
        // One transfer: the loss parts, then the two flags.
        let host = out?.to_device(Device::Cpu);
        let parts = LossBreakdown::from_parts(&host.narrow(0, 0, 4));
        let [bad_loss, overflow] = [4, 5].map(|i| host.double_value(&[i]) != 0.0);
        if bad_loss {
            return Err(format!("non-finite loss {}", parts.total).into());
        }
        note_device_step(&mut s.opt, &mut s.scaler, overflow);
        return Ok((parts.total, parts));
    }
    let terms = objective_loss(s, batch, args, false)?;
    let parts = terms.read();
    let grads = s.opt.backward(&s.scaler.scale(&terms.total));
    s.scaler.step(&mut s.opt, grads);
    Ok((parts.total, parts))
}

/// The objective's loss terms (`--amp-losses`: the whole objective under autocast, the
/// outputs keeping their fp16 kind; else the forwards only).
fn objective_loss(
    s: &Setup,
    batch: &Batch,
    args: &Args,
    capturable: bool,
) -> Result<LossTerms, mmanet_train::TrainError> {
    let step = |amp: bool| Step {
        student: s.student.as_ref(),
        teacher: Some(s.teacher.as_ref()),
        weak: Some(&s.weak),
        available: None,
        amp,
        capturable,
    };
    if args.amp_losses {
        tch::autocast(args.amp, || s.objective.loss(&step(false), batch))
    } else {
        s.objective.loss(&step(args.amp), batch)
    }
}

/// The step `--cuda-graph` captures: the objective on the static buffers (no host reads),
/// [`device_side_update`], and the `[6]` out.
fn captured_step(
    s: &mut Setup,
    b: &StaticBatch,
    args: &Args,
) -> Result<(), mmanet_train::TrainError> {
    let terms = objective_loss(s, &b.batch, args, true)?;
    let flags = device_side_update(&mut s.opt, &mut s.scaler, &terms.total)?;
    let _guard = tch::no_grad_guard();
    b.out.shallow_clone().copy_(&Tensor::cat(&[terms.parts(), flags], 0));
    Ok(())
}

fn main() -> BoxResult<()> {
    let args = parse_args()?;
    tch::set_num_threads(args.threads as i32);
    tch::manual_seed(args.seed as i64);
    if args.cudnn_benchmark {
        tch::Cuda::cudnn_set_benchmark(true);
    }

    let cfg = mmanet_train::presets::preset(PRESET).ok_or("preset nyuv2-mmanet is missing")?;
    let NetConfig::Esanet(mut esa) = cfg.model.clone() else {
        return Err("preset nyuv2-mmanet is not an ESANet".into());
    };
    if args.encoder == "r34" {
        esa = EsaNetConfig { encoder: EsaNetConfig::nyuv2_r34().encoder, ..esa };
    }
    let net_cfg = NetConfig::Esanet(esa.clone());
    let fidelity = if args.reference_code { Fidelity::ReferenceCode } else { cfg.method.fidelity };

    let mut t_vs = VarStore::new(args.device);
    let teacher = build_net(&t_vs.root(), &net_cfg, NetRole::Teacher)?;
    let n_params_teacher = n_params(&t_vs);
    t_vs.freeze();
    let s_vs = VarStore::new(args.device);
    let student = build_net(&s_vs.root(), &net_cfg, NetRole::Student)?;
    let n_params_student = n_params(&s_vs);
    if args.channels_last {
        // Before the optimizer: it views the parameters' storage as they are now.
        to_channels_last(&t_vs);
        to_channels_last(&s_vs);
    }
    let opt = Optimizer::new(&s_vs, cfg.optimizer.clone());
    let rgbd = mmanet_data::nyuv2::rgbd_modalities();
    let weak = WeakSet::new(rgbd.clone(), vec![rgbd.parse_mask("D")?])?;
    let scaler = GradScaler::new(args.amp, args.device);
    let method = MethodConfig { fidelity, ..cfg.method.clone() };
    let class_weights = Tensor::ones([esa.n_classes], (Kind::Float, args.device));
    let mut setup = Setup {
        objective: SegmentationObjective::new(&method, rgbd, class_weights),
        teacher,
        student,
        _s_vs: s_vs,
        opt,
        scaler,
        weak,
        lambda_mad: cfg.method.lambda_mad,
        lambda_mar: cfg.method.lambda_mar,
        fidelity,
        graph: args.cuda_graph.then(|| CapturedStep::new(args.device, 6)),
    };
    if args.cuda_graph && args.device.is_cuda() && !mmanet_sys::cuda_graphs_built() {
        return Err("--cuda-graph: mmanet-sys was built without CUDA graphs \
                    (build against the CUDA libtorch: `cargo xtask setup --cuda`)"
            .into());
    }
    let inputs = make_inputs(&args, esa.n_classes);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);

    let mut times = Vec::with_capacity(args.steps);
    let nan = LossBreakdown { total: f64::NAN, ce: f64::NAN, distill: f64::NAN, mar: f64::NAN };
    let mut last = (f64::NAN, nan);
    let mut timed_total = 0.0;
    for step in 0..args.warmup + args.steps {
        if step == args.warmup {
            idle_mark(args.idle_mark_ms, args.device);
        }
        sync(args.device);
        let t0 = Instant::now();
        let batch = random_batch(&mut rng, &inputs, args.batch, args.device);
        last = train_step(&mut setup, &batch, &args)?;
        sync(args.device);
        let dt = t0.elapsed().as_secs_f64();
        if step >= args.warmup {
            times.push(dt * 1e3);
            timed_total += dt;
        }
        eprintln!("step {step}: {:.1} ms, loss {:.4}", dt * 1e3, last.0);
    }
    idle_mark(args.idle_mark_ms, args.device);

    let mut record = serde_json::json!({
        "impl": "mmanet-rs",
        "mode": "seg-step",
        "data": "synthetic tensors on device",
        "device": format!("{:?}", args.device).to_lowercase(),
        "encoder": args.encoder,
        "batch": args.batch,
        "height": args.height,
        "width": args.width,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "cudnn_benchmark": args.cudnn_benchmark,
        "cuda_graph": args.cuda_graph,
        "graph": setup.graph.as_ref().map(|g| {
            let c = g.counts();
            serde_json::json!({"captures": c.captures, "replays": c.replays, "eager": c.eager})
        }),
        "grad_scaler": setup.scaler.is_enabled(),
        "amp_losses": args.amp && args.amp_losses,
        "fidelity": format!("{fidelity:?}"),
        "lambda_mad": setup.lambda_mad,
        "lambda_mar": setup.lambda_mar,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "n_params_teacher": n_params_teacher,
        "n_params_student": n_params_student,
        "step_ms_median": median(&times),
        "step_ms_min": times.iter().copied().fold(f64::INFINITY, f64::min),
        "samples_per_s": (args.steps as f64 * args.batch as f64) / timed_total,
        "step_ms_all": times,
        "last_loss": last.0,
        "last_ce": last.1.ce,
        "last_mad": last.1.distill,
        "last_mar": last.1.mar,
    });
    if args.device.is_cuda() {
        let mem = gpu_mem_used_mib();
        record["gpu_mem_used_mib"] = mem.map(|m| m.0).into();
        record["gpu_mem_source"] = mem.map(|m| m.1).into();
        // libtorch's caching-allocator statistics are not exposed by tch.
        record["gpu_max_mem_mib"] = serde_json::Value::Null;
        record["skipped_steps"] = setup.scaler.skipped_steps().into();
    }
    record["peak_rss_mib"] = status_kib("VmHWM:").map(|k| k as f64 / 1024.0).into();
    record["torch_threads"] = tch::get_num_threads().into();
    println!("{record}");
    Ok(())
}
