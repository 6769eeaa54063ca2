//! Applications: the mTLS principals integrators' systems connect as, what they may do and
//! with which seals.

use serde::{Deserialize, Serialize};

/// What an application may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppRole {
    /// Seal documents with the seals it is granted.
    Signer,
    /// Register and change seals, applications and the organization; read the audit log.
    Admin,
}

/// A registered application, as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub id: String,
    pub enabled: bool,
    pub roles: Vec<AppRole>,
    /// The seals it may use.
    pub seals: Vec<String>,
    /// If set, it may sign only documents made from these templates.
    pub templates: Option<Vec<String>>,
    /// Whether its requests may name an acting employee (an OA system acting for the person
    /// logged in to it). Without it, every request is the application's own.
    #[serde(default)]
    pub acts_for_employees: bool,
    /// A partner enterprise's system: its requests are decided by that enterprise's partner
    /// authorizations.
    #[serde(default)]
    pub partner: Option<crate::CreditCode>,
}

impl Application {
    pub fn has_role(&self, role: AppRole) -> bool {
        self.roles.contains(&role)
    }
}
