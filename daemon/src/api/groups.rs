//! Groups over HTTP: the parent's principal adds and removes member subsidiaries; a member's
//! own application grants the parent its scope. seald-policy decides; each change is
//! committed with the organization and its audit record.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use seald_policy::group::{self, GroupScope, MemberTerms};
use seald_policy::{CreditCode, DenyCode};
use serde_json::json;

use super::admin::{done, json_body, unprocessable};
use super::governance::{governed, Acting};
use super::{Caller, PeerExt, St};
use crate::problem::ApiError;
use crate::store::{Change, OrgChange};

fn credit_code(text: &str) -> Result<CreditCode, ApiError> {
    CreditCode::parse(text)
        .map_err(|e| unprocessable("invalid_credit_code", format!("the member: {e}")))
}

/// `GET /v1/group`: this (parent) enterprise's members and the scopes they granted.
pub async fn show(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::new(&state, peer);
    match Acting::begin(&state, caller, &headers, "group.show").await {
        Ok(act) => Json(json!({
            "parent": act.org.enterprise.credit_code,
            "members": act.org.members,
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// `PUT /v1/group/members/{credit_code}`: adds a member (or changes its name and quota terms).
pub async fn put_member(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: Result<Json<MemberTerms>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "group.member", |act| {
        let terms = json_body(body)?;
        let code = credit_code(&code)?;
        let now = crate::clock::now_unix();
        let new = act.policy(group::put_member(
            &act.org,
            &act.employee,
            &code,
            &terms,
            now,
        ))?;
        let detail = json!({
            "member": code.as_str(), "name": terms.name, "contract_quota": terms.contract_quota,
            "draw_on_parent": terms.draw_on_parent,
        });
        act.commit_org(&state, "group.member", &new, detail).await
    })
}

/// `DELETE /v1/group/members/{credit_code}`: everything the member granted ends at once.
pub async fn remove_member(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    governed!(state, peer, headers, "group.remove", |act| {
        let new = act.policy(group::remove_member(&act.org, &act.employee, &code))?;
        act.commit_org(&state, "group.remove", &new, json!({ "member": code }))
            .await
    })
}

/// `PUT /v1/group/members/{credit_code}/scope`: the member's own application (registered
/// with `partner` set to the member's credit code) grants the parent this scope.
pub async fn grant_scope(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(code): Path<String>,
    body: Result<Json<GroupScope>, JsonRejection>,
) -> Response {
    const ACTION: &str = "group.scope";
    let _one_at_a_time = state.governance.lock().await;
    let caller = Caller::new(&state, peer);
    let app = match caller.require_app(&state, ACTION).await {
        Ok(a) => a,
        Err(e) => return caller.fail(e),
    };
    let result = async {
        let scope = json_body(body)?;
        let code = credit_code(&code)?;
        if app.policy.partner.as_ref() != Some(&code) {
            // Only the member itself grants its scope.
            return Err(ApiError::denied(DenyCode::NotPartnerApplication));
        }
        let org = caller
            .registry
            .org
            .clone()
            .ok_or_else(|| ApiError::governance(DenyCode::GroupMemberNotFound))?;
        let new = group::grant_scope(&org, &code, &scope).map_err(ApiError::governance)?;
        let change = OrgChange::diff(Some(&org), &new);
        let detail = json!({ "member": code.as_str(), "scope": scope });
        let record = super::admin::commit(
            &state,
            &caller,
            ACTION,
            None,
            detail.clone(),
            Change::Org(Box::new(change)),
        )
        .await?;
        Ok(done(&record, detail))
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => super::governance::refuse(&state, &caller, ACTION, None, e).await,
    }
}
