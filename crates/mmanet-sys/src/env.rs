//! The launcher environment torchrun (and `torch.distributed.launch`, SLURM recipes, our own
//! spawner) sets for each worker, parsed into a [`Config`].

use std::net::IpAddr;
use std::time::Duration;

use crate::error::DistError;

/// Which side of the TCPStore rendezvous this process takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreRole {
    /// Host the store on `master_port` (rank 0 when no launcher agent hosts it).
    Host,
    /// Connect as a client; keys go under `prefix` when one is given (torchrun's agent store
    /// uses `/worker/attempt_<restart count>`).
    Client {
        /// Key prefix, without the trailing `/` c10d's `PrefixStore` adds.
        prefix: Option<String>,
    },
}

/// The network interface Gloo binds its connections to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlooDevice {
    /// c10d's default: this machine's hostname if it resolves to a bindable address, else the
    /// loopback (what PyTorch uses without `GLOO_SOCKET_IFNAME`).
    Default,
    /// A named interface (`GLOO_SOCKET_IFNAME`, e.g. `eth0`).
    Interface(String),
    /// The interface that owns a host name or address (`127.0.0.1` for one machine).
    Hostname(String),
}

/// Everything a process group needs; [`Config::new`] and [`Config::from_env`] fill it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This process's rank, `0..world_size`.
    pub rank: usize,
    /// The number of processes.
    pub world_size: usize,
    /// The rank within this machine (`LOCAL_RANK`; picks the GPU on CUDA).
    pub local_rank: usize,
    /// Where the TCPStore listens.
    pub master_addr: String,
    /// The TCPStore's port.
    pub master_port: u16,
    /// Applied to the rendezvous and to every collective.
    pub timeout: Duration,
    /// Host or join the store.
    pub store: StoreRole,
    /// Gloo's interface.
    pub device: GlooDevice,
    /// Gloo's worker threads (PyTorch's default is 2).
    pub gloo_threads: usize,
    /// The CUDA device of this rank: the group then also gets an NCCL backend, which takes the
    /// collectives on CUDA tensors (needs mmanet-sys built against the CUDA libtorch,
    /// [`crate::nccl_built`]). `None`: Gloo alone, CPU tensors only.
    pub cuda_device: Option<usize>,
}

impl Config {
    /// A group on `master_addr:master_port` where rank 0 hosts the store; Gloo binds to the
    /// loopback when `master_addr` is a loopback address, else to c10d's default interface.
    pub fn new(
        rank: usize,
        world_size: usize,
        master_addr: &str,
        master_port: u16,
        timeout: Duration,
    ) -> Self {
        Config {
            rank,
            world_size,
            local_rank: rank,
            master_addr: master_addr.to_string(),
            master_port,
            timeout,
            store: if rank == 0 { StoreRole::Host } else { StoreRole::Client { prefix: None } },
            device: default_device(master_addr),
            gloo_threads: 2,
            cuda_device: None,
        }
    }

    /// Reads `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` (required) and `LOCAL_RANK`
    /// (default: `RANK`) from the process environment. With `TORCHELASTIC_USE_AGENT_STORE=True`
    /// (torchrun) every rank connects as a client and keys are prefixed with
    /// `/worker/attempt_<TORCHELASTIC_RESTART_COUNT>`, as PyTorch does; `GLOO_SOCKET_IFNAME`
    /// (first name of a comma-separated list) picks Gloo's interface.
    pub fn from_env(timeout: Duration) -> Result<Self, DistError> {
        Self::from_lookup(|k| std::env::var(k).ok(), timeout)
    }

