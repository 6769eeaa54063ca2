//! Partner authorizations: this enterprise (A) lets partner enterprise B have a chosen set of
//! A's seals applied automatically — to documents from named templates of A's, or to
//! documents B initiates — until an expiry, revocable at any time. B's system connects as an
//! application registered for B; B asks with an invitation link (single-use, 30 days), and
//! only A's super administrator or legal representative grants.

use serde::{Deserialize, Serialize};

use crate::enterprise::CreditCode;
use crate::org::Org;
use crate::seal::Seal;
use crate::template::is_principal;
use crate::DenyCode;

/// An invitation link lives this long.
pub const INVITATION_LIFETIME: i64 = 30 * 24 * 3600;
/// A partner authorization lasts at most this long (three years and a day).
pub const MAX_VALIDITY: i64 = 3 * 366 * 24 * 3600;

/// What B may have A's seals applied to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum PartnerScope {
    /// Documents from these templates of A's (placed in the templates' signing areas).
    Templates { templates: Vec<String> },
    /// Documents B initiates.
    Initiated,
}

/// What A grants (the body of a grant, or of accepting an invitation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerGrant {
    pub seals: Vec<String>,
    pub scope: PartnerScope,
    /// Unix seconds.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerAuthorization {
    pub id: String,
    pub partner: CreditCode,
    pub partner_name: String,
    pub seals: Vec<String>,
    pub scope: PartnerScope,
    pub granted_by: String,
    pub granted_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl PartnerAuthorization {
    /// Why it does not let its partner have `seal` applied (for `template`, if named) at
    /// `now`, if it does not.
    pub fn refusal(&self, seal: &str, template: Option<&str>, now: i64) -> Option<DenyCode> {
        if !self.seals.iter().any(|s| s == seal) {
            return Some(DenyCode::PartnerSealNotAuthorized);
        }
        if let PartnerScope::Templates { templates } = &self.scope {
            if !template.is_some_and(|t| templates.iter().any(|a| a == t)) {
                return Some(DenyCode::PartnerTemplateNotAuthorized);
            }
        }
        if self.revoked_at.is_some_and(|at| at <= now) {
            return Some(DenyCode::PartnerAuthorizationRevoked);
        }
        if now >= self.expires_at {
            return Some(DenyCode::PartnerAuthorizationExpired);
        }
        None
    }
}

/// A's principal grants `partner` what `grant` says. The seals are active seals of this
/// enterprise (never the legal representative's); the templates are registered ones.
#[allow(clippy::too_many_arguments)]
pub fn authorize(
    org: &Org,
    actor: &str,
    seals: &[Seal],
    templates: &[&str],
    (partner, partner_name): (&CreditCode, &str),
    grant: &PartnerGrant,
    id: &str,
    now: i64,
) -> Result<PartnerAuthorization, DenyCode> {
    if !is_principal(org, actor)? {
        return Err(DenyCode::AuthorizationReserved);
    }
    crate::enterprise::check_name(partner_name)?;
    if *partner == org.enterprise.credit_code {
        return Err(DenyCode::InvalidPartnerAuthorization);
    }
    if grant.seals.is_empty()
        || grant.expires_at <= now
        || grant.expires_at > now.saturating_add(MAX_VALIDITY)
    {
        return Err(DenyCode::InvalidPartnerAuthorization);
    }
    for id in &grant.seals {
        let seal = seals
            .iter()
            .find(|s| s.id == *id)
            .ok_or(DenyCode::SealNotFound)?;
        if let Some(code) = seal.unattended_refusal() {
            return Err(code);
        }
    }
    if let PartnerScope::Templates { templates: named } = &grant.scope {
        if named.is_empty() {
            return Err(DenyCode::InvalidPartnerAuthorization);
        }
        if named.iter().any(|t| !templates.contains(&t.as_str())) {
            return Err(DenyCode::TemplateNotFound);
        }
    }
    Ok(PartnerAuthorization {
        id: id.to_owned(),
        partner: partner.clone(),
        partner_name: partner_name.to_owned(),
        seals: grant.seals.clone(),
        scope: grant.scope.clone(),
        granted_by: actor.to_owned(),
        granted_at: now,
        expires_at: grant.expires_at,
        revoked_at: None,
    })
}

/// A's principal revokes it; it allows nothing from `now` on.
pub fn revoke(
    org: &Org,
    actor: &str,
    authorization: &PartnerAuthorization,
    now: i64,
) -> Result<PartnerAuthorization, DenyCode> {
    if !is_principal(org, actor)? {
        return Err(DenyCode::AuthorizationReserved);
    }
    if authorization.revoked_at.is_some() {
        return Err(DenyCode::PartnerAuthorizationRevoked);
    }
    Ok(PartnerAuthorization {
        revoked_at: Some(now),
        ..authorization.clone()
    })
}

/// An invitation from partner B asking A for an authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerInvitation {
    pub id: String,
    pub partner: CreditCode,
    pub partner_name: String,
    /// What B says it needs, for A to read.
    pub message: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The authorization it was accepted with.
    pub accepted_as: Option<String>,
}

/// B's invitation, from B's application.
pub fn invite(
    partner: &CreditCode,
    partner_name: &str,
    message: &str,
    id: &str,
    now: i64,
) -> Result<PartnerInvitation, DenyCode> {
    crate::enterprise::check_name(partner_name)?;
    if message.chars().count() > 1000 || message.chars().any(|c| c.is_control() && c != '\n') {
        return Err(DenyCode::InvalidPartnerAuthorization);
    }
    Ok(PartnerInvitation {
        id: id.to_owned(),
        partner: partner.clone(),
        partner_name: partner_name.to_owned(),
        message: message.to_owned(),
        created_at: now,
        expires_at: now + INVITATION_LIFETIME,
        accepted_as: None,
    })
}

impl PartnerInvitation {
    pub fn refusal(&self, now: i64) -> Option<DenyCode> {
        if self.accepted_as.is_some() {
            Some(DenyCode::InvitationUsed)
        } else if now >= self.expires_at {
            Some(DenyCode::InvitationExpired)
        } else {
            None
        }
    }
}

/// A's principal accepts `invitation` with `grant`: the invitation is used up, and B gets the
/// authorization.
#[allow(clippy::too_many_arguments)]
pub fn accept(
    org: &Org,
    actor: &str,
    seals: &[Seal],
    templates: &[&str],
    invitation: &PartnerInvitation,
    grant: &PartnerGrant,
    id: &str,
    now: i64,
) -> Result<(PartnerInvitation, PartnerAuthorization), DenyCode> {
    if !is_principal(org, actor)? {
        return Err(DenyCode::AuthorizationReserved);
    }
    if let Some(code) = invitation.refusal(now) {
        return Err(code);
    }
    let authorization = authorize(
        org,
        actor,
        seals,
        templates,
        (&invitation.partner, &invitation.partner_name),
        grant,
        id,
        now,
    )?;
    let used = PartnerInvitation {
        accepted_as: Some(id.to_owned()),
        ..invitation.clone()
    };
    Ok((used, authorization))
}
