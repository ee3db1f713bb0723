//! Wiring: the pieces of a running daemon (settings, store, clock, templates, channels) built
//! once and shared. Tests build an `App` with a manual clock and drive it a step at a time.

use std::sync::Arc;

use anyhow::Context;
use jiff::Timestamp;
use tokio::sync::Notify;

use crate::channels::{ChannelKind, Channels, Rendered};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::dispatch::Dispatcher;
use crate::dispatch::retry::RetryPolicy;
use crate::evaluate::{self, ForecastRow, TickReport};
use crate::render::{Source, TemplateSet, Templates, context};
use crate::store::Store;

/// How `App::start_on` treats the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Create it if missing and bring its schema up to date.
    Migrate,
    /// Use it only if it exists and is up to date.
    Existing,
}

/// A running daemon's shared state.
#[derive(Clone)]
pub struct App {
    /// The settings in force (`settings()`): the configuration file's, with the rules and
    /// journeys defined through the API merged in.
    pub live: crate::config::Live,
    /// The configuration file's own, before the stored definitions are merged in.
    pub base: Arc<crate::config::Config>,
    /// The stored definitions' version in force here (`refresh_definitions`).
    pub definitions_seen: Arc<std::sync::atomic::AtomicI64>,
    /// Held across a reload of the stored definitions, so two reloads never interleave.
    pub definitions_reload: Arc<tokio::sync::Mutex<()>>,
    /// When the last evaluation tick ran here (the clock's time) and how long it took.
    pub last_tick: Arc<std::sync::Mutex<Option<(Timestamp, std::time::Duration)>>>,
    /// When the last member value refresh ended here (the clock's time) and how long it took.
    pub last_refresh: Arc<std::sync::Mutex<Option<(Timestamp, std::time::Duration)>>>,
    /// When this instance started (the clock's time), for its heartbeat.
    pub started_at: Timestamp,
    pub store: Store,
    pub clock: SharedClock,
    pub templates: Arc<TemplateSet>,
    pub channels: Arc<Channels>,
    /// This instance's id, in logs and on every claim.
    pub instance_id: String,
    /// Woken when the evaluator enqueued something, so idle workers look at once.
    pub wake: Arc<Notify>,
}

impl App {
    /// Opens and migrates the store, loads and validates the templates, builds the providers.
    /// Any problem here stops start-up with a message naming what is wrong.
    pub async fn start(settings: Settings, clock: SharedClock) -> anyhow::Result<App> {
        Self::start_on(settings, clock, Open::Migrate).await
    }

    /// Starts on the database as `open` says: migrating it (the daemon), or only reading an
    /// existing, up-to-date one (`preview`, `forecast`).
    pub async fn start_on(settings: Settings, clock: SharedClock, open: Open) -> anyhow::Result<App> {
        let (templates, channels) = Self::check(&settings)?;
        let url = &settings.raw.database.url;
        let store = match open {
            Open::Migrate => {
                let store = Store::open(url).await.with_context(|| format!("opening database.url {url}"))?;
                store.migrate().await.context("migrating the database")?;
                store
            }
            Open::Existing => Store::open_existing(url).await.with_context(|| format!("opening database.url {url}"))?,
        };
        let store = store.with_hash_key(crate::rights::hash_key(&settings.raw.privacy).map_err(anyhow::Error::msg)?);
        let store = store.with_builtin_events(settings.builtin_events());
        let instance_id = format!(
            "{}-{}",
            std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "tidings".into()),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let base = Arc::new(settings.raw.clone());
        let app = App {
            live: crate::config::Live::new(settings),
            base,
            // None read yet: the stored rules and journeys are merged once the templates they
            // use are loaded from the database, below.
            definitions_seen: Arc::new(std::sync::atomic::AtomicI64::new(-1)),
            definitions_reload: Arc::new(tokio::sync::Mutex::new(())),
            last_tick: Arc::new(std::sync::Mutex::new(None)),
            last_refresh: Arc::new(std::sync::Mutex::new(None)),
            started_at: clock.now(),
            store,
            clock,
            templates: Arc::new(templates),
            channels: Arc::new(channels),
            instance_id,
            wake: Arc::new(Notify::new()),
        };
        if open == Open::Migrate {
            let contents = app.templates.configured_contents().map_err(|e| anyhow::anyhow!("templates:\n{e}"))?;
            crate::templates::seed(&app.store, &contents, app.now()).await.context("seeding the templates")?;
        }
        app.reload_templates().await.map_err(|e| anyhow::anyhow!("templates in the database:\n{e}"))?;
        app.refresh_definitions().await.context("merging the rules and journeys defined through the API")?;
        if open == Open::Migrate {
            app.audit_config().await.context("recording configuration changes in the audit log")?;
        }
        Ok(app)
    }

