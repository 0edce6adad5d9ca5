//! Data-parallel runs from the command line: `--nproc N` spawns the local workers
//! ([`mmanet_train::launch`]); a worker (under `--nproc` or torchrun) joins its process group.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail};
use mmanet_train::config::ValidConfig;
use mmanet_train::launch::{LocalLaunch, run_local};
use mmanet_train::parallel::DataParallel;

/// `Some(N)` when this process should launch `N` local workers: `--nproc N` with `N > 1`
/// outside a launcher's environment (a worker sees its own `--nproc` and ignores it).
pub(crate) fn launch_here(nproc: Option<usize>) -> Option<usize> {
    nproc.filter(|&n| n > 1 && std::env::var_os("WORLD_SIZE").is_none())
}

/// Runs this command line in `n` local workers and waits for them; the torch threads of this
/// machine are split between them.
pub(crate) fn launch(n: usize, timeout: Duration, run_dir: &Path) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let launch = LocalLaunch {
        nproc: n,
        program: std::env::current_exe()?,
        args: std::env::args_os().skip(1).collect(),
        threads_per_worker: (cores / n).max(1),
        grace: timeout + Duration::from_secs(5),
    };
    eprintln!("launching {n} workers ({} torch threads each)", launch.threads_per_worker);
    let stop = crate::progress::stop_flag();
    let outcome = run_local(&launch, &stop)?;
    if outcome.success() {
        return Ok(());
    }
    let describe = |rank: usize| format!("rank {rank} {}", outcome.status[rank]);
    if let Some(rank) = outcome.first_failure {
        let mut msg = format!("{} (its error is above)", describe(rank));
        if !outcome.killed.is_empty() {
            msg.push_str(&format!("; killed after the grace period: ranks {:?}", outcome.killed));
        }
        bail!("{msg}");
    }
    if outcome.stopped || stop.load(Ordering::SeqCst) {
        bail!("stopped; continue exactly with `mmanet resume {} --nproc {n}`", run_dir.display());
    }
    let failed: Vec<String> =
        (0..n).filter(|&r| !outcome.status[r].success()).map(describe).collect();
    bail!("{}", failed.join(", "))
}

/// In a worker of a data-parallel run (`WORLD_SIZE` > 1): joins the process group the
/// environment describes, after arranging to die with an `--nproc` launcher and splitting the
/// torch threads as `OMP_NUM_THREADS` says. `None` for a single process.
pub(crate) fn join(cfg: &ValidConfig) -> Result<Option<DataParallel>> {
    if !DataParallel::in_env() {
        return Ok(None);
    }
    mmanet_train::launch::die_with_parent();
    if let Some(n) = std::env::var("OMP_NUM_THREADS").ok().and_then(|v| v.parse::<i32>().ok()) {
        tch::set_num_threads(n.max(1));
    }
    let dp = DataParallel::from_env(cfg.compute.collective_timeout(), cfg.device().is_cuda())?;
    tracing::info!(rank = dp.rank(), world = dp.world_size(), "joined the process group");
    Ok(Some(dp))
}
