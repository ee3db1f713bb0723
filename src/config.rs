//! Configuration: one TOML file plus `TIDINGS_…` environment overrides, checked in two stages
//! (parse, then meaning) with errors that name the key.

mod experiment;
pub mod live;
pub use live::Live;

use std::fmt;

use serde::Deserialize;

pub use experiment::{ConversionConfig, ExperimentConfig, VariantConfig, check_experiment};

/// A secret: never printed, never logged.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One thing wrong with the configuration, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The dotted key, e.g. `twilio.auth_token` or `rules[2].send_at`.
    pub key: String,
    pub problem: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigProblem { key: key.into(), problem: problem.into() }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Resolves a secret given inline (`key`) or as a file (`key_file`); the file's trailing newline
/// is dropped. `key` is the dotted name used in the error, e.g. `twilio.auth_token`. When neither
/// is set and systemd passed credentials (`$CREDENTIALS_DIRECTORY`, from `LoadCredential=`), a
/// credential named after the key (`twilio.auth_token`) is read instead.
pub fn resolve_secret(
    inline: Option<&Secret>,
    file: Option<&std::path::Path>,
    key: &str,
) -> Result<Secret, ConfigProblem> {
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
    resolve_secret_in(inline, file, key, credentials.as_deref())
}

/// [`resolve_secret`] with the credentials directory given, so tests need not set the environment.
pub fn resolve_secret_in(
    inline: Option<&Secret>,
    file: Option<&std::path::Path>,
    key: &str,
    credentials: Option<&std::path::Path>,
) -> Result<Secret, ConfigProblem> {
    let credential = match (inline, file, credentials) {
        (Some(s), _, _) if !s.expose().is_empty() => None,
        (_, None, Some(dir)) if dir.join(key).is_file() => Some(dir.join(key)),
        _ => None,
    };
    match (inline, file.or(credential.as_deref())) {
        (Some(s), _) if !s.expose().is_empty() => Ok(s.clone()),
        (_, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = text.trim_end_matches(['\n', '\r']).to_string();
                if text.is_empty() {
                    Err(ConfigProblem::new(format!("{key}_file"), format!("{} is empty", path.display())))
                } else {
                    Ok(Secret(text))
                }
            }
            Err(e) => Err(ConfigProblem::new(format!("{key}_file"), format!("cannot read {}: {e}", path.display()))),
        },
        _ => {
            let env = format!("TIDINGS_{}", key.replace('.', "_").to_uppercase());
            Err(ConfigProblem::new(
                key,
                format!("missing secret: set {key}, {key}_file, {env} or a systemd credential named {key}"),
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The file's shape. Every table denies unknown keys, so a misspelt key is named at start-up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use jiff::civil::Time;
use jiff::tz::TimeZone;

use crate::channels::ChannelKind;
use crate::channels::email::SmtpConfig;
use crate::channels::sms::twilio::TwilioConfig;
use crate::members::Segment;
use crate::triggers::calendar::{self, Calendar, Festival};
use crate::triggers::{Feb29, Rule, Trigger};

/// The years a festival rule's calendar is indexed for (lookups outside find nothing), and the
/// years `tidings calendar` answers for: the range the Chinese calendar is checked over.
pub const FESTIVAL_YEARS: std::ops::RangeInclusive<i16> = 1901..=2100;

/// The names a rule's `festivals` list may use for a whole group.
const FESTIVAL_GROUPS: &[&str] = &["all", "chinese", "solar_term", "fixed", "observance", "custom"];

/// The festivals a rule names, by id or group, in the rule's order, each once.
fn select_festivals(all: &[Festival], names: &[String]) -> Result<Vec<Festival>, String> {
    if names.is_empty() {
        return Err("name festivals, e.g. [\"mid_autumn\"] or a group: chinese, solar_term, fixed, observance, \
                    custom, all"
            .into());
    }
    let mut chosen: Vec<Festival> = Vec::new();
    for name in names {
        let picked: Vec<&Festival> = match name.as_str() {
            "all" => all.iter().collect(),
            group if FESTIVAL_GROUPS.contains(&group) => all.iter().filter(|f| f.group.as_str() == group).collect(),
            id => match all.iter().find(|f| f.id == id) {
                Some(f) => vec![f],
                None => {
                    let known: Vec<&str> = all.iter().map(|f| f.id.as_str()).collect();
                    return Err(format!("unknown festival {id:?} (known: {}; or a group)", known.join(", ")));
                }
            },
        };
        for f in picked {
            if !chosen.iter().any(|c| c.id == f.id) {
                chosen.push(f.clone());
            }
        }
    }
    Ok(chosen)
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub programme: ProgrammeConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub evaluation: EvaluationConfig,
    #[serde(default)]
    pub dispatch: DispatchConfig,
    #[serde(default)]
    pub channels: ChannelsConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub templates: TemplatesConfig,
    #[serde(default)]
    pub twilio: Option<TwilioConfig>,
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    #[serde(default)]
    pub webhook: Option<crate::channels::webhook::WebhookConfig>,
    #[serde(default)]
    pub aliyun: Option<crate::channels::sms::aliyun::AliyunConfig>,
    #[serde(default)]
    pub tencent: Option<crate::channels::sms::tencent::TencentConfig>,
    #[serde(default)]
    pub http_sms: Option<crate::channels::sms::http::HttpSmsConfig>,
    #[serde(default)]
    pub fcm: Option<crate::channels::push::FcmConfig>,
    #[serde(default)]
    pub apns: Option<crate::channels::push::ApnsConfig>,
    #[serde(default)]
    pub webpush: Option<crate::channels::push::WebPushConfig>,
    /// Per-provider rate limits, retries and circuit breakers, e.g. `[limits.twilio]`.
    #[serde(default)]
    pub limits: BTreeMap<String, crate::channels::route::LimitsConfig>,
    #[serde(default = "default_rules")]
    pub rules: Vec<RuleConfig>,
    /// The programme's own holidays beside the built-in festivals, by id.
    #[serde(default)]
    pub holidays: BTreeMap<String, HolidayConfig>,
    #[serde(default)]
    pub model: ModelConfig,
    /// Member rights: the key erased members' suppressed addresses are hashed with.
    #[serde(default)]
    pub privacy: crate::rights::PrivacyConfig,
    /// Frequency caps; absent: the defaults (see `plan::caps::default_caps`); `caps = []`: none.
    #[serde(default)]
    pub caps: Option<Vec<CapConfig>>,
    /// Each channel's sending hours, member-local.
    #[serde(default)]
    pub quiet_hours: QuietHoursConfig,
    /// Multi-step flows (see `journeys::config`); by default the win-back journey, disabled.
    #[serde(default = "crate::journeys::config::default_journeys")]
    pub journeys: Vec<crate::journeys::config::JourneyConfig>,
    #[serde(default)]
    pub coupons: crate::journeys::config::CouponsConfig,
    /// Consent policy per purpose and the consent webhooks' tokens.
    #[serde(default)]
    pub consent: crate::plan::consent::ConsentConfig,
}

/// A custom holiday: `[holidays.founders_day] when = "06-18"`, names by locale.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolidayConfig {
    /// `MM-DD`, `lunar MM-DD`, `lunar 12-last`, `qingming`, `2nd sunday of may`,
    /// `last monday of may`, or a list of dates `2027-02-06, 2028-01-26`.
    pub when: String,
    /// Display names by locale, e.g. `{ en = "Founders' Day", zh-CN = "司庆日" }`.
    #[serde(default)]
    pub names: BTreeMap<String, String>,
}

/// Member value and churn risk: what counts as a purchase, when the nightly refresh runs, and
/// the segment thresholds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Run the nightly refresh (RFM scores, segments, the BG/NBD fit, P(alive)).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Event kinds that are purchases.
    #[serde(default = "default_purchase_events")]
    pub purchase_events: Vec<String>,
    /// When the refresh runs: a six-field cron expression, in UTC (default 19:00 UTC, 03:00 in China).
    #[serde(default = "default_refresh")]
    pub refresh: String,
    /// Expected purchases are counted over this many days.
    #[serde(default = "default_horizon_days")]
    pub horizon_days: u32,
    /// P(alive) below this puts a member in the at-risk segment (and is the default threshold of
    /// `churn_risk` rules).
    #[serde(default = "default_at_risk_below")]
    pub at_risk_below: f64,
    /// Joined or first bought within this many days, with at most one purchase day: `new`.
    #[serde(default = "default_new_days")]
    pub new_days: u32,
    /// No purchase for this many days: `lapsed`.
    #[serde(default = "default_lapsed_days")]
    pub lapsed_days: u32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            enabled: true,
            purchase_events: default_purchase_events(),
            refresh: default_refresh(),
            horizon_days: default_horizon_days(),
            at_risk_below: default_at_risk_below(),
            new_days: default_new_days(),
            lapsed_days: default_lapsed_days(),
        }
    }
}

