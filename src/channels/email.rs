//! Email over SMTP with lettre: a pool of connections bounded by a semaphore, TCP_NODELAY,
//! STARTTLS or implicit TLS, AUTH, multipart text + HTML.

use serde::Deserialize;

use crate::channels::{Outgoing, SendOutcome};
use crate::config::Secret;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain TCP (only for a relay on the same host).
    None,
    /// Plain TCP upgraded with STARTTLS (port 587); the upgrade is required.
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
}

/// `[smtp]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_tls")]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    /// Or `password_file`, or `TIDINGS_SMTP_PASSWORD`.
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// The From address, e.g. `"Club <club@example.com>"`.
    pub from: String,
    /// At most this many connections open (and messages in flight) at once.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Seconds one send may take, connecting included.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Extra PEM root certificate to trust (a private relay's CA).
    #[serde(default)]
    pub root_certificate: Option<std::path::PathBuf>,
}

fn default_port() -> u16 {
    587
}
fn default_tls() -> SmtpTls {
    SmtpTls::Starttls
}
fn default_pool_size() -> usize {
    4
}
fn default_timeout_secs() -> u64 {
    30
}

/// The SMTP provider.
#[derive(Debug, Clone)]
pub struct Smtp {
    // Filled in by the implementation.
}

impl Smtp {
    pub fn new(_cfg: &SmtpConfig) -> anyhow::Result<Self> {
        anyhow::bail!("smtp: not built yet")
    }

    pub fn check(_cfg: &SmtpConfig) -> Vec<crate::config::ConfigProblem> {
        Vec::new()
    }

    pub async fn close(&self) {}

    pub async fn send(&self, _msg: &Outgoing) -> SendOutcome {
        SendOutcome::Permanent { error: "smtp: not built yet".into() }
    }
}
