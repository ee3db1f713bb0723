//! The outbox: a channel provider that sends nothing. It appends each message it is given as one
//! JSON line to a file and logs it, so a newcomer (or a dry run) sees exactly what would go out.
//!
//! Group commit: concurrent sends queue their lines; whichever holds the file writes every queued
//! line in one write, and each send returns only once its own line is in the file (written to the
//! operating system, as before), so nothing is reported sent that is not there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tokio::sync::Mutex;

use crate::channels::{Outgoing, SendOutcome};

/// Appends messages to a JSON Lines file.
#[derive(Debug, Clone)]
pub struct Outbox {
    path: PathBuf,
    file: Arc<Mutex<Option<std::fs::File>>>,
    queue: Arc<std::sync::Mutex<Queue>>,
}

/// Lines waiting for the file, numbered in arrival order.
#[derive(Debug, Default)]
struct Queue {
    lines: String,
    /// The number of the last line queued.
    last: u64,
    /// Lines up to this number are in the file or have failed.
    done: u64,
    /// Lines numbered in `(from, to]` were lost to this write error; kept while a send whose line
    /// it may be is still waiting.
    failed: Vec<(u64, u64, String)>,
    /// Sends whose outcome is not yet taken.
    waiting: u64,
}

impl Outbox {
    pub fn new(path: &Path) -> Self {
        Outbox { path: path.to_path_buf(), file: Arc::new(Mutex::new(None)), queue: Default::default() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn send(&self, msg: &Outgoing, at: jiff::Timestamp) -> SendOutcome {
        let line = json!({
            "at": at.to_string(),
            "id": msg.id,
            "dedupe_key": msg.dedupe_key,
            "rule": msg.rule_id,
            "member": msg.member,
            "to": msg.to,
            "message": msg.rendered,
        });
        tracing::info!(message.id = msg.id, member.id = %msg.member, channel = %msg.rendered.channel(), to = %msg.to, outbox = %line, "outbox");
        let mine = {
            let mut q = self.queue.lock().expect("outbox queue");
            q.lines.push_str(&line.to_string());
            q.lines.push('\n');
            q.last += 1;
            q.waiting += 1;
            q.last
        };
        let mut guard = self.file.lock().await;
        // A send that held the file meanwhile may have written this line with its own.
        let (lines, upto) = {
            let mut q = self.queue.lock().expect("outbox queue");
            if q.done >= mine {
                return outcome(&mut q, mine, msg.id);
            }
            (std::mem::take(&mut q.lines), q.last)
        };
        let written = match guard.as_mut() {
            Some(f) => f.write_all(lines.as_bytes()),
            None => match std::fs::OpenOptions::new().create(true).append(true).open(&self.path) {
                Ok(f) => guard.insert(f).write_all(lines.as_bytes()),
                Err(e) => Err(e),
            },
        };
        let mut q = self.queue.lock().expect("outbox queue");
        if let Err(e) = written {
            *guard = None;
            let done = q.done;
            q.failed.push((done, upto, format!("outbox {}: {e}", self.path.display())));
        }
        q.done = upto;
        outcome(&mut q, mine, msg.id)
    }
}

/// Line `mine`'s outcome, once it is written or lost.
fn outcome(q: &mut Queue, mine: u64, id: i64) -> SendOutcome {
    let lost = q.failed.iter().find(|(from, to, _)| *from < mine && mine <= *to).map(|f| f.2.clone());
    q.waiting -= 1;
    if q.waiting == 0 {
        q.failed.clear();
    }
    match lost {
        Some(error) => SendOutcome::Transient { error, retry_after: None },
        None => SendOutcome::Sent { provider_id: format!("outbox-{id}") },
    }
}
