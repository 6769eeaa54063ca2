//! `POST /v1/seals/{seal_id}/sign` and `POST /v1/verify`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use seald_audit::{Decision, Entry, Record};
use seald_pades::VerifyOptions;
use serde::Deserialize;
use std::path::PathBuf;

use super::{Caller, PeerExt, St};
use crate::problem::{self, ApiError};
use crate::signing::{plan, sign_blocking, Signed};
use crate::spool::{self, Received};
use crate::state::AppState;
use crate::store::{Change, Consumption, IdempotencyRow};

/// What the audit record of this attempt will say.
struct Attempt<'a> {
    state: &'a AppState,
    caller: Caller,
    seal: String,
    document_id: Option<String>,
    input_sha256: Option<String>,
    /// The employee the application acts for, if it names one.
    employee: Option<String>,
}

impl Attempt<'_> {
    fn entry(&self, decision: Decision, reason: Option<&str>) -> Entry {
        let mut e = self.caller.entry("sign", decision, reason);
        e.seal = Some(self.seal.clone());
        e.document_id = self.document_id.clone();
        e.input_sha256 = self.input_sha256.clone();
        e.detail = self
            .employee
            .as_ref()
            .map(|id| serde_json::json!({ "employee": id }).to_string());
        e
    }

    /// Audits a refusal (`denied`) or failure and renders the error.
    async fn refuse(&self, decision: Decision, e: ApiError) -> Response {
        let outcome = if decision == Decision::Denied {
            "denied"
        } else {
            "failed"
        };
        count_sign(self.state, &self.caller, &self.seal, outcome);
        if decision == Decision::Denied {
            self.state.metrics.denied(e.code);
        }
        self.caller
            .record_refusal(self.state, self.entry(decision, Some(e.code)), &e)
            .await;
        self.caller.fail(e)
    }
}

/// What a sign decision is made from; the grants and the document come later for an
/// employee who does not hold the seal.
struct SignFacts<'a> {
    application: &'a seald_policy::Application,
    org: Option<&'a seald_policy::Org>,
    seal: Option<&'a seald_policy::Seal>,
    request: seald_policy::SignRequest<'a>,
    /// The seal's and the quota's use so far (when there are limits).
    usage: seald_policy::limits::Usage,
    /// The template the request names, if registered.
    template: Option<&'a seald_policy::Template>,
    /// The batch-sign confirmation the request presents, if it exists.
    batch: Option<seald_policy::batch::BatchConfirmation>,
    /// A partner application's enterprise's partner authorizations.
    partners: Vec<seald_policy::partner::PartnerAuthorization>,
}

