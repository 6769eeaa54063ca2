//! Seal-use applications (用印申请) and the grants their approval yields: the right to use
//! one seal for one document (by id and SHA-256), N times, until a deadline.

use serde::{Deserialize, Serialize};

use crate::flow::{ApprovalRequest, ApprovalState, Flow, SealUse, Subject, Submission};
use crate::org::Org;
use crate::seal::{Seal, SealType};
use crate::DenyCode;

/// A grant lasts at most this long (a year and a day).
pub const MAX_VALIDITY: i64 = 366 * 24 * 3600;
pub const MAX_USES: u32 = 1000;

/// A document reference: 1 to 255 printable ASCII characters.
pub fn check_document_id(id: &str) -> Result<(), DenyCode> {
    if id.is_empty() || id.len() > 255 || !id.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(DenyCode::InvalidApplication);
    }
    Ok(())
}

/// 64 lowercase hex digits.
pub fn check_sha256(hex: &str) -> Result<(), DenyCode> {
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(DenyCode::InvalidApplication);
    }
    Ok(())
}

/// Submits `submitter`'s application to use `seal` (which must be able to sign) for a
/// document. A holder needs none; the legal-representative seal is for its holders only.
pub fn apply(
    org: &Org,
    seal: &Seal,
    flow: &Flow,
    submission: Submission<'_>,
    application: SealUse,
    now: i64,
) -> Result<ApprovalRequest, DenyCode> {
    let submitter = submission.submitter;
    org.active_employee(submitter)?;
    if application.seal != seal.id {
        return Err(DenyCode::SealNotFound);
    }
    if let Some(refusal) = seal.signing_refusal() {
        return Err(refusal);
    }
    if seal.is_holder(submitter) {
        return Err(DenyCode::AlreadyHolder);
    }
    if seal.kind == SealType::LegalRepresentative {
        return Err(DenyCode::LegalRepresentativeOnly);
    }
    check_document_id(&application.document_id)?;
    check_sha256(&application.document_sha256)?;
    if application.uses == 0
        || application.uses > MAX_USES
        || application.valid_until <= now
        || application.valid_until > now.saturating_add(MAX_VALIDITY)
    {
        return Err(DenyCode::InvalidApplication);
    }
    ApprovalRequest::submit(org, flow, submission, Subject::SealUse(application), now)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    /// The approved application it comes from.
    pub approval: String,
    pub seal: String,
    pub employee: String,
    pub document_id: String,
    pub document_sha256: String,
    pub uses_left: u32,
    pub valid_until: i64,
}

impl Grant {
    /// The grant of an approved seal-use application.
    pub fn from_approved(request: &ApprovalRequest, id: &str) -> Result<Grant, DenyCode> {
        let Subject::SealUse(u) = &request.subject else {
            return Err(DenyCode::InvalidApplication);
        };
        if request.state != ApprovalState::Approved {
            return Err(DenyCode::NotPending);
        }
        Ok(Grant {
            id: id.to_owned(),
            approval: request.id.clone(),
            seal: u.seal.clone(),
            employee: request.submitter.clone(),
            document_id: u.document_id.clone(),
            document_sha256: u.document_sha256.clone(),
            uses_left: u.uses,
            valid_until: u.valid_until,
        })
    }

    /// Whether it covers `employee` using `seal` on this document.
    pub fn covers(&self, seal: &str, employee: &str, document_id: &str) -> bool {
        self.seal == seal && self.employee == employee && self.document_id == document_id
    }

    /// Why it cannot be used now for a document with hash `sha256`, if it cannot.
    pub fn refusal(&self, sha256: &str, now: i64) -> Option<DenyCode> {
        if self.document_sha256 != sha256 {
            Some(DenyCode::DocumentChanged)
        } else if now >= self.valid_until {
            Some(DenyCode::GrantExpired)
        } else if self.uses_left == 0 {
            Some(DenyCode::GrantUsedUp)
        } else {
            None
        }
    }

    /// Takes one use (the daemon does this in the transaction of the audit record).
    pub fn consume(&mut self, sha256: &str, now: i64) -> Result<(), DenyCode> {
        if let Some(refusal) = self.refusal(sha256, now) {
            return Err(refusal);
        }
        self.uses_left -= 1;
        Ok(())
    }
}
