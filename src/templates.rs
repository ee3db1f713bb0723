//! Template versions at the edges, shared by the HTTP API and the CLI: seeding the database from
//! the configured templates, drafts (validated as the loader validates a directory), warnings,
//! publish (refused on unacknowledged warnings or when a rule would lose its template),
//! rollback, import and export of the directory layout, previews and test sends. The store
//! keeps the versions and their audit entries; `render/` compiles, checks and renders.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::app::App;
use crate::channels::{ChannelKind, Outgoing, Purpose, Rendered, SendOutcome};
use crate::config::Settings;
use crate::render::content::Content;
use crate::render::sms::Segments;
use crate::render::warnings::{Warning, warnings};
use crate::render::{Templates, context};
use crate::store::templates::{NewTemplateVersion, Published, SeedTemplate, TemplateVersion};
use crate::store::{Store, StoreError};

/// Why a template operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    NotFound(String),
    /// The content does not load: every problem, each naming `key/locale/part`.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// Publishing needs the warnings acknowledged.
    #[error("the version has warnings; acknowledge them to publish")]
    Warnings(Vec<Warning>),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {problem}")]
    Bad { field: &'static str, problem: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The content's JSON as stored and its digest (what the audit log records).
fn stored(content: &Content) -> (String, String) {
    let json = content.to_json();
    let value: Value = serde_json::from_str(&json).expect("content JSON parses");
    (json, crate::audit::template_digest(&value))
}

/// Stores the configured templates as version 1 of each key, published by `seed`, when the
/// database has none. Returns whether it did.
pub async fn seed(store: &Store, contents: &BTreeMap<String, Content>, now: Timestamp) -> Result<bool, StoreError> {
    let seeds: Vec<SeedTemplate> = contents
        .iter()
        .map(|(key, content)| {
            let (content, digest) = stored(content);
            SeedTemplate { key: key.clone(), content, digest }
        })
        .collect();
    let seeded = store.seed_templates(&seeds, now).await?;
    if seeded {
        tracing::info!(keys = seeds.len(), "templates seeded into the database as version 1");
        return Ok(true);
    }
    // The database is what sends: edits to the configured files after the first start are
    // not picked up by themselves. Say so, once per start.
    let published = store.published_templates().await?;
    let differ: Vec<&str> = contents
        .iter()
        .filter(|(key, c)| {
            !published.iter().any(|v| &v.key == *key && Content::from_json(&v.content).as_ref() == Ok(*c))
        })
        .map(|(key, _)| key.as_str())
        .collect();
    if !differ.is_empty() {
        tracing::info!(
            keys = %differ.join(","),
            "the configured templates differ from the published versions, which are what sends; \
             `tidings templates import DIR` makes drafts of them"
        );
    }
    Ok(false)
}

/// Whether `key` is sent as marketing: by some rule or journey of that purpose, or by none yet
/// (a new template is checked as the stricter kind).
pub fn is_marketing(settings: &Settings, key: &str) -> bool {
    let mut purposes = Vec::new();
    for rule in &settings.rules {
        if crate::plan::experiment::templates(rule.experiment.as_ref(), &rule.template)
            .iter()
            .any(|t| t.template == key)
        {
            purposes.push(rule.purpose);
        }
    }
    for j in &settings.journeys {
        if j.steps.iter().any(|s| s.template == key) {
            purposes.push(j.entry.purpose);
        }
    }
    purposes.is_empty() || purposes.contains(&Purpose::Marketing)
}

/// A content compiled for `key` (strict, validated against the fixture in every locale), with
/// its warnings.
pub struct Checked {
    pub templates: Templates,
    pub warnings: Vec<Warning>,
}

/// Compiles and validates `content` as the loader does a directory, then lists its warnings.
pub fn check(app: &App, key: &str, content: &Content) -> Result<Checked, TemplateError> {
    let one = BTreeMap::from([(key.to_string(), content.clone())]);
    let templates = app.templates.build(Path::new(""), &one).map_err(|e| TemplateError::Invalid(e.problems))?;
    let warnings = warnings(key, content, &templates, is_marketing(&app.settings(), key));
    Ok(Checked { templates, warnings })
}

/// The published set with `key` replaced by `content` must still give every rule its template.
async fn check_rules_with(app: &App, key: &str, content: &Content) -> Result<(), TemplateError> {
    let mut contents = BTreeMap::new();
    for row in app.store.published_templates().await? {
        let c = Content::from_json(&row.content).map_err(|e| TemplateError::Invalid(vec![e]))?;
        contents.insert(row.key, c);
    }
    contents.insert(key.to_string(), content.clone());
    let set = app.templates.build(Path::new("templates"), &contents).map_err(|e| TemplateError::Invalid(e.problems))?;
    crate::app::check_rule_templates(&app.settings(), &set)
        .map_err(|e| TemplateError::Invalid(e.lines().map(str::to_string).collect()))
}

/// A version's content.
pub fn content_of(v: &TemplateVersion) -> Result<Content, TemplateError> {
    Content::from_json(&v.content).map_err(|e| TemplateError::Invalid(vec![format!("stored content: {e}")]))
}

/// The version `version` of `key`, or 404.
pub async fn version(app: &App, key: &str, version: i64) -> Result<TemplateVersion, TemplateError> {
    app.store
        .template_version(key, version)
        .await?
        .ok_or_else(|| TemplateError::NotFound(format!("no version {version} of template {key:?}")))
}

/// Stores `content` as the key's next draft, once it compiles and renders; returns it with
/// its warnings (a draft may have warnings; publishing asks for them to be acknowledged).
pub async fn create_draft(
    app: &App,
    key: &str,
    content: &Content,
    actor: &str,
    note: Option<&str>,
) -> Result<(TemplateVersion, Vec<Warning>), TemplateError> {
    let checked = check(app, key, content)?;
    let (json, digest) = stored(content);
    let new =
        NewTemplateVersion { key, content: &json, digest: &digest, actor, note, rollback_of: None, publish: false };
    let v = app.store.add_template_version(&new, app.now()).await?;
    Ok((v, checked.warnings))
}

/// Publishes a draft: refused while it has warnings not acknowledged, or when a rule would lose
/// its template. The set in force is reloaded at once.
pub async fn publish(
    app: &App,
    key: &str,
    number: i64,
    acknowledge_warnings: bool,
    actor: &str,
) -> Result<TemplateVersion, TemplateError> {
    let v = version(app, key, number).await?;
    if v.state != "draft" {
        return Err(TemplateError::Conflict(format!(
            "version {number} of {key:?} is {}: only a draft is published (roll back to publish an older version)",
            v.state
        )));
    }
    let content = content_of(&v)?;
    let checked = check(app, key, &content)?;
    if !checked.warnings.is_empty() && !acknowledge_warnings {
        return Err(TemplateError::Warnings(checked.warnings));
    }
    check_rules_with(app, key, &content).await?;
    let (_, digest) = stored(&content);
    match app.store.publish_template_version(key, number, &digest, actor, app.now()).await? {
        Published::Done(v) => {
            reload(app).await;
            Ok(v)
        }
        Published::NoSuchVersion => Err(TemplateError::NotFound(format!("no version {number} of template {key:?}"))),
        Published::NotDraft(state) => {
            Err(TemplateError::Conflict(format!("version {number} of {key:?} is {state}: only a draft is published")))
        }
    }
}

/// Publishes a new version whose content is version `to`'s, recorded as a rollback.
pub async fn rollback(app: &App, key: &str, to: i64, actor: &str) -> Result<TemplateVersion, TemplateError> {
    let old = version(app, key, to).await?;
    let content = content_of(&old)?;
    check(app, key, &content)?;
    check_rules_with(app, key, &content).await?;
    let (json, digest) = stored(&content);
    let note = format!("rollback to version {to}");
    let new = NewTemplateVersion {
        key,
        content: &json,
        digest: &digest,
        actor,
        note: Some(&note),
        rollback_of: Some(to),
        publish: true,
    };
    let v = app.store.add_template_version(&new, app.now()).await?;
    reload(app).await;
    Ok(v)
}

/// Reloads the set in force after a publish; a failure keeps the old set and is logged (the
/// next tick tries again).
async fn reload(app: &App) {
    if let Err(e) = app.refresh_templates().await {
        tracing::error!(error = %e, "published templates not loaded; keeping the previous set");
    }
}

/// What an import did with one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Imported {
    pub key: String,
    /// The new draft's version; `None` when the files equal the latest version.
    pub draft: Option<i64>,
}

