//! Administration (applications holding the admin role): register seals and enable or
//! disable them, register applications. Each change is committed with its audit record.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use seald_audit::Decision;
use seald_policy::{AppRole as Role, SealStatus};
use serde::Deserialize;
use serde_json::json;

use super::{Caller, PeerExt, St};
use crate::problem::ApiError;
use crate::state::AppState;
use crate::store::{ApplicationRow, Change, SealRow};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealRegistration {
    id: String,
    name: String,
    /// A `[[token]]` name from the configuration.
    token: String,
    key_label: String,
    /// PEM, the seal certificate first, then its issuers.
    certificate_chain_pem: String,
    image_png_base64: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRegistration {
    id: String,
    name: String,
    certificate_pem: String,
    roles: Vec<Role>,
    #[serde(default)]
    seals: Vec<String>,
    templates: Option<Vec<String>>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        "Invalid registration",
        detail,
    )
}

pub fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(unprocessable(
            "invalid_id",
            format!("{what} ids are 1 to 64 characters: letters, digits, '-', '_' and '.'"),
        ))
    }
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_body(e.body_text()))
}

/// Commits `change` with its audit record and reloads the registry.
async fn commit(
    state: &AppState,
    caller: &Caller,
    action: &str,
    seal: Option<&str>,
    detail: serde_json::Value,
    change: Change,
) -> Result<seald_audit::Record, ApiError> {
    let mut entry = caller.entry(action, Decision::Allowed, None);
    entry.seal = seal.map(str::to_owned);
    entry.detail = Some(detail.to_string());
    let record = state.audit.append(entry, change).await?;
    state.registry.reload(&*state.store).await?;
    Ok(record)
}

fn done(record: &seald_audit::Record, body: serde_json::Value) -> Response {
    let mut response = (StatusCode::OK, Json(body)).into_response();
    response.headers_mut().insert(
        "seald-audit-record",
        axum::http::HeaderValue::from(record.seq),
    );
    response
}

pub async fn register_seal(
    State(state): St,
    axum::Extension(peer): PeerExt,
    body: Result<Json<SealRegistration>, JsonRejection>,
) -> Response {
    let caller = Caller::new(&state, peer);
    if let Err(e) = caller.require_admin(&state, "seal.register").await {
        return caller.fail(e);
    }
    let result = async {
        let reg = json_body(body)?;
        check_id("seal", &reg.id)?;
        if reg.name.trim().is_empty() || reg.name.len() > 200 {
            return Err(unprocessable(
                "invalid_name",
                "the name must be 1 to 200 characters",
            ));
        }
        let image_png = reg
            .image_png_base64
            .as_deref()
            .map(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()))
            .transpose()
            .map_err(|e| {
                unprocessable(
                    "invalid_image",
                    format!("image_png_base64 is not base64: {e}"),
                )
            })?;
        let now = crate::clock::now_rfc3339();
        let existing = state
            .registry
            .snapshot()
            .seals
            .get(&reg.id)
            .map(|s| s.row.created_at.clone());
        let row = SealRow {
            id: reg.id.clone(),
            name: reg.name.clone(),
            token: reg.token.clone(),
            key_label: reg.key_label.clone(),
            chain_pem: reg.certificate_chain_pem.clone(),
            image_png,
            status: SealStatus::Active,
            created_at: existing.unwrap_or_else(|| now.clone()),
            updated_at: now,
        };
        // The key must be on the token and certified by the chain, and the image usable,
        // before the seal is registered: a registration that cannot sign is refused now.
        let keys = state.keys.clone();
        let check = row.clone();
        tokio::task::spawn_blocking(move || keys.prepare(&check).map(|_| ()))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| {
                // A key that is missing or unusable is a mistake in this registration, not a
                // token outage.
                if e.code == "seal_misconfigured" {
                    unprocessable("seal_key_unusable", e.detail)
                } else {
                    e
                }
            })?;
        let detail = json!({"name": row.name, "token": row.token, "key_label": row.key_label});
        let record = commit(
            &state,
            &caller,
            "seal.register",
            Some(&row.id),
            detail,
            Change::PutSeal(row.clone()),
        )
        .await?;
        Ok(done(&record, json!({"id": row.id, "status": "active"})))
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => caller.fail(e),
    }
}

