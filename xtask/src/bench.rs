//! `cargo xtask bench` and `cargo xtask gpu-bench`: benchmarks side by side with PyTorch (issue 8).
//!
//! `bench` (this machine, CPU):
//! 1. criterion benches (`mmanet-losses/mad`, `mmanet-data/pipeline` when present), whose
//!    `target/criterion/**/new/estimates.json` are collected;
//! 2. a release `bench_step` example and synthetic CASIA-SURF JPEGs under `target/bench/`;
//! 3. a Python `--target` install of torch 2.11.0 for the reference (the libtorch of
//!    `cargo xtask setup` cannot `import torch`), once, under `~/.cache/mmanet/pytorch-ref-2.11.0`;
//! 4. ours and `benches/pytorch/surf_step.py` at B = 16 and 64 on the same files and threads;
//! 5. `target/bench/summary.json` and `target/bench/summary.md`.
//!
//! `gpu-bench` builds `bench_step`, `bench_seg_step` and `mmanet` with `--features cuda` and
//! writes `target/gpu-bench/` (binaries, PyTorch twins, `run.sh`, `train.sh`, `table.py`,
//! `repro.py`, and
//! `libgpu_busy.so`, the CUPTI busy-fraction probe compiled with the system C compiler) for a
//! GPU machine with torch 2.11.0 and no cargo. xtask never links tch.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::util::{cargo, project_root, sh};

const TORCH_VERSION: &str = "2.11.0";
/// What the PyTorch reference environment holds besides torch: the step bench's loader needs
/// numpy and cv2; the serve bench's anchor FastAPI, uvicorn and safetensors.
const REF_PACKAGES: [&str; 5] =
    ["numpy", "opencv-python-headless", "fastapi", "uvicorn", "safetensors"];
const STEP_SCRIPT: &str = "benches/pytorch/surf_step.py";
const GPU_RUN_SH: &str = "benches/pytorch/gpu_run.sh";
const GPU_TABLE_PY: &str = "benches/pytorch/gpu_table.py";
const SEG_STEP_SCRIPT: &str = "benches/pytorch/esanet_step.py";
const GPU_TRAIN_SH: &str = "benches/pytorch/gpu_train.sh";
const GPU_REPRO_PY: &str = "benches/pytorch/gpu_repro.py";
/// The CUPTI busy-fraction probe (a C file preloaded into the benchmarked programs).
const GPU_BUSY_DIR: &str = "benches/gpu_busy";

/// Options of `cargo xtask bench`.
#[derive(Debug)]
struct Options {
    quick: bool,
    threads: usize,
    batches: Vec<usize>,
    skip_criterion: bool,
    skip_pytorch: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut o = Options {
            quick: false,
            threads: cores,
            batches: vec![16, 64],
            skip_criterion: false,
            skip_pytorch: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--skip-criterion" => o.skip_criterion = true,
                "--skip-pytorch" => o.skip_pytorch = true,
                "--threads" => {
                    o.threads = it.next().context("--threads needs a value")?.parse()?;
                }
                "--batches" => {
                    o.batches = it
                        .next()
                        .context("--batches needs a value, e.g. 16,64")?
                        .split(',')
                        .map(|s| s.trim().parse())
                        .collect::<Result<_, _>>()?;
                }
                other => bail!(
                    "bench: unknown option `{other}` (--quick, --threads T, --batches 16,64, \
                     --skip-criterion, --skip-pytorch)"
                ),
            }
        }
        if o.threads == 0 || o.batches.is_empty() || o.batches.contains(&0) {
            bail!("bench: --threads and every batch size must be positive");
        }
        Ok(o)
    }

    /// `(warmup, timed steps, loader-only batches)` for batch size `b`.
    fn schedule(&self, b: usize) -> (usize, usize, usize) {
        match (self.quick, b >= 64) {
            (true, _) => (1, 2, 4),
            (false, false) => (1, 5, 16),
            (false, true) => (1, 3, 8),
        }
    }

    /// Training samples to synthesise: enough for the longest phase within one epoch.
    fn n_samples(&self) -> usize {
        self.batches
            .iter()
            .map(|&b| {
                let (w, s, l) = self.schedule(b);
                b * (w + s.max(l) + 1)
            })
            .max()
            .unwrap_or(256)
            .max(256)
    }
}

