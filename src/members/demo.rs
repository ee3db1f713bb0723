//! `tidings serve --demo`: a few hundred sample members, seeded deterministically, so a newcomer
//! sees messages within a minute: Chinese and English names, zones around the world, birthdays
//! today and tomorrow in each member's own zone, anniversaries, and lapsed members.

use crate::triggers::calendar as lunar;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, json};

use super::{EventInput, MemberInput};

const ZONES: &[(&str, &str)] = &[
    ("Asia/Shanghai", "zh-CN"),
    ("Asia/Hong_Kong", "zh-HK"),
    ("Asia/Taipei", "zh-TW"),
    ("Asia/Singapore", "en"),
    ("Asia/Tokyo", "en"),
    ("Asia/Kolkata", "en"),
    ("Asia/Kathmandu", "en"),
    ("Asia/Dubai", "en"),
    ("Europe/London", "en-GB"),
    ("Europe/Berlin", "en"),
    ("Africa/Nairobi", "en"),
    ("America/Sao_Paulo", "en"),
    ("America/New_York", "en-US"),
    ("America/Chicago", "en-US"),
    ("America/Los_Angeles", "en-US"),
    ("Pacific/Honolulu", "en-US"),
    ("Australia/Sydney", "en-AU"),
    ("Pacific/Auckland", "en"),
    ("Pacific/Chatham", "en"),
    ("America/St_Johns", "en"),
];

const ZH_SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙", "林", "何"];
const ZH_GIVEN: &[&str] = &["小明", "丽华", "建国", "秀英", "伟", "芳", "静", "磊", "婷婷", "浩然", "雨欣", "子轩"];
const EN_FIRST: &[&str] = &[
    "Olivia", "Liam", "Amelia", "Noah", "Isla", "Oliver", "Ava", "James", "Mia", "Lucas", "Chloe", "Ethan", "Zoe",
    "Aarav", "Priya", "Kenji", "Sofia", "Mateo", "O'Brien",
];
const EN_LAST: &[&str] = &["Smith", "Jones", "Taylor", "Brown", "Wilson", "Patel", "Nguyen", "Garcia", "Kim", "Murphy"];
const TIERS: &[&str] = &["silver", "gold", "platinum"];

