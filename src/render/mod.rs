//! Rendering: Handlebars templates, compiled once, validated against a fixture member at load,
//! chosen by channel and the member's locale with fallback.
//!
//! A template set is a directory `<key>/<locale>/<part>.hbs` (see [`Part`]), or the same layout
//! as stored contents (`content.rs`: the database's template versions); `load.rs` reads and
//! checks either, this file renders from it. `warnings.rs` lists what a version should not be
//! published with. Two registries, both strict: the HTML one escapes, the
//! plain one (SMS, subjects, text bodies, push) does not, so `O'Neill` stays `O'Neill` in an SMS.

pub mod content;
pub mod context;
mod fixture;
pub mod helpers;
mod load;
mod locale;
pub mod providers;
pub mod set;
pub mod sms;
pub mod warnings;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use handlebars::{Context, Handlebars, RenderErrorReason};
use serde_json::{Map, Value};

use crate::channels::{ChannelKind, Rendered};

pub use fixture::fixture_context;
pub use set::{Source, TemplateSet};

/// A compiled, validated template set. Cheap to share; swapped whole on reload.
#[derive(Debug)]
pub struct Templates {
    /// Registry for `email.html`: HTML-escapes `{{values}}`.
    html: Handlebars<'static>,
    /// Registry for every other part: no escaping.
    plain: Handlebars<'static>,
    keys: BTreeMap<String, KeyTemplates>,
    /// Each variant's `sms.providers.toml`, compiled, by (key, locale).
    providers: BTreeMap<(String, String), providers::Mappings>,
    /// Where the set came from, to name files in errors (`templates`, or the directory loaded).
    root: PathBuf,
    /// The programme's locale, used when the member's own has no variant.
    default_locale: String,
    /// The most segments one SMS may cost; a longer one is refused at render. `None`: no limit.
    sms_segment_limit: Option<usize>,
}

/// The segment limit a set starts with: three parts (459 GSM-7 septets, 201 UCS-2 units) is
/// already a long greeting, and a template or a member's attribute that renders past it is far
/// more likely a mistake than an intention, at three or more times the price of one SMS.
pub const DEFAULT_SMS_SEGMENT_LIMIT: usize = 3;

/// One key's variants: for each locale directory (as spelled on disk), its complete channels.
#[derive(Debug, Default)]
struct KeyTemplates {
    locales: BTreeMap<String, BTreeSet<ChannelKind>>,
    /// The key's `fixture.json`, merged over the fixture's `occurrence`.
    fixture: Map<String, Value>,
}

// The set lives in an `Arc` shared by the workers and is swapped whole on reload.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Templates>();
};

/// Everything wrong with a template directory, each problem naming its file (and line).
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct LoadError {
    pub problems: Vec<String>,
}

/// Why one message could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("no template {key:?} for channel {channel}")]
    Missing { key: String, channel: ChannelKind },
    /// `file` is the template's path, with `:line` when Handlebars knows it.
    #[error("template {file}: {message}")]
    Failed { file: String, message: String },
}

/// The files of one locale variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Sms,
    EmailSubject,
    EmailHtml,
    EmailText,
    PushTitle,
    PushBody,
}

impl Part {
    pub const ALL: [Part; 6] =
        [Part::Sms, Part::EmailSubject, Part::EmailHtml, Part::EmailText, Part::PushTitle, Part::PushBody];

