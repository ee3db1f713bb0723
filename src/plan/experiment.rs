//! Experiments: a rule (or a journey step) split between variants by weight, with a holdout
//! share of members who get nothing, so the report can say what the messages changed. Pure:
//! the arm is a function of the experiment's id and the member's id, the same on every tick,
//! every instance and every restart, and it is recorded on the message row.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::NewMessage;

/// The arm of members who are held out: recorded as the message's variant.
pub const HOLDOUT: &str = "holdout";

/// The skip reason of a held-out member's message.
pub const HOLDOUT_REASON: &str = "holdout";

/// An experiment on a rule: variants by weight after a holdout share.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// Part of every member's assignment: a new id reshuffles members.
    pub id: String,
    /// The share of members who get nothing, in `[0, 1)`.
    pub holdout: f64,
    /// At least one; weights are positive.
    pub variants: Vec<Variant>,
}

/// One variant: what its members get instead of the rule's template and variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub id: String,
    pub weight: f64,
    /// `None`: the rule's template.
    pub template: Option<String>,
    /// Added to the occurrence's variables (`{{occurrence.discount}}`).
    pub vars: Map<String, Value>,
}

/// Which arm a member is in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arm<'a> {
    Holdout,
    Variant(&'a Variant),
}

impl Arm<'_> {
    /// The arm's id as recorded: the variant's id, or `holdout`.
    pub fn id(&self) -> &str {
        match self {
            Arm::Holdout => HOLDOUT,
            Arm::Variant(v) => &v.id,
        }
    }
}

/// A uniform draw in `[0, 1)` fixed by the experiment and the member: the first 53 bits of
/// SHA-256 over both ids. Not Rust's `DefaultHasher`, whose keys change with every process.
pub fn unit(experiment_id: &str, member_id: i64) -> f64 {
    let mut h = Sha256::new();
    h.update(b"tidings-experiment\0");
    h.update(experiment_id.as_bytes());
    h.update(b"\0");
    h.update(member_id.to_be_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// The member's arm: holdout when the draw falls below the holdout share, else the variant
/// whose slice of the rest (by weight) holds it.
pub fn assign(experiment: &Experiment, member_id: i64) -> Arm<'_> {
    let u = unit(&experiment.id, member_id);
    if u < experiment.holdout || experiment.variants.is_empty() {
        return Arm::Holdout;
    }
    // Where the draw falls within the variants' share, scaled to the total weight.
    let total: f64 = experiment.variants.iter().map(|v| v.weight).sum();
    let at = (u - experiment.holdout) / (1.0 - experiment.holdout) * total;
    let mut upto = 0.0;
    for v in &experiment.variants {
        upto += v.weight;
        if at < upto {
            return Arm::Variant(v);
        }
    }
    Arm::Variant(experiment.variants.last().expect("not empty"))
}

/// Applies an arm to a planned message: records the experiment and arm; a variant's template
/// and variables replace or join the rule's; a held-out member's message is skipped (kept, so
/// the member counts as eligible, but never sent). A message already skipped keeps its reason.
pub fn apply(experiment: &Experiment, arm: &Arm<'_>, msg: &mut NewMessage) {
    msg.experiment = Some(experiment.id.clone());
    msg.variant = Some(arm.id().to_string());
    match arm {
        Arm::Holdout => {
            if msg.skip.is_none() {
                msg.skip = Some(HOLDOUT_REASON.to_string());
            }
        }
        Arm::Variant(v) => {
            if let Some(t) = &v.template {
                msg.template = t.clone();
            }
            for (k, val) in &v.vars {
                msg.vars.insert(k.clone(), val.clone());
            }
        }
    }
}

/// One template a rule's messages may be rendered from, for the start-up check.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleTemplate<'a> {
    /// The rule's key that names it: `template` or `experiment.variants[1].template`.
    pub key: String,
    pub template: &'a str,
    /// The variables a variant adds to the occurrence's.
    pub vars: Option<&'a Map<String, Value>>,
}