/// `count` members and the events that make some of them lapsed, relative to `now`.
pub fn sample(now: Timestamp, count: usize, seed: u64) -> (Vec<MemberInput>, Vec<EventInput>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut members = Vec::with_capacity(count);
    let mut events = Vec::new();
    for i in 0..count {
        let (zone, locale) = ZONES[i % ZONES.len()];
        let tz = TimeZone::get(zone).expect("demo zones exist");
        let today = now.to_zoned_datetime(tz).date();
        let chinese = locale.starts_with("zh");
        let name = if chinese {
            format!(
                "{}{}",
                ZH_SURNAMES[rng.random_range(0..ZH_SURNAMES.len())],
                ZH_GIVEN[rng.random_range(0..ZH_GIVEN.len())]
            )
        } else {
            format!("{} {}", EN_FIRST[rng.random_range(0..EN_FIRST.len())], EN_LAST[rng.random_range(0..EN_LAST.len())])
        };
        let age: i16 = rng.random_range(19..75);
        // A fifth have their birthday today, a tenth tomorrow, the rest any day.
        let birthday = match i % 10 {
            0 | 5 => today,
            3 => today.tomorrow().unwrap_or(today),
            _ => today.checked_add(rng.random_range(2..360_i32).days()).unwrap_or(today),
        };
        let birth_date = birthday.with().year(birthday.year() - age).build().unwrap_or(birthday);
        let years: i16 = rng.random_range(1..9);
        let since =
            if i % 7 == 1 { today } else { today.checked_sub(rng.random_range(20..3000_i32).days()).unwrap_or(today) };
        let member_since =
            since.with().year(since.year() - if i % 7 == 1 { years } else { 0 }).build().unwrap_or(since);
        let external_id = format!("demo-{:04}", i + 1);
        let mut attributes = Map::new();
        attributes.insert("source".into(), json!("demo"));
        members.push(MemberInput {
            external_id: external_id.clone(),
            name,
            phone: Some(if chinese {
                format!("+86138{:08}", rng.random_range(0..100_000_000u32))
            } else {
                format!("+1415555{:04}", rng.random_range(0..10_000u32))
            }),
            email: (i % 4 != 2).then(|| format!("{external_id}@example.com")),
            locale: Some(locale.to_string()),
            time_zone: Some(zone.to_string()),
            birth_date: Some(birth_date),
            // Chinese members keep their birthday in the lunar calendar too.
            lunar_birthday: chinese.then(|| lunar::to_lunar(birth_date)).flatten().map(|l| lunar::LunarBirthday {
                month: l.month,
                leap: l.leap,
                day: l.day,
            }),
            member_since: Some(member_since),
            tier: Some(TIERS[rng.random_range(0..TIERS.len())].to_string()),
            points: rng.random_range(0..50_000),
            attributes,
        });
        // Purchases as repeat buying works (the BG/NBD story): each member buys at random at
        // their own rate (on average every 10 to 120 days), and after each purchase may stop
        // for good. First purchases fall over the past year; one in four members was last seen
        // 45 to 200 days ago whatever the draw (the win-back demo needs some).
        let rate = 1.0 / (10.0 * 12f64.powf(rng.random::<f64>()));
        let stop = 0.02 + 0.2 * rng.random::<f64>();
        let lapsed_since: f64 = if i % 4 == 3 { rng.random_range(45.0..200.0) } else { 0.0 };
        let mut history = Vec::new();
        // Days ago; the first purchase is at least a week before the member could lapse.
        let mut t: f64 = rng.random_range(lapsed_since + 7.0..365.0);
        while t > lapsed_since {
            history.push(t);
            if rng.random::<f64>() < stop {
                break;
            }
            t -= -(1.0 - rng.random::<f64>()).ln() / rate;
        }
        // Most recent first, so the last purchase is number 0.
        history.sort_by(f64::total_cmp);
        for (n, at) in history.into_iter().enumerate().rev() {
            events.push(EventInput {
                // The last purchase keeps the plain `-seed` id.
                event_id: Some(if n == 0 { format!("{external_id}-seed") } else { format!("{external_id}-seed-{n}") }),
                member: external_id.clone(),
                kind: "purchase".into(),
                amount: Some(f64::from(rng.random_range(20..800_u32))),
                at: now.checked_sub(SignedDuration::from_secs_f64(at * 86_400.0 + 3600.0)).unwrap_or(now),
                data: None,
            });
        }
    }
    (members, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_deterministic_and_varied() {
        let now: Timestamp = "2026-11-23T08:00:00Z".parse().unwrap();
        let (a, ev) = sample(now, 300, 7);
        let (b, _) = sample(now, 300, 7);
        assert_eq!(a, b);
        assert_eq!(a.len(), 300);
        assert!(ev.len() > 600, "a purchase history, not one purchase each: {}", ev.len());
        // The last purchase of each member keeps its id (`-seed`): one per member.
        assert_eq!(ev.iter().filter(|e| e.event_id.as_deref().is_some_and(|id| id.ends_with("-seed"))).count(), 300);
        assert!(a.iter().any(|m| m.name.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))));
        assert!(a.iter().any(|m| m.name.is_ascii()));
        let zones: std::collections::HashSet<_> = a.iter().filter_map(|m| m.time_zone.clone()).collect();
        assert!(zones.len() >= 15);
        let lapsed = ev.iter().filter(|e| now.duration_since(e.at) > SignedDuration::from_hours(24 * 30)).count();
        assert!(lapsed >= 50, "{lapsed}");
        for m in &a {
            let input = serde_json::to_value(m).unwrap();
            crate::members::validate::member_from_json(input.as_object().unwrap())
                .unwrap_or_else(|e| panic!("{m:?}: {e:?}"));
        }
    }
}
