//! `cargo xtask repro <name>`: the reproduction study (issue 7).
//!
//! Each experiment fetches or synthesises its data, trains the teacher and then every compared
//! model once per seed with the release `mmanet` binary (one torch thread per run), scores every
//! modality combination on the held-out test split (weights selected on the validation split),
//! and aggregates mean ± sample std over seeds per combination, for the average over
//! combinations and for the worst combination. It writes `<out>/<name>/results.{md,json,svg}`.
//!
//! Layout: `<out>/<name>/seed<S>/<model>/` is an ordinary `mmanet` run folder; a finished run
//! (one with `report.json`) is skipped, an interrupted one is resumed by `mmanet train`, so an
//! interrupted repro continues where it stopped. `wall_seconds.txt` records each run's time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::util::{cargo, project_root, sh};

const USAGE: &str = "\
usage: cargo xtask repro <name|all> [--seeds N] [--quick] [--out DIR] [--bin PATH] [--report-only]

names: mfeat3, mfeat6, avmnist, surf-synth, nyuv2-synth, all
  --seeds N      seeds 0..N (default 3)
  --quick        a few epochs, one seed by default, output under target/repro-quick (smoke test)
  --out DIR      output root (default target/repro)
  --bin PATH     the mmanet binary to run (default: build target/release/mmanet)
  --report-only  aggregate the finished runs, train nothing
";

/// The experiment names, in the order `all` runs them.
const NAMES: &[&str] = &["mfeat3", "mfeat6", "avmnist", "surf-synth", "nyuv2-synth"];

/// One compared model: its run-folder key, which is also its preset's suffix (the experiment's
/// preset prefix, `-`, the key: `mfeat3-unified`), and a label. The presets define the models
/// (`crates/mmanet-train/presets/`); nothing here changes what a model trains.
struct Model {
    key: &'static str,
    label: &'static str,
    /// Teacher stage (trained first, complete modalities only).
    teacher: bool,
}

const TEACHER: Model = Model { key: "teacher", label: "teacher", teacher: true };
const UNIFIED: Model = Model { key: "unified", label: "modality dropout", teacher: false };
const SP: Model = Model { key: "sp", label: "SP-KD", teacher: false };
const MAD: Model = Model { key: "mad", label: "MAD only", teacher: false };
const MAR: Model = Model { key: "mar", label: "MAR only", teacher: false };
const MMANET: Model = Model { key: "mmanet", label: "MMANet (paper)", teacher: false };
const MMANET_REF: Model =
    Model { key: "mmanet-ref", label: "MMANet (reference code)", teacher: false };