/// `cargo xtask bench [--quick] [--threads T] [--batches 16,64]`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    if args.first().is_some_and(|a| a == "serve") {
        return crate::bench_serve::run(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "loader") {
        return loader(&args[1..]).map(|_| ());
    }
    let opts = Options::parse(args)?;
    let root = project_root();
    let out_dir = root.join("target").join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let started = Instant::now();

    let criterion =
        if opts.skip_criterion { Vec::new() } else { run_criterion(&root, opts.quick)? };
    let manifest_loader = if opts.skip_criterion {
        Value::Null
    } else {
        let quick: Vec<String> = opts.quick.then(|| "--quick".to_string()).into_iter().collect();
        loader(&quick)?
    };

    sh(cargo().args(["build", "--release", "-p", "mmanet-train", "--example", "bench_step"]))?;
    let bin = root.join("target/release/examples/bench_step");
    let data = out_dir.join("surf-synthetic");
    ensure_data(&bin, &data, opts.n_samples())?;
    let python = if opts.skip_pytorch { None } else { Some(ensure_pytorch_env()?) };

    let mut runs = Vec::new();
    for &b in &opts.batches {
        let (warmup, steps, load_batches) = opts.schedule(b);
        let common: Vec<String> = [
            "--data",
            &data.to_string_lossy(),
            "--batch",
            &b.to_string(),
            "--steps",
            &steps.to_string(),
            "--warmup",
            &warmup.to_string(),
            "--load-batches",
            &load_batches.to_string(),
            "--threads",
            &opts.threads.to_string(),
            "--device",
            "cpu",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let load_before = loadavg();
        let ours =
            with_min_step(run_json(Command::new(&bin).args(&common).env("OMP_NUM_THREADS", "1"))?);
        let pytorch = match &python {
            Some(py) => Some(with_min_step(run_json(
                Command::new("python3")
                    .arg(root.join(STEP_SCRIPT))
                    .args(&common)
                    .env("PYTHONPATH", py)
                    .env("OMP_NUM_THREADS", "1"),
            )?)),
            None => None,
        };
        let ratios = pytorch.as_ref().map(|p| ratios(&ours, p)).unwrap_or(Value::Null);
        runs.push(json!({
            "batch": b,
            "threads": opts.threads,
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
            "ours": ours,
            "pytorch": pytorch,
            "ratio_ours_over_pytorch": ratios,
        }));
    }

    // Single-threaded cost per sample of decoding and augmentation, ours and the reference's.
    let breakdown_args = [
        "--data".to_string(),
        data.to_string_lossy().into_owned(),
        "--load-breakdown".into(),
        "200".into(),
    ];
    let breakdown = json!({
        "ours": run_json(Command::new(&bin).args(&breakdown_args))?,
        "pytorch": match &python {
            Some(py) => run_json(
                Command::new("python3").arg(root.join(STEP_SCRIPT)).args(&breakdown_args).env("PYTHONPATH", py),
            )?,
            None => Value::Null,
        },
    });

    let summary = json!({
        "command": format!("cargo xtask bench {}", args.join(" ")).trim().to_string(),
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "machine": machine(),
        "quick": opts.quick,
        "threads": opts.threads,
        "wall_s": started.elapsed().as_secs_f64(),
        "criterion": criterion,
        "manifest_loader": manifest_loader,
        "step": runs,
        "load_breakdown": breakdown,
    });
    let json_path = out_dir.join("summary.json");
    crate::util::write(&json_path, serde_json::to_string_pretty(&summary)? + "\n")?;
    let md = markdown(&summary);
    crate::util::write(out_dir.join("summary.md"), &md)?;
    print!("{md}");
    eprintln!("bench: wrote {} and summary.md", json_path.display());
    Ok(())
}

