//! Rules and journeys defined through the API, merged with the configuration file's.
//!
//! The file is the base; the database holds what marketers and the host system define, change,
//! enable and disable through the API, as an append-only history (`store::definitions`). The
//! settings in force are the file's configuration with every stored definition merged in: one
//! with the id of a configured rule or journey takes its place (an override, undone by
//! removing it), the others follow the file's in the order they were created. The merged
//! configuration goes through the very checks the file does (`Config::check`, the templates), so
//! a definition is refused over HTTP for exactly what would stop the daemon starting, with the
//! key named.
//!
//! Every instance sharing a database reloads when the definitions' version moves (read at
//! each tick), so a change made through one instance is in force on all within a tick.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::app::App;
use crate::config::{Config, ConfigError, ConfigProblem, RuleConfig, Settings};
use crate::journeys::config::JourneyConfig;
use crate::render::Templates;
use crate::store::{DefinitionKind, DefinitionWrite, DefinitionWritten, StoredDefinition};

/// A rule or journey in force, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Defined {
    pub id: String,
    pub kind: DefinitionKind,
    /// `config` or `api`.
    pub source: &'static str,
    /// True when a definition made through the API takes the place of the file's.
    pub overrides_config: bool,
    /// The stored version in force (`None`: the file's).
    pub version: Option<i64>,
    pub enabled: bool,
    pub updated_by: Option<String>,
    pub updated_at: Option<Timestamp>,
    /// The definition as written: the keys of a `[[rules]]` or `[[journeys]]` entry.
    pub definition: Value,
}

/// A problem with a definition, the key inside it named (`send_at`, `steps[1].template`), or the
/// configuration key when the problem lies elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    pub field: String,
    pub problem: String,
}

/// Why a definition was not written.
#[derive(Debug)]
pub enum Refused {
    /// It does not parse or does not check: every problem.
    Invalid(Vec<FieldProblem>),
    /// There is no such rule or journey.
    NotFound,
    /// It is defined only in the configuration file and cannot be removed through the API.
    InConfig,
    /// It already exists (create), or changed since the version the caller read.
    Conflict(String),
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Refused {
    fn from(e: E) -> Self {
        Refused::Failed(e.into())
    }
}

/// One change asked for.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create (`create_only`) or replace with this body.
    Put {
        body: Value,
        create_only: bool,
    },
    Enable(bool),
    Remove,
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    pub definition: Option<Defined>,
    /// Scheduled messages skipped because the change disabled or removed it.
    pub cancelled: u64,
    /// Journey runs ended for the same reason.
    pub runs_ended: u64,
}

/// A stored body as the configuration entry it stands for.
enum Entry {
    Rule(Box<RuleConfig>),
    Journey(JourneyConfig),
}

fn parse(kind: DefinitionKind, body: &Value) -> Result<Entry, FieldProblem> {
    let problem = |e: serde_path_to_error::Error<serde_json::Error>| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let problem = e.into_inner().to_string();
        // serde names an unknown key in its message only: name it as the field.
        let unknown = problem.strip_prefix("unknown field `").and_then(|r| r.split_once('`')).map(|(k, _)| k);
        let field = match unknown {
            Some(k) if path.is_empty() => k.to_string(),
            Some(k) if path == k || path.ends_with(&format!(".{k}")) => path,
            Some(k) => format!("{path}.{k}"),
            None => path,
        };
        FieldProblem { field, problem }
    };
    match kind {
        DefinitionKind::Rule => {
            serde_path_to_error::deserialize(body).map(|r| Entry::Rule(Box::new(r))).map_err(problem)
        }
        DefinitionKind::Journey => serde_path_to_error::deserialize(body).map(Entry::Journey).map_err(problem),
    }
}

/// The file's configuration with the stored definitions merged in, and where each merged rule
/// and journey (by position) came from.
struct Merged {
    config: Config,
    /// `rules[i]` / `journeys[i]` → the stored definition's index in the list merged.
    stored_at: HashMap<(DefinitionKind, usize), usize>,
}

