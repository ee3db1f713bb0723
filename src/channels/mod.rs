//! Channels: how a rendered message reaches a member. Each channel kind (SMS, email, push) is
//! served by one provider chosen in configuration, selected through a closed enum rather than a
//! trait object. Every send answers with a [`SendOutcome`] that says whether to retry.

pub mod email;
pub mod outbox;
pub mod sms;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The kinds of channel a rule can send on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Sms,
    Email,
    Push,
    /// A signed JSON POST to the host system, which delivers it its own way (an in-app inbox).
    Webhook,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 4] = [ChannelKind::Sms, ChannelKind::Email, ChannelKind::Push, ChannelKind::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Sms => "sms",
            ChannelKind::Email => "email",
            ChannelKind::Push => "push",
            ChannelKind::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sms" => Some(ChannelKind::Sms),
            "email" => Some(ChannelKind::Email),
            "push" => Some(ChannelKind::Push),
            "webhook" => Some(ChannelKind::Webhook),
            _ => None,
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message rendered for its channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "lowercase")]
pub enum Rendered {
    Sms {
        text: String,
        /// The template rendered for providers that send only pre-approved templates (Aliyun,
        /// Tencent Cloud), by provider name; from the variant's `sms.providers.toml`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        provider_templates: BTreeMap<String, ProviderTemplate>,
    },
    Email {
        subject: String,
        html: String,
        text: String,
    },
    Push {
        title: String,
        body: String,
    },
    /// The template context as JSON: the host system renders it itself.
    Webhook {
        payload: serde_json::Value,
    },
}

impl Rendered {
    /// An SMS with no provider templates.
    pub fn sms(text: impl Into<String>) -> Rendered {
        Rendered::Sms { text: text.into(), provider_templates: BTreeMap::new() }
    }

    pub fn channel(&self) -> ChannelKind {
        match self {
            Rendered::Sms { .. } => ChannelKind::Sms,
            Rendered::Email { .. } => ChannelKind::Email,
            Rendered::Push { .. } => ChannelKind::Push,
            Rendered::Webhook { .. } => ChannelKind::Webhook,
        }
    }
}

/// An SMS as a template-only provider takes it: the provider's approved template and its
/// parameters, rendered for one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderTemplate {
    /// Aliyun's `TemplateCode` (`SMS_123456789`), Tencent's `TemplateId` (`1234567`).
    pub code: String,
    pub params: ProviderParams,
    /// The mapping file it came from, `templates/<key>/<locale>/sms.providers.toml`, so that a
    /// provider refusing the template names the file to fix.
    pub source: String,
}

/// Template parameters: named (Aliyun's `TemplateParam` JSON object) or positional (Tencent's
/// `TemplateParamSet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProviderParams {
    Named(BTreeMap<String, String>),
    Ordered(Vec<String>),
}

/// One message on its way out: everything a provider needs, nothing it must look up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outgoing {
    /// The store's message id.
    pub id: i64,
    /// `rule:member:occurrence:channel`, unique for the message's whole life.
    pub dedupe_key: String,
    pub rule_id: String,
    /// The member's external id.
    pub member: String,
    pub member_name: String,
    /// The address on this channel: an E.164 phone, an email address, a push device token (or
    /// Web Push endpoint), or the member's external id for the webhook.
    pub to: String,
    /// Push only: the device the message goes to.
    pub device: Option<PushDevice>,
    /// Marketing or service: marketing email carries one-click unsubscribe headers.
    pub purpose: Purpose,
    pub rendered: Rendered,
}

/// Why a message is sent: marketing needs consent and carries an unsubscribe; service messages
/// (points about to expire, a receipt) follow their own rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    #[default]
    Marketing,
    Service,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Service => "service",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "marketing" => Some(Purpose::Marketing),
            "service" => Some(Purpose::Service),
            _ => None,
        }
    }
}

/// The push platforms; each device belongs to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Fcm,
    Apns,
    Webpush,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::Fcm, Platform::Apns, Platform::Webpush];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Fcm => "fcm",
            Platform::Apns => "apns",
            Platform::Webpush => "webpush",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Platform::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// One registered push device of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushDevice {
    pub platform: Platform,
    /// The FCM registration token, the APNs device token (hex), or the Web Push endpoint URL.
    pub token: String,
    /// Web Push: the subscription's P-256 public key (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p256dh: Option<String>,
    /// Web Push: the subscription's authentication secret (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
}

