//! Messages over HTTP: search them (paged, newest first), read one with its rendered content
//! and history, send a transactional one, and an operator's retry or cancel of one message.
//! Retry and cancel are fenced in the store on the message's state: a message a worker has
//! claimed is never cancelled, and a state that does not allow the move is a 409 naming it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::page::{Page, Params};
use super::{ApiError, Http, serde_field};
use crate::channels::ChannelKind;
use crate::store::search::{CANCELLABLE, RETRYABLE};
use crate::store::{HistoryEntry, MessageFilter, MessageRow, MessageSearch, OneMove, State as MessageState};

/// `GET /api/messages?member=&rule=&state=&channel=&since=&until=&limit=&cursor=`.
pub(super) async fn list(State(h): State<Http>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(raw.as_deref())?;
    let page = p.page()?;
    let state = p.take_with("state", parse_state)?;
    let channel = p.take_with("channel", |v| {
        ChannelKind::parse(v).ok_or_else(|| format!("unknown channel {v:?}: expected sms, email, push or webhook"))
    })?;
    let since = p.take_instant("since")?;
    let until = p.take_instant("until")?;
    if let (Some(s), Some(u)) = (since, until)
        && u <= s
    {
        return Err(ApiError::bad(Some("until"), "must be after since"));
    }
    let search = MessageSearch {
        member: p.take("member"),
        rule_id: p.take("rule"),
        state,
        channel,
        since,
        until,
        before: page.cursor,
        limit: page.fetch(),
    };
    p.finish()?;
    let rows = h.app.store.search_messages(&search).await?;
    Ok(Page::of(rows, page, |m| m.id).into_response())
}

fn parse_state(v: &str) -> Result<MessageState, String> {
    MessageState::parse(v).ok_or_else(|| {
        let names: Vec<&str> = MessageState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state {v:?}: expected one of {}", names.join(", "))
    })
}

/// A message with every state change it went through.
#[derive(Debug, Serialize)]
struct MessageDetail {
    #[serde(flatten)]
    message: MessageRow,
    history: Vec<HistoryEntry>,
}

/// A message id from the path: a positive integer, else an error naming `id`.
fn message_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad(Some("id"), format!("{id:?} is not a message id")))
}

async fn find(h: &Http, id: i64) -> Result<MessageRow, ApiError> {
    let filter = MessageFilter { id: Some(id), limit: 1, ..Default::default() };
    h.app.store.messages(&filter).await?.pop().ok_or_else(|| ApiError::not_found(format!("no message {id}")))
}

/// `GET /api/messages/{id}`: the message (with what was rendered, once it went to a provider;
/// attempts; the provider's id) and its history, oldest first.
pub(super) async fn get_one(State(h): State<Http>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = message_id(&id)?;
    let message = find(&h, id).await?;
    let history = h.app.store.history(id).await?;
    Ok(Json(MessageDetail { message, history }).into_response())
}

/// `GET /api/messages/{id}/history`.
pub(super) async fn history(State(h): State<Http>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = message_id(&id)?;
    let history = h.app.store.history(id).await?;
    if history.is_empty() {
        return Err(ApiError::not_found(format!("no message {id}")));
    }
    Ok(Json(history).into_response())
}

/// The optional body of a retry or cancel: `{"reason": "why"}`.
fn move_reason(body: &Bytes) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(body) else {
        return Err(ApiError::bad(Some("body"), "expected a JSON object such as {\"reason\": \"…\"}"));
    };
    let reason = obj.remove("reason");
    if let Some(other) = obj.keys().next() {
        return Err(ApiError::bad(Some(other), "unknown field: only reason is taken"));
    }
    match reason {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(r)) if r.trim().chars().count() > 500 => {
            Err(ApiError::bad(Some("reason"), "at most 500 characters"))
        }
        Some(Value::String(r)) => Ok(Some(r.trim().to_string()).filter(|r| !r.is_empty())),
        Some(_) => Err(ApiError::bad(Some("reason"), "must be a string")),
    }
}

