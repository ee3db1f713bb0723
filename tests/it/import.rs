//! Importing members from CSV and JSON Lines into a real store: bad rows are reported by line and
//! field while the good ones go in, re-importing changes nothing, extra columns become
//! attributes, quoting and non-ASCII text survive, and a thousand rows go through in chunks.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use serde_json::json;
use tidings::members::Member;
use tidings::members::import::{Format, ImportReport, import_file, import_reader};
use tidings::store::UpsertCounts;

use crate::support::app::{Backend, TestApp};

const NOW: &str = "2026-03-10T08:00:00Z";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

async fn import_text(t: &TestApp, text: &str, format: Format) -> ImportReport {
    import_reader(&t.app.store, Cursor::new(text.as_bytes().to_vec()), format, t.now()).await.expect("import")
}

/// `(line, field)` of each rejected row.
fn rejected(report: &ImportReport) -> Vec<(u64, Option<&str>)> {
    report.errors.iter().map(|e| (e.line, e.field.as_deref())).collect()
}

fn counts(inserted: u64, updated: u64, unchanged: u64) -> UpsertCounts {
    UpsertCounts { inserted, updated, unchanged }
}

async fn member(t: &TestApp, id: &str) -> Option<Member> {
    t.app.store.member_by_external_id(id).await.expect("store")
}

#[tokio::test]
async fn csv_bad_rows_are_reported_by_line_and_the_good_ones_go_in_once() {
    let t = TestApp::start("", NOW).await;
    let path = fixture("members.csv");
    let report = import_file(&t.app.store, &path, Format::Csv, t.now()).await.expect("import");
    assert_eq!(rejected(&report), [(3, Some("phone")), (5, Some("time_zone")), (7, None)], "{report:?}");
    assert!(report.errors[2].problem.contains("columns"), "{report:?}");
    assert_eq!(report.counts, counts(5, 0, 0));
    for id in ["C1", "C3", "C5", "C7", "C8"] {
        assert!(member(&t, id).await.is_some(), "{id} is in");
    }
    for id in ["C2", "C4", "C6"] {
        assert!(member(&t, id).await.is_none(), "{id} was rejected");
    }
    let grace = member(&t, "C5").await.unwrap();
    assert_eq!(grace.phone.as_deref(), Some("+14155550102"));
    assert_eq!(grace.birth_date, Some(jiff::civil::date(1986, 12, 9)));
    let before = member(&t, "C3").await.unwrap();

    t.set("2026-03-10T08:05:00Z");
    let again = import_file(&t.app.store, &path, Format::Csv, t.now()).await.expect("import");
    assert_eq!(again.counts, counts(0, 0, 5));
    assert_eq!(rejected(&again), rejected(&report));
    assert_eq!(member(&t, "C3").await.unwrap(), before, "an unchanged row is left alone, updated_at too");

    t.advance(SignedDuration::from_mins(5));
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = t.dir.path().join("members-changed.csv");
    std::fs::write(&changed, text.replace("wang@example.com", "wang@example.org")).unwrap();
    let report = import_file(&t.app.store, &changed, Format::Csv, t.now()).await.expect("import");
    assert_eq!(report.counts, counts(0, 1, 4));
    let after = member(&t, "C3").await.unwrap();
    assert_eq!(after.email.as_deref(), Some("wang@example.org"));
    assert_eq!((after.created_at, after.updated_at), (before.created_at, t.now()));
    assert_eq!(t.app.store.member_count().await.unwrap(), 5);
}

#[tokio::test]
async fn jsonl_problems_carry_the_line_numbers_of_the_file() {
    let t = TestApp::start("", NOW).await;
    let report = import_file(&t.app.store, &fixture("members.jsonl"), Format::Jsonl, t.now()).await.expect("import");
    // Line 2 is blank and skipped, not counted away.
    assert_eq!(rejected(&report), [(3, None), (4, Some("name")), (6, None)], "{report:?}");
    assert!(report.errors[0].problem.starts_with("not JSON"), "{report:?}");
    assert_eq!(report.counts, counts(2, 0, 0));
    assert_eq!(member(&t, "J3").await.unwrap().name, "李娜");
    assert!(member(&t, "J1").await.is_some());
    assert!(member(&t, "J2").await.is_none());
}

