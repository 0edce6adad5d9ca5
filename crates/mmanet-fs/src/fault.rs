//! The test-only fault hook: every operation of this crate calls this hook before it runs.
//!
//! Nothing happens unless a test asks for it, through the environment of a child process
//! (read once, at the first operation) or [`configure`] in-process:
//!
//! | variable | meaning |
//! | --- | --- |
//! | `MMANET_FAULT_TRACE=FILE` | append one line per operation to `FILE`: `INDEX OP PATH` |
//! | `MMANET_FAULT_AT=N` | act at operation `N` (0-based), before it runs |
//! | `MMANET_FAULT_ACTION=A` | what to do there: `pause` (default), `abort`, `enospc`, `eio` |
//!
//! - `pause` prints `mmanet-fault: paused at N: OP PATH` on stderr and sleeps until the
//!   process is killed: the test then sends SIGKILL, so the process dies at exactly that point
//!   with nothing flushed or cleaned up.
//! - `abort` calls [`std::process::abort`] there (no test needs a second process).
//! - `enospc` and `eio` make that one operation fail as a full or failing disk would
//!   (`No space left on device`, `Input/output error`; the message says it was injected).
//!
//! With none of the variables set, an operation costs one atomic load here.
//!
//! The operations of a single-threaded writer come in a fixed order, so the indices of an
//! uninterrupted run name the same operations in a rerun of the same command: a test counts
//! them once (`MMANET_FAULT_TRACE`) and then injects at each index in turn.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use crate::Op;

/// Environment variable: the trace file.
pub const ENV_TRACE: &str = "MMANET_FAULT_TRACE";
/// Environment variable: the operation index to act at.
pub const ENV_AT: &str = "MMANET_FAULT_AT";
/// Environment variable: the [`Action`] (`pause`, `abort`, `enospc`, `eio`).
pub const ENV_ACTION: &str = "MMANET_FAULT_ACTION";
/// What `pause` prints on stderr before it sleeps (followed by `N: OP PATH`).
pub const PAUSED: &str = "mmanet-fault: paused at ";

/// What happens at the chosen operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Announce on stderr and sleep until killed.
    Pause,
    /// Abort the process.
    Abort,
    /// Fail the operation with "No space left on device".
    NoSpace,
    /// Fail the operation with "Input/output error".
    Io,
}

impl Action {
    /// Parses `pause`, `abort`, `enospc`, `eio`.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "pause" => Some(Action::Pause),
            "abort" => Some(Action::Abort),
            "enospc" => Some(Action::NoSpace),
            "eio" => Some(Action::Io),
            _ => None,
        }
    }

    /// The injected error of a failing action.
    pub fn error(self) -> Option<io::Error> {
        match self {
            Action::NoSpace => Some(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (injected by MMANET_FAULT_AT)",
            )),
            Action::Io => {
                Some(io::Error::other("Input/output error (injected by MMANET_FAULT_AT)"))
            }
            Action::Pause | Action::Abort => None,
        }
    }
}

/// What a test asks of the hook.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Act at this operation index (0-based); `None` only counts.
    pub at: Option<u64>,
    /// What to do there.
    pub action: Option<Action>,
    /// Append `INDEX OP PATH` per operation to this file.
    pub trace: Option<PathBuf>,
}

impl Plan {
    /// Count (and remember) operations, change nothing.
    pub fn count_only() -> Plan {
        Plan::default()
    }

    /// Fail operation `at` with `action`'s error (or pause/abort there).
    pub fn act_at(at: u64, action: Action) -> Plan {
        Plan { at: Some(at), action: Some(action), trace: None }
    }

    fn from_env() -> Option<Plan> {
        let trace = std::env::var_os(ENV_TRACE).map(PathBuf::from);
        let at = std::env::var(ENV_AT).ok().and_then(|v| match v.trim().parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                tracing::warn!("{ENV_AT}={v:?} is not an operation index; ignored");
                None
            }
        });
        let action = std::env::var(ENV_ACTION).ok().and_then(|v| {
            let a = Action::parse(v.trim());
            if a.is_none() {
                tracing::warn!("{ENV_ACTION}={v:?} is not pause, abort, enospc or eio; ignored");
            }
            a
        });
        (trace.is_some() || at.is_some()).then_some(Plan { at, action, trace })
    }
}

struct State {
    plan: Plan,
    count: u64,
    trace_file: Option<File>,
    seen: Vec<(Op, PathBuf)>,
}

static INIT: Once = Once::new();
static ENABLED: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<Option<State>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

fn install(plan: Option<Plan>) {
    let state = plan.map(|plan| {
        let trace_file = plan.trace.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .inspect_err(|e| tracing::warn!(path = %p.display(), error = %e, "fault trace"))
                .ok()
        });
        State { plan, count: 0, trace_file, seen: Vec::new() }
    });
    ENABLED.store(state.is_some(), Ordering::SeqCst);
    *lock() = state;
}

/// Replaces the environment's plan (in-process tests; `None` switches the hook off) and
/// restarts the count. Operations on other threads of the process are counted too, so a test
/// using this runs alone in its process.
pub fn configure(plan: Option<Plan>) {
    INIT.call_once(|| {});
    install(plan);
}

/// Operations seen since the plan was installed (0 when the hook is off).
pub fn count() -> u64 {
    lock().as_ref().map_or(0, |s| s.count)
}

/// The operations seen since the plan was installed, in order.
pub fn seen() -> Vec<(Op, PathBuf)> {
    lock().as_ref().map_or_else(Vec::new, |s| s.seen.clone())
}

/// The hook: counts `op` and, at the planned index, pauses, aborts or fails it.
pub(crate) fn point(op: Op, path: &Path) -> io::Result<()> {
    INIT.call_once(|| install(Plan::from_env()));
    if !ENABLED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let (index, action) = {
        let mut guard = lock();
        let Some(s) = guard.as_mut() else { return Ok(()) };
        let index = s.count;
        s.count += 1;
        s.seen.push((op, path.to_path_buf()));
        if let Some(f) = &mut s.trace_file {
            let _ = writeln!(f, "{index} {op} {}", path.display());
        }
        let action = (s.plan.at == Some(index)).then(|| s.plan.action.unwrap_or(Action::Pause));
        (index, action)
    };
    match action {
        None => Ok(()),
        Some(Action::Pause) => {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "{PAUSED}{index}: {op} {}", path.display());
            let _ = err.flush();
            drop(err);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        Some(Action::Abort) => std::process::abort(),
        Some(a) => {
            tracing::warn!(index, %op, path = %path.display(), "injected file-system error");
            Err(a.error().expect("a failing action"))
        }
    }
}