fn default_purchase_events() -> Vec<String> {
    vec!["purchase".into()]
}
fn default_refresh() -> String {
    "0 0 19 * * *".into()
}
fn default_horizon_days() -> u32 {
    90
}
fn default_at_risk_below() -> f64 {
    0.5
}
fn default_new_days() -> u32 {
    30
}
fn default_lapsed_days() -> u32 {
    180
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://tidings.db` (created if missing; one daemon per file), or
    /// `postgres://user@host:5432/tidings` (several daemons may share it).
    #[serde(default = "default_database_url")]
    pub url: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: default_database_url() }
    }
}

fn default_database_url() -> String {
    "sqlite://tidings.db".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_http_addr")]
    pub addr: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    /// Console session cookies carry `Secure` always (behind an HTTPS proxy that does not say
    /// `X-Forwarded-Proto: https`), not only on requests that came over HTTPS.
    #[serde(default)]
    pub secure_cookies: bool,
    /// How long a console session lasts after login.
    #[serde(default = "default_session_ttl")]
    pub session_ttl: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: default_http_addr(),
            enabled: true,
            body_limit: default_body_limit(),
            secure_cookies: false,
            session_ttl: default_session_ttl(),
        }
    }
}

fn default_session_ttl() -> String {
    "12h".into()
}

fn default_http_addr() -> String {
    "127.0.0.1:8080".into()
}
fn default_body_limit() -> usize {
    16 * 1024 * 1024
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeConfig {
    /// The programme's name, shown in messages (and as the SMS signature).
    #[serde(default = "default_programme_name")]
    pub name: String,
    /// The locale for members without one, and the fallback when a template lacks theirs.
    #[serde(default = "default_locale")]
    pub default_locale: String,
    /// The zone for members without one (IANA name).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// The tiers, lowest first: a tier change up this list records `member.tier_upgraded`, down
    /// it `member.tier_downgraded`; other changes `member.tier_changed`.
    #[serde(default)]
    pub tiers: Vec<String>,
}

impl Default for ProgrammeConfig {
    fn default() -> Self {
        ProgrammeConfig {
            name: default_programme_name(),
            default_locale: default_locale(),
            time_zone: default_time_zone(),
            tiers: Vec::new(),
        }
    }
}

fn default_programme_name() -> String {
    "Tidings Club".into()
}
fn default_locale() -> String {
    "en".into()
}
fn default_time_zone() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `tidings=debug,info`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: default_log_format(), level: default_log_level() }
    }
}

fn default_log_format() -> LogFormat {
    LogFormat::Text
}
fn default_log_level() -> String {
    "info".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    /// When the evaluation tick runs: a six-field cron expression (with seconds), in UTC.
    #[serde(default = "default_tick")]
    pub tick: String,
    /// How far ahead messages are planned, so they go out on the second rather than on the tick.
    #[serde(default = "default_lookahead")]
    pub lookahead: String,
    /// Members read per batch while evaluating.
    #[serde(default = "default_member_batch")]
    pub member_batch: u32,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        EvaluationConfig { tick: default_tick(), lookahead: default_lookahead(), member_batch: default_member_batch() }
    }
}

fn default_tick() -> String {
    "0 * * * * *".into()
}
fn default_lookahead() -> String {
    "1h".into()
}
fn default_member_batch() -> u32 {
    2000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchConfig {
    /// Messages claimed per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Sends in flight at once, across channels.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts before a transiently failing message is dead.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// How long a claim holds before another worker may take the message over.
    #[serde(default = "default_lease")]
    pub lease: String,
    /// First retry delay; doubled each attempt, with jitter, up to `backoff_max`.
    #[serde(default = "default_backoff_base")]
    pub backoff_base: String,
    #[serde(default = "default_backoff_max")]
    pub backoff_max: String,
    /// How long SIGTERM waits for in-flight sends.
    #[serde(default = "default_grace")]
    pub grace: String,
    /// How often an idle worker looks for due messages.
    #[serde(default = "default_poll")]
    pub poll: String,
    /// Channels whose ambiguous messages (a provider's answer lost, a worker killed mid-send) are
    /// sent again automatically, accepting a possible duplicate; e.g. `["email"]`, whose
    /// deterministic Message-ID lets receivers spot one. Elsewhere they wait for an operator.
    #[serde(default)]
    pub retry_ambiguous: Vec<String>,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            batch_size: default_batch_size(),
            concurrency: default_concurrency(),
            max_attempts: default_max_attempts(),
            lease: default_lease(),
            backoff_base: default_backoff_base(),
            backoff_max: default_backoff_max(),
            grace: default_grace(),
            poll: default_poll(),
            retry_ambiguous: Vec::new(),
        }
    }
}

fn default_batch_size() -> u32 {
    200
}
fn default_concurrency() -> usize {
    32
}
fn default_max_attempts() -> u32 {
    6
}
fn default_lease() -> String {
    "2m".into()
}
fn default_backoff_base() -> String {
    "30s".into()
}
fn default_backoff_max() -> String {
    "1h".into()
}
fn default_grace() -> String {
    "30s".into()
}
fn default_poll() -> String {
    "1s".into()
}

/// Which providers serve each channel kind: one name, or a list (the first is the primary, the
/// rest take over in order when it fails transiently or its circuit is open).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsConfig {
    #[serde(default = "outbox")]
    pub sms: Names,
    #[serde(default = "outbox")]
    pub email: Names,
    #[serde(default = "outbox")]
    pub push: Names,
    #[serde(default = "outbox")]
    pub webhook: Names,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        ChannelsConfig { sms: outbox(), email: outbox(), push: outbox(), webhook: outbox() }
    }
}

impl ChannelsConfig {
    /// The provider names for a channel kind, in order.
    pub fn names(&self, kind: ChannelKind) -> Vec<String> {
        match kind {
            ChannelKind::Sms => &self.sms,
            ChannelKind::Email => &self.email,
            ChannelKind::Push => &self.push,
            ChannelKind::Webhook => &self.webhook,
        }
        .list()
    }
}

/// One provider name or several: `"twilio"`, `["twilio", "aliyun"]`, or from the environment
/// `twilio,aliyun`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Names {
    One(String),
    Many(Vec<String>),
}

impl Names {
    pub fn list(&self) -> Vec<String> {
        match self {
            Names::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
            Names::Many(v) => v.iter().map(|s| s.trim().to_string()).collect(),
        }
    }
}

fn outbox() -> Names {
    Names::One("outbox".into())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The JSON Lines file every outbox message is appended to.
    #[serde(default = "default_outbox_path")]
    pub path: PathBuf,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig { path: default_outbox_path() }
    }
}

fn default_outbox_path() -> PathBuf {
    "outbox.jsonl".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    /// A directory laid out like the repository's `templates/`; the built-in set when unset.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// SMS longer than this many segments are refused at render, naming the count.
    #[serde(default = "default_sms_segment_limit")]
    pub sms_segment_limit: Option<usize>,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        TemplatesConfig { dir: None, sms_segment_limit: default_sms_segment_limit() }
    }
}

fn default_sms_segment_limit() -> Option<usize> {
    Some(crate::render::DEFAULT_SMS_SEGMENT_LIMIT)
}

