//! `cargo xtask bench serve`: the load test of `mmanet serve` against a Python anchor (issue 17).
//!
//! For each model (the `mfeat3-mmanet` architecture and the CASIA-SURF one, each randomly
//! initialised from a seed by the `bench_model` example: throughput does not depend on the
//! weights) it
//! 1. writes the model file and seeded request bodies with mixed modality subsets
//!    (`benches/serve/requests.py`);
//! 2. starts three servers on loopback, pinned to core 0 with one torch thread each: ours
//!    unbatched (`--max-batch 1`), ours batched (`--max-batch 32 --max-delay-ms 2`), and the
//!    anchor (`benches/serve/anchor.py`: FastAPI + uvicorn + PyTorch, one process, no batching);
//! 3. checks that the anchor and ours give the same probabilities on 10 inputs;
//! 4. drives each server with `load_gen` (the `mmanet-serve` example: a closed loop of C clients
//!    on one tokio thread) pinned to core 1, at each concurrency for a fixed time, the three
//!    servers interleaved per concurrency;
//! 5. writes `target/bench/serve/summary.json` and `summary.md` with the ratios and targets.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::util::{cargo, project_root, sh};

const USAGE: &str = "usage: cargo xtask bench serve [--duration-s S] [--concurrency 1,8,64] \
                     [--models mfeat3,surf] [--quick]";

/// Options of `cargo xtask bench serve`.
#[derive(Debug)]
struct Options {
    duration_s: f64,
    concurrency: Vec<usize>,
    models: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Options {
            duration_s: 10.0,
            concurrency: vec![1, 8, 64],
            models: vec!["mfeat3".into(), "surf".into()],
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().with_context(|| format!("{a} needs a value\n{USAGE}"));
            match a.as_str() {
                "--duration-s" => o.duration_s = value()?.parse()?,
                "--concurrency" => {
                    o.concurrency =
                        value()?.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?
                }
                "--models" => o.models = value()?.split(',').map(str::to_string).collect(),
                "--quick" => o.duration_s = 3.0,
                other => bail!("bench serve: unknown option `{other}`\n{USAGE}"),
            }
        }
        if o.duration_s <= 0.0 || o.concurrency.is_empty() || o.concurrency.contains(&0) {
            bail!("bench serve: the duration and every concurrency must be positive");
        }
        for m in &o.models {
            if model_preset(m).is_none() {
                bail!("bench serve: unknown model `{m}` (mfeat3, surf)");
            }
        }
        Ok(o)
    }
}

/// Our server's variants: name, `--max-batch`, `--max-delay-ms`. `ours-batched` is the default
/// (wait up to 2 ms for more requests after the first of a batch); `ours-greedy` takes only
/// what is queued when the model thread is free (`--max-delay-ms 0`).
const OURS: &[(&str, &str, &str)] =
    &[("ours-unbatched", "1", "0"), ("ours-batched", "32", "2"), ("ours-greedy", "32", "0")];

/// The preset whose architecture and input spec a bench model uses.
fn model_preset(name: &str) -> Option<&'static str> {
    match name {
        "mfeat3" => Some("mfeat3-mmanet"),
        "surf" => Some("surf-mmanet"),
        _ => None,
    }
}

