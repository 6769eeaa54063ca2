//! Partner enterprises over HTTP: a partner's application sends an invitation link; this
//! enterprise's super administrator or legal representative accepts it (or grants directly),
//! lists and revokes authorizations. seald-policy decides; each change is committed with its
//! audit record.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use seald_policy::partner::{self, PartnerGrant, PartnerInvitation};
use seald_policy::{CreditCode, DenyCode};
use serde::Deserialize;
use serde_json::json;

use super::admin::{done, json_body, unprocessable};
use super::governance::{governed, Acting};
use super::{Caller, PeerExt, St};
use crate::problem::ApiError;
use crate::spool;
use crate::state::AppState;
use crate::store::Change;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationBody {
    /// The partner enterprise's name, as this enterprise will see it.
    name: String,
    #[serde(default)]
    message: String,
}

/// `POST /v1/partners/invitations`: a partner's application asks this enterprise for an
/// authorization. The answer's `token` is the link (single-use, 30 days); it is shown once.
pub async fn invite(
    State(state): St,
    axum::Extension(peer): PeerExt,
    body: Result<Json<InvitationBody>, JsonRejection>,
) -> Response {
    const ACTION: &str = "partner.invite";
    let caller = Caller::new(&state, peer);
    let app = match caller.require_app(&state, ACTION).await {
        Ok(a) => a,
        Err(e) => return caller.fail(e),
    };
    let result = async {
        let b = json_body(body)?;
        let partner = app
            .policy
            .partner
            .clone()
            .ok_or_else(|| ApiError::denied(DenyCode::NotPartnerApplication))?;
        let now = crate::clock::now_unix();
        let id = format!("invitation-{}", spool::random_id());
        let invitation = partner::invite(&partner, &b.name, &b.message, &id, now)
            .map_err(ApiError::governance)?;
        let token = format!("{}{}", spool::random_id(), spool::random_id());
        let detail = json!({
            "invitation": id, "partner": partner.as_str(), "name": invitation.partner_name,
            "expires_at": invitation.expires_at,
        });
        let record = super::admin::commit(
            &state,
            &caller,
            ACTION,
            None,
            detail,
            Change::PutInvitation {
                invitation: Box::new(invitation.clone()),
                token_sha256: spool::sha256(token.as_bytes()),
            },
        )
        .await?;
        let mut body = json!(invitation);
        body["token"] = json!(token);
        body["link"] = json!(format!("/v1/partners/invitations/{token}"));
        let mut r = done(&record, body);
        *r.status_mut() = StatusCode::CREATED;
        Ok(r)
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => super::governance::refuse(&state, &caller, ACTION, None, e).await,
    }
}

/// The invitation a link names.
async fn invitation_of(state: &AppState, token: &str) -> Result<PartnerInvitation, ApiError> {
    let ok = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    let found = if ok {
        state
            .store
            .invitation(&spool::sha256(token.to_ascii_lowercase().as_bytes()))
            .await?
    } else {
        None
    };
    found.ok_or_else(|| ApiError::not_found("there is no invitation with this link"))
}

/// `GET /v1/partners/invitations/{token}`: who asks, and whether the link is still good.
pub async fn show_invitation(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::new(&state, peer);
    let act = match Acting::begin(&state, caller, &headers, "partner.invitation.show").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match invitation_of(&state, &token).await {
        Ok(i) => {
            let refusal = i.refusal(crate::clock::now_unix()).map(|c| c.code());
            let mut body = json!(i);
            body["usable"] = json!(refusal.is_none());
            body["refusal"] = json!(refusal);
            Json(body).into_response()
        }
        Err(e) => act.caller.fail(e),
    }
}

fn known_templates(act: &Acting) -> Vec<String> {
    act.caller.registry.templates.keys().cloned().collect()
}