impl SignFacts<'_> {
    /// What a signature now would count against, if the seal has limits or the enterprise a
    /// quota.
    fn consumption(&self, now: i64, document_id: Option<&str>) -> Option<Consumption> {
        let (org, seal) = (self.org?, self.seal?);
        let quota = org.enterprise.contract_quota;
        let member = seal
            .enterprise
            .as_ref()
            .and_then(|code| org.member(code.as_str()));
        if !counts(org, seal) {
            return None;
        }
        let at = seald_policy::limits::local_time(now, org.enterprise.utc_offset_minutes);
        Some(Consumption {
            seal: seal.id.clone(),
            day: at.day,
            month: at.month,
            per_day: seal.limits.per_day,
            per_month: seal.limits.per_month,
            quota,
            document_id: document_id.map(str::to_owned),
            member: member.cloned(),
        })
    }

    /// Reads what a partner application's requests are decided by: its enterprise's partner
    /// authorizations.
    async fn load_partners(&mut self, state: &AppState) -> Result<(), ApiError> {
        if let Some(code) = &self.application.partner {
            self.partners = state
                .store
                .partner_authorizations(Some(code.as_str()))
                .await?;
        }
        Ok(())
    }

    /// Reads the batch-sign confirmation a request presents (by its token's hash).
    async fn load_batch(&mut self, state: &AppState, token: Option<&str>) -> Result<(), ApiError> {
        let Some(token) = token else { return Ok(()) };
        if self.request.employee.is_none() {
            return Err(ApiError::bad_parameter(
                "a batch confirmation is an employee's: name them in Seald-Employee",
            ));
        }
        self.request.batch_confirmed = true;
        self.batch = state
            .store
            .batch_confirmation(&spool::sha256(token.as_bytes()))
            .await?;
        Ok(())
    }

    /// Reads the use so far of what a signature would count against.
    async fn load_usage(
        &mut self,
        state: &AppState,
        document_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(org) = self.org else { return Ok(()) };
        let Some(seal) = self.seal else { return Ok(()) };
        if !counts(org, seal) {
            return Ok(());
        }
        let at = seald_policy::limits::local_time(
            crate::clock::now_unix(),
            org.enterprise.utc_offset_minutes,
        );
        self.usage = state.store.usage(&seal.id, at, document_id).await?;
        Ok(())
    }

    fn explain(
        &self,
        grants: &[seald_policy::Grant],
        approvals: &[seald_policy::ApprovalRequest],
        document: Option<seald_policy::DocumentRef<'_>>,
    ) -> seald_policy::Explanation {
        let snapshot = seald_policy::Snapshot {
            application: self.application,
            org: self.org,
            seal: self.seal,
            grants,
            approvals,
            usage: self.usage,
            template: self.template,
            batch: self.batch.as_ref(),
            partners: &self.partners,
        };
        let request = seald_policy::SignRequest {
            document,
            ..self.request.clone()
        };
        seald_policy::explain(
            &snapshot,
            &seald_policy::Request::Sign(request),
            crate::clock::now_unix(),
        )
    }

    /// The explanation with what the store knows of the acting employee: their grants for the
    /// seal and, if they must still apply, their pending requests. Both `POST /v1/policy/explain`
    /// and the sign path use it, so the two cannot disagree.
    async fn explain_with_grants(
        &self,
        state: &AppState,
        document: Option<seald_policy::DocumentRef<'_>>,
    ) -> Result<seald_policy::Explanation, ApiError> {
        // With forced contract approval (or a template requiring it), the document's
        // contract approvals count too.
        let mut approvals = Vec::new();
        let forced = self
            .org
            .is_some_and(|o| o.enterprise.features.forced_contract_approval)
            || self.template.is_some_and(|t| t.requires_contract_approval);
        if let (true, Some(doc)) = (forced, document) {
            approvals = state.store.contract_approvals(doc.id).await?;
        }
        let Some(employee) = self.request.employee else {
            return Ok(self.explain(&[], &approvals, document));
        };
        let grants = state.store.grants_for(employee, self.request.seal).await?;
        let explained = self.explain(&grants, &approvals, document);
        if !matches!(
            explained.decision,
            seald_policy::Decision::NeedsApproval { .. }
        ) {
            return Ok(explained);
        }
        approvals.extend(
            state
                .store
                .pending_approvals()
                .await?
                .into_iter()
                .filter(|r| r.submitter == employee),
        );
        Ok(self.explain(&grants, &approvals, document))
    }

    /// The permit for a request only the document can decide (a seal-use grant, a contract
    /// approval), or the refusal.
    async fn decide_with_grants(
        &self,
        state: &AppState,
        document_id: Option<&str>,
        sha256: &str,
    ) -> Result<seald_policy::Permit, ApiError> {
        let document = document_id.map(|id| seald_policy::DocumentRef { id, sha256 });
        refusal(self.explain_with_grants(state, document).await?.decision)
    }
}

/// Whether a signature with `seal` counts against anything: its caps, the enterprise's quota,
/// or (a group member's seal) the member's quota.
fn counts(org: &seald_policy::Org, seal: &seald_policy::Seal) -> bool {
    let member_quota = seal
        .enterprise
        .as_ref()
        .and_then(|code| org.member(code.as_str()))
        .is_some_and(|m| m.contract_quota.is_some());
    !seal.limits.is_empty() || org.enterprise.contract_quota.is_some() || member_quota
}

/// The decision on one row of a batch job — an auto-sign request of `template` into `area` for
/// the document `document_id` (SHA-256 `sha256`) from `app` — made as the sign path makes it,
/// with what the signature counts against.
pub(crate) async fn decide_job_row(
    state: &AppState,
    app: &seald_policy::Application,
    template: &seald_policy::Template,
    area: &str,
    document: (&str, &str),
) -> Result<(seald_policy::Permit, Option<Consumption>), ApiError> {
    let registry = state.registry.snapshot();
    let seal_id = template.auto_sign_seal().unwrap_or_default();
    let mut facts = SignFacts {
        application: app,
        org: registry.org.as_deref(),
        seal: registry.seals.get(seal_id).map(|s| &s.policy),
        request: seald_policy::SignRequest {
            seal: seal_id,
            template: Some(&template.id),
            area: Some(area),
            // seald filled the template itself.
            from_template: true,
            ..Default::default()
        },
        usage: Default::default(),
        template: Some(template),
        batch: None,
        partners: Vec::new(),
    };
    let (document_id, sha256) = document;
    facts.load_usage(state, Some(document_id)).await?;
    let permit = facts
        .decide_with_grants(state, Some(document_id), sha256)
        .await?;
    let consumption = facts.consumption(crate::clock::now_unix(), Some(document_id));
    Ok((permit, consumption))
}