/// One server under test.
struct Server {
    variant: &'static str,
    url: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Status code of `GET path` on `addr`, or `None` if nothing answers.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn start(
    variant: &'static str,
    mut cmd: Command,
    port: u16,
    ready_path: &str,
    log: &Path,
) -> Result<Server> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log_file = std::fs::File::create(log)?;
    eprintln!("$ {cmd:?}");
    let child = cmd
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start the {variant} server"))?;
    let mut server = Server { variant, url: format!("http://{addr}/v1/predict"), child };
    let t0 = Instant::now();
    while http_status(addr, ready_path) != Some(200) {
        if let Some(status) = server.child.try_wait()? {
            bail!("the {variant} server exited ({status}); its log: {}", log.display());
        }
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("the {variant} server was not ready within 120 s; its log: {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("bench serve: {variant} ready at {addr} after {:.1} s", t0.elapsed().as_secs_f64());
    Ok(server)
}

fn json_line(cmd: &mut Command) -> Result<Value> {
    let line = format!("{cmd:?}");
    let out =
        cmd.stderr(Stdio::inherit()).output().with_context(|| format!("cannot run {line}"))?;
    if !out.status.success() {
        bail!("command failed ({}): {line}", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| l.starts_with('{')).context("no JSON line")?;
    Ok(serde_json::from_str(last)?)
}

/// `cargo xtask bench serve ...`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let root = project_root();
    let out = root.join("target/bench/serve");
    std::fs::create_dir_all(&out)?;
    if opts.models.iter().any(|m| m == "mfeat3") {
        crate::data::run(&["fetch".into(), "mfeat".into()])?;
    }
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "mmanet",
        "--bin",
        "mmanet",
        "-p",
        "mmanet-train",
        "--example",
        "bench_model",
        "-p",
        "mmanet-serve",
        "--example",
        "load_gen",
    ]))?;
    let release = root.join("target/release");
    let python = crate::bench::ensure_pytorch_env()?;
    let py = |script: &str| {
        let mut c = Command::new("python3");
        c.arg(root.join(script)).env("PYTHONPATH", &python).env("OMP_NUM_THREADS", "1");
        c
    };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let pin = |core: usize, mut cmd: Command| -> Command {
        if cores < 2 {
            return cmd; // one core: nothing to pin apart
        }
        let mut t = Command::new("taskset");
        t.args(["-c", &core.to_string()]).arg(cmd.get_program()).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => t.env(k, v),
                None => t.env_remove(k),
            };
        }
        cmd = t;
        cmd
    };

    let mut results = Vec::new();
    for model in &opts.models {
        let preset = model_preset(model).expect("checked");
        let file = out.join(format!("{model}.safetensors"));
        sh(Command::new(release.join("examples/bench_model"))
            .args(["--preset", preset, "--seed", "7", "--out"])
            .arg(&file))?;
        let bodies = out.join(format!("{model}-bodies.jsonl"));
        sh(py("benches/serve/requests.py")
            .arg(&file)
            .args(["--n", "64", "--seed", "1", "--out"])
            .arg(&bodies))?;

        let mut servers = Vec::new();
        let port = free_port()?;
        let mut anchor = py("benches/serve/anchor.py");
        anchor.arg(&file).args(["--threads", "1", "--port", &port.to_string()]);
        let log = out.join(format!("{model}-python.log"));
        servers.push(start("python", pin(0, anchor), port, "/healthz", &log)?);
        for &(variant, max_batch, max_delay_ms) in OURS {
            let port = free_port()?;
            let mut c = Command::new(release.join("mmanet"));
            c.arg("serve").arg(&file).args(["--threads", "1", "--queue", "1024"]);
            c.args(["--max-batch", max_batch, "--max-delay-ms", max_delay_ms]);
            c.args(["--addr", &format!("127.0.0.1:{port}")]).env("OMP_NUM_THREADS", "1");
            let log = out.join(format!("{model}-{variant}.log"));
            servers.push(start(variant, pin(0, c), port, "/readyz", &log)?);
        }
        let load_gen = release.join("examples/load_gen");
        let check = json_line(
            Command::new(&load_gen)
                .arg("check")
                .args([&servers[0].url, &servers[1].url])
                .arg(&bodies)
                .args(["--n", "10"]),
        )?;
        eprintln!("bench serve: {model}: python vs ours on 10 inputs: {check}");
        let max_diff = check["max_abs_prob_diff"].as_f64().unwrap_or(f64::NAN);
        if max_diff.is_nan() || max_diff > 1e-4 || check["same_class"] != check["inputs"] {
            bail!("bench serve: {model}: the anchor and ours disagree on 10 inputs: {check}");
        }
        let mut runs = Vec::new();
        for &c in &opts.concurrency {
            for s in &servers {
                let mut cmd = Command::new(&load_gen);
                cmd.arg("run").arg(&s.url).arg(&bodies).args([
                    "--concurrency",
                    &c.to_string(),
                    "--duration-s",
                    &opts.duration_s.to_string(),
                    "--warmup-s",
                    "1",
                ]);
                let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
                let mut r = json_line(&mut pin(1, cmd))?;
                r["variant"] = json!(s.variant);
                r["model"] = json!(model);
                r["loadavg_before"] = json!(loadavg.split_whitespace().next());
                eprintln!("bench serve: {model} {} c={c}: {r}", s.variant);
                runs.push(r);
            }
        }
        drop(servers);
        results.push(json!({"model": model, "preset": preset, "check": check, "runs": runs}));
    }
    let summary = json!({
        "machine": crate::bench::machine(),
        "duration_s": opts.duration_s,
        "pinning": if cores >= 2 { "servers on core 0 (1 torch thread), load generator on core 1" } else { "none (one core)" },
        "models": results,
    });
    crate::util::write(out.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    let md = markdown(&summary);
    crate::util::write(out.join("summary.md"), &md)?;
    println!("{md}");
    Ok(())
}

