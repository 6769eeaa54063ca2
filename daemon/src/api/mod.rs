//! The HTTP API (v1). Handlers are thin: they authenticate the caller, ask `seald-policy`,
//! and hand the work to the PAdES engine, the token pools and the store. docs/api.md and
//! `GET /v1/openapi.json` describe every route; a test keeps the two in step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{Extension, Json, Router};
use seald_audit::{Decision, Entry};
use seald_firmware_bridge::Status as DeviceStatus;
use seald_pkcs11::PoolHealth;
use serde_json::json;

use crate::problem::ApiError;
use crate::registry::{AppEntry, Snapshot};
use crate::state::AppState;
use crate::store::Change;
use crate::tls::Peer;

mod admin;
mod audit;
mod governance;
mod groups;
mod jobs;
mod partners;
mod seals;
mod sign;
pub(crate) use sign::{decide_job_row, limit_reached};
mod templates;

pub type St = State<Arc<AppState>>;

pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Every route: path, method, handler. The router is built from this list, and a test
/// compares it with the OpenAPI document.
pub fn routes() -> Vec<(&'static str, Method, MethodRouter<Arc<AppState>>)> {
    vec![
        ("/healthz", Method::GET, get(healthz)),
        ("/readyz", Method::GET, get(readyz)),
        ("/metrics", Method::GET, get(metrics)),
        ("/v1/openapi.json", Method::GET, get(openapi)),
        ("/v1/seals", Method::GET, get(seals::list)),
        ("/v1/seals/{seal_id}", Method::GET, get(seals::show)),
        ("/v1/seals/{seal_id}/sign", Method::POST, post(sign::sign)),
        ("/v1/verify", Method::POST, post(sign::verify)),
        ("/v1/policy/explain", Method::POST, post(sign::explain)),
        ("/v1/templates", Method::GET, get(templates::list_templates)),
        (
            "/v1/templates/{template_id}",
            Method::GET,
            get(templates::show_template),
        ),
        (
            "/v1/templates/{template_id}",
            Method::PUT,
            put(templates::put_template),
        ),
        (
            "/v1/templates/{template_id}",
            Method::DELETE,
            delete(templates::delete_template),
        ),
        (
            "/v1/templates/{template_id}/pdf",
            Method::GET,
            get(templates::template_pdf_of),
        ),
        (
            "/v1/templates/{template_id}/enable",
            Method::POST,
            post(templates::enable_template),
        ),
        (
            "/v1/templates/{template_id}/disable",
            Method::POST,
            post(templates::disable_template),
        ),
        (
            "/v1/org/employees/{employee_id}/authorizations/{authorization}",
            Method::PUT,
            put(templates::set_authorization),
        ),
        ("/v1/jobs", Method::POST, post(jobs::create)),
        ("/v1/jobs/{job_id}", Method::GET, get(jobs::show)),
        ("/v1/jobs/{job_id}/cancel", Method::POST, post(jobs::cancel)),
        ("/v1/jobs/{job_id}/resume", Method::POST, post(jobs::resume)),
        ("/v1/jobs/{job_id}/results", Method::GET, get(jobs::results)),
        (
            "/v1/jobs/{job_id}/outputs.zip",
            Method::GET,
            get(jobs::outputs_zip),
        ),
        (
            "/v1/jobs/{job_id}/rows/{row}/pdf",
            Method::GET,
            get(jobs::row_pdf),
        ),
        ("/v1/group", Method::GET, get(groups::show)),
        (
            "/v1/group/members/{credit_code}",
            Method::PUT,
            put(groups::put_member),
        ),
        (
            "/v1/group/members/{credit_code}",
            Method::DELETE,
            delete(groups::remove_member),
        ),
        (
            "/v1/group/members/{credit_code}/scope",
            Method::PUT,
            put(groups::grant_scope),
        ),
        ("/v1/partners", Method::GET, get(partners::list)),
        ("/v1/partners", Method::POST, post(partners::authorize)),
        (
            "/v1/partners/{authorization_id}/revoke",
            Method::POST,
            post(partners::revoke),
        ),
        (
            "/v1/partners/invitations",
            Method::POST,
            post(partners::invite),
        ),
        (
            "/v1/partners/invitations/{token}",
            Method::GET,
            get(partners::show_invitation),
        ),
        (
            "/v1/partners/invitations/{token}/accept",
            Method::POST,
            post(partners::accept),
        ),
        (
            "/v1/batch-confirmations",
            Method::POST,
            post(templates::open_batch),
        ),
        (
            "/v1/batch-confirmations/{batch_id}",
            Method::GET,
            get(templates::show_batch),
        ),
        (
            "/v1/batch-confirmations/{batch_id}",
            Method::DELETE,
            delete(templates::close_batch),
        ),
        ("/v1/admin/seals", Method::POST, post(admin::register_seal)),
        (
            "/v1/admin/seals/{seal_id}/enable",
            Method::POST,
            post(admin::enable_seal),
        ),
        (
            "/v1/admin/seals/{seal_id}/disable",
            Method::POST,
            post(admin::disable_seal),
        ),
        (
            "/v1/admin/seals/{seal_id}",
            Method::DELETE,
            delete(admin::delete_seal),
        ),
        (
            "/v1/admin/seals/{seal_id}/holders",
            Method::PUT,
            put(admin::set_holders),
        ),
        (
            "/v1/admin/seals/{seal_id}/limits",
            Method::PUT,
            put(admin::set_limits),
        ),
        (
            "/v1/admin/seals/{seal_id}/authorize",
            Method::POST,
            post(admin::authorize_seal),
        ),
        ("/v1/org", Method::POST, post(governance::setup)),
        ("/v1/org", Method::GET, get(governance::show)),
        (
            "/v1/org/features",
            Method::PUT,
            put(governance::set_features),
        ),
        ("/v1/org/quota", Method::PUT, put(governance::set_quota)),
        ("/v1/org/quota", Method::GET, get(governance::quota)),
        (
            "/v1/org/departments/{department_id}",
            Method::PUT,
            put(governance::put_department),
        ),
        (
            "/v1/org/employees/{employee_id}",
            Method::PUT,
            put(governance::put_employee),
        ),
        (
            "/v1/org/employees/{employee_id}/roles",
            Method::PUT,
            put(governance::set_roles),
        ),
        (
            "/v1/org/employees/{employee_id}/resign",
            Method::POST,
            post(governance::resign),
        ),
        (
            "/v1/org/employees/{employee_id}/signing-password",
            Method::PUT,
            put(governance::set_password),
        ),
        (
            "/v1/org/employees/{employee_id}/signing-password/reset",
            Method::POST,
            post(governance::reset_password),
        ),
        (
            "/v1/org/super-administrator",
            Method::POST,
            post(governance::transfer_super_administrator),
        ),
        (
            "/v1/org/roles/{role_id}",
            Method::PUT,
            put(governance::put_role),
        ),
        (
            "/v1/org/roles/{role_id}",
            Method::DELETE,
            delete(governance::delete_role),
        ),
        ("/v1/org/flows", Method::GET, get(governance::flows)),
        (
            "/v1/org/flows/{scenario}",
            Method::PUT,
            put(governance::put_flow),
        ),
        ("/v1/approvals", Method::POST, post(governance::apply)),
        (
            "/v1/approvals/pending",
            Method::GET,
            get(governance::pending),
        ),
        (
            "/v1/approvals/{approval_id}",
            Method::GET,
            get(governance::show_approval),
        ),
        (
            "/v1/approvals/{approval_id}/approve",
            Method::POST,
            post(governance::approve),
        ),
        (
            "/v1/approvals/{approval_id}/reject",
            Method::POST,
            post(governance::reject),
        ),
        (
            "/v1/approvals/{approval_id}/cancel",
            Method::POST,
            post(governance::cancel),
        ),
        (
            "/v1/approvals/{approval_id}/resubmit",
            Method::POST,
            post(governance::resubmit),
        ),
        (
            "/v1/admin/applications",
            Method::GET,
            get(admin::list_applications),
        ),
        (
            "/v1/admin/applications",
            Method::POST,
            post(admin::register_application),
        ),
        ("/v1/audit/records", Method::GET, get(audit::records)),
        (
            "/v1/audit/checkpoints",
            Method::GET,
            get(audit::checkpoints),
        ),
    ]
}

