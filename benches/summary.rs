//! `cargo bench --bench summary`: the BENCHMARKS.md section for the runs recorded in
//! `target/bench/results.jsonl` (the latest run of each workload and variant), headed by the
//! machine (CPU model, cores, memory, kernel), the commit and the toolchain. `-- --clear` empties
//! the file first, so a fresh suite run starts clean.

mod common;

use std::collections::BTreeMap;

fn command(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let args = common::Args::parse();
    let path = common::results_dir().join("results.jsonl");
    if args.flag("clear") {
        let _ = std::fs::remove_file(&path);
        println!("cleared {}", path.display());
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    // The latest run of each workload and variant, in the order they first appear.
    let mut order: Vec<(String, String)> = Vec::new();
    let mut latest: BTreeMap<(String, String), common::Run> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let run: common::Run = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => panic!("{}:{}: {e}", path.display(), n + 1),
        };
        let key = (run.workload.clone(), run.variant.clone());
        if !latest.contains_key(&key) {
            order.push(key.clone());
        }
        latest.insert(key, run);
    }
    order.sort_by(|a, b| a.0.cmp(&b.0).then(std::cmp::Ordering::Equal));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .map(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().unwrap_or(0.0))
            })
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let commit = command("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = !command("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    println!(
        "## {}: {cores} × {cpu}, {mem_gib:.0} GiB, {}, {}, commit {commit}{}\n",
        command("date", &["-u", "+%Y-%m-%d"]),
        command("uname", &["-sr"]),
        command("rustc", &["--version"]),
        if dirty { " (with uncommitted changes)" } else { "" }
    );
    println!("{}", common::MARKDOWN_HEADER);
    for key in order {
        println!("{}", latest[&key].markdown_row());
    }
}
