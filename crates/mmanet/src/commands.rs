//! What each subcommand does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mmanet_core::{ModalityMask, ModalitySet};
use mmanet_metrics::CombinationReport;
use mmanet_train::data_spec::Split;
use mmanet_train::presets::{self, PRESETS, Preset};
use mmanet_train::run_dir::RunDir;
use mmanet_train::run_report::RunReport;
use mmanet_train::state::FileRole;
use mmanet_train::{TrainConfig, Trainer};

use crate::cli::{Command, ConfigCommand, DataCommand, Format, SplitArg, SynthKind};
use crate::progress::Bars;

pub(crate) fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Demo { out, compare, device, quick } => demo(&out, compare, &device, quick),
        Command::Fit { manifest, out, dry_run, quick, device } => {
            fit(&manifest, &out, dry_run, quick, &device)
        }
        Command::Train { config, preset: name, run_dir, overrides, nproc } => {
            let mut cfg = match (config, name) {
                (Some(path), _) => TrainConfig::from_toml_path(&path)?,
                (None, Some(name)) => preset_or_err(&name)?.config(),
                (None, None) => {
                    bail!("give --config FILE or --preset NAME (see `mmanet config list`)")
                }
            };
            for o in &overrides {
                cfg.set(o)?;
            }
            let dir = run_dir.unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
            if let Some(n) = crate::distributed::launch_here(nproc) {
                // A bad config fails here once, not once per worker.
                cfg.clone().check()?;
                return crate::distributed::launch(n, cfg.compute.collective_timeout(), &dir);
            }
            train(cfg, &dir).map(|_| ())
        }
        Command::Resume { run_dir, overrides, nproc } => {
            let run = RunDir::create(&run_dir)?;
            let cfg = run_config(&run, &overrides)?.check()?;
            if let Some(n) = crate::distributed::launch_here(nproc) {
                return crate::distributed::launch(n, cfg.compute.collective_timeout(), &run_dir);
            }
            let (epochs, batch) = (cfg.epochs, cfg.data.batch_size);
            let (mut t, quiet) = match crate::distributed::join(&cfg)? {
                Some(dp) => {
                    let quiet = !dp.is_writer();
                    (Trainer::resume_parallel(run, cfg, dp)?, quiet)
                }
                None => (Trainer::resume_with(run, cfg)?, false),
            };
            let mut bars = Bars::new("resume", epochs, batch, quiet);
            let s = t.run(&mut bars)?;
            if !quiet {
                print_report(&s.report, Format::Md);
            }
            Ok(())
        }
        Command::Eval { run_dir, config, weights, combos, split, format, overrides } => {
            let split = match split {
                SplitArg::Val => Split::Val,
                SplitArg::Test => Split::Test,
            };
            let (name, ev) = if run_dir.is_file() {
                let name = run_dir.file_stem().map_or("model".into(), |s| s.to_string_lossy());
                let ev = eval_model_file(&run_dir, config.as_deref(), &combos, split, &overrides)?;
                (name.into_owned(), ev)
            } else {
                if let Some(c) = &config {
                    bail!(
                        "--config {} is for a model file; {} is a run folder (its own \
                         config.toml is used: change the data with --set data.dataset.root=...)",
                        c.display(),
                        run_dir.display()
                    );
                }
                let run = RunDir::create(&run_dir)?;
                let cfg = run_config(&run, &overrides)?.check()?;
                let path = weights_path(&run, &weights)?;
                let combos = parse_combos(cfg.set(), &combos)?;
                (
                    cfg.name.clone(),
                    mmanet_train::evaluate::evaluate_checkpoint(&cfg, &path, split, &combos)?,
                )
            };
            print_evaluation(&name, &ev, format);
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
            cuda_graph,
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
                cuda_graph,
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
            for p in PRESETS {
                println!("{:<20} {}", p.name, p.description());
            }
            Ok(())
        }
        Command::Config(ConfigCommand::Print { preset: name }) => {
            // The embedded file as it is, comments included.
            print!("{}", preset_or_err(&name)?.text);
            Ok(())
        }
        Command::Data(DataCommand::Check { config }) => data_check(&config),
        Command::Data(DataCommand::Manifest { root, labels, out }) => {
            let out = out.unwrap_or_else(|| root.join("manifest.csv"));
            let m = mmanet_data::manifest::manifest_from_folders(&root, &labels, &out)?;
            mmanet_fs::write(&out, m.csv.as_bytes())?;
            eprintln!(
                "wrote {} ({} samples, {} with every modality; modalities {})",
                out.display(),
                m.samples,
                m.complete,
                m.modalities.join(", ")
            );
            Ok(())
        }
        Command::Data(DataCommand::ExampleManifest { mfeat, out, n, seed, missing }) => {
            let s = mmanet_data::manifest::example::write_mfeat_example(
                &mfeat, &out, n, seed, missing,
            )?;
            eprintln!(
                "wrote {} ({} samples, {} missing one or two views)",
                s.manifest.display(),
                s.samples,
                s.incomplete
            );
            Ok(())
        }
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

