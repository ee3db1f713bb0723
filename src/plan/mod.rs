//! Planning: occurrences become message rows. Pure functions: given the rule, the member, an
//! occurrence and "now", decide per channel whether a message is scheduled (and when) or skipped
//! (and why). Never touches the database; inserting the plan is the store's job, idempotent on
//! the dedupe key.

pub mod caps;
pub mod collide;
pub mod consent;
pub mod experiment;
pub mod quiet;
pub mod send_time;

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::channels::{ChannelKind, Purpose, PushDevice};
use crate::members::Member;
use crate::triggers::{Occurrence, Rule};

/// A message row to insert (ignored when its dedupe key exists).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub dedupe_key: String,
    pub rule_id: String,
    pub member_id: i64,
    pub occurrence: String,
    pub channel: ChannelKind,
    pub template: String,
    pub vars: Map<String, Value>,
    pub run_at: Timestamp,
    /// After this instant the message is skipped rather than sent late.
    pub deadline: Option<Timestamp>,
    /// `None`: scheduled. `Some(reason)`: recorded as skipped.
    pub skip: Option<String>,
    /// The channels to try, in order, when the member has no address on `channel`.
    pub fallback: Vec<ChannelKind>,
    pub purpose: Purpose,
    /// The experiment the member is in (the rule's), and their arm: a variant's id or `holdout`.
    pub experiment: Option<String>,
    pub variant: Option<String>,
}

/// The dedupe key of one (rule, member, occurrence, channel).
pub fn dedupe_key(rule_id: &str, member_id: i64, occurrence: &str, channel: ChannelKind) -> String {
    format!("{rule_id}:{member_id}:{occurrence}:{channel}")
}

/// The member's address on a channel, if they have one. For push, `devices` are the member's
/// registered devices (oldest first): the most recently registered one is used. `None` means
/// devices are not looked at (the outbox, and forecasts): the member is addressed by id.
pub fn address(member: &Member, channel: ChannelKind, devices: Option<&[PushDevice]>) -> Option<Address> {
    let plain = |to: String| Address { to, device: None };
    match channel {
        ChannelKind::Sms => member.phone.clone().filter(|p| !p.is_empty()).map(plain),
        ChannelKind::Email => member.email.clone().filter(|e| !e.is_empty()).map(plain),
        ChannelKind::Push => match devices {
            None => Some(plain(format!("member:{}", member.external_id))),
            Some(devices) => devices.last().map(|d| Address { to: d.token.clone(), device: Some(d.clone()) }),
        },
        ChannelKind::Webhook => Some(plain(member.external_id.clone())),
    }
}

/// Where a message goes on its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The phone number, email address, device token or member id.
    pub to: String,
    pub device: Option<PushDevice>,
}

/// Why a member gets nothing on a channel they have no address on.
pub fn no_address(channel: ChannelKind) -> &'static str {
    match channel {
        ChannelKind::Sms => "no phone number",
        ChannelKind::Email => "no email address",
        ChannelKind::Push => "no push device",
        ChannelKind::Webhook => "no member id",
    }
}