/// What an Idempotency-Key is bound to: the body's SHA-256, the seal, the acting employee and
/// the query, hashed together (stored in the kept response's `body_sha256`).
fn request_identity(
    body_sha256: &str,
    seal: &str,
    employee: Option<&str>,
    query: Option<&str>,
) -> String {
    let line = format!(
        "{body_sha256}\n{seal}\n{}\n{}",
        employee.unwrap_or(""),
        query.unwrap_or("")
    );
    spool::sha256(line.as_bytes())
}

/// The refusals of a limit (caps, windows, quota).
fn is_limit(code: seald_policy::DenyCode) -> bool {
    use seald_policy::DenyCode::*;
    matches!(
        code,
        OutsideTimeWindow | SealDailyCapReached | SealMonthlyCapReached | ContractQuotaExhausted
    )
}

/// Which limit a consumption would now pass, if any.
pub(crate) async fn limit_reached(
    state: &AppState,
    c: &Consumption,
) -> Option<seald_policy::DenyCode> {
    let org = state.registry.snapshot().org.clone()?;
    let at = seald_policy::limits::local_time(
        crate::clock::now_unix(),
        org.enterprise.utc_offset_minutes,
    );
    let usage = state
        .store
        .usage(&c.seal, at, c.document_id.as_deref())
        .await
        .ok()?;
    let caps = seald_policy::limits::SealLimits {
        per_day: c.per_day,
        per_month: c.per_month,
        windows: Vec::new(),
    };
    seald_policy::limits::admit(&caps, c.quota, c.member.as_ref(), &usage).err()
}

/// Why batch confirmation `id` allows no more signatures now, if it does not.
async fn batch_refusal(state: &AppState, id: &str) -> Option<seald_policy::DenyCode> {
    let b = state.store.batch_confirmation_by_id(id).await.ok()??;
    b.refusal(
        &b.employee,
        b.seal.as_deref().unwrap_or_default(),
        crate::clock::now_unix(),
    )
}

/// The permit of an allowed decision, or the error a refused one is answered with.
fn refusal(decision: seald_policy::Decision) -> Result<seald_policy::Permit, ApiError> {
    use seald_policy::{Decision as D, DenyCode};
    match decision {
        D::Allow(permit) => Ok(permit),
        D::NeedsApproval { scenario, pending } => {
            let code = if scenario == seald_policy::Scenario::ContractApproval {
                DenyCode::ContractApprovalRequired
            } else {
                DenyCode::SealUseApprovalRequired
            };
            let mut e = ApiError::denied(code);
            if let Some(id) = pending {
                e.detail = format!(
                    "{}; {} request {id} is waiting for its approvers",
                    code.explain(),
                    scenario.as_str()
                );
            }
            Err(e)
        }
        D::Deny(code) => Err(ApiError::denied(code)),
    }
}

fn permit_text(permit: &seald_policy::Permit) -> String {
    match permit {
        seald_policy::Permit::Application => "application".to_owned(),
        seald_policy::Permit::Holder => "holder".to_owned(),
        seald_policy::Permit::Grant { id } => format!("grant:{id}"),
        seald_policy::Permit::AutoSign { template } => format!("auto_sign:{template}"),
        seald_policy::Permit::Partner { authorization } => format!("partner:{authorization}"),
        seald_policy::Permit::Group { member } => format!("group:{member}"),
    }
}

/// What `POST /v1/policy/explain` is asked about: a sign request, described.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainBody {
    seal: String,
    template_id: Option<String>,
    /// The template's signing area.
    area: Option<String>,
    /// Whether the document would be the template's PDF (or a later revision of it); assumed
    /// so unless told otherwise.
    #[serde(default = "yes")]
    from_template: bool,
    document_id: Option<String>,
    /// SHA-256 of the PDF that would be sent (a grant is for one version of a document).
    document_sha256: Option<String>,
    #[serde(default)]
    page_seal: bool,
    /// Explain as if the employee confirmed with their signing password (it is not sent here).
    #[serde(default)]
    signing_password_confirmed: bool,
}

