//! Templates, the auto-sign and batch-sign authorizations, and batch-sign confirmations over
//! HTTP. seald-policy decides each (template management, auto-sign, who grants what); these
//! handlers read the request, commit what policy returns with its audit record, and answer.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use seald_policy::batch::{self, BatchAsk};
use seald_policy::template::{self, AutoSign, FillField};
use seald_policy::{Authorization, DenyCode, SigningArea, Template};
use serde::Deserialize;
use serde_json::json;

use super::admin::{check_id, done, json_body, unprocessable};
use super::governance::{governed, Acting};
use super::{Caller, PeerExt, St};
use crate::problem::ApiError;
use crate::spool;
use crate::store::Change;

/// Template PDFs are at most this large (they travel base64 in JSON).
pub const MAX_TEMPLATE_PDF: usize = 10 << 20;

/// The header a batch-sign confirmation's token comes in. Like a password, it is never
/// logged or recorded; only its SHA-256 is stored.
pub const BATCH_HEADER: &str = "seald-batch-confirmation";

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    name: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    allow_batch: bool,
    #[serde(default)]
    requires_contract_approval: bool,
    areas: Vec<SigningArea>,
    #[serde(default)]
    fields: Vec<FillField>,
    /// The template PDF, base64 (≤ 10 MB). Left out when changing a template, the stored
    /// PDF stays.
    pdf_base64: Option<String>,
    /// Makes it an auto-sign template sealed with this seal.
    auto_sign_seal: Option<String>,
}

/// The PDF of a template body: base64, within the size limit, and a PDF.
fn template_pdf(base64_text: &str) -> Result<Vec<u8>, ApiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_text.trim())
        .map_err(|e| unprocessable("invalid_template", format!("pdf_base64 is not base64: {e}")))?;
    if bytes.len() > MAX_TEMPLATE_PDF {
        return Err(unprocessable(
            "invalid_template",
            "the template PDF is larger than 10 MB",
        ));
    }
    let pdf: std::sync::Arc<[u8]> = bytes.clone().into();
    seald_pades::Document::from_bytes(pdf).map_err(|e| {
        unprocessable(
            "invalid_template",
            format!("the template PDF cannot be read: {e}"),
        )
    })?;
    Ok(bytes)
}

/// `PUT /v1/templates/{template_id}`: creates or changes a template (template management;
/// auto-sign also needs the switch and the acting employee's auto-sign authorization).
pub async fn put_template(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<TemplateBody>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "template.put", |act| {
        let b = json_body(body)?;
        check_id("template", &id)?;
        let existing = act.caller.registry.templates.get(&id).cloned();
        let pdf = b.pdf_base64.as_deref().map(template_pdf).transpose()?;
        let (pdf_sha256, pdf_len) = match (&pdf, &existing) {
            (Some(pdf), _) => (spool::sha256(pdf), pdf.len() as u64),
            (None, Some(t)) => (t.pdf_sha256.clone(), t.pdf_len),
            (None, None) => {
                return Err(unprocessable(
                    "invalid_template",
                    "a new template needs its PDF (pdf_base64)",
                ))
            }
        };
        let asked = Template {
            id: id.clone(),
            name: b.name,
            enabled: b.enabled,
            allow_batch: b.allow_batch,
            requires_contract_approval: b.requires_contract_approval,
            areas: b.areas,
            fields: b.fields,
            pdf_sha256,
            pdf_len,
            auto_sign: b.auto_sign_seal.map(|seal| AutoSign {
                seal,
                authorized_by: String::new(),
            }),
            created_by: act.employee.clone(),
        };
        let seals = act.caller.registry.seal_policies();
        let t = act.policy(template::put(
            &act.org,
            &act.employee,
            existing.as_deref(),
            &seals,
            &asked,
        ))?;
        let detail = json!({
            "template": t.id, "auto_sign": t.auto_sign, "pdf_sha256": t.pdf_sha256,
            "enabled": t.enabled, "created": existing.is_none(),
        });
        let seal = t.auto_sign_seal().map(str::to_owned);
        let record = act
            .commit(
                &state,
                "template.put",
                seal.as_deref(),
                detail,
                Change::PutTemplate {
                    template: Box::new(t.clone()),
                    pdf,
                },
            )
            .await?;
        Ok(done(&record, json!(t)))
    })
}

