//! Administering the organization: roles and their assignment, the super administrator's
//! transfer, departments and employees, approval-flow configuration, and resignation with
//! handover. Each function checks who acts and returns the changed state for the caller to
//! store; nothing changes when it refuses.

use crate::enterprise::{check_name, Features};
use crate::flow::{ApprovalRequest, Flow};
use crate::org::{check_phone, Department, Employee, EmployeeStatus, Org, Target};
use crate::role::{Permission, RoleDef, SystemRole};
use crate::seal::{Seal, SealStatus, SealType};
use crate::DenyCode;

/// `actor` must be active and hold `permission` for `target`.
fn require(
    org: &Org,
    actor: &str,
    permission: Permission,
    target: Target<'_>,
) -> Result<(), DenyCode> {
    let actor = org.active_employee(actor)?;
    if org.can(actor, permission, target) {
        Ok(())
    } else {
        Err(DenyCode::PermissionDenied)
    }
}

fn validated(org: Org) -> Result<Org, DenyCode> {
    org.validate()?;
    Ok(org)
}

/// Gives `employee` exactly `roles`. The super administrator role moves only by
/// [`transfer_super_administrator`]; there is at most one legal representative.
pub fn assign_roles(
    org: &Org,
    actor: &str,
    employee: &str,
    roles: &[String],
) -> Result<Org, DenyCode> {
    require(org, actor, Permission::RoleManagement, Target::ENTERPRISE)?;
    let target = org.active_employee(employee)?;
    for r in roles {
        if org.role(r).is_none() {
            return Err(DenyCode::RoleNotFound);
        }
    }
    let super_id = SystemRole::SuperAdministrator.id();
    let had = target.roles.iter().any(|r| r == super_id);
    let has = roles.iter().any(|r| r == super_id);
    if has && !had {
        return Err(DenyCode::SuperAdministratorExists);
    }
    if had && !has {
        return Err(DenyCode::SuperAdministratorRequired);
    }
    let legal = SystemRole::LegalRepresentative.id();
    if roles.iter().any(|r| r == legal) && org.members_of(legal).any(|e| e.id != employee) {
        return Err(DenyCode::LegalRepresentativeExists);
    }
    // Who is the legal representative (and so controls that seal) is the super
    // administrator's decision alone, not any role manager's.
    let was_legal = target.roles.iter().any(|r| r == legal);
    if was_legal != roles.iter().any(|r| r == legal) {
        let actor = org.active_employee(actor)?;
        if !org.has_role(actor, SystemRole::SuperAdministrator) {
            return Err(DenyCode::PermissionDenied);
        }
    }
    let mut changed = org.clone();
    let e = changed
        .employee_mut(employee)
        .ok_or(DenyCode::EmployeeNotFound)?;
    e.roles = roles.to_vec();
    e.roles.sort();
    e.roles.dedup();
    validated(changed)
}

/// The super administrator hands the role to another active employee.
pub fn transfer_super_administrator(org: &Org, actor: &str, to: &str) -> Result<Org, DenyCode> {
    let current = org.active_employee(actor)?;
    if !org.has_role(current, SystemRole::SuperAdministrator) {
        return Err(DenyCode::PermissionDenied);
    }
    org.active_employee(to)?;
    if to == actor {
        return Err(DenyCode::SuperAdministratorExists);
    }
    let id = SystemRole::SuperAdministrator.id();
    let mut changed = org.clone();
    for e in &mut changed.employees {
        if e.id == actor {
            e.roles.retain(|r| r != id);
        } else if e.id == to {
            e.roles.push(id.to_owned());
        }
    }
    validated(changed)
}

/// Adds a custom role.
pub fn create_role(org: &Org, actor: &str, role: &RoleDef) -> Result<Org, DenyCode> {
    require(org, actor, Permission::RoleManagement, Target::ENTERPRISE)?;
    if role.system.is_some() || !role.is_genuine() {
        return Err(DenyCode::SystemRoleImmutable);
    }
    let role = RoleDef::custom(&role.id, &role.name, &role.permissions, role.scope)?;
    if org.role(&role.id).is_some() {
        return Err(DenyCode::RoleExists);
    }
    let mut changed = org.clone();
    changed.roles.push(role);
    validated(changed)
}

