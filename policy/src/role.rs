//! Employees' roles: the system roles every enterprise has (fixed, neither edited nor
//! deleted) and custom roles made of permission points and a data scope.

use serde::{Deserialize, Serialize};

use crate::enterprise::check_name;
use crate::DenyCode;

/// A permission point a role grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Create seals, enable and disable them, give them holders.
    SealManagement,
    /// Approve seal-use applications (when a flow names the role).
    SealUseApproval,
    TemplateManagement,
    /// Departments and employees, resignations and handovers.
    OrganizationManagement,
    ContractManagement,
    ApprovalFlowConfiguration,
    AutoSignManagement,
    /// Create, edit and delete custom roles, and assign roles.
    RoleManagement,
    /// Group: manage member enterprises' seals (status, holders) within their scopes.
    GroupSealManagement,
    /// Group: seal member enterprises' contracts (any document) within their scopes.
    GroupContractManagement,
    /// Group: seal documents from member enterprises' templates within their scopes.
    GroupSales,
}

impl Permission {
    pub const ALL: &'static [Permission] = &[
        Permission::SealManagement,
        Permission::SealUseApproval,
        Permission::TemplateManagement,
        Permission::OrganizationManagement,
        Permission::ContractManagement,
        Permission::ApprovalFlowConfiguration,
        Permission::AutoSignManagement,
        Permission::RoleManagement,
        Permission::GroupSealManagement,
        Permission::GroupContractManagement,
        Permission::GroupSales,
    ];
}

/// Which seals, templates and contracts a role's permissions reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataScope {
    /// What the employee created or holds.
    Own,
    /// What belongs to the employee's department or a department below it.
    Department,
    Enterprise,
}

/// The roles every enterprise has. Their ids are their snake_case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemRole {
    /// Exactly one per enterprise.
    SuperAdministrator,
    /// At most one; the only one who manages the legal-representative seal.
    LegalRepresentative,
    ItAdministrator,
    ContractAdministrator,
    TemplateAdministrator,
    SealAdministrator,
    SealApprover,
    DepartmentAdministrator,
    /// No permission points: signs what is assigned to them.
    BusinessStaff,
    /// 集团印章管理员: members' seals, within their scopes.
    GroupSealAdministrator,
    /// 集团合同管理员: members' contracts, within their scopes.
    GroupContractAdministrator,
    /// 集团业务员: documents from members' templates, within their scopes.
    GroupSalesperson,
}

impl SystemRole {
    pub const ALL: &'static [SystemRole] = &[
        SystemRole::SuperAdministrator,
        SystemRole::LegalRepresentative,
        SystemRole::ItAdministrator,
        SystemRole::ContractAdministrator,
        SystemRole::TemplateAdministrator,
        SystemRole::SealAdministrator,
        SystemRole::SealApprover,
        SystemRole::DepartmentAdministrator,
        SystemRole::BusinessStaff,
        SystemRole::GroupSealAdministrator,
        SystemRole::GroupContractAdministrator,
        SystemRole::GroupSalesperson,
    ];

    pub fn id(self) -> &'static str {
        match self {
            SystemRole::SuperAdministrator => "super_administrator",
            SystemRole::LegalRepresentative => "legal_representative",
            SystemRole::ItAdministrator => "it_administrator",
            SystemRole::ContractAdministrator => "contract_administrator",
            SystemRole::TemplateAdministrator => "template_administrator",
            SystemRole::SealAdministrator => "seal_administrator",
            SystemRole::SealApprover => "seal_approver",
            SystemRole::DepartmentAdministrator => "department_administrator",
            SystemRole::BusinessStaff => "business_staff",
            SystemRole::GroupSealAdministrator => "group_seal_administrator",
            SystemRole::GroupContractAdministrator => "group_contract_administrator",
            SystemRole::GroupSalesperson => "group_salesperson",
        }
    }

    pub fn from_id(id: &str) -> Option<SystemRole> {
        SystemRole::ALL.iter().copied().find(|r| r.id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            SystemRole::SuperAdministrator => "超级管理员 (super administrator)",
            SystemRole::LegalRepresentative => "法定代表人 (legal representative)",
            SystemRole::ItAdministrator => "IT管理员 (IT administrator)",
            SystemRole::ContractAdministrator => "合同管理员 (contract administrator)",
            SystemRole::TemplateAdministrator => "模板管理员 (template administrator)",
            SystemRole::SealAdministrator => "印章管理员 (seal administrator)",
            SystemRole::SealApprover => "用印审批人 (seal approver)",
            SystemRole::DepartmentAdministrator => "部门管理员 (department administrator)",
            SystemRole::BusinessStaff => "业务人员 (business staff)",
            SystemRole::GroupSealAdministrator => "集团印章管理员 (group seal administrator)",
            SystemRole::GroupContractAdministrator => {
                "集团合同管理员 (group contract administrator)"
            }
            SystemRole::GroupSalesperson => "集团业务员 (group salesperson)",
        }
    }

    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            SystemRole::SuperAdministrator => Permission::ALL,
            SystemRole::LegalRepresentative => &[SealManagement, SealUseApproval],
            SystemRole::ItAdministrator => &[OrganizationManagement, ApprovalFlowConfiguration],
            SystemRole::ContractAdministrator => &[ContractManagement],
            SystemRole::TemplateAdministrator => &[TemplateManagement],
            SystemRole::SealAdministrator => &[SealManagement],
            SystemRole::SealApprover => &[SealUseApproval],
            SystemRole::DepartmentAdministrator => &[OrganizationManagement],
            SystemRole::BusinessStaff => &[],
            SystemRole::GroupSealAdministrator => &[GroupSealManagement],
            SystemRole::GroupContractAdministrator => &[GroupContractManagement],
            SystemRole::GroupSalesperson => &[GroupSales],
        }
    }

    pub fn scope(self) -> DataScope {
        match self {
            SystemRole::DepartmentAdministrator => DataScope::Department,
            SystemRole::BusinessStaff => DataScope::Own,
            _ => DataScope::Enterprise,
        }
    }
}

