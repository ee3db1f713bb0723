//! The command line: `serve`, `migrate`, `status`, `import`, `preview`, `forecast`, `messages`,
//! `report`, `check-config`, `calendar`, `members export|erase`, `model fit|show`, `audit`,
//! `keys create|list|revoke`, `templates list|export|import|publish`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::{App, Open};
use crate::channels::ChannelKind;
use crate::clock::SystemClock;
use crate::config::{Config, LogFormat, Settings};
use crate::members::import::{self, Format};
use crate::store::{MessageFilter, State, Store};

#[derive(Debug, Parser)]
#[command(
    name = "tidings",
    version,
    about = "Sends loyalty-programme members the right message, at the right local time, exactly once"
)]
pub struct Cli {
    /// The configuration file (TOML). Without one, the built-in defaults: ./tidings.db and the outbox.
    #[arg(long, short, global = true, env = "TIDINGS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve {
        /// Seed a few hundred sample members so messages appear within a minute.
        #[arg(long)]
        demo: bool,
    },
    /// Bring the database schema up to date.
    Migrate {
        /// Only list the migrations and whether each is applied.
        #[arg(long)]
        status: bool,
    },
    /// The backlog, each instance's last tick, and its providers' health and circuits (read from
    /// the database's heartbeats; never migrates it).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Import members from CSV (with a header row) or JSON Lines.
    Import {
        file: PathBuf,
        /// Defaults from the file's extension (.csv, .jsonl).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Render a rule's message for one member, on each of the rule's channels.
    Preview {
        #[arg(long)]
        rule: String,
        /// The member's external id.
        #[arg(long)]
        member: String,
        #[arg(long)]
        json: bool,
    },
    /// What would be sent over the next days, per day, rule and channel; sends nothing.
    Forecast {
        #[arg(long, default_value_t = 7)]
        days: u32,
        #[arg(long)]
        json: bool,
    },
    /// A rule's conversions: per variant and holdout, eligible, sent, delivered, failed and
    /// converted members, the conversion rate, and each variant's uplift over the holdout.
    Report {
        rule: String,
        /// Only members planned since this date (midnight in the programme's zone) or instant.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List messages and their states; retry dead, failed or ambiguous ones; cancel scheduled ones.
    Messages {
        /// One message by id.
        #[arg(long)]
        id: Option<i64>,
        #[arg(long)]
        rule: Option<String>,
        /// The member's external id.
        #[arg(long)]
        member: Option<String>,
        /// scheduled, claimed, sending, sent, failed, dead, skipped, ambiguous.
        #[arg(long)]
        state: Option<String>,
        /// sms, email or push.
        #[arg(long)]
        channel: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Show each message's history.
        #[arg(long)]
        history: bool,
        /// Send the matching dead, failed or ambiguous messages again, now.
        #[arg(long, conflicts_with = "cancel")]
        retry: bool,
        /// Cancel the matching scheduled messages (they are recorded as skipped).
        #[arg(long)]
        cancel: bool,
    },
    /// Check the configuration and templates, then exit.
    CheckConfig,
    /// A year's festivals (built-in and `[holidays]`) with their dates.
    Calendar {
        /// The Gregorian year, e.g. 2027.
        year: i16,
        #[arg(long)]
        json: bool,
    },
    /// Member rights: export everything held about a member, or erase a member.
    Members {
        #[command(subcommand)]
        action: MembersAction,
    },
    /// The audit log: who changed consent, rules and templates, and when; newest first.
    Audit {
        /// Only entries about this subject: `member:<id>`, `rule:<id>`, `template:<key>`.
        #[arg(long)]
        subject: Option<String>,
        /// Only this action: `consent.grant`, `consent.revoke`, `rule.change`, `template.add`...
        #[arg(long)]
        action: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// The member value model (BG/NBD): fit it now, or show the current one.
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Coupon pools and their remaining codes; import codes; verify a signed code.
    Coupons {
        #[command(subcommand)]
        action: Option<crate::journeys::cli::CouponsAction>,
    },
    /// API keys for the HTTP API and the console: create (printed once), list, revoke.
    Keys {
        #[command(subcommand)]
        action: crate::auth::cli::KeysAction,
    },
    /// Template versions: list, export to and import from a directory, publish a draft.
    Templates {
        #[command(subcommand)]
        action: crate::templates::TemplatesAction,
    },
    /// The configured journeys and their most recent runs.
    Journeys {
        /// Only this journey's runs.
        #[arg(long)]
        journey: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum MembersAction {
    /// Print everything held about the member as one JSON document (see README: Member rights).
    Export {
        /// The member's external id.
        external_id: String,
        /// Write the document to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erase the member: personal data removed, messages anonymised, suppressed addresses kept
    /// only as keyed hashes. Cannot be undone.
    Erase {
        /// The member's external id.
        external_id: String,
        /// Confirm: without it nothing is erased.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelAction {
    /// Refresh member value now: fit the model, score every member; prints the fit. A fit that
    /// does not converge does not replace the last good model (exit status 1).
    Fit {
        #[arg(long)]
        json: bool,
    },
    /// Print the current model, the last attempt if it was refused, and the segments.
    Show {
        #[arg(long)]
        json: bool,
    },
}

/// A configuration problem, said of the file it is in (or of the defaults and environment).
fn about_config<T>(loaded: Result<T, crate::config::ConfigError>, cli: &Cli) -> anyhow::Result<T> {
    loaded.map_err(|e| anyhow::anyhow!("{e}")).with_context(|| match &cli.config {
        Some(p) => format!("configuration {}", p.display()),
        None => "configuration (built-in defaults and TIDINGS_ variables)".into(),
    })
}

/// `migrate` and `status` touch nothing but the database: the file and the environment are read
/// for `database.url` and `[log]` alone, so that an operator can run them beside the service
/// without its provider secrets (systemd hands those to the unit only). `migrate` takes the
/// SQLite database's daemon lock: migrations are applied only while no daemon runs on it.
async fn database_only(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref(), std::env::vars()).and_then(|c| match c.database_problem() {
        Some(problem) => Err(crate::config::ConfigError::Invalid(vec![problem])),
        None => Ok(c),
    });
    let config = about_config(config, &cli)?;
    init_logging_with(&config.log);
    let url = &config.database.url;
    match cli.command {
        Command::Migrate { status } => {
            let _lock = if status { None } else { crate::store::lock_for_daemon(url).map_err(anyhow::Error::msg)? };
            let store = Store::open(url).await?;
            if !status {
                store.migrate().await?;
            }
            for (version, description, applied) in store.migration_status().await? {
                println!("{version:>5} {} {description}", if applied { "applied" } else { "pending" });
            }
            Ok(())
        }
        Command::Status { json } => {
            let store = Store::open_existing(url).await?;
            let status = crate::status::read(&store, jiff::Timestamp::now()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", crate::status::render(&status));
            }
            Ok(())
        }
        _ => unreachable!("only migrate and status come here"),
    }
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if matches!(cli.command, Command::Migrate { .. } | Command::Status { .. }) {
        return database_only(cli).await;
    }
    let settings = about_config(Settings::load(cli.config.as_deref(), std::env::vars()), &cli)?;
    init_logging(&settings);
    match cli.command {
        Command::Serve { demo } => {
            // Before anything touches the database, so a second daemon does not migrate it either.
            let _lock = crate::store::lock_for_daemon(&settings.raw.database.url).map_err(anyhow::Error::msg)?;
            let app = App::start(settings, Arc::new(SystemClock)).await?;
            if demo {
                seed_demo(&app).await?;
            }
            let shutdown = CancellationToken::new();
            crate::daemon::cancel_on_signals(shutdown.clone());
            crate::daemon::serve(app, shutdown).await
        }
        Command::Migrate { .. } | Command::Status { .. } => unreachable!("run by database_only"),
        Command::Import { file, format } => {
            let format = format
                .or_else(|| Format::from_path(&file))
                .context("cannot tell the format from the file name: pass --format csv or --format jsonl")?;
            let store = Store::open(&settings.raw.database.url).await?.with_builtin_events(settings.builtin_events());
            store.migrate().await?;
            let report = import::import_file(&store, &file, format, jiff::Timestamp::now()).await?;
            if report.counts.inserted + report.counts.updated > 0
                && let Err(e) = store.analyze_members().await
            {
                // Not fatal: the rows are in; the statistics come with the next autovacuum.
                tracing::warn!(error = %e, "could not refresh the members table's statistics");
            }
            for e in &report.errors {
                eprintln!("{}:{e}", file.display());
            }
            println!(
                "{} inserted, {} updated, {} unchanged, {} rejected",
                report.counts.inserted,
                report.counts.updated,
                report.counts.unchanged,
                report.errors.iter().map(|e| e.line).collect::<std::collections::BTreeSet<_>>().len()
            );
            if report.errors.is_empty() { Ok(()) } else { std::process::exit(2) }
        }
        Command::Preview { rule, member, json } => {
            let app = App::start_on(settings, Arc::new(SystemClock), Open::Existing).await?;
            let p = app.preview(&rule, &member).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                print_preview(&p);
            }
            Ok(())
        }
        Command::Forecast { days, json } => {
            let app = App::start_on(settings, Arc::new(SystemClock), Open::Existing).await?;
            let rows = app.forecast(days, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<12} {:<20} {:<16} {:<7} {:>9} {:>9}  sample",
                    "day", "rule", "occasion", "channel", "messages", "skipped"
                );
                for r in &rows {
                    println!(
                        "{:<12} {:<20} {:<16} {:<7} {:>9} {:>9}  {}",
                        r.day.to_string(),
                        r.rule,
                        r.occasion,
                        r.channel,
                        r.messages,
                        r.skipped,
                        r.sample.join(" ")
                    );
                }
                let total: u64 = rows.iter().map(|r| r.messages).sum();
                println!("{total} messages over {days} days");
            }
            Ok(())
        }
        Command::Report { rule, since, json } => {
            let since = since
                .map(|s| crate::track::report::parse_since(&s, &settings.programme_tz).map_err(anyhow::Error::msg))
                .transpose()
                .context("--since")?;
            let app = App::start_on(settings, Arc::new(SystemClock), Open::Existing).await?;
            let Some(report) = app.report(&rule, since).await? else {
                let settings = app.settings();
                let known: Vec<&str> = settings.rules.iter().map(|r| r.id.as_str()).collect();
                anyhow::bail!("no rule {rule:?} in the configuration (rules: {})", known.join(", "));
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
            Ok(())
        }
        Command::Messages { id, rule, member, state, channel, limit, history, retry, cancel } => {
            let store = Store::open(&settings.raw.database.url).await?;
            store.migrate().await?;
            let state =
                state.map(|s| State::parse(&s).with_context(|| format!("--state: unknown state {s:?}"))).transpose()?;
            let channel = channel
                .map(|c| ChannelKind::parse(&c).with_context(|| format!("--channel: unknown channel {c:?}")))
                .transpose()?;
            let filter = MessageFilter { id, rule_id: rule, member, state, channel, limit };
            if retry || cancel {
                if filter.id.is_none() && filter.rule_id.is_none() && filter.member.is_none() && filter.state.is_none()
                {
                    anyhow::bail!("--retry and --cancel need a filter: --id, --rule, --member or --state");
                }
                let now = jiff::Timestamp::now();
                let n = if retry {
                    store.retry_messages(&filter, now, "retried by an operator").await?
                } else {
                    store.cancel_messages(&filter, now).await?
                };
                println!("{n} messages {}", if retry { "scheduled to be sent again now" } else { "cancelled" });
                return Ok(());
            }
            let rows = store.messages(&filter).await?;
            for m in rows {
                println!(
                    "{:>6} {:<9} {:<16} {:<12} {:<6} {:<22} {:<20} {}",
                    m.id,
                    m.state,
                    m.rule_id,
                    m.member,
                    m.channel,
                    m.run_at.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
                    m.instance.as_deref().unwrap_or("-"),
                    m.reason.unwrap_or_default()
                );
                if history {
                    for h in store.history(m.id).await? {
                        println!("         {} {:<9} {}", h.at, h.state, h.detail.unwrap_or_default());
                    }
                }
            }
            Ok(())
        }
        Command::Audit { subject, action, limit, json } => {
            let store = Store::open(&settings.raw.database.url).await?;
            store.migrate().await?;
            let filter = crate::store::consent::AuditFilter { subject, action, before: None, limit };
            let entries = store.audit(&filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
                return Ok(());
            }
            for e in entries {
                println!(
                    "{:>6} {} {:<16} {:<16} {:<24} {}",
                    e.id,
                    e.at.strftime("%Y-%m-%d %H:%M:%SZ"),
                    e.actor,
                    e.action,
                    e.subject,
                    e.detail
                );
            }
            Ok(())
        }
        Command::Calendar { year, json } => {
            let years = crate::config::FESTIVAL_YEARS;
            anyhow::ensure!(
                years.contains(&year),
                "the calendar covers {} to {} (the range its dates are checked over); {year} is outside",
                years.start(),
                years.end()
            );
            let days = settings.calendar.year(year);
            if json {
                let rows: Vec<serde_json::Value> = days
                    .iter()
                    .map(|(date, f)| {
                        serde_json::json!({
                            "date": date.to_string(), "id": f.id, "group": f.group.as_str(),
                            "names": f.names, "rule": f.when.to_string(),
                            "lunar_date": crate::triggers::calendar::to_lunar(*date).map(|l| l.to_chinese()),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for (date, f) in &days {
                    let lunar =
                        crate::triggers::calendar::to_lunar(*date).map(|l| l.month_day_chinese()).unwrap_or_default();
                    println!(
                        "{date} {:<3} {:<16} {:<10} {:<6} {:<26} {}",
                        date.strftime("%a"),
                        f.id,
                        f.group.as_str(),
                        lunar,
                        f.name("en"),
                        f.name("zh-CN")
                    );
                }
            }
            Ok(())
        }
        Command::Members { action } => members(&settings, action).await,
        Command::Coupons { action } => crate::journeys::cli::coupons(settings, action).await,
        Command::Templates { action } => {
            let app = App::start(settings, Arc::new(SystemClock)).await?;
            crate::templates::cli(&app, action).await
        }
        Command::Journeys { journey, limit } => crate::journeys::cli::journeys(settings, journey, limit).await,
        Command::Model { action } => {
            let app = App::start_on(settings, Arc::new(SystemClock), Open::Existing).await?;
            match action {
                ModelAction::Fit { json } => {
                    let report = app
                        .refresh_value()
                        .await?
                        .context("another instance is evaluating or refreshing; try again in a moment")?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        print_refresh(&report, app.settings().raw.model.at_risk_below);
                    }
                    if !report.fit.accepted {
                        std::process::exit(1);
                    }
                }
                ModelAction::Show { json } => {
                    let current = app.store.models(crate::members::refresh::BGNBD, true, 1).await?;
                    let last = app.store.models(crate::members::refresh::BGNBD, false, 1).await?;
                    let below = app.settings().raw.model.at_risk_below;
                    let at_risk = app.store.count_below(below).await?;
                    let mut churn_rules = Vec::new();
                    for r in app.settings().rules.iter() {
                        if let crate::triggers::Trigger::ChurnRisk { below } = r.trigger {
                            churn_rules.push((r.id.clone(), below, app.store.count_below(below).await?));
                        }
                    }
                    let segments = app.store.segment_counts().await?;
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&serde_json::json!({
                                "model": current.first(), "last_attempt": last.first(),
                                "at_risk_below": below, "at_risk": at_risk,
                                "churn_rules": churn_rules.iter().map(|(id, below, n)| serde_json::json!({
                                    "rule": id, "below": below, "members_below": n,
                                })).collect::<Vec<_>>(),
                                "segments": segments.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                            }))?
                        );
                    } else {
                        match current.first() {
                            Some(m) => print_model(m),
                            None => println!("no model yet: run `tidings model fit` (or wait for the nightly refresh)"),
                        }
                        if let Some(l) = last.first().filter(|l| !l.accepted) {
                            println!(
                                "last attempt #{} at {} was not accepted: {}",
                                l.id,
                                l.fitted_at,
                                l.note.as_deref().unwrap_or("")
                            );
                        }
                        println!("at risk (P(alive) < {below}): {at_risk} members");
                        for (id, below, n) in &churn_rules {
                            println!("churn_risk rule {id}: {n} members below {below}");
                        }
                        let segments: Vec<String> = segments.iter().map(|(s, n)| format!("{s} {n}")).collect();
                        println!(
                            "segments: {}",
                            if segments.is_empty() { "none yet".into() } else { segments.join(", ") }
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Keys { action } => crate::auth::cli::keys(&settings, action).await,
        Command::CheckConfig => {
            // Checks everything start-up checks except the database, which it leaves alone.
            let (templates, channels) = App::check(&settings)?;
            println!("configuration ok: {} rules, templates {:?}", settings.rules.len(), templates.current().keys());
            println!("channels: {}", channels.describe());
            Ok(())
        }
    }
}

async fn members(settings: &Settings, action: MembersAction) -> anyhow::Result<()> {
    let store = Store::open(&settings.raw.database.url).await?;
    store.migrate().await?;
    let store = store.with_hash_key(crate::rights::hash_key(&settings.raw.privacy).map_err(anyhow::Error::msg)?);
    let now = jiff::Timestamp::now();
    match action {
        MembersAction::Export { external_id, out } => {
            let doc = crate::rights::export(&store, &external_id, now)
                .await?
                .with_context(|| format!("no member {external_id:?}"))?;
            let text = serde_json::to_string_pretty(&doc)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("exported {external_id:?} to {}", path.display());
                }
                None => println!("{text}"),
            }
        }
        MembersAction::Erase { external_id, yes } => {
            if store.member_by_external_id(&external_id).await?.is_none() {
                anyhow::bail!("no member {external_id:?}");
            }
            anyhow::ensure!(yes, "erasing {external_id:?} cannot be undone: run again with --yes to erase");
            let r = crate::rights::erase(&store, &external_id, crate::auth::ACTOR_CLI, now).await?;
            println!(
                "erased {external_id:?} (row {}, now {}): {} events, {} push devices, {} opt-outs deleted; \
                 {} messages anonymised, {} skipped; {} history details scrubbed; {} suppressions kept as hashes",
                r.member_id,
                r.tombstone,
                r.events_deleted,
                r.push_devices_deleted,
                r.opt_outs_deleted,
                r.messages_anonymised,
                r.messages_skipped,
                r.history_scrubbed,
                r.suppressions_hashed
            );
        }
    }
    Ok(())
}

async fn seed_demo(app: &App) -> anyhow::Result<()> {
    let now = app.now();
    let (members, events) = crate::members::demo::sample(now, 300, 2026);
    let counts = app.store.upsert_members(&members, now).await?;
    let ev = app.store.record_events(&events, now).await?;
    // Demo members agreed to marketing on every channel they can be reached on.
    let consent: Vec<crate::store::consent::ConsentChange> = members
        .iter()
        .flat_map(|m| {
            let mut channels = vec![crate::channels::ChannelKind::Push, crate::channels::ChannelKind::Webhook];
            if m.phone.is_some() {
                channels.push(crate::channels::ChannelKind::Sms);
            }
            if m.email.is_some() {
                channels.push(crate::channels::ChannelKind::Email);
            }
            channels.into_iter().map(|channel| crate::store::consent::ConsentChange {
                member: m.external_id.clone(),
                channel,
                purpose: crate::channels::Purpose::Marketing,
                granted: true,
                source: "demo".into(),
            })
        })
        .collect();
    app.store.change_consent(&consent, crate::store::consent::ACTOR_IMPORT, now).await?;
    tracing::info!(
        inserted = counts.inserted,
        unchanged = counts.unchanged,
        events = ev.recorded,
        "demo members seeded"
    );
    // Score them now rather than at the first nightly refresh, so segments show at once.
    app.refresh_value().await?;
    demo_key(app).await
}

/// The demo's admin key, so the API can be tried at once: made (and printed) on the first
/// `--demo` start; later starts say it exists (the key is never shown twice).
async fn demo_key(app: &App) -> anyhow::Result<()> {
    use crate::auth::{ACTOR_CLI, KeyError, Role};
    match crate::auth::create(&app.store, "demo", Role::Admin, ACTOR_CLI, app.now()).await {
        Ok((_, key)) => {
            println!("demo admin key (shown once): {key}");
            let addr = app.settings().raw.http.addr.clone();
            println!("  curl -H 'Authorization: Bearer {key}' http://{addr}/api/messages");
            Ok(())
        }
        Err(KeyError::Taken(_)) => {
            tracing::info!("the demo admin key was made on an earlier start; `tidings keys create` makes another");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn print_model(m: &crate::store::ModelRecord) {
    let p = |k: &str| m.params.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
    println!(
        "model {} #{}, fitted {} on {} customers (time unit: {})",
        m.kind,
        m.id,
        m.fitted_at.round(jiff::Unit::Second).unwrap_or(m.fitted_at),
        m.customers,
        m.params.get("unit").and_then(|u| u.as_str()).unwrap_or("day")
    );
    println!("  r = {:.4}  alpha = {:.4}  a = {:.4}  b = {:.4}", p("r"), p("alpha"), p("a"), p("b"));
    println!(
        "  log-likelihood = {:.2}, {} iterations, {}, {} ms",
        m.log_likelihood.unwrap_or(f64::NAN),
        m.iterations,
        if m.converged { "converged" } else { "did not converge" },
        m.duration_ms
    );
}

fn print_refresh(r: &crate::members::refresh::RefreshReport, below: f64) {
    println!("{} members, {} with a purchase", r.members, r.customers);
    if r.fit.accepted {
        println!("fit accepted:");
        print_model(&r.fit);
    } else {
        println!("fit refused: {}", r.fit.note.as_deref().unwrap_or("did not converge"));
        match &r.model {
            Some(m) => {
                println!("members scored with the last good model:");
                print_model(m);
            }
            None => println!("no good model yet: P(alive) is not available"),
        }
    }
    println!("at risk (P(alive) < {below}): {} members; {} newly crossed a churn_risk threshold", r.at_risk, r.crossed);
    let segments: Vec<String> = r.segments.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!("segments: {}", segments.join(", "));
}

fn print_preview(p: &crate::app::Preview) {
    println!("rule {} for member {}", p.rule, p.member);
    match p.due {
        Some(due) => println!("next due {due}"),
        None => println!("no occurrence within a year; rendered as if today"),
    }
    for m in &p.messages {
        println!("--- {} to {}", m.channel, m.to.as_deref().unwrap_or("(no address: would be skipped)"));
        match &m.rendered {
            crate::channels::Rendered::Sms { text, provider_templates } => {
                println!("{text}");
                if let Some(segments) = &m.segments {
                    println!("[{segments}]");
                }
                for (provider, t) in provider_templates {
                    let params = serde_json::to_string(&t.params).unwrap_or_default();
                    println!("[{provider} template {}: {params}]", t.code);
                }
            }
            crate::channels::Rendered::Email { subject, html, text } => {
                println!("Subject: {subject}\n\n{text}\n\n[html: {} bytes]", html.len());
            }
            crate::channels::Rendered::Push { title, body } => println!("{title}\n{body}"),
            crate::channels::Rendered::Webhook { payload } => {
                println!("{}", serde_json::to_string_pretty(payload).unwrap_or_default())
            }
        }
    }
}

fn init_logging(settings: &Settings) {
    init_logging_with(&settings.raw.log);
}

fn init_logging_with(log: &crate::config::LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match log.format {
        // One object per line: timestamp, level, target, the event's fields (message included)
        // at the top level, `span` (the innermost) and `spans` (all, outermost first).
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Colours only for a terminal, so a redirected log holds no escape codes.
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
    };
}