/// What a rule's messages are rendered from: the rule's own template without an experiment,
/// else each variant's.
pub fn templates<'a>(experiment: Option<&'a Experiment>, rule_template: &'a str) -> Vec<RuleTemplate<'a>> {
    let own = |vars| RuleTemplate { key: "template".to_string(), template: rule_template, vars };
    match experiment {
        None => vec![own(None)],
        Some(e) => e
            .variants
            .iter()
            .enumerate()
            .map(|(j, v)| match &v.template {
                Some(t) => RuleTemplate {
                    key: format!("experiment.variants[{j}].template"),
                    template: t.as_str(),
                    vars: Some(&v.vars),
                },
                None => own(Some(&v.vars)),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::{ChannelKind, Purpose};
    use serde_json::json;

    fn variant(id: &str, weight: f64) -> Variant {
        Variant { id: id.into(), weight, template: None, vars: Map::new() }
    }

    fn experiment(holdout: f64, variants: Vec<Variant>) -> Experiment {
        Experiment { id: "winback-test".into(), holdout, variants }
    }

    fn shares(e: &Experiment, n: i64) -> std::collections::BTreeMap<String, f64> {
        let mut counts = std::collections::BTreeMap::new();
        for id in 1..=n {
            *counts.entry(assign(e, id).id().to_string()).or_insert(0.0) += 1.0;
        }
        counts.values_mut().for_each(|c| *c /= n as f64);
        counts
    }

    #[test]
    fn assignment_is_a_function_of_experiment_and_member() {
        let e = experiment(0.2, vec![variant("a", 1.0), variant("b", 1.0)]);
        for id in 1..1000 {
            assert_eq!(assign(&e, id).id(), assign(&e.clone(), id).id());
        }
        // A known value (SHA-256 computed independently), so a change of hash is noticed: it
        // would reshuffle running experiments.
        assert_eq!(unit("winback-test", 42), 0.6274800183292875);
        assert_ne!(unit("winback-test", 42), unit("winback-other", 42));
        let other = Experiment { id: "another".into(), ..e.clone() };
        let moved = (1..1000).filter(|&id| assign(&e, id).id() != assign(&other, id).id()).count();
        assert!(moved > 300, "a new experiment id reshuffles members: {moved}");
    }

    #[test]
    fn the_draw_is_uniform() {
        let n = 100_000;
        let mut buckets = [0u32; 10];
        for id in 0..n {
            let u = unit("uniform", id);
            assert!((0.0..1.0).contains(&u));
            buckets[(u * 10.0) as usize] += 1;
        }
        for b in buckets {
            assert!((b as f64 / n as f64 - 0.1).abs() < 0.005, "{buckets:?}");
        }
    }

    #[test]
    fn holdout_share_and_weights_are_followed() {
        let e = experiment(0.2, vec![variant("a", 1.0), variant("b", 3.0)]);
        let s = shares(&e, 100_000);
        assert!((s["holdout"] - 0.2).abs() < 0.005, "{s:?}");
        assert!((s["a"] - 0.2).abs() < 0.005, "{s:?}");
        assert!((s["b"] - 0.6).abs() < 0.005, "{s:?}");
        let none = experiment(0.0, vec![variant("only", 1.0)]);
        assert_eq!(shares(&none, 1000).keys().collect::<Vec<_>>(), ["only"]);
    }

    fn message() -> NewMessage {
        NewMessage {
            dedupe_key: "w:1:o:sms".into(),
            rule_id: "w".into(),
            member_id: 1,
            occurrence: "o".into(),
            channel: ChannelKind::Sms,
            template: "winback".into(),
            vars: Map::new(),
            run_at: jiff::Timestamp::UNIX_EPOCH,
            deadline: None,
            skip: None,
            fallback: Vec::new(),
            purpose: Purpose::Marketing,
            experiment: None,
            variant: None,
        }
    }

    #[test]
    fn a_variant_brings_its_template_and_vars_and_the_holdout_is_skipped() {
        let mut b = variant("b", 1.0);
        b.template = Some("winback_discount".into());
        b.vars.insert("discount".into(), json!("20%"));
        let e = experiment(0.1, vec![b.clone()]);
        let mut m = message();
        apply(&e, &Arm::Variant(&b), &mut m);
        assert_eq!((m.template.as_str(), m.vars.get("discount")), ("winback_discount", Some(&json!("20%"))));
        assert_eq!(
            (m.experiment.as_deref(), m.variant.as_deref(), m.skip.as_deref()),
            (Some("winback-test"), Some("b"), None)
        );
        let mut h = message();
        apply(&e, &Arm::Holdout, &mut h);
        assert_eq!(
            (h.variant.as_deref(), h.skip.as_deref(), h.template.as_str()),
            (Some("holdout"), Some("holdout"), "winback")
        );
        let mut late = message();
        late.skip = Some("late: …".into());
        apply(&e, &Arm::Holdout, &mut late);
        assert_eq!(late.skip.as_deref(), Some("late: …"));
    }
}
