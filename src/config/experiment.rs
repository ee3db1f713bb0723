//! A rule's `experiment` and `conversion` settings as written, and their meaning check: every
//! problem names its key (`rules[2].experiment.variants[1].weight`).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ConfigProblem, parse_duration};
use crate::plan::experiment::{Experiment, HOLDOUT, Variant};
use crate::track::report::{Conversion, DEFAULT_WINDOW};

/// `[rules.experiment]`: variants by weight after a holdout share.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Defaults to the rule's id. Members are assigned by this id: changing it reshuffles them.
    #[serde(default)]
    pub id: Option<String>,
    /// The share of members who get nothing (0 ≤ holdout < 1).
    #[serde(default = "default_holdout")]
    pub holdout: f64,
    pub variants: Vec<VariantConfig>,
}

fn default_holdout() -> f64 {
    0.1
}

/// One `variants` entry.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    pub id: String,
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Defaults to the rule's template.
    #[serde(default)]
    pub template: Option<String>,
    /// Added to the occurrence's variables, e.g. `{ discount = "20%" }`.
    #[serde(default)]
    pub vars: Map<String, Value>,
}

fn default_weight() -> f64 {
    1.0
}

/// `[rules.conversion]`: which events count as a conversion, and for how long after a message.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConversionConfig {
    /// Defaults to `model.purchase_events`.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Defaults to `7d`.
    #[serde(default)]
    pub window: Option<String>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks a rule's experiment; `key` names a field of the rule, `trigger_vars` are the variables
/// the rule's trigger gives (a variant may not hide one).
pub fn check_experiment(
    e: &ExperimentConfig,
    rule_id: &str,
    trigger_vars: &Map<String, Value>,
    key: &dyn Fn(&str) -> String,
    problems: &mut Vec<ConfigProblem>,
) -> Experiment {
    let id = e.id.clone().unwrap_or_else(|| rule_id.to_string());
    if !valid_id(&id) {
        problems.push(ConfigProblem::new(key("experiment.id"), format!("{id:?}: use letters, digits, - and _")));
    }
    if !(e.holdout >= 0.0 && e.holdout < 1.0) {
        problems.push(ConfigProblem::new(key("experiment.holdout"), "must be at least 0 and below 1 (e.g. 0.1)"));
    }
    if e.variants.is_empty() {
        problems.push(ConfigProblem::new(key("experiment.variants"), "name at least one variant"));
    }
    let mut variants: Vec<Variant> = Vec::new();
    for (j, v) in e.variants.iter().enumerate() {
        let vkey = |field: &str| key(&format!("experiment.variants[{j}].{field}"));
        if !valid_id(&v.id) {
            problems.push(ConfigProblem::new(vkey("id"), format!("{:?}: use letters, digits, - and _", v.id)));
        } else if v.id == HOLDOUT {
            problems.push(ConfigProblem::new(vkey("id"), "\"holdout\" is the arm of held-out members"));
        } else if variants.iter().any(|w| w.id == v.id) {
            problems.push(ConfigProblem::new(vkey("id"), format!("{:?} is used by another variant", v.id)));
        }
        if !(v.weight.is_finite() && v.weight > 0.0) {
            problems.push(ConfigProblem::new(vkey("weight"), "must be a positive number"));
        }
        if v.template.as_deref().is_some_and(str::is_empty) {
            problems.push(ConfigProblem::new(vkey("template"), "name a template (or leave it out for the rule's)"));
        }
        for name in v.vars.keys() {
            if trigger_vars.contains_key(name) {
                problems.push(ConfigProblem::new(
                    vkey("vars"),
                    format!("{name:?} would hide the trigger's own variable of that name"),
                ));
            }
        }
        variants.push(Variant {
            id: v.id.clone(),
            weight: v.weight,
            template: v.template.clone(),
            vars: v.vars.clone(),
        });
    }
    Experiment { id, holdout: e.holdout, variants }
}

/// Checks a rule's conversion settings, with `purchase_events` as the default kinds.
pub fn check_conversion(
    c: Option<&ConversionConfig>,
    purchase_events: &[String],
    key: &dyn Fn(&str) -> String,
    problems: &mut Vec<ConfigProblem>,
) -> Conversion {
    let c = c.cloned().unwrap_or_default();
    let events = c.events.unwrap_or_else(|| purchase_events.to_vec());
    if events.is_empty() || events.iter().any(|k| k.trim().is_empty()) {
        problems.push(ConfigProblem::new(key("conversion.events"), "name at least one event kind"));
    }
    let window = match c.window.as_deref().map(parse_duration) {
        None => DEFAULT_WINDOW,
        Some(Ok(d)) if d > jiff::SignedDuration::ZERO => d,
        Some(Ok(_)) => {
            problems.push(ConfigProblem::new(key("conversion.window"), "must be longer than zero"));
            DEFAULT_WINDOW
        }
        Some(Err(e)) => {
            problems.push(ConfigProblem::new(key("conversion.window"), e));
            DEFAULT_WINDOW
        }
    };
    Conversion { events, window }
}
