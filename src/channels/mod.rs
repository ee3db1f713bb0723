//! Channels: how a rendered message reaches a member. Each channel kind (SMS, email, push) is
//! served by one provider chosen in configuration, selected through a closed enum rather than a
//! trait object. Every send answers with a [`SendOutcome`] that says whether to retry.

pub mod email;
pub mod outbox;
pub mod push;
pub mod route;
pub mod sms;
pub mod stats;
pub mod webhook;
pub(crate) mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigProblem};
pub use route::Route;

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

/// One provider: a closed set, chosen in configuration.
#[derive(Debug, Clone)]
pub enum Provider {
    Outbox(outbox::Outbox),
    Twilio(sms::twilio::Twilio),
    Smtp(email::Smtp),
    Webhook(webhook::Webhook),
    Aliyun(sms::aliyun::Aliyun),
    Tencent(sms::tencent::Tencent),
    HttpSms(sms::http::HttpSms),
    /// FCM, APNs and Web Push together: each message goes to its device's platform.
    Push(push::Push),
}

impl Provider {
    /// The name recorded on sent messages.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Outbox(_) => "outbox",
            Provider::Twilio(_) => "twilio",
            Provider::Smtp(_) => "smtp",
            Provider::Webhook(_) => "webhook",
            Provider::Aliyun(_) => "aliyun",
            Provider::Tencent(_) => "tencent",
            Provider::HttpSms(_) => "http_sms",
            Provider::Push(_) => "push",
        }
    }

    pub async fn send(&self, msg: &Outgoing, now: jiff::Timestamp) -> SendOutcome {
        match self {
            Provider::Outbox(o) => o.send(msg, now).await,
            Provider::Twilio(t) => t.send(msg).await,
            Provider::Smtp(s) => s.send(msg).await,
            Provider::Webhook(w) => w.send(msg, now).await,
            Provider::Aliyun(a) => a.send(msg).await,
            Provider::Tencent(t) => t.send(msg).await,
            Provider::HttpSms(h) => h.send(msg).await,
            Provider::Push(p) => p.send(msg).await,
        }
    }
}

/// The providers each channel kind may name in `[channels]`.
pub const PROVIDERS: &[(ChannelKind, &str)] = &[
    (ChannelKind::Sms, "outbox"),
    (ChannelKind::Sms, "twilio"),
    (ChannelKind::Sms, "aliyun"),
    (ChannelKind::Sms, "tencent"),
    (ChannelKind::Sms, "http_sms"),
    (ChannelKind::Email, "outbox"),
    (ChannelKind::Email, "smtp"),
    (ChannelKind::Push, "outbox"),
    (ChannelKind::Push, "native"),
    (ChannelKind::Webhook, "outbox"),
    (ChannelKind::Webhook, "webhook"),
];

/// The problems with `[channels]`, the provider sections they name, and `[limits.*]`.
pub fn check_config(cfg: &Config) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    for kind in ChannelKind::ALL {
        let key = format!("channels.{kind}");
        let names = cfg.channels.names(kind);
        if names.is_empty() {
            problems.push(ConfigProblem::new(key.clone(), "name at least one provider (outbox for a dry run)"));
        }
        for (i, name) in names.iter().enumerate() {
            if !PROVIDERS.contains(&(kind, name.as_str())) {
                let known: Vec<&str> = PROVIDERS.iter().filter(|(k, _)| *k == kind).map(|(_, n)| *n).collect();
                problems.push(ConfigProblem::new(
                    key.clone(),
                    format!("unknown {kind} provider {name:?} ({})", known.join(", ")),
                ));
            } else if names[..i].contains(name) {
                problems.push(ConfigProblem::new(key.clone(), format!("{name:?} is listed twice")));
            } else {
                problems.extend(check_provider(name, cfg, &key));
            }
        }
    }
    for (name, limits) in &cfg.limits {
        if !PROVIDERS.iter().any(|(_, n)| n == name) {
            problems.push(ConfigProblem::new(format!("limits.{name}"), "not a provider"));
        }
        problems.extend(limits.check(name));
    }
    problems
}

/// A provider's own section, checked; missing when the channel names the provider.
fn check_provider(name: &str, cfg: &Config, key: &str) -> Vec<ConfigProblem> {
    fn section<T>(s: &Option<T>, key: &str, name: &str, check: fn(&T) -> Vec<ConfigProblem>) -> Vec<ConfigProblem> {
        match s {
            Some(s) => check(s),
            None => vec![ConfigProblem::new(key, format!("provider {name} needs a [{name}] section"))],
        }
    }
    match name {
        "twilio" => section(&cfg.twilio, key, name, sms::twilio::Twilio::check),
        "smtp" => section(&cfg.smtp, key, name, email::Smtp::check),
        "webhook" => section(&cfg.webhook, key, name, webhook::Webhook::check),
        "aliyun" => section(&cfg.aliyun, key, name, sms::aliyun::Aliyun::check),
        "tencent" => section(&cfg.tencent, key, name, sms::tencent::Tencent::check),
        "http_sms" => section(&cfg.http_sms, key, name, sms::http::HttpSms::check),
        "native" => {
            let cfgs = push_configs(cfg);
            if cfgs.fcm.is_none() && cfgs.apns.is_none() && cfgs.webpush.is_none() {
                vec![ConfigProblem::new(key, "push = \"native\" needs at least one of [fcm], [apns], [webpush]")]
            } else {
                push::Push::check(&cfgs)
            }
        }
        _ => Vec::new(),
    }
}

