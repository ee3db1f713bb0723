//! `cargo bench --bench startup [-- --members N --seconds S]`: the real daemon on a SQLite
//! database of N members (1,000,000 under `cargo bench`, 2,000 in the small run): the time from
//! spawning `tidings serve` to its READY=1 on systemd's notify socket (target: under 1 s), then its
//! resident memory at rest once the catch-up tick has evaluated every member and the sends it
//! planned are out (target: under 64 MiB). Stopped with SIGTERM, which must end it cleanly.
//!
//! The seeding is not measured: `tidings migrate`, then one `INSERT … SELECT` over a recursive
//! counter (deterministic members: birthdays spread over the year, all in UTC).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Args, Run, mib, peak_rss, rss};

const BIN: &str = env!("CARGO_BIN_EXE_tidings");

fn main() {
    let args = Args::parse();
    let members = args.count("members", 1_000_000, 2_000);
    let deadline = args.deadline(300);
    let dir = common::results_dir().join(format!("startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench directory");
    let config = write_config(&dir);

    let seeding = Instant::now();
    seed(&dir, &config, members);
    println!(
        "seeded {} members in {:.1} s (not measured)",
        common::group(members as u64),
        seeding.elapsed().as_secs_f64()
    );

    // Start-up to ready.
    let sock = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&sock).expect("notify socket");
    notify.set_read_timeout(Some(deadline)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spawned = Instant::now();
    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "serve"])
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NOTIFY_SOCKET", &sock)
        .env("TIDINGS_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("TIDINGS_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tidings serve starts");
    let pid = child.id();
    let lines = pump(child.stderr.take().unwrap());
    let mut buf = [0u8; 512];
    loop {
        let n = notify.recv(&mut buf).unwrap_or_else(|e| panic!("no READY=1 within {deadline:?}: {e}"));
        if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1") {
            break;
        }
    }
    let ready = spawned.elapsed();
    let ready_rss = rss(pid);

    // At rest: the catch-up tick has run over every member and the dispatcher is idle.
    let tick = wait_for_log(&lines, "tick", deadline.saturating_sub(spawned.elapsed()));
    let ticked = spawned.elapsed();
    assert!(tick["members"].as_u64().is_some(), "the tick reports its members: {tick}");
    // Let the worker send what the tick planned and go idle; then memory is what stays.
    std::thread::sleep(Duration::from_secs(2));
    let at_rest = rss(pid);
    let peak = peak_rss(pid);
    let cpu = common::process_cpu(pid);

    // SIGTERM: the daemon drains and exits cleanly.
    // SAFETY: kill only signals the child this process started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().expect("tidings exits");
    assert!(status.success(), "the daemon's exit after SIGTERM: {status}");
    let _ = std::fs::remove_dir_all(&dir);

    let n = members as u64;
    let target_members = if args.benching { "1,000,000" } else { "the small run's" };
    Run {
        workload: "start-up".into(),
        variant: "start-up to ready (SQLite)".into(),
        items: n,
        unit: "members".into(),
        seconds: ready.as_secs_f64(),
        cpu_us_per_item: 0.0,
        peak_rss_mib: mib(ready_rss),
        latency: None,
        floor: None,
        target: format!("< 1 s on {target_members} members"),
        met: Some(ready < Duration::from_secs(1)),
        notes: "spawn to READY=1 on the notify socket; RSS at ready".into(),
    }
    .emit();
    Run {
        workload: "start-up".into(),
        variant: "memory at rest (SQLite)".into(),
        items: n,
        unit: "members".into(),
        seconds: ticked.as_secs_f64(),
        cpu_us_per_item: cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        peak_rss_mib: mib(at_rest),
        latency: None,
        floor: None,
        target: format!("< 64 MiB at rest on {target_members} members"),
        met: Some(at_rest < 64 * 1024 * 1024),
        notes: format!(
            "RSS 2 s after the catch-up tick (time = spawn to its end; {} planned); peak during it {:.0} MiB",
            tick["enqueued"],
            mib(peak)
        ),
    }
    .emit();
}

/// A configuration on a SQLite file in `dir`, the outbox for every channel, and a birthday rule
/// so that the catch-up tick reads every member.
fn write_config(dir: &Path) -> PathBuf {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let text = format!(
        r#"
[database]
url = "sqlite://{db}"
[outbox]
path = "{outbox}"
[templates]
dir = "{templates}"
[programme]
time_zone = "UTC"
[[rules]]
id = "birthday"
trigger = "birthday"
channels = ["sms"]
template = "birthday"
send_at = "09:30"
"#,
        db = dir.join("tidings.db").display(),
        outbox = dir.join("outbox.jsonl").display(),
        templates = templates.display(),
    );
    let path = dir.join("tidings.toml");
    std::fs::write(&path, text).expect("tidings.toml");
    path
}

/// `tidings migrate`, then the members in one statement.
fn seed(dir: &Path, config: &Path, members: usize) {
    let out =
        Command::new(BIN).args(["--config", config.to_str().unwrap(), "migrate"]).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "tidings migrate: {}", String::from_utf8_lossy(&out.stderr));
    let url = format!("sqlite://{}", dir.join("tidings.db").display());
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        use sqlx::Connection;
        let mut db = sqlx::SqliteConnection::connect(&url).await.expect("the seeded database");
        let now = jiff::Timestamp::now().as_millisecond();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO members (external_id, name, phone, locale, time_zone, birth_date, member_since,
                                  created_at, updated_at)
             SELECT 'm' || i, 'Member ' || i, '+1415' || printf('%07d', i), 'en', 'UTC',
                    date('1960-01-01', '+' || (i * 7919 % 14600) || ' days'),
                    date('2015-01-01', '+' || (i * 104729 % 3650) || ' days'), ?2, ?2
             FROM n",
        )
        .bind(members as i64)
        .bind(now)
        .execute(&mut db)
        .await
        .expect("seeding the members");
        db.close().await.unwrap();
    });
}

fn pump(stderr: std::process::ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first JSON log line whose message is `message`, within `limit`.
fn wait_for_log(lines: &mpsc::Receiver<String>, message: &str, limit: Duration) -> serde_json::Value {
    let until = Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| panic!("no {message:?} log line within {limit:?}"));
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["message"] == message
        {
            return v;
        }
    }
}