/// `cargo xtask bench loader [--quick]`: the manifest reader against the CASIA-SURF reader on
/// the same JPEGs and training chain, interleaved (`mmanet-data/benches/manifest_loader.rs`);
/// returns `target/bench/manifest_loader.json`.
fn loader(args: &[String]) -> Result<Value> {
    let quick = match args {
        [] => false,
        [q] if q == "--quick" => true,
        other => bail!("bench loader: unknown arguments {other:?} (only --quick)"),
    };
    let mut cmd = cargo();
    cmd.args(["bench", "-p", "mmanet-data", "--bench", "manifest_loader"])
        .env("OMP_NUM_THREADS", "1");
    if quick {
        cmd.args(["--", "--quick"]);
    }
    sh(&mut cmd)?;
    let path = project_root().join("target/bench/manifest_loader.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// Runs the criterion benches and collects every `new/estimates.json` they wrote.
fn run_criterion(root: &Path, quick: bool) -> Result<Vec<Value>> {
    let mut benches = vec![("mmanet-losses", "mad")];
    if root.join("crates/mmanet-data/benches/pipeline.rs").is_file() {
        benches.push(("mmanet-data", "pipeline"));
    }
    let since = std::time::SystemTime::now();
    for (pkg, bench) in &benches {
        let mut cmd = cargo();
        cmd.args(["bench", "-p", pkg, "--bench", bench]).env("OMP_NUM_THREADS", "1");
        if quick {
            cmd.args(["--", "--quick"]);
        }
        sh(&mut cmd)?;
    }
    let mut out = Vec::new();
    collect_estimates(&root.join("target/criterion"), &root.join("target/criterion"), &mut out)?;
    // Only the estimates written by this run.
    out.retain(|(modified, _)| *modified >= since);
    let mut rows: Vec<Value> = out.into_iter().map(|(_, v)| v).collect();
    rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(rows)
}

fn collect_estimates(
    base: &Path,
    dir: &Path,
    out: &mut Vec<(std::time::SystemTime, Value)>,
) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let est = path.join("estimates.json");
        if path.file_name().is_some_and(|n| n == "new") && est.is_file() {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&est)?)
                .with_context(|| format!("parsing {}", est.display()))?;
            let id = path
                .parent()
                .and_then(|p| p.strip_prefix(base).ok())
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let modified = std::fs::metadata(&est)?.modified()?;
            out.push((
                modified,
                json!({
                    "id": id,
                    "mean_ns": v["mean"]["point_estimate"],
                    "median_ns": v["median"]["point_estimate"],
                    "mean_ci_ns": [v["mean"]["confidence_interval"]["lower_bound"],
                                   v["mean"]["confidence_interval"]["upper_bound"]],
                }),
            ));
        } else {
            collect_estimates(base, &path, out)?;
        }
    }
    Ok(())
}

/// Synthesises `n` training samples (180x180 JPEGs) unless the folder already holds them.
fn ensure_data(bin: &Path, data: &Path, n: usize) -> Result<()> {
    let marker = data.join(".mmanet-bench-samples");
    let have = std::fs::read_to_string(&marker).ok().and_then(|s| s.trim().parse::<usize>().ok());
    if have.is_some_and(|h| h >= n) && data.join("train_list.txt").is_file() {
        eprintln!("bench: reusing {} ({} samples)", data.display(), have.unwrap_or(0));
        return Ok(());
    }
    if data.exists() {
        std::fs::remove_dir_all(data)?;
    }
    sh(Command::new(bin).arg("--data").arg(data).args([
        "--generate",
        &n.to_string(),
        "--size",
        "180",
    ]))?;
    crate::util::write(marker, format!("{n}\n"))?;
    Ok(())
}