fn push_configs(cfg: &Config) -> push::PushConfigs {
    push::PushConfigs { fcm: cfg.fcm.clone(), apns: cfg.apns.clone(), webpush: cfg.webpush.clone() }
}

/// Builds one provider from its section (already checked).
fn build_provider(name: &str, cfg: &Config, outbox: &outbox::Outbox) -> anyhow::Result<Provider> {
    let missing = || anyhow::anyhow!("provider {name} needs a [{name}] section");
    Ok(match name {
        "outbox" => Provider::Outbox(outbox.clone()),
        "twilio" => Provider::Twilio(sms::twilio::Twilio::new(cfg.twilio.as_ref().ok_or_else(missing)?)?),
        "smtp" => Provider::Smtp(email::Smtp::new(cfg.smtp.as_ref().ok_or_else(missing)?)?),
        "webhook" => Provider::Webhook(webhook::Webhook::new(cfg.webhook.as_ref().ok_or_else(missing)?)?),
        "aliyun" => Provider::Aliyun(sms::aliyun::Aliyun::new(cfg.aliyun.as_ref().ok_or_else(missing)?)?),
        "tencent" => Provider::Tencent(sms::tencent::Tencent::new(cfg.tencent.as_ref().ok_or_else(missing)?)?),
        "http_sms" => Provider::HttpSms(sms::http::HttpSms::new(cfg.http_sms.as_ref().ok_or_else(missing)?)?),
        "native" => Provider::Push(push::Push::new(&push_configs(cfg))?),
        other => anyhow::bail!("unknown provider {other:?}"),
    })
}

/// The route of each channel kind.
#[derive(Debug, Clone)]
pub struct Channels {
    pub sms: Route,
    pub email: Route,
    pub push: Route,
    pub webhook: Route,
}

impl Channels {
    /// Builds the providers the configuration names. Secrets are resolved here, at start-up.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Channels> {
        let outbox = outbox::Outbox::new(&cfg.outbox.path);
        let route = |kind: ChannelKind| -> anyhow::Result<Route> {
            let mut slots = Vec::new();
            for name in cfg.channels.names(kind) {
                let limits = cfg.limits.get(&name).cloned().unwrap_or_default();
                slots.push(route::Slot::new(build_provider(&name, cfg, &outbox)?, &limits));
            }
            if slots.is_empty() {
                slots.push(route::Slot::new(Provider::Outbox(outbox.clone()), &route::LimitsConfig::default()));
            }
            Ok(Route::new(slots))
        };
        Ok(Channels {
            sms: route(ChannelKind::Sms)?,
            email: route(ChannelKind::Email)?,
            push: route(ChannelKind::Push)?,
            webhook: route(ChannelKind::Webhook)?,
        })
    }

    /// Whether a push message needs a registered device (every push provider but the outbox).
    pub fn push_needs_device(&self) -> bool {
        !matches!(self.push.primary(), Provider::Outbox(_))
    }

    pub fn get(&self, kind: ChannelKind) -> &Route {
        match kind {
            ChannelKind::Sms => &self.sms,
            ChannelKind::Email => &self.email,
            ChannelKind::Push => &self.push,
            ChannelKind::Webhook => &self.webhook,
        }
    }

    /// Every provider of every channel, for shutdown and status.
    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        [&self.sms, &self.email, &self.push, &self.webhook]
            .into_iter()
            .flat_map(|r| r.slots().iter().map(|s| &s.provider))
    }

    /// Each channel's providers in route order with their circuit and call statistics, for
    /// `/metrics` and the heartbeat `tidings status` reads.
    pub fn health(&self) -> impl Iterator<Item = (ChannelKind, &route::Slot)> {
        ChannelKind::ALL.iter().flat_map(move |&k| self.get(k).slots().iter().map(move |s| (k, s)))
    }

    /// `sms=twilio>aliyun email=smtp …`: what serves each channel, failovers after `>`.
    pub fn describe(&self) -> String {
        ChannelKind::ALL
            .iter()
            .map(|&k| {
                let names: Vec<&str> = self.get(k).slots().iter().map(|s| s.provider.name()).collect();
                format!("{k}={}", names.join(">"))
            })
            .collect::<Vec<_>>()
            .join(" ")
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
