//! What each subcommand does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mmanet_metrics::CombinationReport;
use mmanet_train::data_spec::Split;
use mmanet_train::presets::{PRESETS, preset};
use mmanet_train::run_dir::RunDir;
use mmanet_train::run_report::RunReport;
use mmanet_train::state::FileRole;
use mmanet_train::{TrainConfig, Trainer};

use crate::cli::{Command, ConfigCommand, DataCommand, Format, SplitArg, SynthKind};
use crate::progress::Bars;

pub(crate) fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Demo { out, compare, device, quick } => demo(&out, compare, &device, quick),
        Command::Train { config, preset: name, run_dir, overrides } => {
            let mut cfg = match (config, name) {
                (Some(path), _) => TrainConfig::from_toml_path(&path)?,
                (None, Some(name)) => preset_or_err(&name)?,
                (None, None) => {
                    bail!("give --config FILE or --preset NAME (see `mmanet config list`)")
                }
            };
            for o in &overrides {
                cfg.set(o)?;
            }
            let dir = run_dir.unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
            train(cfg, &dir).map(|_| ())
        }
        Command::Resume { run_dir, overrides } => {
            let run = RunDir::create(&run_dir)?;
            let cfg = run_config(&run, &overrides)?.check()?;
            let (epochs, batch) = (cfg.epochs, cfg.data.batch_size);
            let mut t = Trainer::resume_with(run, cfg)?;
            let mut bars = Bars::new("resume", epochs, batch, false);
            let s = t.run(&mut bars)?;
            print_report(&s.report, Format::Md);
            Ok(())
        }
        Command::Eval { run_dir, weights, combos, split, format, overrides } => {
            let run = RunDir::create(&run_dir)?;
            let cfg = run_config(&run, &overrides)?.check()?;
            let path = weights_path(&run, &weights)?;
            let combos = combos
                .iter()
                .map(|c| cfg.set().parse_mask(c).with_context(|| format!("--combos `{c}`")))
                .collect::<Result<Vec<_>>>()?;
            let split = match split {
                SplitArg::Val => Split::Val,
                SplitArg::Test => Split::Test,
            };
            let report = mmanet_train::evaluate::evaluate_checkpoint(&cfg, &path, split, &combos)?;
            print_report(&report, format);
            Ok(())
        }
        Command::Predict { model, weights, inputs, manifest, batch_size, device, out } => {
            crate::deploy::predict(&crate::deploy::PredictArgs {
                model,
                weights,
                inputs,
                manifest,
                batch_size,
                device,
                out,
            })
        }
        Command::Export { run_dir, weights, out, date } => {
            crate::deploy::export(&run_dir, &weights, out, date)
        }
        Command::Inspect { model, json } => crate::deploy::inspect(&model, json),
        Command::Serve {
            model,
            addr,
            max_batch,
            max_delay_ms,
            queue,
            max_body,
            read_timeout_ms,
            device,
            threads,
        } => {
            if let Some(n) = threads {
                tch::set_num_threads(n);
            }
            let cfg = mmanet_serve::ServeConfig {
                addr,
                max_batch,
                max_delay: std::time::Duration::from_millis(max_delay_ms),
                queue_capacity: queue,
                max_body,
                read_timeout: std::time::Duration::from_millis(read_timeout_ms),
                device: mmanet_train::config::parse_device(&device)?,
                inference_delay: std::time::Duration::ZERO,
            };
            let server = mmanet_serve::start(model.clone(), cfg, true)?;
            eprintln!(
                "serving {} on http://{} (SIGTERM or Ctrl-C stops)",
                model.display(),
                server.addr
            );
            server.join()?;
            eprintln!("stopped");
            Ok(())
        }
        Command::Report { runs, format } => {
            let reports = runs
                .iter()
                .map(|r| {
                    let p = r.join("report.json");
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?;
                    let run =
                        RunReport::from_json(&text).with_context(|| format!("{}", p.display()))?;
                    Ok(run.combination_report(0)?)
                })
                .collect::<Result<Vec<_>>>()?;
            let agg = CombinationReport::aggregate(&reports)?;
            match format {
                Format::Md => print!("{}", agg.to_markdown()),
                Format::Csv => print!("{}", agg.to_csv()),
                Format::Json => println!("{}", agg.to_json()),
            }
            Ok(())
        }
        Command::Config(ConfigCommand::List) => {
            for (name, what) in PRESETS {
                println!("{name:<14} {what}");
            }
            Ok(())
        }
        Command::Config(ConfigCommand::Print { preset: name }) => {
            print!("{}", preset_or_err(&name)?.to_toml());
            Ok(())
        }
        Command::Data(DataCommand::Check { config }) => data_check(&config),
        Command::Data(DataCommand::Synth { kind: SynthKind::Surf, out, n, seed, size }) => {
            let s = mmanet_data::surf::write_synthetic_surf(&out, n, seed, size)?;
            eprintln!("wrote {} (train/val/test: {:?})", s.root.display(), s.counts);
            Ok(())
        }
        Command::Data(DataCommand::Synth { kind: SynthKind::Nyuv2, out, n, seed, size }) => {
            let s = mmanet_data::nyuv2::write_synthetic_nyuv2(&out, n, seed, size, size * 4 / 3)?;
            eprintln!("wrote {} (train/test: {:?})", s.root.display(), s.counts);
            Ok(())
        }
    }
}