    /// Builds the set from the database's published versions and swaps it in, when the store's
    /// publish counter moved since the set in force was built (or always, with `force`). The
    /// new set must load, validate and still have every rule's template, else the old one
    /// stays. A database with no templates yet (a read-only command before the first start)
    /// keeps the configured set. Returns whether the set was replaced.
    async fn load_published(&self, force: bool) -> Result<bool, String> {
        let mark = self.store.templates_mark().await.map_err(|e| e.to_string())?;
        if !force && self.templates.mark() == Some(mark) {
            return Ok(false);
        }
        let rows = self.store.published_templates().await.map_err(|e| e.to_string())?;
        if rows.is_empty() {
            return Ok(false);
        }
        let mut contents = std::collections::BTreeMap::new();
        for row in rows {
            let content = crate::render::content::Content::from_json(&row.content)
                .map_err(|e| format!("template {} version {}: {e}", row.key, row.version))?;
            contents.insert(row.key, content);
        }
        let fresh = self.templates.build(std::path::Path::new("templates"), &contents).map_err(|e| e.to_string())?;
        check_rule_templates(&self.settings(), &fresh)?;
        self.templates.swap(fresh, mark);
        // A stored definition left out for want of a template may check now: the next
        // `refresh_definitions` settles them again.
        self.definitions_seen.store(-1, std::sync::atomic::Ordering::SeqCst);
        Ok(true)
    }

    /// Picks up templates published since the set in force was built (by this instance or
    /// another): one small query when nothing changed. The evaluator calls it each tick.
    pub async fn refresh_templates(&self) -> Result<bool, String> {
        self.load_published(false).await
    }

    /// Writes to the audit log every rule and template added, changed or removed since it last
    /// looked (at start-up, and after a template reload). Returns how many entries.
    pub async fn audit_config(&self) -> anyhow::Result<usize> {
        self.audit_config_as(crate::audit::ACTOR_CONFIG).await
    }

    /// As `audit_config`, recording `actor` as the one who made the changes (a definition
    /// changed through the API).
    pub async fn audit_config_as(&self, actor: &str) -> anyhow::Result<usize> {
        use crate::audit::{changes, journey_digests, policy_digests, rule_digests, template_digests};
        let settings = self.settings();
        let mut all = changes("rule", &self.store.audited_config("rule").await?, &rule_digests(&settings));
        all.extend(changes("journey", &self.store.audited_config("journey").await?, &journey_digests(&settings)));
        all.extend(changes("policy", &self.store.audited_config("policy").await?, &policy_digests(&settings)));
        let current = template_digests(&self.store.published_templates().await?);
        all.extend(changes("template", &self.store.audited_config("template").await?, &current));
        self.store.record_config_changes(&all, actor, self.now()).await?;
        Ok(all.len())
    }

    /// Everything start-up checks without touching the database: templates load and validate,
    /// every rule's template exists, providers build (secrets resolve).
    pub fn check(settings: &Settings) -> anyhow::Result<(TemplateSet, Channels)> {
        crate::install_crypto_provider();
        let source = match &settings.raw.templates.dir {
            Some(dir) => Source::Dir(dir.clone()),
            None => Source::Builtin,
        };
        let templates = TemplateSet::load_with(
            source,
            &settings.raw.programme.default_locale,
            settings.raw.templates.sms_segment_limit,
        )
        .map_err(|e| anyhow::anyhow!("templates:\n{e}"))?;
        check_rule_templates(settings, &templates.current()).map_err(|e| anyhow::anyhow!(e))?;
        let channels = Channels::from_config(&settings.raw).context("channels")?;
        Ok((templates, channels))
    }

    /// Reloads the published templates from the database (SIGHUP): the new set replaces the old
    /// only if it loads, validates and still has every rule's template.
    pub async fn reload_templates(&self) -> Result<(), String> {
        self.load_published(true).await.map(|_| ())
    }

