//! `[[journeys]]` as written, and its meaning check. A journey's entry is written with exactly
//! the keys a rule has (`trigger`, `days`, `send_at`, `max_lateness`, `purpose`, `segments`…) and
//! is checked by the rule checker itself, so every trigger a rule may use starts a journey too.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde::Deserialize;

use super::{Coupon, DEFAULT_REENTRY_DAYS, Journey, Reentry, Step};
use crate::channels::ChannelKind;
use crate::config::{Config, ConfigProblem, RuleConfig, parse_duration};
use crate::triggers::calendar::Festival;

/// One `[[journeys]]` entry as written. The keys not named here are the entry's rule keys.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct JourneyConfig {
    pub id: String,
    /// Event kinds that end the journey at once (e.g. `["purchase"]`).
    #[serde(default)]
    pub exit_on: Vec<String>,
    /// `never`, `always` or `after 90d`; default `after 30d`.
    #[serde(default)]
    pub reentry: Option<String>,
    #[serde(default)]
    pub steps: Vec<StepConfig>,
    /// The entry trigger and its keys, as a rule has them.
    #[serde(flatten)]
    pub entry: toml::Table,
}

/// One `[[journeys.steps]]` entry.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// Days from entry: `"0d"`, `"7d"`.
    pub after: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub fallback: bool,
    pub template: String,
    #[serde(default)]
    pub unless: Vec<String>,
    #[serde(default)]
    pub segments: Vec<String>,
    #[serde(default)]
    pub coupon: Option<CouponConfig>,
    /// Variants of this step and a holdout (see README: Experiments and conversions).
    #[serde(default)]
    pub experiment: Option<crate::config::ExperimentConfig>,
}

/// `coupon = "<pool>"` or `coupon = { signed = "<prefix>" }`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum CouponConfig {
    Pool(String),
    Signed { signed: String },
}

/// `[coupons]`: the signing secret for generated codes and the pools' warning thresholds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponsConfig {
    /// The key generated codes are signed with (at least 32 characters), or `secret_file`.
    #[serde(default)]
    pub secret: Option<crate::config::Secret>,
    #[serde(default)]
    pub secret_file: Option<std::path::PathBuf>,
    /// Warn when a pool has fewer codes left than this (default 100).
    #[serde(default = "default_warn_below")]
    pub warn_below: i64,
    /// Per pool: `[coupons.pools.winback] warn_below = 500`.
    #[serde(default)]
    pub pools: BTreeMap<String, PoolConfig>,
}

