//! The HTTP load generator of `cargo xtask bench serve`: a closed loop of `C` concurrent
//! clients (each sends a request, waits for the answer, sends the next) on one tokio thread,
//! so that `taskset` can pin it to its own core; request bodies are taken round-robin from a
//! JSON-lines file (one `POST /v1/predict` body per line).
//!
//! ```text
//! load_gen run URL BODIES --concurrency C --duration-s S [--warmup-s W]
//! load_gen check URL_A URL_B BODIES [--n 10]
//! ```
//!
//! `run` prints one JSON line: requests, errors, throughput, latency p50/p90/p99/max (ms) and
//! the generator's own CPU seconds. `check` sends the first `n` bodies to both servers and
//! prints the largest absolute difference of their probabilities and whether the classes agree.

// A command-line tool: its output is the JSON line (or path) it prints.
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match args.first().map(String::as_str) {
        Some("run") => rt.block_on(run(&args[1..])),
        Some("check") => rt.block_on(check(&args[1..])),
        _ => Err("usage: load_gen run URL BODIES --concurrency C --duration-s S | \
                  load_gen check URL_A URL_B BODIES [--n N]"
            .into()),
    }
}

fn bodies(path: &str) -> BoxResult<Vec<Arc<String>>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let v: Vec<Arc<String>> =
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| Arc::new(l.to_string())).collect();
    if v.is_empty() {
        return Err(format!("{path}: no request bodies").into());
    }
    Ok(v)
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> BoxResult<T>
where
    T::Err: std::fmt::Display,
{
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let v = args.get(i + 1).ok_or(format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v}: {e}").into())
        }
        None => default.ok_or_else(|| format!("{name} is required").into()),
    }
}

/// User + system CPU seconds of this process (`/proc/self/stat`, USER_HZ = 100 on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // utime, stime: fields 14 and 15 of the whole line
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(args: &[String]) -> BoxResult<()> {
    let (url, path) = match args {
        [u, p, ..] => (u.clone(), p.as_str()),
        _ => return Err("run URL BODIES ...".into()),
    };
    let concurrency: usize = flag(args, "--concurrency", None)?;
    let duration = Duration::from_secs_f64(flag(args, "--duration-s", None)?);
    let warmup = Duration::from_secs_f64(flag(args, "--warmup-s", Some(1.0))?);
    let bodies = bodies(path)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
        let (recording, stop) = (recording.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[i % bodies.len()].as_str().to_owned();
                i += concurrency;
                let t = Instant::now();
                let ok = match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if recording.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                    if ok {
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(warmup).await;
    let cpu0 = cpu_seconds();
    recording.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    lat.sort_by(f64::total_cmp);
    let n = lat.len();
    println!(
        "{}",
        json!({
            "concurrency": concurrency,
            "requests": n,
            "errors": errors,
            "duration_s": elapsed,
            "throughput_rps": n as f64 / elapsed,
            "p50_ms": percentile(&lat, 0.50),
            "p90_ms": percentile(&lat, 0.90),
            "p99_ms": percentile(&lat, 0.99),
            "max_ms": lat.last().copied().unwrap_or(f64::NAN),
            "client_cpu_s": cpu,
        })
    );
    Ok(())
}

async fn predict(client: &reqwest::Client, url: &str, body: &str) -> BoxResult<Value> {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if !status.is_success() {
        return Err(format!("{url}: {status}: {v}").into());
    }
    Ok(v)
}

async fn check(args: &[String]) -> BoxResult<()> {
    let (a, b, path) = match args {
        [a, b, p, ..] => (a.as_str(), b.as_str(), p.as_str()),
        _ => return Err("check URL_A URL_B BODIES [--n N]".into()),
    };
    let n: usize = flag(args, "--n", Some(10))?;
    let client = reqwest::Client::new();
    let mut max_abs = 0f64;
    let mut same_class = 0;
    let bodies = bodies(path)?;
    let n = n.min(bodies.len());
    for body in &bodies[..n] {
        let (pa, pb) = (predict(&client, a, body).await?, predict(&client, b, body).await?);
        if pa["class"] == pb["class"] {
            same_class += 1;
        }
        let probs = pa["probabilities"].as_object().ok_or("no probabilities")?;
        for (k, va) in probs {
            let vb = pb["probabilities"][k].as_f64().ok_or(format!("{b}: no probability {k}"))?;
            max_abs = max_abs.max((va.as_f64().unwrap_or(f64::NAN) - vb).abs());
        }
        if pa["present"] != pb["present"] {
            return Err(format!("present differs: {} vs {}", pa["present"], pb["present"]).into());
        }
    }
    println!("{}", json!({"inputs": n, "max_abs_prob_diff": max_abs, "same_class": same_class}));
    Ok(())
}
