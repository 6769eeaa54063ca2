//! The decision on a request: allow (saying what permits it, so that a grant can be
//! consumed with the audit record), needs approval, or deny with a stable code.

use crate::application::{AppRole, Application};
use crate::flow::{ApprovalRequest, Scenario, Subject};
use crate::grant::Grant;
use crate::org::Org;
use crate::seal::{Seal, SealType};
use crate::DenyCode;

/// The document a signature is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentRef<'a> {
    pub id: &'a str,
    /// SHA-256 of the PDF as received, lowercase hex.
    pub sha256: &'a str,
}

/// What is being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// Seal a document with `seal`.
    Sign(SignRequest<'a>),
    /// Change the registry or read the audit log.
    Administer,
    /// Act for `employee` in governance (organization, seals, approvals): the employee's
    /// own permissions then decide each action.
    ActFor { employee: &'a str },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignRequest<'a> {
    pub seal: &'a str,
    pub template: Option<&'a str>,
    /// The template's signing area the signature goes into, if any.
    pub area: Option<&'a str>,
    /// A page seal (骑缝章) across the pages' edges.
    pub page_seal: bool,
    /// The employee the application acts for; None for the application's own request.
    pub employee: Option<&'a str>,
    pub document: Option<DocumentRef<'a>>,
    /// The employee confirmed this signature with their signing password.
    pub password_confirmed: bool,
}

/// The registered state a decision is made against.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    pub application: &'a Application,
    /// The organization, once the enterprise is set up.
    pub org: Option<&'a Org>,
    /// The seal the request names, if it exists.
    pub seal: Option<&'a Seal>,
    /// Seal-use grants (at least those of the acting employee for this seal).
    pub grants: &'a [Grant],
    /// Approval requests (at least the acting employee's pending ones for this seal).
    pub approvals: &'a [ApprovalRequest],
}

impl<'a> Snapshot<'a> {
    /// An application and a seal, nothing else.
    pub fn of(application: &'a Application, seal: Option<&'a Seal>) -> Snapshot<'a> {
        Snapshot {
            application,
            org: None,
            seal,
            grants: &[],
            approvals: &[],
        }
    }
}

/// What permits an allowed signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permit {
    /// The application's own request (no acting employee).
    Application,
    /// The acting employee holds the seal.
    Holder,
    /// The acting employee's seal-use grant: one of its uses is consumed with the record.
    Grant { id: String },
}

/// The outcome of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Permit),
    /// Allowed once `scenario` approves; `pending` names a request already on its way.
    NeedsApproval {
        scenario: Scenario,
        pending: Option<String>,
    },
    Deny(DenyCode),
}

impl Decision {
    /// The code a refusal is reported with (needs-approval has one too).
    pub fn code(&self) -> Option<DenyCode> {
        match self {
            Decision::Allow(_) => None,
            Decision::NeedsApproval { .. } => Some(DenyCode::SealUseApprovalRequired),
            Decision::Deny(code) => Some(*code),
        }
    }
}

/// Decides `request` against `snapshot` at `now` (unix seconds).
pub fn decide(snapshot: &Snapshot<'_>, request: &Request<'_>, now: i64) -> Decision {
    let app = snapshot.application;
    if !app.enabled {
        return Decision::Deny(DenyCode::ApplicationDisabled);
    }
    match request {
        Request::Administer => {
            if app.has_role(AppRole::Admin) {
                Decision::Allow(Permit::Application)
            } else {
                Decision::Deny(DenyCode::NotAdmin)
            }
        }
        Request::ActFor { employee } => {
            if !app.acts_for_employees && !app.has_role(AppRole::Admin) {
                return Decision::Deny(DenyCode::CannotActForEmployees);
            }
            let Some(org) = snapshot.org else {
                return Decision::Deny(DenyCode::EmployeeNotFound);
            };
            match org.active_employee(employee) {
                Ok(_) => Decision::Allow(Permit::Application),
                Err(code) => Decision::Deny(code),
            }
        }
        Request::Sign(sign) => match decide_sign(snapshot, sign, now) {
            Ok(decision) => decision,
            Err(code) => Decision::Deny(code),
        },
    }
}

fn decide_sign(s: &Snapshot<'_>, r: &SignRequest<'_>, now: i64) -> Result<Decision, DenyCode> {
    let app = s.application;
    if !app.has_role(AppRole::Signer) {
        return Err(DenyCode::NotSigner);
    }
    let seal = s
        .seal
        .filter(|seal| seal.id == r.seal)
        .ok_or(DenyCode::SealNotFound)?;
    if !app.seals.iter().any(|id| id == r.seal) {
        return Err(DenyCode::SealNotGranted);
    }
    if let Some(code) = seal.signing_refusal() {
        return Err(code);
    }
    match (&app.templates, r.template) {
        (None, _) => {}
        (Some(_), None) => return Err(DenyCode::TemplateRequired),
        (Some(allowed), Some(t)) if allowed.iter().any(|a| a == t) => {}
        (Some(_), Some(_)) => return Err(DenyCode::TemplateNotGranted),
    }
    if r.page_seal && !s.org.is_some_and(|o| o.enterprise.features.page_seal) {
        return Err(DenyCode::PageSealDisabled);
    }
    let Some(employee) = r.employee else {
        return Ok(Decision::Allow(Permit::Application));
    };
    if !app.acts_for_employees {
        return Err(DenyCode::CannotActForEmployees);
    }
    let org = s.org.ok_or(DenyCode::EmployeeNotFound)?;
    let e = org.active_employee(employee)?;
    if e.has_signing_password && !r.password_confirmed {
        return Err(DenyCode::SigningPasswordRequired);
    }
    if seal.is_holder(employee) {
        return Ok(Decision::Allow(Permit::Holder));
    }
    if seal.kind == SealType::LegalRepresentative {
        return Err(DenyCode::LegalRepresentativeOnly);
    }
    let doc = r.document.ok_or(DenyCode::DocumentRequired)?;
    let covering: Vec<&Grant> = s
        .grants
        .iter()
        .filter(|g| g.covers(&seal.id, employee, doc.id))
        .collect();
    if let Some(usable) = covering
        .iter()
        .find(|g| g.refusal(doc.sha256, now).is_none())
    {
        return Ok(Decision::Allow(Permit::Grant {
            id: usable.id.clone(),
        }));
    }
    let pending = s.approvals.iter().find(|a| {
        a.submitter == employee
            && a.is_pending(now)
            && matches!(&a.subject, Subject::SealUse(u)
                if u.seal == seal.id && u.document_id == doc.id && u.document_sha256 == doc.sha256)
    });
    if let Some(p) = pending {
        return Ok(Decision::NeedsApproval {
            scenario: Scenario::SealUse,
            pending: Some(p.id.clone()),
        });
    }
    // A grant for this document that cannot be used says why (used up, expired, another
    // version of the document); the newest one speaks.
    if let Some(code) = covering.last().and_then(|g| g.refusal(doc.sha256, now)) {
        return Err(code);
    }
    Ok(Decision::NeedsApproval {
        scenario: Scenario::SealUse,
        pending: None,
    })
}