fn merge(base: &Config, stored: &[StoredDefinition]) -> Result<Merged, (usize, FieldProblem)> {
    let mut config = base.clone();
    let mut stored_at = HashMap::new();
    for (n, d) in stored.iter().enumerate() {
        let Some(body) = &d.body else { continue };
        match parse(d.kind, body).map_err(|p| (n, p))? {
            Entry::Rule(r) => {
                let i = match config.rules.iter().position(|c| c.id == r.id) {
                    Some(i) => {
                        config.rules[i] = *r;
                        i
                    }
                    None => {
                        config.rules.push(*r);
                        config.rules.len() - 1
                    }
                };
                stored_at.insert((DefinitionKind::Rule, i), n);
            }
            Entry::Journey(j) => {
                let i = match config.journeys.iter().position(|c| c.id == j.id) {
                    Some(i) => {
                        config.journeys[i] = j;
                        i
                    }
                    None => {
                        config.journeys.push(j);
                        config.journeys.len() - 1
                    }
                };
                stored_at.insert((DefinitionKind::Journey, i), n);
            }
        }
    }
    Ok(Merged { config, stored_at })
}

/// Splits `rules[3].send_at` into (rule, 3, "send_at").
fn locate(key: &str) -> Option<(DefinitionKind, usize, String)> {
    let (kind, rest) = if let Some(rest) = key.strip_prefix("rules[") {
        (DefinitionKind::Rule, rest)
    } else {
        (DefinitionKind::Journey, key.strip_prefix("journeys[")?)
    };
    let (i, rest) = rest.split_once(']')?;
    Some((kind, i.parse().ok()?, rest.trim_start_matches('.').to_string()))
}

/// Every problem of the merged configuration and its templates, each with the stored
/// definition it is about (when it is about one).
fn problems(merged: Merged, templates: &Templates) -> Result<Settings, Vec<(Option<usize>, FieldProblem)>> {
    let stored_at = merged.stored_at;
    let which = |key: &str| -> (Option<usize>, String) {
        match locate(key) {
            Some((kind, i, field)) => match stored_at.get(&(kind, i)) {
                Some(&n) => (Some(n), field),
                None => (None, key.to_string()),
            },
            None => (None, key.to_string()),
        }
    };
    let settings = match merged.config.check() {
        Ok(s) => s,
        Err(ConfigError::Invalid(ps)) => {
            return Err(ps
                .into_iter()
                .map(|ConfigProblem { key, problem }| {
                    let (n, field) = which(&key);
                    (n, FieldProblem { field, problem })
                })
                .collect());
        }
        Err(e) => return Err(vec![(None, FieldProblem { field: String::new(), problem: e.to_string() })]),
    };
    let found = crate::app::template_problems(&settings, templates);
    if found.is_empty() {
        return Ok(settings);
    }
    Err(found
        .into_iter()
        .map(|line| {
            let (key, problem) = line.split_once(": ").unwrap_or(("", line.as_str()));
            let (n, field) = which(key);
            (n, FieldProblem { field, problem: problem.to_string() })
        })
        .collect())
}

/// The settings in force at start-up or on a reload: the file's configuration with every stored
/// definition that checks merged in. A stored definition that no longer checks (the file
/// changed under it, a template was removed) is left out with an error logged, rather than
/// stopping the daemon; it stays stored, to be mended through the API. Problems of the file
/// itself are errors, as they always were.
pub fn settle(
    base: &Config,
    mut stored: Vec<StoredDefinition>,
    templates: &Templates,
) -> anyhow::Result<(Settings, Vec<StoredDefinition>)> {
    loop {
        let merged = match merge(base, &stored) {
            Ok(m) => m,
            Err((n, p)) => {
                let d = stored.remove(n);
                tracing::error!(kind = d.kind.as_str(), id = %d.id, version = d.version, field = %p.field,
                    problem = %p.problem, "a stored definition does not parse; it is not in force");
                continue;
            }
        };
        match problems(merged, templates) {
            Ok(settings) => return Ok((settings, stored)),
            Err(found) => {
                let mut bad: Vec<usize> = found.iter().filter_map(|(n, _)| *n).collect();
                if bad.is_empty() {
                    let text: Vec<String> =
                        found.iter().map(|(_, p)| format!("  {}: {}", p.field, p.problem)).collect();
                    anyhow::bail!("invalid configuration:\n{}", text.join("\n"));
                }
                bad.sort_unstable();
                bad.dedup();
                for n in bad.into_iter().rev() {
                    let d = stored.remove(n);
                    for (_, p) in found.iter().filter(|(m, _)| *m == Some(n)) {
                        tracing::error!(kind = d.kind.as_str(), id = %d.id, version = d.version, field = %p.field,
                            problem = %p.problem, "a stored definition does not check; it is not in force");
                    }
                }
            }
        }
    }
}

