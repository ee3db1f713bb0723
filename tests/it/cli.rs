//! The real `tidings` binary in a temporary working directory with a clean environment:
//! configuration checks that name the key, migrations, imports with per-line errors and exit
//! code 2, previews, forecasts (on the system clock) and a bad `--state`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

/// A working directory to run the binary in; `tidings.db` and the outbox land here.
struct Cli {
    dir: TempDir,
}

/// How a run ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{self:?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

impl Cli {
    fn new() -> Cli {
        Cli { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).expect("write");
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .envs(env.iter().copied())
            .output()
            .expect("run tidings");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
        }
    }
}

fn example_config() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tidings.example.toml").display().to_string()
}

/// Runs `check-config` with this file as `tidings.toml`; the run must fail.
fn rejected_config(toml: &str) -> Run {
    let cli = Cli::new();
    cli.write("tidings.toml", toml);
    let run = cli.run(&["--config", "tidings.toml", "check-config"]);
    assert_ne!(run.code, Some(0), "{run:?}");
    run
}

#[test]
fn check_config_without_a_file_runs_on_the_outbox() {
    let cli = Cli::new();
    let run = cli.run(&["check-config"]).ok();
    assert!(run.stdout.contains("configuration ok"), "{run:?}");
    assert!(run.stdout.contains("sms=outbox email=outbox push=outbox"), "{run:?}");
    assert!(!cli.path("tidings.db").exists(), "check-config leaves the database alone");
}

/// A directory whose `tidings.toml` sends SMS through Twilio and names no auth token, which
/// `check-config` says is missing.
fn twilio_without_its_token() -> Cli {
    let cli = Cli::new();
    cli.write(
        "tidings.toml",
        "[channels]\nsms = \"twilio\"\n[twilio]\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\nfrom = \"+14155550100\"\n",
    );
    let run = cli.run(&["--config", "tidings.toml", "check-config"]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("twilio.auth_token"), "{run:?}");
    cli
}

