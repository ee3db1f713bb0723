//! The real `tidings serve` process: readiness and the watchdog over systemd's notify socket,
//! health over HTTP, a send through the outbox, SIGHUP reloading templates, SIGTERM draining.
//! Every wait here is for an event (a datagram, a log line, an exit), bounded by a timeout.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;

use crate::support::copy_dir;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

struct Daemon {
    child: Child,
    notify: UnixDatagram,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    http_port: u16,
}

impl Daemon {
    fn start(dir: &Path, args: &[&str], config: &str) -> Daemon {
        let sock = dir.join("notify.sock");
        let _ = std::fs::remove_file(&sock);
        let notify = UnixDatagram::bind(&sock).expect("notify socket");
        notify.set_read_timeout(Some(WAIT)).unwrap();
        std::fs::write(dir.join("tidings.toml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["--config", "tidings.toml", "serve"])
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NOTIFY_SOCKET", &sock)
            .env("WATCHDOG_USEC", "2000000")
            .env("TIDINGS_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("TIDINGS_LOG_FORMAT", "json")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("tidings starts");
        let lines = pump(child.stderr.take().unwrap());
        Daemon { child, notify, lines, seen: Vec::new(), http_port: port }
    }

    /// A plain HTTP/1.1 GET; returns the status code.
    fn get(&self, path: &str) -> u16 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.http_port)).expect("http connects");
        s.set_read_timeout(Some(WAIT)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("bad answer {text:?}"))
    }

    /// Waits for a notify datagram containing `what`; returns the whole datagram.
    fn expect_notify(&self, what: &str) -> String {
        let mut buf = [0u8; 512];
        loop {
            let n = self.notify.recv(&mut buf).unwrap_or_else(|e| panic!("no {what} from the daemon: {e}"));
            let datagram = String::from_utf8_lossy(&buf[..n]).into_owned();
            if datagram.lines().any(|l| l == what) {
                return datagram;
            }
        }
    }

    /// Waits for a JSON log line whose `message` is `message`; returns it.
    fn expect_log(&mut self, message: &str) -> serde_json::Value {
        loop {
            let line = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("no log {message:?}; saw:\n{}", self.seen.join("\n")));
            self.seen.push(line.clone());
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == message
            {
                return v;
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump(stderr: ChildStderr) -> mpsc::Receiver<String> {
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

#[test]
fn serve_reports_ready_sends_reloads_on_sighup_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"), &templates);
    // A member whose birthday greeting was due two minutes ago, UTC.
    let due = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_mins(2)).unwrap();
    let due = due.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let member = serde_json::json!({"external_id": "ada", "name": "Ada", "phone": "+14155550100",
        "time_zone": "UTC", "birth_date": format!("1990-{:02}-{:02}", due.month(), due.day()),
        "consent": {"sms": "granted"}});
    std::fs::write(dir.path().join("members.jsonl"), format!("{member}\n")).unwrap();
    let config = format!(
        "[templates]\ndir = \"templates\"\n[quiet_hours]\nsms = \"off\"\n[[rules]]\nid = \"birthday\"\ntrigger = \"birthday\"\n\
         channels = [\"sms\"]\ntemplate = \"birthday\"\nsend_at = \"{:02}:{:02}\"\nmax_lateness = \"1h\"\n",
        due.hour(),
        due.minute()
    );
    std::fs::write(dir.path().join("tidings.toml"), &config).unwrap();
    let import = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["--config", "tidings.toml", "import", "members.jsonl"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));

    let mut d = Daemon::start(dir.path(), &[], &config);
    d.expect_notify("READY=1");
    assert_eq!(d.get("/healthz"), 200);
    assert_eq!(d.get("/readyz"), 200);
    let sent = d.expect_log("sent");
    assert_eq!(sent["span"]["member.id"], "ada", "{sent}");
    // One JSON object per line: when, how grave, where from, what, and the spans it ran in.
    assert!(sent["timestamp"].as_str().is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()), "{sent}");
    assert_eq!(sent["level"], "INFO", "{sent}");
    assert!(sent["target"].as_str().is_some_and(|t| t.starts_with("tidings")), "{sent}");
    assert!(sent["spans"].as_array().is_some_and(|s| !s.is_empty()), "{sent}");
    let outbox = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap();
    assert_eq!(outbox.lines().count(), 1);
    assert!(outbox.contains("Ada"), "{outbox}");
    d.expect_notify("WATCHDOG=1");

    // The database holds the templates now. A broken edit is refused at import (naming the
    // file) and never reaches it; a good one is imported as a draft and published beside the
    // running daemon, which picks it up on SIGHUP.
    let tidings = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["--config", "tidings.toml"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    std::fs::write(templates.join("birthday/en/sms.hbs"), "{{#if member.name}}unclosed").unwrap();
    let refused = tidings(&["templates", "import", "templates"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("birthday/en/sms.hbs"), "{refused:?}");
    std::fs::write(
        templates.join("birthday/en/sms.hbs"),
        "Many happy returns, {{member.name}}! Reply STOP to opt out.\n",
    )
    .unwrap();
    let imported = tidings(&["templates", "import", "templates"]);
    assert!(imported.status.success(), "{imported:?}");
    assert!(String::from_utf8_lossy(&imported.stdout).contains("birthday: draft version 2 created"), "{imported:?}");
    let published = tidings(&["templates", "publish", "birthday", "2", "--acknowledge-warnings"]);
    assert!(published.status.success(), "{published:?}");
    d.signal("-HUP");
    let reloading = d.expect_notify("RELOADING=1");
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading}");
    d.expect_log("templates reloaded");
    d.expect_notify("READY=1");

    d.signal("-TERM");
    d.expect_notify("STOPPING=1");
    d.expect_log("dispatch drained");
    let status = d.child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Nothing more was sent by the shutdown.
    assert_eq!(std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap().lines().count(), 1);
}

#[test]
fn demo_members_produce_messages_within_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), &["--demo"], "");
    d.expect_notify("READY=1");
    d.expect_log("sent");
    let outbox = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap();
    assert!(outbox.lines().count() >= 1);
    d.signal("-TERM");
    assert!(d.child.wait().unwrap().success());
    assert!(dir.path().join("tidings.db").exists());
}