/// One `[[rules]]` entry as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub id: String,
    /// `birthday`, `lunar_birthday`, `anniversary`, `holiday`, `festival`, `inactivity` or `churn_risk`.
    pub trigger: String,
    pub channels: Vec<String>,
    pub template: String,
    /// Member-local send time, `HH:MM` (default 09:30; an event rule without it sends at once
    /// or after its `delay`).
    #[serde(default)]
    pub send_at: Option<String>,
    /// Days from the occurrence to the send: `-1` sends the day before.
    #[serde(default)]
    pub offset_days: i32,
    /// Past this, a due message is skipped, not sent late (e.g. `6h`).
    #[serde(default = "default_max_lateness")]
    pub max_lateness: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// birthday, anniversary: `feb28` or `mar1` for Feb 29 dates in common years.
    #[serde(default)]
    pub feb29: Option<String>,
    /// holiday: `MM-DD`.
    #[serde(default)]
    pub date: Option<String>,
    /// holiday: display names by locale, e.g. `{ en = "Christmas", zh-CN = "圣诞节" }`.
    #[serde(default)]
    pub names: BTreeMap<String, String>,
    /// inactivity: days without activity.
    #[serde(default)]
    pub days: Option<u32>,
    /// Send on the first of `channels` the member can be reached on (e.g. push, else SMS, else
    /// email), instead of on every one of them.
    #[serde(default)]
    pub fallback: bool,
    /// `marketing` (the default: needs consent, carries unsubscribe links) or `service`.
    #[serde(default)]
    pub purpose: Option<String>,
    /// festival: festival ids (built-in or from `[holidays]`) or whole groups (`chinese`,
    /// `solar_term`, `fixed`, `observance`, `custom`, `all`), in order of preference.
    #[serde(default)]
    pub festivals: Vec<String>,
    /// churn_risk: P(alive) below which the member is written to (default `model.at_risk_below`).
    #[serde(default)]
    pub below: Option<f64>,
    /// Only members in these segments (`new`, `active`, `high_value`, `at_risk`, `lapsed`); empty: all.
    #[serde(default)]
    pub segments: Vec<String>,
    /// `service`, `lifecycle` or `promotional`: which message wins when two rules fall on one
    /// member-local day. Default: service for service rules, promotional for holiday and
    /// festival rules, lifecycle otherwise.
    #[serde(default)]
    pub priority: Option<String>,
    /// When this rule wins a collision, its message carries the losers' occurrences
    /// (`occurrence.also`).
    #[serde(default)]
    pub merge: bool,
    /// `false`: this rule ignores quiet hours (urgent service messages).
    #[serde(default = "yes")]
    pub quiet_hours: bool,
    /// event: the event kind, or kinds, that start the rule (`member.joined`, `purchase`, …).
    #[serde(default)]
    pub event: Option<crate::entry::OneOrMany>,
    /// event: send this long after the event (e.g. `2h`); the default without `send_at`: at once.
    #[serde(default)]
    pub delay: Option<String>,
    /// event: the fields of `data` the rule's events carry (its templates are checked with them).
    #[serde(default)]
    pub event_data: Vec<String>,
    /// date: the member date (`birth_date`, `member_since` or an attribute holding `YYYY-MM-DD`).
    #[serde(default)]
    pub attribute: Option<String>,
    /// date: every year on the date, not only on it.
    #[serde(default)]
    pub yearly: bool,
    /// Variants by weight and a holdout share (see README: Experiments and conversions).
    #[serde(default)]
    pub experiment: Option<ExperimentConfig>,
    /// Which events count as a conversion after this rule's message, and within how long.
    #[serde(default)]
    pub conversion: Option<ConversionConfig>,
}

/// The member-local send time of a rule that names none.
pub const DEFAULT_SEND_AT: &str = "09:30";
fn default_max_lateness() -> String {
    "6h".into()
}

/// The rules a daemon runs with when the configuration names none.
fn default_rules() -> Vec<RuleConfig> {
    let rule = |id: &str, trigger: &str, template: &str| RuleConfig {
        id: id.into(),
        trigger: trigger.into(),
        channels: vec!["sms".into(), "email".into()],
        template: template.into(),
        send_at: None,
        offset_days: 0,
        max_lateness: "12h".into(),
        enabled: true,
        feb29: None,
        date: None,
        names: BTreeMap::new(),
        days: None,
        fallback: false,
        purpose: None,
        festivals: Vec::new(),
        below: None,
        segments: Vec::new(),
        priority: None,
        merge: false,
        quiet_hours: true,
        event: None,
        delay: None,
        event_data: Vec::new(),
        attribute: None,
        yearly: false,
        experiment: None,
        conversion: None,
    };
    vec![
        rule("birthday", "birthday", "birthday"),
        rule("anniversary", "anniversary", "anniversary"),
        RuleConfig {
            date: Some("01-01".into()),
            names: [("en".to_string(), "New Year".to_string()), ("zh-CN".to_string(), "元旦".to_string())]
                .into_iter()
                .collect(),
            ..rule("new-year", "holiday", "holiday")
        },
        RuleConfig { days: Some(30), ..rule("winback-30", "inactivity", "winback") },
    ]
}

// ---------------------------------------------------------------------------------------------
// Loading: file, then environment, then meaning.

