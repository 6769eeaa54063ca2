//! Groups (集团): this enterprise as the parent of member subsidiaries whose seals it keeps.
//! Each member grants the parent a scope — whether the parent seals its contracts, which of
//! its seals, which templates — and the parent's employees holding group roles act on the
//! member's seals only within it. Removing a member revokes everything at once: its seals
//! sign nothing and are managed by nobody here.

use serde::{Deserialize, Serialize};

use crate::enterprise::{check_name, CreditCode};
use crate::org::{Org, Target};
use crate::role::Permission;
use crate::seal::Seal;
use crate::template::is_principal;
use crate::DenyCode;

/// What a member lets the parent do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupScope {
    /// The parent seals the member's contracts (any document, by group contract managers).
    #[serde(default)]
    pub contracts: bool,
    /// The member's seals the parent may use and manage.
    #[serde(default)]
    pub seals: Vec<String>,
    /// The templates the parent's group salespeople may seal documents from.
    #[serde(default)]
    pub templates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    pub credit_code: CreditCode,
    pub name: String,
    /// Empty until the member grants one.
    #[serde(default)]
    pub scope: GroupScope,
    /// The member's own contract quota (None: unlimited).
    #[serde(default)]
    pub contract_quota: Option<u64>,
    /// When its own quota is used up, its contracts count against the parent's.
    #[serde(default)]
    pub draw_on_parent: bool,
    pub joined_at: i64,
}

/// What a parent's principal sets when adding (or changing) a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberTerms {
    pub name: String,
    #[serde(default)]
    pub contract_quota: Option<u64>,
    #[serde(default)]
    pub draw_on_parent: bool,
}

impl Org {
    pub fn member(&self, code: &str) -> Option<&GroupMember> {
        self.members.iter().find(|m| m.credit_code.as_str() == code)
    }
}

/// The parent's super administrator or legal representative adds `code` as a member (or
/// changes its terms, keeping the scope it granted).
pub fn put_member(
    org: &Org,
    actor: &str,
    code: &CreditCode,
    terms: &MemberTerms,
    now: i64,
) -> Result<Org, DenyCode> {
    if !is_principal(org, actor)? {
        return Err(DenyCode::GroupReserved);
    }
    check_name(&terms.name)?;
    if *code == org.enterprise.credit_code {
        return Err(DenyCode::InvalidGroupMember);
    }
    let mut changed = org.clone();
    match changed.members.iter_mut().find(|m| m.credit_code == *code) {
        Some(m) => {
            m.name.clone_from(&terms.name);
            m.contract_quota = terms.contract_quota;
            m.draw_on_parent = terms.draw_on_parent;
        }
        None => changed.members.push(GroupMember {
            credit_code: code.clone(),
            name: terms.name.clone(),
            scope: GroupScope::default(),
            contract_quota: terms.contract_quota,
            draw_on_parent: terms.draw_on_parent,
            joined_at: now,
        }),
    }
    Ok(changed)
}

/// The member itself (its application) grants the parent `scope`; it replaces the last.
pub fn grant_scope(org: &Org, member: &CreditCode, scope: &GroupScope) -> Result<Org, DenyCode> {
    let mut changed = org.clone();
    let m = changed
        .members
        .iter_mut()
        .find(|m| m.credit_code == *member)
        .ok_or(DenyCode::GroupMemberNotFound)?;
    for id in scope.seals.iter().chain(&scope.templates) {
        crate::enterprise::check_id(id).map_err(|_| DenyCode::InvalidGroupMember)?;
    }
    m.scope = scope.clone();
    Ok(changed)
}

/// The parent's principal removes a member: everything it granted ends with it.
pub fn remove_member(org: &Org, actor: &str, code: &str) -> Result<Org, DenyCode> {
    if !is_principal(org, actor)? {
        return Err(DenyCode::GroupReserved);
    }
    if org.member(code).is_none() {
        return Err(DenyCode::GroupMemberNotFound);
    }
    let mut changed = org.clone();
    changed.members.retain(|m| m.credit_code.as_str() != code);
    Ok(changed)
}

/// May `actor` manage the member's `seal` (create it, change its status, holders, limits)?
/// Group seal management, within the member's scope.
pub fn may_manage_member_seal(org: &Org, actor: &str, seal: &Seal) -> Result<(), DenyCode> {
    let Some(code) = &seal.enterprise else {
        return Ok(());
    };
    let actor = org.active_employee(actor)?;
    let member = org
        .member(code.as_str())
        .ok_or(DenyCode::GroupMemberNotFound)?;
    if !org.can(actor, Permission::GroupSealManagement, Target::ENTERPRISE) {
        return Err(DenyCode::GroupRoleRequired);
    }
    if !member.scope.seals.contains(&seal.id) {
        return Err(DenyCode::GroupSealOutOfScope);
    }
    Ok(())
}

/// Why `employee` (None: nobody acts) may not apply the member's `seal` — to a document from
/// `template`, if named — if they may not: a parent employee with a group role, within the
/// member's scope (group contract managers any document, group salespeople documents from
/// the member's templates).
pub fn signing_refusal(
    org: &Org,
    seal: &Seal,
    employee: Option<&str>,
    template: Option<&str>,
) -> Option<DenyCode> {
    let code = seal.enterprise.as_ref()?;
    let Some(member) = org.member(code.as_str()) else {
        return Some(DenyCode::GroupMemberNotFound);
    };
    let Some(e) = employee.and_then(|id| org.active_employee(id).ok()) else {
        return Some(DenyCode::GroupRoleRequired);
    };
    if !member.scope.seals.contains(&seal.id) {
        return Some(DenyCode::GroupSealOutOfScope);
    }
    let contracts = org.can(e, Permission::GroupContractManagement, Target::ENTERPRISE);
    let sales = org.can(e, Permission::GroupSales, Target::ENTERPRISE);
    match template {
        Some(t) if !member.scope.templates.iter().any(|a| a == t) => {
            Some(DenyCode::GroupTemplateOutOfScope)
        }
        Some(_) if contracts || sales => None,
        None if !member.scope.contracts => Some(DenyCode::GroupContractsOutOfScope),
        None if contracts => None,
        _ => Some(DenyCode::GroupRoleRequired),
    }
}

/// Which pool a new contract of a member's seal counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaCharge {
    /// The member's own quota.
    Member,
    /// The parent's pool (the member's own is used up and it draws on the parent's).
    Parent,
}

/// The pool a new contract of `member` counts against, given what the member has used
/// (`member_used`) and the parent's quota and use; or the refusal when neither has room.
pub fn quota_charge(
    member: &GroupMember,
    member_used: u64,
    parent_quota: Option<u64>,
    parent_used: u64,
) -> Result<QuotaCharge, DenyCode> {
    match member.contract_quota {
        None => Ok(QuotaCharge::Member),
        Some(q) if member_used < q => Ok(QuotaCharge::Member),
        Some(_) if member.draw_on_parent && parent_quota.is_none_or(|p| parent_used < p) => {
            Ok(QuotaCharge::Parent)
        }
        Some(_) => Err(DenyCode::ContractQuotaExhausted),
    }
}