/// The rules or journeys in force, as the API shows them.
pub fn list(settings: &Settings, base: &Config, stored: &[StoredDefinition], kind: DefinitionKind) -> Vec<Defined> {
    let from_file: Vec<String> = match kind {
        DefinitionKind::Rule => base.rules.iter().map(|r| r.id.clone()).collect(),
        DefinitionKind::Journey => base.journeys.iter().map(|j| j.id.clone()).collect(),
    };
    let entries: Vec<(String, Value, bool)> = match kind {
        DefinitionKind::Rule => settings.raw.rules.iter().map(|r| (r.id.clone(), tidy(json(r)), r.enabled)).collect(),
        DefinitionKind::Journey => {
            settings.raw.journeys.iter().map(|j| (j.id.clone(), tidy(json(j)), journey_enabled(j))).collect()
        }
    };
    entries
        .into_iter()
        .map(|(id, definition, enabled)| {
            let s = stored.iter().find(|d| d.kind == kind && d.id == id);
            let in_file = from_file.contains(&id);
            Defined {
                source: if s.is_some() { "api" } else { "config" },
                overrides_config: s.is_some() && in_file,
                version: s.map(|d| d.version),
                updated_by: s.map(|d| d.actor.clone()),
                updated_at: s.map(|d| d.at),
                kind,
                id,
                enabled,
                definition,
            }
        })
        .collect()
}

/// A journey as written is enabled unless its entry says `enabled = false`.
fn journey_enabled(j: &JourneyConfig) -> bool {
    j.entry.get("enabled").and_then(|v| v.as_bool()).unwrap_or(true)
}

fn json<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("a configuration entry serializes")
}

/// Leaves out keys without a value (`null`): an absent key means the same, and reads better.
fn tidy(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, tidy(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(tidy).collect()),
        v => v,
    }
}

/// An id a definition may have: letters, digits, `-` and `_` (what rules already require), and
/// not a word the API's paths use.
fn check_id(kind: DefinitionKind, id: &str) -> Result<(), FieldProblem> {
    let bad = |problem: &str| Err(FieldProblem { field: "id".into(), problem: problem.into() });
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return bad("use letters, digits, - and _");
    }
    if kind == DefinitionKind::Journey && id == "runs" {
        return bad("\"runs\" is reserved (GET /api/journeys/runs)");
    }
    Ok(())
}

impl App {
    /// The definitions stored, the file's configuration and the settings in force, for a view.
    pub async fn definitions(&self, kind: DefinitionKind) -> anyhow::Result<Vec<Defined>> {
        let stored = self.store.definitions().await?;
        Ok(list(&self.settings(), &self.base, &stored, kind))
    }

    /// Reloads the stored definitions when their version moved since this instance last looked
    /// (another instance changed one); cheap otherwise. Returns whether anything was reloaded.
    pub async fn refresh_definitions(&self) -> anyhow::Result<bool> {
        use std::sync::atomic::Ordering::SeqCst;
        let _one_at_a_time = self.definitions_reload.lock().await;
        let version = self.store.definitions_version().await?;
        let seen = self.definitions_seen.load(SeqCst);
        if version == seen {
            return Ok(false);
        }
        let stored = self.store.definitions().await?;
        let (settings, _) = settle(&self.base, stored, &self.templates.current())?;
        self.live.set(settings);
        // Unless a template swap asked for another settling meanwhile (it stores -1).
        let _ = self.definitions_seen.compare_exchange(seen, version, SeqCst, SeqCst);
        Ok(true)
    }