/// Environment overrides: `TIDINGS_<SUFFIX>` sets the dotted key, parsed as the given kind.
const ENV_KEYS: &[(&str, &str, Kind)] = &[
    ("DATABASE_URL", "database.url", Kind::Str),
    ("HTTP_ADDR", "http.addr", Kind::Str),
    ("HTTP_ENABLED", "http.enabled", Kind::Bool),
    ("HTTP_BODY_LIMIT", "http.body_limit", Kind::Int),
    ("HTTP_SECURE_COOKIES", "http.secure_cookies", Kind::Bool),
    ("HTTP_SESSION_TTL", "http.session_ttl", Kind::Str),
    ("PROGRAMME_NAME", "programme.name", Kind::Str),
    ("PROGRAMME_DEFAULT_LOCALE", "programme.default_locale", Kind::Str),
    ("PROGRAMME_TIME_ZONE", "programme.time_zone", Kind::Str),
    ("LOG_FORMAT", "log.format", Kind::Str),
    ("LOG_LEVEL", "log.level", Kind::Str),
    ("EVALUATION_TICK", "evaluation.tick", Kind::Str),
    ("EVALUATION_LOOKAHEAD", "evaluation.lookahead", Kind::Str),
    ("EVALUATION_MEMBER_BATCH", "evaluation.member_batch", Kind::Int),
    ("DISPATCH_BATCH_SIZE", "dispatch.batch_size", Kind::Int),
    ("DISPATCH_CONCURRENCY", "dispatch.concurrency", Kind::Int),
    ("DISPATCH_MAX_ATTEMPTS", "dispatch.max_attempts", Kind::Int),
    ("DISPATCH_LEASE", "dispatch.lease", Kind::Str),
    ("DISPATCH_BACKOFF_BASE", "dispatch.backoff_base", Kind::Str),
    ("DISPATCH_BACKOFF_MAX", "dispatch.backoff_max", Kind::Str),
    ("DISPATCH_GRACE", "dispatch.grace", Kind::Str),
    ("DISPATCH_POLL", "dispatch.poll", Kind::Str),
    ("CHANNELS_SMS", "channels.sms", Kind::Str),
    ("CHANNELS_EMAIL", "channels.email", Kind::Str),
    ("CHANNELS_PUSH", "channels.push", Kind::Str),
    ("CHANNELS_WEBHOOK", "channels.webhook", Kind::Str),
    ("WEBHOOK_URL", "webhook.url", Kind::Str),
    ("WEBHOOK_SECRET", "webhook.secret", Kind::Str),
    ("WEBHOOK_SECRET_FILE", "webhook.secret_file", Kind::Str),
    ("OUTBOX_PATH", "outbox.path", Kind::Str),
    ("CONSENT_MARKETING", "consent.marketing", Kind::Str),
    ("CONSENT_SERVICE", "consent.service", Kind::Str),
    ("CONSENT_INBOUND_TOKEN", "consent.inbound_token", Kind::Str),
    ("CONSENT_COMPLAINT_TOKEN", "consent.complaint_token", Kind::Str),
    ("TEMPLATES_DIR", "templates.dir", Kind::Str),
    ("QUIET_HOURS_SMS", "quiet_hours.sms", Kind::Str),
    ("QUIET_HOURS_EMAIL", "quiet_hours.email", Kind::Str),
    ("QUIET_HOURS_PUSH", "quiet_hours.push", Kind::Str),
    ("QUIET_HOURS_WEBHOOK", "quiet_hours.webhook", Kind::Str),
    ("TWILIO_ACCOUNT_SID", "twilio.account_sid", Kind::Str),
    ("TWILIO_AUTH_TOKEN", "twilio.auth_token", Kind::Str),
    ("TWILIO_AUTH_TOKEN_FILE", "twilio.auth_token_file", Kind::Str),
    ("TWILIO_FROM", "twilio.from", Kind::Str),
    ("TWILIO_MESSAGING_SERVICE_SID", "twilio.messaging_service_sid", Kind::Str),
    ("TWILIO_BASE_URL", "twilio.base_url", Kind::Str),
    ("TWILIO_STATUS_CALLBACK", "twilio.status_callback", Kind::Str),
    ("TWILIO_INBOUND_URL", "twilio.inbound_url", Kind::Str),
    ("TWILIO_TIMEOUT_SECS", "twilio.timeout_secs", Kind::Int),
    ("SMTP_HOST", "smtp.host", Kind::Str),
    ("SMTP_PORT", "smtp.port", Kind::Int),
    ("SMTP_TLS", "smtp.tls", Kind::Str),
    ("SMTP_USERNAME", "smtp.username", Kind::Str),
    ("SMTP_PASSWORD", "smtp.password", Kind::Str),
    ("SMTP_PASSWORD_FILE", "smtp.password_file", Kind::Str),
    ("SMTP_FROM", "smtp.from", Kind::Str),
    ("SMTP_POOL_SIZE", "smtp.pool_size", Kind::Int),
    ("SMTP_TIMEOUT_SECS", "smtp.timeout_secs", Kind::Int),
    ("SMTP_ROOT_CERTIFICATE", "smtp.root_certificate", Kind::Str),
    ("SMTP_HELO_NAME", "smtp.helo_name", Kind::Str),
    ("SMTP_UNSUBSCRIBE_URL", "smtp.unsubscribe_url", Kind::Str),
    ("SMTP_UNSUBSCRIBE_MAILTO", "smtp.unsubscribe_mailto", Kind::Str),
    ("SMTP_LINK_SECRET", "smtp.link_secret", Kind::Str),
    ("SMTP_LINK_SECRET_FILE", "smtp.link_secret_file", Kind::Str),
    ("SMTP_DKIM_PRIVATE_KEY", "smtp.dkim.private_key", Kind::Str),
    ("SMTP_DKIM_PRIVATE_KEY_FILE", "smtp.dkim.private_key_file", Kind::Str),
    ("ALIYUN_ACCESS_KEY_ID", "aliyun.access_key_id", Kind::Str),
    ("ALIYUN_ACCESS_KEY_SECRET", "aliyun.access_key_secret", Kind::Str),
    ("ALIYUN_ACCESS_KEY_SECRET_FILE", "aliyun.access_key_secret_file", Kind::Str),
    ("TENCENT_SECRET_ID", "tencent.secret_id", Kind::Str),
    ("TENCENT_SECRET_KEY", "tencent.secret_key", Kind::Str),
    ("TENCENT_SECRET_KEY_FILE", "tencent.secret_key_file", Kind::Str),
    ("HTTP_SMS_AUTH_HEADER", "http_sms.auth_header", Kind::Str),
    ("HTTP_SMS_AUTH_HEADER_FILE", "http_sms.auth_header_file", Kind::Str),
    ("FCM_SERVICE_ACCOUNT", "fcm.service_account", Kind::Str),
    ("FCM_SERVICE_ACCOUNT_FILE", "fcm.service_account_file", Kind::Str),
    ("APNS_PRIVATE_KEY", "apns.private_key", Kind::Str),
    ("APNS_PRIVATE_KEY_FILE", "apns.private_key_file", Kind::Str),
    ("WEBPUSH_PRIVATE_KEY", "webpush.private_key", Kind::Str),
    ("WEBPUSH_PRIVATE_KEY_FILE", "webpush.private_key_file", Kind::Str),
    ("PRIVACY_HASH_KEY", "privacy.hash_key", Kind::Str),
    ("PRIVACY_HASH_KEY_FILE", "privacy.hash_key_file", Kind::Str),
    ("COUPONS_SECRET", "coupons.secret", Kind::Str),
    ("COUPONS_SECRET_FILE", "coupons.secret_file", Kind::Str),
];

/// Variables that are not configuration keys but belong to the command line.
const ENV_NOT_KEYS: &[&str] = &["CONFIG"];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
}

/// Why the configuration could not be used: every problem, each naming its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigProblem>),
}

/// The configuration with its meaning checked: the form the daemon runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub raw: Config,
    pub programme_tz: TimeZone,
    pub rules: Vec<Rule>,
    pub lookahead: SignedDuration,
    pub lease: SignedDuration,
    pub backoff_base: SignedDuration,
    pub backoff_max: SignedDuration,
    pub grace: SignedDuration,
    pub poll: SignedDuration,
    /// Channels whose ambiguous messages are retried automatically.
    pub retry_ambiguous: Vec<ChannelKind>,
    /// Every festival known: the built-in ones and `[holidays]` (for `tidings calendar`).
    pub calendar: Calendar,
    /// The frequency caps in force.
    pub caps: Vec<crate::plan::caps::Cap>,
    /// Each channel's sending hours (rules that opt out carry none of their own).
    pub quiet_hours: crate::plan::quiet::QuietHours,
    pub journeys: Vec<crate::journeys::Journey>,
    pub coupons: crate::coupons::Coupons,
    /// `http.session_ttl`: how long a console session lasts.
    pub session_ttl: SignedDuration,
}

