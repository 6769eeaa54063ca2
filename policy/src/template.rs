//! Templates: a document with its signing areas and fill-in fields, enabled or not, and —
//! for an auto-sign template — the one seal it is sealed with unattended. The template PDF
//! itself is the daemon's to keep; policy knows its SHA-256 and length.

use serde::{Deserialize, Serialize};

use crate::enterprise::{check_id, check_name};
use crate::org::{Org, Target};
use crate::role::{Permission, SystemRole};
use crate::seal::{Seal, SealType};
use crate::DenyCode;

/// At most this many signing areas and fill-in fields per template.
pub const MAX_AREAS: usize = 50;
pub const MAX_FIELDS: usize = 200;

/// Which page a signing area is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", untagged)]
pub enum AreaPage {
    /// A page, from 1.
    Page(u32),
    /// `"all"`: every page (the same position on each).
    All(AllPages),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllPages {
    All,
}

/// Where one party's seal goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningArea {
    pub id: String,
    /// The party that seals here ("我方", "party_a", "employee"…).
    pub party: String,
    /// The seal type this area requires, if any.
    #[serde(default)]
    pub seal_type: Option<SealType>,
    pub page: AreaPage,
    /// The seal's position and width in millimetres: x from the left edge and y from the top
    /// edge of the page as displayed (as in a sign request's query).
    pub x: f64,
    pub y: f64,
    pub width: f64,
    /// A page seal (骑缝章) across the pages' edges rather than a seal on one page.
    #[serde(default)]
    pub page_seal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    Number,
    Date,
    Phone,
    /// A resident identity card number (18 characters with its check character).
    IdNumber,
}

/// A field filled in per document (per row of a batch job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillField {
    pub name: String,
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
}

/// What makes a template an auto-sign template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoSign {
    /// The one seal of this enterprise it is sealed with.
    pub seal: String,
    /// The employee holding the auto-sign authorization who made it an auto-sign template;
    /// it signs only while they are active and still hold the authorization.
    pub authorized_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// Batch jobs may use it.
    pub allow_batch: bool,
    /// Documents from it need an approved contract approval before any seal is applied.
    pub requires_contract_approval: bool,
    pub areas: Vec<SigningArea>,
    pub fields: Vec<FillField>,
    /// SHA-256 (lowercase hex) and length of the template PDF.
    pub pdf_sha256: String,
    pub pdf_len: u64,
    pub auto_sign: Option<AutoSign>,
    pub created_by: String,
}

impl Template {
    pub fn area(&self, id: &str) -> Option<&SigningArea> {
        self.areas.iter().find(|a| a.id == id)
    }

    /// The seal bound to an auto-sign template.
    pub fn auto_sign_seal(&self) -> Option<&str> {
        self.auto_sign.as_ref().map(|a| a.seal.as_str())
    }

    /// Its shape on its own: ids, names, areas and fields.
    pub fn validate(&self) -> Result<(), DenyCode> {
        let bad = DenyCode::InvalidTemplate;
        check_id(&self.id).map_err(|_| bad)?;
        check_name(&self.name).map_err(|_| bad)?;
        crate::grant::check_sha256(&self.pdf_sha256).map_err(|_| bad)?;
        if self.pdf_len == 0 || self.areas.is_empty() || self.areas.len() > MAX_AREAS {
            return Err(bad);
        }
        if self.fields.len() > MAX_FIELDS {
            return Err(bad);
        }
        for (i, a) in self.areas.iter().enumerate() {
            check_id(&a.id).map_err(|_| bad)?;
            check_name(&a.party).map_err(|_| bad)?;
            let mm = |v: f64, lo: f64, hi: f64| v.is_finite() && (lo..=hi).contains(&v);
            if !mm(a.x, 0.0, 5000.0) || !mm(a.y, 0.0, 5000.0) || !mm(a.width, 1.0, 1000.0) {
                return Err(bad);
            }
            if a.page == AreaPage::Page(0) || self.areas[..i].iter().any(|b| b.id == a.id) {
                return Err(bad);
            }
            // Every page is where a page seal goes; a seal on one page names it.
            if matches!(a.page, AreaPage::All(_)) != a.page_seal {
                return Err(bad);
            }
        }
        for (i, f) in self.fields.iter().enumerate() {
            check_name(&f.name).map_err(|_| bad)?;
            if self.fields[..i].iter().any(|g| g.name == f.name) {
                return Err(bad);
            }
        }
        Ok(())
    }

    /// Why `seal` may not go into `area`, if it may not.
    pub fn area_refusal(&self, area: &str, seal: &Seal) -> Option<DenyCode> {
        match self.area(area) {
            None => Some(DenyCode::SigningAreaNotFound),
            Some(a) if a.seal_type.is_some_and(|t| t != seal.kind) => {
                Some(DenyCode::SealTypeMismatch)
            }
            Some(_) => None,
        }
    }
}

/// The super administrator or the legal representative: who switches auto-sign and grants
/// the enterprise-wide authorizations (auto-sign, batch signing).
pub fn is_principal(org: &Org, actor: &str) -> Result<bool, DenyCode> {
    let e = org.active_employee(actor)?;
    Ok(org.has_role(e, SystemRole::SuperAdministrator)
        || org.has_role(e, SystemRole::LegalRepresentative))
}