#[tokio::test]
async fn a_byte_order_mark_at_the_start_of_a_jsonl_file_is_not_content() {
    let t = TestApp::start("", NOW).await;
    let text = "\u{feff}{\"external_id\": \"B1\", \"name\": \"Bo\"}\n{\"external_id\": \"B2\", \"name\": \"Bea\"}\n";
    let report = import_text(&t, text, Format::Jsonl).await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.counts, counts(2, 0, 0));
}

#[tokio::test]
async fn a_member_twice_in_one_file_is_imported_from_its_first_row_and_the_repeat_reported() {
    let t = TestApp::start("", NOW).await;
    let text = "{\"external_id\": \"D1\", \"name\": \"Dee\", \"email\": \"dee@example.com\"}\n\
                {\"external_id\": \"D1\", \"name\": \"Dee\", \"email\": \"dee@example.org\"}\n";
    let report = t.import_jsonl(text).await;
    assert_eq!(rejected(&report), [(2, Some("external_id"))], "{report:?}");
    assert!(report.errors[0].problem.contains("line 1"), "{report:?}");
    assert_eq!(report.counts, counts(1, 0, 0));
    assert_eq!(member(&t, "D1").await.unwrap().email.as_deref(), Some("dee@example.com"), "the first row is kept");
    assert_eq!(t.app.store.member_count().await.unwrap(), 1);
    // Importing the same file again changes nothing.
    let again = t.import_jsonl(text).await;
    assert_eq!(again.counts, counts(0, 0, 1));
    assert_eq!(rejected(&again), [(2, Some("external_id"))]);
}

#[tokio::test]
async fn extra_csv_columns_become_text_attributes() {
    let t = TestApp::start("", NOW).await;
    let csv = "external_id,name,city,attributes.vip_since,favourite store\n\
               X1,Ada,Leeds,2019,\"Briggate, Leeds\"\n\
               X2,Bo,,,\n";
    let report = import_text(&t, csv, Format::Csv).await;
    assert_eq!((report.counts, report.errors.len()), (counts(2, 0, 0), 0), "{report:?}");
    let ada = member(&t, "X1").await.unwrap();
    assert_eq!(
        serde_json::Value::Object(ada.attributes),
        json!({"city": "Leeds", "vip_since": "2019", "favourite store": "Briggate, Leeds"})
    );
    assert!(member(&t, "X2").await.unwrap().attributes.is_empty(), "empty cells are no attributes");
}

#[tokio::test]
async fn quoted_fields_with_commas_and_chinese_text_round_trip() {
    let t = TestApp::start("", NOW).await;
    let csv = "external_id,name,email,address\n\
               Q1,\"王, 小明\",wang@example.com,\"上海市黄浦区, 南京东路 1 号\"\n\
               Q2,\"Smith, Jane \"\"JJ\"\"\",jane@example.com,\"1 Main St, Springfield\"\n";
    let report = import_text(&t, csv, Format::Csv).await;
    assert_eq!((report.counts, report.errors.len()), (counts(2, 0, 0), 0), "{report:?}");
    let wang = member(&t, "Q1").await.unwrap();
    assert_eq!(wang.name, "王, 小明");
    assert_eq!(wang.attributes["address"], "上海市黄浦区, 南京东路 1 号");
    assert_eq!(member(&t, "Q2").await.unwrap().name, "Smith, Jane \"JJ\"");

    t.advance(SignedDuration::from_secs(1));
    assert_eq!(import_text(&t, csv, Format::Csv).await.counts, counts(0, 0, 2), "read back exactly as stored");
}

