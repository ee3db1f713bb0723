//! SMS over the Twilio Messages API (a form-encoded POST with basic auth), or any gateway that
//! speaks the same wire format.

use serde::Deserialize;

use crate::channels::{Outgoing, SendOutcome};
use crate::config::Secret;

/// `[twilio]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// The account SID (`AC…`).
    pub account_sid: String,
    /// The auth token; or `auth_token_file`, or `TIDINGS_TWILIO_AUTH_TOKEN`.
    #[serde(default)]
    pub auth_token: Option<Secret>,
    #[serde(default)]
    pub auth_token_file: Option<std::path::PathBuf>,
    /// The sender number (E.164); required unless `messaging_service_sid` is set.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Where Twilio posts delivery status updates.
    #[serde(default)]
    pub status_callback: Option<String>,
    /// The API base; tests point it at a local server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Seconds a request may take in all.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_base_url() -> String {
    "https://api.twilio.com".to_string()
}

fn default_timeout_secs() -> u64 {
    10
}

/// The Twilio provider.
#[derive(Debug, Clone)]
pub struct Twilio {
    // Filled in by the implementation.
}

impl Twilio {
    pub fn new(_cfg: &TwilioConfig) -> anyhow::Result<Self> {
        anyhow::bail!("twilio: not built yet")
    }

    pub async fn send(&self, _msg: &Outgoing) -> SendOutcome {
        SendOutcome::Permanent { error: "twilio: not built yet".into() }
    }
}