/// Replaces a custom role's name, permission points and scope.
pub fn edit_role(org: &Org, actor: &str, role: &RoleDef) -> Result<Org, DenyCode> {
    require(org, actor, Permission::RoleManagement, Target::ENTERPRISE)?;
    let existing = org.role(&role.id).ok_or(DenyCode::RoleNotFound)?;
    if existing.system.is_some() || role.system.is_some() {
        return Err(DenyCode::SystemRoleImmutable);
    }
    let role = RoleDef::custom(&role.id, &role.name, &role.permissions, role.scope)?;
    let mut changed = org.clone();
    for r in &mut changed.roles {
        if r.id == role.id {
            *r = role.clone();
        }
    }
    validated(changed)
}

pub fn delete_role(org: &Org, actor: &str, role: &str) -> Result<Org, DenyCode> {
    require(org, actor, Permission::RoleManagement, Target::ENTERPRISE)?;
    let existing = org.role(role).ok_or(DenyCode::RoleNotFound)?;
    if existing.system.is_some() {
        return Err(DenyCode::SystemRoleImmutable);
    }
    if org
        .employees
        .iter()
        .any(|e| e.roles.iter().any(|r| r == role))
    {
        return Err(DenyCode::RoleInUse);
    }
    let mut changed = org.clone();
    changed.roles.retain(|r| r.id != role);
    validated(changed)
}

/// Creates or renames/moves a department. A department administrator acts below their own
/// department only.
pub fn put_department(org: &Org, actor: &str, department: &Department) -> Result<Org, DenyCode> {
    check_name(&department.name)?;
    let Some(parent) = department.parent.as_deref() else {
        // Top-level departments are the enterprise's own.
        require(
            org,
            actor,
            Permission::OrganizationManagement,
            Target::ENTERPRISE,
        )?;
        return put(org, department);
    };
    if org.department(parent).is_none() {
        return Err(DenyCode::DepartmentNotFound);
    }
    let target = Target {
        department: Some(parent),
        own: false,
    };
    require(org, actor, Permission::OrganizationManagement, target)?;
    if let Some(existing) = org.department(&department.id) {
        // Moving a department needs the right over where it was too.
        let from = Target {
            department: existing.parent.as_deref(),
            own: false,
        };
        if existing.parent.is_none() {
            require(
                org,
                actor,
                Permission::OrganizationManagement,
                Target::ENTERPRISE,
            )?;
        } else {
            require(org, actor, Permission::OrganizationManagement, from)?;
        }
    }
    put(org, department)
}

fn put(org: &Org, department: &Department) -> Result<Org, DenyCode> {
    let mut changed = org.clone();
    match changed
        .departments
        .iter_mut()
        .find(|d| d.id == department.id)
    {
        Some(d) => *d = department.clone(),
        None => changed.departments.push(department.clone()),
    }
    validated(changed)
}

/// Adds an employee or changes their name, phone and department (roles go through
/// [`assign_roles`], resignation through [`resign`]).
pub fn put_employee(org: &Org, actor: &str, employee: &Employee) -> Result<Org, DenyCode> {
    check_name(&employee.name)?;
    check_phone(&employee.phone)?;
    if org.department(&employee.department).is_none() {
        return Err(DenyCode::DepartmentNotFound);
    }
    let into = Target {
        department: Some(&employee.department),
        own: false,
    };
    require(org, actor, Permission::OrganizationManagement, into)?;
    let mut changed = org.clone();
    match changed.employees.iter_mut().find(|e| e.id == employee.id) {
        Some(e) => {
            if !e.is_active() {
                return Err(DenyCode::EmployeeResigned);
            }
            let from = Target {
                department: Some(&e.department),
                own: false,
            };
            require(org, actor, Permission::OrganizationManagement, from)?;
            e.name = employee.name.clone();
            e.phone = employee.phone.clone();
            e.department = employee.department.clone();
        }
        None => changed.employees.push(Employee {
            roles: Vec::new(),
            status: EmployeeStatus::Active,
            has_signing_password: false,
            auto_sign_authorized: false,
            batch_sign_authorized: false,
            ..employee.clone()
        }),
    }
    validated(changed)
}

/// The super administrator or the legal representative switches the enterprise's features
/// (auto-sign, page seals, forced contract approval).
pub fn set_features(org: &Org, actor: &str, features: Features) -> Result<Org, DenyCode> {
    let e = org.active_employee(actor)?;
    if !org.has_role(e, SystemRole::SuperAdministrator)
        && !org.has_role(e, SystemRole::LegalRepresentative)
    {
        return Err(DenyCode::FeaturesReserved);
    }
    let mut changed = org.clone();
    changed.enterprise.features = features;
    validated(changed)
}