/// Imports a template directory: each key whose files differ from its latest version becomes
/// a new draft (never published, never overwriting). The whole directory must load first.
pub async fn import(app: &App, dir: &Path, actor: &str) -> Result<Vec<Imported>, TemplateError> {
    let contents = Templates::contents_of(Some(dir)).map_err(|e| TemplateError::Invalid(e.problems))?;
    let mut out = Vec::new();
    for (key, content) in &contents {
        let latest = app.store.template_versions(key, None, 1).await?;
        let same = match latest.first() {
            Some(v) => content_of(v)? == *content,
            None => false,
        };
        let draft = if same {
            None
        } else {
            let note = format!("imported from {}", dir.display());
            Some(create_draft(app, key, content, actor, Some(&note)).await?.0.version)
        };
        out.push(Imported { key: key.clone(), draft });
    }
    Ok(out)
}

/// Writes every published version to `dir` in the directory loader's layout; returns the keys.
pub async fn export(store: &Store, dir: &Path) -> anyhow::Result<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for v in store.published_templates().await? {
        let content = content_of(&v)?;
        content.write_dir(dir, &v.key).map_err(|e| anyhow::anyhow!("writing {}: {e}", dir.join(&v.key).display()))?;
        out.push((v.key, v.version));
    }
    Ok(out)
}

