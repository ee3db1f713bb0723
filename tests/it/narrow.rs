//! The evaluator's candidate reads (`Store::members_where`) select exactly what
//! `triggers::narrow::Source::matches` says, on both backends, paged in small batches: month-days
//! (Feb 29 included), lunar birthdays (leap months), activity ranges and the change counter.

use std::collections::BTreeSet;

use jiff::civil::{Date, date};
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tidings::members::{EventInput, Member, MemberInput};
use tidings::store::Store;
use tidings::triggers::calendar::LunarBirthday;
use tidings::triggers::narrow::{DateColumn, Source};

use crate::support::app::{Backend, TestApp};

const NOW: &str = "2026-11-23T09:00:00Z";

fn random_date(rng: &mut StdRng) -> Date {
    if rng.random_bool(0.1) {
        return date(1996, 2, 29);
    }
    let year = rng.random_range(1950..2026);
    let month = [1, 2, 3, 4, 12][rng.random_range(0..5)];
    let day = [1, 15, 28, rng.random_range(1..=28)][rng.random_range(0..4)];
    Date::new(year, month, day).unwrap()
}

fn member(rng: &mut StdRng, n: usize) -> MemberInput {
    MemberInput {
        external_id: format!("m{n}"),
        name: format!("Member {n}"),
        phone: Some("+14155550100".into()),
        email: None,
        locale: None,
        time_zone: Some("Asia/Shanghai".into()),
        birth_date: rng.random_bool(0.9).then(|| random_date(rng)),
        lunar_birthday: rng.random_bool(0.8).then(|| LunarBirthday {
            month: rng.random_range(1..=3),
            leap: rng.random_bool(0.3),
            day: rng.random_range(28..=30),
        }),
        member_since: rng.random_bool(0.9).then(|| random_date(rng)),
        tier: None,
        points: 0,
        attributes: Default::default(),
    }
}

async fn all(store: &Store) -> Vec<Member> {
    store.members_after(0, 10_000, false).await.unwrap()
}

async fn selected(store: &Store, source: &Source) -> Vec<i64> {
    let mut out = Vec::new();
    let mut after = source.start();
    loop {
        let batch = store.members_where(source, after, 7, false).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = (source.range_key(last).unwrap_or(0), last.id);
        out.extend(batch.iter().map(|m| m.id));
    }
    out
}

async fn candidate_reads_select_what_the_sources_say(backend: Backend) {
    let t = TestApp::start_on(backend, "", NOW).await;
    let store = &t.app.store;
    let now = t.now();
    let mut rng = StdRng::seed_from_u64(15);
    let members: Vec<MemberInput> = (0..240).map(|n| member(&mut rng, n)).collect();
    store.upsert_members(&members[..120], now).await.unwrap();
    let later = now.checked_add(SignedDuration::from_hours(1)).unwrap();
    store.upsert_members(&members[120..], later).await.unwrap();
    let events: Vec<EventInput> = (0..240)
        .filter(|n| n % 3 == 0)
        .map(|n| EventInput {
            event_id: Some(format!("e{n}")),
            member: format!("m{n}"),
            kind: "visit".into(),
            amount: None,
            at: now.checked_sub(SignedDuration::from_mins(17 * n as i64)).unwrap(),
            data: None,
        })
        .collect();
    store.record_events(&events, later).await.unwrap();
    let everyone = all(store).await;
    assert_eq!(everyone.len(), 240);
    let seqs: BTreeSet<i64> = everyone.iter().map(|m| m.change_seq).collect();
    assert!(seqs.len() >= 3, "{seqs:?}");

    let mut sources = Vec::new();
    for column in [DateColumn::BirthDate, DateColumn::MemberSince] {
        for md in ["02-28", "02-29", "03-01", "04-15", "12-01", "01-01"] {
            sources.push(Source::MonthDay { column, md: md.into() });
        }
    }
    for b in ["01-29", "L01-29", "02-30", "L03-28", "03-30"] {
        sources.push(Source::LunarBirthday(b.into()));
    }
    let ms = |t: Timestamp| t.as_millisecond();
    let hour = SignedDuration::from_hours(1);
    sources.push(Source::ActivityBetween { from: ms(now.checked_sub(hour * 24).unwrap()), to: ms(now) });
    sources.push(Source::ActivityBetween { from: ms(now.checked_sub(hour * 10).unwrap()), to: ms(later) });
    sources.push(Source::ActivityBetween { from: i64::MIN, to: ms(now.checked_sub(hour * 30).unwrap()) });
    for seq in &seqs {
        sources.push(Source::ChangedAfter(*seq - 1));
    }
    let mut nonempty = 0;
    for source in &sources {
        let got = selected(store, source).await;
        let mut want: Vec<i64> = everyone.iter().filter(|m| source.matches(m)).map(|m| m.id).collect();
        if source.range_key(&everyone[0]).is_none() {
            want.sort();
        } else {
            want.sort_by_key(|id| {
                let m = everyone.iter().find(|m| m.id == *id).unwrap();
                (source.range_key(m).unwrap(), m.id)
            });
        }
        assert_eq!(got, want, "{source:?} on {backend:?}");
        nonempty += usize::from(!got.is_empty());
    }
    assert!(nonempty >= sources.len() - 4, "the sample exercises most sources: {nonempty} of {}", sources.len());
}

on_both_backends!(candidate_reads_select_what_the_sources_say);
