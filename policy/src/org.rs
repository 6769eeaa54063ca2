//! The organization: departments (a tree), employees and the roles they hold, as one
//! snapshot that decisions read.

use serde::{Deserialize, Serialize};

use crate::enterprise::{check_name, Enterprise};
use crate::role::{system_roles, DataScope, Permission, RoleDef, SystemRole};
use crate::DenyCode;

/// Deeper trees than this are refused (and a cycle is found within this many steps).
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    pub id: String,
    pub name: String,
    /// None for a top-level department.
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmployeeStatus {
    Active,
    Resigned,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Employee {
    pub id: String,
    pub name: String,
    pub phone: String,
    pub department: String,
    /// Role ids (system role ids or custom ones).
    pub roles: Vec<String>,
    pub status: EmployeeStatus,
    /// Set once the employee has a signing password; from then on their signatures must
    /// confirm it (governance II stores the password itself).
    #[serde(default)]
    pub has_signing_password: bool,
    /// Holds the auto-sign authorization: may create auto-sign templates and start auto-sign
    /// jobs (granted by the super administrator or the legal representative).
    #[serde(default)]
    pub auto_sign_authorized: bool,
    /// Holds the batch-sign authorization: may seal many documents with one signing-password
    /// confirmation.
    #[serde(default)]
    pub batch_sign_authorized: bool,
}

impl Employee {
    pub fn is_active(&self) -> bool {
        self.status == EmployeeStatus::Active
    }
}

/// 5 to 20 digits, optionally after one leading '+'.
pub fn check_phone(phone: &str) -> Result<(), DenyCode> {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if (5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(DenyCode::InvalidPhone)
    }
}

/// What a permission is being used on, for the data-scope check.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The department the object belongs to, if any.
    pub department: Option<&'a str>,
    /// Whether the acting employee created or holds it.
    pub own: bool,
}

impl Target<'_> {
    /// Something of the whole enterprise (no department, not anyone's own).
    pub const ENTERPRISE: Target<'static> = Target {
        department: None,
        own: false,
    };
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    pub enterprise: Enterprise,
    pub departments: Vec<Department>,
    pub employees: Vec<Employee>,
    /// The system roles and the custom ones.
    pub roles: Vec<RoleDef>,
    /// Member subsidiaries, when this enterprise is a group's parent.
    #[serde(default)]
    pub members: Vec<crate::group::GroupMember>,
}

impl Org {
    /// A new enterprise: one top department, its super administrator, the system roles.
    pub fn new(
        enterprise: Enterprise,
        top: Department,
        super_administrator: Employee,
    ) -> Result<Org, DenyCode> {
        let mut admin = super_administrator;
        admin.department = top.id.clone();
        if !admin
            .roles
            .iter()
            .any(|r| r == SystemRole::SuperAdministrator.id())
        {
            admin
                .roles
                .push(SystemRole::SuperAdministrator.id().to_owned());
        }
        let org = Org {
            enterprise,
            departments: vec![top],
            employees: vec![admin],
            roles: system_roles(),
            members: Vec::new(),
        };
        org.validate()?;
        Ok(org)
    }

    pub fn employee(&self, id: &str) -> Option<&Employee> {
        self.employees.iter().find(|e| e.id == id)
    }

    pub fn employee_mut(&mut self, id: &str) -> Option<&mut Employee> {
        self.employees.iter_mut().find(|e| e.id == id)
    }

    /// The employee, if they exist and have not resigned.
    pub fn active_employee(&self, id: &str) -> Result<&Employee, DenyCode> {
        let e = self.employee(id).ok_or(DenyCode::EmployeeNotFound)?;
        if !e.is_active() {
            return Err(DenyCode::EmployeeResigned);
        }
        Ok(e)
    }

    pub fn department(&self, id: &str) -> Option<&Department> {
        self.departments.iter().find(|d| d.id == id)
    }

    pub fn role(&self, id: &str) -> Option<&RoleDef> {
        self.roles.iter().find(|r| r.id == id)
    }