/// Where an experiment's data comes from.
enum Data {
    /// `cargo xtask data fetch NAME`, at `datasets/cache/NAME`.
    Fetch(&'static str),
    /// `mmanet data synth KIND --n N --size S --seed <seed>` into `<out>/<name>/data-seed<S>`.
    Synth { kind: &'static str, n: usize, size: usize },
}

/// One experiment.
struct Experiment {
    name: &'static str,
    data: Data,
    /// The presets are `<preset_prefix>-<model key>`.
    preset_prefix: &'static str,
    models: Vec<Model>,
    /// Overrides for every run of the experiment (besides seed, device, name, data root).
    sets: Vec<&'static str>,
    /// The metric of the table and `true` if larger is better.
    metric: &'static str,
    higher_is_better: bool,
    /// Plain-words description of the setting (written into results.md).
    setting: &'static str,
}

fn experiment(name: &str) -> Result<Experiment> {
    let all = || vec![TEACHER, UNIFIED, SP, MAD, MAR, MMANET, MMANET_REF];
    let e = match name {
        "mfeat3" | "mfeat6" => Experiment {
            name: if name == "mfeat3" { "mfeat3" } else { "mfeat6" },
            data: Data::Fetch("mfeat"),
            preset_prefix: if name == "mfeat3" { "mfeat3" } else { "mfeat6" },
            models: all(),
            sets: vec![],
            metric: "accuracy",
            higher_is_better: true,
            setting: if name == "mfeat3" {
                "UCI Multiple Features, 3 views (Pix as a 16x15 image with a small CNN, Fou and \
                 Kar with MLPs), presets `mfeat3-*`: Adam 1e-3, 30 epochs, B=64, MAD/MAR from \
                 epoch 5, mining in epochs 2-4. Per seed a stratified 80/20 train/test split, \
                 20% of train for validation."
            } else {
                "UCI Multiple Features, all 6 views with one MLP per view (63 combinations), \
                 presets `mfeat6-*`: Adam 1e-3, 30 epochs, B=64, MAD/MAR from epoch 5, mining \
                 in epochs 2-4. Per seed a stratified 80/20 train/test split, 20% of train for \
                 validation."
            },
        },
        "avmnist" => Experiment {
            name: "avmnist",
            data: Data::Fetch("avmnist"),
            preset_prefix: "avmnist",
            models: all(),
            sets: vec![],
            metric: "accuracy",
            higher_is_better: true,
            setting: "AV-MNIST-lite (MNIST image with a small CNN, FSDD spoken-digit MFCCs with a \
                      1-D conv), presets `avmnist-*`: Adam 1e-3, 20 epochs, B=64, MAD/MAR from \
                      epoch 5. Pairs by label within each split; 20% of train for validation.",
        },
        "surf-synth" => Experiment {
            name: "surf-synth",
            data: Data::Synth { kind: "surf", n: 480, size: 128 },
            preset_prefix: "demo",
            models: vec![TEACHER, UNIFIED, MMANET],
            sets: vec![
                "data.dataset.n=480",
                "data.dataset.size=128",
                "data.dataset.resize=144",
                "data.dataset.crop=112",
                "data.threads=1",
            ],
            metric: "acer",
            higher_is_better: false,
            setting: "The CASIA-SURF architecture (three ResNet18-SE branches, concat fusion) at \
                      the paper's 112x112 input (written 128 px, resize 144, random crop 112, \
                      rotation, flip) but CPU-sized: base width 16 instead of 64, 480 synthetic \
                      training samples (120 validation, 120 test), the demo's schedule (SGD \
                      Nesterov lr 0.02, B=32; teacher 6 epochs, students 10, step at 7, MAD/MAR \
                      from epoch 4, mining in epochs 1-3).",
        },
        "nyuv2-synth" => Experiment {
            name: "nyuv2-synth",
            data: Data::Synth { kind: "nyuv2", n: 160, size: 96 },
            preset_prefix: "synth-nyuv2",
            models: vec![TEACHER, UNIFIED, MMANET],
            // The NYUv2 layout has no validation split (the reference validates on test):
            // score only the last epoch, so no checkpoint is picked on the test split.
            sets: vec!["data.threads=1", "eval.every=0"],
            metric: "miou",
            higher_is_better: true,
            setting: "ESANet (ResNet basic blocks [1,1,1,1], width 16, decoder [64,32,16]) on the \
                      synthetic RGB-D set (160 training / 40 test images, 96x128, 5 classes), \
                      presets `synth-nyuv2-*`: Adam 2e-3, B=8, teacher 10 epochs, students 16, \
                      MAD 4 / MAR 0.2 from epoch 5, mining in epochs 2-4. The layout has no \
                      validation split: as in the reference NYUv2 code, MAR's mining reads the \
                      test split; checkpoint selection is off (eval.every = 0: the last epoch's \
                      weights are scored).",
        },
        other => bail!("unknown experiment `{other}`\n\n{USAGE}"),
    };
    Ok(e)
}

struct Options {
    names: Vec<String>,
    seeds: u64,
    quick: bool,
    out: PathBuf,
    bin: Option<PathBuf>,
    report_only: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut names = Vec::new();
        let (mut seeds, mut quick, mut out, mut bin, mut report_only) =
            (None, false, None, None, false);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seeds" => {
                    let v = it.next().context("--seeds needs a number")?;
                    seeds = Some(v.parse::<u64>().with_context(|| format!("--seeds {v}"))?);
                }
                "--quick" => quick = true,
                "--report-only" => report_only = true,
                "--out" => out = Some(PathBuf::from(it.next().context("--out needs a folder")?)),
                "--bin" => bin = Some(PathBuf::from(it.next().context("--bin needs a path")?)),
                "-h" | "--help" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                "all" => names.extend(NAMES.iter().map(|s| s.to_string())),
                other if other.starts_with('-') => bail!("unknown option `{other}`\n\n{USAGE}"),
                other => names.push(other.to_string()),
            }
        }
        if names.is_empty() {
            bail!("name an experiment\n\n{USAGE}");
        }
        let seeds = seeds.unwrap_or(if quick { 1 } else { 3 });
        if seeds == 0 {
            bail!("--seeds must be at least 1");
        }
        let root = project_root();
        let out =
            out.map(|o| if o.is_relative() { root.join(o) } else { o }).unwrap_or_else(|| {
                root.join("target").join(if quick { "repro-quick" } else { "repro" })
            });
        Ok(Options { names, seeds, quick, out, bin, report_only })
    }
}