    /// [`Config::from_env`] over any variable lookup (tests pass a map).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        timeout: Duration,
    ) -> Result<Self, DistError> {
        let rank: usize = parse(&get, "RANK")?;
        let world_size: usize = parse(&get, "WORLD_SIZE")?;
        let local_rank: usize = match get("LOCAL_RANK") {
            Some(_) => parse(&get, "LOCAL_RANK")?,
            None => rank,
        };
        let master_addr = required(&get, "MASTER_ADDR")?;
        if master_addr.trim().is_empty() {
            return Err(DistError::Env { var: "MASTER_ADDR", problem: "is empty".into() });
        }
        let master_port: u16 = parse(&get, "MASTER_PORT")?;
        if master_port == 0 {
            return Err(DistError::Env { var: "MASTER_PORT", problem: "is 0".into() });
        }
        if world_size == 0 {
            return Err(DistError::Env { var: "WORLD_SIZE", problem: "is 0".into() });
        }
        if rank >= world_size {
            return Err(DistError::Env {
                var: "RANK",
                problem: format!("{rank} is not below WORLD_SIZE={world_size}"),
            });
        }
        let agent = get("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v == "True");
        let store = if agent {
            let attempt: u64 = parse(&get, "TORCHELASTIC_RESTART_COUNT")?;
            StoreRole::Client { prefix: Some(format!("/worker/attempt_{attempt}")) }
        } else if rank == 0 {
            StoreRole::Host
        } else {
            StoreRole::Client { prefix: None }
        };
        let device = match get("GLOO_SOCKET_IFNAME") {
            Some(v) if !v.trim().is_empty() => {
                let first = v.split(',').next().unwrap_or_default().trim().to_string();
                GlooDevice::Interface(first)
            }
            _ => default_device(&master_addr),
        };
        Ok(Config {
            rank,
            world_size,
            local_rank,
            master_addr,
            master_port,
            timeout,
            store,
            device,
            gloo_threads: 2,
            cuda_device: None,
        })
    }

    /// Checks the values every constructor relies on.
    pub fn validate(&self) -> Result<(), DistError> {
        if self.world_size == 0 || self.world_size > i32::MAX as usize {
            return Err(DistError::Config(format!("world size {}", self.world_size)));
        }
        if self.rank >= self.world_size {
            return Err(DistError::Config(format!(
                "rank {} is not below the world size {}",
                self.rank, self.world_size
            )));
        }
        if self.timeout.as_millis() == 0 {
            return Err(DistError::Config("the timeout must be at least 1 ms".into()));
        }
        if self.master_addr.contains('\0') || self.master_addr.is_empty() {
            return Err(DistError::Config(format!("master address {:?}", self.master_addr)));
        }
        if !(1..=64).contains(&self.gloo_threads) {
            return Err(DistError::Config(format!("{} Gloo threads", self.gloo_threads)));
        }
        Ok(())
    }

    /// [`Config::cuda_device`] against the `count` CUDA devices this machine has: a rank
    /// whose device does not exist (more workers on a machine than it has GPUs) is an error
    /// naming both, instead of CUDA's "invalid device ordinal" from inside the join.
    pub fn check_cuda_device(&self, count: usize) -> Result<(), DistError> {
        match self.cuda_device {
            Some(d) if d >= count => Err(DistError::Config(format!(
                "rank {} (LOCAL_RANK {}) trains on cuda:{d}, but this machine has {count} CUDA \
                 device(s): start at most {count} workers per machine (`mmanet train --nproc`, \
                 torchrun's `--nproc_per_node`)",
                self.rank, self.local_rank
            ))),
            _ => Ok(()),
        }
    }
}