    /// The part's name: its file name without `.hbs`.
    pub fn name(self) -> &'static str {
        match self {
            Part::Sms => "sms",
            Part::EmailSubject => "email.subject",
            Part::EmailHtml => "email.html",
            Part::EmailText => "email.text",
            Part::PushTitle => "push.title",
            Part::PushBody => "push.body",
        }
    }

    pub fn file_name(self) -> String {
        format!("{}.hbs", self.name())
    }

    pub fn from_file_name(file: &str) -> Option<Part> {
        let name = file.strip_suffix(".hbs")?;
        Part::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn channel(self) -> ChannelKind {
        match self {
            Part::Sms => ChannelKind::Sms,
            Part::EmailSubject | Part::EmailHtml | Part::EmailText => ChannelKind::Email,
            Part::PushTitle | Part::PushBody => ChannelKind::Push,
        }
    }

    /// The parts a channel needs, all of them.
    pub fn of(channel: ChannelKind) -> &'static [Part] {
        match channel {
            ChannelKind::Sms => &[Part::Sms],
            ChannelKind::Email => &[Part::EmailSubject, Part::EmailHtml, Part::EmailText],
            ChannelKind::Push => &[Part::PushTitle, Part::PushBody],
            // The host system renders webhook messages itself: they carry the context.
            ChannelKind::Webhook => &[],
        }
    }
}

impl Templates {
    /// Compiles every template under `dir` and validates each against the fixture. Reports all
    /// problems at once, each naming the file and (where Handlebars gives it) the line.
    pub fn load_dir(dir: &Path) -> Result<Templates, LoadError> {
        load::load_dir(dir)
    }

    /// Compiles and validates stored contents, by key, as [`Templates::load_dir`] does a
    /// directory; problems name `root/<key>/<locale>/<part>.hbs`.
    pub fn from_contents(root: &Path, contents: &BTreeMap<String, content::Content>) -> Result<Templates, LoadError> {
        load::from_contents(root, contents)
    }

    /// The contents of a template directory (`None`: the built-in set), by key, once it loads.
    pub fn contents_of(dir: Option<&Path>) -> Result<BTreeMap<String, content::Content>, LoadError> {
        load::contents_of(dir)
    }

    /// The shipped set, embedded in the binary from the repository's `templates/`.
    pub fn builtin() -> Templates {
        load::builtin().unwrap_or_else(|e| panic!("the builtin templates do not load:\n{e}"))
    }

    /// Sets the programme's locale, used when a member's locale has no variant (default `en`).
    pub fn with_default_locale(mut self, locale: &str) -> Self {
        self.default_locale = locale.to_owned();
        self
    }

    pub fn default_locale(&self) -> &str {
        &self.default_locale
    }

    /// Sets the most segments one SMS may cost (`None`: no limit; default
    /// [`DEFAULT_SMS_SEGMENT_LIMIT`]). An SMS over it fails to render, naming its count; see
    /// [`Templates::sms_segment_problems`] to check a set against it at load.
    pub fn with_sms_segment_limit(mut self, limit: Option<usize>) -> Self {
        self.sms_segment_limit = limit;
        self
    }

    pub fn sms_segment_limit(&self) -> Option<usize> {
        self.sms_segment_limit
    }

