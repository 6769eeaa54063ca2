//! Seal governance over HTTP: setting up the enterprise, the organization (departments,
//! employees, roles, the super administrator), approval flows, seal-use applications, the
//! approval actions and the pending center. Every action names the acting employee in the
//! `Seald-Employee` header and seald-policy decides it with that employee's permissions.
//! Changes run one at a time (they read, decide and commit against one state) and are
//! committed with their audit record.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use seald_audit::Decision;
use seald_policy::flow::{pending_center, Submission, Transition};
use seald_policy::password as password_rules;
use seald_policy::{
    admin, grant, seal as seal_rules, ApprovalRequest, ApprovalState, DataScope, DenyCode,
    Department, Employee, EmployeeStatus, Enterprise, Features, Flow, Grant, Node, Org, Permission,
    RoleDef, Scenario, Subject,
};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::admin::{check_id, commit, done, json_body};
use super::{Caller, PeerExt, St};
use crate::problem::ApiError;
use crate::state::AppState;
use crate::store::{Change, OrgChange};

/// The header naming the employee an application acts for.
pub const EMPLOYEE_HEADER: &str = "seald-employee";

/// The acting employee named by the request, if any.
pub fn employee_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(EMPLOYEE_HEADER) else {
        return Ok(None);
    };
    let id = v
        .to_str()
        .ok()
        .filter(|id| check_id("employee", id).is_ok())
        .ok_or_else(|| {
            ApiError::bad_parameter(
                "Seald-Employee must be an employee id: 1 to 64 letters, digits, '-', '_' or '.'",
            )
        })?;
    Ok(Some(id.to_owned()))
}

fn not_set_up() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "enterprise_not_set_up",
        "The enterprise is not set up",
        "set up the enterprise first (POST /v1/org, or sealctl org init)",
    )
}

fn employee_required() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "employee_required",
        "No acting employee",
        "governance actions name the employee they are made for in the Seald-Employee header",
    )
}

/// A governance request: the application, the organization as of now, the acting employee.
pub struct Acting {
    pub caller: Caller,
    pub org: Arc<Org>,
    pub employee: String,
}

impl std::fmt::Debug for Acting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acting")
            .field("employee", &self.employee)
            .finish()
    }
}

/// Audits a refused governance action (`denied` when policy refused it) and renders it.
pub async fn refuse(
    state: &AppState,
    caller: &Caller,
    action: &str,
    employee: Option<&str>,
    e: ApiError,
) -> Response {
    let decision = if e.by_policy {
        state.metrics.denied(e.code);
        Decision::Denied
    } else {
        Decision::Failed
    };
    let mut entry = caller.entry(action, decision, Some(e.code));
    entry.detail = employee.map(|id| json!({ "employee": id }).to_string());
    caller.record_refusal(state, entry, &e).await;
    caller.fail(e)
}

impl Acting {
    /// Authenticates the application, reads the acting employee, and asks policy whether the
    /// application may act for them.
    pub async fn begin(
        state: &AppState,
        caller: Caller,
        headers: &HeaderMap,
        action: &str,
    ) -> Result<Acting, Response> {
        let app = match caller.require_app(state, action).await {
            Ok(app) => app,
            Err(e) => return Err(caller.fail(e)),
        };
        let employee = match employee_header(headers) {
            Ok(Some(e)) => e,
            Ok(None) => return Err(refuse(state, &caller, action, None, employee_required()).await),
            Err(e) => return Err(refuse(state, &caller, action, None, e).await),
        };
        let Some(org) = caller.registry.org.clone() else {
            return Err(refuse(state, &caller, action, Some(&employee), not_set_up()).await);
        };
        let snapshot = seald_policy::Snapshot {
            org: Some(&org),
            ..seald_policy::Snapshot::of(&app.policy, None)
        };
        let decision = seald_policy::decide(
            &snapshot,
            &seald_policy::Request::ActFor {
                employee: &employee,
            },
            crate::clock::now_unix(),
        );
        if let Some(code) = decision.code() {
            return Err(refuse(
                state,
                &caller,
                action,
                Some(&employee),
                ApiError::denied(code),
            )
            .await);
        }
        Ok(Acting {
            caller,
            org,
            employee,
        })
    }