    /// The settings in force now; hold the `Arc` for the whole of one piece of work.
    pub fn settings(&self) -> Arc<Settings> {
        self.live.get()
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// One evaluation tick at the clock's now.
    pub async fn tick(&self) -> anyhow::Result<TickReport> {
        if let Err(e) = self.refresh_templates().await {
            tracing::error!(error = %e, "published templates not loaded; keeping the previous set");
        }
        // A rule or journey changed through another instance is in force from this tick on.
        if let Err(e) = self.refresh_definitions().await {
            tracing::error!(
                error = format!("{e:#}"),
                "reloading the stored rules and journeys; the ones in force stay"
            );
        }
        let (at, started) = (self.now(), std::time::Instant::now());
        let report = evaluate::tick(&self.store, &self.settings(), at).await?;
        if !report.busy {
            *self.last_tick.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, started.elapsed()));
        }
        if report.enqueued > 0 {
            self.wake.notify_waiters();
        }
        // One upsert: this instance's last tick and providers, for `tidings status`. A failed
        // tick does not beat: an instance whose ticks keep failing turns STALE there.
        self.heartbeat().await;
        Ok(report)
    }

    /// The value refresh at the clock's now: RFM scores, segments, the BG/NBD fit, P(alive).
    /// On PostgreSQL it holds the evaluator lock, so instances sharing the database refresh one
    /// at a time; `None` when another instance holds it.
    pub async fn refresh_value(&self) -> anyhow::Result<Option<crate::members::refresh::RefreshReport>> {
        let Some(lock) = self.store.try_evaluator_lock().await? else { return Ok(None) };
        // On an error the lock is dropped with its session, which releases it.
        let started = std::time::Instant::now();
        let report = crate::members::refresh::refresh(&self.store, &self.settings(), self.now()).await?;
        self.store.release_evaluator_lock(lock).await;
        *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner()) = Some((self.now(), started.elapsed()));
        if report.crossed > 0 {
            // Members who crossed a churn threshold are due at their next slot: plan them now.
            self.tick().await?;
        }
        Ok(Some(report))
    }

    pub fn dispatcher(&self) -> Dispatcher {
        let settings = self.settings();
        let d = &settings.raw.dispatch;
        Dispatcher {
            store: self.store.clone(),
            channels: self.channels.clone(),
            templates: self.templates.clone(),
            clock: self.clock.clone(),
            owner: self.instance_id.clone(),
            batch_size: d.batch_size,
            concurrency: d.concurrency,
            lease: settings.lease,
            retry: RetryPolicy {
                max_attempts: d.max_attempts,
                base: settings.backoff_base,
                max: settings.backoff_max,
                retry_unknown: false,
            },
            retry_ambiguous: settings.retry_ambiguous.clone(),
            programme_name: settings.raw.programme.name.clone(),
            default_locale: settings.raw.programme.default_locale.clone(),
            default_zone: settings.raw.programme.time_zone.clone(),
            stop: tokio_util::sync::CancellationToken::new(),
            settings: self.live.clone(),
            coupons: Arc::new(settings.coupons.clone()),
            consent: (&settings.raw.consent).into(),
            before_sending: None,
            on_sent: None,
        }
    }

    /// Sends everything due now; returns how many messages were processed.
    pub async fn dispatch_all(&self) -> anyhow::Result<usize> {
        self.dispatcher().drain().await
    }

    /// What the rules and journeys would send over the next `days`, per day, rule and channel;
    /// `only`: one rule or journey, forecast even while disabled.
    pub async fn forecast(&self, days: u32, only: Option<&str>) -> anyhow::Result<Vec<ForecastRow>> {
        evaluate::forecast(&self.store, &self.settings(), self.now(), days, only).await
    }

    /// The conversion report of a rule: per variant and holdout (or for all its members, without
    /// an experiment), members planned since `since`. `None` when there is no such rule.
    pub async fn report(
        &self,
        rule_id: &str,
        since: Option<Timestamp>,
    ) -> anyhow::Result<Option<crate::track::report::Report>> {
        // A rule, or a journey: its conversions are the entry's, its experiment the first step's
        // that has one.
        let settings = self.settings();
        let (conversion, experiment) = match settings.rules.iter().find(|r| r.id == rule_id) {
            Some(rule) => (&rule.conversion, rule.experiment.as_ref()),
            None => match settings.journeys.iter().find(|j| j.id == rule_id) {
                Some(j) => (&j.entry.conversion, j.steps.iter().find_map(|s| s.experiment.as_ref())),
                None => return Ok(None),
            },
        };
        let counts = self
            .store
            .report_counts(&crate::store::ReportQuery {
                rule_id,
                experiment: experiment.map(|e| e.id.as_str()),
                events: &conversion.events,
                window_ms: conversion.window.as_millis() as i64,
                since,
            })
            .await?;
        let variants: Vec<String> =
            experiment.map(|e| e.variants.iter().map(|v| v.id.clone()).collect()).unwrap_or_default();
        Ok(Some(crate::track::report::build(
            rule_id,
            experiment.map(|e| (e.id.as_str(), variants.as_slice())),
            conversion,
            since,
            counts,
        )))
    }

    /// Renders what `rule_id` would send `member` on each of its channels at the member's next
    /// occurrence (or, if none falls within a year, as if it were today).
    pub async fn preview(&self, rule_id: &str, external_id: &str) -> anyhow::Result<Preview> {
        let settings = self.settings();
        let rule = settings.rules.iter().find(|r| r.id == rule_id).with_context(|| format!("no rule {rule_id:?}"))?;
        let member = self
            .store
            .member_by_external_id(external_id)
            .await?
            .with_context(|| format!("no member {external_id:?}"))?;
        let s = &settings.raw.programme;
        let locale = member.locale.clone().unwrap_or_else(|| s.default_locale.clone());
        let zone = member.time_zone.clone().unwrap_or_else(|| s.time_zone.clone());
        let tz = jiff::tz::TimeZone::get(&zone).unwrap_or_else(|_| settings.programme_tz.clone());
        let now = self.now();
        let occ = evaluate::next_occurrence(rule, &member, &tz, now, &locale);
        let vars = match &occ {
            Some(o) => o.vars.clone(),
            // An event rule's next occurrence is unknown: preview it with sample event data.
            None if matches!(rule.trigger, crate::triggers::Trigger::Event { .. }) => rule.trigger.sample_vars(),
            None => {
                let mut v = serde_json::Map::new();
                let today = now.to_zoned_datetime(tz.clone()).date();
                v.insert("key".into(), format!("preview:{today}").into());
                v.insert("date".into(), today.to_string().into());
                if let crate::triggers::Trigger::Inactivity { days } = rule.trigger {
                    v.insert("days".into(), days.into());
                }
                v
            }
        };
        let ctx = context::build(&member, &vars, &s.name, &rule.id, &locale, &zone);
        let templates = self.templates.current();
        let mut messages = Vec::new();
        for &channel in &rule.channels {
            let to = crate::plan::address(&member, channel, None).map(|a| a.to);
            let rendered = templates.render(&rule.template, channel, &ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
            let segments = match &rendered {
                Rendered::Sms { text, .. } => Some(crate::render::sms::segments(text)),
                _ => None,
            };
            messages.push(PreviewMessage { channel, to, rendered, segments });
        }
        Ok(Preview { rule: rule.id.clone(), member: member.external_id, due: occ.map(|o| o.due), messages })
    }
}

