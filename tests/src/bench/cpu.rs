//! CPU time of the processes under test over the measured window, from `/proc`: on a shared
//! 2-core machine the split of CPU between load generator, broker and store is the first thing
//! that explains a throughput.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// A process to watch: a label and its pid (`self` for this process).
#[derive(Debug, Clone)]
pub struct Watched {
    pub label: String,
    pub pid: String,
}

impl std::str::FromStr for Watched {
    type Err = Error;

    /// `label=pid`.
    fn from_str(s: &str) -> Result<Self> {
        let (label, pid) =
            s.split_once('=').ok_or_else(|| Error::Input(format!("--watch wants label=pid, got {s}")))?;
        if pid.parse::<u32>().is_err() {
            return Err(Error::Input(format!("--watch {s}: {pid} is not a pid")));
        }
        Ok(Watched { label: label.into(), pid: pid.into() })
    }
}

/// CPU used during the measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CpuUse {
    /// CPU seconds per watched process (and `mom-bench`, the load generator itself).
    pub seconds: BTreeMap<String, f64>,
    /// Share of all cores that was busy (any process), in percent.
    pub machine_busy_pct: f64,
    /// Cores of the machine, to turn `machine_busy_pct` into CPU seconds.
    #[serde(default)]
    pub cores: usize,
}

impl CpuUse {
    /// CPU seconds of every process that was not watched (other work on the machine, the kernel's
    /// softirq time, ...).
    pub fn other_seconds(&self, window_s: f64) -> f64 {
        let busy = self.machine_busy_pct / 100.0 * self.cores as f64 * window_s;
        (busy - self.seconds.values().sum::<f64>()).max(0.0)
    }
}

struct Sample {
    ticks: BTreeMap<String, u64>,
    machine_busy: u64,
    machine_total: u64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of `/proc/<pid>/stat`, in ticks.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are
    // state (3), ..., utime (14), stime (15).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// (busy, total) ticks over all cores from `/proc/stat`.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

fn sample(watched: &[Watched]) -> Sample {
    let mut ticks = BTreeMap::new();
    for w in watched {
        if let Some(t) = process_ticks(&w.pid) {
            ticks.insert(w.label.clone(), t);
        }
    }
    if let Some(t) = process_ticks("self") {
        ticks.insert("mom-bench".into(), t);
    }
    let (machine_busy, machine_total) = machine_ticks().unwrap_or((0, 0));
    Sample { ticks, machine_busy, machine_total }
}

/// Samples after `delay`, again after `window`, and returns the difference.
pub async fn measure(watched: Vec<Watched>, delay: Duration, window: Duration) -> CpuUse {
    tokio::time::sleep(delay).await;
    let a = sample(&watched);
    tokio::time::sleep(window).await;
    let b = sample(&watched);
    let hz = clock_ticks();
    let seconds = b
        .ticks
        .iter()
        .filter_map(|(k, after)| {
            a.ticks.get(k).map(|before| (k.clone(), after.saturating_sub(*before) as f64 / hz))
        })
        .collect();
    let total = b.machine_total.saturating_sub(a.machine_total);
    let busy = b.machine_busy.saturating_sub(a.machine_busy);
    let machine_busy_pct = if total > 0 { busy as f64 * 100.0 / total as f64 } else { 0.0 };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    CpuUse { seconds, machine_busy_pct, cores }
}