#[test]
fn the_systemd_unit_runs_the_daemon_as_a_notify_service_with_a_watchdog() {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/tidings.service")).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=30s",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=tidings",
        "LoadCredential=smtp.password:/etc/tidings/credentials/smtp.password",
        "LoadCredential=twilio.auth_token:/etc/tidings/credentials/twilio.auth_token",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.lines().any(|l| l == line), "systemd/tidings.service lacks {line}");
    }
}

/// SIGKILL at several moments while 300 messages go out through the Twilio peer, restarting each
/// time; then whatever is left is settled. No member may receive two messages, every message must
/// end sent or ambiguous (a kill while the provider had it), and nothing may stay in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_any_moment_sends_nothing_twice_and_loses_nothing() {
    use crate::support::twilio::TwilioPeer;
    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    let twilio = TwilioPeer::start(SID, "token").await;
    let dir = tempfile::tempdir().unwrap();
    let due = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_mins(2)).unwrap();
    let due = due.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let members: String = (0..300)
        .map(|i| {
            serde_json::json!({"external_id": format!("k{i}"), "name": "Kim", "phone": format!("+1415555{i:04}"),
                "time_zone": "UTC", "birth_date": format!("1990-{:02}-{:02}", due.month(), due.day()),
                "consent": {"sms": "granted"}})
            .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(dir.path().join("members.jsonl"), members).unwrap();
    let config = format!(
        "[channels]\nsms = \"twilio\"\n[twilio]\naccount_sid = \"{SID}\"\nauth_token = \"token\"\n\
         from = \"+14155550100\"\nbase_url = \"{}\"\n[dispatch]\nbatch_size = 20\nconcurrency = 4\n\
         lease = \"2s\"\npoll = \"100ms\"\n[quiet_hours]\nsms = \"off\"\n[[rules]]\nid = \"birthday\"\ntrigger = \"birthday\"\n\
         channels = [\"sms\"]\ntemplate = \"birthday\"\nsend_at = \"{:02}:{:02}\"\nmax_lateness = \"2h\"\n",
        twilio.base_url(),
        due.hour(),
        due.minute()
    );
    std::fs::write(dir.path().join("tidings.toml"), &config).unwrap();
    let import = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["--config", "tidings.toml", "import", "members.jsonl"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));

    // Kill after 7, 23, 41 and 3 more sends: early, mid-batch, and right after a restart.
    for after in [7, 23, 41, 3] {
        tokio::task::block_in_place(|| {
            let mut d = Daemon::start(dir.path(), &[], &config);
            d.expect_notify("READY=1");
            for _ in 0..after {
                d.expect_log("sent");
            }
            d.signal("-KILL");
            let _ = d.child.wait();
        });
    }

    // Settle the rest in-process, an hour later (every lease long expired).
    let settings = tidings::config::Config::from_toml(
        &config,
        "tidings.toml",
        [("TIDINGS_DATABASE_URL".to_string(), format!("sqlite://{}", dir.path().join("tidings.db").display()))],
    )
    .and_then(tidings::config::Config::check)
    .unwrap();
    let clock = tidings::clock::ManualClock::new(
        jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_hours(1)).unwrap(),
    );
    let app = tidings::app::App::start(settings, std::sync::Arc::new(clock)).await.unwrap();
    app.dispatch_all().await.unwrap();

    let mut per_phone = std::collections::HashMap::new();
    for r in twilio.received() {
        *per_phone.entry(r.field("To").unwrap().to_string()).or_insert(0) += 1;
    }
    assert!(per_phone.values().all(|&n| n == 1), "someone got two: {per_phone:?}");
    let states = app.store.count_by_state().await.unwrap();
    let sent = states.get("sent").copied().unwrap_or(0);
    let ambiguous = states.get("ambiguous").copied().unwrap_or(0);
    assert_eq!(sent + ambiguous, 300, "{states:?}");
    // A kill leaves at most one group (dispatch.concurrency) in the provider's hands.
    assert!(ambiguous <= 4 * 4, "{states:?}");
    // Every sent message reached the provider; an ambiguous one may or may not have.
    assert!(twilio.received().len() as i64 >= sent, "{} received, {sent} sent", twilio.received().len());
    assert!(twilio.received().len() as i64 <= sent + ambiguous);
    assert!(twilio.violations().is_empty());
}

#[test]
fn a_second_daemon_on_the_same_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = Daemon::start(dir.path(), &[], "");
    first.expect_notify("READY=1");
    let second = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["--config", "tidings.toml", "serve"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TIDINGS_HTTP_ENABLED", "false")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another tidings daemon") && stderr.contains(&first.child.id().to_string()), "{stderr}");
}