/// One channel of a preview or test send, as rendered.
#[derive(Debug, Clone, Serialize)]
pub struct Rendering {
    pub channel: ChannelKind,
    pub locale: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered: Option<Rendered>,
    /// SMS only: the text's characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub characters: Option<usize>,
    /// SMS only: encoding, units and parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Segments>,
    /// Why it did not render (a variable this member lacks, an SMS over the segment limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The context a preview renders against: the member's (with the key's fixture occasion), or
/// the fixture member's for `locale`.
async fn context_for(
    app: &App,
    templates: &Templates,
    key: &str,
    member: Option<&str>,
    locale: &str,
) -> Result<(Value, Option<crate::members::Member>), TemplateError> {
    let Some(external_id) = member else { return Ok((templates.fixture(key, locale), None)) };
    let m = app
        .store
        .member_by_external_id(external_id)
        .await?
        .ok_or_else(|| TemplateError::Bad { field: "member", problem: format!("no member {external_id:?}") })?;
    let settings = app.settings();
    let p = &settings.raw.programme;
    let locale = m.locale.clone().unwrap_or_else(|| p.default_locale.clone());
    let zone = m.time_zone.clone().unwrap_or_else(|| p.time_zone.clone());
    let fixture = templates.fixture(key, &locale);
    let occurrence = fixture["occurrence"].as_object().cloned().unwrap_or_default();
    Ok((context::build(&m, &occurrence, &p.name, "preview", &locale, &zone), Some(m)))
}

fn rendering(templates: &Templates, key: &str, channel: ChannelKind, ctx: &Value, fallback: &str) -> Rendering {
    let wanted = ctx.get("locale").and_then(Value::as_str);
    let locale = templates.resolve_locale(key, channel, wanted, fallback).unwrap_or_default();
    match templates.render(key, channel, ctx) {
        Ok(rendered) => {
            let (characters, segments) = match &rendered {
                Rendered::Sms { text, .. } => (Some(text.chars().count()), Some(crate::render::sms::segments(text))),
                _ => (None, None),
            };
            Rendering { channel, locale, rendered: Some(rendered), characters, segments, error: None }
        }
        Err(e) => {
            Rendering { channel, locale, rendered: None, characters: None, segments: None, error: Some(e.to_string()) }
        }
    }
}

/// Renders `content` for a member (each channel in the member's locale) or for the fixture
/// member (each channel in every locale), with the content's warnings.
pub async fn preview(
    app: &App,
    key: &str,
    content: &Content,
    member: Option<&str>,
) -> Result<(Vec<Rendering>, Vec<Warning>), TemplateError> {
    let checked = check(app, key, content)?;
    let t = &checked.templates;
    let fallback = t.default_locale().to_string();
    let mut out = Vec::new();
    if member.is_some() {
        let (ctx, _) = context_for(app, t, key, member, &fallback).await?;
        for channel in [ChannelKind::Sms, ChannelKind::Email, ChannelKind::Push] {
            if t.has(key, channel) {
                out.push(rendering(t, key, channel, &ctx, &fallback));
            }
        }
    } else {
        for locale in t.locales(key) {
            let ctx = t.fixture(key, &locale);
            for channel in t.channels(key, &locale) {
                out.push(rendering(t, key, channel, &ctx, &fallback));
            }
        }
    }
    Ok((out, checked.warnings))
}

/// A test send asked for: the channel and address, the version (else the published one) and
/// the member to render for (else the fixture member).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSend {
    pub channel: String,
    pub to: String,
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub member: Option<String>,
}

