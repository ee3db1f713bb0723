//! The consent policy: whether a member may be sent a message of a purpose on a channel, given
//! what they said about it (granted, revoked, or nothing). Pure: the dispatcher loads the
//! batch's consent and asks here; `Store::mark_sending_consented` applies the same rule again in
//! the statement that hands a message to its provider.

use serde::Deserialize;

use crate::channels::{ChannelKind, Purpose};
use crate::config::Secret;

/// What a purpose needs before a message of it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A granted consent for that channel.
    Required,
    /// Nothing, unless the member revoked it.
    UnlessRevoked,
}

/// `[consent]`: the rule for each purpose, and the tokens of the webhooks that change consent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentConfig {
    /// Marketing messages: `required` (default) or `unless_revoked`.
    #[serde(default = "required")]
    pub marketing: Rule,
    /// Service messages (points about to expire, receipts): `unless_revoked` (default) or
    /// `required`.
    #[serde(default = "unless_revoked")]
    pub service: Rule,
    /// The token the Aliyun and Tencent Cloud inbound SMS webhooks must carry
    /// (`?token=…`); unset: those endpoints are off.
    #[serde(default)]
    pub inbound_token: Option<Secret>,
    /// The token the complaint webhook (`POST /hooks/complaints`, raw ARF reports) must carry
    /// (`?token=…` or `Authorization: Bearer …`); unset: it is off.
    #[serde(default)]
    pub complaint_token: Option<Secret>,
}

fn required() -> Rule {
    Rule::Required
}

fn unless_revoked() -> Rule {
    Rule::UnlessRevoked
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            marketing: Rule::Required,
            service: Rule::UnlessRevoked,
            inbound_token: None,
            complaint_token: None,
        }
    }
}

/// The two rules, as the dispatcher and the store use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentPolicy {
    pub marketing: Rule,
    pub service: Rule,
}

impl Default for ConsentPolicy {
    fn default() -> Self {
        ConsentPolicy { marketing: Rule::Required, service: Rule::UnlessRevoked }
    }
}

impl From<&ConsentConfig> for ConsentPolicy {
    fn from(c: &ConsentConfig) -> Self {
        ConsentPolicy { marketing: c.marketing, service: c.service }
    }
}

impl ConsentPolicy {
    /// Both purposes sent unless revoked: only a revocation stops a message.
    pub const UNLESS_REVOKED: ConsentPolicy =
        ConsentPolicy { marketing: Rule::UnlessRevoked, service: Rule::UnlessRevoked };

    pub fn rule(&self, purpose: Purpose) -> Rule {
        match purpose {
            Purpose::Marketing => self.marketing,
            Purpose::Service => self.service,
        }
    }

    /// Whether a granted consent is needed for `purpose` on `channel`. A webhook goes to the
    /// host system, not to the member: only a revocation stops it.
    pub fn requires_grant(&self, purpose: Purpose, channel: ChannelKind) -> bool {
        channel != ChannelKind::Webhook && self.rule(purpose) == Rule::Required
    }
}

/// Whether a message of `purpose` may go to the member on `channel`, given their consent there
/// (`Some(true)` granted, `Some(false)` revoked, `None` never said); `Err` is the skip reason.
pub fn decide(
    policy: &ConsentPolicy,
    purpose: Purpose,
    channel: ChannelKind,
    consent: Option<bool>,
) -> Result<(), String> {
    match consent {
        Some(false) => Err(format!("opted out of {} {channel}", purpose.as_str())),
        Some(true) => Ok(()),
        None if policy.requires_grant(purpose, channel) => {
            Err(format!("no {} consent for {channel}", purpose.as_str()))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChannelKind::*;
    use Purpose::*;

    fn check(
        policy: ConsentPolicy,
        purpose: Purpose,
        channel: ChannelKind,
        consent: Option<bool>,
        want: Result<(), &str>,
    ) {
        assert_eq!(
            decide(&policy, purpose, channel, consent),
            want.map_err(str::to_string),
            "{policy:?} {purpose:?} {channel} {consent:?}"
        );
    }

    #[test]
    fn default_policy_needs_consent_for_marketing_only() {
        let p = ConsentPolicy::default();
        check(p, Marketing, Sms, None, Err("no marketing consent for sms"));
        check(p, Marketing, Sms, Some(true), Ok(()));
        check(p, Marketing, Email, Some(false), Err("opted out of marketing email"));
        check(p, Service, Sms, None, Ok(()));
        check(p, Service, Push, Some(false), Err("opted out of service push"));
        check(p, Service, Email, Some(true), Ok(()));
    }

    #[test]
    fn unless_revoked_sends_without_consent_and_required_service_does_not() {
        let p = ConsentPolicy { marketing: Rule::UnlessRevoked, service: Rule::Required };
        check(p, Marketing, Sms, None, Ok(()));
        check(p, Marketing, Sms, Some(false), Err("opted out of marketing sms"));
        check(p, Service, Email, None, Err("no service consent for email"));
        check(p, Service, Email, Some(true), Ok(()));
    }

    #[test]
    fn webhooks_need_no_grant_but_honour_a_revocation() {
        let p = ConsentPolicy { marketing: Rule::Required, service: Rule::Required };
        check(p, Marketing, Webhook, None, Ok(()));
        check(p, Service, Webhook, Some(false), Err("opted out of service webhook"));
    }

    #[test]
    fn config_defaults_and_names() {
        let c: ConsentConfig = toml::from_str("").unwrap();
        assert_eq!(ConsentPolicy::from(&c), ConsentPolicy::default());
        let c: ConsentConfig = toml::from_str("marketing = \"unless_revoked\"\nservice = \"required\"").unwrap();
        assert_eq!(ConsentPolicy::from(&c), ConsentPolicy { marketing: Rule::UnlessRevoked, service: Rule::Required });
        assert!(toml::from_str::<ConsentConfig>("marketing = \"maybe\"").is_err());
        assert!(toml::from_str::<ConsentConfig>("markting = \"required\"").is_err());
    }
}