/// The mTLS API.
pub fn router(state: Arc<AppState>) -> Router {
    let mut by_path: std::collections::BTreeMap<&str, MethodRouter<Arc<AppState>>> =
        Default::default();
    for (path, _, handler) in routes() {
        let merged = match by_path.remove(path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(path, merged);
    }
    let mut router = Router::new();
    for (path, handler) in by_path {
        router = router.route(path, handler.fallback(method_not_allowed));
    }
    router
        .fallback(no_route)
        // Seal images travel base64 in admin JSON; PDFs are streamed, not limited here.
        .layer(axum::extract::DefaultBodyLimit::max(16 << 20))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The plain loopback listener: health and metrics only.
pub fn plain_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn observe(State(state): St, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state
        .metrics
        .requests
        .with_label_values(&[&endpoint, &status])
        .inc();
    state
        .metrics
        .latency
        .with_label_values(&[&endpoint, &status])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "No such endpoint",
        "see GET /v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        "see GET /v1/openapi.json",
    )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): St) -> Response {
    let mut ready = true;
    let store = match state.store.ping().await {
        Ok(()) => json!("ok"),
        Err(e) => {
            ready = false;
            json!(e.to_string())
        }
    };
    let mut tokens = serde_json::Map::new();
    for (name, pool) in state.keys.pools() {
        let status = pool.status();
        if status.health != PoolHealth::Ready {
            ready = false;
        }
        tokens.insert(
            name.clone(),
            serde_json::to_value(&status.health).unwrap_or_default(),
        );
    }
    let mut devices = serde_json::Map::new();
    for (name, status) in device_statuses(&state).await {
        if status == DeviceStatus::Absent {
            ready = false;
        }
        devices.insert(name, json!(status.name()));
    }
    let mut checks = json!({"store": store, "tokens": tokens});
    if !devices.is_empty() {
        checks["devices"] = serde_json::Value::Object(devices);
    }
    if state
        .config
        .tsa
        .as_ref()
        .is_some_and(|t| t.default_level == crate::config::Level::BT)
    {
        let tsa = tsa_reachable(&state).await;
        if tsa.is_err() {
            ready = false;
        }
        checks["tsa"] = json!(tsa.err().unwrap_or_else(|| "ok".to_owned()));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"ready": ready, "checks": checks}))).into_response()
}