fn find<'a>(runs: &'a [Value], variant: &str, c: u64) -> Option<&'a Value> {
    runs.iter().find(|r| r["variant"] == variant && r["concurrency"].as_u64() == Some(c))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// The summary table: per model and concurrency, throughput and p50/p99 of each server, and
/// the three ratios the issue asks for; then the targets, met or missed.
fn markdown(s: &Value) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "Machine: {}; {}; {} s per point.\n\n",
        s["machine"], s["pinning"], s["duration_s"]
    ));
    for m in s["models"].as_array().into_iter().flatten() {
        let runs = m["runs"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        md.push_str(&format!(
            "### {} (preset `{}`; anchor check on 10 inputs: max |Δp| = {:.1e})\n\n",
            m["model"].as_str().unwrap_or("?"),
            m["preset"].as_str().unwrap_or("?"),
            f(&m["check"], "max_abs_prob_diff"),
        ));
        md.push_str(
            "| C | server | req/s | p50 ms | p99 ms | vs Python | vs ours unbatched | \
             load-generator CPU s |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        let mut cs: Vec<u64> = runs.iter().filter_map(|r| r["concurrency"].as_u64()).collect();
        cs.dedup();
        for c in cs {
            let t = |v: &str| find(runs, v, c).map_or(f64::NAN, |r| f(r, "throughput_rps"));
            for r in runs.iter().filter(|r| r["concurrency"].as_u64() == Some(c)) {
                md.push_str(&format!(
                    "| {c} | {} | {:.0} | {:.2} | {:.2} | {:.2}x | {:.2}x | {:.2} |\n",
                    r["variant"].as_str().unwrap_or("?"),
                    f(r, "throughput_rps"),
                    f(r, "p50_ms"),
                    f(r, "p99_ms"),
                    f(r, "throughput_rps") / t("python"),
                    f(r, "throughput_rps") / t("ours-unbatched"),
                    f(r, "client_cpu_s"),
                ));
            }
        }
        md.push('\n');
        md.push_str(&targets(m["model"].as_str().unwrap_or(""), runs));
        md.push('\n');
    }
    md
}

/// The targets for one model, each evaluated for every variant of ours (met by which,
/// missed by which, with the figures).
fn targets(model: &str, runs: &[Value]) -> String {
    let mut out = String::new();
    let mut line = |what: String, test: &dyn Fn(&str) -> Option<(bool, String)>| {
        let mut parts = Vec::new();
        for &(v, _, _) in OURS {
            if let Some((ok, figures)) = test(v) {
                parts.push(format!("{v} {} ({figures})", if ok { "**met**" } else { "missed" }));
            }
        }
        if !parts.is_empty() {
            out.push_str(&format!("- {what}: {}\n", parts.join("; ")));
        }
    };
    let rps = |r: &Value| f(r, "throughput_rps");
    match model {
        "mfeat3" => {
            for c in [1u64, 8, 64] {
                line(
                    format!("C = {c}, at least 3x Python's throughput at equal or lower p99"),
                    &|v| {
                        let (py, r) = (find(runs, "python", c)?, find(runs, v, c)?);
                        let ratio = rps(r) / rps(py);
                        let ok = ratio >= 3.0 && f(r, "p99_ms") <= f(py, "p99_ms");
                        Some((
                            ok,
                            format!(
                                "{ratio:.2}x, p99 {:.2} vs {:.2} ms",
                                f(r, "p99_ms"),
                                f(py, "p99_ms")
                            ),
                        ))
                    },
                );
            }
        }
        "surf" => {
            line("C = 8, at least 1.3x Python's throughput".into(), &|v| {
                let (py, r) = (find(runs, "python", 8)?, find(runs, v, 8)?);
                let ratio = rps(r) / rps(py);
                Some((ratio >= 1.3, format!("{ratio:.2}x")))
            });
            line("p99 at C = 8 within 2x of the C = 1 p50".into(), &|v| {
                let (r8, r1) = (find(runs, v, 8)?, find(runs, v, 1)?);
                let (p99, p50) = (f(r8, "p99_ms"), f(r1, "p50_ms"));
                Some((p99 <= 2.0 * p50, format!("{p99:.1} vs 2 x {p50:.1} ms")))
            });
        }
        _ => {}
    }
    out
}