impl Config {
    /// Reads the file (when given), applies `TIDINGS_…` variables from `env`, and parses.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.to_path_buf(), source })?,
                p.display().to_string(),
            ),
            None => (String::new(), "configuration".to_string()),
        };
        Self::from_toml(&text, &origin, env)
    }

    /// Parses TOML text, then applies the environment overrides.
    pub fn from_toml(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Parse { origin: origin.into(), message: e.to_string() })?;
        let mut problems = Vec::new();
        for (name, value) in env {
            let Some(suffix) = name.strip_prefix("TIDINGS_") else { continue };
            // TIDINGS_TEST_… belongs to the test suite (e.g. TIDINGS_TEST_POSTGRES_URL), not here.
            if ENV_NOT_KEYS.contains(&suffix) || suffix.starts_with("TEST_") {
                continue;
            }
            match ENV_KEYS.iter().find(|(s, _, _)| *s == suffix) {
                Some((_, key, kind)) => match env_value(&value, *kind) {
                    Ok(v) => set_dotted(&mut doc, key, v),
                    Err(e) => problems.push(ConfigProblem::new(name.clone(), e)),
                },
                None => {
                    problems.push(ConfigProblem::new(name.clone(), "not a known setting (see README: Configuration)"))
                }
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse { origin: origin.into(), message: e.to_string() })
    }

    /// The second stage: checks meaning (zones, times, durations, rules, providers and their
    /// secrets) and reports every problem at once.
    /// What is wrong with `database.url`, if anything: only SQLite and PostgreSQL URLs.
    pub fn database_problem(&self) -> Option<ConfigProblem> {
        let url = &self.database.url;
        (!url.starts_with("sqlite:") && !crate::store::is_postgres_url(url)).then(|| {
            ConfigProblem::new(
                "database.url",
                format!("{url:?}: only sqlite://, postgres:// and postgresql:// URLs are supported"),
            )
        })
    }

    pub fn check(self) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let programme_tz = match TimeZone::get(&self.programme.time_zone) {
            Ok(tz) => tz,
            Err(_) => {
                problems.push(ConfigProblem::new(
                    "programme.time_zone",
                    format!("{:?} is not an IANA time zone", self.programme.time_zone),
                ));
                TimeZone::UTC
            }
        };
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&self.log.level) {
            problems
                .push(ConfigProblem::new("log.level", format!("{:?} is not a tracing filter: {e}", self.log.level)));
        }
        if self.http.addr.parse::<SocketAddr>().is_err() {
            problems.push(ConfigProblem::new("http.addr", format!("{:?} is not host:port", self.http.addr)));
        }
        problems.extend(self.database_problem());
        let mut duration = |key: &str, text: &str| match parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                problems.push(ConfigProblem::new(key, e));
                SignedDuration::ZERO
            }
        };
        let lookahead = duration("evaluation.lookahead", &self.evaluation.lookahead);
        let lease = duration("dispatch.lease", &self.dispatch.lease);
        let backoff_base = duration("dispatch.backoff_base", &self.dispatch.backoff_base);
        let backoff_max = duration("dispatch.backoff_max", &self.dispatch.backoff_max);
        let grace = duration("dispatch.grace", &self.dispatch.grace);
        let poll = duration("dispatch.poll", &self.dispatch.poll);
        let session_ttl = duration("http.session_ttl", &self.http.session_ttl);
        if parse_duration(&self.http.session_ttl).is_ok()
            && !(SignedDuration::from_mins(1)..=SignedDuration::from_hours(24 * 30)).contains(&session_ttl)
        {
            problems.push(ConfigProblem::new("http.session_ttl", "must be between 1m and 30d"));
        }
        if lease <= SignedDuration::ZERO && parse_duration(&self.dispatch.lease).is_ok() {
            problems.push(ConfigProblem::new("dispatch.lease", "must be longer than zero"));
        }
        if self.dispatch.batch_size == 0 {
            problems.push(ConfigProblem::new("dispatch.batch_size", "must be at least 1"));
        }
        if self.dispatch.concurrency == 0 {
            problems.push(ConfigProblem::new("dispatch.concurrency", "must be at least 1"));
        }
        if self.dispatch.max_attempts == 0 {
            problems.push(ConfigProblem::new("dispatch.max_attempts", "must be at least 1"));
        }
        for (i, c) in self.dispatch.retry_ambiguous.iter().enumerate() {
            if ChannelKind::parse(c).is_none() {
                problems.push(ConfigProblem::new(
                    format!("dispatch.retry_ambiguous[{i}]"),
                    format!("unknown channel {c:?} (sms, email, push or webhook)"),
                ));
            }
        }
        if self.evaluation.member_batch == 0 {
            problems.push(ConfigProblem::new("evaluation.member_batch", "must be at least 1"));
        }
        // Parsed by the scheduler's own parser, as the daemon will.
        if let Err(e) = tokio_cron_scheduler::Job::new(self.evaluation.tick.as_str(), |_, _| {}) {
            problems.push(ConfigProblem::new(
                "evaluation.tick",
                format!("{:?} is not a six-field cron expression: {e}", self.evaluation.tick),
            ));
        }
        if self.model.enabled
            && let Err(e) = tokio_cron_scheduler::Job::new(self.model.refresh.as_str(), |_, _| {})
        {
            problems.push(ConfigProblem::new(
                "model.refresh",
                format!("{:?} is not a six-field cron expression: {e}", self.model.refresh),
            ));
        }
        self.check_model(&mut problems);
        problems.extend(crate::rights::hash_key(&self.privacy).err());
        self.check_channels(&mut problems);
        let festivals = self.check_holidays(&mut problems);
        let quiet_hours = self.quiet_hours.check(&mut problems);
        let caps = check_caps(self.caps.as_deref(), &mut problems);
        let rules = self.check_rules(&festivals, quiet_hours, &mut problems);
        crate::entry::check_tiers(&self.programme.tiers, &mut problems);
        let journeys = crate::journeys::config::check(&self, &festivals, quiet_hours, &mut problems);
        let coupons = crate::journeys::config::check_coupons(&self, &journeys, &mut problems);
        let calendar = Calendar::new(festivals, FESTIVAL_YEARS);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        let retry_ambiguous = self.dispatch.retry_ambiguous.iter().filter_map(|c| ChannelKind::parse(c)).collect();
        Ok(Settings {
            raw: self,
            programme_tz,
            rules,
            lookahead,
            lease,
            backoff_base,
            backoff_max,
            grace,
            poll,
            retry_ambiguous,
            calendar,
            caps,
            quiet_hours,
            journeys,
            coupons,
            session_ttl,
        })
    }

    fn check_channels(&self, problems: &mut Vec<ConfigProblem>) {
        problems.extend(crate::channels::check_config(self));
    }

    fn check_model(&self, problems: &mut Vec<ConfigProblem>) {
        let m = &self.model;
        if !(m.at_risk_below > 0.0 && m.at_risk_below < 1.0) {
            problems.push(ConfigProblem::new("model.at_risk_below", "must be between 0 and 1 (e.g. 0.5)"));
        }
        if m.horizon_days == 0 || m.horizon_days > 3650 {
            problems.push(ConfigProblem::new("model.horizon_days", "must be between 1 and 3650"));
        }
        if m.lapsed_days == 0 || m.new_days >= m.lapsed_days {
            problems.push(ConfigProblem::new("model.lapsed_days", "must be more than model.new_days"));
        }
        if m.purchase_events.is_empty() || m.purchase_events.iter().any(|k| k.trim().is_empty()) {
            problems.push(ConfigProblem::new("model.purchase_events", "name at least one event kind"));
        }
    }

    /// The built-in festivals followed by the programme's own holidays.
    fn check_holidays(&self, problems: &mut Vec<ConfigProblem>) -> Vec<Festival> {
        let mut festivals = calendar::builtin();
        for (id, h) in &self.holidays {
            let key = |field: &str| format!("holidays.{id}.{field}");
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                problems.push(ConfigProblem::new(format!("holidays.{id}"), "use letters, digits, - and _ in the id"));
                continue;
            }
            if festivals.iter().any(|f| &f.id == id) || FESTIVAL_GROUPS.contains(&id.as_str()) {
                problems.push(ConfigProblem::new(
                    format!("holidays.{id}"),
                    "is a built-in festival or group id; choose another",
                ));
                continue;
            }
            match h.when.parse::<calendar::When>() {
                Ok(calendar::When::Dates(dates)) if dates.iter().any(|d| !FESTIVAL_YEARS.contains(&d.year())) => {
                    problems.push(ConfigProblem::new(
                        key("when"),
                        format!("dates must be within {}–{}", FESTIVAL_YEARS.start(), FESTIVAL_YEARS.end()),
                    ))
                }
                Ok(when) => festivals.push(Festival {
                    id: id.clone(),
                    names: h.names.clone(),
                    group: calendar::Group::Custom,
                    when,
                }),
                Err(e) => problems.push(ConfigProblem::new(key("when"), e)),
            }
        }
        festivals
    }

    /// A rule's or a journey step's `segments`: known names, none twice, and the model on.
    pub(crate) fn check_segments(
        &self,
        names: &[String],
        key: &str,
        problems: &mut Vec<ConfigProblem>,
    ) -> Vec<Segment> {
        if !names.is_empty() && !self.model.enabled {
            problems.push(ConfigProblem::new(key, "segments need model.enabled = true"));
        }
        let mut segments = Vec::new();
        for name in names {
            match name.parse::<Segment>() {
                Ok(s) if !segments.contains(&s) => segments.push(s),
                Ok(_) => problems.push(ConfigProblem::new(key, format!("{name:?} is listed twice"))),
                Err(e) => problems.push(ConfigProblem::new(key, e)),
            }
        }
        segments
    }

    pub(crate) fn check_rules(
        &self,
        festivals: &[Festival],
        quiet_hours: crate::plan::quiet::QuietHours,
        problems: &mut Vec<ConfigProblem>,
    ) -> Vec<Rule> {
        let mut rules = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let key = |field: &str| format!("rules[{i}].{field}");
            let before = problems.len();
            if r.id.is_empty() || !r.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                problems.push(ConfigProblem::new(key("id"), format!("{:?}: use letters, digits, - and _", r.id)));
            } else if r.id == crate::entry::API_RULE {
                problems.push(ConfigProblem::new(key("id"), "\"api\" is reserved for transactional sends"));
            } else if !seen.insert(r.id.clone()) {
                problems.push(ConfigProblem::new(key("id"), format!("{:?} is used by another rule", r.id)));
            }
            let mut channels = Vec::new();
            for c in &r.channels {
                match ChannelKind::parse(c) {
                    Some(k) if !channels.contains(&k) => channels.push(k),
                    Some(_) => problems.push(ConfigProblem::new(key("channels"), format!("{c:?} is listed twice"))),
                    None => problems.push(ConfigProblem::new(
                        key("channels"),
                        format!("unknown channel {c:?} (sms, email, push or webhook)"),
                    )),
                }
            }
            if r.channels.is_empty() {
                problems.push(ConfigProblem::new(key("channels"), "name at least one channel"));
            }
            let send_at = match parse_send_at(r.send_at.as_deref().unwrap_or(DEFAULT_SEND_AT)) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(ConfigProblem::new(key("send_at"), e));
                    Time::midnight()
                }
            };
            let max_lateness = match parse_duration(&r.max_lateness) {
                Ok(d) => d,
                Err(e) => {
                    problems.push(ConfigProblem::new(key("max_lateness"), e));
                    SignedDuration::ZERO
                }
            };
            if !(-366..=366).contains(&r.offset_days) {
                problems.push(ConfigProblem::new(key("offset_days"), "must be within a year either way"));
            }
            let feb29 = match r.feb29.as_deref() {
                None | Some("feb28") => Feb29::Feb28,
                Some("mar1") => Feb29::Mar1,
                Some(other) => {
                    problems.push(ConfigProblem::new(key("feb29"), format!("{other:?}: use feb28 or mar1")));
                    Feb29::Feb28
                }
            };
            let unused = |field: &str, set: bool, problems: &mut Vec<ConfigProblem>| {
                if set {
                    problems.push(ConfigProblem::new(key(field), format!("not used by a {} rule", r.trigger)));
                }
            };
            let trigger = match r.trigger.as_str() {
                "birthday" | "anniversary" => {
                    unused("date", r.date.is_some(), problems);
                    unused("days", r.days.is_some(), problems);
                    if r.trigger == "birthday" { Trigger::Birthday { feb29 } } else { Trigger::Anniversary { feb29 } }
                }
                "holiday" => {
                    unused("feb29", r.feb29.is_some(), problems);
                    unused("days", r.days.is_some(), problems);
                    match r.date.as_deref().map(parse_month_day) {
                        Some(Ok((month, day))) => Trigger::Holiday { month, day, names: r.names.clone() },
                        Some(Err(e)) => {
                            problems.push(ConfigProblem::new(key("date"), e));
                            Trigger::Holiday { month: 1, day: 1, names: BTreeMap::new() }
                        }
                        None => {
                            problems.push(ConfigProblem::new(key("date"), "a holiday rule needs date = \"MM-DD\""));
                            Trigger::Holiday { month: 1, day: 1, names: BTreeMap::new() }
                        }
                    }
                }
                "lunar_birthday" => {
                    unused("date", r.date.is_some(), problems);
                    unused("days", r.days.is_some(), problems);
                    unused("feb29", r.feb29.is_some(), problems);
                    Trigger::LunarBirthday
                }
                "festival" => {
                    unused("date", r.date.is_some(), problems);
                    unused("days", r.days.is_some(), problems);
                    unused("feb29", r.feb29.is_some(), problems);
                    match select_festivals(festivals, &r.festivals) {
                        Ok(chosen) => Trigger::Festival { calendar: Calendar::new(chosen, FESTIVAL_YEARS) },
                        Err(e) => {
                            problems.push(ConfigProblem::new(key("festivals"), e));
                            Trigger::Festival { calendar: Calendar::new(Vec::new(), FESTIVAL_YEARS) }
                        }
                    }
                }
                "churn_risk" => {
                    unused("date", r.date.is_some(), problems);
                    unused("days", r.days.is_some(), problems);
                    unused("feb29", r.feb29.is_some(), problems);
                    let below = r.below.unwrap_or(self.model.at_risk_below);
                    if !(below > 0.0 && below < 1.0) {
                        problems.push(ConfigProblem::new(key("below"), "must be between 0 and 1 (e.g. 0.3)"));
                    }
                    if !self.model.enabled {
                        problems.push(ConfigProblem::new(key("trigger"), "churn_risk needs model.enabled = true"));
                    }
                    Trigger::ChurnRisk { below }
                }
                "inactivity" => {
                    unused("feb29", r.feb29.is_some(), problems);
                    unused("date", r.date.is_some(), problems);
                    match r.days {
                        Some(days) if (1..=3650).contains(&days) => Trigger::Inactivity { days },
                        Some(_) => {
                            problems.push(ConfigProblem::new(key("days"), "must be between 1 and 3650"));
                            Trigger::Inactivity { days: 1 }
                        }
                        None => {
                            problems.push(ConfigProblem::new(key("days"), "an inactivity rule needs days = N"));
                            Trigger::Inactivity { days: 1 }
                        }
                    }
                }
                "event" | "date" => {
                    unused("date", r.date.is_some(), problems);
                    unused("days", r.days.is_some(), problems);
                    unused("feb29", r.feb29.is_some(), problems);
                    crate::entry::rule_trigger(r, &key, problems)
                }
                other => {
                    problems.push(ConfigProblem::new(
                        key("trigger"),
                        format!(
                            "unknown trigger {other:?} (birthday, lunar_birthday, anniversary, holiday, festival, \
                             inactivity, churn_risk, event or date)"
                        ),
                    ));
                    continue;
                }
            };
            crate::entry::unused_entry_keys(r, &key, problems);
            let purpose = match r.purpose.as_deref() {
                None => crate::channels::Purpose::Marketing,
                Some(p) => crate::channels::Purpose::parse(p).unwrap_or_else(|| {
                    problems.push(ConfigProblem::new(key("purpose"), format!("{p:?}: use marketing or service")));
                    crate::channels::Purpose::Marketing
                }),
            };
            if r.trigger != "festival" && !r.festivals.is_empty() {
                problems.push(ConfigProblem::new(key("festivals"), format!("not used by a {} rule", r.trigger)));
            }
            if r.trigger != "churn_risk" && r.below.is_some() {
                problems.push(ConfigProblem::new(key("below"), format!("not used by a {} rule", r.trigger)));
            }
            if r.trigger != "holiday" && !r.names.is_empty() {
                let why = if r.trigger == "festival" { " (festival names come from the festival)" } else { "" };
                problems.push(ConfigProblem::new(key("names"), format!("not used by a {} rule{why}", r.trigger)));
            }
            if matches!(r.trigger.as_str(), "inactivity" | "churn_risk") && r.offset_days != 0 {
                problems.push(ConfigProblem::new(
                    key("offset_days"),
                    format!("not used by a {} rule: it is sent at the first send_at after the crossing", r.trigger),
                ));
            }
            let segments = self.check_segments(&r.segments, &key("segments"), problems);
            let priority = rule_priority(r, purpose, &key("priority"), problems);
            if r.fallback && channels.len() < 2 {
                problems.push(ConfigProblem::new(key("fallback"), "needs at least two channels to fall back between"));
            }
            let experiment = r
                .experiment
                .as_ref()
                .map(|e| experiment::check_experiment(e, &r.id, &trigger.sample_vars(), &key, problems));
            let conversion =
                experiment::check_conversion(r.conversion.as_ref(), &self.model.purchase_events, &key, problems);
            if problems.len() == before {
                rules.push(Rule {
                    id: r.id.clone(),
                    trigger,
                    channels,
                    template: r.template.clone(),
                    send_at,
                    offset_days: r.offset_days,
                    max_lateness,
                    enabled: r.enabled,
                    fallback: r.fallback,
                    purpose,
                    segments,
                    priority,
                    merge: r.merge,
                    quiet_hours: if r.quiet_hours { quiet_hours } else { crate::plan::quiet::QuietHours::NONE },
                    experiment,
                    conversion,
                });
            }
        }
        rules
    }
}

