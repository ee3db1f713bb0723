//! The outbox: a channel provider that sends nothing. It appends each message it is given as one
//! JSON line to a file and logs it, so a newcomer (or a dry run) sees exactly what would go out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::channels::{Outgoing, SendOutcome};

/// Appends messages to a JSON Lines file.
#[derive(Debug, Clone)]
pub struct Outbox {
    path: PathBuf,
    file: Arc<Mutex<Option<tokio::fs::File>>>,
}

impl Outbox {
    pub fn new(path: &Path) -> Self {
        Outbox { path: path.to_path_buf(), file: Arc::new(Mutex::new(None)) }
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
        let mut text = line.to_string();
        text.push('\n');
        let mut guard = self.file.lock().await;
        if guard.is_none() {
            match tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await {
                Ok(f) => *guard = Some(f),
                Err(e) => {
                    return SendOutcome::Transient {
                        error: format!("outbox {}: {e}", self.path.display()),
                        retry_after: None,
                    };
                }
            }
        }
        let file = guard.as_mut().expect("opened above");
        // tokio's File hands writes to a background thread: flush so the line is in the file
        // when the send is reported.
        let written = async {
            file.write_all(text.as_bytes()).await?;
            file.flush().await
        };
        match written.await {
            Ok(()) => SendOutcome::Sent { provider_id: format!("outbox-{}", msg.id) },
            Err(e) => {
                *guard = None;
                SendOutcome::Transient { error: format!("outbox {}: {e}", self.path.display()), retry_after: None }
            }
        }
    }
}