fn yes() -> bool {
    true
}

/// `POST /v1/policy/explain`: the decision a sign request would get, and every rule
/// evaluated with its outcome. Nothing is signed, consumed or recorded.
pub async fn explain(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
    body: Result<Json<ExplainBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let caller = Caller::new(&state, peer);
    let app = match caller.require_app(&state, "policy.explain").await {
        Ok(app) => app,
        Err(e) => return caller.fail(e),
    };
    let b = match body {
        Ok(Json(b)) => b,
        Err(e) => return caller.fail(ApiError::bad_body(e.body_text())),
    };
    let employee = match super::governance::employee_header(&headers) {
        Ok(e) => e,
        Err(e) => return caller.fail(e),
    };
    let batch_token = match super::templates::batch_token(&headers) {
        Ok(t) => t,
        Err(e) => return caller.fail(e),
    };
    let sha256 = b.document_sha256.as_deref().map(str::to_ascii_lowercase);
    let mut facts = SignFacts {
        application: &app.policy,
        org: caller.registry.org.as_deref(),
        seal: caller.registry.seals.get(&b.seal).map(|s| &s.policy),
        request: seald_policy::SignRequest {
            seal: &b.seal,
            template: b.template_id.as_deref(),
            area: b.area.as_deref(),
            from_template: b.from_template,
            page_seal: b.page_seal,
            employee: employee.as_deref(),
            password_confirmed: b.signing_password_confirmed,
            ..Default::default()
        },
        usage: Default::default(),
        template: b
            .template_id
            .as_ref()
            .and_then(|t| caller.registry.templates.get(t))
            .map(|t| &**t),
        batch: None,
        partners: Vec::new(),
    };
    if let Err(e) = facts.load_batch(&state, batch_token.as_deref()).await {
        return caller.fail(e);
    }
    if let Err(e) = facts.load_partners(&state).await {
        return caller.fail(e);
    }
    if let Err(e) = facts.load_usage(&state, b.document_id.as_deref()).await {
        return caller.fail(e);
    }
    let document = match (b.document_id.as_deref(), sha256.as_deref()) {
        (Some(id), Some(sha256)) => Some(seald_policy::DocumentRef { id, sha256 }),
        (None, None) => None,
        _ => {
            return caller.fail(ApiError::bad_body(
                "name the document with both document_id and document_sha256, or neither",
            ))
        }
    };
    let explained = match facts.explain_with_grants(&state, document).await {
        Ok(e) => e,
        Err(e) => return caller.fail(e),
    };
    let (decision, code, permit, pending) = match &explained.decision {
        seald_policy::Decision::Allow(p) => ("allow", None, Some(permit_text(p)), None),
        seald_policy::Decision::NeedsApproval { pending, .. } => (
            "needs_approval",
            explained.decision.code().map(|c| c.code()),
            None,
            pending.clone(),
        ),
        seald_policy::Decision::Deny(c) => ("deny", Some(c.code()), None, None),
    };
    Json(serde_json::json!({
        "decision": decision, "code": code, "permit": permit, "pending": pending,
        "employee": employee, "rules": explained.rules,
    }))
    .into_response()
}

/// Counts a sign attempt. Seal ids that are not registered share one label, so that requests
/// for made-up ids cannot grow the metrics without bound.
fn count_sign(state: &AppState, caller: &Caller, seal: &str, outcome: &str) {
    let known = caller.registry.seals.contains_key(seal);
    let label = if known { seal } else { "(unregistered)" };
    state
        .metrics
        .signs
        .with_label_values(&[label, outcome])
        .inc();
}

fn content_type_is(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn not_pdf_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Unsupported media type",
        "send the PDF as the body with Content-Type: application/pdf",
    )
}

fn timeout(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "Request timed out",
        format!("{what} took longer than limits.request_timeout_seconds"),
    )
    .retry_after(5)
}

