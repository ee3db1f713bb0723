//! Quiet hours: each channel's sending hours, member-local. A message due outside them waits for
//! the next allowed time, unless that is past its deadline (then it is skipped, naming quiet
//! hours). Pure: the zone and the instants are arguments; DST is handled by reading the local
//! time of each instant and by [`local_instant`] for the start of the next window.

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;

use super::send_time::local_instant;
use crate::channels::ChannelKind;

/// A channel's sending hours, member-local: `[start, end)`. When `end` is before `start` the
/// window wraps midnight (`20:00-02:00` allows the evening and the small hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    pub start: Time,
    pub end: Time,
}

impl Hours {
    /// `HH:MM-HH:MM` (sending hours), or `off` for none (`None`: any time).
    pub fn parse(text: &str) -> Result<Option<Hours>, String> {
        let text = text.trim();
        if text == "off" {
            return Ok(None);
        }
        let bad = || format!("{text:?} is not sending hours as HH:MM-HH:MM (e.g. 08:00-21:00) or \"off\"");
        let (start, end) = text.split_once('-').ok_or_else(bad)?;
        let start = crate::config::parse_send_at(start.trim()).map_err(|_| bad())?;
        let end = crate::config::parse_send_at(end.trim()).map_err(|_| bad())?;
        if start == end {
            return Err(format!("{text:?}: the window is empty (use \"off\" for no quiet hours)"));
        }
        Ok(Some(Hours { start, end }))
    }

    /// Whether a member-local time of day is inside the sending hours.
    pub fn allows(&self, t: Time) -> bool {
        if self.start < self.end { self.start <= t && t < self.end } else { t >= self.start || t < self.end }
    }
}

impl std::fmt::Display for Hours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start.strftime("%H:%M"), self.end.strftime("%H:%M"))
    }
}

/// Sending hours per channel; `None`: the channel has no quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuietHours {
    pub sms: Option<Hours>,
    pub email: Option<Hours>,
    pub push: Option<Hours>,
    pub webhook: Option<Hours>,
}

impl QuietHours {
    /// No quiet hours on any channel (a rule with `quiet_hours = false`).
    pub const NONE: QuietHours = QuietHours { sms: None, email: None, push: None, webhook: None };

    pub fn get(&self, channel: ChannelKind) -> Option<Hours> {
        match channel {
            ChannelKind::Sms => self.sms,
            ChannelKind::Email => self.email,
            ChannelKind::Push => self.push,
            ChannelKind::Webhook => self.webhook,
        }
    }
}

/// The first instant at or after `t` whose local time in `tz` is inside `hours`: `t` itself
/// when it is, else the start of the next window (a start that falls in a DST gap moves to the
/// end of the gap, as send times do).
pub fn next_allowed(t: Timestamp, hours: Hours, tz: &TimeZone) -> Timestamp {
    let local = t.to_zoned_datetime(tz.clone());
    if hours.allows(local.time()) {
        return t;
    }
    let mut day = local.date();
    loop {
        let at = local_instant(day, hours.start, tz);
        if at > t {
            return at;
        }
        day = day.tomorrow().expect("dates this far out are not in use");
    }
}

/// What quiet hours make of a message due at `t` on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shift {
    /// Inside the sending hours (or the channel has none): send at `t`.
    Now,
    /// In quiet hours: wait until this instant.
    Wait(Timestamp),
    /// The next allowed time is past the deadline: skip, with this reason.
    Skip(String),
}

