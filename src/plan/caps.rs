//! Frequency caps: at most `max` messages of a purpose per member over a rolling window, on some
//! channels or across all of them (`1 marketing sms per 1d`, `2 marketing per 1d`). Pure: the
//! member's recent sends and the candidate are arguments; the dispatcher loads the sends for a
//! whole batch in one query and adds what the batch itself has decided to send.

use jiff::{SignedDuration, Timestamp};

use super::collide::Priority;
use crate::channels::{ChannelKind, Purpose};

/// One cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cap {
    /// The channels counted together; empty: every channel.
    pub channels: Vec<ChannelKind>,
    pub purpose: Purpose,
    pub max: u32,
    pub per: SignedDuration,
    /// `per` as written (`1d`, `7d`), for the skip reason.
    pub per_text: String,
}

impl Cap {
    fn covers(&self, channel: ChannelKind, purpose: Purpose) -> bool {
        self.purpose == purpose && (self.channels.is_empty() || self.channels.contains(&channel))
    }

    /// `1 marketing sms per 1d`, `2 marketing per 1d`, `3 marketing sms+push per 7d`.
    pub fn describe(&self) -> String {
        let channels: Vec<&str> = self.channels.iter().map(|c| c.as_str()).collect();
        let on = if channels.is_empty() { String::new() } else { format!(" {}", channels.join("+")) };
        format!("{} {}{on} per {}", self.max, self.purpose.as_str(), self.per_text)
    }
}

/// The caps a programme runs with when the configuration has no `caps` key: one marketing SMS
/// a day and three a week, and two marketing messages a day across all channels.
pub fn default_caps() -> Vec<Cap> {
    let cap = |channels: Vec<ChannelKind>, max, days: i64| Cap {
        channels,
        purpose: Purpose::Marketing,
        max,
        per: SignedDuration::from_hours(24 * days),
        per_text: format!("{days}d"),
    };
    vec![cap(vec![ChannelKind::Sms], 1, 1), cap(vec![ChannelKind::Sms], 3, 7), cap(Vec::new(), 2, 1)]
}

/// A message handed to a provider (or about to be, in this batch), as caps count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub channel: ChannelKind,
    pub purpose: Purpose,
    pub at: Timestamp,
}

/// The longest window any cap looks back over (how far back the dispatcher loads sends).
pub fn longest(caps: &[Cap]) -> SignedDuration {
    caps.iter().map(|c| c.per).max().unwrap_or(SignedDuration::ZERO)
}

/// Why a `purpose` message on `channel` with `priority` may not be sent to a member who already
/// got `sent`, if a cap forbids it: `capped: 1 marketing sms per 1d`. Service-priority messages
/// are never capped unless a cap names purpose service.
pub fn check(
    caps: &[Cap],
    sent: &[Sent],
    channel: ChannelKind,
    purpose: Purpose,
    priority: Priority,
    now: Timestamp,
) -> Option<String> {
    caps.iter()
        .filter(|cap| cap.covers(channel, purpose))
        .filter(|cap| priority != Priority::Service || cap.purpose == Purpose::Service)
        .find(|cap| {
            let since = now.checked_sub(cap.per).unwrap_or(Timestamp::MIN);
            let count = sent.iter().filter(|s| cap.covers(s.channel, s.purpose) && s.at > since).count();
            count >= cap.max as usize
        })
        .map(|cap| format!("capped: {}", cap.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    fn sent(channel: ChannelKind, purpose: Purpose, t: &str) -> Sent {
        Sent { channel, purpose, at: at(t) }
    }

    const NOW: &str = "2026-11-23T10:00:00Z";
    use ChannelKind::{Email, Push, Sms};
    use Purpose::{Marketing, Service};

    fn check_default(history: &[Sent], channel: ChannelKind, priority: Priority) -> Option<String> {
        check(&default_caps(), history, channel, Marketing, priority, at(NOW))
    }

    #[test]
    fn one_marketing_sms_a_day() {
        assert_eq!(check_default(&[], Sms, Priority::Promotional), None);
        let today = [sent(Sms, Marketing, "2026-11-23T01:30:00Z")];
        assert_eq!(check_default(&today, Sms, Priority::Lifecycle).as_deref(), Some("capped: 1 marketing sms per 1d"));
        // Push is not SMS; the cross-channel cap allows a second message.
        assert_eq!(check_default(&today, Push, Priority::Lifecycle), None);
        // Rolling: 24 hours and a minute ago is outside the day.
        let yesterday = [sent(Sms, Marketing, "2026-11-22T09:59:00Z")];
        assert_eq!(check_default(&yesterday, Sms, Priority::Lifecycle), None);
        // A service message does not count toward a marketing cap.
        assert_eq!(check_default(&[sent(Sms, Service, "2026-11-23T09:00:00Z")], Sms, Priority::Lifecycle), None);
    }

    #[test]
    fn three_a_week_and_two_a_day_across_channels() {
        let week = [
            sent(Sms, Marketing, "2026-11-17T10:30:00Z"),
            sent(Sms, Marketing, "2026-11-19T10:30:00Z"),
            sent(Sms, Marketing, "2026-11-21T10:30:00Z"),
        ];
        assert_eq!(check_default(&week, Sms, Priority::Promotional).as_deref(), Some("capped: 3 marketing sms per 7d"));
        let two = [sent(Email, Marketing, "2026-11-23T01:00:00Z"), sent(Push, Marketing, "2026-11-23T02:00:00Z")];
        assert_eq!(check_default(&two, Email, Priority::Promotional).as_deref(), Some("capped: 2 marketing per 1d"));
    }

    #[test]
    fn service_priority_is_capped_only_by_a_service_cap() {
        let today = [sent(Sms, Marketing, "2026-11-23T01:30:00Z")];
        assert_eq!(check_default(&today, Sms, Priority::Service), None);
        let service_cap = Cap {
            channels: vec![Sms],
            purpose: Service,
            max: 1,
            per: SignedDuration::from_hours(1),
            per_text: "1h".into(),
        };
        let history = [sent(Sms, Service, "2026-11-23T09:30:00Z")];
        assert_eq!(
            check(&[service_cap], &history, Sms, Service, Priority::Service, at(NOW)).as_deref(),
            Some("capped: 1 service sms per 1h")
        );
    }

    #[test]
    fn no_caps_no_limit() {
        let many: Vec<Sent> = (0..10).map(|_| sent(Sms, Marketing, "2026-11-23T09:00:00Z")).collect();
        assert_eq!(check(&[], &many, Sms, Marketing, Priority::Promotional, at(NOW)), None);
        assert_eq!(longest(&default_caps()), SignedDuration::from_hours(24 * 7));
    }
}
