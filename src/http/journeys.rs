//! Journeys' runs and coupons over HTTP (journeys themselves are in `definitions.rs`): coupon
//! pools (import, remaining counts), and checking a signed coupon code.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Http};

pub fn routes() -> Router<Http> {
    Router::new()
        .route("/api/journeys/runs", get(list_runs))
        .route("/api/coupons", get(list_pools))
        .route("/api/coupons/verify", post(verify))
        .route("/api/coupons/{pool}", post(import))
}

#[derive(Debug, Deserialize)]
struct RunQuery {
    journey: Option<String>,
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

async fn list_runs(State(h): State<Http>, Query(q): Query<RunQuery>) -> Result<Response, ApiError> {
    if q.limit == 0 || q.limit > 1000 {
        return Err(ApiError::bad(Some("limit"), "must be between 1 and 1000"));
    }
    let runs = h.app.store.journey_runs(q.journey.as_deref(), q.limit).await?;
    Ok(Json(json!({ "runs": runs })).into_response())
}

async fn list_pools(State(h): State<Http>) -> Result<Response, ApiError> {
    let coupons = &h.app.settings().coupons;
    let pools: Vec<Value> = h
        .app
        .store
        .coupon_pools()
        .await?
        .into_iter()
        .map(|p| {
            let warn_below = coupons.warn_below(&p.pool);
            json!({"pool": p.pool, "total": p.total, "remaining": p.remaining,
                   "warn_below": warn_below, "low": p.remaining < warn_below})
        })
        .collect();
    Ok(Json(json!({ "pools": pools })).into_response())
}

#[derive(Debug, Deserialize)]
struct ImportBody {
    codes: Vec<String>,
}

/// Adds codes to a pool: `{"codes": ["A1", "A2"]}`; codes already there are counted as such.
async fn import(
    State(h): State<Http>,
    Path(pool): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    if !crate::coupons::valid_pool(&pool) {
        return Err(ApiError::bad(Some("pool"), format!("{pool:?}: use letters, digits, - and _")));
    }
    let body: ImportBody = serde_json::from_value(body)
        .map_err(|e| ApiError::bad(Some("codes"), format!("expected {{\"codes\": [\"...\"]}}: {e}")))?;
    let codes = crate::coupons::clean_codes(body.codes.iter().map(String::as_str))
        .map_err(|(i, problem)| ApiError::bad(Some(&format!("codes[{i}]")), problem))?;
    let imported = h.app.store.import_coupons(&pool, &codes, h.app.now()).await?;
    Ok(Json(json!({"pool": pool, "imported": imported, "duplicate": codes.len() as u64 - imported})).into_response())
}

#[derive(Debug, Deserialize)]
struct VerifyBody {
    code: String,
}

async fn verify(State(h): State<Http>, Json(body): Json<Value>) -> Result<Response, ApiError> {
    let body: VerifyBody = serde_json::from_value(body)
        .map_err(|e| ApiError::bad(Some("code"), format!("expected {{\"code\": \"...\"}}: {e}")))?;
    let Some(signer) = &h.app.settings().coupons.signer else {
        return Err(ApiError::not_found("signed coupons are not configured (coupons.secret)"));
    };
    Ok(Json(match signer.verify(&body.code) {
        Ok(prefix) => json!({"valid": true, "prefix": prefix}),
        Err(e) => json!({"valid": false, "problem": e.to_string()}),
    })
    .into_response())
}
