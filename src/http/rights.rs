//! Member rights over HTTP: `GET /api/members/{external_id}/export` answers everything held
//! about the member as one JSON document; `DELETE /api/members/{external_id}` erases them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{ApiError, Caller, Http};
use crate::rights::{self, EraseError};

pub async fn export(State(h): State<Http>, Path(external_id): Path<String>) -> Result<Response, ApiError> {
    match rights::export(&h.app.store, &external_id, h.app.now()).await? {
        Some(doc) => Ok(Json(doc).into_response()),
        None => Err(ApiError::not_found(format!("no member {external_id:?}"))),
    }
}

pub async fn erase(
    State(h): State<Http>,
    caller: Caller,
    Path(external_id): Path<String>,
) -> Result<Response, ApiError> {
    match rights::erase(&h.app.store, &external_id, &caller.actor(), h.app.now()).await {
        Ok(report) => {
            tracing::info!(member.id = report.member_id, "member erased");
            Ok(Json(report).into_response())
        }
        Err(EraseError::UnknownMember(_)) => Err(ApiError::not_found(format!("no member {external_id:?}"))),
        Err(e @ EraseError::NoHashKey) => {
            Err(ApiError { status: StatusCode::CONFLICT, message: e.to_string(), field: None })
        }
        Err(EraseError::Store(e)) => Err(e.into()),
    }
}