    /// Commits `change` with the record of `action`, naming the acting employee.
    pub async fn commit(
        &self,
        state: &AppState,
        action: &str,
        seal: Option<&str>,
        mut detail: Value,
        change: Change,
    ) -> Result<seald_audit::Record, ApiError> {
        detail["employee"] = json!(self.employee);
        commit(state, &self.caller, action, seal, detail, change).await
    }

    /// Renders the outcome; a refusal is audited.
    pub async fn finish(
        self,
        state: &AppState,
        action: &str,
        result: Result<Response, ApiError>,
    ) -> Response {
        match result {
            Ok(r) => r,
            Err(e) => refuse(state, &self.caller, action, Some(&self.employee), e).await,
        }
    }

    pub fn policy<T>(&self, r: Result<T, DenyCode>) -> Result<T, ApiError> {
        r.map_err(ApiError::governance)
    }

    /// Commits the organization `new` (what differs from the current one).
    pub(super) async fn commit_org(
        &self,
        state: &AppState,
        action: &str,
        new: &Org,
        detail: Value,
    ) -> Result<Response, ApiError> {
        let change = OrgChange::diff(Some(&self.org), new);
        let mut detail = detail;
        detail["changed"] = change.summary();
        let record = self
            .commit(
                state,
                action,
                None,
                detail.clone(),
                Change::Org(Box::new(change)),
            )
            .await?;
        Ok(done(&record, detail))
    }
}

/// Runs a governance action: one at a time, against the state as of its start.
macro_rules! governed {
    ($state:ident, $peer:ident, $headers:ident, $action:expr, |$act:ident| $body:expr) => {{
        let _one_at_a_time = $state.governance.lock().await;
        let caller = Caller::new(&$state, $peer);
        let $act = match Acting::begin(&$state, caller, &$headers, $action).await {
            Ok(a) => a,
            Err(r) => return r,
        };
        let result: Result<Response, ApiError> = async { $body }.await;
        $act.finish(&$state, $action, result).await
    }};
}
pub(crate) use governed;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseBody {
    id: String,
    name: String,
    credit_code: String,
    #[serde(default)]
    features: Features,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedBody {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonBody {
    id: String,
    name: String,
    phone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    enterprise: EnterpriseBody,
    department: NamedBody,
    super_administrator: PersonBody,
}

/// `POST /v1/org`: sets up the enterprise with its top department and super administrator.
/// An administering application does this once, before anyone can act.
pub async fn setup(
    State(state): St,
    axum::Extension(peer): PeerExt,
    body: Result<Json<SetupBody>, JsonRejection>,
) -> Response {
    let _one_at_a_time = state.governance.lock().await;
    let caller = Caller::new(&state, peer);
    const ACTION: &str = "org.setup";
    if let Err(e) = caller.require_admin(&state, ACTION).await {
        return caller.fail(e);
    }
    let result = async {
        if caller.registry.org.is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "enterprise_exists",
                "The enterprise is set up",
                "the enterprise is set up already; change it through its administrators",
            ));
        }
        let b = json_body(body)?;
        for (what, id) in [("enterprise", &b.enterprise.id), ("department", &b.department.id), ("employee", &b.super_administrator.id)] {
            check_id(what, id)?;
        }
        let e = &b.enterprise;
        let enterprise = Enterprise::new(&e.id, &e.name, &e.credit_code, e.features).map_err(ApiError::governance)?;
        let top = Department {
            id: b.department.id.clone(),
            name: b.department.name.clone(),
            parent: None,
        };
        let p = &b.super_administrator;
        let admin = Employee {
            id: p.id.clone(),
            name: p.name.clone(),
            phone: p.phone.clone(),
            department: top.id.clone(),
            roles: Vec::new(),
            status: EmployeeStatus::Active,
            has_signing_password: false,
            auto_sign_authorized: false,
            batch_sign_authorized: false,
        };
        let org = Org::new(enterprise, top, admin).map_err(ApiError::governance)?;
        let change = OrgChange::diff(None, &org);
        let detail = json!({"enterprise": org.enterprise.id, "credit_code": org.enterprise.credit_code.as_str(), "super_administrator": p.id});
        let record = commit(&state, &caller, ACTION, None, detail.clone(), Change::Org(Box::new(change))).await?;
        Ok(done(&record, detail))
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => refuse(&state, &caller, ACTION, None, e).await,
    }
}

