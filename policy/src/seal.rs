//! Seals: their type, source, lifecycle (pending review → active ↔ disabled → deleted) and
//! holders, and the rules for changing them.

use serde::{Deserialize, Serialize};

use crate::org::{Org, Target};
use crate::role::{Permission, SystemRole};
use crate::DenyCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealType {
    /// 公章: one per enterprise.
    Official,
    Contract,
    Finance,
    Hr,
    /// 法定代表人章: the legal representative's alone.
    LegalRepresentative,
    /// 执业章: a person's professional seal; it needs its holder's authorization.
    Practice,
    #[default]
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealSource {
    /// An uploaded image of the physical seal.
    #[default]
    Uploaded,
    /// Drawn by seald from a template (at most one per type).
    Template,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealStatus {
    /// Created by a seal administrator; active once the seal-creation flow approves.
    PendingReview,
    Active,
    Disabled,
    /// Final: a deleted seal never signs again.
    Deleted,
}

impl SealStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SealStatus::PendingReview => "pending_review",
            SealStatus::Active => "active",
            SealStatus::Disabled => "disabled",
            SealStatus::Deleted => "deleted",
        }
    }

    /// The refusal for signing with a seal in this status (None when it signs).
    pub fn refusal(self) -> Option<DenyCode> {
        match self {
            SealStatus::Active => None,
            SealStatus::PendingReview => Some(DenyCode::SealPendingReview),
            SealStatus::Disabled => Some(DenyCode::SealDisabled),
            SealStatus::Deleted => Some(DenyCode::SealDeleted),
        }
    }
}

/// A seal, as policy sees it (the key and image live elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub id: String,
    pub status: SealStatus,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub kind: SealType,
    #[serde(default)]
    pub source: SealSource,
    /// The department it belongs to, for department-scoped administrators.
    #[serde(default)]
    pub department: Option<String>,
    /// Employees who may use it without a seal-use application.
    #[serde(default)]
    pub holders: Vec<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    /// For a practice seal: its holder authorized it.
    #[serde(default)]
    pub practice_authorized: bool,
    /// Caps per day and month, and the hours it may be used.
    #[serde(default)]
    pub limits: crate::limits::SealLimits,
    /// A group member's seal kept by this (parent) enterprise: the member's credit code.
    #[serde(default)]
    pub enterprise: Option<crate::CreditCode>,
}

impl Seal {
    /// A seal known only by id and status (registered by an administering application before
    /// the organization model existed).
    pub fn registered(id: &str, status: SealStatus) -> Seal {
        Seal {
            id: id.to_owned(),
            status,
            name: id.to_owned(),
            kind: SealType::Other,
            source: SealSource::Uploaded,
            department: None,
            holders: Vec::new(),
            created_by: None,
            practice_authorized: false,
            limits: Default::default(),
            enterprise: None,
        }
    }

    /// Why it may not be applied with nobody sealing by hand (bound to an auto-sign template,
    /// granted to a partner), if it may not: it must be active, not a person's own
    /// (the legal representative's), and this enterprise's (a group member's seal is applied
    /// only by the parent's employees with group roles).
    pub fn unattended_refusal(&self) -> Option<DenyCode> {
        if self.status != SealStatus::Active {
            Some(self.status.refusal().unwrap_or(DenyCode::SealNotFound))
        } else if self.kind == SealType::LegalRepresentative {
            Some(DenyCode::LegalRepresentativeOnly)
        } else if self.enterprise.is_some() {
            Some(DenyCode::GroupRoleRequired)
        } else {
            None
        }
    }

    pub fn is_holder(&self, employee: &str) -> bool {
        self.holders.iter().any(|h| h == employee)
    }

    fn target<'a>(&'a self, actor: &str) -> Target<'a> {
        Target {
            department: self.department.as_deref(),
            own: self.is_holder(actor) || self.created_by.as_deref() == Some(actor),
        }
    }

    /// Why it cannot sign now, for anyone (status, practice authorization).
    pub fn signing_refusal(&self) -> Option<DenyCode> {
        self.status.refusal().or_else(|| {
            (self.kind == SealType::Practice && !self.practice_authorized)
                .then_some(DenyCode::PracticeSealUnauthorized)
        })
    }
}

fn is_top(org: &Org, actor: &crate::org::Employee) -> bool {
    org.has_role(actor, SystemRole::LegalRepresentative)
        || org.has_role(actor, SystemRole::SuperAdministrator)
}

/// The legal-representative seal is managed by the legal representative alone; any other
/// seal by holders of seal management within their data scope.
fn may_manage(org: &Org, actor: &str, seal: &Seal) -> Result<(), DenyCode> {
    if seal.enterprise.is_some() {
        // A member's seal: the parent's group seal management, within the member's scope.
        return crate::group::may_manage_member_seal(org, actor, seal);
    }
    let actor = org.active_employee(actor)?;
    if seal.kind == SealType::LegalRepresentative {
        return if org.has_role(actor, SystemRole::LegalRepresentative) {
            Ok(())
        } else {
            Err(DenyCode::LegalRepresentativeOnly)
        };
    }
    if org.can(actor, Permission::SealManagement, seal.target(&actor.id)) {
        Ok(())
    } else {
        Err(DenyCode::PermissionDenied)
    }
}