    /// Whether `department` is `ancestor` or lies below it.
    pub fn department_within(&self, department: &str, ancestor: &str) -> bool {
        let mut current = Some(department);
        for _ in 0..=MAX_DEPTH {
            match current {
                Some(d) if d == ancestor => return true,
                Some(d) => current = self.department(d).and_then(|d| d.parent.as_deref()),
                None => return false,
            }
        }
        false
    }

    /// How many parents above `department` (None for a cycle or a tree deeper than
    /// [`MAX_DEPTH`]).
    pub fn depth(&self, department: &str) -> Option<usize> {
        let mut current = self.department(department)?.parent.as_deref();
        for depth in 0..MAX_DEPTH {
            match current {
                None => return Some(depth),
                Some(d) => current = self.department(d)?.parent.as_deref(),
            }
        }
        None
    }

    pub fn roles_of<'a>(&'a self, employee: &'a Employee) -> impl Iterator<Item = &'a RoleDef> {
        employee.roles.iter().filter_map(|id| self.role(id))
    }

    pub fn has_role(&self, employee: &Employee, role: SystemRole) -> bool {
        employee.roles.iter().any(|r| r == role.id())
    }

    /// Active employees holding role `role_id`.
    pub fn members_of<'a>(&'a self, role_id: &'a str) -> impl Iterator<Item = &'a Employee> {
        self.employees
            .iter()
            .filter(move |e| e.is_active() && e.roles.iter().any(|r| r == role_id))
    }

    /// The one active employee with `role` (super administrator, legal representative).
    pub fn holder_of(&self, role: SystemRole) -> Option<&Employee> {
        self.members_of(role.id()).next()
    }

    /// Whether active employee `actor` holds `permission` through a role whose data scope
    /// reaches `target`.
    pub fn can(&self, actor: &Employee, permission: Permission, target: Target<'_>) -> bool {
        actor.is_active()
            && self.roles_of(actor).any(|role| {
                role.grants(permission)
                    && match role.scope {
                        DataScope::Enterprise => true,
                        DataScope::Department => {
                            target.own
                                || target
                                    .department
                                    .is_some_and(|d| self.department_within(d, &actor.department))
                        }
                        DataScope::Own => target.own,
                    }
            })
    }

    /// The structural rules: a department tree without cycles, employees in existing
    /// departments with existing roles, genuine system roles, exactly one super administrator
    /// and at most one legal representative among active employees.
    pub fn validate(&self) -> Result<(), DenyCode> {
        check_name(&self.enterprise.name)?;
        for d in &self.departments {
            check_name(&d.name)?;
            if self.depth(&d.id).is_none() {
                return Err(DenyCode::DepartmentCycle);
            }
            if let Some(p) = &d.parent {
                if self.department(p).is_none() {
                    return Err(DenyCode::DepartmentNotFound);
                }
                if self.department_within(p, &d.id) {
                    return Err(DenyCode::DepartmentCycle);
                }
            }
        }
        for role in SystemRole::ALL {
            match self.role(role.id()) {
                Some(r) if r.is_genuine() => {}
                _ => return Err(DenyCode::SystemRoleImmutable),
            }
        }
        if self.roles.iter().any(|r| !r.is_genuine()) {
            return Err(DenyCode::SystemRoleImmutable);
        }
        for e in &self.employees {
            check_name(&e.name)?;
            check_phone(&e.phone)?;
            if self.department(&e.department).is_none() {
                return Err(DenyCode::DepartmentNotFound);
            }
            if e.roles.iter().any(|r| self.role(r).is_none()) {
                return Err(DenyCode::RoleNotFound);
            }
        }
        match self.members_of(SystemRole::SuperAdministrator.id()).count() {
            1 => {}
            0 => return Err(DenyCode::SuperAdministratorRequired),
            _ => return Err(DenyCode::SuperAdministratorExists),
        }
        if self
            .members_of(SystemRole::LegalRepresentative.id())
            .count()
            > 1
        {
            return Err(DenyCode::LegalRepresentativeExists);
        }
        Ok(())
    }
}