    /// Every SMS variant whose rendering against its fixture is over the segment limit, as
    /// `file: sms is N segments …`. A template that is too long for the fixture member is too
    /// long for most members: [`TemplateSet`] refuses such a set at load and on reload.
    pub fn sms_segment_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, k) in &self.keys {
            for (locale, channels) in &k.locales {
                if !channels.contains(&ChannelKind::Sms) {
                    continue;
                }
                let ctx = Context::from(fixture::fixture_with(locale, &k.fixture));
                if let Err(RenderError::Failed { file, message }) = self.render_sms(key, locale, &ctx) {
                    problems.push(format!("{file}: {message}"));
                }
            }
        }
        problems
    }

    /// The SMS variants with no mapping for `provider` (`aliyun`, `tencent`) in their
    /// `sms.providers.toml`, each naming the file that needs one. When a provider that sends
    /// only approved templates serves SMS, every variant needs a mapping: call this at start-up
    /// and refuse to start on any.
    pub fn missing_provider_templates(&self, provider: &str) -> Vec<String> {
        self.missing_provider_templates_of(provider, |_| true)
    }

    /// As [`Self::missing_provider_templates`], for the template keys `wanted` accepts (the
    /// ones rules send as SMS).
    pub fn missing_provider_templates_of(&self, provider: &str, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let mut missing = Vec::new();
        for (key, k) in self.keys.iter().filter(|(key, _)| wanted(key)) {
            for (locale, channels) in &k.locales {
                let mapped = self.providers.get(&(key.clone(), locale.clone())).is_some_and(|m| m.has(provider));
                if channels.contains(&ChannelKind::Sms) && !mapped {
                    let file = self.root.join(key).join(locale).join(providers::FILE_NAME);
                    missing.push(format!(
                        "{}: no [{provider}] mapping for {} ({provider} sends only approved templates)",
                        file.display(),
                        self.file(key, locale, Part::Sms)
                    ));
                }
            }
        }
        missing
    }

    /// Which locale variant would be used: exact match (case-insensitive), then one with the same
    /// primary language (`zh-TW` → `zh-CN`, `en-GB` → `en`), then `fallback`, then `en`, then any.
    /// Only variants that have `channel` count.
    pub fn resolve_locale(
        &self,
        key: &str,
        channel: ChannelKind,
        wanted: Option<&str>,
        fallback: &str,
    ) -> Option<String> {
        let available: Vec<&str> = self
            .keys
            .get(key)?
            .locales
            .iter()
            .filter(|(_, channels)| channels.contains(&channel))
            .map(|(locale, _)| locale.as_str())
            .collect();
        locale::resolve(&available, wanted, fallback).map(str::to_owned)
    }

    /// Renders `key` for `channel`. The variant is chosen from `ctx["locale"]` with the default
    /// locale as fallback; templates and helpers then see `locale` set to the variant's, so a
    /// Chinese template formats dates the Chinese way whatever the member's own tag was.
    pub fn render(&self, key: &str, channel: ChannelKind, ctx: &Value) -> Result<Rendered, RenderError> {
        if channel == ChannelKind::Webhook {
            if !self.keys.contains_key(key) {
                return Err(RenderError::Missing { key: key.to_owned(), channel });
            }
            let mut payload = ctx.clone();
            if let Some(obj) = payload.as_object_mut() {
                obj.insert("template".into(), Value::String(key.to_owned()));
            }
            return Ok(Rendered::Webhook { payload });
        }
        let wanted = ctx.get("locale").and_then(Value::as_str);
        let locale = self
            .resolve_locale(key, channel, wanted, &self.default_locale)
            .ok_or_else(|| RenderError::Missing { key: key.to_owned(), channel })?;
        let mut data = ctx.clone();
        if let Some(obj) = data.as_object_mut() {
            obj.insert("locale".into(), Value::String(locale.clone()));
        }
        self.render_variant(key, &locale, channel, &Context::from(data))
    }

    /// Whether any locale of `key` can be sent on `channel`.
    pub fn has(&self, key: &str, channel: ChannelKind) -> bool {
        if channel == ChannelKind::Webhook {
            return self.keys.contains_key(key);
        }
        self.keys.get(key).is_some_and(|k| k.locales.values().any(|c| c.contains(&channel)))
    }

    /// The template keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    /// The locale variants of `key`, sorted; empty for an unknown key.
    pub fn locales(&self, key: &str) -> Vec<String> {
        self.keys.get(key).map(|k| k.locales.keys().cloned().collect()).unwrap_or_default()
    }

    /// The channels the `key`/`locale` variant has.
    pub fn channels(&self, key: &str, locale: &str) -> Vec<ChannelKind> {
        let locales = self.keys.get(key).map(|k| &k.locales);
        locales.and_then(|l| l.get(locale)).map(|c| c.iter().copied().collect()).unwrap_or_default()
    }

    /// The context `key` is validated against for `locale`: [`fixture_context`] with the key's
    /// `fixture.json` merged. Handy for previews.
    pub fn fixture(&self, key: &str, locale: &str) -> Value {
        match self.keys.get(key) {
            Some(k) => fixture::fixture_with(locale, &k.fixture),
            None => fixture_context(locale),
        }
    }

    fn render_variant(
        &self,
        key: &str,
        locale: &str,
        channel: ChannelKind,
        ctx: &Context,
    ) -> Result<Rendered, RenderError> {
        let part = |p| self.render_part(key, locale, p, ctx);
        Ok(match channel {
            ChannelKind::Sms => self.render_sms(key, locale, ctx)?,
            ChannelKind::Email => Rendered::Email {
                subject: part(Part::EmailSubject)?,
                html: part(Part::EmailHtml)?,
                text: part(Part::EmailText)?,
            },
            ChannelKind::Push => Rendered::Push { title: part(Part::PushTitle)?, body: part(Part::PushBody)? },
            ChannelKind::Webhook => unreachable!("webhook messages are rendered in render()"),
        })
    }

    /// The SMS text, within the segment limit, and its provider templates.
    fn render_sms(&self, key: &str, locale: &str, ctx: &Context) -> Result<Rendered, RenderError> {
        let text = self.render_part(key, locale, Part::Sms, ctx)?;
        if let Some(limit) = self.sms_segment_limit {
            let s = sms::segments(&text);
            if s.count > limit {
                let file = self.file(key, locale, Part::Sms);
                return Err(RenderError::Failed { file, message: sms::over_limit(&s, limit) });
            }
        }
        let provider_templates = match self.providers.get(&(key.to_owned(), locale.to_owned())) {
            Some(mappings) => {
                mappings.render(&self.plain, ctx).map_err(|(file, message)| RenderError::Failed { file, message })?
            }
            None => BTreeMap::new(),
        };
        Ok(Rendered::Sms { text, provider_templates })
    }

    fn render_part(&self, key: &str, locale: &str, part: Part, ctx: &Context) -> Result<String, RenderError> {
        let registry = if part == Part::EmailHtml { &self.html } else { &self.plain };
        let file = self.file(key, locale, part);
        let out = registry.render_with_context(&template_name(key, locale, part), ctx).map_err(|e| {
            let at = match e.line_no {
                Some(line) => format!("{file}:{line}"),
                None => file.clone(),
            };
            RenderError::Failed { file: at, message: describe(&e) }
        })?;
        finish(part, out).map_err(|message| RenderError::Failed { file, message })
    }

    /// The path of a part's file, for messages.
    fn file(&self, key: &str, locale: &str, part: Part) -> String {
        self.root.join(key).join(locale).join(part.file_name()).display().to_string()
    }
}

/// The name a part is registered under.
fn template_name(key: &str, locale: &str, part: Part) -> String {
    format!("{key}/{locale}/{}", part.name())
}

/// Plain-text parts lose trailing whitespace (the newline every editor leaves); nothing may
/// render empty; a subject must be one line.
fn finish(part: Part, out: String) -> Result<String, String> {
    if out.trim().is_empty() {
        return Err("rendered empty".into());
    }
    if part == Part::EmailHtml {
        return Ok(out);
    }
    let mut out = out;
    out.truncate(out.trim_end().len());
    if part == Part::EmailSubject && out.contains(['\n', '\r']) {
        return Err("the subject must be one line".into());
    }
    Ok(out)
}

/// A Handlebars render error in our words: lower case, naming the variable or helper.
fn describe(e: &handlebars::RenderError) -> String {
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => format!("variable {path} not found"),
        RenderErrorReason::MissingVariable(None) => "variable not found".into(),
        RenderErrorReason::HelperNotFound(name) => format!("helper {name} not found"),
        RenderErrorReason::PartialNotFound(name) => {
            format!("partial {name} not found (partials are not supported)")
        }
        RenderErrorReason::Other(message) => message.clone(),
        other => lower_first(&other.to_string()),
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