/// `--combos` values parsed against `set` (errors name the value).
fn parse_combos(set: &ModalitySet, combos: &[String]) -> Result<Vec<ModalityMask>> {
    combos.iter().map(|c| set.parse_mask(c).with_context(|| format!("--combos `{c}`"))).collect()
}

/// `mmanet eval MODEL_FILE --config DATA`: the file's network on the config's data.
fn eval_model_file(
    model: &Path,
    config: Option<&Path>,
    combos: &[String],
    split: Split,
    overrides: &[String],
) -> Result<mmanet_train::evaluate::Evaluation> {
    let config = config.with_context(|| {
        format!(
            "{} is a model file: give the data to score it on with --config FILE (a config \
             with a [data] section, e.g. the one it was trained with)",
            model.display()
        )
    })?;
    let file = mmanet_deploy::read_model_file(model)?;
    let mut cfg = TrainConfig::from_toml_path(config)?;
    for o in overrides {
        cfg.set_for_run(o)?;
    }
    let cfg = cfg.check()?;
    let combos = parse_combos(&file.metadata.model.modalities(), combos)?;
    Ok(mmanet_train::evaluate::evaluate_model_file(&cfg, file, split, &combos)?)
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

fn preset_or_err(name: &str) -> Result<&'static Preset> {
    presets::find(name).with_context(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
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
    let mut parallel = crate::distributed::join(&cfg)?;
    let writer = parallel.as_ref().is_none_or(|p| p.is_writer());
    if writer {
        eprintln!("{}: training on {:?} into {}", cfg.name, cfg.device(), dir.display());
    }
    let mut bars = Bars::new(&cfg.name, cfg.epochs, cfg.data.batch_size, !writer);
    let exists = writer && run.state().exists();
    let exists = match &mut parallel {
        // Rank 0's folder decides (the others may not see it).
        Some(p) => p.agree_flag(exists)?,
        None => exists,
    };
    let mut trainer = if exists {
        // The run's copy names paths relative to the run folder: compare the files named.
        let same = |on_disk: TrainConfig| {
            on_disk.with_absolute_paths().to_toml() == cfg.with_absolute_paths().to_toml()
        };
        if writer && !same(TrainConfig::from_toml_path(&run.config())?) {
            bail!(
                "{} holds a run of another config: resume it with `mmanet resume`, or use --run-dir",
                dir.display()
            );
        }
        match parallel {
            Some(p) => Trainer::resume_parallel(run, cfg, p)?,
            None => Trainer::resume(run)?,
        }
    } else {
        match parallel {
            Some(p) => Trainer::new_parallel(cfg, run, p)?,
            None => Trainer::new(cfg, run)?,
        }
    };
    let summary = match trainer.run(&mut bars) {
        Err(mmanet_train::TrainError::Interrupted { epoch, step }) => bail!(
            "stopped at epoch {epoch}, step {step}; continue exactly with `mmanet resume {}`",
            dir.display()
        ),
        other => other?,
    };
    if writer {
        eprintln!(
            "{}: report written to {}",
            trainer.run_dir().root().display(),
            trainer.run_dir().report("md").display()
        );
    }
    Ok(summary)
}

/// `mmanet eval`'s output: the combination report and, on incomplete data, the as-observed
/// table (Markdown: a second table; CSV: the `observed:` lines of `report.csv`; JSON: the
/// combination report alone, the as-observed results being in the run's `report.json`).
fn print_evaluation(model: &str, ev: &mmanet_train::evaluate::Evaluation, format: Format) {
    let Some(observed) = &ev.observed else {
        return print_report(&ev.report, format);
    };
    match format {
        Format::Md => {
            let mut run = mmanet_train::run_report::RunReport::new("", "", Vec::new());
            run.push(model, &ev.report);
            if let Some(last) = run.results.last_mut() {
                last.observed = Some(observed.clone());
            }
            print!("{}{}", ev.report.to_markdown(), run.observed_table());
        }
        Format::Csv => {
            print!("{}", mmanet_train::run_report::report_csv(&ev.report, Some(observed)))
        }
        Format::Json => print_report(&ev.report, format),
    }
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
        let mut cfg = preset_or_err(name)?.config();
        cfg.device = device.to_string();
        if let Some(root) = &data_root {
            cfg.set_data_root(root);
        }
        if let Some(t) = &mut cfg.teacher {
            t.checkpoint = teacher_weights.clone();
        }
        let dir = out.join(&cfg.name);
        train_and_collect(cfg, &dir, &mut combined, &mut teacher_line)?;
    }
    let report = combined.context("no model was trained")?;
    write_combined(out, &report, &teacher_line)
}