/// `GET /v1/org`: the organization, for an administering application or an acting employee.
pub async fn show(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::new(&state, peer);
    let org = if caller
        .app
        .as_ref()
        .is_some_and(|a| a.policy.has_role(seald_policy::AppRole::Admin))
        && !headers.contains_key(EMPLOYEE_HEADER)
    {
        caller.registry.org.clone()
    } else {
        match Acting::begin(&state, caller, &headers, "org.show").await {
            Ok(a) => Some(a.org),
            Err(r) => return r,
        }
    };
    match org {
        Some(org) => Json(&*org).into_response(),
        None => not_set_up().into_response_with(None),
    }
}

/// `PUT /v1/org/features`: the super administrator or the legal representative switches
/// auto-sign, page seals and forced contract approval (all three given).
pub async fn set_features(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
    body: Result<Json<Features>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "org.features", |act| {
        let features = json_body(body)?;
        let new = act.policy(admin::set_features(&act.org, &act.employee, features))?;
        act.commit_org(
            &state,
            "org.features",
            &new,
            json!({ "features": features }),
        )
        .await
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaBody {
    /// Contracts the enterprise may have sealed in all; null is unlimited.
    contract_quota: Option<u64>,
    /// Minutes east of UTC (480 for +08:00).
    utc_offset_minutes: i32,
}

/// `PUT /v1/org/quota`: the contract quota and the enterprise's time zone.
pub async fn set_quota(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
    body: Result<Json<QuotaBody>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "org.quota", |act| {
        let b = json_body(body)?;
        let new = act.policy(admin::set_quota(
            &act.org,
            &act.employee,
            b.contract_quota,
            b.utc_offset_minutes,
        ))?;
        let detail =
            json!({"contract_quota": b.contract_quota, "utc_offset_minutes": b.utc_offset_minutes});
        act.commit_org(&state, "org.quota", &new, detail).await
    })
}

/// `GET /v1/org/quota`: the quota, what is used, and the consumption per local day.
pub async fn quota(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::new(&state, peer);
    let act = match Acting::begin(&state, caller, &headers, "org.quota.show").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let days = match state.store.quota_usage().await {
        Ok(d) => d,
        Err(e) => return act.caller.fail(e.into()),
    };
    let used: u64 = days.iter().map(|(_, n)| n).sum();
    let e = &act.org.enterprise;
    Json(json!({
        "contract_quota": e.contract_quota,
        "used": used,
        "left": e.contract_quota.map(|q| q.saturating_sub(used)),
        "utc_offset_minutes": e.utc_offset_minutes,
        "by_day": days.iter().map(|(d, n)| json!({"date": seald_policy::limits::date_of_day(*d), "contracts": n})).collect::<Vec<_>>(),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentBody {
    name: String,
    parent: Option<String>,
}

pub async fn put_department(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<DepartmentBody>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "org.department.put", |act| {
        check_id("department", &id)?;
        let b = json_body(body)?;
        let department = Department {
            id: id.clone(),
            name: b.name,
            parent: b.parent,
        };
        let new = act.policy(admin::put_department(&act.org, &act.employee, &department))?;
        act.commit_org(
            &state,
            "org.department.put",
            &new,
            json!({"department": id}),
        )
        .await
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmployeeBody {
    name: String,
    phone: String,
    department: String,
}

pub async fn put_employee(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<EmployeeBody>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "org.employee.put", |act| {
        check_id("employee", &id)?;
        let b = json_body(body)?;
        let employee = Employee {
            id: id.clone(),
            name: b.name,
            phone: b.phone,
            department: b.department,
            roles: Vec::new(),
            status: EmployeeStatus::Active,
            has_signing_password: false,
            auto_sign_authorized: false,
            batch_sign_authorized: false,
        };
        let new = act.policy(admin::put_employee(&act.org, &act.employee, &employee))?;
        act.commit_org(&state, "org.employee.put", &new, json!({"target": id}))
            .await
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesBody {
    roles: Vec<String>,
}

pub async fn set_roles(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<RolesBody>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "org.employee.roles", |act| {
        let b = json_body(body)?;
        let new = act.policy(admin::assign_roles(&act.org, &act.employee, &id, &b.roles))?;
        act.commit_org(
            &state,
            "org.employee.roles",
            &new,
            json!({"target": id, "roles": b.roles}),
        )
        .await
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToBody {
    to: String,
}

pub async fn transfer_super_administrator(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
    body: Result<Json<ToBody>, JsonRejection>,
) -> Response {
    governed!(
        state,
        peer,
        headers,
        "org.super_administrator.transfer",
        |act| {
            let b = json_body(body)?;
            let new = act.policy(admin::transfer_super_administrator(
                &act.org,
                &act.employee,
                &b.to,
            ))?;
            act.commit_org(
                &state,
                "org.super_administrator.transfer",
                &new,
                json!({"to": b.to}),
            )
            .await
        }
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    name: String,
    permissions: Vec<Permission>,
    scope: DataScope,
}

pub async fn put_role(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<RoleBody>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "org.role.put", |act| {
        let b = json_body(body)?;
        let role = act.policy(RoleDef::custom(&id, &b.name, &b.permissions, b.scope))?;
        let new = if act.org.role(&id).is_some() {
            act.policy(admin::edit_role(&act.org, &act.employee, &role))?
        } else {
            act.policy(admin::create_role(&act.org, &act.employee, &role))?
        };
        act.commit_org(
            &state,
            "org.role.put",
            &new,
            json!({"role": id, "permissions": role.permissions, "scope": role.scope}),
        )
        .await
    })
}

pub async fn delete_role(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    governed!(state, peer, headers, "org.role.delete", |act| {
        let new = act.policy(admin::delete_role(&act.org, &act.employee, &id))?;
        act.commit_org(&state, "org.role.delete", &new, json!({"role": id}))
            .await
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResignBody {
    successor: String,
}

/// `POST /v1/org/employees/{id}/resign`: the employee resigns; the successor takes over their
/// pending requests, approver places and holder duties, all in one record.
pub async fn resign(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ResignBody>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "org.employee.resign", |act| {
        let b = json_body(body)?;
        let mut seals = act.caller.registry.seal_policies();
        let mut requests = state.store.pending_approvals().await?;
        let handover = act.policy(admin::resign(
            &act.org,
            &seals,
            &requests,
            &act.employee,
            &id,
            &b.successor,
        ))?;
        let mut org = (*act.org).clone();
        let (seals_before, requests_before) = (seals.clone(), requests.clone());
        let now = crate::clock::now_unix();
        handover.apply(&mut org, &mut seals, &mut requests, now);
        let updated_at = crate::clock::now_rfc3339();
        let mut changes = vec![Change::Org(Box::new(OrgChange::diff(Some(&act.org), &org)))];
        for (before, after) in seals_before.iter().zip(&seals) {
            if before != after {
                changes.push(Change::SealPolicy {
                    seal: Box::new(after.clone()),
                    updated_at: updated_at.clone(),
                });
            }
        }
        for (before, after) in requests_before.iter().zip(&requests) {
            if before != after {
                changes.push(Change::PutApproval(Box::new(after.clone())));
            }
            // A joint-sign node the resigning employee held back completes now: what its
            // approval does happens in this same record.
            if before.state != ApprovalState::Approved && after.state == ApprovalState::Approved {
                changes.extend(approval_effects(&act, &org, after)?.changes);
            }
        }
        let detail = json!({
            "target": id, "successor": b.successor, "requests": handover.requests,
            "seals": handover.seals, "released": handover.released,
        });
        let record = act
            .commit(
                &state,
                "org.employee.resign",
                None,
                detail.clone(),
                Change::Many(changes),
            )
            .await?;
        Ok(done(&record, detail))
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowBody {
    nodes: Vec<Node>,
    deadline_seconds: i64,
}

fn scenario(text: &str) -> Result<Scenario, ApiError> {
    Scenario::ALL
        .iter()
        .copied()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| ApiError::not_found(format!("there is no approval scenario '{text}' (seal_creation, seal_use, contract_approval, permission_application)")))
}

pub async fn put_flow(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<FlowBody>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "org.flow.put", |act| {
        let scenario = scenario(&name)?;
        let b = json_body(body)?;
        let flow = Flow {
            scenario,
            nodes: b.nodes,
            deadline_seconds: b.deadline_seconds,
        };
        act.policy(admin::configure_flow(&act.org, &act.employee, &flow))?;
        let detail = json!({"scenario": name, "flow": flow});
        let record = act
            .commit(
                &state,
                "org.flow.put",
                None,
                detail.clone(),
                Change::PutFlow(Box::new(flow)),
            )
            .await?;
        Ok(done(&record, detail))
    })
}

/// `GET /v1/org/flows`: the flow of every scenario (configured or the default).
pub async fn flows(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::new(&state, peer);
    let act = match Acting::begin(&state, caller, &headers, "org.flow.list").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let all: Vec<Value> = Scenario::ALL
        .iter()
        .map(|s| json!({"scenario": s.as_str(), "configured": act.caller.registry.flows.contains_key(s), "flow": act.caller.registry.flow(*s)}))
        .collect();
    Json(json!({ "flows": all })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealUseBody {
    seal: String,
    document_id: String,
    document_sha256: String,
    #[serde(default = "one")]
    uses: u32,
    /// Unix seconds.
    valid_until: i64,
    #[serde(default)]
    reason: String,
}

fn one() -> u32 {
    1
}

/// A request as the API shows it: the stored request, and who may act on it now.
fn approval_json(r: &ApprovalRequest, org: &Org, now: i64) -> Value {
    let mut v = json!(r);
    v["scenario"] = json!(r.subject.scenario().as_str());
    v["eligible"] = json!(if r.is_pending(now) {
        r.eligible(org, r.node)
    } else {
        Vec::new()
    });
    v["stalled"] = json!(r.is_pending(now) && r.stalled(org).is_some());
    if r.state == ApprovalState::Pending && now >= r.expires_at {
        v["state"] = json!("expired");
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractBody {
    document_id: String,
    document_sha256: String,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleApplicationBody {
    role: String,
    #[serde(default)]
    reason: String,
}

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::bad_body(e.to_string()))
}

/// `POST /v1/approvals`: a request by the acting employee. `scenario` is `seal_use` (the
/// default: a seal-use application), `contract_approval` or `permission_application`.
pub async fn apply(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "approval.submit", |act| {
        let mut body = json_body(body)?;
        let scenario = match body.as_object_mut().and_then(|o| o.remove("scenario")) {
            None => Scenario::SealUse,
            Some(Value::String(s)) => scenario(&s)?,
            Some(_) => return Err(ApiError::bad_body("scenario is a string")),
        };
        let id = crate::spool::random_id();
        let now = crate::clock::now_unix();
        let flow = act.caller.registry.flow(scenario);
        let (request, seal) = match scenario {
            Scenario::SealUse => {
                let b: SealUseBody = parse(body)?;
                let seal = act
                    .caller
                    .registry
                    .seals
                    .get(&b.seal)
                    .map(|s| s.policy.clone())
                    .ok_or_else(|| ApiError::governance(DenyCode::SealNotFound))?;
                let application = seald_policy::flow::SealUse {
                    seal: b.seal.clone(),
                    document_id: b.document_id,
                    document_sha256: b.document_sha256.to_ascii_lowercase(),
                    uses: b.uses,
                    valid_until: b.valid_until,
                };
                let submission = Submission {
                    id: &id,
                    submitter: &act.employee,
                    reason: &b.reason,
                };
                (
                    act.policy(grant::apply(
                        &act.org,
                        &seal,
                        &flow,
                        submission,
                        application,
                        now,
                    ))?,
                    Some(b.seal),
                )
            }
            Scenario::ContractApproval => {
                let b: ContractBody = parse(body)?;
                let submission = Submission {
                    id: &id,
                    submitter: &act.employee,
                    reason: &b.reason,
                };
                let sha = b.document_sha256.to_ascii_lowercase();
                (
                    act.policy(ApprovalRequest::contract_approval(
                        &act.org,
                        &flow,
                        submission,
                        &b.document_id,
                        &sha,
                        now,
                    ))?,
                    None,
                )
            }
            Scenario::PermissionApplication => {
                let b: RoleApplicationBody = parse(body)?;
                let submission = Submission {
                    id: &id,
                    submitter: &act.employee,
                    reason: &b.reason,
                };
                (
                    act.policy(ApprovalRequest::role_application(
                        &act.org, &flow, submission, &b.role, now,
                    ))?,
                    None,
                )
            }
            Scenario::SealCreation => return Err(ApiError::bad_body(
                "seal-creation requests are made by registering the seal (POST /v1/admin/seals)",
            )),
        };
        let shown = approval_json(&request, &act.org, now);
        let detail = json!({"approval": id, "scenario": scenario.as_str()});
        let record = act
            .commit(
                &state,
                "approval.submit",
                seal.as_deref(),
                detail,
                Change::PutApproval(Box::new(request)),
            )
            .await?;
        let mut response = done(&record, shown);
        *response.status_mut() = StatusCode::CREATED;
        Ok(response)
    })
}

async fn load(state: &AppState, id: &str) -> Result<ApprovalRequest, ApiError> {
    state
        .store
        .approval(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no approval request '{id}'")))
}

/// `GET /v1/approvals/{id}`: for its submitter, whoever acted on it or may approve it now,
/// and the super administrator.
pub async fn show_approval(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::new(&state, peer);
    let act = match Acting::begin(&state, caller, &headers, "approval.show").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let now = crate::clock::now_unix();
    match load(&state, &id).await {
        Ok(r) if r.visible_to(&act.org, &act.employee) => {
            Json(approval_json(&r, &act.org, now)).into_response()
        }
        // Another employee's request looks like none at all.
        Ok(_) => act.caller.fail(ApiError::not_found(format!(
            "there is no approval request '{id}'"
        ))),
        Err(e) => act.caller.fail(e),
    }
}

/// `GET /v1/approvals/pending`: the acting employee's to-do list.
pub async fn pending(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::new(&state, peer);
    let act = match Acting::begin(&state, caller, &headers, "approval.pending").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let now = crate::clock::now_unix();
    let all = match state.store.pending_approvals().await {
        Ok(all) => all,
        Err(e) => return act.caller.fail(e.into()),
    };
    let center = pending_center(&all, &act.org, &act.employee, now);
    let list = |items: &[&ApprovalRequest]| -> Vec<Value> {
        items
            .iter()
            .map(|r| approval_json(r, &act.org, now))
            .collect()
    };
    Json(json!({
        "employee": act.employee,
        "waiting_for_me": list(&center.waiting_for_me),
        "submitted_by_me": list(&center.submitted_by_me),
        "expiring_soon": list(&center.expiring_soon),
        "stalled": list(&center.stalled),
    }))
    .into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Approve,
    Reject,
    Cancel,
    Resubmit,
}

impl Step {
    fn action(self) -> &'static str {
        match self {
            Step::Approve => "approval.approve",
            Step::Reject => "approval.reject",
            Step::Cancel => "approval.cancel",
            Step::Resubmit => "approval.resubmit",
        }
    }
}

/// What an approved request makes happen, committed in the record of its approval.
struct Effects {
    changes: Vec<Change>,
    seal: Option<String>,
    grant: Option<String>,
}

/// A seal-creation approval activates the seal, a seal-use one creates the grant, a
/// permission application gives the role (`org` is the organization it is approved in).
fn approval_effects(
    act: &Acting,
    org: &Org,
    request: &ApprovalRequest,
) -> Result<Effects, ApiError> {
    let mut effects = Effects {
        changes: Vec::new(),
        seal: None,
        grant: None,
    };
    match &request.subject {
        Subject::SealCreation { seal } => {
            effects.seal = Some(seal.clone());
            if let Some(entry) = act.caller.registry.seals.get(seal) {
                let active = act.policy(seal_rules::creation_approved(&entry.policy))?;
                effects.changes.push(Change::SealPolicy {
                    seal: Box::new(active),
                    updated_at: crate::clock::now_rfc3339(),
                });
            }
        }
        Subject::SealUse(u) => {
            effects.seal = Some(u.seal.clone());
            let grant = act.policy(Grant::from_approved(request, &crate::spool::random_id()))?;
            effects.grant = Some(grant.id.clone());
            effects.changes.push(Change::PutGrant(grant));
        }
        Subject::PermissionApplication { .. } => {
            let granted = act.policy(request.role_granted(org))?;
            effects
                .changes
                .push(Change::Org(Box::new(OrgChange::diff(Some(org), &granted))));
        }
        // Kept as approved: with forced contract approval on, signatures wait for it.
        Subject::ContractApproval { .. } => {}
    }
    Ok(effects)
}

async fn step(
    state: Arc<AppState>,
    peer: crate::tls::Peer,
    id: String,
    headers: HeaderMap,
    body: Bytes,
    step: Step,
) -> Response {
    governed!(state, peer, headers, step.action(), |act| {
        // The body is optional: `{"comment": "…"}` or nothing.
        let comment = if body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            serde_json::from_slice::<CommentBody>(&body)
                .map_err(|e| ApiError::bad_body(e.to_string()))?
                .comment
        };
        if comment.as_ref().is_some_and(|c| c.chars().count() > 1000) {
            return Err(ApiError::governance(DenyCode::InvalidApplication));
        }
        let mut request = load(&state, &id).await?;
        let now = crate::clock::now_unix();
        let me = act.employee.as_str();
        let c = comment.as_deref();
        let transition = act.policy(match step {
            Step::Approve => request.approve(&act.org, me, now, c),
            Step::Reject => request.reject(&act.org, me, now, c),
            Step::Cancel => request.cancel(me, now),
            Step::Resubmit => request.resubmit(&act.org, me, now),
        })?;
        let mut changes = vec![Change::PutApproval(Box::new(request.clone()))];
        let mut detail = json!({"approval": id, "transition": format!("{transition:?}")});
        let mut seal_id = None;
        if transition == Transition::Approved {
            let effects = approval_effects(&act, &act.org, &request)?;
            seal_id = effects.seal;
            if let Some(grant) = effects.grant {
                detail["grant"] = json!(grant);
            }
            changes.extend(effects.changes);
        }
        let record = act
            .commit(
                &state,
                step.action(),
                seal_id.as_deref(),
                detail,
                Change::Many(changes),
            )
            .await?;
        let org = state
            .registry
            .snapshot()
            .org
            .clone()
            .unwrap_or_else(|| act.org.clone());
        Ok(done(&record, approval_json(&request, &org, now)))
    })
}

pub async fn approve(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    step(state, peer, id, headers, body, Step::Approve).await
}

pub async fn reject(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    step(state, peer, id, headers, body, Step::Reject).await
}

pub async fn cancel(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    step(state, peer, id, headers, Bytes::new(), Step::Cancel).await
}

pub async fn resubmit(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    step(state, peer, id, headers, Bytes::new(), Step::Resubmit).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The current password, to change it.
    old: Option<String>,
    new: String,
}

impl std::fmt::Debug for PasswordBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordBody")
    }
}

/// `PUT /v1/org/employees/{id}/signing-password`: employees set their own signing password,
/// and change it with the old one. A wrong old one counts as a wrong try.
pub async fn set_password(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<PasswordBody>, JsonRejection>,
) -> Response {
    const ACTION: &str = "signing_password.set";
    governed!(state, peer, headers, ACTION, |act| {
        // The rejection text could quote the digits: say only what is wrong.
        let b = body.map(|Json(b)| b).map_err(|_| {
            ApiError::bad_body("give {\"new\": \"six digits\"} and, to change it, \"old\": the current ones, both strings")
        })?;
        let (new, old) = (Zeroizing::new(b.new), b.old.map(Zeroizing::new));
        act.policy(password_rules::may_set(
            &act.org,
            &act.employee,
            &id,
            false,
            false,
        ))?;
        act.policy(password_rules::check_format(&new))?;
        let has = act
            .org
            .employee(&id)
            .is_some_and(|e| e.has_signing_password);
        let mut old_confirmed = false;
        if let (true, Some(old)) = (has, old) {
            let mut entry = act.caller.entry(ACTION, Decision::Denied, None);
            entry.detail = Some(json!({ "employee": act.employee }).to_string());
            match crate::password::confirm(&state, &id, old, entry).await {
                Ok(crate::password::Confirmation::Confirmed) => old_confirmed = true,
                Ok(crate::password::Confirmation::NotSet) => {}
                // Recorded by `confirm` already.
                Err(e) if crate::password::recorded(&e) => return Ok(act.caller.fail(e)),
                Err(e) => return Err(e),
            }
        }
        act.policy(password_rules::may_set(
            &act.org,
            &act.employee,
            &id,
            has,
            old_confirmed,
        ))?;
        let hash = crate::password::hash(new).await?;
        let change = Change::SigningPassword {
            employee: id.clone(),
            hash: Some(hash),
        };
        let detail = json!({"target": id, "changed": has});
        let record = act
            .commit(&state, ACTION, None, detail.clone(), change)
            .await?;
        Ok(done(&record, detail))
    })
}

/// `POST /v1/org/employees/{id}/signing-password/reset`: an administrator clears an
/// employee's signing password (and its lockout); the employee sets a new one.
pub async fn reset_password(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    const ACTION: &str = "signing_password.reset";
    governed!(state, peer, headers, ACTION, |act| {
        act.policy(password_rules::may_reset(&act.org, &act.employee, &id))?;
        let change = Change::SigningPassword {
            employee: id.clone(),
            hash: None,
        };
        let detail = json!({ "target": id });
        let record = act
            .commit(&state, ACTION, None, detail.clone(), change)
            .await?;
        Ok(done(&record, detail))
    })
}