/// Each serial signing device's status, as `Device::check` finds it (it talks to an idle
/// device, looks for an absent one, and does not wait for one in use).
async fn device_statuses(state: &AppState) -> Vec<(String, DeviceStatus)> {
    let mut out = Vec::new();
    for (name, device) in state.keys.devices() {
        let d = device.clone();
        let status = tokio::task::spawn_blocking(move || d.check())
            .await
            .unwrap_or(DeviceStatus::Absent);
        out.push((name.clone(), status));
    }
    out
}

/// Some configured TSA accepts a TCP connection.
async fn tsa_reachable(state: &AppState) -> Result<(), String> {
    let Some(tsa) = state.timestamper.clone() else {
        return Ok(());
    };
    tokio::task::spawn_blocking(move || tsa.probe(Duration::from_secs(2)))
        .await
        .map_err(|e| e.to_string())?
}

async fn metrics(State(state): St) -> Response {
    for (name, pool) in state.keys.pools() {
        let s = pool.status();
        state
            .metrics
            .sessions_in_use
            .with_label_values(&[name])
            .set(s.sessions_in_use as i64);
        state
            .metrics
            .sessions_max
            .with_label_values(&[name])
            .set(s.max_sessions as i64);
        state
            .metrics
            .token_ready
            .with_label_values(&[name])
            .set(i64::from(s.health == PoolHealth::Ready));
    }
    // As `/readyz` finds them: an idle device that went away shows as absent here too.
    for (name, now) in device_statuses(&state).await {
        for s in DeviceStatus::ALL {
            state
                .metrics
                .device_status
                .with_label_values(&[name.as_str(), s.name()])
                .set(i64::from(s == now));
        }
    }
    if let Some(tsa) = &state.timestamper {
        let m = &state.metrics;
        let _one_scrape = m
            .tsa_sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for t in tsa.stats() {
            // The timestamper counts; the metrics catch up with it.
            for (outcome, total) in [("answered", t.answered), ("failed", t.failed)] {
                let c = m.tsa_requests.with_label_values(&[t.url.as_str(), outcome]);
                c.inc_by(total.saturating_sub(c.get()));
            }
            let w = m.tsa_waited.with_label_values(&[t.url.as_str()]);
            let more = t.waited_seconds - w.get();
            if more > 0.0 {
                w.inc_by(more);
            }
            m.tsa_resting
                .with_label_values(&[t.url.as_str()])
                .set(i64::from(t.resting));
        }
    }
    let admitted = state.config.limits.queue_depth - state.admission.available_permits();
    state.metrics.queue_depth.set(admitted as i64);
    state
        .metrics
        .queue_capacity
        .set(state.config.limits.queue_depth as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// A request's identity and audit context.
#[derive(Debug)]
pub struct Caller {
    pub request_id: String,
    pub peer: Peer,
    /// The registry as of this request: every decision in it is made against one state.
    pub registry: Arc<Snapshot>,
    pub app: Option<Arc<AppEntry>>,
}

impl Caller {
    pub fn new(state: &AppState, peer: Peer) -> Caller {
        let registry = state.registry.snapshot();
        let app = registry.by_fingerprint.get(&peer.fingerprint).cloned();
        Caller {
            request_id: crate::spool::random_id(),
            peer,
            registry,
            app,
        }
    }

    /// The application id, or for an unregistered certificate its fingerprint.
    pub fn principal(&self) -> String {
        match &self.app {
            Some(a) => a.row.id.clone(),
            None => format!("unregistered:{}", self.peer.fingerprint),
        }
    }

    pub fn entry(&self, action: &str, decision: Decision, reason: Option<&str>) -> Entry {
        Entry {
            time: crate::clock::now_rfc3339(),
            principal: self.principal(),
            action: action.to_owned(),
            seal: None,
            document_id: None,
            input_sha256: None,
            output_sha256: None,
            decision,
            reason: reason.map(str::to_owned),
            request_id: self.request_id.clone(),
            detail: None,
        }
    }

    /// The registered application, or 403 (audited as a denied `action`).
    pub async fn require_app(
        &self,
        state: &AppState,
        action: &str,
    ) -> Result<Arc<AppEntry>, ApiError> {
        match &self.app {
            Some(a) => Ok(a.clone()),
            None => {
                tracing::info!(fingerprint = %self.peer.fingerprint, subject = %self.peer.subject, action, "unregistered client certificate refused");
                let e = ApiError::unregistered(&self.peer.fingerprint);
                self.record_refusal(
                    state,
                    self.entry(action, Decision::Denied, Some(e.code)),
                    &e,
                )
                .await;
                Err(e)
            }
        }
    }

    /// The application, if it may administer (audited refusal otherwise).
    pub async fn require_admin(
        &self,
        state: &AppState,
        action: &str,
    ) -> Result<Arc<AppEntry>, ApiError> {
        let app = self.require_app(state, action).await?;
        let snapshot = seald_policy::Snapshot::of(&app.policy, None);
        match seald_policy::decide(
            &snapshot,
            &seald_policy::Request::Administer,
            crate::clock::now_unix(),
        ) {
            seald_policy::Decision::Allow(_) => Ok(app),
            refused => {
                let code = refused.code().unwrap_or(seald_policy::DenyCode::NotAdmin);
                let e = ApiError::denied(code);
                state.metrics.denied(code.code());
                self.record_refusal(
                    state,
                    self.entry(action, Decision::Denied, Some(code.code())),
                    &e,
                )
                .await;
                Err(e)
            }
        }
    }

    /// Appends the record of a refused or failed attempt; if even that fails, the log says so
    /// (the client gets the original error either way).
    pub async fn record_refusal(&self, state: &AppState, entry: Entry, error: &ApiError) {
        if let Err(store) = state.audit.append(entry, Change::None).await {
            tracing::error!(request_id = %self.request_id, code = error.code, error = %store, "cannot audit a refused request");
        }
    }

    pub fn fail(&self, e: ApiError) -> Response {
        e.into_response_with(Some(&self.request_id))
    }
}

/// Peer identity for handlers: the TLS layer inserts it per connection.
pub type PeerExt = Extension<Peer>;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn the_openapi_document_lists_every_route_and_nothing_else() {
        let spec: serde_json::Value =
            serde_json::from_str(super::OPENAPI).expect("openapi.json is JSON");
        assert_eq!(spec["openapi"], "3.1.0");
        let mut documented = BTreeSet::new();
        for (path, operations) in spec["paths"].as_object().expect("paths") {
            for method in operations.as_object().expect("operations").keys() {
                documented.insert((path.clone(), method.to_uppercase()));
            }
        }
        let routed: BTreeSet<(String, String)> = super::routes()
            .into_iter()
            .map(|(path, method, _)| (path.to_owned(), method.to_string()))
            .collect();
        assert_eq!(documented, routed);
    }
}