/// Receives the PDF body, within the request timeout.
async fn receive(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Received, ApiError> {
    let receiving = state
        .spool
        .receive(body, declared_length(headers), state.config.max_body());
    tokio::time::timeout(state.config.request_timeout(), receiving)
        .await
        .map_err(|_| timeout("receiving the document"))?
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= 255 && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_parameter("Idempotency-Key must be 1 to 255 printable ASCII characters")
        })?;
    Ok(Some(text.to_owned()))
}

/// A body streaming an open file, and its length.
fn file_body(file: std::fs::File) -> (Body, Option<u64>) {
    let len = file.metadata().map(|m| m.len()).ok();
    let stream =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 256 << 10);
    (Body::from_stream(stream), len)
}

fn pdf_response(
    caller: &Caller,
    (body, len): (Body, Option<u64>),
    record_seq: u64,
    record_hash: &str,
    replay: bool,
) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    h.insert("seald-audit-record", HeaderValue::from(record_seq));
    if let Ok(v) = HeaderValue::from_str(record_hash) {
        h.insert("seald-audit-hash", v);
    }
    if let Ok(v) = HeaderValue::from_str(&caller.request_id) {
        h.insert("seald-request-id", v);
    }
    if replay {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

pub async fn sign(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(seal_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = Caller::new(&state, peer);
    let mut attempt = Attempt {
        state: &state,
        caller,
        seal: seal_id.clone(),
        document_id: None,
        input_sha256: None,
        employee: None,
    };
    let app = match attempt.caller.require_app(&state, "sign").await {
        Ok(app) => app,
        Err(e) => {
            count_sign(&state, &attempt.caller, &seal_id, "denied");
            return attempt.caller.fail(e);
        }
    };
    let mut plan = match plan(&state, &uri) {
        Ok(p) => p,
        Err(e) => return attempt.refuse(Decision::Failed, e).await,
    };
    attempt.document_id = plan.query.document_id.clone();
    if !content_type_is(&headers, "application/pdf") {
        return attempt.refuse(Decision::Failed, not_pdf_type()).await;
    }
    let employee = match super::governance::employee_header(&headers) {
        Ok(e) => e,
        Err(e) => return attempt.refuse(Decision::Failed, e).await,
    };
    attempt.employee = employee.clone();
    let password = match crate::password::from_header(&headers) {
        Ok(p) => p,
        Err(e) => return attempt.refuse(Decision::Failed, e).await,
    };
    let batch_token = match super::templates::batch_token(&headers) {
        Ok(t) => t,
        Err(e) => return attempt.refuse(Decision::Failed, e).await,
    };
    if password.is_some() && batch_token.is_some() {
        let e = ApiError::bad_parameter(
            "confirm with the signing password or a batch confirmation, not both",
        );
        return attempt.refuse(Decision::Failed, e).await;
    }
    let seal = attempt.caller.registry.seals.get(&seal_id).cloned();
    let org = attempt.caller.registry.org.clone();
    let (template_id, area_id) = (plan.query.template_id.clone(), plan.query.area.clone());
    let template = template_id
        .as_ref()
        .and_then(|t| attempt.caller.registry.templates.get(t))
        .cloned();
    let mut facts = SignFacts {
        application: &app.policy,
        org: org.as_deref(),
        seal: seal.as_ref().map(|s| &s.policy),
        request: seald_policy::SignRequest {
            seal: &seal_id,
            template: template_id.as_deref(),
            area: area_id.as_deref(),
            employee: employee.as_deref(),
            // Decided as if confirmed: the password is tried only once everything else allows
            // the request (below), so nobody can lock or probe an employee's password through
            // a request that would be refused anyway.
            password_confirmed: true,
            // Known once the body is in: decided again then.
            from_template: true,
            ..Default::default()
        },
        usage: Default::default(),
        template: template.as_deref(),
        batch: None,
        partners: Vec::new(),
    };
    if let Err(e) = facts.load_batch(&state, batch_token.as_deref()).await {
        return attempt.refuse(Decision::Failed, e).await;
    }
    if let Err(e) = facts.load_partners(&state).await {
        return attempt.refuse(Decision::Failed, e).await;
    }
    if let Err(e) = facts
        .load_usage(&state, attempt.document_id.as_deref())
        .await
    {
        return attempt.refuse(Decision::Failed, e).await;
    }
    // Decided before the body is read, unless only the document's grant can tell (then again
    // once its hash is known).
    let mut allowed_by = None;
    let keyed = headers.contains_key("idempotency-key");
    // Refusals decided again later: the document's (its hash is not known yet), and a
    // limit's for a keyed retry (which gets its saved answer after the replay check).
    let has_document = attempt.document_id.is_some();
    let deferred = |code| {
        (code == seald_policy::DenyCode::DocumentRequired && has_document)
            || (keyed && is_limit(code))
    };
    let early = facts.explain(&[], &[], None);
    // Whether the document is the template's is known only from the body.
    let from_body = facts.org.is_some() && template.is_some();
    match early.decision {
        seald_policy::Decision::Allow(p) if !from_body => allowed_by = Some(p),
        seald_policy::Decision::Allow(_) => {}
        seald_policy::Decision::Deny(code) if deferred(code) => {}
        refused => {
            let code = refused
                .code()
                .unwrap_or(seald_policy::DenyCode::SealNotFound);
            return attempt
                .refuse(Decision::Denied, ApiError::denied(code))
                .await;
        }
    }
    // The password is tried only if nothing but a deferred rule stands against the request;
    // otherwise the later decision refuses it with its first failed rule.
    let try_password = early.rules.iter().all(|r| match r.outcome {
        seald_policy::Outcome::Failed(code) => deferred(code),
        _ => true,
    });
    if !try_password {
        facts.request.password_confirmed = false;
    }
    // Sealing by hand is confirmed with the employee's signing password; a wrong or locked
    // one is refused (and recorded) by `confirm`.
    let by_batch = facts.request.batch_confirmed;
    if let (Some(id), true, false) = (employee.as_deref(), try_password, by_batch) {
        let refused = |code| ApiError::denied(code);
        match password {
            None => {
                let e = refused(seald_policy::DenyCode::SigningPasswordRequired);
                return attempt.refuse(Decision::Denied, e).await;
            }
            Some(password) => {
                let entry = attempt.entry(Decision::Denied, None);
                match crate::password::confirm(&state, id, password, entry).await {
                    Ok(crate::password::Confirmation::Confirmed) => {}
                    Ok(crate::password::Confirmation::NotSet) => {
                        let e = refused(seald_policy::DenyCode::SigningPasswordNotSet);
                        return attempt.refuse(Decision::Denied, e).await;
                    }
                    Err(e) if crate::password::recorded(&e) => {
                        count_sign(&state, &attempt.caller, &seal_id, "denied");
                        return attempt.caller.fail(e);
                    }
                    Err(e) => return attempt.refuse(Decision::Failed, e).await,
                }
            }
        }
    }
    // Policy found the seal; its registry entry holds the key.
    let Some(seal_entry) = seal.clone() else {
        let e = ApiError::denied(seald_policy::DenyCode::SealNotFound);
        return attempt.refuse(Decision::Denied, e).await;
    };
    // A template's signing area places the seal.
    if let Some(area) = template
        .as_deref()
        .zip(facts.request.area)
        .and_then(|(t, a)| t.area(a))
    {
        if let Err(e) = crate::signing::place_in_area(&mut plan.query, area) {
            return attempt.refuse(Decision::Failed, e).await;
        }
    }
    let key = match idempotency_key(&headers) {
        Ok(k) => k,
        Err(e) => return attempt.refuse(Decision::Failed, e).await,
    };
    let _claim = match &key {
        Some(k) => match state.claim_key(&app.row.id, k) {
            Some(c) => Some(c),
            None => {
                let e = ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_in_progress",
                    "Request in progress",
                    "a request with this Idempotency-Key is being processed; retry when it has finished",
                )
                .retry_after(1);
                return attempt.refuse(Decision::Failed, e).await;
            }
        },
        None => None,
    };
    let limits = &state.config.limits;
    let received = match receive(&state, &headers, body).await {
        Ok(r) => r,
        Err(e) => return attempt.refuse(Decision::Failed, e).await,
    };
    attempt.input_sha256 = Some(received.sha256.clone());
    // A key names one request: this body, for this seal, employee and parameters.
    let identity = request_identity(&received.sha256, &seal_id, employee.as_deref(), uri.query());
    if let Some(k) = &key {
        match state.store.idempotency(&app.row.id, k).await {
            Ok(Some(row)) if row.body_sha256 == identity => {
                return replay(&state, &attempt.caller, &row);
            }
            Ok(Some(_)) => {
                let e = ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_reused",
                    "Idempotency-Key reused",
                    "this Idempotency-Key was used with another request (another document, seal, employee or parameters); use a new key for a new request",
                );
                return attempt.refuse(Decision::Failed, e).await;
            }
            Ok(None) => {}
            Err(e) => return attempt.refuse(Decision::Failed, e.into()).await,
        }
    }
    if let (true, Some(t)) = (from_body, template.as_deref()) {
        facts.request.from_template = match received.begins_with(t.pdf_len, &t.pdf_sha256).await {
            Ok(yes) => yes,
            Err(e) => return attempt.refuse(Decision::Failed, e).await,
        };
    }
    // After the replay check: a replayed signature consumed its grant use the first time.
    let allowed_by = match allowed_by {
        Some(p) => p,
        None => match facts
            .decide_with_grants(&state, attempt.document_id.as_deref(), &received.sha256)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                let decision = if e.by_policy {
                    Decision::Denied
                } else {
                    Decision::Failed
                };
                return attempt.refuse(decision, e).await;
            }
        },
    };
    // Counted against the seal's caps and the quota in the record's transaction.
    let consumption = facts.consumption(crate::clock::now_unix(), attempt.document_id.as_deref());
    let Ok(permit) = state.admission.clone().try_acquire_owned() else {
        let e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            "Too many requests waiting",
            format!(
                "{} sign requests are already waiting for the seal tokens (limits.queue_depth)",
                limits.queue_depth
            ),
        )
        .retry_after(1);
        return attempt.refuse(Decision::Failed, e).await;
    };
    let output = state.spool.file(".out.pdf");
    let work = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let ready = match state.keys.seal(&seal_entry.row) {
                Ok(r) => r,
                Err(e) => return (Err(e), received),
            };
            let timestamper = state
                .timestamper
                .as_deref()
                .map(|t| t as &dyn seald_pades::Timestamper);
            // The memory share of an in-memory body covers its signed copy too.
            let out = sign_blocking(&ready, &received, output, &plan, timestamper);
            (out, received)
        })
    };
    let (signed, _received) = match tokio::time::timeout(state.config.request_timeout(), work).await
    {
        Ok(Ok((Ok(s), received))) => (s, received),
        Ok(Ok((Err(e), _))) => return attempt.refuse(Decision::Failed, e).await,
        Ok(Err(join)) => {
            return attempt
                .refuse(Decision::Failed, ApiError::internal(join.to_string()))
                .await
        }
        Err(_) => return attempt.refuse(Decision::Failed, timeout("signing")).await,
    };
    let mut entry = attempt.entry(Decision::Allowed, None);
    entry.output_sha256 = Some(signed.sha256.clone());
    entry.detail = Some(
        serde_json::json!({
            "level": if signed.timestamped { "b-t" } else { "b-b" },
            "field": signed.field,
            "template_id": template_id,
            "area": area_id,
            "employee": attempt.employee,
            "permit": permit_text(&allowed_by),
            "batch": facts.batch.as_ref().filter(|_| by_batch).map(|b| &b.id),
        })
        .to_string(),
    );
    // Kept responses are stored before the record that points at them commits.
    let mut kept: Option<PathBuf> = None;
    let mut changes = Vec::new();
    if let Some(k) = &key {
        let name = format!("{}.pdf", spool::random_id());
        let path = state.responses_dir.join(&name);
        let stored = match &signed.data {
            Signed::Memory(bytes) => tokio::fs::write(&path, bytes).await,
            Signed::File(f) => std::fs::rename(f.path(), &path),
        };
        if let Err(e) = stored {
            let _ = std::fs::remove_file(&path);
            return attempt
                .refuse(
                    Decision::Failed,
                    ApiError::internal(format!("cannot keep the response: {e}")),
                )
                .await;
        }
        kept = Some(path);
        changes.push(Change::Idempotency(IdempotencyRow {
            application: app.row.id.clone(),
            key: k.clone(),
            body_sha256: identity.clone(),
            audit_seq: 0,
            audit_hash: String::new(),
            output_path: name,
            output_sha256: signed.sha256.clone(),
            created_at: crate::clock::now_unix(),
        }));
    }
    // A seal-use grant gives one of its uses, a batch confirmation one of its signatures, and
    // the caps and quota count one more, all in the record's transaction: if a concurrent
    // request took the last one, this signature is refused and never returned.
    let now = crate::clock::now_unix();
    if let seald_policy::Permit::Grant { id } = &allowed_by {
        changes.push(Change::ConsumeGrant {
            id: id.clone(),
            sha256: attempt.input_sha256.clone().unwrap_or_default(),
            now,
        });
    }
    if let (true, Some(b)) = (by_batch, &facts.batch) {
        changes.push(Change::ConsumeBatch {
            id: b.id.clone(),
            now,
        });
    }
    if let Some(c) = consumption.clone() {
        changes.push(Change::ConsumeLimits(Box::new(c)));
    }
    let consumes = changes.iter().any(|c| !matches!(c, Change::Idempotency(_)));
    let change = match changes.len() {
        0 => Change::None,
        1 => changes.remove(0),
        _ => Change::Many(changes),
    };
    // A file output is opened before the record commits, so a committed record always has
    // its output.
    let body = match signed.data {
        Signed::Memory(bytes) => {
            let len = bytes.len() as u64;
            (Body::from(bytes), Some(len))
        }
        Signed::File(spooled) => {
            let path = kept.clone().unwrap_or_else(|| spooled.path().to_path_buf());
            match std::fs::File::open(&path) {
                // The spool name is unlinked when `spooled` drops; the open handle stays readable.
                Ok(f) => file_body(f),
                Err(e) => {
                    if let Some(k) = &kept {
                        let _ = std::fs::remove_file(k);
                    }
                    return attempt
                        .refuse(
                            Decision::Failed,
                            ApiError::internal(format!("cannot open the signed output: {e}")),
                        )
                        .await;
                }
            }
        }
    };
    let record: Record = match state.audit.append(entry, change).await {
        Ok(r) => r,
        Err(crate::store::StoreError::Conflict(_)) if consumes => {
            if let Some(k) = &kept {
                let _ = std::fs::remove_file(k);
            }
            // A concurrent request took the last use: say which.
            let limit = match &consumption {
                Some(c) => limit_reached(&state, c).await,
                None => None,
            };
            let batch = match (by_batch, &facts.batch) {
                (true, Some(b)) => batch_refusal(&state, &b.id).await,
                _ => None,
            };
            let code = limit
                .or(batch)
                .unwrap_or(seald_policy::DenyCode::GrantUsedUp);
            return attempt
                .refuse(Decision::Denied, ApiError::denied(code))
                .await;
        }
        Err(e) => {
            if let Some(k) = &kept {
                let _ = std::fs::remove_file(k);
            }
            count_sign(&state, &attempt.caller, &seal_id, "failed");
            return attempt.caller.fail(e.into());
        }
    };
    count_sign(&state, &attempt.caller, &seal_id, "signed");
    state.metrics.audit_head.set(record.seq as i64);
    pdf_response(&attempt.caller, body, record.seq, &record.hash, false)
}

