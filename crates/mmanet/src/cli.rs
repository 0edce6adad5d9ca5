//! The command line, as clap types.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// MMANet: margin-aware distillation and modality-aware regularization for incomplete
/// multimodal learning.
#[derive(Debug, Parser)]
#[command(name = "mmanet", version, about, long_about = None)]
pub(crate) struct Cli {
    /// More log output (-v info, -vv debug); `MMANET_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Errors only.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Train a teacher, the modality-dropout baseline and MMANet on UCI Multiple Features (three
    /// views, fetched on first use) and print the per-combination report (CPU: about a minute).
    Demo {
        /// Where data and runs go.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// With `--quick`: also train the toy modality-dropout baseline (the full demo always does).
        #[arg(long)]
        compare: bool,
        /// `auto`, `cpu` or `cuda:N`.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Tiny and fast (seconds): for smoke tests.
        #[arg(long)]
        quick: bool,
    },
    /// Train on a manifest of your own files: infers the modalities and decoders from its
    /// columns and cells, trains the teacher (complete samples), the modality-dropout baseline
    /// and MMANet, prints the per-combination table, and writes OUT with the runs, report.*
    /// and the deployment model (model.safetensors + input_spec.json).
    Fit {
        /// The manifest (CSV with a header, or .jsonl): id, label, optional split and group,
        /// one column per modality.
        #[arg(long)]
        manifest: PathBuf,
        /// Where the runs and reports go.
        #[arg(long, default_value = "runs/fit")]
        out: PathBuf,
        /// Print the three inferred configs (TOML) and stop.
        #[arg(long)]
        dry_run: bool,
        /// Small widths, 10 epochs: for smoke tests (seconds).
        #[arg(long)]
        quick: bool,
        /// `auto`, `cpu` or `cuda:N`.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Train what a TOML config describes.
    Train {
        /// The config (see `mmanet config print`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Start from a preset instead of a file.
        #[arg(long, conflicts_with = "config")]
        preset: Option<String>,
        /// Run folder (default: `runs/NAME`).
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Override a field, e.g. `--set epochs=3 --set method.fidelity=reference-code`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Data-parallel training in N local worker processes (CPU, Gloo), the torch threads
        /// split between them; under torchrun (`WORLD_SIZE` set) this is ignored.
        #[arg(long, value_name = "N")]
        nproc: Option<usize>,
    },
    /// Continue an interrupted run from its last finished epoch.
    Resume {
        /// The run folder.
        run_dir: PathBuf,
        /// Read the data from elsewhere, e.g. `--set data.dataset.root=/new/place` (only
        /// `data.dataset.*`, `data.threads`, `data.prefetch` and `device`; repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Data-parallel in N local worker processes, as `train --nproc`.
        #[arg(long, value_name = "N")]
        nproc: Option<usize>,
    },
    /// Score a run's weights once per modality combination.
    Eval {
        /// The run folder, or a model file (`mmanet export`) with `--config`.
        run_dir: PathBuf,
        /// For a model file: the config whose `[data]` (and `[eval]`, `device`) to score it
        /// on; its `[model]` is not used (the file's architecture is).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Weights: `best` (default), `last`, or a safetensors path.
        #[arg(long, default_value = "best")]
        weights: String,
        /// Combinations, comma-separated (`R,D+I,R+D+I`); default: all.
        #[arg(long, value_delimiter = ',')]
        combos: Vec<String>,
        /// Which split.
        #[arg(long, value_enum, default_value = "test")]
        split: SplitArg,
        /// Output format.
        #[arg(long, value_enum, default_value = "md")]
        format: Format,
        /// Read the data from elsewhere, e.g. `--set data.dataset.root=/new/place` (only
        /// `data.dataset.*`, `data.threads`, `data.prefetch` and `device`; repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Predict from whichever modality files are given (any non-empty subset): class
    /// probabilities, or for segmentation a label PNG; or every row of a manifest.
    Predict {
        /// A model file (`mmanet export`), or a run folder (its weights `--weights`).
        model: PathBuf,
        /// For a run folder: `best` (default), `last`, or a safetensors path.
        #[arg(long, default_value = "best")]
        weights: String,
        /// `MODALITY=FILE` (name or symbol), repeated: an image for image branches, a text
        /// file of raw numbers (or `.npy`) for vector and sequence branches.
        #[arg(long = "input", value_name = "MODALITY=FILE", required_unless_present = "manifest")]
        inputs: Vec<String>,
        /// A CSV with an `id` column and one column per modality (a path relative to the
        /// manifest, inline numbers, or empty when absent): one prediction per row.
        #[arg(long, conflicts_with = "inputs")]
        manifest: Option<PathBuf>,
        /// Samples per forward pass with `--manifest`.
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// `auto`, `cpu` or `cuda:N`.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Segmentation: the label PNG (one sample) or the folder of label PNGs (manifest);
        /// with `--manifest` on a classifier: the predictions CSV (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a run's deployment network as one self-describing model file (weights without
    /// the regularization head, architecture, input spec, identity; docs/model_format.md).
    Export {
        /// The run folder.
        run_dir: PathBuf,
        /// `best` (default), `last`, or a checkpoint path of this run.
        #[arg(long, default_value = "best")]
        weights: String,
        /// The model file to write (default: RUN_DIR/model.safetensors).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Record the export date (then two exports differ).
        #[arg(long)]
        date: bool,
    },
    /// Serve a model file over HTTP: `POST /v1/predict` with any subset of the modalities,
    /// dynamic batching across requests, `/v1/model`, `/healthz`, `/readyz`, `/metrics`.
    Serve {
        /// The model file (`mmanet export`).
        model: PathBuf,
        /// Address to listen on (port 0: any free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Most samples per forward pass.
        #[arg(long, default_value_t = 32)]
        max_batch: usize,
        /// Longest wait for more requests after the first of a batch, in ms.
        #[arg(long, default_value_t = 2)]
        max_delay_ms: u64,
        /// Requests waiting for the model at most (more get 503 + Retry-After).
        #[arg(long, default_value_t = 256)]
        queue: usize,
        /// Largest request body in bytes (larger: 413).
        #[arg(long, default_value_t = 16 << 20)]
        max_body: usize,
        /// Longest time to receive a request body, in ms (slower: 408).
        #[arg(long, default_value_t = 10_000)]
        read_timeout_ms: u64,
        /// `cpu` or `cuda:N`.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// libtorch intra-op threads (default: libtorch's choice).
        #[arg(long)]
        threads: Option<i32>,
        /// Replay the forward pass from one CUDA graph per batch-size bucket up to
        /// `--max-batch` (batches padded to the bucket); on CPU batches are padded alike and
        /// run eagerly.
        #[arg(long)]
        cuda_graph: bool,
    },
    /// Print a model file's metadata: modalities, decoders, classes, architecture, identity.
    Inspect {
        /// The model file.
        model: PathBuf,
        /// Print the raw metadata JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mean ± std per combination across runs (the paper averages three models).
    Report {
        /// Run folders (each with report.json).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "md")]
        format: Format,
    },
    /// Print configurations.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check or make data.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print a complete configuration as TOML.
    Print {
        /// Preset name (see `mmanet config list`).
        #[arg(long, default_value = "surf-mmanet")]
        preset: String,
    },
    /// List the presets.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// Open every split of a config's data set: counts, label balance, unreadable files.
    Check {
        /// The config.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Write a manifest from `ROOT/<modality>/<id>.<ext>` files and a labels CSV (a missing
    /// file is a missing modality).
    Manifest {
        /// The folder holding one folder per modality.
        #[arg(long)]
        root: PathBuf,
        /// `id,label` (optionally `split`, `group`), one line per sample.
        #[arg(long)]
        labels: PathBuf,
        /// The manifest to write (default: ROOT/manifest.csv); paths in it are relative to it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the example manifest data set from UCI mfeat (`cargo xtask data example-manifest`
    /// runs this): pixel view as PNGs, Fourier and Karhunen-Loeve views inline, 30 % of the
    /// samples missing one or two views.
    ExampleManifest {
        /// The fetched mfeat files (`cargo xtask data fetch mfeat`).
        #[arg(long, default_value = "datasets/cache/mfeat")]
        mfeat: PathBuf,
        /// Output folder.
        #[arg(long, default_value = "datasets/cache/mfeat-manifest")]
        out: PathBuf,
        /// A stratified subset of this many digits (default: all 2,000).
        #[arg(long)]
        n: Option<usize>,
        /// Seed of the subset and of the missing views.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Fraction of samples lacking one or two views.
        #[arg(long, default_value_t = 0.3)]
        missing: f64,
    },
    /// Write a seeded synthetic data set.
    Synth {
        /// Which set.
        #[arg(value_enum)]
        kind: SynthKind,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Training samples.
        #[arg(long, default_value_t = 640)]
        n: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Image side in pixels (NYUv2: height; the width is 4/3 of it).
        #[arg(long, default_value_t = 48)]
        size: usize,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SynthKind {
    /// CASIA-SURF list layout: RGB, depth, IR JPEGs, label 1 = real.
    Surf,
    /// NYUv2 (ESANet) layout: RGB png, depth png (uint16 mm), 5-class label png (0 = void).
    Nyuv2,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SplitArg {
    Val,
    Test,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Md,
    Csv,
    Json,
}
