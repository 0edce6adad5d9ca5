//! Every call of `ProcessGroup` between real processes over Gloo on 127.0.0.1.
//!
//! Each test spawns this test binary again as its ranks (`worker` below, selected by
//! `MMANET_SYS_WORKER=<scenario>`), with the launcher variables torchrun would set, and checks
//! their exit status. A worker checks its own results and exits 0 only when all of them hold;
//! a worker that outlives its limit is killed, so no test can hang CI.
#![allow(clippy::print_stderr)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mmanet_sys::{DistError, Op, ProcessGroup, ReduceOp, StoreHost, StoreRole};
use tch::{Device, Kind, Tensor};

#[path = "common/one_rank_sync_bn.rs"]
mod one_rank_sync_bn;

const WORKER: &str = "MMANET_SYS_WORKER";
/// Upper bound on any worker's life: a worker still running then is killed and the test fails.
const CHILD_LIMIT: Duration = Duration::from_secs(90);

// ------------------------------------------------------------------------------------------
// The parent side: spawning ranks and collecting their exit status.

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Rank {
    rank: usize,
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

fn spawn(scenario: &str, rank: usize, world: usize, port: u16, env: &[(&str, String)]) -> Rank {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "worker", "--nocapture", "--test-threads=1", "-q"])
        .env(WORKER, scenario)
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("OMP_NUM_THREADS", "1")
        .env_remove("TORCHELASTIC_USE_AGENT_STORE")
        .env_remove("GLOO_SOCKET_IFNAME")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut pipe, &mut s).ok();
        s
    });
    Rank { rank, child, stderr }
}

fn spawn_world(scenario: &str, world: usize, env: &[(&str, String)]) -> Vec<Rank> {
    let port = free_port();
    (0..world).map(|r| spawn(scenario, r, world, port, env)).collect()
}

/// Waits for every rank (killing any still alive after `limit`); returns rank, success and
/// stderr of each.
fn finish(ranks: Vec<Rank>, limit: Duration) -> Vec<(usize, bool, String)> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    for mut r in ranks {
        let status = loop {
            if let Some(s) = r.child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                r.child.kill().ok();
                r.child.wait().ok();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = r.stderr.join().unwrap();
        let ok = status.is_some_and(|s| s.success());
        let what = match status {
            Some(s) => format!("{s}"),
            None => format!("killed after {limit:?}"),
        };
        out.push((r.rank, ok, format!("rank {} ({what}):\n{stderr}", r.rank)));
    }
    out
}

