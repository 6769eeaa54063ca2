//! Administration (applications holding the admin role): register seals and enable or
//! disable them, register applications. Each change is committed with its audit record.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use seald_audit::Decision;
use seald_policy::{AppRole as Role, SealSource, SealStatus, SealType};
use serde::Deserialize;
use serde_json::json;

use super::governance::Acting;
use super::{Caller, PeerExt, St};
use crate::problem::ApiError;
use crate::state::AppState;
use crate::store::{ApplicationRow, Change, SealGovernance, SealRow};
use axum::http::HeaderMap;
use seald_policy::flow::Submission;
use seald_policy::{seal as seal_rules, ApprovalRequest, DenyCode, Scenario, Subject};

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
    /// The seal image, PNG or JPEG (≤ 5 MB), base64; stored as a PNG with a transparent
    /// background. `image_png_base64` is the older name.
    #[serde(alias = "image_png_base64")]
    image_base64: Option<String>,
    /// Seal governance (once the enterprise is set up): type, source, department, holders.
    #[serde(default)]
    kind: SealType,
    #[serde(default)]
    source: SealSource,
    department: Option<String>,
    #[serde(default)]
    holders: Vec<String>,
    /// A group member's seal, kept by this (parent) enterprise: the member's unified social
    /// credit code.
    enterprise: Option<String>,
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
    /// Its requests may name the employee they act for (Seald-Employee).
    #[serde(default)]
    acts_for_employees: bool,
    /// A partner enterprise's system: its unified social credit code.
    partner: Option<String>,
}

fn yes() -> bool {
    true
}

pub(super) fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
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

pub(super) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_body(e.body_text()))
}

/// Commits `change` with its audit record and reloads the registry.
pub(super) async fn commit(
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
    // The change is committed: the answer says so even if reading it back fails now (the
    // next change, or a restart, reloads).
    if let Err(e) = state.registry.reload(&*state.store).await {
        tracing::error!(error = %e, seq = record.seq, "a committed change is not in the registry yet");
    }
    Ok(record)
}

pub(super) fn done(record: &seald_audit::Record, body: serde_json::Value) -> Response {
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
    headers: HeaderMap,
    body: Result<Json<SealRegistration>, JsonRejection>,
) -> Response {
    const ACTION: &str = "seal.register";
    let _one_at_a_time = state.governance.lock().await;
    let caller = Caller::new(&state, peer);
    if let Err(e) = caller.require_admin(&state, ACTION).await {
        return caller.fail(e);
    }
    // Once the enterprise is set up, a seal is created by an employee with the right to.
    let (act, legacy) = if caller.registry.org.is_some() {
        match Acting::begin(&state, caller, &headers, ACTION).await {
            Ok(a) => (Some(a), None),
            Err(r) => return r,
        }
    } else {
        (None, Some(caller))
    };
    let result = async {
        let reg = json_body(body)?;
        check_id("seal", &reg.id)?;
        if reg.name.trim().is_empty() || reg.name.len() > 200 {
            return Err(unprocessable(
                "invalid_name",
                "the name must be 1 to 200 characters",
            ));
        }
        if reg.source == SealSource::Template {
            return Err(ApiError::governance(DenyCode::TemplateSealUnavailable));
        }
        let image_png = reg
            .image_base64
            .as_deref()
            .map(|b| {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map_err(|e| {
                        unprocessable("invalid_image", format!("image_base64 is not base64: {e}"))
                    })?;
                seald_pades::normalize_seal_image(&bytes)
                    .map_err(|e| unprocessable("invalid_image", e.to_string()))
            })
            .transpose()?;
        let registry = match &act {
            Some(a) => a.caller.registry.clone(),
            None => state.registry.snapshot(),
        };
        let now = crate::clock::now_rfc3339();
        let existing = registry
            .seals
            .get(&reg.id)
            .map(|s| s.row.created_at.clone());
        let mut row = SealRow {
            id: reg.id.clone(),
            name: reg.name.clone(),
            token: reg.token.clone(),
            key_label: reg.key_label.clone(),
            chain_pem: reg.certificate_chain_pem.clone(),
            image_png,
            status: SealStatus::Active,
            governance: SealGovernance {
                kind: reg.kind,
                source: reg.source,
                department: reg.department.clone(),
                holders: reg.holders.clone(),
                created_by: None,
                practice_authorized: false,
                limits: Default::default(),
                enterprise: reg
                    .enterprise
                    .as_deref()
                    .map(seald_policy::CreditCode::parse)
                    .transpose()
                    .map_err(|e| {
                        unprocessable("invalid_credit_code", format!("enterprise: {e}"))
                    })?,
            },
            created_at: existing.unwrap_or_else(|| now.clone()),
            updated_at: now,
        };
        // Seal governance decides the status; a seal administrator's seal waits for approval.
        let mut approval = None;
        if let Some(act) = &act {
            let created = act.policy(seal_rules::create(
                &act.org,
                &registry.seal_policies(),
                &act.employee,
                &row.policy(),
            ))?;
            row.status = created.status;
            row.governance.holders = created.holders.clone();
            row.governance.created_by = created.created_by.clone();
            row.governance.practice_authorized = created.practice_authorized;
            if created.status == SealStatus::PendingReview {
                let subject = Subject::SealCreation {
                    seal: row.id.clone(),
                };
                let submission = Submission {
                    id: &crate::spool::random_id(),
                    submitter: &act.employee,
                    reason: "",
                };
                let request = act.policy(ApprovalRequest::submit(
                    &act.org,
                    &registry.flow(Scenario::SealCreation),
                    submission,
                    subject,
                    crate::clock::now_unix(),
                ))?;
                approval = Some(request);
            }
        } else if !row.governance.holders.is_empty() || row.governance.department.is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "enterprise_not_set_up",
                "The enterprise is not set up",
                "holders and departments exist once the enterprise is set up (POST /v1/org)",
            ));
        }
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
        let mut detail = json!({
            "name": row.name, "token": row.token, "key_label": row.key_label,
            "kind": row.governance.kind, "holders": row.governance.holders, "status": row.status,
        });
        let approval_id = approval.as_ref().map(|a| a.id.clone());
        let change = match approval {
            Some(request) => {
                detail["approval"] = json!(request.id);
                Change::Many(vec![
                    Change::PutSeal(row.clone()),
                    Change::PutApproval(Box::new(request)),
                ])
            }
            None => Change::PutSeal(row.clone()),
        };
        let record = match (&act, &legacy) {
            (Some(act), _) => {
                act.commit(&state, ACTION, Some(&row.id), detail, change)
                    .await?
            }
            (None, Some(caller)) => {
                commit(&state, caller, ACTION, Some(&row.id), detail, change).await?
            }
            (None, None) => return Err(ApiError::internal("no caller")),
        };
        Ok(done(
            &record,
            json!({"id": row.id, "status": row.status, "approval": approval_id}),
        ))
    }
    .await;
    finish(&state, act, legacy, ACTION, result).await
}