fn template_not_found() -> ApiError {
    ApiError::governance(DenyCode::TemplateNotFound)
}

/// `POST /v1/templates/{id}/enable` and `/disable`.
async fn set_enabled(
    state: St,
    peer: PeerExt,
    id: String,
    headers: HeaderMap,
    enabled: bool,
) -> Response {
    let (State(state), axum::Extension(peer)) = (state, peer);
    let action = if enabled {
        "template.enable"
    } else {
        "template.disable"
    };
    governed!(state, peer, headers, action, |act| {
        let current = act
            .caller
            .registry
            .templates
            .get(&id)
            .cloned()
            .ok_or_else(template_not_found)?;
        let t = act.policy(template::set_enabled(
            &act.org,
            &act.employee,
            &current,
            enabled,
        ))?;
        let record = act
            .commit(
                &state,
                action,
                t.auto_sign_seal(),
                json!({ "template": id, "enabled": enabled }),
                Change::PutTemplate {
                    template: Box::new(t.clone()),
                    pdf: None,
                },
            )
            .await?;
        Ok(done(&record, json!(t)))
    })
}

pub async fn enable_template(
    state: St,
    peer: PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    set_enabled(state, peer, id, headers, true).await
}

pub async fn disable_template(
    state: St,
    peer: PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    set_enabled(state, peer, id, headers, false).await
}

/// `DELETE /v1/templates/{id}`: it signs nothing from the next request on (its PDF stays for
/// the record).
pub async fn delete_template(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    governed!(state, peer, headers, "template.delete", |act| {
        if !act.caller.registry.templates.contains_key(&id) {
            return Err(template_not_found());
        }
        act.policy(template::delete(&act.org, &act.employee))?;
        let detail = json!({ "template": id, "deleted": true });
        let record = act
            .commit(
                &state,
                "template.delete",
                None,
                detail.clone(),
                Change::DeleteTemplate(id.clone()),
            )
            .await?;
        Ok(done(&record, detail))
    })
}

/// The templates an application may see: all, unless it is restricted to some, or it is
/// another enterprise's system (a partner's or a group member's), which sees only the
/// templates its authorizations or its member scope name.
async fn visible_templates(
    state: &crate::state::AppState,
    caller: &Caller,
    app: &crate::registry::AppEntry,
) -> Result<Option<std::collections::HashSet<String>>, ApiError> {
    let mut visible: Option<std::collections::HashSet<String>> = app
        .policy
        .templates
        .as_ref()
        .map(|t| t.iter().cloned().collect());
    if let Some(code) = &app.policy.partner {
        let now = crate::clock::now_unix();
        let mut theirs = std::collections::HashSet::new();
        for a in state
            .store
            .partner_authorizations(Some(code.as_str()))
            .await?
        {
            if let seald_policy::partner::PartnerScope::Templates { templates } = &a.scope {
                if a.revoked_at.is_none() && now < a.expires_at {
                    theirs.extend(templates.iter().cloned());
                }
            }
        }
        if let Some(m) = caller
            .registry
            .org
            .as_ref()
            .and_then(|o| o.member(code.as_str()))
        {
            theirs.extend(m.scope.templates.iter().cloned());
        }
        visible = Some(match visible {
            Some(v) => v.intersection(&theirs).cloned().collect(),
            None => theirs,
        });
    }
    Ok(visible)
}

/// The template `id`, if the caller may see it.
async fn visible_template(
    state: &crate::state::AppState,
    caller: &Caller,
    action: &str,
    id: &str,
) -> Result<std::sync::Arc<Template>, ApiError> {
    let app = caller.require_app(state, action).await?;
    let visible = visible_templates(state, caller, &app).await?;
    caller
        .registry
        .templates
        .get(id)
        .filter(|_| visible.as_ref().is_none_or(|v| v.contains(id)))
        .cloned()
        .ok_or_else(template_not_found)
}

