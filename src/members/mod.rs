//! Members and their events: the input of the pipeline. A member is who we write to; an event
//! (a purchase, a visit, any named kind) is what they did, and moves `last_activity_at`.

pub mod builtin;
pub mod consent;
pub mod demo;
pub mod import;
pub mod refresh;
pub mod validate;
pub mod value;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::triggers::calendar::LunarBirthday;
pub use value::rfm::Segment;

/// A member as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The store's row id.
    pub id: i64,
    /// The host loyalty system's id for the member; unique.
    pub external_id: String,
    pub name: String,
    /// E.164, e.g. `+8613800138000`.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// A BCP 47 tag such as `zh-CN` or `en`.
    pub locale: Option<String>,
    /// An IANA zone such as `Asia/Shanghai`.
    pub time_zone: Option<String>,
    pub birth_date: Option<Date>,
    /// A birthday in the Chinese calendar: month, leap flag, day (`08-15`, `L04-15`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lunar_birthday: Option<LunarBirthday>,
    pub member_since: Option<Date>,
    pub tier: Option<String>,
    pub points: i64,
    /// Free attributes from the host system, available to templates.
    pub attributes: Map<String, Value>,
    pub last_activity_at: Option<Timestamp>,
    /// Value and churn risk from the last nightly refresh; `None` before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<MemberValue>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The store's member change counter when this row last changed (see the evaluator).
    #[serde(skip)]
    pub change_seq: i64,
}

impl Member {
    /// When the member was last active: the last activity, or joining for one never active
    /// (what inactivity is counted from).
    pub fn active_at(&self) -> Timestamp {
        self.last_activity_at.unwrap_or(self.created_at)
    }
}

/// What the nightly refresh computed of a member's value (see `members::value`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberValue {
    /// Days since the last purchase; `None` without one.
    pub recency_days: Option<f64>,
    /// Days with a purchase.
    pub frequency: u32,
    /// Total spend.
    pub monetary: f64,
    /// Recency, frequency and monetary quintile scores, 1 (lowest fifth) to 5; 0 without a purchase.
    pub r: u8,
    pub f: u8,
    pub m: u8,
    pub segment: Segment,
    /// The BG/NBD model's probability that the member is still a customer; `None` without a model.
    pub p_alive: Option<f64>,
    /// Expected purchases over the model's horizon (`model.horizon_days`).
    pub expected_purchases: Option<f64>,
    pub last_purchase_at: Option<Timestamp>,
    /// When a refresh found P(alive) had crossed below a `churn_risk` rule's threshold since the
    /// last purchase (the crossing churn rules fire on); `None` when it has not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn_crossed_at: Option<Timestamp>,
    pub scored_at: Timestamp,
}

/// A member as it arrives from the API or an import, before it has a row id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInput {
    pub external_id: String,
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub locale: Option<String>,
    pub time_zone: Option<String>,
    pub birth_date: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lunar_birthday: Option<LunarBirthday>,
    pub member_since: Option<Date>,
    pub tier: Option<String>,
    pub points: i64,
    pub attributes: Map<String, Value>,
}

/// Something a member did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventInput {
    /// The host system's id for the event; a retried event with the same id is ignored.
    pub event_id: Option<String>,
    /// The member's external id.
    pub member: String,
    /// `purchase`, `visit`, or any named kind.
    pub kind: String,
    pub amount: Option<f64>,
    pub at: Timestamp,
    /// What the host says about the event (an order number, the store): a JSON object, given to
    /// templates of rules the event starts as `occurrence.event.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}