/// One message per channel of the rule for this occurrence, or, for a rule with `fallback`, one
/// message on the first of its channels that carries the rest as fallbacks (the member gets it
/// on the first channel they have an address on). The address is checked when the message is
/// sent, not here: one added in the meantime is used.
///
/// A message due in its channel's quiet hours (member-local, `tz`) is planned for the next
/// allowed time; the deadline stays `due + max_lateness`, and past it the message is skipped.
pub fn plan(
    rule: &Rule,
    member: &Member,
    occ: &Occurrence,
    now: Timestamp,
    tz: &jiff::tz::TimeZone,
) -> Vec<NewMessage> {
    let deadline = occ.due.checked_add(rule.max_lateness).ok();
    let late = deadline.is_some_and(|d| now > d);
    let (channels, fallback): (&[ChannelKind], &[ChannelKind]) = match rule.channels.split_first() {
        Some((first, rest)) if rule.fallback => (std::slice::from_ref(first), rest),
        _ => (&rule.channels, &[]),
    };
    let mut msgs: Vec<NewMessage> = channels
        .iter()
        .map(|&channel| {
            let (run_at, quiet) = match quiet::shift(occ.due, deadline, channel, rule.quiet_hours.get(channel), tz) {
                quiet::Shift::Now => (occ.due, None),
                quiet::Shift::Wait(at) => (at, None),
                quiet::Shift::Skip(reason) => (occ.due, Some(reason)),
            };
            NewMessage {
                dedupe_key: dedupe_key(&rule.id, member.id, &occ.key, channel),
                rule_id: rule.id.clone(),
                member_id: member.id,
                occurrence: occ.key.clone(),
                channel,
                template: rule.template.clone(),
                vars: occ.vars.clone(),
                run_at,
                deadline,
                skip: if late {
                    Some(format!("late: due {} and the rule allows {:#}", occ.due, rule.max_lateness))
                } else {
                    quiet
                },
                fallback: fallback.to_vec(),
                purpose: rule.purpose,
                experiment: None,
                variant: None,
            }
        })
        .collect();
    if let Some(e) = &rule.experiment {
        let arm = experiment::assign(e, member.id);
        msgs.iter_mut().for_each(|m| experiment::apply(e, &arm, m));
    }
    msgs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::{Feb29, Trigger};
    use jiff::SignedDuration;
    use jiff::civil::{date, time};

    fn member() -> Member {
        Member {
            id: 7,
            external_id: "M7".into(),
            name: "Ada".into(),
            phone: Some("+14155550100".into()),
            email: None,
            locale: None,
            time_zone: None,
            birth_date: Some(date(1990, 5, 1)),
            lunar_birthday: None,
            member_since: None,
            tier: None,
            points: 0,
            attributes: Map::new(),
            last_activity_at: None,
            value: None,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            change_seq: 0,
        }
    }

    fn rule() -> Rule {
        Rule {
            id: "bday".into(),
            trigger: Trigger::Birthday { feb29: Feb29::Feb28 },
            channels: vec![ChannelKind::Sms, ChannelKind::Email],
            template: "birthday".into(),
            send_at: time(9, 30, 0, 0),
            offset_days: 0,
            max_lateness: SignedDuration::from_hours(6),
            enabled: true,
            fallback: false,
            purpose: Purpose::Marketing,
            segments: Vec::new(),
            priority: Default::default(),
            merge: false,
            quiet_hours: crate::plan::quiet::QuietHours::NONE,
            experiment: None,
            conversion: crate::track::report::Conversion::default(),
        }
    }

    fn occ(due: &str) -> Occurrence {
        Occurrence { key: "birthday:2026".into(), date: date(2026, 5, 1), due: due.parse().unwrap(), vars: Map::new() }
    }

    #[test]
    fn one_message_per_channel_with_a_stable_key() {
        let now: Timestamp = "2026-05-01T09:00:00Z".parse().unwrap();
        let plan = plan(&rule(), &member(), &occ("2026-05-01T09:30:00Z"), now, &jiff::tz::TimeZone::UTC);
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].dedupe_key, "bday:7:birthday:2026:sms");
        assert_eq!(plan[0].skip, None);
        assert_eq!(plan[0].deadline, Some("2026-05-01T15:30:00Z".parse().unwrap()));
        assert_eq!(plan[1].dedupe_key, "bday:7:birthday:2026:email");
        // No email address yet: checked when it is due, so one added in the meantime is used.
        assert_eq!(plan[1].skip, None);
    }

    #[test]
    fn an_occurrence_past_its_lateness_is_skipped_not_sent() {
        let now: Timestamp = "2026-05-01T15:31:00Z".parse().unwrap();
        let plan = plan(&rule(), &member(), &occ("2026-05-01T09:30:00Z"), now, &jiff::tz::TimeZone::UTC);
        assert!(plan.iter().all(|m| m.skip.as_deref().is_some_and(|s| s.starts_with("late:"))), "{plan:?}");
        let on_time: Timestamp = "2026-05-01T15:30:00Z".parse().unwrap();
        let plan2 = super::plan(&rule(), &member(), &occ("2026-05-01T09:30:00Z"), on_time, &jiff::tz::TimeZone::UTC);
        assert_eq!(plan2[0].skip, None);
    }

    #[test]
    fn a_message_due_in_quiet_hours_waits_or_is_skipped_past_its_lateness() {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let sms_hours = quiet::Hours::parse("08:00-21:00").unwrap();
        let r = Rule { quiet_hours: quiet::QuietHours { sms: sms_hours, ..quiet::QuietHours::NONE }, ..rule() };
        // 06:00 in Shanghai: the SMS waits until 08:00; email has no quiet hours.
        let now: Timestamp = "2026-04-30T21:00:00Z".parse().unwrap();
        let p = plan(&r, &member(), &occ("2026-04-30T22:00:00Z"), now, &tz);
        assert_eq!(p[0].run_at, "2026-05-01T00:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(p[0].skip, None);
        assert_eq!(p[0].deadline, Some("2026-05-01T04:00:00Z".parse().unwrap()), "the deadline stays relative to due");
        assert_eq!(p[1].run_at, "2026-04-30T22:00:00Z".parse::<Timestamp>().unwrap());
        // With one hour of lateness allowed, 08:00 is too late: skipped, naming quiet hours.
        let strict = Rule { max_lateness: SignedDuration::from_hours(1), ..r.clone() };
        let p = plan(&strict, &member(), &occ("2026-04-30T22:00:00Z"), now, &tz);
        assert!(p[0].skip.as_deref().is_some_and(|s| s.starts_with("quiet hours:")), "{p:?}");
        assert_eq!(p[1].skip, None);
        // A rule that opts out is sent at 06:00.
        let urgent = Rule { quiet_hours: quiet::QuietHours::NONE, ..strict };
        assert_eq!(plan(&urgent, &member(), &occ("2026-04-30T22:00:00Z"), now, &tz)[0].skip, None);
    }
}