    /// Defines, changes, enables, disables or removes a rule or journey: checked as the file
    /// would be, stored (with its scheduled messages cancelled when it stops), put in force on
    /// this instance at once and audited as `actor`.
    pub async fn change_definition(
        &self,
        kind: DefinitionKind,
        id: &str,
        change: Change,
        expect: Option<i64>,
        actor: &str,
    ) -> Result<Applied, Refused> {
        let invalid = |p: FieldProblem| Refused::Invalid(vec![p]);
        // Decide on what is in force now, not on what this instance saw at its last tick.
        if let Err(e) = self.refresh_templates().await {
            tracing::warn!(error = %e, "published templates not reloaded before a definition change");
        }
        self.refresh_definitions().await?;
        let stored = self.store.definitions().await?;
        let settings = self.settings();
        let current = list(&settings, &self.base, &stored, kind).into_iter().find(|d| d.id == id);
        let mine = stored.iter().position(|d| d.kind == kind && d.id == id);
        // A create stores only if nothing is stored under the id by then (another instance's
        // create in between is a conflict, not a silent replacement).
        let expect = if matches!(change, Change::Put { create_only: true, .. }) { Some(0) } else { expect };
        let (body, stops) = match change {
            Change::Put { mut body, create_only } => {
                if create_only && current.is_some() {
                    return Err(Refused::Conflict(format!("{} {id:?} already exists", kind.as_str())));
                }
                let Some(obj) = body.as_object_mut() else {
                    return Err(invalid(FieldProblem {
                        field: String::new(),
                        problem: "must be a JSON object".into(),
                    }));
                };
                match obj.get("id") {
                    None => {
                        obj.insert("id".into(), id.into());
                    }
                    Some(Value::String(s)) if s == id => {}
                    Some(_) => {
                        return Err(invalid(FieldProblem {
                            field: "id".into(),
                            problem: format!("must be {id:?}, the id in the path"),
                        }));
                    }
                }
                check_id(kind, id).map_err(invalid)?;
                let enabled = |b: &Value| b.get("enabled").and_then(|v| v.as_bool()).unwrap_or(true);
                let stops = !enabled(&body);
                (Some(body), stops)
            }
            Change::Enable(on) => {
                // The stored body as written (fresh from the database), else the file's.
                let mut body = match mine.and_then(|n| stored[n].body.clone()) {
                    Some(b) => b,
                    None => current.as_ref().ok_or(Refused::NotFound)?.definition.clone(),
                };
                body["enabled"] = on.into();
                (Some(body), !on)
            }
            Change::Remove => {
                if mine.is_none() {
                    return Err(if current.is_some() { Refused::InConfig } else { Refused::NotFound });
                }
                // Removing an override brings the file's back (stopping only if the file's is
                // disabled); removing the API's own stops it.
                let file_enabled = match kind {
                    DefinitionKind::Rule => self.base.rules.iter().find(|r| r.id == id).map(|r| r.enabled),
                    DefinitionKind::Journey => self.base.journeys.iter().find(|j| j.id == id).map(journey_enabled),
                };
                (None, !file_enabled.unwrap_or(false))
            }
        };
        // Check the whole configuration as it would be.
        let mut next = stored.clone();
        let candidate = StoredDefinition {
            kind,
            id: id.to_string(),
            version: i64::MAX,
            body: body.clone(),
            actor: actor.to_string(),
            at: self.now(),
        };
        match mine {
            Some(n) if body.is_some() => next[n] = candidate,
            Some(n) => {
                next.remove(n);
            }
            None => next.push(candidate),
        }
        let at = next.iter().position(|d| d.kind == kind && d.id == id);
        let merged = merge(&self.base, &next).map_err(|(_, p)| invalid(p))?;
        let templates = self.templates.current();
        if let Err(found) = problems(merged, &templates) {
            {
                // This definition's problems, or (when it broke something else) every problem.
                let own: Vec<FieldProblem> =
                    found.iter().filter(|(n, _)| at.is_some() && *n == at).map(|(_, p)| p.clone()).collect();
                let all = if own.is_empty() { found.into_iter().map(|(_, p)| p).collect() } else { own };
                return Err(Refused::Invalid(all));
            }
        }
        let reason =
            format!("{} {id:?} {} by {actor}", kind.as_str(), if body.is_some() { "disabled" } else { "removed" });
        let written = self
            .store
            .write_definition(&DefinitionWrite {
                kind,
                id,
                body: body.as_ref(),
                expect: expect.map(|v| Some(v).filter(|v| *v != 0)),
                cancel: stops.then_some(reason.as_str()),
                actor,
                now: self.now(),
            })
            .await?;
        let (cancelled, runs) = match written {
            DefinitionWritten::Stored { cancelled, runs, .. } => (cancelled, runs),
            DefinitionWritten::Stale { current } => {
                return Err(Refused::Conflict(format!(
                    "{} {id:?} changed since version {} (now {}); read it again",
                    kind.as_str(),
                    expect.unwrap_or_default(),
                    current.map_or("removed".to_string(), |v| v.to_string())
                )));
            }
        };
        // In force here at once; other instances follow at their next tick.
        self.refresh_definitions().await?;
        self.audit_config_as(actor).await?;
        let definition = self.definitions(kind).await?.into_iter().find(|d| d.id == id);
        Ok(Applied { definition, cancelled, runs_ended: runs })
    }
}