async fn set_status(
    state: &AppState,
    caller: Caller,
    seal_id: String,
    status: SealStatus,
) -> Response {
    let action = if status == SealStatus::Active {
        "seal.enable"
    } else {
        "seal.disable"
    };
    if let Err(e) = caller.require_admin(state, action).await {
        return caller.fail(e);
    }
    if !state.registry.snapshot().seals.contains_key(&seal_id) {
        return caller.fail(ApiError::not_found(format!("there is no seal '{seal_id}'")));
    }
    let change = Change::SealStatus {
        id: seal_id.clone(),
        status,
        updated_at: crate::clock::now_rfc3339(),
    };
    match commit(
        state,
        &caller,
        action,
        Some(&seal_id),
        json!({"status": status}),
        change,
    )
    .await
    {
        Ok(record) => done(&record, json!({"id": seal_id, "status": status})),
        Err(e) => caller.fail(e),
    }
}

pub async fn enable_seal(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(seal_id): Path<String>,
) -> Response {
    let caller = Caller::new(&state, peer);
    set_status(&state, caller, seal_id, SealStatus::Active).await
}

pub async fn disable_seal(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(seal_id): Path<String>,
) -> Response {
    let caller = Caller::new(&state, peer);
    set_status(&state, caller, seal_id, SealStatus::Disabled).await
}

pub async fn register_application(
    State(state): St,
    axum::Extension(peer): PeerExt,
    body: Result<Json<ApplicationRegistration>, JsonRejection>,
) -> Response {
    let caller = Caller::new(&state, peer);
    if let Err(e) = caller.require_admin(&state, "application.register").await {
        return caller.fail(e);
    }
    let result = async {
        let reg = json_body(body)?;
        check_id("application", &reg.id)?;
        if reg.roles.is_empty() {
            return Err(unprocessable(
                "invalid_roles",
                "give at least one role (signer, admin)",
            ));
        }
        let fingerprint = crate::tls::fingerprint_pem(&reg.certificate_pem)
            .map_err(|e| unprocessable("invalid_certificate", format!("certificate_pem: {e}")))?;
        let snapshot = state.registry.snapshot();
        for s in &reg.seals {
            if !snapshot.seals.contains_key(s) {
                return Err(unprocessable(
                    "unknown_seal",
                    format!("there is no seal '{s}'"),
                ));
            }
        }
        if let Some(other) = snapshot
            .by_fingerprint
            .get(&fingerprint)
            .filter(|a| a.row.id != reg.id)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "certificate_registered",
                "Certificate already registered",
                format!(
                    "this certificate's key is registered for application '{}'",
                    other.row.id
                ),
            ));
        }
        let now = crate::clock::now_rfc3339();
        let row = ApplicationRow {
            id: reg.id.clone(),
            name: reg.name.clone(),
            fingerprint: fingerprint.clone(),
            certificate_pem: reg.certificate_pem.clone(),
            roles: reg.roles.clone(),
            seals: reg.seals.clone(),
            templates: reg.templates.clone(),
            enabled: reg.enabled,
            created_at: snapshot
                .applications
                .get(&reg.id)
                .map(|a| a.row.created_at.clone())
                .unwrap_or_else(|| now.clone()),
            updated_at: now,
        };
        let detail = json!({
            "application": row.id, "fingerprint": fingerprint, "roles": row.roles,
            "seals": row.seals, "templates": row.templates, "enabled": row.enabled,
        });
        let record = commit(
            &state,
            &caller,
            "application.register",
            None,
            detail,
            Change::PutApplication(row),
        )
        .await?;
        Ok(done(
            &record,
            json!({"id": reg.id, "fingerprint": fingerprint}),
        ))
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => caller.fail(e),
    }
}

pub async fn list_applications(State(state): St, axum::Extension(peer): PeerExt) -> Response {
    let caller = Caller::new(&state, peer);
    if let Err(e) = caller.require_admin(&state, "application.list").await {
        return caller.fail(e);
    }
    let apps: Vec<_> = state
        .registry
        .snapshot()
        .applications
        .values()
        .map(|a| {
            json!({
                "id": a.row.id, "name": a.row.name, "fingerprint": a.row.fingerprint,
                "roles": a.row.roles, "seals": a.row.seals, "templates": a.row.templates,
                "enabled": a.row.enabled, "created_at": a.row.created_at, "updated_at": a.row.updated_at,
            })
        })
        .collect();
    Json(json!({ "applications": apps })).into_response()
}
