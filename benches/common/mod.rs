//! What every workload of the benchmark suite shares: its arguments, the process measurements
//! (CPU time and peak memory read from `/proc`), latency percentiles, and one result record per
//! run, printed as a Markdown row and appended as a JSON line to `target/bench/results.jsonl`
//! (`cargo bench --bench summary` turns that file into the BENCHMARKS.md section).
//!
//! Every workload is bounded: `--seconds` (or its own default) stops it, and it reports how far it
//! got. Under `cargo test --benches` (no `--bench` argument) each workload runs its small version,
//! so CI keeps the harness from rotting.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `--key value` and `--flag` arguments; cargo's own `--bench` marks a real run.
pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
    /// True under `cargo bench` (full size); false under `cargo test --benches` (the small run).
    pub benching: bool,
}

impl Args {
    pub fn parse() -> Self {
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let argv: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < argv.len() {
            let a = &argv[i];
            if let Some(key) = a.strip_prefix("--") {
                if let Some((k, v)) = key.split_once('=') {
                    values.insert(k.to_string(), v.to_string());
                } else if i + 1 < argv.len() && !argv[i + 1].starts_with("--") {
                    values.insert(key.to_string(), argv[i + 1].clone());
                    i += 1;
                } else {
                    flags.push(key.to_string());
                }
            }
            i += 1;
        }
        let benching = flags.iter().any(|f| f == "bench");
        Self { values, flags, benching }
    }

    /// A number argument (`1_000_000` and `1e6` are accepted), or the default for a full run or
    /// the small run.
    pub fn count(&self, key: &str, full: usize, small: usize) -> usize {
        match self.values.get(key) {
            Some(v) => {
                let v = v.replace('_', "");
                v.parse::<usize>()
                    .ok()
                    .or_else(|| v.parse::<f64>().ok().map(|f| f as usize))
                    .unwrap_or_else(|| panic!("--{key}: {v:?} is not a number"))
            }
            None if self.benching => full,
            None => small,
        }
    }

    pub fn string(&self, key: &str, default: &str) -> String {
        self.values.get(key).cloned().unwrap_or_else(|| default.to_string())
    }

    pub fn flag(&self, key: &str) -> bool {
        self.flags.iter().any(|f| f == key)
    }

    /// The workload's time bound.
    pub fn deadline(&self, full_secs: u64) -> Duration {
        Duration::from_secs(self.count("seconds", full_secs as usize, 120) as u64)
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// User plus system CPU time of a process (all its threads), from `/proc/<pid>/stat`; zero for a
/// process that has gone.
pub fn process_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15 (1-based over the whole line).
    let ticks: u64 =
        f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0) + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Duration::from_nanos(ticks * 1_000_000_000 / clock_ticks())
}

/// CPU time of this process.
pub fn self_cpu() -> Duration {
    process_cpu(std::process::id())
}

/// The sum over several processes (e.g. the PostgreSQL backends serving a run).
pub fn processes_cpu(pids: &[u32]) -> Duration {
    pids.iter().map(|p| process_cpu(*p)).sum()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Peak resident memory (VmHWM) of a process, in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:") * 1024
}

/// Resident memory now (VmRSS), in bytes.
pub fn rss(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:") * 1024
}

/// Resets this process's peak resident memory, so a workload's peak excludes the seeding before
/// it (Linux: writing 5 to `clear_refs`).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    pub fn of(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i].as_secs_f64() * 1e6
        };
        Self { p50_us: at(0.50), p90_us: at(0.90), p99_us: at(0.99), max_us: at(1.0) }
    }
}

/// The machine's limit for the same work, measured in the same run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Floor {
    /// What was measured: "raw SQL INSERT … SELECT", "hyper client, 64 in flight", …
    pub what: String,
    pub seconds: f64,
    /// CPU time of the floor's own work per item, in microseconds (0 when not measured).
    pub cpu_us_per_item: f64,
}

/// One workload run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// "W1", "W2", …
    pub workload: String,
    /// The variant: "sqlite", "postgres, cold statistics", "smtp, 8 connections", …
    pub variant: String,
    /// Items done (messages sent, members evaluated, …) and what they are.
    pub items: u64,
    pub unit: String,
    pub seconds: f64,
    pub cpu_us_per_item: f64,
    pub peak_rss_mib: f64,
    pub latency: Option<Percentiles>,
    pub floor: Option<Floor>,
    /// The target this run is held to, in words ("≥ 15,000/s, ≤ 60 µs CPU"), and whether it met it.
    pub target: String,
    pub met: Option<bool>,
    /// Anything a reader needs (retries, injected failures, cold or warm planner statistics).
    pub notes: String,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.items as f64 / self.seconds.max(1e-9)
    }

    /// The run's time over the floor's (1.0 = as fast as the floor).
    pub fn ratio(&self) -> Option<f64> {
        self.floor.as_ref().map(|f| self.seconds / f.seconds.max(1e-9))
    }

    /// Prints the Markdown row and appends the JSON line to `target/bench/results.jsonl`.
    pub fn emit(&self) {
        println!("{}", self.markdown_row());
        let dir = results_dir();
        let _ = std::fs::create_dir_all(&dir);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("results.jsonl"))
            .expect("target/bench/results.jsonl");
        writeln!(f, "{}", serde_json::to_string(self).unwrap()).unwrap();
    }

    pub fn markdown_row(&self) -> String {
        let lat = self.latency.map_or("".into(), |p| format!("{:.0} / {:.0} / {:.0}", p.p50_us, p.p90_us, p.p99_us));
        let floor = self.floor.as_ref().map_or("".into(), |f| {
            format!("{} ({:.2} s) · **{:.2}x**", f.what, f.seconds, self.ratio().unwrap_or(0.0))
        });
        let met = match self.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        };
        format!(
            "| {} | {} | {} {} | {:.2} s | {:.0}/s | {:.1} µs | {:.0} MiB | {} | {} | {} {} | {} |",
            self.workload,
            self.variant,
            group(self.items),
            self.unit,
            self.seconds,
            self.per_second(),
            self.cpu_us_per_item,
            self.peak_rss_mib,
            lat,
            floor,
            self.target,
            met,
            self.notes
        )
    }
}

/// The header matching [`Run::markdown_row`].
pub const MARKDOWN_HEADER: &str = "| workload | variant | items | time | throughput | CPU per item | peak RSS | latency p50 / p90 / p99 (µs) | floor · ratio | target | notes |\n|---|---|---|---|---|---|---|---|---|---|---|";

pub fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench")
}

/// 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