/// `POST /v1/partners/invitations/{token}/accept`: this enterprise's principal grants the
/// inviting partner what the body says; the link is used up.
pub async fn accept(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Result<Json<PartnerGrant>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "partner.accept", |act| {
        let grant = json_body(body)?;
        let invitation = invitation_of(&state, &token).await?;
        let now = crate::clock::now_unix();
        let id = format!("partner-{}", spool::random_id());
        let templates = known_templates(&act);
        let templates: Vec<&str> = templates.iter().map(String::as_str).collect();
        let (used, authorization) = act.policy(partner::accept(
            &act.org,
            &act.employee,
            &act.caller.registry.seal_policies(),
            &templates,
            &invitation,
            &grant,
            &id,
            now,
        ))?;
        let detail = json!({
            "invitation": used.id, "authorization": id, "partner": authorization.partner.as_str(),
            "seals": authorization.seals, "scope": authorization.scope, "expires_at": authorization.expires_at,
        });
        let change = Change::Many(vec![
            Change::AcceptInvitation(Box::new(used)),
            Change::PutPartnerAuthorization(Box::new(authorization.clone())),
        ]);
        let record = act
            .commit(&state, "partner.accept", None, detail, change)
            .await
            .map_err(|e| match e.code {
                // A concurrent acceptance used the link first.
                "conflict" => ApiError::governance(DenyCode::InvitationUsed),
                _ => e,
            })?;
        let mut r = done(&record, json!(authorization));
        *r.status_mut() = StatusCode::CREATED;
        Ok(r)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectGrant {
    /// The partner's unified social credit code.
    partner: String,
    name: String,
    #[serde(flatten)]
    grant: PartnerGrant,
}

/// `POST /v1/partners`: this enterprise's principal authorizes a partner without an
/// invitation.
pub async fn authorize(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
    body: Result<Json<DirectGrant>, JsonRejection>,
) -> Response {
    governed!(state, peer, headers, "partner.authorize", |act| {
        let b = json_body(body)?;
        let code = CreditCode::parse(&b.partner)
            .map_err(|e| unprocessable("invalid_credit_code", format!("partner: {e}")))?;
        let now = crate::clock::now_unix();
        let id = format!("partner-{}", spool::random_id());
        let templates = known_templates(&act);
        let templates: Vec<&str> = templates.iter().map(String::as_str).collect();
        let authorization = act.policy(partner::authorize(
            &act.org,
            &act.employee,
            &act.caller.registry.seal_policies(),
            &templates,
            (&code, &b.name),
            &b.grant,
            &id,
            now,
        ))?;
        let detail = json!({
            "authorization": id, "partner": code.as_str(), "seals": authorization.seals,
            "scope": authorization.scope, "expires_at": authorization.expires_at,
        });
        let record = act
            .commit(
                &state,
                "partner.authorize",
                None,
                detail,
                Change::PutPartnerAuthorization(Box::new(authorization.clone())),
            )
            .await?;
        let mut r = done(&record, json!(authorization));
        *r.status_mut() = StatusCode::CREATED;
        Ok(r)
    })
}

/// `GET /v1/partners`: every partner authorization, revoked and expired ones too.
pub async fn list(
    State(state): St,
    axum::Extension(peer): PeerExt,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::new(&state, peer);
    let act = match Acting::begin(&state, caller, &headers, "partner.list").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match state.store.partner_authorizations(None).await {
        Ok(all) => Json(json!({ "authorizations": all })).into_response(),
        Err(e) => act.caller.fail(e.into()),
    }
}

/// `POST /v1/partners/{id}/revoke`: the partner's very next request is refused.
pub async fn revoke(
    State(state): St,
    axum::Extension(peer): PeerExt,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    governed!(state, peer, headers, "partner.revoke", |act| {
        let current = state
            .store
            .partner_authorizations(None)
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| {
                ApiError::not_found(format!("there is no partner authorization '{id}'"))
            })?;
        let now = crate::clock::now_unix();
        let revoked = act.policy(partner::revoke(&act.org, &act.employee, &current, now))?;
        let detail =
            json!({ "authorization": id, "partner": revoked.partner.as_str(), "revoked_at": now });
        let record = act
            .commit(
                &state,
                "partner.revoke",
                None,
                detail,
                Change::PutPartnerAuthorization(Box::new(revoked.clone())),
            )
            .await?;
        Ok(done(&record, json!(revoked)))
    })
}