/// Under systemd, `LoadCredential=twilio.auth_token:…` puts the secret in
/// `$CREDENTIALS_DIRECTORY/twilio.auth_token`; the configuration need not name it.
#[test]
fn a_secret_the_configuration_leaves_unset_is_read_from_the_systemd_credentials() {
    let cli = twilio_without_its_token();
    let credentials = cli.path("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("twilio.auth_token"), "f00dcafef00dcafef00dcafef00dcafe\n").unwrap();
    let run = cli
        .run_with(
            &["--config", "tidings.toml", "check-config"],
            &[("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())],
        )
        .ok();
    assert!(run.stdout.contains("sms=twilio"), "{run:?}");
}

/// `migrate` and `status` read the configuration for the database alone: an operator runs them
/// beside the service without the provider secrets systemd hands only to the unit. `migrate`
/// waits for no daemon: it refuses while one holds the SQLite database.
#[test]
fn migrate_and_status_need_no_provider_secrets_and_migrate_leaves_a_running_daemon_alone() {
    let cli = twilio_without_its_token();

    let run = cli.run(&["--config", "tidings.toml", "migrate"]).ok();
    assert!(run.stdout.contains("applied init") && !run.stdout.contains("pending"), "{run:?}");
    let run = cli.run(&["--config", "tidings.toml", "status", "--json"]).ok();
    assert_eq!(run.json()["instances"], serde_json::json!([]), "{run:?}");

    let url = format!("sqlite://{}", cli.path("tidings.db").display());
    let daemon = tidings::store::lock_for_daemon(&url).expect("the lock").expect("a SQLite lock");
    let run = cli.run(&["--config", "tidings.toml", "migrate"]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("another tidings daemon"), "{run:?}");
    cli.run(&["--config", "tidings.toml", "migrate", "--status"]).ok();
    drop(daemon);
    cli.run(&["--config", "tidings.toml", "migrate"]).ok();

    // The database URL is still checked.
    let run = cli.run_with(&["migrate"], &[("TIDINGS_DATABASE_URL", "postgress://127.0.0.1/tidings")]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("database.url") && run.stderr.contains("only sqlite://"), "{run:?}");
}

#[test]
fn preview_and_forecast_only_read_an_existing_database() {
    let cli = Cli::new();
    for args in [&["forecast"][..], &["preview", "--rule", "birthday", "--member", "x"][..]] {
        let run = cli.run(args);
        assert_ne!(run.code, Some(0), "{run:?}");
        assert!(!cli.path("tidings.db").exists(), "{args:?} created the database: {run:?}");
    }
    cli.run(&["migrate"]).ok();
    cli.run(&["forecast"]).ok();
}

#[test]
fn check_config_names_a_misspelt_key() {
    let run = rejected_config("[http]\nadress = \"127.0.0.1:9090\"\n");
    assert!(run.stderr.contains("adress"), "{run:?}");
}

#[test]
fn check_config_names_a_bad_time_zone() {
    let run = rejected_config("[programme]\ntime_zone = \"Mars/Base\"\n");
    assert!(run.stderr.contains("programme.time_zone"), "{run:?}");
}

#[test]
fn check_config_names_an_unknown_variable() {
    let run = Cli::new().run_with(&["check-config"], &[("TIDINGS_HTTP_ADRR", "x")]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("TIDINGS_HTTP_ADRR"), "{run:?}");
}

#[test]
fn the_example_configuration_checks_with_secrets_from_the_environment() {
    let example = example_config();
    let args = ["--config", example.as_str(), "check-config"];
    let secrets = [
        ("TIDINGS_TWILIO_AUTH_TOKEN", "token"),
        ("TIDINGS_SMTP_PASSWORD", "password"),
        ("TIDINGS_SMTP_LINK_SECRET", "a-link-signing-secret-of-32-chars-or-more"),
    ];
    let run = Cli::new().run_with(&args, &secrets).ok();
    assert!(run.stdout.contains("8 rules"), "{run:?}");

    // With the real providers switched on, the secrets are actually needed: the variables must win
    // over the example's *_file paths, which do not exist here.
    let providers = [("TIDINGS_CHANNELS_SMS", "twilio"), ("TIDINGS_CHANNELS_EMAIL", "smtp")];
    let run = Cli::new().run_with(&args, &[secrets.as_slice(), providers.as_slice()].concat()).ok();
    assert!(run.stdout.contains("sms=twilio email=smtp"), "{run:?}");

    let run = Cli::new().run_with(&args, &providers);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("twilio.auth_token_file") && run.stderr.contains("smtp.password_file"), "{run:?}");
    assert!(run.stderr.contains("smtp.link_secret_file"), "{run:?}");
}

#[test]
fn migrate_creates_the_database_and_reports_the_migration_applied() {
    let cli = Cli::new();
    let run = cli.run(&["migrate"]).ok();
    assert!(cli.path("tidings.db").is_file(), "{run:?}");
    assert!(run.stdout.contains("applied init"), "{run:?}");
    assert!(!run.stdout.contains("pending"), "{run:?}");
    let run = cli.run(&["migrate", "--status"]).ok();
    assert!(run.stdout.contains("applied init") && !run.stdout.contains("pending"), "{run:?}");

    let run = Cli::new().run(&["migrate", "--status"]).ok();
    assert!(run.stdout.contains("pending init"), "a fresh database: {run:?}");
}

#[test]
fn import_prints_counts_and_reports_bad_rows_by_line_with_exit_code_2() {
    let cli = Cli::new();
    cli.write("good.csv", "external_id,name,email\nA1,Ada,ada@example.com\nA2,Bo,bo@example.com\n");
    let run = cli.run(&["import", "good.csv"]).ok();
    assert_eq!(run.stdout.trim(), "2 inserted, 0 updated, 0 unchanged, 0 rejected", "{run:?}");

    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/members.csv");
    std::fs::copy(fixture, cli.path("members.csv")).unwrap();
    let lines = |run: &Run| -> Vec<String> {
        run.stderr.lines().filter(|l| l.starts_with("members.csv:")).map(str::to_string).collect()
    };
    let run = cli.run(&["import", "members.csv"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert_eq!(run.stdout.trim(), "5 inserted, 0 updated, 0 unchanged, 3 rejected", "{run:?}");
    let errors = lines(&run);
    assert_eq!(errors.len(), 3, "{run:?}");
    assert!(errors[0].starts_with("members.csv:line 3: phone: "), "{run:?}");
    assert!(errors[1].starts_with("members.csv:line 5: time_zone: "), "{run:?}");
    assert!(errors[2].starts_with("members.csv:line 7: "), "{run:?}");

    let again = cli.run(&["import", "members.csv"]);
    assert_eq!(again.code, Some(2), "{again:?}");
    assert_eq!(again.stdout.trim(), "0 inserted, 0 updated, 5 unchanged, 3 rejected", "{again:?}");
    assert_eq!(lines(&again), errors);
}

#[test]
fn preview_renders_the_birthday_sms_and_email() {
    let cli = Cli::new();
    cli.write(
        "members.jsonl",
        r#"{"external_id": "X", "name": "Emma", "phone": "+14155550100", "email": "emma@example.com", "locale": "en", "birth_date": "1990-06-15"}"#,
    );
    cli.run(&["import", "members.jsonl"]).ok();

    let run = cli.run(&["preview", "--rule", "birthday", "--member", "X"]).ok();
    assert!(run.stdout.contains("--- sms to +14155550100"), "{run:?}");
    assert!(run.stdout.contains("Tidings Club: Happy birthday, Emma!"), "{run:?}");
    // What the SMS costs, under its text.
    let sms_text = run.stdout.lines().find(|l| l.starts_with("Tidings Club: Happy birthday")).unwrap();
    let cost = format!("[1 segment (GSM-7, {} units)]", sms_text.chars().count());
    assert!(run.stdout.contains(&format!("{sms_text}\n{cost}\n")), "{run:?}");
    assert!(run.stdout.contains("--- email to emma@example.com"), "{run:?}");
    assert!(run.stdout.contains("Subject: Happy birthday, Emma! A gift from Tidings Club is waiting"), "{run:?}");

    let run = cli.run(&["preview", "--rule", "birthday", "--member", "X", "--json"]).ok();
    let preview = run.json();
    let rendered: Vec<&Value> = preview["messages"].as_array().unwrap().iter().map(|m| &m["rendered"]).collect();
    assert_eq!(rendered.len(), 2, "{run:?}");
    assert_eq!(rendered[0]["channel"], "sms");
    assert!(rendered[0]["text"].as_str().unwrap().contains("Happy birthday, Emma!"), "{run:?}");
    let segments = &preview["messages"][0]["segments"];
    assert_eq!((segments["encoding"].as_str(), segments["count"].as_u64()), (Some("GSM-7"), Some(1)), "{run:?}");
    assert!(preview["messages"][1].get("segments").is_none(), "{run:?}");
    assert_eq!(rendered[1]["channel"], "email");
    assert!(rendered[1]["subject"].as_str().unwrap().starts_with("Happy birthday, Emma!"), "{run:?}");

    let run = cli.run(&["preview", "--rule", "birthday", "--member", "nobody"]);
    assert_ne!(run.code, Some(0), "{run:?}");

    // A Chinese SMS costs UCS-2 units, and shows what Aliyun and Tencent would be sent.
    cli.write(
        "zh.jsonl",
        r#"{"external_id": "Z", "name": "王小明", "phone": "+8613800138000", "locale": "zh-CN", "birth_date": "1990-06-15"}"#,
    );
    cli.run(&["import", "zh.jsonl"]).ok();
    let run = cli.run(&["preview", "--rule", "birthday", "--member", "Z"]).ok();
    assert!(run.stdout.contains(" segment (UCS-2, "), "{run:?}");
    assert!(run.stdout.contains(r#"[aliyun template SMS_0000001: {"name":"小明"}]"#), "{run:?}");
    assert!(run.stdout.contains(r#"[tencent template 1000001: ["小明"]]"#), "{run:?}");
}

#[test]
fn forecast_lists_a_birthday_tomorrow_in_the_members_zone() {
    // Far from UTC, so "tomorrow" there is often not tomorrow here.
    let zone = "Pacific/Auckland";
    let tz = jiff::tz::TimeZone::get(zone).unwrap();
    let tomorrow = jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date().tomorrow().unwrap();
    // A leap year, so a birthday on Feb 29 is a real date too.
    let born = jiff::civil::date(1988, tomorrow.month(), tomorrow.day());
    let send_at = tz.to_ambiguous_timestamp(tomorrow.at(9, 30, 0, 0)).compatible().unwrap();
    let send_day_utc = send_at.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();

    let cli = Cli::new();
    cli.write(
        "members.csv",
        &format!(
            "external_id,name,phone,email,time_zone,birth_date,consent.sms,consent.email\n\
             K1,Kiri,+6421555010,kiri@example.com,{zone},{born},granted,granted\n"
        ),
    );
    cli.run(&["import", "members.csv"]).ok();

    let run = cli.run(&["forecast", "--days", "3", "--json"]).ok();
    let rows = run.json();
    let mut birthday: Vec<(String, String, u64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rule"] == "birthday")
        .map(|r| {
            (
                r["day"].as_str().unwrap().to_string(),
                r["channel"].as_str().unwrap().to_string(),
                r["messages"].as_u64().unwrap(),
            )
        })
        .collect();
    birthday.sort();
    let day = send_day_utc.to_string();
    assert_eq!(birthday, [(day.clone(), "email".to_string(), 1), (day, "sms".to_string(), 1)], "{run:?}");
}

#[test]
fn messages_rejects_an_unknown_state_by_its_flag() {
    let cli = Cli::new();
    cli.run(&["migrate"]).ok();
    let run = cli.run(&["messages", "--state", "nonsense"]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("--state"), "{run:?}");
    let run = cli.run(&["messages", "--state", "sent"]).ok();
    assert_eq!(run.stdout, "", "{run:?}");
}

#[test]
fn check_config_refuses_a_template_that_needs_what_its_trigger_does_not_give() {
    // The anniversary template greets with occurrence.years, which a holiday never has.
    let run = rejected_config(
        "[[rules]]\nid = \"xmas\"\ntrigger = \"holiday\"\ndate = \"12-25\"\nchannels = [\"sms\"]\ntemplate = \"anniversary\"\n",
    );
    assert!(run.stderr.contains("rules[0].template"), "{run:?}");
    assert!(run.stderr.contains("holiday rule") && run.stderr.contains("years"), "{run:?}");
}

#[test]
fn calendar_prints_a_year_s_festivals_with_custom_holidays() {
    let cli = Cli::new();
    cli.write(
        "tidings.toml",
        "[holidays.founders_day]\nwhen = \"06-18\"\nnames = { en = \"Founders' Day\", zh-CN = \"司庆日\" }\n\
         [holidays.south_little_new_year]\nwhen = \"lunar 12-24\"\n",
    );
    let run = cli.run(&["--config", "tidings.toml", "calendar", "2027", "--json"]).ok();
    let rows = run.json();
    let rows = rows.as_array().expect("an array");
    let date_of = |id: &str| -> Vec<&str> {
        rows.iter().filter(|r| r["id"] == id).map(|r| r["date"].as_str().unwrap()).collect()
    };
    // Widely published dates for 2027 (the full 1901-2100 check is the calendar's own test).
    assert_eq!(date_of("spring_festival"), ["2027-02-06"]);
    assert_eq!(date_of("new_years_eve"), ["2027-02-05"]);
    assert_eq!(date_of("mid_autumn"), ["2027-09-15"]);
    assert_eq!(date_of("mothers_day"), ["2027-05-09"]);
    assert_eq!(date_of("fathers_day"), ["2027-06-20"]);
    assert_eq!(date_of("thanksgiving"), ["2027-11-25"]);
    assert_eq!(date_of("national_day"), ["2027-10-01"]);
    assert_eq!(date_of("founders_day"), ["2027-06-18"]);
    assert_eq!(date_of("south_little_new_year").len(), 1);
    let mid_autumn = rows.iter().find(|r| r["id"] == "mid_autumn").unwrap();
    assert_eq!(mid_autumn["lunar_date"], "农历八月十五");
    assert_eq!(mid_autumn["group"], "chinese");
    let dates: Vec<&str> = rows.iter().map(|r| r["date"].as_str().unwrap()).collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "in date order: {dates:?}");
    // The table form names each festival in English and Chinese.
    let text = cli.run(&["--config", "tidings.toml", "calendar", "2027"]).ok();
    let line = text.stdout.lines().find(|l| l.starts_with("2027-09-15")).expect("a mid-autumn line");
    assert!(line.contains("mid_autumn") && line.contains("中秋节") && line.contains("八月十五"), "{line}");
}

#[test]
fn check_config_names_a_bad_holiday_and_an_unknown_festival() {
    let run = rejected_config("[holidays.bad]\nwhen = \"13-40\"\n");
    assert!(run.stderr.contains("holidays.bad.when"), "{run:?}");
    let run = rejected_config(
        "[[rules]]\nid = \"f\"\ntrigger = \"festival\"\nfestivals = [\"mid_autum\"]\nchannels = [\"sms\"]\n\
         template = \"holiday\"\n",
    );
    assert!(run.stderr.contains("rules[0].festivals") && run.stderr.contains("mid_autum"), "{run:?}");
    let run = rejected_config(
        "[[rules]]\nid = \"c\"\ntrigger = \"churn_risk\"\nbelow = 1.5\nchannels = [\"sms\"]\ntemplate = \"churn\"\n",
    );
    assert!(run.stderr.contains("rules[0].below"), "{run:?}");
    let run = rejected_config(
        "[[rules]]\nid = \"b\"\ntrigger = \"birthday\"\nsegments = [\"vip\"]\nchannels = [\"sms\"]\n\
         template = \"birthday\"\n",
    );
    assert!(run.stderr.contains("rules[0].segments") && run.stderr.contains("vip"), "{run:?}");
    // Settings a rule would silently ignore are named.
    let run = rejected_config(
        "[[rules]]\nid = \"f\"\ntrigger = \"festival\"\nfestivals = [\"all\"]\nnames = { en = \"X\" }\n\
         channels = [\"sms\"]\ntemplate = \"holiday\"\n",
    );
    assert!(run.stderr.contains("rules[0].names"), "{run:?}");
    let run = rejected_config(
        "[[rules]]\nid = \"c\"\ntrigger = \"churn_risk\"\noffset_days = -1\nchannels = [\"sms\"]\n\
         template = \"churn\"\n",
    );
    assert!(run.stderr.contains("rules[0].offset_days"), "{run:?}");
    let run = rejected_config(
        "[model]\nenabled = false\n[[rules]]\nid = \"b\"\ntrigger = \"birthday\"\nsegments = [\"lapsed\"]\n\
         channels = [\"sms\"]\ntemplate = \"birthday\"\n",
    );
    assert!(run.stderr.contains("rules[0].segments") && run.stderr.contains("model.enabled"), "{run:?}");
    let run = rejected_config("[holidays.far]\nwhen = \"2027-02-06, 2300-01-01\"\n");
    assert!(run.stderr.contains("holidays.far.when"), "{run:?}");
    let run = Cli::new().run(&["calendar", "2300"]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("1901") && run.stderr.contains("2100"), "{run:?}");
}

#[test]
fn model_show_and_fit_on_a_database_without_purchases() {
    let cli = Cli::new();
    cli.run(&["migrate"]).ok();
    let show = cli.run(&["model", "show"]).ok();
    assert!(show.stdout.contains("no model yet"), "{show:?}");
    // Nothing to fit: the fit is refused, with exit status 1, and recorded as an attempt.
    let fit = cli.run(&["model", "fit"]);
    assert_eq!(fit.code, Some(1), "{fit:?}");
    assert!(fit.stdout.contains("fit refused"), "{fit:?}");
    let show = cli.run(&["model", "show", "--json"]).ok().json();
    assert_eq!(show["model"], serde_json::Value::Null);
    assert_eq!(show["last_attempt"]["accepted"], false);
}