fn assert_all_ok(results: &[(usize, bool, String)]) {
    for r in results {
        eprintln!("{}", r.2); // shown with --nocapture
    }
    let failed: Vec<&String> = results.iter().filter(|r| !r.1).map(|r| &r.2).collect();
    assert!(
        failed.is_empty(),
        "failed ranks:\n{}",
        failed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
}

// ------------------------------------------------------------------------------------------
// The tests.

#[test]
fn every_collective_with_two_ranks_from_env() {
    let started = Instant::now();
    assert_all_ok(&finish(spawn_world("collectives", 2, &[]), CHILD_LIMIT));
    eprintln!("2 ranks: {:?}", started.elapsed());
}

#[test]
fn every_collective_with_three_ranks_from_env() {
    let started = Instant::now();
    assert_all_ok(&finish(spawn_world("collectives", 3, &[]), CHILD_LIMIT));
    eprintln!("3 ranks: {:?}", started.elapsed());
}

/// torchrun's agent store: the launcher hosts the store, every rank (rank 0 too) joins as a
/// client, and keys carry the restart prefix, so two groups of different restart counts on
/// one store do not meet (each checks a sum only its own ranks give).
#[test]
fn agent_store_clients_keep_restart_attempts_apart() {
    let host = StoreHost::bind(0, Duration::from_secs(30)).unwrap();
    let port = host.port();
    assert_ne!(port, 0);
    let mut ranks = Vec::new();
    for attempt in ["0", "1"] {
        let env = [
            ("TORCHELASTIC_USE_AGENT_STORE", "True".to_string()),
            ("TORCHELASTIC_RESTART_COUNT", attempt.to_string()),
        ];
        for r in 0..2 {
            ranks.push(spawn("agent", r, 2, port, &env));
        }
    }
    assert_all_ok(&finish(ranks, CHILD_LIMIT));
    drop(host);
}

/// Rank 0 hosts the store, rank 1 never starts: the rendezvous fails within the timeout.
#[test]
fn a_rank_that_never_joins_times_out_the_host() {
    let port = free_port();
    assert_all_ok(&finish(vec![spawn("never_joins", 0, 2, port, &[])], CHILD_LIMIT));
}

/// Rank 1 finds no store (rank 0 never starts): its rendezvous fails within the timeout.
#[test]
fn a_rank_that_never_joins_times_out_the_clients() {
    let port = free_port();
    assert_all_ok(&finish(vec![spawn("never_joins", 1, 2, port, &[])], CHILD_LIMIT));
}

/// Rank 1 joins, then stops calling collectives: rank 0's all-reduce fails after the timeout,
/// naming the operation, and the group refuses later calls.
#[test]
fn a_hung_peer_times_out_the_collective() {
    let mut ranks = spawn_world("hang", 2, &[]);
    let mut hung = ranks.pop().unwrap();
    let results = finish(ranks, CHILD_LIMIT);
    // Rank 1 sleeps until killed; only rank 0's verdict counts.
    hung.child.kill().unwrap();
    hung.child.wait().unwrap();
    assert_all_ok(&results[..1]);
}

/// Rank 1 is killed (SIGKILL) in the middle of the run: rank 0's pending all-reduce fails
/// when the connection drops, well within the timeout.
#[test]
fn a_killed_peer_fails_the_survivor_within_the_timeout() {
    let dir = std::env::temp_dir().join(format!("mmanet-sys-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ready = dir.join("rank1-ready");
    let _ = std::fs::remove_file(&ready);
    let env = [("MMANET_SYS_READY", ready.display().to_string())];
    let mut ranks = spawn_world("killed", 2, &env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "rank 1 never got ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300)); // rank 0 is inside its all-reduce by now
    ranks[1].child.kill().unwrap();
    let results = finish(ranks, CHILD_LIMIT);
    assert_all_ok(&results[..1]);
    assert!(!results[1].1, "rank 1 was killed");
    std::fs::remove_dir_all(&dir).ok();
}

// ------------------------------------------------------------------------------------------
// The worker side. A worker returns an error string on any mismatch.

type Check = Result<(), String>;

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Check {
    if cond { Ok(()) } else { Err(what()) }
}

#[test]
fn worker() {
    let Ok(scenario) = std::env::var(WORKER) else {
        return; // an ordinary test run: the other tests start workers
    };
    let rank: usize = std::env::var("RANK").unwrap().parse().unwrap();
    let result = match scenario.as_str() {
        "collectives" => collectives(),
        "agent" => agent(),
        "never_joins" => never_joins(rank),
        "hang" => hang(rank),
        "killed" => killed(rank),
        other => Err(format!("unknown scenario {other}")),
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("rank {rank}, scenario {scenario}: {e}");
            std::process::exit(1)
        }
    }
}

fn dist(e: DistError) -> String {
    e.to_string()
}

fn values<T: tch::kind::Element + Copy>(t: &Tensor) -> Vec<T> {
    Vec::<T>::try_from(&t.flatten(0, -1)).unwrap()
}

/// Rank r's all-reduce input: `i * (r + 1) + r / 2` for element i (exact in f32 and f64).
fn input(shape: &[i64], kind: Kind, rank: usize) -> Tensor {
    let n: i64 = shape.iter().product();
    let r = rank as f64;
    (Tensor::arange(n, (Kind::Double, Device::Cpu)) * (r + 1.0) + r * 0.5)
        .to_kind(kind)
        .reshape(shape)
}

/// The exact sum of `input` over `world` ranks, computed in f64 by hand.
fn expected_sum(n: usize, world: usize) -> Vec<f64> {
    let w = world as f64;
    let factor: f64 = (1..=world).map(|r| r as f64).sum(); // sum of (r + 1)
    let offset: f64 = (0..world).map(|r| r as f64 * 0.5).sum();
    assert_eq!(factor, w * (w + 1.0) / 2.0);
    (0..n).map(|i| i as f64 * factor + offset).collect()
}

fn collectives() -> Check {
    let timeout = Duration::from_secs(30);
    let mut pg = ProcessGroup::from_env(timeout).map_err(dist)?;
    let (rank, world) = (pg.rank(), pg.world_size());
    let env_rank: usize = std::env::var("RANK").unwrap().parse().unwrap();
    let env_world: usize = std::env::var("WORLD_SIZE").unwrap().parse().unwrap();
    ensure(rank == env_rank && world == env_world && pg.local_rank() == env_rank, || {
        format!("rank {rank}/{world}, env {env_rank}/{env_world}")
    })?;
    ensure(pg.timeout() == timeout, || "timeout".into())?;
    let role = &pg.config().store;
    let want = if rank == 0 { StoreRole::Host } else { StoreRole::Client { prefix: None } };
    ensure(*role == want, || format!("store role {role:?}"))?;

    // all_reduce, sum and mean, f32 and f64, several shapes.
    for shape in [&[5_i64][..], &[2, 3], &[3, 2, 2]] {
        let n = shape.iter().product::<i64>() as usize;
        let sum = expected_sum(n, world);
        for kind in [Kind::Float, Kind::Double] {
            let mut t = input(shape, kind, rank);
            pg.all_reduce(&mut t, ReduceOp::Sum).map_err(dist)?;
            ensure(t.size() == shape && t.kind() == kind, || {
                format!("{:?} {:?}", t.size(), t.kind())
            })?;
            let got = values::<f64>(&t.to_kind(Kind::Double));
            ensure(got == sum, || format!("sum {kind:?} {shape:?}: {got:?} != {sum:?}"))?;

            let mut m = input(shape, kind, rank);
            pg.all_reduce(&mut m, ReduceOp::Mean).map_err(dist)?;
            // Mean is the sum divided by the world size, with libtorch's own division ...
            let want = Tensor::from_slice(&sum).to_kind(kind).reshape(shape) / world as f64;
            ensure(m.equal(&want), || format!("mean {kind:?} {shape:?}: {m} != {want}"))?;
            // ... which is the exact mean to rounding.
            for (g, s) in values::<f64>(&m.to_kind(Kind::Double)).iter().zip(&sum) {
                let exact = s / world as f64;
                let tol = if kind == Kind::Float { 1e-6 } else { 1e-15 } * exact.abs().max(1.0);
                ensure((g - exact).abs() <= tol, || format!("mean {g} vs {exact}"))?;
            }
        }
    }
    // Integers sum exactly too (i64 beyond f64's 2^53).
    let big = (1_i64 << 60) + rank as i64;
    let mut t = Tensor::from_slice(&[big, -(rank as i64)]);
    pg.all_reduce(&mut t, ReduceOp::Sum).map_err(dist)?;
    let w = world as i64;
    let want = vec![(1_i64 << 60) * w + w * (w - 1) / 2, -(w * (w - 1) / 2)];
    ensure(values::<i64>(&t) == want, || format!("i64 sum {t}"))?;

    // Refused locally, before any message is sent, so the group stays usable.
    let mut ints = Tensor::from_slice(&[1_i64, 2]);
    let e = pg.all_reduce(&mut ints, ReduceOp::Mean).unwrap_err();
    ensure(matches!(e, DistError::InvalidTensor { op: Op::AllReduce, .. }), || e.to_string())?;
    let mut strided = input(&[2, 3], Kind::Float, rank).tr();
    let e = pg.all_reduce(&mut strided, ReduceOp::Sum).unwrap_err();
    ensure(e.to_string().contains("not contiguous"), || e.to_string())?;
    let mut b = Tensor::from_slice(&[true]);
    let e = pg.broadcast(&mut b, 0).unwrap_err();
    ensure(matches!(e, DistError::InvalidTensor { op: Op::Broadcast, .. }), || e.to_string())?;
    let mut f = Tensor::zeros([1], (Kind::Float, Device::Cpu));
    let e = pg.broadcast(&mut f, world).unwrap_err();
    ensure(matches!(e, DistError::Config(_)), || e.to_string())?;

    // broadcast from rank 0 and from rank 1 (every other rank's values differ before).
    for root in [0, 1] {
        for (shape, kind) in [(&[4_i64][..], Kind::Float), (&[2, 2, 3], Kind::Double)] {
            let fill = |r: usize| input(shape, kind, r) * 10.0 + 1.0;
            let mut t = fill(rank);
            pg.broadcast(&mut t, root).map_err(dist)?;
            let want = fill(root);
            ensure(t.equal(&want), || format!("broadcast from {root}: {t} != {want}"))?;
        }
    }

    // barrier: rank 0 arrives 700 ms late; nobody leaves before it arrives.
    if rank == 0 {
        std::thread::sleep(Duration::from_millis(700));
    }
    let arrived = now_ms();
    pg.barrier().map_err(dist)?;
    let left = now_ms();
    let arrivals = pg.all_gather_u64(arrived).map_err(dist)?;
    ensure(left >= arrivals[0], || format!("left {left} before rank 0 arrived {}", arrivals[0]))?;

    // all_gather of host values, bit for bit.
    let u = pg.all_gather_u64(u64::MAX - rank as u64).map_err(dist)?;
    let want: Vec<u64> = (0..world).map(|r| u64::MAX - r as u64).collect();
    ensure(u == want, || format!("all_gather_u64 {u:?}"))?;
    let f = |r: usize| if r == 0 { -0.0 } else { r as f64 * 1.5e-300 - 0.25 };
    let g = pg.all_gather_f64(f(rank)).map_err(dist)?;
    let gb: Vec<u64> = g.iter().map(|v| v.to_bits()).collect();
    let wb: Vec<u64> = (0..world).map(|r| f(r).to_bits()).collect();
    ensure(gb == wb, || format!("all_gather_f64 {g:?}"))?;
    pg.barrier().map_err(dist)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn agent() -> Check {
    let attempt: f64 = std::env::var("TORCHELASTIC_RESTART_COUNT").unwrap().parse().unwrap();
    let mut pg = ProcessGroup::from_env(Duration::from_secs(30)).map_err(dist)?;
    let prefix = format!("/worker/attempt_{attempt}");
    let role = &pg.config().store;
    ensure(*role == StoreRole::Client { prefix: Some(prefix) }, || format!("{role:?}"))?;
    // Each group's sum is its own: 100 * attempt + rank over its two ranks.
    let mut t = Tensor::from_slice(&[100.0 * attempt + pg.rank() as f64]);
    pg.all_reduce(&mut t, ReduceOp::Sum).map_err(dist)?;
    let want = 200.0 * attempt + 1.0;
    ensure(values::<f64>(&t) == [want], || format!("attempt {attempt}: {t} != {want}"))?;
    pg.barrier().map_err(dist)
}

fn never_joins(rank: usize) -> Check {
    let timeout = Duration::from_secs(2);
    let port: u16 = std::env::var("MASTER_PORT").unwrap().parse().unwrap();
    let started = Instant::now();
    let e = ProcessGroup::new(rank, 2, "127.0.0.1", port, timeout).unwrap_err();
    let took = started.elapsed();
    eprintln!("rank {rank}: {e} after {took:?}");
    ensure(e.op() == Some(Op::Init) && e.is_timeout(), || format!("not an init timeout: {e}"))?;
    let text = e.to_string();
    ensure(text.contains("init") && text.contains("2s"), || text.clone())?;
    ensure(took >= timeout - Duration::from_millis(200), || format!("gave up early: {took:?}"))?;
    ensure(took <= timeout + Duration::from_secs(5), || format!("took {took:?}"))
}

fn hang(rank: usize) -> Check {
    let port: u16 = std::env::var("MASTER_PORT").unwrap().parse().unwrap();
    let mut pg =
        ProcessGroup::new(rank, 2, "127.0.0.1", port, Duration::from_secs(30)).map_err(dist)?;
    pg.barrier().map_err(dist)?;
    if rank == 1 {
        std::thread::sleep(Duration::from_secs(120)); // never answers; killed by the parent
        return Err("rank 1 was not killed".into());
    }
    let timeout = Duration::from_secs(3);
    pg.set_timeout(timeout).map_err(dist)?;
    let mut t = Tensor::ones([8], (Kind::Float, Device::Cpu));
    let started = Instant::now();
    let e = pg.all_reduce(&mut t, ReduceOp::Sum).unwrap_err();
    let took = started.elapsed();
    eprintln!("rank 0: {e} after {took:?}");
    let text = e.to_string();
    ensure(e.op() == Some(Op::AllReduce) && e.is_timeout(), || format!("not a timeout: {text}"))?;
    ensure(text.contains("all_reduce") && text.contains("3s"), || text.clone())?;
    ensure(took >= timeout - Duration::from_millis(200), || format!("gave up early: {took:?}"))?;
    ensure(took <= timeout + Duration::from_secs(5), || format!("took {took:?}"))?;
    // A failed group refuses further collectives instead of desynchronising.
    let again = pg.barrier().unwrap_err();
    ensure(matches!(again, DistError::Broken { op: Op::Barrier, .. }), || again.to_string())
}

fn killed(rank: usize) -> Check {
    let port: u16 = std::env::var("MASTER_PORT").unwrap().parse().unwrap();
    let timeout = Duration::from_secs(20);
    let mut pg = ProcessGroup::new(rank, 2, "127.0.0.1", port, timeout).map_err(dist)?;
    let mut t = Tensor::ones([1000], (Kind::Float, Device::Cpu));
    pg.all_reduce(&mut t, ReduceOp::Sum).map_err(dist)?;
    pg.barrier().map_err(dist)?;
    if rank == 1 {
        let ready = PathBuf::from(std::env::var("MMANET_SYS_READY").unwrap());
        touch(&ready);
        std::thread::sleep(Duration::from_secs(120)); // SIGKILLed by the parent meanwhile
        return Err("rank 1 was not killed".into());
    }
    let started = Instant::now();
    let e = pg.all_reduce(&mut t, ReduceOp::Sum).unwrap_err();
    let took = started.elapsed();
    eprintln!("rank 0: {e} after {took:?}");
    ensure(e.op() == Some(Op::AllReduce), || e.to_string())?;
    ensure(took < timeout, || format!("the survivor waited {took:?}, the timeout is {timeout:?}"))
}

fn touch(path: &Path) {
    std::fs::write(path, b"ready").unwrap();
}

/// A group joined with a CUDA device gets the NCCL backend where it is built and a GPU exists
/// (then a CUDA all-reduce goes through NCCL, a CPU one through Gloo); elsewhere joining fails
/// with an error saying why. One rank: NCCL cannot put two ranks on one GPU.
#[test]
fn cuda_nccl_joins_where_built_and_a_gpu_exists_else_says_why_not() {
    let mut cfg = mmanet_sys::Config::new(0, 1, "127.0.0.1", free_port(), Duration::from_secs(30));
    cfg.cuda_device = Some(0);
    match ProcessGroup::with_config(cfg) {
        Ok(mut pg) => {
            assert!(mmanet_sys::nccl_built() && tch::Cuda::is_available());
            let mut gpu = Tensor::ones([5], (Kind::Float, Device::Cuda(0))) * 3.0;
            pg.all_reduce(&mut gpu, ReduceOp::Sum).unwrap();
            assert_eq!(values::<f32>(&gpu.to_device(Device::Cpu)), [3.0; 5]);
            let mut cpu = Tensor::ones([2], (Kind::Float, Device::Cpu));
            pg.all_reduce(&mut cpu, ReduceOp::Mean).unwrap();
            assert_eq!(values::<f32>(&cpu), [1.0; 2]);
            pg.broadcast(&mut gpu, 0).unwrap();
            assert_eq!(values::<f32>(&gpu.to_device(Device::Cpu)), [3.0; 5]);
            assert_eq!(pg.all_gather_u64(7).unwrap(), [7]);
            pg.barrier().unwrap();
            // SyncBatchNorm on CUDA tensors: its all-reduces go through NCCL.
            let sync = pg.sync_batch_norm().unwrap();
            one_rank_sync_bn::assert_one_rank_sync_batch_norm_equals_batch_norm(
                &sync,
                Device::Cuda(0),
            );
            let mut other = Tensor::ones([2], (Kind::Float, Device::Cuda(0)));
            if tch::Cuda::device_count() > 1 {
                other = other.to_device(Device::Cuda(1));
                let e = pg.all_reduce(&mut other, ReduceOp::Sum).unwrap_err().to_string();
                assert!(e.contains("cuda:0"), "{e}");
            }
        }
        Err(e) => {
            let m = e.to_string();
            if mmanet_sys::nccl_built() {
                assert!(!tch::Cuda::is_available(), "a GPU exists, yet: {m}");
                assert!(m.to_lowercase().contains("cuda"), "{m}");
            } else {
                assert!(m.contains("NCCL") && m.contains("CPU libtorch"), "{m}");
            }
        }
    }
    // Without a CUDA device, a CUDA tensor is refused before the shim sees it.
    let pg = ProcessGroup::new(0, 1, "127.0.0.1", free_port(), Duration::from_secs(30));
    let mut pg = pg.unwrap();
    if tch::Cuda::is_available() {
        let mut gpu = Tensor::ones([2], (Kind::Float, Device::Cuda(0)));
        let e = pg.all_reduce(&mut gpu, ReduceOp::Sum).unwrap_err().to_string();
        assert!(e.contains("Gloo backend takes CPU tensors"), "{e}");
    }
}

/// A CUDA graph: where built and a GPU exists, `y = x * 2 + 1` captured once (running nothing)
/// replays on new values of `x` filled in place; elsewhere `new` says why not.
#[test]
fn cuda_graph_replays_captured_work_where_built_else_says_why_not() {
    match mmanet_sys::CudaGraph::new(0) {
        Ok(mut graph) => {
            assert!(mmanet_sys::cuda_graphs_built() && tch::Cuda::is_available());
            let d = Device::Cuda(0);
            let mut x = Tensor::ones([8], (Kind::Float, d));
            let mut y = Tensor::zeros([8], (Kind::Float, d));
            let _warm = &x * 2.0 + 1.0; // kernels loaded before the capture
            tch::Cuda::synchronize(0);
            graph.capture(|| y.copy_(&(&x * 2.0 + 1.0))).unwrap();
            tch::Cuda::synchronize(0);
            assert_eq!(values::<f32>(&y.to_device(Device::Cpu)), [0.0; 8], "capture runs nothing");
            for shift in [0.0, 5.0] {
                x.copy_(&(Tensor::arange(8, (Kind::Float, d)) + shift));
                graph.replay().unwrap();
                tch::Cuda::synchronize(0);
                let want: Vec<f32> =
                    (0..8).map(|i| 2.0 * (i as f32 + shift as f32) + 1.0).collect();
                assert_eq!(values::<f32>(&y.to_device(Device::Cpu)), want);
            }
            assert!(graph.capture(|| ()).is_err(), "a graph is captured once");
        }
        Err(e) => {
            let m = e.to_string();
            if mmanet_sys::cuda_graphs_built() {
                assert!(!tch::Cuda::is_available(), "a GPU exists, yet: {m}");
            } else {
                assert!(m.contains("not built") && m.contains("CPU libtorch"), "{m}");
            }
        }
    }
}