/// What a test send did: the provider's answer.
#[derive(Debug, Clone, Serialize)]
pub struct TestSent {
    pub provider: &'static str,
    /// `sent`, `transient`, `permanent`, `unknown` or `gone`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub version: i64,
    pub rendering: Rendering,
}

/// Renders one message and sends it at once through the channel's configured providers; it is
/// not recorded as a member's message.
pub async fn test_send(app: &App, key: &str, req: &TestSend) -> Result<TestSent, TemplateError> {
    let bad = |field, problem: &str| TemplateError::Bad { field, problem: problem.to_string() };
    let channel = match ChannelKind::parse(&req.channel) {
        Some(c @ (ChannelKind::Sms | ChannelKind::Email)) => c,
        _ => return Err(bad("channel", "test sends go to sms or email")),
    };
    let to = match channel {
        ChannelKind::Sms => crate::members::validate::normalize_phone(&req.to).map_err(|e| bad("to", &e))?,
        _ if req.to.contains('@') && !req.to.contains(char::is_whitespace) => req.to.trim().to_string(),
        _ => return Err(bad("to", "not an email address")),
    };
    let v = match req.version {
        Some(n) => version(app, key, n).await?,
        None => app
            .store
            .published_templates()
            .await?
            .into_iter()
            .find(|v| v.key == key)
            .ok_or_else(|| TemplateError::NotFound(format!("template {key:?} has no published version")))?,
    };
    let checked = check(app, key, &content_of(&v)?)?;
    let t = &checked.templates;
    if !t.has(key, channel) {
        return Err(bad("channel", &format!("version {} of {key:?} has no {channel} variant", v.version)));
    }
    let fallback = t.default_locale().to_string();
    let (ctx, member) = context_for(app, t, key, req.member.as_deref(), &fallback).await?;
    let r = rendering(t, key, channel, &ctx, &fallback);
    let Some(rendered) = r.rendered.clone() else {
        return Err(TemplateError::Invalid(r.error.into_iter().collect()));
    };
    let msg = Outgoing {
        id: 0,
        dedupe_key: format!("test:{key}:{}:{}", v.version, uuid::Uuid::new_v4().simple()),
        rule_id: "test-send".into(),
        member: member.as_ref().map_or_else(|| "test".to_string(), |m| m.external_id.clone()),
        member_name: member.as_ref().map_or_else(|| "test".to_string(), |m| m.name.clone()),
        to,
        device: None,
        purpose: if is_marketing(&app.settings(), key) { Purpose::Marketing } else { Purpose::Service },
        rendered,
    };
    let (outcome, provider) = app.channels.get(channel).send(&msg, app.now()).await;
    tracing::info!(template = key, version = v.version, %channel, provider, "test send");
    let (outcome, provider_id, error) = match outcome {
        SendOutcome::Sent { provider_id } => ("sent", Some(provider_id), None),
        SendOutcome::Transient { error, .. } => ("transient", None, Some(error)),
        SendOutcome::Permanent { error } => ("permanent", None, Some(error)),
        SendOutcome::Unknown { error } => ("unknown", None, Some(error)),
        SendOutcome::Gone { error } => ("gone", None, Some(error)),
    };
    Ok(TestSent { provider, outcome, provider_id, error, version: v.version, rendering: r })
}