/// The `--target` folder holding torch for the reference script; installs it once.
pub(crate) fn ensure_pytorch_env() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let dir = PathBuf::from(home).join(format!(".cache/mmanet/pytorch-ref-{TORCH_VERSION}"));
    let marker = dir.join(".mmanet-complete");
    let wanted = format!("torch=={TORCH_VERSION} {}\n", REF_PACKAGES.join(" "));
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(dir);
    }
    let importable = |dir: &Path| {
        Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import torch, numpy, cv2, fastapi, uvicorn, safetensors; \
                     assert torch.__version__.startswith('{TORCH_VERSION}')"
                ),
            ])
            .env("PYTHONPATH", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !importable(&dir) {
        eprintln!(
            "bench: installing torch=={TORCH_VERSION} for the PyTorch reference into {}",
            dir.display()
        );
        sh(Command::new("python3")
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--target"])
            .arg(&dir)
            .arg(format!("torch=={TORCH_VERSION}"))
            .args(REF_PACKAGES))?;
        if !importable(&dir) {
            bail!("python3 cannot import torch {TORCH_VERSION} from {}", dir.display());
        }
    }
    crate::util::write(&marker, wanted)?;
    Ok(dir)
}

/// Runs `cmd` (stderr passes through) and parses the last stdout line as JSON.
fn run_json(cmd: &mut Command) -> Result<Value> {
    let line = format!("{cmd:?}");
    eprintln!("$ {line}");
    let out =
        cmd.stderr(Stdio::inherit()).output().with_context(|| format!("cannot start {line}"))?;
    if !out.status.success() {
        bail!("command failed ({}): {line}", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last =
        stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).context("no JSON line")?;
    eprintln!("{last}");
    Ok(serde_json::from_str(last)?)
}

/// Adds `step_ms_min` (the fastest timed step: on a shared machine, other processes only ever
/// add time, so the minimum is the least disturbed figure).
fn with_min_step(mut v: Value) -> Value {
    let min = v["step_ms_all"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).fold(f64::INFINITY, f64::min))
        .filter(|m| m.is_finite());
    if let (Some(m), Some(obj)) = (min, v.as_object_mut()) {
        obj.insert("step_ms_min".into(), json!(m));
    }
    v
}

/// The figures compared, with which direction is better.
const FIGURES: [(&str, &str, &str); 6] = [
    ("load_samples_per_s", "loading only (samples/s)", "higher"),
    ("samples_per_s", "training, end to end (samples/s)", "higher"),
    ("step_ms_median", "step, end to end (median ms)", "lower"),
    ("step_ms_min", "step, end to end (min ms)", "lower"),
    ("compute_ms_median", "step, compute only (median ms)", "lower"),
    ("peak_rss_mib", "peak RSS, main process (MiB)", "lower"),
];

fn ratios(ours: &Value, pytorch: &Value) -> Value {
    let mut r = serde_json::Map::new();
    for (key, _, _) in FIGURES {
        if let (Some(a), Some(b)) = (ours[key].as_f64(), pytorch[key].as_f64()) {
            r.insert(key.to_string(), json!(a / b));
        }
    }
    Value::Object(r)
}

fn loadavg() -> Value {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse::<f64>().ok()))
        .map(Value::from)
        .unwrap_or(Value::Null)
}

pub(crate) fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string());
    let mem_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemTotal:"))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    });
    json!({
        "cpu": model,
        "logical_cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "mem_gib": mem_kib.map(|k| (k as f64 / 1048576.0 * 10.0).round() / 10.0),
        "os": std::env::consts::OS,
    })
}

fn fmt_num(v: &Value) -> String {
    if let Some(i) = v.as_i64() {
        return i.to_string();
    }
    match v.as_f64() {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "–".into(),
    }
}