/// A role as stored: a system role (fixed) or a custom one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    pub id: String,
    pub name: String,
    /// Set for the system roles, which nobody edits or deletes.
    pub system: Option<SystemRole>,
    pub permissions: Vec<Permission>,
    pub scope: DataScope,
}

/// Custom role ids: 1 to 64 of a-z, 0-9, '-' and '_', and never a system role's id.
fn check_role_id(id: &str) -> Result<(), DenyCode> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        return Err(DenyCode::InvalidName);
    }
    if SystemRole::from_id(id).is_some() {
        return Err(DenyCode::SystemRoleImmutable);
    }
    Ok(())
}

impl RoleDef {
    pub fn system(role: SystemRole) -> RoleDef {
        RoleDef {
            id: role.id().to_owned(),
            name: role.name().to_owned(),
            system: Some(role),
            permissions: role.permissions().to_vec(),
            scope: role.scope(),
        }
    }

    /// A custom role; its permission points are kept sorted and without repeats.
    pub fn custom(
        id: &str,
        name: &str,
        permissions: &[Permission],
        scope: DataScope,
    ) -> Result<RoleDef, DenyCode> {
        check_role_id(id)?;
        check_name(name)?;
        let mut permissions = permissions.to_vec();
        permissions.sort();
        permissions.dedup();
        Ok(RoleDef {
            id: id.to_owned(),
            name: name.to_owned(),
            system: None,
            permissions,
            scope,
        })
    }

    pub fn grants(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// A stored system role must be exactly what the code says it is.
    pub fn is_genuine(&self) -> bool {
        match self.system {
            Some(role) => *self == RoleDef::system(role),
            None => SystemRole::from_id(&self.id).is_none(),
        }
    }
}

/// The system roles, as every enterprise starts with them.
pub fn system_roles() -> Vec<RoleDef> {
    SystemRole::ALL
        .iter()
        .copied()
        .map(RoleDef::system)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_roles_are_genuine_and_custom_ones_cannot_pose_as_them() {
        for role in system_roles() {
            assert!(role.is_genuine(), "{}", role.id);
        }
        let mut forged = RoleDef::system(SystemRole::BusinessStaff);
        forged.permissions.push(Permission::SealManagement);
        assert!(!forged.is_genuine());
        assert_eq!(
            RoleDef::custom(
                "seal_administrator",
                "x",
                &[Permission::SealManagement],
                DataScope::Own
            ),
            Err(DenyCode::SystemRoleImmutable)
        );
        assert_eq!(
            RoleDef::custom("Bad Id", "x", &[], DataScope::Own),
            Err(DenyCode::InvalidName)
        );
        let custom = RoleDef::custom(
            "branch-seals",
            "分公司印章管理",
            &[
                Permission::SealManagement,
                Permission::SealManagement,
                Permission::AutoSignManagement,
            ],
            DataScope::Department,
        )
        .expect("allowed");
        assert_eq!(
            custom.permissions,
            vec![Permission::SealManagement, Permission::AutoSignManagement]
        );
        assert!(custom.is_genuine());
    }
}