impl Settings {
    /// Reads, parses and checks in one go.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Settings, ConfigError> {
        Config::load(path, env)?.check()
    }

    /// The built-in defaults (no file, no environment).
    pub fn defaults() -> Settings {
        Settings::load(None, std::iter::empty()).expect("the built-in defaults are valid")
    }
}

// ---------------------------------------------------------------------------------------------
// Frequency caps, quiet hours and priority classes.

/// One `[[caps]]` entry: at most `max` `purpose` messages `per` window on `channels`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    /// The channels counted together; empty or `["any"]`: all channels.
    #[serde(default)]
    pub channels: Vec<String>,
    /// `marketing` (the default) or `service`.
    #[serde(default)]
    pub purpose: Option<String>,
    pub max: u32,
    /// The rolling window, e.g. `1d`, `7d`, `12h`.
    pub per: String,
}

/// `[quiet_hours]`: each channel's sending hours, `HH:MM-HH:MM` member-local, or `off`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursConfig {
    #[serde(default = "default_day_hours")]
    pub sms: String,
    #[serde(default = "default_off")]
    pub email: String,
    #[serde(default = "default_day_hours")]
    pub push: String,
    #[serde(default = "default_off")]
    pub webhook: String,
}

impl Default for QuietHoursConfig {
    fn default() -> Self {
        QuietHoursConfig {
            sms: default_day_hours(),
            email: default_off(),
            push: default_day_hours(),
            webhook: default_off(),
        }
    }
}