fn markdown(s: &Value) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "# `{}`\n\nMachine: {} ({} logical cores, {} GiB); threads = {} for both (tch / \
         torch.set_num_threads and loader threads / DataLoader workers).\n\n",
        s["command"].as_str().unwrap_or(""),
        s["machine"]["cpu"].as_str().unwrap_or("unknown CPU"),
        fmt_num(&s["machine"]["logical_cores"]),
        fmt_num(&s["machine"]["mem_gib"]),
        fmt_num(&s["threads"]),
    ));
    md.push_str("## MMANet student step, CASIA-SURF (width 64, 112x112, R/D/I), CPU\n\n");
    md.push_str(
        "| B | figure | ours | PyTorch | ours / PyTorch | better |\n|---|---|---|---|---|---|\n",
    );
    for run in s["step"].as_array().into_iter().flatten() {
        for (key, label, better) in FIGURES {
            md.push_str(&format!(
                "| {} | {label} | {} | {} | {} | {better} |\n",
                run["batch"],
                fmt_num(&run["ours"][key]),
                fmt_num(&run["pytorch"][key]),
                fmt_num(&run["ratio_ours_over_pytorch"][key]),
            ));
        }
        md.push_str(&format!(
            "| {} | PyTorch loader workers' peak RSS, summed (MiB) | – | {} | – | lower |\n",
            run["batch"],
            fmt_num(&run["pytorch"]["peak_rss_workers_mib"]),
        ));
    }
    md.push_str("\nSteps timed per run (after warm-up): ");
    let steps: Vec<String> = s["step"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "B={}: {} steps, {} loader batches; load average {} -> {}",
                r["batch"],
                r["ours"]["steps"],
                r["ours"]["load_batches"],
                fmt_num(&r["loadavg_before"]),
                fmt_num(&r["loadavg_after"])
            )
        })
        .collect();
    md.push_str(&steps.join("; "));
    md.push_str(".\n\n## Loading, one thread, per sample (3 JPEGs)\n\n");
    md.push_str("| stage | ours (ms) | PyTorch (ms) | ours / PyTorch |\n|---|---|---|---|\n");
    for (key, label) in
        [("decode_ms_per_sample", "decode"), ("augment_ms_per_sample", "train augmentation")]
    {
        let (o, p) = (&s["load_breakdown"]["ours"][key], &s["load_breakdown"]["pytorch"][key]);
        let r = match (o.as_f64(), p.as_f64()) {
            (Some(a), Some(b)) => format!("{:.2}", a / b),
            _ => "–".into(),
        };
        md.push_str(&format!("| {label} | {} | {} | {r} |\n", fmt_num(o), fmt_num(p)));
    }
    md.push_str("\n## Criterion\n\n| benchmark | median | mean |\n|---|---|---|\n");
    for c in s["criterion"].as_array().into_iter().flatten() {
        let ms =
            |v: &Value| v.as_f64().map(|ns| format!("{:.3} ms", ns / 1e6)).unwrap_or("–".into());
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            c["id"].as_str().unwrap_or(""),
            ms(&c["median_ns"]),
            ms(&c["mean_ns"])
        ));
    }
    if let Some(rows) = s["manifest_loader"]["results"].as_array() {
        md.push_str(
            "\n## Manifest reader vs CASIA-SURF reader (same JPEGs and chain, interleaved)\n\n\
             | threads | SURF samples/s | manifest samples/s | manifest / SURF (median) |\n\
             |---|---|---|---|\n",
        );
        for r in rows {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                fmt_num(&r["threads"]),
                fmt_num(&r["surf_samples_per_s"]),
                fmt_num(&r["manifest_samples_per_s"]),
                fmt_num(&r["ratio_manifest_over_surf"]),
            ));
        }
    }
    md
}

