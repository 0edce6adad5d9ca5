//! Local data-parallel launch (`mmanet train --nproc N`): `N` worker processes of a program on
//! this machine, rendezvousing as torchrun's workers do, and the process control around them
//! (children die with the parent, stop requests are forwarded, a failed rank stops the rest).
//!
//! The launcher hosts the TCPStore itself ([`mmanet_sys::StoreHost`], as torchrun's agent
//! does) and gives every worker the torchrun environment (`RANK`, `LOCAL_RANK`, `WORLD_SIZE`,
//! `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`, `TORCHELASTIC_USE_AGENT_STORE=True`,
//! `TORCHELASTIC_RESTART_COUNT=0`), so a worker cannot tell the two launchers apart.
//!
//! This module holds the crate's second `unsafe` exception (docs/architecture.md, invariant
//! 12): `prctl(PR_SET_PDEATHSIG)` and `kill(2)`, neither touching memory.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::TrainError;

/// The variable naming the launcher's pid in each worker ([`die_with_parent`] checks it).
pub const PARENT_PID_VAR: &str = "MMANET_LAUNCHER_PID";

/// What [`run_local`] starts.
#[derive(Clone, Debug)]
pub struct LocalLaunch {
    /// Worker processes (>= 1).
    pub nproc: usize,
    /// The worker program (usually `std::env::current_exe()`).
    pub program: PathBuf,
    /// Its arguments (the same for every rank).
    pub args: Vec<OsString>,
    /// libtorch threads per worker (`OMP_NUM_THREADS`).
    pub threads_per_worker: usize,
    /// How long the others may take to stop after one rank failed (the collective timeout
    /// plus a margin); then they are killed.
    pub grace: Duration,
}

/// How each rank ended.
#[derive(Debug)]
pub struct LaunchOutcome {
    /// Exit status per rank.
    pub status: Vec<ExitStatus>,
    /// The first rank seen failing (before any stop request), if any.
    pub first_failure: Option<usize>,
    /// Ranks the launcher killed after the grace period.
    pub killed: Vec<usize>,
    /// Whether a stop was requested (and forwarded as SIGTERM).
    pub stopped: bool,
}

impl LaunchOutcome {
    /// Whether every rank exited with success.
    pub fn success(&self) -> bool {
        self.status.iter().all(ExitStatus::success)
    }
}

/// Runs `launch.nproc` workers until all have exited. When `stop` becomes true, each live
/// worker gets one SIGTERM (they agree on a step, checkpoint and exit); when a worker fails
/// first, the others get `launch.grace` to notice (their next collective fails) and are then
/// killed, so no worker is left behind.
pub fn run_local(launch: &LocalLaunch, stop: &AtomicBool) -> Result<LaunchOutcome, TrainError> {
    let n = launch.nproc.max(1);
    // The store lives as long as the workers; it waits for no one itself.
    let host = mmanet_sys::StoreHost::bind(0, launch.grace)
        .map_err(|source| TrainError::Distributed { rank: 0, world: n, source })?;
    let port = host.port().to_string();
    let mut children: Vec<Option<Child>> = Vec::with_capacity(n);
    for rank in 0..n {
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", n.to_string())
            .env("LOCAL_WORLD_SIZE", n.to_string())
            .env("GROUP_RANK", "0")
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .env("TORCHELASTIC_USE_AGENT_STORE", "True")
            .env("TORCHELASTIC_RESTART_COUNT", "0")
            .env("OMP_NUM_THREADS", launch.threads_per_worker.max(1).to_string())
            .env(PARENT_PID_VAR, std::process::id().to_string());
        // Their own process group: a terminal's Ctrl-C reaches the launcher only, which
        // forwards exactly one SIGTERM (two would make a worker quit without a checkpoint).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        match cmd.spawn() {
            Ok(c) => children.push(Some(c)),
            Err(e) => {
                for c in children.iter_mut().flatten() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(TrainError::io(&launch.program, e));
            }
        }
    }
    tracing::info!(nproc = n, port = host.port(), "workers started");
    let mut status: Vec<Option<ExitStatus>> = vec![None; n];
    let mut first_failure = None;
    let mut deadline: Option<Instant> = None;
    let mut forwarded = false;
    let mut killed = Vec::new();
    while status.iter().any(Option::is_none) {
        if stop.load(Ordering::SeqCst) && !forwarded {
            forwarded = true;
            for c in children.iter().flatten() {
                terminate(c.id());
            }
        }
        for (rank, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            if let Ok(Some(s)) = child.try_wait() {
                status[rank] = Some(s);
                *slot = None;
                if !s.success() && first_failure.is_none() && !forwarded {
                    tracing::error!(rank, status = %s, "worker failed; stopping the others");
                    first_failure = Some(rank);
                    deadline = Some(Instant::now() + launch.grace);
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            for (rank, slot) in children.iter_mut().enumerate() {
                if let Some(child) = slot {
                    let _ = child.kill();
                    status[rank] = child.wait().ok();
                    killed.push(rank);
                    *slot = None;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(host);
    let status = status.into_iter().map(|s| s.expect("every rank was waited for")).collect();
    Ok(LaunchOutcome { status, first_failure, killed, stopped: forwarded })
}

/// Sends SIGTERM to `pid` (a worker this process started).
fn terminate(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) takes plain integers and touches no memory of this process; `pid` is a
    // child we spawned and have not yet waited for, so it cannot name a recycled process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// In a worker started by [`run_local`]: dies (SIGKILL) when the launcher dies, and exits at
/// once if it is already gone. Does nothing in a process another launcher started.
pub fn die_with_parent() {
    let Some(parent) = std::env::var(PARENT_PID_VAR).ok().and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG, sig) reads only its integer arguments; getppid has none.
    let now = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        libc::getppid()
    };
    if now != parent {
        // The launcher died before the death signal was armed.
        std::process::exit(1);
    }
}