/// Applies the channel's sending hours to a message due at `t` with `deadline`.
pub fn shift(
    t: Timestamp,
    deadline: Option<Timestamp>,
    channel: ChannelKind,
    hours: Option<Hours>,
    tz: &TimeZone,
) -> Shift {
    let Some(hours) = hours else { return Shift::Now };
    let at = next_allowed(t, hours, tz);
    if at == t {
        return Shift::Now;
    }
    match deadline {
        Some(d) if at > d => Shift::Skip(format!(
            "quiet hours: {channel} is sent {hours} member-local; the next allowed time {at} is past the deadline {d}"
        )),
        _ => Shift::Wait(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(text: &str) -> Hours {
        Hours::parse(text).unwrap().unwrap()
    }

    fn check(zone: &str, window: &str, t: &str, expected: &str) {
        let tz = TimeZone::get(zone).unwrap();
        let got = next_allowed(t.parse().unwrap(), hours(window), &tz);
        assert_eq!(got.to_string(), expected, "{zone} {window} {t}");
    }

    #[test]
    fn inside_the_hours_nothing_moves() {
        check("Asia/Shanghai", "08:00-21:00", "2026-11-23T01:30:00Z", "2026-11-23T01:30:00Z");
        // The start is inside, the end is not.
        check("Asia/Shanghai", "08:00-21:00", "2026-11-23T00:00:00Z", "2026-11-23T00:00:00Z");
        check("Asia/Shanghai", "08:00-21:00", "2026-11-23T13:00:00Z", "2026-11-24T00:00:00Z");
    }

    #[test]
    fn early_waits_for_the_morning_and_late_for_the_next_one() {
        // 06:00 in Shanghai waits until 08:00.
        check("Asia/Shanghai", "08:00-21:00", "2026-11-22T22:00:00Z", "2026-11-23T00:00:00Z");
        // 22:30 waits until 08:00 the next day.
        check("Asia/Shanghai", "08:00-21:00", "2026-11-23T14:30:00Z", "2026-11-24T00:00:00Z");
    }

    #[test]
    fn across_dst_the_morning_is_local() {
        // New York springs forward on 2026-03-08: 01:00 EST (06:00Z) waits for 08:00 EDT (12:00Z),
        // not seven hours at the old offset.
        check("America/New_York", "08:00-21:00", "2026-03-08T06:00:00Z", "2026-03-08T12:00:00Z");
        // And falls back on 2026-11-01: 01:00 EDT (05:00Z) waits for 08:00 EST (13:00Z).
        check("America/New_York", "08:00-21:00", "2026-11-01T05:00:00Z", "2026-11-01T13:00:00Z");
        // 21:30 EST the night before the spring change: 08:00 EDT the next morning.
        check("America/New_York", "08:00-21:00", "2026-03-08T02:30:00Z", "2026-03-08T12:00:00Z");
        // London: 2026-03-29 01:00 GMT becomes 02:00 BST; 00:30 GMT waits for 08:00 BST (07:00Z).
        check("Europe/London", "08:00-21:00", "2026-03-29T00:30:00Z", "2026-03-29T07:00:00Z");
        // 2026-10-25 01:30 happens twice; the second (01:30 GMT) waits for 08:00 GMT.
        check("Europe/London", "08:00-21:00", "2026-10-25T01:30:00Z", "2026-10-25T08:00:00Z");
        // A window that opens inside the spring gap opens at the end of the gap.
        check("Europe/London", "01:30-21:00", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z");
    }

    #[test]
    fn a_window_may_wrap_midnight() {
        let w = hours("20:00-02:00");
        assert!(w.allows(Time::constant(23, 0, 0, 0)) && w.allows(Time::constant(1, 59, 0, 0)));
        assert!(!w.allows(Time::constant(2, 0, 0, 0)) && !w.allows(Time::constant(12, 0, 0, 0)));
        check("UTC", "20:00-02:00", "2026-11-23T01:00:00Z", "2026-11-23T01:00:00Z");
        check("UTC", "20:00-02:00", "2026-11-23T03:00:00Z", "2026-11-23T20:00:00Z");
        check("UTC", "20:00-02:00", "2026-11-23T19:59:00Z", "2026-11-23T20:00:00Z");
    }

    #[test]
    fn past_the_deadline_is_skipped_naming_quiet_hours() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let t: Timestamp = "2026-11-22T22:00:00Z".parse().unwrap(); // 06:00 local
        let w = Some(hours("08:00-21:00"));
        let late: Timestamp = "2026-11-22T23:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-11-23T02:00:00Z".parse().unwrap();
        assert_eq!(
            shift(t, Some(later), ChannelKind::Sms, w, &tz),
            Shift::Wait("2026-11-23T00:00:00Z".parse().unwrap())
        );
        match shift(t, Some(late), ChannelKind::Sms, w, &tz) {
            Shift::Skip(reason) => assert!(reason.starts_with("quiet hours: sms is sent 08:00-21:00"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(shift(t, Some(late), ChannelKind::Email, None, &tz), Shift::Now);
        assert_eq!(shift(t, None, ChannelKind::Sms, w, &tz), Shift::Wait("2026-11-23T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn hours_parse_with_clear_errors() {
        assert_eq!(Hours::parse("off").unwrap(), None);
        assert_eq!(hours("08:00-21:00").to_string(), "08:00-21:00");
        for bad in ["8-21", "08:00", "08:00-25:00", "morning"] {
            assert!(Hours::parse(bad).unwrap_err().contains("HH:MM-HH:MM"), "{bad}");
        }
        assert!(Hours::parse("08:00-08:00").unwrap_err().contains("empty"));
    }
}