/// Creates or changes `template` (the stored one is `existing`). Template management is
/// needed for any template; making one auto-sign (or changing its seal) needs the enterprise's
/// auto-sign switch on and the actor's auto-sign authorization, and records them as its
/// authorizer. An auto-sign template's seal is an active seal of this enterprise that fits
/// every area's required type.
pub fn put(
    org: &Org,
    actor: &str,
    existing: Option<&Template>,
    seals: &[Seal],
    template: &Template,
) -> Result<Template, DenyCode> {
    let who = org.active_employee(actor)?;
    if !org.can(who, Permission::TemplateManagement, Target::ENTERPRISE) {
        return Err(DenyCode::PermissionDenied);
    }
    template.validate()?;
    let mut t = template.clone();
    t.created_by = existing.map_or_else(|| actor.to_owned(), |e| e.created_by.clone());
    let Some(auto) = &template.auto_sign else {
        return Ok(t);
    };
    // Another document, batch jobs allowed, or contract approval dropped changes what gets
    // sealed unattended: that needs the authorization, as another seal does.
    let widened = existing.is_some_and(|e| {
        e.pdf_sha256 != t.pdf_sha256
            || (t.allow_batch && !e.allow_batch)
            || (e.requires_contract_approval && !t.requires_contract_approval)
    });
    let unchanged = !widened
        && existing
            .and_then(|e| e.auto_sign.as_ref())
            .is_some_and(|a| a.seal == auto.seal);
    if unchanged {
        // Editing areas, fields or the name keeps the authorizer; the seal is checked again
        // below.
        t.auto_sign = existing.and_then(|e| e.auto_sign.clone());
    } else {
        authorize_auto_sign(org, actor)?;
        t.auto_sign = Some(AutoSign {
            seal: auto.seal.clone(),
            authorized_by: actor.to_owned(),
        });
    }
    let seal = seals
        .iter()
        .find(|s| s.id == auto.seal)
        .ok_or(DenyCode::SealNotFound)?;
    if let Some(code) = seal.unattended_refusal() {
        return Err(code);
    }
    if t.areas
        .iter()
        .any(|a| a.seal_type.is_some_and(|k| k != seal.kind))
    {
        return Err(DenyCode::SealTypeMismatch);
    }
    Ok(t)
}

/// `actor` may create auto-sign templates and start auto-sign jobs now.
pub fn authorize_auto_sign(org: &Org, actor: &str) -> Result<(), DenyCode> {
    let e = org.active_employee(actor)?;
    if !org.enterprise.features.auto_sign {
        return Err(DenyCode::AutoSignDisabled);
    }
    if !e.auto_sign_authorized {
        return Err(DenyCode::AutoSignNotAuthorized);
    }
    Ok(())
}

/// May `employee` start a batch job of `template`? They hold the auto-sign authorization (with
/// auto-sign switched on), and the template is an enabled auto-sign template that allows
/// batch jobs. Each row is then decided as an auto-sign request of the template.
pub fn may_start_job(org: &Org, employee: &str, template: &Template) -> Result<(), DenyCode> {
    authorize_auto_sign(org, employee)?;
    if !template.enabled {
        return Err(DenyCode::TemplateDisabled);
    }
    if template.auto_sign.is_none() {
        return Err(DenyCode::AutoSignTemplateRequired);
    }
    if !template.allow_batch {
        return Err(DenyCode::BatchNotAllowed);
    }
    Ok(())
}

/// Enables or disables a template (template management).
pub fn set_enabled(
    org: &Org,
    actor: &str,
    template: &Template,
    enabled: bool,
) -> Result<Template, DenyCode> {
    let who = org.active_employee(actor)?;
    if !org.can(who, Permission::TemplateManagement, Target::ENTERPRISE) {
        return Err(DenyCode::PermissionDenied);
    }
    Ok(Template {
        enabled,
        ..template.clone()
    })
}

/// Deletes a template (template management): it signs nothing from then on.
pub fn delete(org: &Org, actor: &str) -> Result<(), DenyCode> {
    let who = org.active_employee(actor)?;
    if !org.can(who, Permission::TemplateManagement, Target::ENTERPRISE) {
        return Err(DenyCode::PermissionDenied);
    }
    Ok(())
}

/// Which authorization an enterprise principal grants or revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authorization {
    /// May create auto-sign templates and start auto-sign jobs.
    AutoSign,
    /// May seal many documents with one signing-password confirmation.
    BatchSign,
}

impl Authorization {
    pub fn as_str(self) -> &'static str {
        match self {
            Authorization::AutoSign => "auto_sign",
            Authorization::BatchSign => "batch_sign",
        }
    }
}

/// The super administrator or the legal representative grants (or revokes) `what` to an
/// active employee. Revoking takes effect on the very next request: an auto-sign template
/// its holder authorized stops signing.
pub fn set_authorization(
    org: &Org,
    actor: &str,
    employee: &str,
    what: Authorization,
    granted: bool,
) -> Result<Org, DenyCode> {
    if !is_principal(org, actor)? {
        return Err(DenyCode::AuthorizationReserved);
    }
    let mut changed = org.clone();
    let e = changed
        .employee_mut(employee)
        .ok_or(DenyCode::EmployeeNotFound)?;
    if !e.is_active() && granted {
        return Err(DenyCode::EmployeeResigned);
    }
    match what {
        Authorization::AutoSign => e.auto_sign_authorized = granted,
        Authorization::BatchSign => e.batch_sign_authorized = granted,
    }
    Ok(changed)
}
