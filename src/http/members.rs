//! Members and their events over HTTP: upsert one or many, read one, search and filter them
//! (paged), list a member's push devices (paged), and record events one or many at a time,
//! idempotently: an event with an `id` (or `event_id`) is recorded once, however often its batch
//! is retried, and only its first recording ends journeys or counts as a conversion.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::page::{Page, Params};
use super::{ApiError, Http, items, serde_field};
use crate::members::EventInput;
use crate::members::validate::{FieldError, member_from_json};
use crate::store::MemberSearch;

/// One item of a batch that was rejected.
#[derive(Debug, Serialize)]
pub(super) struct ItemError {
    pub index: usize,
    pub field: Option<String>,
    pub problem: String,
}

/// `POST /api/members`: one member or a list, each validated on its own.
pub(super) async fn upsert(State(h): State<Http>, Json(body): Json<Value>) -> Result<Response, ApiError> {
    let mut good = Vec::new();
    let mut consent = Vec::new();
    let mut errors = Vec::new();
    for (index, item) in items(body)?.into_iter().enumerate() {
        let result = match item.as_object() {
            Some(obj) => crate::members::consent::both(member_from_json(obj), crate::members::consent::from_json(obj)),
            None => Err(vec![FieldError { field: String::new(), problem: "not an object".into() }]),
        };
        match result {
            Ok((m, given)) => {
                consent.extend(crate::members::consent::changes(&m.external_id, &given));
                good.push(m)
            }
            Err(fields) => errors.extend(fields.into_iter().map(|f| ItemError {
                index,
                field: Some(f.field).filter(|f| !f.is_empty()),
                problem: f.problem,
            })),
        }
    }
    let counts = h.app.store.upsert_members(&good, h.app.now()).await?;
    h.app.store.change_consent(&consent, crate::store::consent::ACTOR_IMPORT, h.app.now()).await?;
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((
        status,
        Json(json!({"inserted": counts.inserted, "updated": counts.updated,
        "unchanged": counts.unchanged, "errors": errors})),
    )
        .into_response())
}

/// `GET /api/members/{external_id}`.
pub(super) async fn get_one(State(h): State<Http>, Path(external_id): Path<String>) -> Result<Response, ApiError> {
    match h.app.store.member_by_external_id(&external_id).await? {
        Some(m) => Ok(Json(m).into_response()),
        None => Err(ApiError::not_found(format!("no member {external_id:?}"))),
    }
}

/// `GET /api/members?q=&segment=&tier=&locale=&limit=&cursor=`: members in the order they
/// joined the database; `q` is a prefix of the external id, name, email or phone number.
pub(super) async fn list(State(h): State<Http>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(raw.as_deref())?;
    let page = p.page()?;
    let q = p.take_with("q", |v| {
        if v.chars().count() > 200 { Err("at most 200 characters".into()) } else { Ok(v.to_string()) }
    })?;
    let segment = p.take_with("segment", |v| v.parse())?;
    let tier = p.take("tier");
    let locale = p.take("locale").map(|l| l.replace('_', "-"));
    p.finish()?;
    let search = MemberSearch { q, segment, tier, locale, after: page.cursor, limit: page.fetch() };
    let rows = h.app.store.search_members(&search).await?;
    Ok(Page::of(rows, page, |m| m.id).into_response())
}

/// `GET /api/members/{external_id}/devices`: the member's push devices, oldest first.
pub(super) async fn devices(
    State(h): State<Http>,
    Path(external_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut p = Params::parse(raw.as_deref())?;
    let page = p.page()?;
    p.finish()?;
    match h.app.store.member_devices(&external_id, page.cursor, page.fetch()).await? {
        Some(rows) => Ok(Page::of(rows, page, |d| d.id).into_response()),
        None => Err(ApiError::not_found(format!("no member {external_id:?}"))),
    }
}

/// An event as the API takes it; `at` defaults to now. `id` (or `event_id`) is the host's
/// idempotency key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    #[serde(default, alias = "id")]
    event_id: Option<String>,
    member: String,
    kind: String,
    #[serde(default)]
    amount: Option<f64>,
    #[serde(default)]
    at: Option<jiff::Timestamp>,
    /// A JSON object, given to templates as `occurrence.event.*`.
    #[serde(default)]
    data: Option<Value>,
}

/// `POST /api/events`: one event or a list. `recorded` counts events this call stored,
/// `duplicate` those an earlier call (or an earlier item) already had; `accepted`, their sum, is
/// the same for a batch and its retries.
pub(super) async fn record_events(State(h): State<Http>, Json(body): Json<Value>) -> Result<Response, ApiError> {
    let now = h.app.now();
    let mut good = Vec::new();
    let mut errors = Vec::new();
    for (index, item) in items(body)?.into_iter().enumerate() {
        match serde_json::from_value::<EventBody>(item) {
            Ok(e) if e.kind.trim().is_empty() => {
                errors.push(ItemError { index, field: Some("kind".into()), problem: "missing".into() })
            }
            Ok(e) if e.event_id.as_deref().is_some_and(|id| id.trim().is_empty() || id.len() > 200) => {
                errors.push(ItemError { index, field: Some("id".into()), problem: "1 to 200 characters".into() })
            }
            Ok(e)
                if e.at.is_some_and(|at| at > now.checked_add(jiff::SignedDuration::from_hours(24)).unwrap_or(at)) =>
            {
                errors.push(ItemError {
                    index,
                    field: Some("at".into()),
                    problem: "is more than a day in the future".into(),
                })
            }
            Ok(e) => match crate::entry::event_data(e.data) {
                Ok(data) => good.push(EventInput {
                    event_id: e.event_id,
                    member: e.member,
                    kind: e.kind.trim().to_string(),
                    amount: e.amount,
                    at: e.at.unwrap_or(now),
                    data,
                }),
                Err(problem) => errors.push(ItemError { index, field: Some("data".into()), problem }),
            },
            Err(e) => errors.push(ItemError { index, field: serde_field(&e.to_string()), problem: e.to_string() }),
        }
    }
    let counts = h.app.store.record_events(&good, now).await?;
    // Before the answer: a purchase ends a win-back journey at once. Only what this call recorded
    // counts, so a retried batch cannot end a run its first delivery did not.
    let recorded: HashSet<&str> = counts.recorded_ids.iter().map(String::as_str).collect();
    let mut first = HashSet::new();
    let fresh: Vec<EventInput> = good
        .iter()
        .filter(|e| match e.event_id.as_deref() {
            None => true,
            Some(id) => recorded.contains(id) && first.insert(id),
        })
        .cloned()
        .collect();
    crate::journeys::exit_on_events(&h.app.store, &h.app.settings().journeys, &fresh, now).await?;
    let status = if errors.is_empty() && counts.unknown_members.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((
        status,
        Json(json!({"recorded": counts.recorded, "duplicate": counts.duplicate,
        "accepted": counts.recorded + counts.duplicate,
        "unknown_members": counts.unknown_members, "errors": errors})),
    )
        .into_response())
}