/// The message's idempotency key: 32 hex digits of SHA-256 over its dedupe key. Deterministic,
/// so every attempt of one message carries the same key (the email Message-ID is built from it;
/// an HTTP provider that honours an `Idempotency-Key` header gets it there).
pub fn idempotency_key(dedupe_key: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(dedupe_key.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Outgoing {
    pub fn idempotency_key(&self) -> String {
        idempotency_key(&self.dedupe_key)
    }
}

/// What a provider said about one send.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// Accepted; the provider's id for the message.
    Sent { provider_id: String },
    /// Worth retrying: timeouts, 5xx, 429, SMTP 4xx. `retry_after` is the provider's hint.
    Transient { error: String, retry_after: Option<Duration> },
    /// Never worth retrying: a bad number, a rejected address, a 4xx other than 429, SMTP 5xx.
    Permanent { error: String },
    /// The request reached the provider but its answer was lost (a timeout or a dropped
    /// connection after the message was sent): it may have been delivered. Never retried
    /// blindly; recorded as ambiguous.
    Unknown { error: String },
    /// The address is no longer valid (an unregistered device token, a hard bounce, an
    /// invalid number): never retried, and the address is suppressed (or the device forgotten)
    /// so nothing is sent to it again.
    Gone { error: String },
}

/// The provider serving one channel kind: a closed set, chosen in configuration.
#[derive(Debug, Clone)]
pub enum Provider {
    Outbox(outbox::Outbox),
    Twilio(sms::twilio::Twilio),
    Smtp(email::Smtp),
}

impl Provider {
    /// The name recorded on sent messages.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Outbox(_) => "outbox",
            Provider::Twilio(_) => "twilio",
            Provider::Smtp(_) => "smtp",
        }
    }

    pub async fn send(&self, msg: &Outgoing, now: jiff::Timestamp) -> SendOutcome {
        match self {
            Provider::Outbox(o) => o.send(msg, now).await,
            Provider::Twilio(t) => t.send(msg).await,
            Provider::Smtp(s) => s.send(msg).await,
        }
    }
}

/// One provider per channel kind.
#[derive(Debug, Clone)]
pub struct Channels {
    pub sms: Provider,
    pub email: Provider,
    pub push: Provider,
    pub webhook: Provider,
}

impl Channels {
    /// Builds the providers the configuration names. Secrets are resolved here, at start-up.
    pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<Channels> {
        let outbox = outbox::Outbox::new(&cfg.outbox.path);
        let sms = match (cfg.channels.sms.as_str(), &cfg.twilio) {
            ("twilio", Some(t)) => Provider::Twilio(sms::twilio::Twilio::new(t)?),
            _ => Provider::Outbox(outbox.clone()),
        };
        let email = match (cfg.channels.email.as_str(), &cfg.smtp) {
            ("smtp", Some(s)) => Provider::Smtp(email::Smtp::new(s)?),
            _ => Provider::Outbox(outbox.clone()),
        };
        Ok(Channels { sms, email, push: Provider::Outbox(outbox.clone()), webhook: Provider::Outbox(outbox) })
    }

    pub fn get(&self, kind: ChannelKind) -> &Provider {
        match kind {
            ChannelKind::Sms => &self.sms,
            ChannelKind::Email => &self.email,
            ChannelKind::Push => &self.push,
            ChannelKind::Webhook => &self.webhook,
        }
    }
}

/// A provider's report on a message it accepted: delivered to the handset (or inbox, or device)
/// or not, with the provider's own status or error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's name as recorded on the message (`twilio`, `aliyun`, …).
    pub provider: &'static str,
    /// The id the provider answered the send with (recorded as the message's provider id).
    pub provider_id: String,
    pub status: DeliveryStatus,
    /// The provider's code, e.g. Twilio's `30003`, Aliyun's `DELIVERED`/`MK:0001`.
    pub code: Option<String>,
    /// When the provider says it happened, if it says.
    pub at: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Delivered,
    Undelivered,
}