/// Whether `addr` names this machine's loopback (`127.x.y.z`, `::1`, `localhost`).
pub(crate) fn is_loopback(addr: &str) -> bool {
    addr == "localhost" || addr.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn default_device(master_addr: &str) -> GlooDevice {
    if is_loopback(master_addr) {
        GlooDevice::Hostname("127.0.0.1".into())
    } else {
        GlooDevice::Default
    }
}

fn required(get: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<String, DistError> {
    get(var)
        .ok_or(DistError::Env { var, problem: "is not set (not started by a launcher?)".into() })
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<T, DistError>
where
    T::Err: std::fmt::Display,
{
    let raw = required(get, var)?;
    raw.trim()
        .parse()
        .map_err(|e| DistError::Env { var, problem: format!("`{raw}` is not a valid value: {e}") })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 5] = [
        ("RANK", "1"),
        ("WORLD_SIZE", "3"),
        ("LOCAL_RANK", "0"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29500"),
    ];

    #[test]
    fn torchrun_variables_parse() {
        let c = Config::from_lookup(lookup(&BASE), T).unwrap();
        assert_eq!((c.rank, c.world_size, c.local_rank), (1, 3, 0));
        assert_eq!((c.master_addr.as_str(), c.master_port), ("127.0.0.1", 29500));
        assert_eq!(c.store, StoreRole::Client { prefix: None });
        assert_eq!(c.device, GlooDevice::Hostname("127.0.0.1".into()));
        assert_eq!(c.timeout, T);
        c.validate().unwrap();
        let mut zero = BASE;
        zero[0] = ("RANK", "0");
        assert_eq!(Config::from_lookup(lookup(&zero), T).unwrap().store, StoreRole::Host);
    }

    #[test]
    fn each_missing_or_bad_variable_is_named() {
        for var in ["RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"] {
            let pairs: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != var).collect();
            let e = Config::from_lookup(lookup(&pairs), T).unwrap_err();
            assert!(matches!(e, DistError::Env { var: v, .. } if v == var), "{e}");
            assert!(e.to_string().contains(var) && e.to_string().contains("not set"), "{e}");
        }
        for (var, bad) in [("RANK", "one"), ("WORLD_SIZE", "-2"), ("MASTER_PORT", "70000")] {
            let pairs: Vec<_> =
                BASE.iter().map(|&(k, v)| if k == var { (k, bad) } else { (k, v) }).collect();
            let e = Config::from_lookup(lookup(&pairs), T).unwrap_err().to_string();
            assert!(e.contains(var) && e.contains(bad), "{e}");
        }
        let mut big = BASE;
        big[0] = ("RANK", "3");
        let e = Config::from_lookup(lookup(&big), T).unwrap_err().to_string();
        assert!(e.contains("RANK") && e.contains("WORLD_SIZE=3"), "{e}");
    }

    #[test]
    fn local_rank_defaults_to_rank() {
        let pairs: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != "LOCAL_RANK").collect();
        assert_eq!(Config::from_lookup(lookup(&pairs), T).unwrap().local_rank, 1);
    }

    #[test]
    fn torchrun_agent_store_makes_every_rank_a_client_with_the_restart_prefix() {
        let mut pairs = BASE.to_vec();
        pairs[0] = ("RANK", "0");
        pairs.push(("TORCHELASTIC_USE_AGENT_STORE", "True"));
        let e = Config::from_lookup(lookup(&pairs), T).unwrap_err().to_string();
        assert!(e.contains("TORCHELASTIC_RESTART_COUNT"), "{e}");
        pairs.push(("TORCHELASTIC_RESTART_COUNT", "2"));
        let c = Config::from_lookup(lookup(&pairs), T).unwrap();
        assert_eq!(c.store, StoreRole::Client { prefix: Some("/worker/attempt_2".into()) });
        // Only the exact string "True" counts, as in torch.distributed.
        let last = pairs.len() - 2;
        pairs[last] = ("TORCHELASTIC_USE_AGENT_STORE", "true");
        assert_eq!(Config::from_lookup(lookup(&pairs), T).unwrap().store, StoreRole::Host);
    }

    #[test]
    fn gloo_interface_comes_from_gloo_socket_ifname_or_the_master_address() {
        let mut pairs = BASE.to_vec();
        pairs.push(("GLOO_SOCKET_IFNAME", "eth1,eth2"));
        let c = Config::from_lookup(lookup(&pairs), T).unwrap();
        assert_eq!(c.device, GlooDevice::Interface("eth1".into()));
        let remote = Config::new(1, 2, "10.0.0.7", 29500, T);
        assert_eq!(remote.device, GlooDevice::Default);
        assert!(is_loopback("::1") && is_loopback("localhost") && is_loopback("127.0.0.2"));
        assert!(!is_loopback("10.0.0.1") && !is_loopback("node0"));
    }

    #[test]
    fn validate_refuses_impossible_groups() {
        assert!(Config::new(2, 2, "127.0.0.1", 1, T).validate().is_err());
        assert!(Config::new(0, 1, "127.0.0.1", 1, Duration::ZERO).validate().is_err());
        assert!(Config::new(0, 0, "127.0.0.1", 1, T).validate().is_err());
        Config::new(0, 1, "127.0.0.1", 1, T).validate().unwrap();
    }

    #[test]
    fn a_cuda_device_beyond_the_machines_count_is_named_with_the_count() {
        let mut cfg = Config::new(3, 4, "127.0.0.1", 1, T);
        cfg.local_rank = 3;
        cfg.check_cuda_device(0).unwrap(); // no CUDA device asked for
        cfg.cuda_device = Some(3);
        cfg.check_cuda_device(4).unwrap();
        let e = cfg.check_cuda_device(2).unwrap_err().to_string();
        assert!(e.contains("rank 3 (LOCAL_RANK 3) trains on cuda:3"), "{e}");
        assert!(e.contains("has 2 CUDA device(s)") && e.contains("--nproc_per_node"), "{e}");
    }
}