fn detail(what: &str, who: &str, reason: Option<&str>) -> String {
    match reason {
        Some(why) => format!("{what} by {who}: {why}"),
        None => format!("{what} by {who}"),
    }
}

/// `POST /api/messages/{id}/retry`: a failed, dead or ambiguous message is scheduled now.
pub(super) async fn retry(
    State(h): State<Http>,
    Path(id): Path<String>,
    caller: super::Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = message_id(&id)?;
    let reason = move_reason(&body)?;
    let who = super::consent::actor(&caller, &headers)?;
    let detail = detail("retried", &who, reason.as_deref());
    match h.app.store.retry_message(id, &detail, h.app.now()).await? {
        OneMove::Moved => {
            h.app.wake.notify_waiters();
            Ok(Json(find(&h, id).await?).into_response())
        }
        OneMove::NotFound => Err(ApiError::not_found(format!("no message {id}"))),
        OneMove::InState(state) => Err(ApiError::conflict(
            "state",
            format!("message {id} is {state}: only {} messages can be retried", names(&RETRYABLE)),
        )),
    }
}

/// `POST /api/messages/{id}/cancel`: a scheduled message (due, or deferred to later) is
/// skipped as `cancelled by <actor>`; one a worker already claimed is not.
pub(super) async fn cancel(
    State(h): State<Http>,
    Path(id): Path<String>,
    caller: super::Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = message_id(&id)?;
    let reason = move_reason(&body)?;
    let who = super::consent::actor(&caller, &headers)?;
    let skip_reason = format!("cancelled by {who}");
    let detail = detail("cancelled", &who, reason.as_deref());
    match h.app.store.cancel_message(id, &skip_reason, &detail, h.app.now()).await? {
        OneMove::Moved => Ok(Json(find(&h, id).await?).into_response()),
        OneMove::NotFound => Err(ApiError::not_found(format!("no message {id}"))),
        OneMove::InState(state) => Err(ApiError::conflict(
            "state",
            format!("message {id} is {state}: only {} messages can be cancelled", names(&CANCELLABLE)),
        )),
    }
}

fn names(states: &[MessageState]) -> String {
    let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// `POST /api/messages/send`: a transactional message now, idempotent on `idempotency_key`
/// (see `entry::send`). 202 with the messages; 200 when the key was used with this same request.
pub(super) async fn send(State(h): State<Http>, Json(body): Json<Value>) -> Result<Response, ApiError> {
    let request: crate::entry::SendRequest = serde_json::from_value(body).map_err(|e| {
        let field = serde_field(&e.to_string());
        ApiError::bad_request(field.as_deref().unwrap_or(""), e.to_string())
    })?;
    match crate::entry::send(&h.app, request).await {
        Ok(out) => {
            let status = if out.replayed { StatusCode::OK } else { StatusCode::ACCEPTED };
            Ok((status, Json(out)).into_response())
        }
        Err(crate::entry::SendError::Bad { field, problem }) => Err(ApiError::bad_request(field, problem)),
        Err(e @ crate::entry::SendError::NoMember(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ crate::entry::SendError::Conflict { field }) => Err(ApiError::conflict(field, e.to_string())),
        Err(crate::entry::SendError::Store(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lists_read_as_prose() {
        assert_eq!(names(&RETRYABLE), "failed, dead or ambiguous");
        assert_eq!(names(&CANCELLABLE), "scheduled");
    }

    #[test]
    fn a_move_body_is_optional_and_its_reason_bounded() {
        assert_eq!(move_reason(&Bytes::from_static(b"")).ok(), Some(None));
        assert_eq!(move_reason(&Bytes::from_static(b"{}")).ok(), Some(None));
        assert_eq!(move_reason(&Bytes::from_static(b"{\"reason\": \" typo \"}")).ok(), Some(Some("typo".into())));
        let field = |b: &'static [u8]| move_reason(&Bytes::from_static(b)).err().and_then(|e| e.field);
        assert_eq!(field(b"{\"why\": 1}"), Some("why".into()));
        assert_eq!(field(b"{\"reason\": 1}"), Some("reason".into()));
        assert_eq!(field(b"not json"), Some("body".into()));
    }
}
