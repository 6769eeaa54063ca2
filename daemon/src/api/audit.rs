//! `GET /v1/audit/records` (JSON lines) and `GET /v1/audit/checkpoints`, for admins; what
//! `sealctl audit verify|export` reads. Records are served as stored, never "repaired": the
//! verifier must see exactly what is in the database.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{Caller, PeerExt, St};
use crate::problem::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    /// Records with a greater sequence number.
    after: Option<u64>,
    /// Records from this time on (RFC 3339, UTC).
    since: Option<String>,
    limit: Option<u32>,
}

pub async fn records(
    State(state): St,
    axum::Extension(peer): PeerExt,
    uri: axum::http::Uri,
) -> Response {
    let caller = Caller::new(&state, peer);
    if let Err(e) = caller.require_admin(&state, "audit.read").await {
        return caller.fail(e);
    }
    let q = match Query::<RecordsQuery>::try_from_uri(&uri) {
        Ok(Query(q)) => q,
        Err(e) => return caller.fail(ApiError::bad_parameter(e.body_text())),
    };
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let mut after = q.after.unwrap_or(0);
    if let Some(since) = &q.since {
        match state.store.first_seq_since(since).await {
            Ok(first) => after = after.max(first.saturating_sub(1)),
            Err(e) => return caller.fail(e.into()),
        }
    }
    match state.store.records(after, limit).await {
        Ok(records) => {
            let mut out = Vec::new();
            for r in &records {
                if serde_json::to_writer(&mut out, r).is_ok() {
                    out.push(b'\n');
                }
            }
            (
                [(header::CONTENT_TYPE, "application/x-ndjson")],
                Body::from(out),
            )
                .into_response()
        }
        Err(e) => caller.fail(e.into()),
    }
}

pub async fn checkpoints(State(state): St, axum::Extension(peer): PeerExt) -> Response {
    let caller = Caller::new(&state, peer);
    if let Err(e) = caller.require_admin(&state, "audit.read").await {
        return caller.fail(e);
    }
    match state.store.checkpoints().await {
        Ok(c) => Json(c).into_response(),
        Err(e) => caller.fail(e.into()),
    }
}
