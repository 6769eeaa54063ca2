//! `GET /v1/seals` and `GET /v1/seals/{seal_id}`: what a caller may use (an admin sees all).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use seald_policy::AppRole as Role;
use serde_json::{json, Value};

use super::{Caller, PeerExt, St};
use crate::problem::ApiError;
use crate::registry::SealEntry;

fn describe(seal: &SealEntry, full: bool) -> Value {
    let row = &seal.row;
    let certificate = seald_pkcs11::Certificate::read_all(row.chain_pem.as_bytes(), &row.id)
        .ok()
        .and_then(|c| c.into_iter().next())
        .map(|c| {
            json!({
                "subject": c.subject(),
                "issuer": c.issuer(),
                "serial": c.serial_hex(),
                "not_after": c.not_after(),
            })
        });
    let mut v = json!({
        "id": row.id,
        "name": row.name,
        "status": seal.policy.status,
        "token": row.token,
        "key_label": row.key_label,
        "certificate": certificate,
        "has_image": row.image_png.is_some(),
        "kind": seal.policy.kind,
        "department": seal.policy.department,
        "holders": seal.policy.holders,
        "practice_authorized": seal.policy.practice_authorized,
        "enterprise": seal.policy.enterprise,
        "limits": seal.policy.limits,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    });
    if full {
        v["certificate_chain_pem"] = json!(row.chain_pem);
        v["image_png_base64"] = json!(row
            .image_png
            .as_ref()
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p)));
    }
    v
}

pub async fn list(State(state): St, axum::Extension(peer): PeerExt) -> Response {
    let caller = Caller::new(&state, peer);
    let app = match caller.require_app(&state, "seal.list").await {
        Ok(a) => a,
        Err(e) => return caller.fail(e),
    };
    let admin = app.policy.has_role(Role::Admin);
    let seals: Vec<Value> = caller
        .registry
        .seals
        .values()
        .filter(|s| admin || app.policy.seals.contains(&s.row.id))
        .map(|s| describe(s, false))
        .collect();
    Json(json!({ "seals": seals })).into_response()
}

pub async fn show(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(seal_id): Path<String>,
) -> Response {
    let caller = Caller::new(&state, peer);
    let app = match caller.require_app(&state, "seal.show").await {
        Ok(a) => a,
        Err(e) => return caller.fail(e),
    };
    let admin = app.policy.has_role(Role::Admin);
    // A seal the caller may not use is reported as absent: its existence is not theirs to know.
    match caller
        .registry
        .seals
        .get(&seal_id)
        .filter(|_| admin || app.policy.seals.contains(&seal_id))
    {
        Some(s) => Json(describe(s, true)).into_response(),
        None => caller.fail(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "seal_not_found",
            "No such seal",
            format!("there is no seal '{seal_id}' this application may use"),
        )),
    }
}