/// Renders a seal action's outcome: audited when an employee acted; before the enterprise
/// is set up, as the administering application's error.
async fn finish(
    state: &AppState,
    act: Option<Acting>,
    legacy: Option<Caller>,
    action: &str,
    result: Result<Response, ApiError>,
) -> Response {
    match (act, legacy, result) {
        (_, _, Ok(r)) => r,
        (Some(act), _, Err(e)) => act.finish(state, action, Err(e)).await,
        (None, Some(caller), Err(e)) => caller.fail(e),
        (None, None, Err(e)) => e.into_response_with(None),
    }
}

/// Who changes a seal: an acting employee once the enterprise is set up, else an
/// administering application.
async fn seal_actor(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    action: &str,
) -> Result<(Option<Acting>, Option<Caller>), Response> {
    if caller.registry.org.is_some() {
        return Acting::begin(state, caller, headers, action)
            .await
            .map(|a| (Some(a), None));
    }
    match caller.require_admin(state, action).await {
        Ok(_) => Ok((None, Some(caller))),
        Err(e) => Err(caller.fail(e)),
    }
}

/// What a change to a seal's governance does to it, given who acts.
#[derive(Debug, Clone)]
enum SealEdit {
    Status(SealStatus),
    Holders(Vec<String>),
    AuthorizePractice,
    Limits(seald_policy::limits::SealLimits),
}

impl SealEdit {
    fn action(&self) -> &'static str {
        match self {
            SealEdit::Status(SealStatus::Active) => "seal.enable",
            SealEdit::Status(SealStatus::Deleted) => "seal.delete",
            SealEdit::Status(_) => "seal.disable",
            SealEdit::Holders(_) => "seal.holders",
            SealEdit::AuthorizePractice => "seal.authorize",
            SealEdit::Limits(_) => "seal.limits",
        }
    }
}