/// A run's `config.toml` (paths inside relative to the run folder) with `--set` overrides of
/// where its data are read from.
fn run_config(run: &RunDir, overrides: &[String]) -> Result<TrainConfig> {
    let mut cfg = TrainConfig::from_toml_path(&run.config())?;
    for o in overrides {
        cfg.set_for_run(o)?;
    }
    Ok(cfg)
}

/// `best` and `last` resolve through the run's `state.json` (and are checked against the
/// sha256 it records); anything else is a path.
fn weights_path(run: &RunDir, weights: &str) -> Result<PathBuf> {
    Ok(match weights {
        "best" => run.weights(FileRole::Best)?,
        "last" => run.weights(FileRole::Last)?,
        other => PathBuf::from(other),
    })
}

fn preset_or_err(name: &str) -> Result<TrainConfig> {
    preset(name).with_context(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
        format!("unknown preset `{name}` (known: {})", names.join(", "))
    })
}

/// Trains `cfg` into `dir` (resuming if `dir` holds an unfinished run of the same config).
fn train(mut cfg: TrainConfig, dir: &Path) -> Result<mmanet_train::TrainSummary> {
    // Presets name paths relative to the working directory; the run folder's config.toml must
    // not depend on where `mmanet resume` is started.
    cfg.resolve_paths(&std::env::current_dir()?);
    let cfg = cfg.check()?;
    let run = RunDir::create(dir)?;
    eprintln!("{}: training on {:?} into {}", cfg.name, cfg.device(), dir.display());
    let mut bars = Bars::new(&cfg.name, cfg.epochs, cfg.data.batch_size, false);
    let mut trainer = if run.state().exists() {
        let on_disk = TrainConfig::from_toml_path(&run.config())?;
        // The run's copy names paths relative to the run folder: compare the files named.
        if on_disk.with_absolute_paths().to_toml() != cfg.with_absolute_paths().to_toml() {
            bail!(
                "{} holds a run of another config: resume it with `mmanet resume`, or use --run-dir",
                dir.display()
            );
        }
        Trainer::resume(run)?
    } else {
        Trainer::new(cfg, run)?
    };
    let summary = match trainer.run(&mut bars) {
        Err(mmanet_train::TrainError::Interrupted { epoch, step }) => bail!(
            "stopped at epoch {epoch}, step {step}; continue exactly with `mmanet resume {}`",
            dir.display()
        ),
        other => other?,
    };
    eprintln!(
        "{}: report written to {}",
        trainer.run_dir().root().display(),
        trainer.run_dir().report("md").display()
    );
    Ok(summary)
}

fn print_report(report: &CombinationReport, format: Format) {
    match format {
        Format::Md => print!("{}", report.to_markdown()),
        Format::Csv => print!("{}", report.to_csv()),
        Format::Json => println!("{}", report.to_json()),
    }
}