fn replay(state: &AppState, caller: &Caller, row: &IdempotencyRow) -> Response {
    match std::fs::File::open(state.responses_dir.join(&row.output_path)) {
        Ok(file) => pdf_response(
            caller,
            file_body(file),
            row.audit_seq,
            &row.audit_hash,
            true,
        ),
        Err(e) => caller.fail(ApiError::internal(format!(
            "the kept response of this Idempotency-Key is unreadable: {e}"
        ))),
    }
}

pub async fn verify(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = Caller::new(&state, peer);
    if let Err(e) = caller.require_app(&state, "verify").await {
        return caller.fail(e);
    }
    if !content_type_is(&headers, "application/pdf") {
        return caller.fail(not_pdf_type());
    }
    let received = match receive(&state, &headers, body).await {
        Ok(r) => r,
        Err(e) => return caller.fail(e),
    };
    let roots = state.verify_roots.clone();
    let work = tokio::task::spawn_blocking(move || {
        let doc = received.document().map_err(|e| problem::from_pades(&e))?;
        seald_pades::verify_document(
            &doc,
            &VerifyOptions {
                trust_roots: roots,
                now: crate::clock::now_unix(),
            },
        )
        .map_err(|e| problem::from_pades(&e))
    });
    match tokio::time::timeout(state.config.request_timeout(), work).await {
        Ok(Ok(Ok(report))) => Json(report).into_response(),
        Ok(Ok(Err(e))) => caller.fail(e),
        Ok(Err(join)) => caller.fail(ApiError::internal(join.to_string())),
        Err(_) => caller.fail(timeout("verifying")),
    }
}