async fn edit_seal(
    state: &AppState,
    peer: crate::tls::Peer,
    headers: &HeaderMap,
    seal_id: String,
    edit: SealEdit,
) -> Response {
    let action = edit.action();
    let _one_at_a_time = state.governance.lock().await;
    let caller = Caller::new(state, peer);
    let (act, legacy) = match seal_actor(state, caller, headers, action).await {
        Ok(pair) => pair,
        Err(r) => return r,
    };
    let result = async {
        let registry = match (&act, &legacy) {
            (Some(a), _) => a.caller.registry.clone(),
            (_, Some(c)) => c.registry.clone(),
            _ => state.registry.snapshot(),
        };
        let Some(entry) = registry.seals.get(&seal_id) else {
            return Err(ApiError::not_found(format!("there is no seal '{seal_id}'")));
        };
        let current = &entry.policy;
        let changed = match (&act, &edit) {
            (Some(act), SealEdit::Status(to)) => {
                act.policy(seal_rules::change_status(&act.org, &act.employee, current, *to))?;
                seald_policy::Seal { status: *to, ..current.clone() }
            }
            (Some(act), SealEdit::Holders(holders)) => {
                act.policy(seal_rules::set_holders(&act.org, &act.employee, current, holders))?
            }
            (Some(act), SealEdit::Limits(limits)) => {
                act.policy(seal_rules::set_limits(&act.org, &act.employee, current, limits))?
            }
            (Some(act), SealEdit::AuthorizePractice) => {
                act.policy(seal_rules::authorize_practice(&act.org, &act.employee, current))?
            }
            // Before the enterprise is set up: only enabling and disabling, as registered.
            (None, SealEdit::Status(to @ (SealStatus::Active | SealStatus::Disabled))) => {
                seald_policy::Seal { status: *to, ..current.clone() }
            }
            (None, _) => return Err(not_set_up()),
        };
        let detail = json!({"status": changed.status, "holders": changed.holders, "practice_authorized": changed.practice_authorized, "limits": changed.limits});
        let change = Change::SealPolicy {
            seal: Box::new(changed.clone()),
            updated_at: crate::clock::now_rfc3339(),
        };
        let record = match (&act, &legacy) {
            (Some(act), _) => act.commit(state, action, Some(&seal_id), detail, change).await?,
            (None, Some(caller)) => commit(state, caller, action, Some(&seal_id), detail, change).await?,
            (None, None) => return Err(ApiError::internal("no caller")),
        };
        Ok(done(
            &record,
            json!({"id": seal_id, "status": changed.status, "holders": changed.holders, "practice_authorized": changed.practice_authorized, "limits": changed.limits}),
        ))
    }
    .await;
    finish(state, act, legacy, action, result).await
}

fn not_set_up() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "enterprise_not_set_up",
        "The enterprise is not set up",
        "holders and practice seals exist once the enterprise is set up (POST /v1/org)",
    )
}

pub async fn enable_seal(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(seal_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    edit_seal(
        &state,
        peer,
        &headers,
        seal_id,
        SealEdit::Status(SealStatus::Active),
    )
    .await
}

pub async fn disable_seal(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(seal_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    edit_seal(
        &state,
        peer,
        &headers,
        seal_id,
        SealEdit::Status(SealStatus::Disabled),
    )
    .await
}

pub async fn delete_seal(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(seal_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    edit_seal(
        &state,
        peer,
        &headers,
        seal_id,
        SealEdit::Status(SealStatus::Deleted),
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldersBody {
    holders: Vec<String>,
}

pub async fn set_holders(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(seal_id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<HoldersBody>, JsonRejection>,
) -> Response {
    let holders = match json_body(body) {
        Ok(b) => b.holders,
        Err(e) => return e.into_response_with(None),
    };
    edit_seal(&state, peer, &headers, seal_id, SealEdit::Holders(holders)).await
}

pub async fn set_limits(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(seal_id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<seald_policy::limits::SealLimits>, JsonRejection>,
) -> Response {
    let limits = match json_body(body) {
        Ok(b) => b,
        Err(e) => return e.into_response_with(None),
    };
    edit_seal(&state, peer, &headers, seal_id, SealEdit::Limits(limits)).await
}

pub async fn authorize_seal(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(seal_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    edit_seal(&state, peer, &headers, seal_id, SealEdit::AuthorizePractice).await
}
pub async fn register_application(
    State(state): St,
    axum::Extension(peer): PeerExt,
    body: Result<Json<ApplicationRegistration>, JsonRejection>,
) -> Response {
    // One change at a time, like every other registry change (reloads must not overlap).
    let _one_at_a_time = state.governance.lock().await;
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
        if let Some(code) = &reg.partner {
            seald_policy::CreditCode::parse(code).map_err(|e| {
                unprocessable("invalid_credit_code", format!("partner: {e}"))
            })?;
            if reg.acts_for_employees || reg.roles.contains(&Role::Admin) {
                return Err(unprocessable(
                    "invalid_roles",
                    "a partner's application only signs: no admin role, and it acts for none of this enterprise's employees",
                ));
            }
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
            acts_for_employees: reg.acts_for_employees,
            partner: reg.partner.clone(),
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
            "acts_for_employees": row.acts_for_employees, "partner": row.partner,
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
                "enabled": a.row.enabled, "acts_for_employees": a.row.acts_for_employees, "partner": a.row.partner, "created_at": a.row.created_at, "updated_at": a.row.updated_at,
            })
        })
        .collect();
    Json(json!({ "applications": apps })).into_response()
}