/// The CUDA smoke tests for the GPU machine (their `cuda_*` tests): mmanet-sys's
/// `process_group` (NCCL on one rank, a CUDA graph's capture and replay) as `out/cuda_smoke`
/// and mmanet-train's `cuda_graph` (`compute.cuda_graph` against the eager step) as
/// `out/cuda_graph_smoke`, built (release) against the full CUDA install of
/// `cargo xtask setup --cuda` (the one with `nccl.h`, so the shim has `ProcessGroupNCCL` and
/// `CUDAGraph`), in their own target folder `target/cuda` so the CPU build stays cached.
fn build_cuda_smoke(root: &Path, out: &Path) -> Result<()> {
    let cuda = crate::setup::install_dir(true)?;
    if !cuda.join("nvidia/nccl/include/nccl.h").is_file() {
        bail!("no full CUDA install at {} (`cargo xtask setup --cuda`)", cuda.display());
    }
    // mmanet-sys links libtorch_cuda itself; mmanet-train keeps it NEEDED with `cuda`.
    for (package, test, name, features) in [
        ("mmanet-sys", "process_group", "cuda_smoke", &[][..]),
        ("mmanet-train", "cuda_graph", "cuda_graph_smoke", &["--features", "cuda"][..]),
    ] {
        let output = cargo()
            .args(["test", "--release", "-p", package, "--test", test, "--no-run"])
            .args(features)
            .args(["--message-format", "json"])
            .env("LIBTORCH", cuda.join("torch"))
            .env("CARGO_TARGET_DIR", root.join("target/cuda"))
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("building the CUDA smoke test {package}/{test}"))?;
        if !output.status.success() {
            bail!("cargo test -p {package} --test {test} --no-run failed");
        }
        let exe = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"]["name"] == test)
            .find_map(|v| v["executable"].as_str().map(PathBuf::from))
            .with_context(|| format!("cargo named no {test} executable"))?;
        std::fs::copy(&exe, out.join(name))
            .with_context(|| format!("copying {}", exe.display()))?;
        set_executable(&out.join(name))?;
    }
    Ok(())
}

/// What the `serve` section of run.sh needs besides `mmanet`: the CPU builds of `bench_model`
/// (writes the SURF deployment network with random weights on the GPU machine: the file is
/// too large to carry) and `load_gen`, and 64 request bodies for that network's input spec
/// with random modality subsets (`benches/serve/requests.py`, from a model file written here).
fn write_serve_kit(root: &Path, out: &Path) -> Result<()> {
    sh(cargo()
        .args(["build", "--release", "-p", "mmanet-train", "--example", "bench_model"])
        .args(["-p", "mmanet-serve", "--example", "load_gen"]))?;
    for name in ["bench_model", "load_gen"] {
        let bin = root.join("target/release/examples").join(name);
        std::fs::copy(&bin, out.join(name))
            .with_context(|| format!("copying {}", bin.display()))?;
        set_executable(&out.join(name))?;
    }
    let model = root.join("target/bench/serve/surf-gpu.safetensors");
    std::fs::create_dir_all(model.parent().expect("a folder"))?;
    sh(Command::new(out.join("bench_model"))
        .args(["--preset", "surf-mmanet", "--seed", "7", "--out"])
        .arg(&model))?;
    let python = ensure_pytorch_env()?;
    sh(Command::new("python3")
        .arg(root.join("benches/serve/requests.py"))
        .arg(&model)
        .args(["--n", "64", "--seed", "1", "--out"])
        .arg(out.join("serve-bodies.jsonl"))
        .env("PYTHONPATH", python))
}