/// `tidings templates …`.
#[derive(Debug, clap::Subcommand)]
pub enum TemplatesAction {
    /// Every key: its published version, channels, locales and any pending draft.
    List,
    /// Write the published versions to DIR (new or empty) in the layout `[templates] dir` reads.
    Export { dir: std::path::PathBuf },
    /// A new draft for each key whose files in DIR differ from its latest version; publishes
    /// nothing.
    Import { dir: std::path::PathBuf },
    /// Publish a draft.
    Publish {
        key: String,
        version: i64,
        /// Publish even though the version has warnings (they are printed).
        #[arg(long)]
        acknowledge_warnings: bool,
    },
}

/// Who the command line's changes are recorded as.
const ACTOR_CLI: &str = "cli";

/// Runs `tidings templates …`.
pub async fn cli(app: &App, action: TemplatesAction) -> anyhow::Result<()> {
    match action {
        TemplatesAction::List => {
            let latest: BTreeMap<String, TemplateVersion> =
                app.store.latest_templates().await?.into_iter().map(|v| (v.key.clone(), v)).collect();
            let published: BTreeMap<String, TemplateVersion> =
                app.store.published_templates().await?.into_iter().map(|v| (v.key.clone(), v)).collect();
            let current = app.templates.current();
            println!("{:<20} {:>9}  {:<8} {:<16} {:<20}", "key", "published", "draft", "locales", "channels");
            for (key, l) in &latest {
                let mut channels: Vec<String> = Vec::new();
                for locale in current.locales(key) {
                    channels.extend(current.channels(key, &locale).into_iter().map(|c| c.to_string()));
                }
                channels.sort();
                channels.dedup();
                let draft = if l.state == "draft" { format!("v{}", l.version) } else { "-".into() };
                let version = published.get(key).map_or("-".to_string(), |p| format!("v{}", p.version));
                println!(
                    "{key:<20} {version:>9}  {draft:<8} {:<16} {:<20}",
                    current.locales(key).join(","),
                    channels.join(",")
                );
            }
            Ok(())
        }
        TemplatesAction::Export { dir } => {
            if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
                anyhow::bail!("{}: not empty; export into a new or empty directory", dir.display());
            }
            std::fs::create_dir_all(&dir)?;
            for (key, version) in export(&app.store, &dir).await? {
                println!("{key}: version {version} written to {}", dir.join(&key).display());
            }
            Ok(())
        }
        TemplatesAction::Import { dir } => {
            for i in import(app, &dir, ACTOR_CLI).await.map_err(|e| anyhow::anyhow!("{}:\n{e}", dir.display()))? {
                match i.draft {
                    Some(v) => println!("{}: draft version {v} created", i.key),
                    None => println!("{}: unchanged", i.key),
                }
            }
            Ok(())
        }
        TemplatesAction::Publish { key, version, acknowledge_warnings } => {
            match publish(app, &key, version, acknowledge_warnings, ACTOR_CLI).await {
                Ok(v) => {
                    println!("{key}: version {} published", v.version);
                    Ok(())
                }
                Err(TemplateError::Warnings(w)) => {
                    for w in &w {
                        eprintln!(
                            "warning: {} {} {}: {}",
                            w.locale,
                            w.part.unwrap_or(w.channel.as_str()),
                            w.code,
                            w.message
                        );
                    }
                    anyhow::bail!("{key} version {version} has warnings: pass --acknowledge-warnings to publish anyway")
                }
                Err(e) => Err(anyhow::anyhow!("{e}")),
            }
        }
    }
}