/// `GET /v1/templates`: the registered templates the caller may see (without their PDFs).
pub async fn list_templates(State(state): St, axum::Extension(peer): PeerExt) -> Response {
    let caller = Caller::new(&state, peer);
    let app = match caller.require_app(&state, "template.list").await {
        Ok(a) => a,
        Err(e) => return caller.fail(e),
    };
    let visible = match visible_templates(&state, &caller, &app).await {
        Ok(v) => v,
        Err(e) => return caller.fail(e),
    };
    let all: Vec<&Template> = caller
        .registry
        .templates
        .values()
        .filter(|t| visible.as_ref().is_none_or(|v| v.contains(&t.id)))
        .map(|t| &**t)
        .collect();
    Json(json!({ "templates": all })).into_response()
}

/// `GET /v1/templates/{id}`.
pub async fn show_template(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
) -> Response {
    let caller = Caller::new(&state, peer);
    match visible_template(&state, &caller, "template.show", &id).await {
        Ok(t) => Json(&*t).into_response(),
        Err(e) => caller.fail(e),
    }
}

/// `GET /v1/templates/{id}/pdf`: the template PDF, to fill in and send back for sealing.
pub async fn template_pdf_of(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
) -> Response {
    let caller = Caller::new(&state, peer);
    let t = match visible_template(&state, &caller, "template.pdf", &id).await {
        Ok(t) => t,
        Err(e) => return caller.fail(e),
    };
    match state.store.template_pdf(&t.pdf_sha256).await {
        Ok(Some(pdf)) => {
            let mut r = pdf.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            );
            r
        }
        Ok(None) => caller.fail(ApiError::internal(format!(
            "the PDF of template '{id}' is missing from the store"
        ))),
        Err(e) => caller.fail(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationBody {
    granted: bool,
}

/// `PUT /v1/org/employees/{employee_id}/authorizations/{auto_sign|batch_sign}`: the super
/// administrator or the legal representative grants or revokes it (audited).
pub async fn set_authorization(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path((employee, what)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<AuthorizationBody>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "org.authorization", |act| {
        let b = json_body(body)?;
        let what = match what.as_str() {
            "auto_sign" => Authorization::AutoSign,
            "batch_sign" => Authorization::BatchSign,
            other => {
                return Err(ApiError::not_found(format!(
                    "there is no authorization '{other}': auto_sign or batch_sign"
                )))
            }
        };
        let new = act.policy(template::set_authorization(
            &act.org,
            &act.employee,
            &employee,
            what,
            b.granted,
        ))?;
        let detail = json!({
            "authorization": what.as_str(), "of": employee, "granted": b.granted,
        });
        act.commit_org(&state, "org.authorization", &new, detail)
            .await
    })
}

/// `POST /v1/batch-confirmations`: the acting employee confirms with their signing password
/// (header `Seald-Signing-Password`) that they will seal up to `count` documents within
/// `lifetime_seconds`. The answer's `token` goes in the `Seald-Batch-Confirmation` header of
/// each of those sign requests; it is shown once.
pub async fn open_batch(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
    body: Result<Json<BatchAsk>, JsonRejection>,
) -> Response {
    const ACTION: &str = "batch.confirm";
    let caller = Caller::new(&state, peer);
    let act = match Acting::begin(&state, caller, &headers, ACTION).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let result = async {
        let ask = json_body(body)?;
        let password = crate::password::from_header(&headers)?;
        if let Some(seal) = &ask.seal {
            if !act.caller.registry.seals.contains_key(seal) {
                return Err(ApiError::governance(DenyCode::SealNotFound));
            }
        }
        let now = crate::clock::now_unix();
        let id = format!("batch-{}", spool::random_id());
        let bounds = state.config.batch_sign.bounds();
        // Decided before the password is tried, so that nobody can probe or lock a password
        // through a confirmation that would be refused anyway.
        let confirmation = act.policy(batch::confirm(
            &act.org,
            &act.employee,
            &ask,
            bounds,
            &id,
            now,
        ))?;
        let Some(password) = password else {
            return Err(ApiError::denied(DenyCode::SigningPasswordRequired));
        };
        let mut entry = act
            .caller
            .entry(ACTION, seald_audit::Decision::Denied, None);
        entry.detail = Some(json!({ "employee": act.employee }).to_string());
        match crate::password::confirm(&state, &act.employee, password, entry).await? {
            crate::password::Confirmation::Confirmed => {}
            crate::password::Confirmation::NotSet => {
                return Err(ApiError::denied(DenyCode::SigningPasswordNotSet))
            }
        }
        let token = format!("{}{}", spool::random_id(), spool::random_id());
        let detail = json!({
            "batch": id, "seal": confirmation.seal, "count": confirmation.count,
            "expires_at": confirmation.expires_at,
        });
        let record = act
            .commit(
                &state,
                ACTION,
                confirmation.seal.as_deref(),
                detail,
                Change::OpenBatch {
                    confirmation: Box::new(confirmation.clone()),
                    token_sha256: spool::sha256(token.as_bytes()),
                },
            )
            .await?;
        let mut r = done(&record, describe_batch(&confirmation, Some(&token)));
        *r.status_mut() = StatusCode::CREATED;
        Ok(r)
    }
    .await;
    match result {
        Ok(r) => r,
        // A wrong or locked password was recorded with its try.
        Err(e) if crate::password::recorded(&e) => act.caller.fail(e),
        Err(e) => act.finish(&state, ACTION, Err(e)).await,
    }
}

fn describe_batch(b: &batch::BatchConfirmation, token: Option<&str>) -> serde_json::Value {
    json!({
        "id": b.id, "token": token, "employee": b.employee, "seal": b.seal,
        "count": b.count, "used": b.used, "left": b.uses_left(),
        "created_at": b.created_at, "expires_at": b.expires_at,
    })
}

/// The acting employee's own confirmation `id`.
async fn own_batch(
    state: &crate::state::AppState,
    act: &Acting,
    id: &str,
) -> Result<batch::BatchConfirmation, ApiError> {
    match state.store.batch_confirmation_by_id(id).await? {
        Some(b) if b.employee == act.employee => Ok(b),
        _ => Err(ApiError::governance(DenyCode::BatchConfirmationNotFound)),
    }
}

/// `GET /v1/batch-confirmations/{id}`: what is left of the acting employee's confirmation.
pub async fn show_batch(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::new(&state, peer);
    let act = match Acting::begin(&state, caller, &headers, "batch.show").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match own_batch(&state, &act, &id).await {
        Ok(b) => Json(describe_batch(&b, None)).into_response(),
        Err(e) => act.caller.fail(e),
    }
}

/// `DELETE /v1/batch-confirmations/{id}`: ends the acting employee's confirmation now.
pub async fn close_batch(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    governed!(state, peer, headers, "batch.close", |act| {
        let b = own_batch(&state, &act, &id).await?;
        let now = crate::clock::now_unix();
        let record = act
            .commit(
                &state,
                "batch.close",
                b.seal.as_deref(),
                json!({ "batch": id }),
                Change::CloseBatch {
                    id: id.clone(),
                    now,
                },
            )
            .await?;
        let closed = batch::BatchConfirmation {
            expires_at: b.expires_at.min(now),
            ..b
        };
        Ok(done(&record, describe_batch(&closed, None)))
    })
}

/// The batch-sign token of a sign request, if it carries one.
pub fn batch_token(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(BATCH_HEADER) else {
        return Ok(None);
    };
    let token = v
        .to_str()
        .ok()
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            ApiError::bad_parameter(
                "Seald-Batch-Confirmation must be the 64-character token POST /v1/batch-confirmations returned",
            )
        })?;
    Ok(Some(token.to_ascii_lowercase()))
}