/// The demo: UCI mfeat (three views: the pixel image, Fourier and Karhunen-Loeve features),
/// teacher, modality-dropout baseline and MMANet; one table, `report.json`, `report.md` and
/// `report.svg` in `out`.
fn demo(out: &Path, compare: bool, device: &str, quick: bool) -> Result<()> {
    let (prefix, mut names, data_root) = if quick {
        ("toy", vec!["toy-teacher", "toy-mmanet"], None)
    } else {
        let root = ensure_fetched("mfeat", "mfeat-pix.csv")?;
        ("mfeat3", vec!["mfeat3-teacher", "mfeat3-unified", "mfeat3-mmanet"], Some(root))
    };
    if quick && compare {
        names.push("toy-unified");
    }
    let teacher_weights =
        out.join(format!("{prefix}-teacher")).join("checkpoints").join("best.safetensors");
    let mut combined: Option<RunReport> = None;
    let mut teacher_line = String::new();
    for name in names {
        let mut cfg = preset_or_err(name)?;
        cfg.device = device.to_string();
        if let Some(root) = &data_root {
            cfg.set_data_root(root);
        }
        if let Some(t) = &mut cfg.teacher {
            t.checkpoint = teacher_weights.clone();
        }
        let dir = out.join(&cfg.name);
        let summary = train(cfg.clone(), &dir)?;
        if cfg.stage == mmanet_train::Stage::Teacher {
            // The teacher sees every modality by construction: report it, keep it out of the
            // per-combination table.
            let avg = summary.report.average().unwrap_or_default();
            let cols: Vec<String> = summary
                .report
                .metrics()
                .iter()
                .zip(avg)
                .map(|(m, v)| format!("{m} {:.2}%", 100.0 * v))
                .collect();
            teacher_line = format!("{} (all modalities): {}", cfg.name, cols.join(", "));
            continue;
        }
        let text = std::fs::read_to_string(dir.join("report.json"))?;
        let one = RunReport::from_json(&text)?;
        match &mut combined {
            None => combined = Some(one),
            Some(c) => c.results.extend(one.results),
        }
    }
    let report = combined.context("no model was trained")?;
    mmanet_fs::write(&out.join("report.json"), report.to_json().as_bytes())?;
    mmanet_fs::write(&out.join("report.md"), report.to_markdown().as_bytes())?;
    let metric = if report.task == "segmentation" { "miou" } else { "accuracy" };
    crate::plot::write_svg(&report, metric, &out.join("report.svg"))?;
    println!("\n{} (test split, {metric})\n", report.dataset);
    print!("{}", report.to_markdown());
    println!("\nteacher {teacher_line}");
    println!("\nwritten: {}/report.{{json,md,svg}}", out.display());
    Ok(())
}

/// The folder of a fetched data set (`datasets/cache/NAME`, under the working directory or
/// else under the checkout this binary was built from), running `cargo xtask data fetch NAME`
/// (sha256-verified) there on first use.
fn ensure_fetched(name: &str, probe_file: &str) -> Result<PathBuf> {
    let rel = Path::new("datasets").join("cache").join(name);
    if rel.join(probe_file).exists() {
        return Ok(rel);
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    let dir = checkout.join(&rel);
    if dir.join(probe_file).exists() {
        return Ok(dir);
    }
    if !checkout.join("xtask").is_dir() {
        bail!(
            "{} is missing: fetch the data set with `cargo xtask data fetch {name}`",
            rel.display()
        );
    }
    eprintln!("fetching {name} (first use): cargo xtask data fetch {name}");
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["xtask", "data", "fetch", name])
            .current_dir(&checkout)
            .status()
            .context("running cargo xtask data fetch")?;
    if !status.success() || !dir.join(probe_file).exists() {
        bail!("fetching {name} failed; run `cargo xtask data fetch {name}` and retry");
    }
    Ok(dir)
}

fn data_check(config: &Path) -> Result<()> {
    let cfg = TrainConfig::from_toml_path(config)?.check()?;
    let summaries = mmanet_train::data_check::check_data_config(&cfg.data, cfg.seed)?;
    let mut bad = 0;
    for s in &summaries {
        println!(
            "{:?}: {} samples, labels {:?}, unreadable {}",
            s.split,
            s.samples,
            s.label_counts,
            s.bad.len()
        );
        let patterns: Vec<String> = s.patterns.iter().map(|(p, n)| format!("{p}: {n}")).collect();
        println!("  modalities present: {}", patterns.join(", "));
        for b in s.bad.iter().take(20) {
            println!("  {b}");
        }
        bad += s.bad.len();
    }
    if bad > 0 {
        bail!("{bad} unreadable samples (set data.skip_bad_samples = true to train anyway)");
    }
    Ok(())
}