/// Trains `cfg` into `dir`; a teacher's result becomes `teacher_line` (it sees every
/// modality by construction, so it stays out of the per-combination table), a student's
/// report joins `combined`.
fn train_and_collect(
    cfg: TrainConfig,
    dir: &Path,
    combined: &mut Option<RunReport>,
    teacher_line: &mut String,
) -> Result<()> {
    let summary = train(cfg.clone(), dir)?;
    if cfg.stage == mmanet_train::Stage::Teacher {
        let avg = summary.report.average().unwrap_or_default();
        let cols: Vec<String> = summary
            .report
            .metrics()
            .iter()
            .zip(avg)
            .map(|(m, v)| format!("{m} {:.2}%", 100.0 * v))
            .collect();
        *teacher_line = format!("{} (all modalities): {}", cfg.name, cols.join(", "));
        return Ok(());
    }
    let text = std::fs::read_to_string(dir.join("report.json"))?;
    let one = RunReport::from_json(&text)?;
    match combined {
        None => *combined = Some(one),
        Some(c) => c.results.extend(one.results),
    }
    Ok(())
}

/// Writes `out/report.{json,md,svg}` and prints the table and the teacher's line.
fn write_combined(out: &Path, report: &RunReport, teacher_line: &str) -> Result<()> {
    mmanet_fs::write(&out.join("report.json"), report.to_json().as_bytes())?;
    mmanet_fs::write(&out.join("report.md"), report.to_markdown().as_bytes())?;
    let metric = if report.task == "segmentation" { "miou" } else { "accuracy" };
    crate::plot::write_svg(report, metric, &out.join("report.svg"))?;
    println!(
        "\n{} (test split, {metric}, each combination on the test samples that have it)\n",
        report.dataset
    );
    print!("{}", report.to_markdown());
    println!("\nteacher {teacher_line}");
    println!("\nwritten: {}/report.{{json,md,svg}}", out.display());
    Ok(())
}

/// `mmanet fit`: infers the teacher, unified and MMANet configs of a manifest
/// (`mmanet_train::fit`), trains them into `out`, writes the reports and the deployment model.
fn fit(manifest: &Path, out: &Path, dry_run: bool, quick: bool, device: &str) -> Result<()> {
    use mmanet_train::fit::{FitOptions, FitRole};
    let opts = FitOptions { quick, device: device.to_string() };
    let plan = mmanet_train::fit::plan(manifest, out, &opts)?;
    eprintln!(
        "{}: {} samples ({} with every modality, {} of them in the training split), {} classes",
        plan.manifest.display(),
        plan.inferred.samples,
        plan.inferred.complete,
        plan.complete_train,
        plan.classes.len()
    );
    for m in &plan.inferred.modalities {
        eprintln!("  {}: {}", m.name, describe_decoder(&m.decoder));
    }
    if dry_run {
        for run in &plan.runs {
            println!("# {}/config.toml", run.dir.display());
            println!("{}", run.config.to_toml());
        }
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut combined: Option<RunReport> = None;
    let mut teacher_line = String::new();
    for run in &plan.runs {
        train_and_collect(run.config.clone(), &run.dir, &mut combined, &mut teacher_line)?;
    }
    let report = combined.context("no model was trained")?;
    write_combined(out, &report, &teacher_line)?;
    write_model(&plan.run(FitRole::Mmanet).dir, out)?;
    println!("deployment model: {}/model.safetensors (+ input_spec.json)", out.display());
    println!(
        "rerun one with changes: mmanet train --config {}/mmanet/config.toml --set epochs=40",
        out.display()
    );
    eprintln!("fit took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn describe_decoder(d: &mmanet_data::manifest::ManifestDecoder) -> String {
    use mmanet_data::manifest::ManifestDecoder as D;
    match d {
        D::Image { size, channels, .. } => {
            format!("image {}x{}, {channels} channel(s) -> small CNN", size[0], size[1])
        }
        D::Vector { len, .. } => format!("vector of {len} (standardised) -> MLP"),
        D::Array { shape } => format!("array {shape:?}"),
        D::Sequence { max_len, features } => {
            format!("sequence of up to {max_len} steps x {features} -> 1-D conv")
        }
    }
}

/// The deployment model of a finished student run as one self-describing model file,
/// `out/model.safetensors` (its best weights without the regularization head, the
/// architecture, the input spec and the run's identity: docs/model_format.md).
fn write_model(student_run: &Path, out: &Path) -> Result<()> {
    mmanet_train::export::export_run(student_run, "best", &out.join("model.safetensors"), None)?;
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
    let check = mmanet_train::data_check::check_data_config(&cfg.data, cfg.seed)?;
    if !check.bad_lines.is_empty() {
        println!("{} lines are not valid samples:", check.bad_lines.len());
        for b in check.bad_lines.iter().take(20) {
            println!("  {b}");
        }
    }
    for s in &check.splits {
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
    }
    let bad = check.problems();
    if bad > 0 && cfg.data.skip_bad_samples {
        println!("{bad} bad lines or samples will be skipped (data.skip_bad_samples = true)");
    } else if bad > 0 {
        bail!(
            "{bad} bad lines or unreadable samples (set data.skip_bad_samples = true to train anyway)"
        );
    }
    Ok(())
}