/// `cargo xtask gpu-bench`: a self-contained folder for a GPU machine with torch 2.11.0.
///
/// Builds `bench_step`, `bench_seg_step` and `mmanet` with `--features cuda` (libtorch_cuda kept
/// as NEEDED) against the full CUDA install of `cargo xtask setup --cuda` in `target/cuda`
/// (else against `.libtorch`, then relinking the CPU variants), and copies them with the
/// PyTorch twins, the driver scripts, the CUDA smoke tests and the serve kit into
/// `target/gpu-bench/`.
pub(crate) fn gpu_bench(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!(
            "gpu-bench takes no option (got `{a}`); edit target/gpu-bench/run.sh variables instead"
        );
    }
    let root = project_root();
    let out = root.join("target").join("gpu-bench");
    std::fs::create_dir_all(&out)?;
    let builds: [&[&str]; 3] = [
        &["-p", "mmanet-train", "--example", "bench_step"],
        &["-p", "mmanet-train", "--example", "bench_seg_step"],
        &["-p", "mmanet", "--bin", "mmanet"],
    ];
    // Against the full CUDA install (its own target folder) the shim has CUDA graphs and
    // NCCL (`--cuda-graph`, `compute.cuda_graph`); against the CPU install's libtorch_cuda
    // neither (those runs then fail with a message saying so).
    let full_cuda = crate::setup::install_dir(true)
        .ok()
        .filter(|d| d.join("nvidia/nccl/include/nccl.h").is_file());
    let target = match &full_cuda {
        Some(_) => root.join("target/cuda"),
        None => {
            eprintln!(
                "warning: no full CUDA install (`cargo xtask setup --cuda`): the binaries are \
                 built without CUDA graphs and NCCL"
            );
            root.join("target")
        }
    };
    for b in builds {
        let mut c = cargo();
        c.args(["build", "--release"]).args(b).args(["--features", "cuda"]);
        if let Some(dir) = &full_cuda {
            c.env("LIBTORCH", dir.join("torch")).env("CARGO_TARGET_DIR", &target);
        }
        sh(&mut c)?;
    }
    for (bin, name) in [
        ("release/examples/bench_step", "bench_step"),
        ("release/examples/bench_seg_step", "bench_seg_step"),
        ("release/mmanet", "mmanet"),
    ] {
        std::fs::copy(target.join(bin), out.join(name))
            .with_context(|| format!("copying {bin}"))?;
        set_executable(&out.join(name))?;
    }
    if full_cuda.is_none() {
        // Put the CPU binaries back (both variants stay cached; this only re-links).
        for b in builds {
            sh(cargo().args(["build", "--release"]).args(b))?;
        }
    }
    for (src, name) in [
        (STEP_SCRIPT, "surf_step.py"),
        (SEG_STEP_SCRIPT, "esanet_step.py"),
        (GPU_RUN_SH, "run.sh"),
        (GPU_TRAIN_SH, "train.sh"),
        (GPU_TABLE_PY, "table.py"),
        (GPU_REPRO_PY, "repro.py"),
    ] {
        std::fs::copy(root.join(src), out.join(name)).with_context(|| format!("copying {src}"))?;
    }
    set_executable(&out.join("run.sh"))?;
    if let Err(e) = build_cuda_smoke(&root, &out) {
        eprintln!("warning: cuda_smoke not built ({e:#}); run.sh will skip its `cuda` section");
    }
    if let Err(e) = write_serve_kit(&root, &out) {
        eprintln!("warning: serve kit not written ({e:#}); run.sh will skip its `serve` section");
    }
    if let Err(e) = build_gpu_busy(&root, &out) {
        eprintln!("warning: libgpu_busy.so not built ({e:#}); run.sh will skip its `busy` section");
    }
    eprintln!(
        "gpu-bench: wrote {}\n  copy it to a GPU machine with python3 + torch {TORCH_VERSION} (CUDA) and run \
         `./run.sh` there; results land in results/ (runs.jsonl, table.md, gpu_scaling.svg)",
        out.display()
    );
    Ok(())
}

/// Compiles `benches/gpu_busy/gpu_busy.c` into `out/libgpu_busy.so` against the CUPTI headers
/// and library that the libtorch install carries (`.libtorch/nvidia/cu13`).
fn build_gpu_busy(root: &Path, out: &Path) -> Result<()> {
    let cuda = root.join(".libtorch").join("nvidia").join("cu13");
    if !cuda.join("include").join("cupti.h").is_file() {
        bail!("no CUPTI headers under {}", cuda.display());
    }
    let src = root.join(GPU_BUSY_DIR);
    sh(Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-O2", "-Wall", "-shared", "-fPIC", "-I"])
        .arg(src.join("include"))
        .arg("-I")
        .arg(cuda.join("include"))
        .arg(src.join("gpu_busy.c"))
        .arg("-o")
        .arg(out.join("libgpu_busy.so"))
        .arg("-L")
        .arg(cuda.join("lib"))
        .arg("-l:libcupti.so.13")
        .arg("-lpthread"))
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut p = std::fs::metadata(path)?.permissions();
    p.set_mode(0o755);
    std::fs::set_permissions(path, p)?;
    Ok(())
}