/// The super administrator or the legal representative sets the contract quota (None:
/// unlimited) and the enterprise's time zone.
pub fn set_quota(
    org: &Org,
    actor: &str,
    contract_quota: Option<u64>,
    utc_offset_minutes: i32,
) -> Result<Org, DenyCode> {
    let e = org.active_employee(actor)?;
    if !org.has_role(e, SystemRole::SuperAdministrator)
        && !org.has_role(e, SystemRole::LegalRepresentative)
    {
        return Err(DenyCode::QuotaReserved);
    }
    crate::limits::check_offset(utc_offset_minutes)?;
    let mut changed = org.clone();
    changed.enterprise.contract_quota = contract_quota;
    changed.enterprise.utc_offset_minutes = utc_offset_minutes;
    validated(changed)
}

/// Checks a flow an administrator configures for its scenario.
pub fn configure_flow(org: &Org, actor: &str, flow: &Flow) -> Result<(), DenyCode> {
    require(
        org,
        actor,
        Permission::ApprovalFlowConfiguration,
        Target::ENTERPRISE,
    )?;
    flow.validate_in(org)
}

/// What a resignation moves to the successor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub from: String,
    pub to: String,
    /// Pending requests the resigning employee submitted or is a named approver of.
    pub requests: Vec<String>,
    /// Seals whose holder the successor becomes in the resigning employee's place.
    pub seals: Vec<String>,
    /// Personal seals (practice seals) that are disabled, and legal-representative seals
    /// that lose this holder: only the legal representative gives those holders.
    pub released: Vec<String>,
}

/// `actor` records that `employee` resigns and names `to` as successor.
pub fn resign(
    org: &Org,
    seals: &[Seal],
    requests: &[ApprovalRequest],
    actor: &str,
    employee: &str,
    to: &str,
) -> Result<Handover, DenyCode> {
    let leaving = org.active_employee(employee)?;
    let target = Target {
        department: Some(&leaving.department),
        own: false,
    };
    require(org, actor, Permission::OrganizationManagement, target)?;
    if org.has_role(leaving, SystemRole::SuperAdministrator) {
        return Err(DenyCode::SuperAdministratorRequired);
    }
    if to == employee || org.active_employee(to).is_err() {
        return Err(DenyCode::HandoverInvalid);
    }
    let held = seals
        .iter()
        .filter(|s| s.status != SealStatus::Deleted && s.is_holder(employee));
    let (personal, shared): (Vec<&Seal>, Vec<&Seal>) =
        held.partition(|s| matches!(s.kind, SealType::Practice | SealType::LegalRepresentative));
    Ok(Handover {
        from: employee.to_owned(),
        to: to.to_owned(),
        requests: requests
            .iter()
            .filter(|r| r.involves(employee))
            .map(|r| r.id.clone())
            .collect(),
        seals: shared.iter().map(|s| s.id.clone()).collect(),
        released: personal.iter().map(|s| s.id.clone()).collect(),
    })
}

impl Handover {
    /// Carries the handover out on the caller's copies: the employee resigns, holder duties
    /// and requests move, personal seals are released. Requests whose current node completes
    /// now that the employee dropped out move on.
    pub fn apply(
        &self,
        org: &mut Org,
        seals: &mut [Seal],
        requests: &mut [ApprovalRequest],
        now: i64,
    ) {
        if let Some(e) = org.employee_mut(&self.from) {
            e.status = EmployeeStatus::Resigned;
        }
        for seal in seals.iter_mut() {
            if self.seals.contains(&seal.id) {
                for h in &mut seal.holders {
                    if *h == self.from {
                        h.clone_from(&self.to);
                    }
                }
                seal.holders.sort();
                seal.holders.dedup();
            } else if self.released.contains(&seal.id) {
                seal.holders.retain(|h| *h != self.from);
                if seal.kind == SealType::Practice {
                    seal.practice_authorized = false;
                    if seal.status == SealStatus::Active {
                        seal.status = SealStatus::Disabled;
                    }
                }
            }
        }
        for r in requests.iter_mut() {
            if self.requests.contains(&r.id) {
                r.hand_over(&self.from, &self.to, now);
            }
            // Expired requests stay as they are; a node that completes now says why.
            if r.is_pending(now) && r.settle(org).is_some() {
                r.history.push(crate::flow::Step {
                    action: crate::flow::StepAction::Handover,
                    actor: None,
                    node: r.node,
                    at: now,
                    comment: Some(format!("the node completed when {} resigned", self.from)),
                });
            }
        }
    }
}