#[tokio::test]
async fn a_thousand_rows_import_and_then_change_nothing() {
    let t = TestApp::start("", NOW).await;
    let mut csv = String::from("external_id,name,phone,email,birth_date\n");
    for i in 0..1000 {
        csv.push_str(&format!("G{i:04},Member {i},+1415555{i:04},m{i}@example.com,1990-01-{:02}\n", i % 28 + 1));
    }
    let report = import_text(&t, &csv, Format::Csv).await;
    assert_eq!((report.counts, report.errors.len()), (counts(1000, 0, 0), 0), "{:?}", report.errors.first());
    assert_eq!(t.app.store.member_count().await.unwrap(), 1000);
    assert_eq!(member(&t, "G0999").await.unwrap().phone.as_deref(), Some("+14155550999"));

    t.advance(SignedDuration::from_mins(1));
    let report = import_text(&t, &csv, Format::Csv).await;
    assert_eq!((report.counts, report.errors.len()), (counts(0, 0, 1000), 0));
}

#[tokio::test]
async fn lunar_birthdays_import_from_csv_with_bad_ones_named_by_line() {
    let t = TestApp::start("", NOW).await;
    let csv = "external_id,name,lunar_birthday\nL1,林一,08-15\nL2,林二,L04-30\nL3,林三,13-01\nL4,林四,闰06-10\nL5,林五,8/15\n";
    let report = import_text(&t, csv, Format::Csv).await;
    assert_eq!(rejected(&report), [(4, Some("lunar_birthday")), (6, Some("lunar_birthday"))], "{report:?}");
    assert!(report.errors[0].problem.contains("13"), "{report:?}");
    assert_eq!(report.counts, counts(3, 0, 0));
    for (id, stored) in [("L1", "08-15"), ("L2", "L04-30"), ("L4", "L06-10")] {
        let b = member(&t, id).await.unwrap().lunar_birthday.map(|b| b.to_string());
        assert_eq!(b.as_deref(), Some(stored), "{id}");
    }
    // Written the same way again: unchanged.
    let again = import_text(&t, csv, Format::Csv).await;
    assert_eq!(again.counts, counts(0, 0, 3));
    // JSON says which field too.
    let json = json!({"external_id": "L9", "name": "x", "lunar_birthday": "02-31"}).to_string();
    let report = import_text(&t, &json, Format::Jsonl).await;
    assert_eq!(rejected(&report), [(1, Some("lunar_birthday"))], "{report:?}");
}

/// `tidings import` leaves the members table with fresh planner statistics: a table just
/// filled has none, and the evaluator's candidate reads then take a slower plan.
async fn the_import_command_refreshes_the_members_statistics(backend: Backend) {
    let t = TestApp::start_on(backend, "", NOW).await;
    let url = t.app.settings().raw.database.url.clone();
    let analyzed = |url: String| async move {
        if url.starts_with("sqlite:") {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'members'")
                .fetch_one(&mut conn)
                .await
                .unwrap_or(0);
            n > 0
        } else {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.unwrap();
            let at: Option<String> =
                sqlx::query_scalar("SELECT last_analyze::text FROM pg_stat_user_tables WHERE relname = 'members'")
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            at.is_some()
        }
    };
    assert!(!analyzed(url.clone()).await, "statistics before any import");
    let rows: String = (0..50).map(|i| format!("M{i},Member {i},m{i}@example.com\n")).collect();
    std::fs::write(t.dir.path().join("members.csv"), format!("external_id,name,email\n{rows}")).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["import", "members.csv"])
        .current_dir(t.dir.path())
        .env_clear()
        .env("TIDINGS_DATABASE_URL", &url)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "50 inserted, 0 updated, 0 unchanged, 0 rejected");
    assert!(analyzed(url).await, "no statistics after the import");
}

on_both_backends!(the_import_command_refreshes_the_members_statistics);