fn default_day_hours() -> String {
    "08:00-21:00".into()
}
fn default_off() -> String {
    "off".into()
}

impl QuietHoursConfig {
    fn check(&self, problems: &mut Vec<ConfigProblem>) -> crate::plan::quiet::QuietHours {
        use crate::plan::quiet::Hours;
        let mut one = |key: &str, text: &str| {
            Hours::parse(text).unwrap_or_else(|e| {
                problems.push(ConfigProblem::new(format!("quiet_hours.{key}"), e));
                None
            })
        };
        crate::plan::quiet::QuietHours {
            sms: one("sms", &self.sms),
            email: one("email", &self.email),
            push: one("push", &self.push),
            webhook: one("webhook", &self.webhook),
        }
    }
}

/// The caps in force: the defaults when `caps` is absent, none for `caps = []`.
fn check_caps(caps: Option<&[CapConfig]>, problems: &mut Vec<ConfigProblem>) -> Vec<crate::plan::caps::Cap> {
    let Some(caps) = caps else { return crate::plan::caps::default_caps() };
    let mut out = Vec::new();
    for (i, c) in caps.iter().enumerate() {
        let key = |field: &str| format!("caps[{i}].{field}");
        let before = problems.len();
        let mut channels = Vec::new();
        let any = c.channels.iter().any(|ch| ch == "any");
        if any && c.channels.len() > 1 {
            problems.push(ConfigProblem::new(key("channels"), "\"any\" stands alone (it means every channel)"));
        }
        for ch in c.channels.iter().filter(|ch| *ch != "any") {
            match ChannelKind::parse(ch) {
                Some(k) if !channels.contains(&k) => channels.push(k),
                Some(_) => problems.push(ConfigProblem::new(key("channels"), format!("{ch:?} is listed twice"))),
                None => problems.push(ConfigProblem::new(
                    key("channels"),
                    format!("unknown channel {ch:?} (sms, email, push, webhook, or \"any\")"),
                )),
            }
        }
        let purpose = match c.purpose.as_deref() {
            None => crate::channels::Purpose::Marketing,
            Some(p) => crate::channels::Purpose::parse(p).unwrap_or_else(|| {
                problems.push(ConfigProblem::new(key("purpose"), format!("{p:?}: use marketing or service")));
                crate::channels::Purpose::Marketing
            }),
        };
        if c.max == 0 {
            problems.push(ConfigProblem::new(key("max"), "must be at least 1 (to send nothing, disable the rules)"));
        }
        let per = match parse_duration(&c.per) {
            Ok(d) if d > SignedDuration::ZERO && d <= SignedDuration::from_hours(24 * 366) => d,
            Ok(_) => {
                problems.push(ConfigProblem::new(key("per"), "must be longer than zero and at most 366d"));
                SignedDuration::ZERO
            }
            Err(e) => {
                problems.push(ConfigProblem::new(key("per"), e));
                SignedDuration::ZERO
            }
        };
        if problems.len() == before {
            out.push(crate::plan::caps::Cap { channels, purpose, max: c.max, per, per_text: c.per.trim().to_string() });
        }
    }
    out
}

/// A rule's priority class: as written, or from its purpose and trigger.
fn rule_priority(
    r: &RuleConfig,
    purpose: crate::channels::Purpose,
    key: &str,
    problems: &mut Vec<ConfigProblem>,
) -> crate::plan::collide::Priority {
    use crate::plan::collide::Priority;
    match r.priority.as_deref() {
        Some(p) => Priority::parse(p).unwrap_or_else(|| {
            problems.push(ConfigProblem::new(key, format!("{p:?}: use service, lifecycle or promotional")));
            Priority::Lifecycle
        }),
        None if purpose == crate::channels::Purpose::Service => Priority::Service,
        None if matches!(r.trigger.as_str(), "holiday" | "festival") => Priority::Promotional,
        None => Priority::Lifecycle,
    }
}

fn env_value(value: &str, kind: Kind) -> Result<toml::Value, String> {
    match kind {
        Kind::Str => Ok(toml::Value::String(value.to_string())),
        Kind::Int => value
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("{value:?} is not a whole number")),
        Kind::Bool => match value.trim() {
            "true" | "1" | "yes" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("{value:?} is not true or false")),
        },
    }
}

fn set_dotted(doc: &mut toml::Table, key: &str, value: toml::Value) {
    let mut table = doc;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            table.insert(part.to_string(), value);
            return;
        }
        let entry = table.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        table = entry.as_table_mut().expect("just made a table");
    }
}

/// `250ms`, `90s`, `30m`, `6h`, `2d`, or combinations such as `1h30m`.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let bad = || format!("{text:?} is not a duration (e.g. 90s, 30m, 6h, 2d)");
    let mut total: i64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let millis = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n.checked_mul(millis).and_then(|ms| total.checked_add(ms)).ok_or_else(bad)?;
    }
    Ok(SignedDuration::from_millis(total))
}

