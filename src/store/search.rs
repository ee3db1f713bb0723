//! The store's paged reads for the HTTP API, and an operator's retry or cancel of one message.
//! Lists page by keyset on the row id (never `OFFSET`): members and devices in id order,
//! messages newest first. A retry or cancel is one fenced `UPDATE` on the message's state, so it
//! cannot undo a claim a worker made meanwhile.

use jiff::Timestamp;

use super::{Backend, MessageRow, Result, State, Store};
use crate::channels::{ChannelKind, Platform};
use crate::members::Member;
use crate::members::Segment;

/// Members to list: `q` is a prefix of the external id, name or email (case-insensitive), or
/// of the phone number's digits; the other filters must match exactly (locale ignoring case).
#[derive(Debug, Clone, Default)]
pub struct MemberSearch {
    pub q: Option<String>,
    pub segment: Option<Segment>,
    pub tier: Option<String>,
    pub locale: Option<String>,
    /// Members with a row id above this one (the previous page's last).
    pub after: Option<i64>,
    pub limit: u32,
}

impl MemberSearch {
    /// The `LIKE` pattern for the text columns: the query lower-cased, its wildcards escaped
    /// (with `\`), then `%`.
    pub(super) fn text_pattern(&self) -> Option<String> {
        self.q.as_deref().map(|q| format!("{}%", escape_like(&q.to_lowercase())))
    }

    /// The `LIKE` pattern for phone numbers (stored as E.164): `+` and the query's digits, when
    /// it has any and nothing but digits, spaces, dashes, dots, parentheses or a leading `+`.
    pub(super) fn phone_pattern(&self) -> Option<String> {
        let q = self.q.as_deref()?.trim();
        let phone_like = q.chars().all(|c| c.is_ascii_digit() || " -.()+".contains(c));
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        (phone_like && !digits.is_empty()).then(|| format!("+{digits}%"))
    }
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Messages to list, newest first; every filter optional.
#[derive(Debug, Clone, Default)]
pub struct MessageSearch {
    /// The member's external id.
    pub member: Option<String>,
    pub rule_id: Option<String>,
    pub state: Option<State>,
    pub channel: Option<ChannelKind>,
    /// `run_at` at or after this instant.
    pub since: Option<Timestamp>,
    /// `run_at` before this instant.
    pub until: Option<Timestamp>,
    /// Messages with a row id below this one (the previous page's last).
    pub before: Option<i64>,
    pub limit: u32,
}

/// A member's registered push device as the API lists it (the Web Push keys stay inside).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    pub id: i64,
    pub platform: Platform,
    /// The FCM or APNs token, or the Web Push endpoint.
    pub token: String,
    pub registered_at: Timestamp,
}

/// What an operator's move of one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneMove {
    Moved,
    /// No message has this id.
    NotFound,
    /// The message is in a state the move does not apply to (as read after the attempt).
    InState(String),
}

impl Store {
    /// One page of members matching the search, in row id order; erased members are left out.
    pub async fn search_members(&self, s: &MemberSearch) -> Result<Vec<Member>> {
        on_backend!(self.search_members(s))
    }

    /// One page of a member's push devices in row id order, or `None` when there is no member
    /// with this external id.
    pub async fn member_devices(
        &self,
        external_id: &str,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Option<Vec<Device>>> {
        on_backend!(self.member_devices(external_id, after, limit))
    }

    /// One page of messages matching the search, newest (highest id) first.
    pub async fn search_messages(&self, s: &MessageSearch) -> Result<Vec<MessageRow>> {
        on_backend!(self.search_messages(s))
    }

    /// An operator's decision to send one message again: a `failed`, `dead` or `ambiguous`
    /// message is scheduled now, with a fresh set of attempts and no deadline; `detail` goes in
    /// its history (who and why).
    pub async fn retry_message(&self, id: i64, detail: &str, now: Timestamp) -> Result<OneMove> {
        on_backend!(self.retry_message(id, detail, now))
    }

    /// An operator's decision not to send one message: a `scheduled` message (due, or deferred
    /// to later) is skipped with `reason`; `detail` goes in its history. A message a worker has
    /// claimed is past cancelling.
    pub async fn cancel_message(&self, id: i64, reason: &str, detail: &str, now: Timestamp) -> Result<OneMove> {
        on_backend!(self.cancel_message(id, reason, detail, now))
    }
}

/// The states an operator may retry from.
pub const RETRYABLE: [State; 3] = [State::Failed, State::Dead, State::Ambiguous];
/// The states an operator may cancel from.
pub const CANCELLABLE: [State; 1] = [State::Scheduled];

#[cfg(test)]
mod tests {
    use super::*;

    fn search(q: &str) -> MemberSearch {
        MemberSearch { q: Some(q.into()), ..Default::default() }
    }

    #[test]
    fn patterns_escape_wildcards_and_read_phone_digits() {
        assert_eq!(search("Ada").text_pattern().as_deref(), Some("ada%"));
        assert_eq!(search("50%_a\\b").text_pattern().as_deref(), Some("50\\%\\_a\\\\b%"));
        assert_eq!(search("+86 138-0013").phone_pattern().as_deref(), Some("+861380013%"));
        assert_eq!(search("138").phone_pattern().as_deref(), Some("+138%"));
        assert_eq!(search("ada").phone_pattern(), None);
        assert_eq!(search("a1").phone_pattern(), None);
        assert_eq!(search("+").phone_pattern(), None);
    }
}