impl Default for CouponsConfig {
    fn default() -> Self {
        CouponsConfig { secret: None, secret_file: None, warn_below: default_warn_below(), pools: BTreeMap::new() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    pub warn_below: i64,
}

fn default_warn_below() -> i64 {
    100
}

/// The journeys a daemon runs with when the configuration names none: the win-back journey,
/// disabled (see README: Journeys).
pub fn default_journeys() -> Vec<JourneyConfig> {
    let text = r#"
        [[journeys]]
        id = "winback-journey"
        enabled = false
        trigger = "inactivity"
        days = 60
        send_at = "10:00"
        max_lateness = "12h"
        exit_on = ["purchase"]
        reentry = "after 90d"

        [[journeys.steps]]
        after = "0d"
        channel = "sms"
        template = "winback_journey"
        coupon = "winback"

        [[journeys.steps]]
        after = "7d"
        channel = "email"
        template = "winback_journey"
        unless = ["purchase"]

        [[journeys.steps]]
        after = "14d"
        channel = "push"
        template = "winback_journey"
        unless = ["purchase"]
    "#;
    #[derive(Deserialize)]
    struct Doc {
        journeys: Vec<JourneyConfig>,
    }
    toml::from_str::<Doc>(text).expect("the default journeys parse").journeys
}

/// Keys a journey sets on its steps, not on its entry.
const STEP_KEYS: &[&str] = &["channels", "channel", "template", "fallback", "after", "coupon", "unless", "experiment"];

/// Checks every journey: the entry as a rule (problems keyed `journeys[i].…`), the steps, the
/// exit and re-entry rules; ids distinct from each other and from the rules'.
pub fn check(
    config: &Config,
    festivals: &[Festival],
    quiet_hours: crate::plan::quiet::QuietHours,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<Journey> {
    let mut out = Vec::new();
    let mut seen: std::collections::HashSet<&str> = config.rules.iter().map(|r| r.id.as_str()).collect();
    for (i, j) in config.journeys.iter().enumerate() {
        let key = |field: &str| format!("journeys[{i}].{field}");
        let before = problems.len();
        if !seen.insert(j.id.as_str()) {
            problems.push(ConfigProblem::new(key("id"), format!("{:?} is used by another rule or journey", j.id)));
        }
        for k in STEP_KEYS {
            if j.entry.contains_key(*k) {
                problems.push(ConfigProblem::new(key(k), "set on each of [[journeys.steps]], not on the journey"));
            }
        }
        if j.steps.is_empty() {
            problems.push(ConfigProblem::new(key("steps"), "a journey needs at least one [[journeys.steps]]"));
        }
        let steps: Vec<Step> =
            j.steps.iter().enumerate().filter_map(|(n, s)| step(config, &j.id, i, n, s, problems)).collect();
        let entry = entry_rule(config, festivals, quiet_hours, i, j, steps.first(), problems);
        let reentry = match j.reentry.as_deref().map(parse_reentry) {
            None => Reentry::After(SignedDuration::from_hours(24 * DEFAULT_REENTRY_DAYS)),
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                problems.push(ConfigProblem::new(key("reentry"), e));
                Reentry::Always
            }
        };
        if j.exit_on.iter().any(|k| k.trim().is_empty()) {
            problems.push(ConfigProblem::new(key("exit_on"), "name event kinds, e.g. [\"purchase\"]"));
        }
        if let (Some(entry), true) = (entry, problems.len() == before) {
            out.push(Journey { id: j.id.clone(), entry, exit_on: j.exit_on.clone(), reentry, steps });
        }
    }
    out
}

/// The entry checked as a one-rule configuration by the rule checker.
fn entry_rule(
    config: &Config,
    festivals: &[Festival],
    quiet_hours: crate::plan::quiet::QuietHours,
    i: usize,
    j: &JourneyConfig,
    first: Option<&Step>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<crate::triggers::Rule> {
    let mut table = j.entry.clone();
    for k in STEP_KEYS {
        table.remove(*k);
    }
    table.insert("id".into(), j.id.clone().into());
    let channels =
        first.map_or_else(|| vec!["sms".to_string()], |s| s.channels.iter().map(|c| c.to_string()).collect());
    table.insert("channels".into(), toml::Value::Array(channels.into_iter().map(Into::into).collect()));
    table.insert("template".into(), first.map_or_else(String::new, |s| s.template.clone()).into());
    let rule: RuleConfig = match toml::Value::Table(table).try_into() {
        Ok(r) => r,
        Err(e) => {
            let e: toml::de::Error = e;
            problems.push(ConfigProblem::new(format!("journeys[{i}]"), e.message().to_string()));
            return None;
        }
    };
    let one = Config { rules: vec![rule], journeys: Vec::new(), ..config.clone() };
    let mut found = Vec::new();
    let mut rules = one.check_rules(festivals, quiet_hours, &mut found);
    problems.extend(found.into_iter().map(|p| ConfigProblem {
        key: p.key.replacen("rules[0]", &format!("journeys[{i}]"), 1),
        problem: p.problem.replace("rule", "journey entry"),
    }));
    rules.pop()
}

fn step(
    config: &Config,
    journey: &str,
    i: usize,
    n: usize,
    s: &StepConfig,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Step> {
    let key = |field: &str| format!("journeys[{i}].steps[{n}].{field}");
    let before = problems.len();
    let after_days = match parse_duration(&s.after) {
        Ok(d) if d.is_negative() => {
            problems.push(ConfigProblem::new(key("after"), "must not be negative"));
            0
        }
        Ok(d) if d.as_secs() % 86_400 != 0 => {
            problems.push(ConfigProblem::new(key("after"), "a whole number of days, e.g. \"7d\""));
            0
        }
        Ok(d) => (d.as_secs() / 86_400) as u32,
        Err(e) => {
            problems.push(ConfigProblem::new(key("after"), e));
            0
        }
    };
    let names: Vec<&String> = match (&s.channel, s.channels.is_empty()) {
        (Some(c), true) => vec![c],
        (None, false) => s.channels.iter().collect(),
        (Some(_), false) => {
            problems.push(ConfigProblem::new(key("channel"), "use channel or channels, not both"));
            Vec::new()
        }
        (None, true) => {
            problems.push(ConfigProblem::new(key("channel"), "a step needs channel = \"sms\" (or channels = [...])"));
            Vec::new()
        }
    };
    let mut channels = Vec::new();
    for c in names {
        match ChannelKind::parse(c) {
            Some(k) if !channels.contains(&k) => channels.push(k),
            Some(_) => problems.push(ConfigProblem::new(key("channels"), format!("{c:?} is listed twice"))),
            None => problems.push(ConfigProblem::new(
                key("channels"),
                format!("unknown channel {c:?} (sms, email, push or webhook)"),
            )),
        }
    }
    if s.fallback && channels.len() < 2 {
        problems.push(ConfigProblem::new(key("fallback"), "needs at least two channels to fall back between"));
    }
    if s.template.trim().is_empty() {
        problems.push(ConfigProblem::new(key("template"), "name a template"));
    }
    if s.unless.iter().any(|k| k.trim().is_empty()) {
        problems.push(ConfigProblem::new(key("unless"), "name event kinds, e.g. [\"purchase\"]"));
    }
    let segments = config.check_segments(&s.segments, &key("segments"), problems);
    let coupon = match &s.coupon {
        None => None,
        Some(CouponConfig::Pool(pool)) => {
            if !crate::coupons::valid_pool(pool) {
                problems.push(ConfigProblem::new(key("coupon"), format!("{pool:?}: use letters, digits, - and _")));
            }
            Some(Coupon::Pool(pool.clone()))
        }
        Some(CouponConfig::Signed { signed }) => {
            if let Err(e) = crate::coupons::valid_prefix(signed) {
                problems.push(ConfigProblem::new(key("coupon.signed"), e));
            }
            Some(Coupon::Signed { prefix: signed.clone() })
        }
    };
    // A step's experiment is its own: the default id names the journey and the step.
    let experiment = s.experiment.as_ref().map(|e| {
        let id = format!("{journey}-s{}", n + 1);
        crate::config::check_experiment(e, &id, &serde_json::Map::new(), &key, problems)
    });
    (problems.len() == before).then(|| Step {
        after_days,
        channels,
        fallback: s.fallback,
        template: s.template.clone(),
        unless: s.unless.clone(),
        segments,
        coupon,
        experiment,
    })
}

/// `never`, `always`, or `after <duration>` (e.g. `after 90d`).
pub fn parse_reentry(text: &str) -> Result<Reentry, String> {
    match text.trim() {
        "never" => Ok(Reentry::Never),
        "always" => Ok(Reentry::Always),
        other => match other.strip_prefix("after ") {
            Some(d) => match parse_duration(d.trim()) {
                Ok(d) if d.is_positive() => Ok(Reentry::After(d)),
                Ok(_) => Err("the gap must be positive".into()),
                Err(e) => Err(e),
            },
            None => Err(format!("{other:?}: use \"never\", \"always\" or \"after 90d\"")),
        },
    }
}

/// `[coupons]`: the signer, when a secret is set or a step needs one, and the thresholds.
pub fn check_coupons(
    config: &Config,
    journeys: &[Journey],
    problems: &mut Vec<ConfigProblem>,
) -> crate::coupons::Coupons {
    let c = &config.coupons;
    let signed = journeys
        .iter()
        .any(|j| j.entry.enabled && j.steps.iter().any(|s| matches!(s.coupon, Some(Coupon::Signed { .. }))));
    let given = c.secret.is_some() || c.secret_file.is_some();
    let signer = if signed || given {
        match crate::config::resolve_secret(c.secret.as_ref(), c.secret_file.as_deref(), "coupons.secret")
            .and_then(|s| crate::coupons::Signer::new(&s, "coupons.secret"))
        {
            Ok(s) => Some(s),
            Err(p) => {
                problems.push(p);
                None
            }
        }
    } else {
        None
    };
    if c.warn_below < 0 {
        problems.push(ConfigProblem::new("coupons.warn_below", "must not be negative"));
    }
    for (pool, p) in &c.pools {
        if !crate::coupons::valid_pool(pool) {
            problems.push(ConfigProblem::new(format!("coupons.pools.{pool}"), "use letters, digits, - and _"));
        }
        if p.warn_below < 0 {
            problems.push(ConfigProblem::new(format!("coupons.pools.{pool}.warn_below"), "must not be negative"));
        }
    }
    crate::coupons::Coupons {
        signer,
        warn_below: c.warn_below,
        pools: c.pools.iter().map(|(k, v)| (k.clone(), v.warn_below)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reentry_parses() {
        assert_eq!(parse_reentry("never"), Ok(Reentry::Never));
        assert_eq!(parse_reentry("always"), Ok(Reentry::Always));
        assert_eq!(parse_reentry("after 90d"), Ok(Reentry::After(SignedDuration::from_hours(24 * 90))));
        assert!(parse_reentry("sometimes").unwrap_err().contains("never"));
        assert!(parse_reentry("after 0d").is_err());
    }

    fn problems(toml: &str) -> Vec<String> {
        match Config::from_toml(toml, "test.toml", Vec::new()).and_then(Config::check) {
            Ok(_) => Vec::new(),
            Err(crate::config::ConfigError::Invalid(p)) => p.into_iter().map(|p| p.to_string()).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn journey_problems_name_their_key() {
        let bad = problems(
            r#"
            rules = []
            [[journeys]]
            id = "j"
            trigger = "inactivity"
            channels = ["sms"]
            reentry = "sometimes"
            [[journeys.steps]]
            after = "36h"
            channel = "fax"
            template = "winback_journey"
            coupon = { signed = "wb" }
            "#,
        );
        for key in [
            "journeys[0].days:",
            "journeys[0].channels:",
            "journeys[0].reentry:",
            "journeys[0].steps[0].after:",
            "journeys[0].steps[0].channels:",
            "journeys[0].steps[0].coupon.signed:",
        ] {
            assert!(bad.iter().any(|p| p.starts_with(key)), "{key} in {bad:?}");
        }
        let unknown = problems("rules = []\n[[journeys]]\nid = \"j\"\ntrigger = \"birthday\"\ncolour = \"red\"\n");
        assert!(unknown.iter().any(|p| p.starts_with("journeys[0]") && p.contains("colour")), "{unknown:?}");
        let signed = problems(
            "rules = []\n[[journeys]]\nid = \"j\"\ntrigger = \"birthday\"\n[[journeys.steps]]\nafter = \"0d\"\n\
             channel = \"sms\"\ntemplate = \"birthday\"\ncoupon = { signed = \"WB\" }\n",
        );
        assert!(signed.iter().any(|p| p.starts_with("coupons.secret:")), "{signed:?}");
    }

    #[test]
    fn the_builtin_winback_journey_is_there_disabled() {
        let s = crate::config::Settings::defaults();
        let j = &s.journeys[0];
        assert_eq!((j.id.as_str(), j.entry.enabled), ("winback-journey", false));
        let days: Vec<u32> = j.steps.iter().map(|s| s.after_days).collect();
        assert_eq!(days, [0, 7, 14]);
        assert_eq!(j.steps[0].coupon, Some(Coupon::Pool("winback".into())));
        assert_eq!(j.exit_on, ["purchase"]);
    }
}
