//! seald's seal-governance decisions. Pure: no I/O, no async, no clock — the caller passes a
//! snapshot of what is registered and the time. Every refusal carries a stable [`DenyCode`]
//! (the daemon's problem+json `code`; docs/policy.md lists them).
//!
//! This first model covers the daemon's registered applications (mTLS principals) and seals:
//! which application may use which seal, optionally only for some templates, and who may
//! administer. The governance issues grow it (organization, holders, approvals, auto-sign).

use serde::{Deserialize, Serialize};

/// What an application may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Seal documents with the seals it is granted.
    Signer,
    /// Register and change seals and applications, read the audit log.
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealStatus {
    Active,
    Disabled,
}

/// A registered seal, as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub id: String,
    pub status: SealStatus,
}

/// A registered application (an mTLS principal), as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub id: String,
    pub enabled: bool,
    pub roles: Vec<Role>,
    /// The seals it may use.
    pub seals: Vec<String>,
    /// If set, it may sign only documents made from these templates.
    pub templates: Option<Vec<String>>,
}

impl Application {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// What is being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// Seal a document with `seal`.
    Sign {
        seal: &'a str,
        template: Option<&'a str>,
    },
    /// Change the registry or read the audit log.
    Administer,
}

/// The registered state a decision is made against.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    pub application: &'a Application,
    /// The seal the request names, if it exists.
    pub seal: Option<&'a Seal>,
}

/// Why a request is refused. The `code` strings are stable: integrators match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyCode {
    ApplicationDisabled,
    NotAdmin,
    NotSigner,
    SealNotFound,
    SealDisabled,
    SealNotGranted,
    TemplateNotGranted,
    TemplateRequired,
}

impl DenyCode {
    pub fn code(self) -> &'static str {
        match self {
            DenyCode::ApplicationDisabled => "application_disabled",
            DenyCode::NotAdmin => "not_admin",
            DenyCode::NotSigner => "not_signer",
            DenyCode::SealNotFound => "seal_not_found",
            DenyCode::SealDisabled => "seal_disabled",
            DenyCode::SealNotGranted => "seal_not_granted",
            DenyCode::TemplateNotGranted => "template_not_granted",
            DenyCode::TemplateRequired => "template_required",
        }
    }

    /// A sentence for people.
    pub fn explain(self) -> &'static str {
        match self {
            DenyCode::ApplicationDisabled => "this application is disabled",
            DenyCode::NotAdmin => "this application does not hold the admin role",
            DenyCode::NotSigner => "this application does not hold the signer role",
            DenyCode::SealNotFound => "there is no such seal",
            DenyCode::SealDisabled => "the seal is disabled and does not sign",
            DenyCode::SealNotGranted => "this application may not use this seal",
            DenyCode::TemplateNotGranted => {
                "this application may use the seal only for other templates"
            }
            DenyCode::TemplateRequired => {
                "this application may use the seal only for named templates: pass template_id"
            }
        }
    }
}

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(DenyCode),
}

/// Decides `request` against `snapshot`. `now` (unix seconds) is unused by this first model
/// and will carry time windows and grant deadlines.
pub fn decide(snapshot: &Snapshot<'_>, request: &Request<'_>, _now: i64) -> Decision {
    let app = snapshot.application;
    if !app.enabled {
        return Decision::Deny(DenyCode::ApplicationDisabled);
    }
    match request {
        Request::Administer => {
            if app.has_role(Role::Admin) {
                Decision::Allow
            } else {
                Decision::Deny(DenyCode::NotAdmin)
            }
        }
        Request::Sign { seal, template } => {
            if !app.has_role(Role::Signer) {
                return Decision::Deny(DenyCode::NotSigner);
            }
            let Some(found) = snapshot.seal.filter(|s| s.id == *seal) else {
                return Decision::Deny(DenyCode::SealNotFound);
            };
            if !app.seals.iter().any(|s| s == seal) {
                return Decision::Deny(DenyCode::SealNotGranted);
            }
            if found.status != SealStatus::Active {
                return Decision::Deny(DenyCode::SealDisabled);
            }
            match (&app.templates, template) {
                (None, _) => Decision::Allow,
                (Some(_), None) => Decision::Deny(DenyCode::TemplateRequired),
                (Some(allowed), Some(t)) if allowed.iter().any(|a| a == t) => Decision::Allow,
                (Some(_), Some(_)) => Decision::Deny(DenyCode::TemplateNotGranted),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> Application {
        Application {
            id: "erp".to_owned(),
            enabled: true,
            roles: vec![Role::Signer],
            seals: vec!["contract".to_owned()],
            templates: None,
        }
    }

    fn seal(status: SealStatus) -> Seal {
        Seal {
            id: "contract".to_owned(),
            status,
        }
    }

    fn sign<'a>(seal: &'a str, template: Option<&'a str>) -> Request<'a> {
        Request::Sign { seal, template }
    }

    #[test]
    fn a_granted_active_seal_signs() {
        let (a, s) = (app(), seal(SealStatus::Active));
        let snap = Snapshot {
            application: &a,
            seal: Some(&s),
        };
        assert_eq!(decide(&snap, &sign("contract", None), 0), Decision::Allow);
    }

    #[test]
    fn each_refusal_has_its_code() {
        let active = seal(SealStatus::Active);
        let disabled = seal(SealStatus::Disabled);
        let cases: Vec<(Application, Option<&Seal>, Request<'_>, DenyCode)> = vec![
            (
                Application {
                    enabled: false,
                    ..app()
                },
                Some(&active),
                sign("contract", None),
                DenyCode::ApplicationDisabled,
            ),
            (app(), None, sign("contract", None), DenyCode::SealNotFound),
            (
                app(),
                Some(&active),
                sign("finance", None),
                DenyCode::SealNotFound,
            ),
            (
                Application {
                    seals: vec![],
                    ..app()
                },
                Some(&active),
                sign("contract", None),
                DenyCode::SealNotGranted,
            ),
            (
                app(),
                Some(&disabled),
                sign("contract", None),
                DenyCode::SealDisabled,
            ),
            (
                Application {
                    templates: Some(vec!["nda".to_owned()]),
                    ..app()
                },
                Some(&active),
                sign("contract", None),
                DenyCode::TemplateRequired,
            ),
            (
                Application {
                    templates: Some(vec!["nda".to_owned()]),
                    ..app()
                },
                Some(&active),
                sign("contract", Some("loan")),
                DenyCode::TemplateNotGranted,
            ),
            (
                Application {
                    roles: vec![Role::Admin],
                    ..app()
                },
                Some(&active),
                sign("contract", None),
                DenyCode::NotSigner,
            ),
            (app(), None, Request::Administer, DenyCode::NotAdmin),
        ];
        for (a, s, request, code) in cases {
            let snap = Snapshot {
                application: &a,
                seal: s,
            };
            assert_eq!(
                decide(&snap, &request, 0),
                Decision::Deny(code),
                "{request:?}"
            );
            assert!(!code.code().is_empty() && !code.explain().is_empty());
        }
        let with_template = Application {
            templates: Some(vec!["nda".to_owned()]),
            ..app()
        };
        let snap = Snapshot {
            application: &with_template,
            seal: Some(&active),
        };
        assert_eq!(
            decide(&snap, &sign("contract", Some("nda")), 0),
            Decision::Allow
        );
        let admin = Application {
            roles: vec![Role::Admin],
            ..app()
        };
        let snap = Snapshot {
            application: &admin,
            seal: None,
        };
        assert_eq!(decide(&snap, &Request::Administer, 0), Decision::Allow);
    }
}