/// Entry point of `cargo xtask repro`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let experiments = opts.names.iter().map(|n| experiment(n)).collect::<Result<Vec<_>>>()?;
    let bin = match (&opts.bin, opts.report_only) {
        (_, true) => PathBuf::new(),
        (Some(b), false) => b.clone(),
        (None, false) => {
            sh(cargo().args(["build", "--release", "-p", "mmanet"]))?;
            project_root().join("target").join("release").join("mmanet")
        }
    };
    for exp in &experiments {
        let started = Instant::now();
        if !opts.report_only {
            run_experiment(exp, &opts, &bin)?;
        }
        let results = aggregate(exp, &opts)?;
        let dir = opts.out.join(exp.name);
        let md = to_markdown(exp, &results, &opts);
        crate::util::write(dir.join("results.md"), &md)?;
        crate::util::write(dir.join("results.json"), serde_json::to_string_pretty(&results)?)?;
        write_svg(exp, &results, &dir.join("results.svg"))?;
        println!("{md}");
        println!(
            "{}: written {}/results.{{md,json,svg}} ({:.0} s in this invocation)",
            exp.name,
            dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The data root of `exp` for `seed`, fetching or synthesising it when missing.
fn prepare_data(exp: &Experiment, opts: &Options, bin: &Path, seed: u64) -> Result<PathBuf> {
    match exp.data {
        Data::Fetch(name) => {
            let root = project_root().join("datasets").join("cache").join(name);
            crate::data::run(&["fetch".to_string(), name.to_string()])?;
            Ok(root)
        }
        Data::Synth { kind, n, size } => {
            let root = opts.out.join(exp.name).join(format!("data-seed{seed}"));
            let probe = if kind == "surf" { "train_list.txt" } else { "train.txt" };
            if !root.join(probe).is_file() {
                let (n, size) = if opts.quick { (n.min(96), size) } else { (n, size) };
                sh(Command::new(bin).args([
                    "data",
                    "synth",
                    kind,
                    "--out",
                    &root.display().to_string(),
                    "--n",
                    &n.to_string(),
                    "--seed",
                    &seed.to_string(),
                    "--size",
                    &size.to_string(),
                ]))?;
            }
            Ok(root)
        }
    }
}

fn run_dir(opts: &Options, exp: &Experiment, seed: u64, key: &str) -> PathBuf {
    opts.out.join(exp.name).join(format!("seed{seed}")).join(key)
}

/// Overrides that shorten a run to a smoke test.
fn quick_sets(exp: &Experiment) -> Vec<String> {
    let mut v: Vec<String> =
        ["epochs=4", "method.begin_epoch=2", "method.mining_start=1", "eval.every=1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    if exp.name == "nyuv2-synth" {
        v.retain(|s| !s.starts_with("eval.every"));
    } else {
        v.push("schedule.milestones=[3]".into());
    }
    if let Data::Synth { kind: "surf", .. } = exp.data {
        v.push("data.dataset.n=96".into());
    }
    if let Data::Synth { kind: "nyuv2", .. } = exp.data {
        v.push("data.dataset.n=96".into());
    }
    v
}

fn run_experiment(exp: &Experiment, opts: &Options, bin: &Path) -> Result<()> {
    for seed in 0..opts.seeds {
        let root = prepare_data(exp, opts, bin, seed)?;
        let teacher_weights =
            run_dir(opts, exp, seed, TEACHER.key).join("checkpoints").join("best.safetensors");
        for model in &exp.models {
            let dir = run_dir(opts, exp, seed, model.key);
            if dir.join("report.json").is_file() {
                eprintln!("{} seed {seed} {}: finished, skipped", exp.name, model.key);
                continue;
            }
            let preset = format!("{}-{}", exp.preset_prefix, model.key);
            let mut sets = vec![
                format!("seed={seed}"),
                "device=cpu".to_string(),
                format!("name={}-{}", exp.name, model.key),
                format!("data.dataset.root={}", root.display()),
            ];
            sets.extend(exp.sets.iter().map(|s| s.to_string()));
            if !model.teacher {
                sets.push(format!("teacher.checkpoint={}", teacher_weights.display()));
            }
            if opts.quick {
                sets.extend(quick_sets(exp));
            }
            let mut cmd = Command::new(bin);
            cmd.args(["train", "--preset", &preset, "--run-dir", &dir.display().to_string()])
                .env("OMP_NUM_THREADS", "1")
                .env("MKL_NUM_THREADS", "1")
                .current_dir(project_root());
            for s in &sets {
                cmd.args(["--set", s]);
            }
            let t0 = Instant::now();
            sh(&mut cmd)?;
            let secs = t0.elapsed().as_secs_f64();
            crate::util::write(dir.join("wall_seconds.txt"), format!("{secs:.3}\n"))?;
            eprintln!("{} seed {seed} {}: {secs:.1} s", exp.name, model.key);
        }
    }
    Ok(())
}

/// Mean and sample std (n - 1; 0 for one value), as `mmanet report`.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn stat(xs: &[f64]) -> Value {
    let (mean, std) = mean_std(xs);
    json!({"mean": mean, "std": std, "values": xs})
}

/// Per-combination metric of one finished run: `(combination label, value)` in report order.
fn read_run(dir: &Path, metric: &str) -> Result<Option<Vec<(String, f64)>>> {
    let path = dir.join("report.json");
    if !path.is_file() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("parsing {}", path.display()))?;
    let combos = v["results"][0]["combinations"]
        .as_array()
        .with_context(|| format!("{}: no results[0].combinations", path.display()))?;
    let rows = combos
        .iter()
        .map(|c| {
            let present: Vec<&str> = c["present"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let value =
                c[metric].as_f64().with_context(|| format!("{}: no `{metric}`", path.display()))?;
            Ok((present.join("+"), value))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(rows))
}

fn read_weak_set(dir: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("weak_set.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(v["weak_set"].as_array()?.iter().filter_map(|s| s.as_str().map(String::from)).collect())
}

fn read_wall(dir: &Path) -> Option<f64> {
    std::fs::read_to_string(dir.join("wall_seconds.txt")).ok()?.trim().parse().ok()
}

/// Aggregates the finished runs of `exp` into the results JSON.
fn aggregate(exp: &Experiment, opts: &Options) -> Result<Value> {
    let better = |a: f64, b: f64| if exp.higher_is_better { a > b } else { a < b };
    let mut models = Vec::new();
    // The students' combination order (the paper's); the teacher has only the full one.
    let mut order: Vec<String> = Vec::new();
    // Per model, the average over combinations of each finished seed (for paired deltas).
    let mut avg_by_seed: Vec<BTreeMap<u64, f64>> = Vec::new();
    for model in &exp.models {
        let mut seed_avgs = BTreeMap::new();
        let mut per_combo: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let (mut averages, mut worst, mut worst_names, mut runs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut model_order = Vec::new();
        for seed in 0..opts.seeds {
            let dir = run_dir(opts, exp, seed, model.key);
            let Some(rows) = read_run(&dir, exp.metric)? else { continue };
            if model_order.is_empty() {
                model_order = rows.iter().map(|r| r.0.clone()).collect();
            }
            for (c, v) in &rows {
                per_combo.entry(c.clone()).or_default().push(*v);
            }
            let avg = rows.iter().map(|r| r.1).sum::<f64>() / rows.len() as f64;
            averages.push(avg);
            seed_avgs.insert(seed, avg);
            let w = rows.iter().fold(None::<&(String, f64)>, |acc, r| match acc {
                Some(a) if !better(a.1, r.1) => Some(a),
                _ => Some(r),
            });
            if let Some((name, v)) = w {
                worst.push(*v);
                worst_names.push(name.clone());
            }
            runs.push(json!({
                "seed": seed,
                "run_dir": dir.display().to_string(),
                "wall_seconds": read_wall(&dir),
                "weak_set": read_weak_set(&dir),
            }));
        }
        if order.len() < model_order.len() {
            order = model_order.clone();
        }
        let combinations: Vec<Value> = model_order
            .iter()
            .map(|c| {
                let mut s = stat(&per_combo[c]);
                s["present"] = json!(c);
                s
            })
            .collect();
        let wall: f64 = runs.iter().filter_map(|r| r["wall_seconds"].as_f64()).sum();
        models.push(json!({
            "key": model.key,
            "label": model.label,
            "teacher": model.teacher,
            "seeds_finished": runs.len(),
            "runs": runs,
            "combinations": combinations,
            "average": stat(&averages),
            "worst": {"stat": stat(&worst), "combinations": worst_names},
            "wall_seconds_total": wall,
        }));
        avg_by_seed.push(seed_avgs);
    }
    // Paired per-seed difference of the average to modality dropout (same seed = same split,
    // same initialisation seed, same mask stream).
    if let Some(base) = exp.models.iter().position(|m| m.key == UNIFIED.key) {
        for (i, model) in models.iter_mut().enumerate() {
            if i == base || exp.models[i].teacher {
                continue;
            }
            let diffs: Vec<f64> = avg_by_seed[i]
                .iter()
                .filter_map(|(seed, v)| avg_by_seed[base].get(seed).map(|b| v - b))
                .collect();
            let wins = diffs.iter().filter(|d| better(**d, 0.0)).count();
            model["delta_vs_dropout"] =
                json!({"stat": stat(&diffs), "better_seeds": wins, "paired_seeds": diffs.len()});
        }
    }
    let dataset = match exp.name {
        "mfeat3" | "mfeat6" => "mfeat",
        "avmnist" => "avmnist-lite",
        "surf-synth" => "synthetic-surf",
        _ => "synthetic-nyuv2",
    };
    Ok(json!({
        "experiment": exp.name,
        "dataset": dataset,
        "metric": exp.metric,
        "higher_is_better": exp.higher_is_better,
        "split": "test (weights selected on validation)",
        "seeds": opts.seeds,
        "quick": opts.quick,
        "setting": exp.setting,
        "combination_order": order,
        "models": models,
    }))
}

fn pct(v: &Value) -> String {
    let (m, s) = (v["mean"].as_f64().unwrap_or(f64::NAN), v["std"].as_f64().unwrap_or(f64::NAN));
    if m.is_nan() { "—".to_string() } else { format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * s) }
}

/// The Markdown table: one row per combination, one column per model, then average and worst.
fn to_markdown(exp: &Experiment, r: &Value, opts: &Options) -> String {
    let models = r["models"].as_array().cloned().unwrap_or_default();
    let order: Vec<String> = r["combination_order"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let arrow = if exp.higher_is_better { "higher is better" } else { "lower is better" };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### {}: {} (%) on the test split, mean ± std over seeds ({arrow})\n",
        exp.name, exp.metric
    );
    let seeds: Vec<String> = models
        .iter()
        .map(|m| format!("{} {}", m["key"].as_str().unwrap_or(""), m["seeds_finished"]))
        .collect();
    let _ = writeln!(s, "Seeds finished per model: {}.\n", seeds.join(", "));
    let header: Vec<String> =
        models.iter().map(|m| m["label"].as_str().unwrap_or("").to_string()).collect();
    let _ = writeln!(s, "| Combination | {} |", header.join(" | "));
    let _ = writeln!(s, "| :--- |{}", " ---: |".repeat(models.len()));
    for c in &order {
        let cells: Vec<String> = models
            .iter()
            .map(|m| {
                m["combinations"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["present"] == json!(c)))
                    .map(pct)
                    .unwrap_or_else(|| "—".into())
            })
            .collect();
        let _ = writeln!(s, "| {c} | {} |", cells.join(" | "));
    }
    let avg: Vec<String> = models
        .iter()
        .map(|m| {
            if m["teacher"] == json!(true) {
                format!("({} only)", order.last().map(String::as_str).unwrap_or("all"))
            } else {
                format!("**{}**", pct(&m["average"]))
            }
        })
        .collect();
    let _ = writeln!(s, "| **Average** | {} |", avg.join(" | "));
    let worst: Vec<String> = models
        .iter()
        .map(|m| {
            if m["teacher"] == json!(true) {
                return "—".into();
            }
            let names: Vec<&str> = m["worst"]["combinations"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut uniq = names.clone();
            uniq.sort();
            uniq.dedup();
            format!("{} ({})", pct(&m["worst"]["stat"]), uniq.join(", "))
        })
        .collect();
    let _ = writeln!(s, "| **Worst combination** | {} |", worst.join(" | "));
    let delta: Vec<String> = models
        .iter()
        .map(|m| {
            let d = &m["delta_vs_dropout"];
            if d.is_null() {
                return "—".into();
            }
            let (mean, std) = (
                d["stat"]["mean"].as_f64().unwrap_or(f64::NAN),
                d["stat"]["std"].as_f64().unwrap_or(f64::NAN),
            );
            format!(
                "{:+.2} ± {:.2} ({}/{} better)",
                100.0 * mean,
                100.0 * std,
                d["better_seeds"],
                d["paired_seeds"]
            )
        })
        .collect();
    let _ =
        writeln!(s, "| **Average − modality dropout (paired by seed)** | {} |", delta.join(" | "));
    let _ = writeln!(s);
    if order.len() > 7 {
        by_size_table(&mut s, &models, &order);
    }
    let _ = writeln!(s, "Wall time per model (sum over seeds, 1 torch thread):");
    for m in &models {
        let _ = writeln!(
            s,
            "- {}: {:.0} s",
            m["label"].as_str().unwrap_or(""),
            m["wall_seconds_total"].as_f64().unwrap_or(0.0)
        );
    }
    let _ = writeln!(s, "\nWeak sets mined by MAR (per seed):");
    for m in &models {
        for run in m["runs"].as_array().into_iter().flatten() {
            if let Some(w) = run["weak_set"].as_array() {
                let w: Vec<&str> = w.iter().filter_map(Value::as_str).collect();
                let _ = writeln!(
                    s,
                    "- {} seed {}: {{{}}}",
                    m["label"].as_str().unwrap_or(""),
                    run["seed"],
                    w.join(", ")
                );
            }
        }
    }
    if opts.quick {
        let _ = writeln!(s, "\n(quick smoke-test settings: not a result)");
    }
    s
}

/// An SVG: the mean metric per combination with ± std bars, one series per student model.
fn write_svg(exp: &Experiment, r: &Value, path: &Path) -> Result<()> {
    use mmanet_plot::{CombinationChart, LegendCorner, Point, Series, combination_chart};
    let combinations: Vec<String> = r["combination_order"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let mut series = Vec::new();
    for m in r["models"].as_array().into_iter().flatten() {
        if m["teacher"] == json!(true) {
            continue;
        }
        let points = combinations
            .iter()
            .map(|c| {
                m["combinations"]
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["present"] == json!(c)))
                    .map_or(Point::new(f64::NAN), |x| {
                        let mean = x["mean"].as_f64().unwrap_or(f64::NAN);
                        Point::with_std(100.0 * mean, 100.0 * x["std"].as_f64().unwrap_or(0.0))
                    })
            })
            .collect();
        series.push(Series { name: m["label"].as_str().unwrap_or("").to_string(), points });
    }
    let chart = CombinationChart {
        title: format!(
            "{}: {} (%) per modality combination, mean ± std over {} seed(s)",
            exp.name, exp.metric, r["seeds"]
        ),
        y_label: format!("{} (%)", exp.metric),
        combinations,
        series,
        legend: if exp.higher_is_better {
            LegendCorner::LowerRight
        } else {
            LegendCorner::UpperRight
        },
    };
    combination_chart(path, &chart)?;
    Ok(())
}

/// Many combinations: the mean over the combinations with the same number of present
/// modalities (per seed, then mean ± std over seeds), one row per size.
fn by_size_table(s: &mut String, models: &[Value], order: &[String]) {
    let size = |c: &str| c.split('+').count();
    let max = order.iter().map(|c| size(c)).max().unwrap_or(0);
    let _ = writeln!(s, "By number of present modalities (mean over those combinations):\n");
    let header: Vec<&str> = models.iter().filter_map(|m| m["label"].as_str()).collect();
    let _ = writeln!(s, "| Present | {} |", header.join(" | "));
    let _ = writeln!(s, "| :--- |{}", " ---: |".repeat(models.len()));
    for k in 1..=max {
        let n = order.iter().filter(|c| size(c) == k).count();
        let cells: Vec<String> = models
            .iter()
            .map(|m| {
                let rows: Vec<Vec<f64>> = m["combinations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["present"].as_str().is_some_and(|p| size(p) == k))
                    .filter_map(|c| {
                        c["values"].as_array().map(|v| v.iter().filter_map(Value::as_f64).collect())
                    })
                    .collect();
                let seeds = rows.iter().map(Vec::len).min().unwrap_or(0);
                if rows.is_empty() || seeds == 0 {
                    return "—".to_string();
                }
                let per_seed: Vec<f64> = (0..seeds)
                    .map(|i| rows.iter().map(|r| r[i]).sum::<f64>() / rows.len() as f64)
                    .collect();
                pct(&stat(&per_seed))
            })
            .collect();
        let _ = writeln!(s, "| {k} of {max} ({n}) | {} |", cells.join(" | "));
    }
    let _ = writeln!(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compared_model_is_a_preset() {
        let dir = project_root().join("crates/mmanet-train/presets");
        let mut names = Vec::new();
        for name in NAMES {
            let exp = experiment(name).unwrap();
            assert!(exp.models.first().is_some_and(|m| m.teacher), "{name}: teacher first");
            for model in &exp.models {
                let preset = format!("{}-{}", exp.preset_prefix, model.key);
                let text = std::fs::read_to_string(dir.join(format!("{preset}.toml")))
                    .unwrap_or_else(|e| panic!("{name}: preset {preset}: {e}"));
                let doc: toml::Table = toml::from_str(&text).unwrap();
                assert_eq!(doc["name"].as_str(), Some(preset.as_str()));
                let stage = if model.teacher { "teacher" } else { "student" };
                assert_eq!(doc["stage"].as_str(), Some(stage), "{preset}");
                names.push(preset);
            }
        }
        assert!(names.contains(&"mfeat6-mmanet-ref".to_string()) && names.len() == 27, "{names:?}");
    }
}