/// `HH:MM`, 24-hour.
pub fn parse_send_at(text: &str) -> Result<Time, String> {
    let bad = || format!("{text:?} is not a time of day as HH:MM (e.g. 09:30)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

/// `MM-DD`; Feb 29 is allowed (a holiday on it falls only in leap years).
pub fn parse_month_day(text: &str) -> Result<(i8, i8), String> {
    let bad = || format!("{text:?} is not a month and day as MM-DD (e.g. 12-25)");
    let (m, d) = text.split_once('-').ok_or_else(bad)?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    let d: i8 = d.parse().map_err(|_| bad())?;
    jiff::civil::Date::new(2024, m, d).map_err(|_| bad())?;
    Ok((m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn problems(toml: &str, vars: &[(&str, &str)]) -> Vec<String> {
        match Config::from_toml(toml, "test.toml", env(vars)).and_then(Config::check) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid(p)) => p.into_iter().map(|p| p.key).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn defaults_run_on_sqlite_with_the_outbox() {
        let s = Settings::defaults();
        assert_eq!(s.raw.database.url, "sqlite://tidings.db");
        assert_eq!(s.raw.http.addr, "127.0.0.1:8080");
        assert_eq!(s.raw.channels.names(ChannelKind::Sms), ["outbox"]);
        let ids: Vec<_> = s.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["birthday", "anniversary", "new-year", "winback-30"]);
    }

    #[test]
    fn database_urls_pick_sqlite_or_postgres_and_nothing_else() {
        for url in ["sqlite://t.db", "sqlite::memory:", "postgres://u@h/db", "postgresql://u@h:5432/db?sslmode=disable"]
        {
            assert!(problems("", &[("TIDINGS_DATABASE_URL", url)]).is_empty(), "{url}");
        }
        for url in ["mysql://u@h/db", "tidings.db", "postgres:/db"] {
            assert_eq!(problems("", &[("TIDINGS_DATABASE_URL", url)]), ["database.url"], "{url}");
        }
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tidings.example.toml");
        // Secrets come from files in the example; give them through the environment instead.
        let s = Settings::load(Some(&path), env(&[])).expect("example parses");
        assert_eq!(s.raw.programme.time_zone, "Asia/Shanghai");
        assert_eq!(s.rules.len(), 8);
        assert!(s.calendar.festivals().iter().any(|f| f.id == "founders_day"));
        assert!(s.raw.twilio.is_some() && s.raw.smtp.is_some());
    }

    #[test]
    fn environment_overrides_name_their_variable() {
        let c = Config::from_toml("", "t", env(&[("TIDINGS_HTTP_ADDR", "127.0.0.1:9999"), ("PATH", "/bin")])).unwrap();
        assert_eq!(c.http.addr, "127.0.0.1:9999");
        let c =
            Config::from_toml("[dispatch]\nbatch_size = 5", "t", env(&[("TIDINGS_DISPATCH_BATCH_SIZE", "7")])).unwrap();
        assert_eq!(c.dispatch.batch_size, 7);
        assert_eq!(problems("", &[("TIDINGS_HTTP_ADRR", "x")]), ["TIDINGS_HTTP_ADRR"]);
        assert_eq!(problems("", &[("TIDINGS_TEST_POSTGRES_URL", "postgres://x")]), Vec::<String>::new());
        assert_eq!(problems("", &[("TIDINGS_DISPATCH_BATCH_SIZE", "many")]), ["TIDINGS_DISPATCH_BATCH_SIZE"]);
    }

    #[test]
    fn a_wrong_key_is_named_at_load() {
        let err = Config::from_toml("[http]\nadress = \"x\"", "t.toml", env(&[])).unwrap_err().to_string();
        assert!(err.contains("adress") && err.contains("t.toml"), "{err}");
        let err = Config::from_toml("[[rules]]\nid = \"a\"\ntriger = \"birthday\"", "t.toml", env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("triger"), "{err}");
    }

    #[test]
    fn meaning_is_checked_with_the_key_named() {
        assert_eq!(problems("[programme]\ntime_zone = \"Mars/Base\"", &[]), ["programme.time_zone"]);
        assert_eq!(problems("[http]\naddr = \"localhost\"", &[]), ["http.addr"]);
        assert_eq!(problems("[log]\nlevel = \"verbose=loud=yes\"", &[]), ["log.level"]);
        assert_eq!(
            problems("[dispatch]\nretry_ambiguous = [\"email\", \"fax\"]", &[]),
            ["dispatch.retry_ambiguous[1]"]
        );
        assert_eq!(problems("[dispatch]\nlease = \"soon\"", &[]), ["dispatch.lease"]);
        assert_eq!(problems("[evaluation]\ntick = \"every minute\"", &[]), ["evaluation.tick"]);
        let rule = |extra: &str| {
            format!(
                "[[rules]]\nid = \"r\"\ntrigger = \"birthday\"\nchannels = [\"sms\"]\ntemplate = \"birthday\"\n{extra}"
            )
        };
        assert_eq!(problems(&rule("send_at = \"25:00\""), &[]), ["rules[0].send_at"]);
        assert_eq!(problems(&rule("feb29 = \"mar2\""), &[]), ["rules[0].feb29"]);
        assert_eq!(problems(&rule("days = 3"), &[]), ["rules[0].days"]);
        assert_eq!(problems(&rule("max_lateness = \"6 hours\""), &[]), ["rules[0].max_lateness"]);
        assert_eq!(
            problems("[[rules]]\nid = \"h\"\ntrigger = \"holiday\"\nchannels = [\"fax\"]\ntemplate = \"holiday\"", &[]),
            ["rules[0].channels", "rules[0].date"]
        );
    }

    #[test]
    fn caps_quiet_hours_and_priorities_are_checked() {
        use crate::plan::collide::Priority;
        let s = Settings::defaults();
        assert_eq!(s.caps, crate::plan::caps::default_caps());
        assert_eq!(s.quiet_hours.sms.map(|h| h.to_string()).as_deref(), Some("08:00-21:00"));
        assert_eq!(s.quiet_hours.email, None);
        let priorities: Vec<Priority> = s.rules.iter().map(|r| r.priority).collect();
        assert_eq!(priorities, [Priority::Lifecycle, Priority::Lifecycle, Priority::Promotional, Priority::Lifecycle]);
        let none = Config::from_toml("caps = []", "t", env(&[])).unwrap().check().unwrap();
        assert!(none.caps.is_empty());
        let cap = |body: &str| format!("[[caps]]\n{body}");
        assert_eq!(problems(&cap("channels = [\"fax\"]\nmax = 1\nper = \"1d\""), &[]), ["caps[0].channels"]);
        assert_eq!(problems(&cap("max = 0\nper = \"1d\""), &[]), ["caps[0].max"]);
        assert_eq!(problems(&cap("max = 1\nper = \"daily\""), &[]), ["caps[0].per"]);
        assert_eq!(problems(&cap("max = 1\nper = \"1d\"\npurpose = \"spam\""), &[]), ["caps[0].purpose"]);
        assert_eq!(problems(&cap("channels = [\"any\", \"sms\"]\nmax = 1\nper = \"1d\""), &[]), ["caps[0].channels"]);
        assert!(problems(&cap("channels = [\"any\"]\nmax = 2\nper = \"1d\""), &[]).is_empty());
        assert!(Config::from_toml(&cap("max = 1\nper = \"1d\"\nwindow = 3"), "t", env(&[])).is_err());
        assert_eq!(problems("[quiet_hours]\nsms = \"8am-9pm\"", &[]), ["quiet_hours.sms"]);
        assert_eq!(problems("", &[("TIDINGS_QUIET_HOURS_PUSH", "09:00-09:00")]), ["quiet_hours.push"]);
        let rule = |extra: &str| {
            format!(
                "[[rules]]\nid = \"r\"\ntrigger = \"birthday\"\nchannels = [\"sms\"]\ntemplate = \"birthday\"\n{extra}"
            )
        };
        assert_eq!(problems(&rule("priority = \"urgent\""), &[]), ["rules[0].priority"]);
        let urgent =
            Config::from_toml(&rule("purpose = \"service\"\nquiet_hours = false\nmerge = true"), "t", env(&[]))
                .unwrap()
                .check()
                .unwrap();
        let r = &urgent.rules[0];
        assert_eq!(
            (r.priority, r.merge, r.quiet_hours),
            (Priority::Service, true, crate::plan::quiet::QuietHours::NONE)
        );
    }

    #[test]
    fn a_missing_secret_is_reported_at_start_up_with_its_key() {
        let toml = "[channels]\nsms = \"twilio\"\n[twilio]\naccount_sid = \"AC1\"\nfrom = \"+14155550100\"";
        assert_eq!(problems(toml, &[]), ["twilio.auth_token"]);
        assert_eq!(problems(toml, &[("TIDINGS_TWILIO_AUTH_TOKEN", "secret")]), Vec::<String>::new());
        assert_eq!(problems("[channels]\nemail = \"smtp\"", &[]), ["channels.email"]);
    }

    #[test]
    fn a_secret_comes_from_a_systemd_credential_when_the_configuration_names_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("smtp.password"), "from-credential\n").unwrap();
        let file = dir.path().join("own-file");
        std::fs::write(&file, "from-file").unwrap();
        let get = |inline: Option<&str>, file: Option<&std::path::Path>, key: &str| {
            let inline = inline.map(Secret::new);
            resolve_secret_in(inline.as_ref(), file, key, Some(dir.path())).map(|s| s.expose().to_string())
        };
        assert_eq!(get(None, None, "smtp.password").unwrap(), "from-credential");
        // What the configuration names wins over a credential.
        assert_eq!(get(Some("inline"), None, "smtp.password").unwrap(), "inline");
        assert_eq!(get(None, Some(&file), "smtp.password").unwrap(), "from-file");
        let missing = get(None, None, "twilio.auth_token").unwrap_err();
        assert_eq!(missing.key, "twilio.auth_token");
        assert!(missing.problem.contains("systemd credential named twilio.auth_token"), "{}", missing.problem);
    }

    #[test]
    fn secrets_are_never_printed() {
        let c = Config::from_toml("[twilio]\naccount_sid = \"AC1\"\nauth_token = \"hunter2\"", "t", env(&[])).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn durations_parse() {
        for (text, ms) in [
            ("250ms", 250),
            ("90s", 90_000),
            ("30m", 1_800_000),
            ("6h", 21_600_000),
            ("2d", 172_800_000),
            ("1h30m", 5_400_000),
        ] {
            assert_eq!(parse_duration(text).unwrap().as_millis(), ms, "{text}");
        }
        for bad in ["", "6", "h", "6 hours", "-1h", "5x", "1h30"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