fn check_holders(org: &Org, seal: &Seal) -> Result<(), DenyCode> {
    for h in &seal.holders {
        org.active_employee(h)?;
    }
    if seal.kind == SealType::Practice && seal.holders.len() != 1 {
        return Err(DenyCode::PracticeSealHolder);
    }
    Ok(())
}

/// May `actor` create `seal` among the enterprise's `existing` seals? Returns the seal to
/// store: active at once when the legal representative or the super administrator creates
/// it, else pending review until the seal-creation flow approves it. A practice seal created
/// by its own holder is authorized by that act.
pub fn create(org: &Org, existing: &[Seal], actor: &str, seal: &Seal) -> Result<Seal, DenyCode> {
    crate::enterprise::check_name(&seal.name)?;
    if existing.iter().any(|s| s.id == seal.id) {
        return Err(DenyCode::SealExists);
    }
    if let Some(d) = &seal.department {
        if org.department(d).is_none() {
            return Err(DenyCode::DepartmentNotFound);
        }
    }
    let mut proposed = seal.clone();
    proposed.created_by = Some(actor.to_owned());
    may_manage(org, actor, &proposed)?;
    check_holders(org, &proposed)?;
    // Per enterprise: a member's seals do not count against the parent's, nor the reverse.
    let live = |s: &&Seal| s.status != SealStatus::Deleted && s.enterprise == seal.enterprise;
    if seal.kind == SealType::Official
        && existing
            .iter()
            .filter(live)
            .any(|s| s.kind == SealType::Official)
    {
        return Err(DenyCode::OfficialSealExists);
    }
    if seal.source == SealSource::Template
        && existing
            .iter()
            .filter(live)
            .any(|s| s.source == SealSource::Template && s.kind == seal.kind)
    {
        return Err(DenyCode::TemplateSealExists);
    }
    let employee = org.active_employee(actor)?;
    proposed.status = if is_top(org, employee) {
        SealStatus::Active
    } else {
        SealStatus::PendingReview
    };
    proposed.holders.sort();
    proposed.holders.dedup();
    proposed.practice_authorized =
        proposed.kind == SealType::Practice && proposed.holders == [actor];
    Ok(proposed)
}

/// The seal once its creation approval is approved.
pub fn creation_approved(seal: &Seal) -> Result<Seal, DenyCode> {
    if seal.status != SealStatus::PendingReview {
        return Err(DenyCode::InvalidSealTransition);
    }
    let mut active = seal.clone();
    active.status = SealStatus::Active;
    Ok(active)
}

/// May `actor` move `seal` to `to`? Enabling and disabling flip between active and
/// disabled; deleting is final; a pending seal becomes active only through its approval.
pub fn change_status(org: &Org, actor: &str, seal: &Seal, to: SealStatus) -> Result<(), DenyCode> {
    may_manage(org, actor, seal)?;
    use SealStatus::*;
    match (seal.status, to) {
        (Deleted, _) => Err(DenyCode::SealDeleted),
        (Active, Disabled) | (Disabled, Active) | (Active | Disabled | PendingReview, Deleted) => {
            Ok(())
        }
        (PendingReview, _) => Err(DenyCode::SealPendingReview),
        _ => Err(DenyCode::InvalidSealTransition),
    }
}

/// May `actor` make `holders` the seal's holders? A practice seal's new holder has to
/// authorize it again.
pub fn set_holders(
    org: &Org,
    actor: &str,
    seal: &Seal,
    holders: &[String],
) -> Result<Seal, DenyCode> {
    may_manage(org, actor, seal)?;
    if seal.status == SealStatus::Deleted {
        return Err(DenyCode::SealDeleted);
    }
    let mut changed = seal.clone();
    changed.holders = holders.to_vec();
    changed.holders.sort();
    changed.holders.dedup();
    check_holders(org, &changed)?;
    if changed.kind == SealType::Practice && changed.holders != seal.holders {
        changed.practice_authorized = false;
    }
    Ok(changed)
}

/// The holder of a practice seal authorizes it.
pub fn authorize_practice(org: &Org, actor: &str, seal: &Seal) -> Result<Seal, DenyCode> {
    org.active_employee(actor)?;
    if seal.kind != SealType::Practice {
        return Err(DenyCode::InvalidSealTransition);
    }
    if seal.status == SealStatus::Deleted {
        return Err(DenyCode::SealDeleted);
    }
    if seal.holders != [actor] {
        return Err(DenyCode::NotPracticeSealHolder);
    }
    let mut changed = seal.clone();
    changed.practice_authorized = true;
    Ok(changed)
}

/// May `actor` give `seal` these limits? Seal management over it, as for its status.
pub fn set_limits(
    org: &Org,
    actor: &str,
    seal: &Seal,
    limits: &crate::limits::SealLimits,
) -> Result<Seal, DenyCode> {
    may_manage(org, actor, seal)?;
    if seal.status == SealStatus::Deleted {
        return Err(DenyCode::SealDeleted);
    }
    limits.validate()?;
    let mut changed = seal.clone();
    changed.limits = limits.clone();
    Ok(changed)
}
