//! Priority classes and collisions: two marketing messages from different rules for one member on
//! the same member-local day collide, and the member gets one: the higher priority class (ties:
//! the rule listed first), never both. With `merge` on the winning rule, the winner carries the
//! losers' occurrence variables (`occurrence.also`) so one message greets both. Pure: the
//! contenders (this batch, stored messages, and occurrences not yet planned) are arguments.

use serde_json::{Map, Value, json};

/// A rule's priority class; a higher class wins a collision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    Promotional,
    #[default]
    Lifecycle,
    Service,
}

impl Priority {
    pub fn parse(s: &str) -> Option<Priority> {
        match s {
            "service" => Some(Priority::Service),
            "lifecycle" => Some(Priority::Lifecycle),
            "promotional" => Some(Priority::Promotional),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Service => "service",
            Priority::Lifecycle => "lifecycle",
            Priority::Promotional => "promotional",
        }
    }
}

/// Where a contender is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Already handed to a provider (sending, sent, delivered, undelivered, ambiguous).
    Handed,
    /// Scheduled, claimed, or an occurrence not yet planned.
    Pending,
    /// Skipped earlier as having collided with the rule named in [`Contender::collided_with`].
    Collided,
}

/// A marketing message (or a not-yet-planned occurrence) for the member on the day in question.
#[derive(Debug, Clone, PartialEq)]
pub struct Contender {
    pub rule: String,
    pub occurrence: String,
    pub priority: Priority,
    /// The rule's position in the configuration (ties go to the lower); `usize::MAX` for a rule
    /// no longer configured.
    pub order: usize,
    pub stage: Stage,
    /// For `Collided`: the rule it lost to.
    pub collided_with: Option<String>,
    pub vars: Map<String, Value>,
}

impl Contender {
    fn rank(&self) -> (Priority, std::cmp::Reverse<usize>) {
        (self.priority, std::cmp::Reverse(self.order))
    }
}

/// What a collision makes of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send it; with `merge`, `also` lists the losers' occurrences for `occurrence.also`.
    Send { also: Vec<Value> },
    /// Skip it: `collided with <rule>`.
    Collided { with: String },
}

/// Decides `me` against the other contenders of its member and day (other rules' marketing
/// messages; entries of `me`'s own rule are ignored). A contender already handed to a provider
/// wins whatever its class (never both); otherwise the highest class wins, ties to the rule
/// listed first.
pub fn decide(me: &Contender, others: &[Contender], merge: bool) -> Verdict {
    let others: Vec<&Contender> = others.iter().filter(|o| o.rule != me.rule).collect();
    if let Some(sent) = others.iter().find(|o| o.stage == Stage::Handed) {
        return Verdict::Collided { with: sent.rule.clone() };
    }
    let best = others.iter().filter(|o| o.stage == Stage::Pending).max_by_key(|o| o.rank());
    if let Some(best) = best.filter(|b| b.rank() > me.rank()) {
        return Verdict::Collided { with: best.rule.clone() };
    }
    if !merge {
        return Verdict::Send { also: Vec::new() };
    }
    let mut seen = std::collections::HashSet::new();
    let also = others
        .iter()
        .filter(|o| match o.stage {
            Stage::Pending => true,
            Stage::Collided => o.collided_with.as_deref() == Some(me.rule.as_str()),
            Stage::Handed => false,
        })
        .filter(|o| seen.insert((o.rule.clone(), o.occurrence.clone())))
        .map(|o| {
            let mut entry = o.vars.clone();
            entry.insert("rule".into(), json!(o.rule));
            Value::Object(entry)
        })
        .collect();
    Verdict::Send { also }
}

/// The reason recorded on a message that lost a collision.
pub fn reason(with: &str) -> String {
    format!("collided with {with}")
}

/// The rule a `collided with <rule>` reason names.
pub fn collided_with(reason: &str) -> Option<&str> {
    reason.strip_prefix("collided with ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(rule: &str, priority: Priority, order: usize, stage: Stage) -> Contender {
        let mut vars = Map::new();
        vars.insert("key".into(), json!(format!("{rule}:2026")));
        Contender {
            rule: rule.into(),
            occurrence: format!("{rule}:2026"),
            priority,
            order,
            stage,
            collided_with: None,
            vars,
        }
    }

    use Priority::{Lifecycle, Promotional, Service};
    use Stage::{Collided, Handed, Pending};

    #[test]
    fn the_higher_class_wins_whichever_is_due_first() {
        let birthday = c("birthday", Lifecycle, 1, Pending);
        let festival = c("festival", Promotional, 0, Pending);
        assert_eq!(decide(&birthday, std::slice::from_ref(&festival), false), Verdict::Send { also: vec![] });
        assert_eq!(decide(&festival, &[birthday], false), Verdict::Collided { with: "birthday".into() });
    }

    #[test]
    fn ties_go_to_the_rule_listed_first() {
        let a = c("a", Lifecycle, 0, Pending);
        let b = c("b", Lifecycle, 1, Pending);
        assert_eq!(decide(&a, std::slice::from_ref(&b), false), Verdict::Send { also: vec![] });
        assert_eq!(decide(&b, &[a], false), Verdict::Collided { with: "a".into() });
    }

    #[test]
    fn one_already_sent_wins_whatever_its_class() {
        let sent = c("festival", Promotional, 5, Handed);
        let service = c("notice", Service, 0, Pending);
        assert_eq!(decide(&service, &[sent], true), Verdict::Collided { with: "festival".into() });
    }

    #[test]
    fn the_same_rule_never_collides_with_itself() {
        let sms = c("birthday", Lifecycle, 0, Pending);
        assert_eq!(decide(&sms, &[c("birthday", Lifecycle, 0, Handed)], false), Verdict::Send { also: vec![] });
    }

    #[test]
    fn a_merging_winner_carries_the_losers_occurrences() {
        let birthday = c("birthday", Lifecycle, 0, Pending);
        let mut lost = c("festival", Promotional, 1, Collided);
        lost.collided_with = Some("birthday".into());
        let mut lost_elsewhere = c("other", Promotional, 2, Collided);
        lost_elsewhere.collided_with = Some("someone-else".into());
        let pending = c("holiday", Promotional, 3, Pending);
        let Verdict::Send { also } = decide(&birthday, &[lost, lost_elsewhere, pending.clone(), pending], true) else {
            panic!("the birthday wins")
        };
        let rules: Vec<&str> = also.iter().map(|a| a["rule"].as_str().unwrap()).collect();
        assert_eq!(rules, ["festival", "holiday"]);
        assert_eq!(also[0]["key"], "festival:2026");
    }

    #[test]
    fn reasons_round_trip() {
        assert_eq!(collided_with(&reason("birthday")), Some("birthday"));
        assert_eq!(collided_with("capped: 1 marketing sms per 1d"), None);
    }
}