/// A rule's message as one member would receive it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Preview {
    pub rule: String,
    pub member: String,
    /// When it would be sent; `None` when no occurrence falls within a year.
    pub due: Option<Timestamp>,
    pub messages: Vec<PreviewMessage>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PreviewMessage {
    pub channel: ChannelKind,
    pub to: Option<String>,
    pub rendered: Rendered,
    /// SMS only: what the text costs (encoding, units, parts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<crate::render::sms::Segments>,
}

/// Every rule's template must exist for each of its channels and render, in each of its
/// locales, with the variables that rule's trigger gives: checked at start-up and before a
/// reloaded set replaces the old one, never at the first send.
pub fn check_rule_templates(settings: &Settings, templates: &Templates) -> Result<(), String> {
    let problems = template_problems(settings, templates);
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
}

/// Each problem with a rule's or a journey's templates, led by the key it is about
/// (`rules[2].template: …`).
pub fn template_problems(settings: &Settings, templates: &Templates) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, rule) in settings.rules.iter().enumerate() {
        for crate::plan::experiment::RuleTemplate { key, template, vars: extra } in
            crate::plan::experiment::templates(rule.experiment.as_ref(), &rule.template)
        {
            let mut vars = rule.trigger.sample_vars();
            vars.extend(extra.into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
            let vars = serde_json::Value::Object(vars);
            for &channel in &rule.channels {
                if !templates.has(template, channel) {
                    problems
                        .push(format!("rules[{i}].{key}: {template:?} has no {channel} variant (rule {:?})", rule.id));
                    continue;
                }
                for locale in templates.locales(template) {
                    let mut ctx = crate::render::fixture_context(&locale);
                    ctx["occurrence"] = vars.clone();
                    ctx["rule"]["id"] = rule.id.clone().into();
                    if let Err(e) = templates.render(template, channel, &ctx) {
                        problems.push(format!(
                            "rules[{i}].{key}: {template:?} ({locale}, {channel}) does not render for a {} rule: {e}",
                            rule.trigger.kind()
                        ));
                    }
                }
            }
        }
    }
    // Providers that send only pre-approved templates need a mapping for every SMS variant a
    // rule may send.
    let sms_templates: Vec<&str> = settings
        .rules
        .iter()
        .filter(|r| r.channels.contains(&crate::channels::ChannelKind::Sms))
        .flat_map(|r| crate::plan::experiment::templates(r.experiment.as_ref(), &r.template))
        .map(|t| t.template)
        .collect();
    for provider in settings.raw.channels.names(crate::channels::ChannelKind::Sms) {
        if crate::render::providers::TEMPLATE_PROVIDERS.contains(&provider.as_str()) {
            problems.extend(templates.missing_provider_templates_of(&provider, |k| sms_templates.contains(&k)));
        }
    }
    problems.extend(crate::journeys::check_templates(settings, templates));
    problems
}
