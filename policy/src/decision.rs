//! The decision on a request: allow (saying what permits it, so that a grant can be
//! consumed with the audit record), needs approval, or deny with a stable code.

use crate::application::{AppRole, Application};
use crate::batch::BatchConfirmation;
use crate::flow::{ApprovalRequest, ApprovalState, Scenario, Subject};
use crate::grant::Grant;
use crate::limits::Usage;
use crate::org::Org;
use crate::partner::PartnerAuthorization;
use crate::seal::{Seal, SealType};
use crate::template::Template;
use crate::DenyCode;
use serde::Serialize;

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
    /// A page seal (骑缝章) across the pages' edges (a page-seal signing area is one too).
    pub page_seal: bool,
    /// The document is the named template's PDF or a later revision of it (it begins with
    /// the template PDF's bytes).
    pub from_template: bool,
    /// The request is confirmed by a batch-sign confirmation (the snapshot's `batch`)
    /// rather than by a signing password.
    pub batch_confirmed: bool,
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
    /// Approval requests: at least the acting employee's pending seal-use applications for
    /// this seal, and the document's contract approvals.
    pub approvals: &'a [ApprovalRequest],
    /// What the seal and the enterprise's quota have been used for so far.
    pub usage: Usage,
    /// The template the request names, if it is registered.
    pub template: Option<&'a Template>,
    /// The batch-sign confirmation the request presents, if it exists.
    pub batch: Option<&'a BatchConfirmation>,
    /// The partner authorizations of the application's partner enterprise, if it is one's.
    pub partners: &'a [PartnerAuthorization],
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
            usage: Usage::default(),
            template: None,
            batch: None,
            partners: &[],
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
    /// An auto-sign template bound to this seal (no employee acts).
    AutoSign { template: String },
    /// A partner enterprise's authorization (its application's request).
    Partner { authorization: String },
    /// A group member's seal, within the scope the member granted the parent (its credit
    /// code).
    Group { member: String },
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
            Decision::NeedsApproval {
                scenario: Scenario::ContractApproval,
                ..
            } => Some(DenyCode::ContractApprovalRequired),
            Decision::NeedsApproval { .. } => Some(DenyCode::SealUseApprovalRequired),
            Decision::Deny(code) => Some(*code),
        }
    }
}

/// A rule a decision evaluates, in the order they are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    ApplicationEnabled,
    AdminRole,
    SignerRole,
    SealExists,
    SealGranted,
    /// Status, and a practice seal's authorization.
    SealSigns,
    /// A group member's seal: a current member, a parent employee with a group role, within
    /// the member's scope.
    GroupScope,
    TemplateAllowed,
    /// Once the enterprise is set up: the named template is registered and enabled.
    TemplateUsable,
    /// The signing area is the template's and fits the seal's type.
    SigningArea,
    /// The document is the template's PDF (or a later revision of it).
    TemplateDocument,
    PageSealEnabled,
    /// With forced contract approval on, the document's approved contract approval.
    ContractApproved,
    /// The seal's allowed weekdays and hours.
    TimeWindow,
    /// The seal's caps per day and per month.
    SealCaps,
    /// The enterprise's contract quota.
    ContractQuota,
    /// The enterprise's auto-sign switch (a request no employee acts for).
    AutoSignEnabled,
    /// An auto-sign template bound to this seal.
    AutoSignTemplate,
    /// The template's authorizer still holds the auto-sign authorization.
    AutoSignAuthorization,
    /// A partner's application: an authorization of its enterprise covering this seal (and
    /// template), unexpired and unrevoked.
    PartnerAuthorization,
    ActsForEmployees,
    EmployeeActive,
    /// A batch-sign confirmation presented instead of the signing password.
    BatchConfirmation,
    SigningPassword,
    Holder,
    LegalRepresentativeSeal,
    DocumentNamed,
    SealUseGrant,
}

/// What one rule said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "code")]
pub enum Outcome {
    Passed,
    Failed(DenyCode),
    /// The rule does not concern this request (no template restriction, no employee…).
    NotApplicable,
    /// An earlier rule's failure leaves nothing to evaluate this one on.
    NotEvaluated,
    NeedsApproval,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluated {
    pub rule: Rule,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// A decision and every rule evaluated on the way, in order. The decision is the first
/// failed rule's, else needs-approval if a rule said so, else allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    pub rules: Vec<Evaluated>,
}

#[derive(Default)]
struct Trace {
    rules: Vec<Evaluated>,
    /// The first approval the request waits for, and the request already on its way.
    waits: Option<(Scenario, Option<String>)>,
}

impl Trace {
    fn record(&mut self, rule: Rule, outcome: Outcome) {
        self.rules.push(Evaluated { rule, outcome });
    }

    /// The rule says the request waits for `scenario` (with `pending` on its way).
    fn wait(&mut self, rule: Rule, scenario: Scenario, pending: Option<String>) {
        self.waits.get_or_insert((scenario, pending));
        self.record(rule, Outcome::NeedsApproval);
    }

    fn check(&mut self, rule: Rule, ok: bool, code: DenyCode) {
        self.record(
            rule,
            if ok {
                Outcome::Passed
            } else {
                Outcome::Failed(code)
            },
        );
    }

    fn result(&mut self, rule: Rule, r: Result<(), DenyCode>) {
        self.record(rule, r.map_or_else(Outcome::Failed, |()| Outcome::Passed));
    }

    /// The rules not reached, each with `outcome`.
    fn rest(&mut self, rules: &[Rule], outcome: Outcome) {
        for rule in rules {
            self.record(*rule, outcome.clone());
        }
    }

    fn finish(self, permit: Permit) -> Explanation {
        let failed = self.rules.iter().find_map(|e| match e.outcome {
            Outcome::Failed(code) => Some(code),
            _ => None,
        });
        let decision = match (failed, self.waits) {
            (Some(code), _) => Decision::Deny(code),
            (None, Some((scenario, pending))) => Decision::NeedsApproval { scenario, pending },
            (None, None) => Decision::Allow(permit),
        };
        Explanation {
            decision,
            rules: self.rules,
        }
    }
}

/// Decides `request` against `snapshot` at `now` (unix seconds).
pub fn decide(snapshot: &Snapshot<'_>, request: &Request<'_>, now: i64) -> Decision {
    explain(snapshot, request, now).decision
}

/// The decision [`decide`] makes, with every rule it evaluated and what each said. Nothing is
/// consumed: a grant that would allow the signature is named, not used.
pub fn explain(snapshot: &Snapshot<'_>, request: &Request<'_>, now: i64) -> Explanation {
    let app = snapshot.application;
    let mut t = Trace::default();
    t.check(
        Rule::ApplicationEnabled,
        app.enabled,
        DenyCode::ApplicationDisabled,
    );
    match request {
        Request::Administer => {
            t.check(
                Rule::AdminRole,
                app.has_role(AppRole::Admin),
                DenyCode::NotAdmin,
            );
            t.finish(Permit::Application)
        }
        Request::ActFor { employee } => {
            let may = app.acts_for_employees || app.has_role(AppRole::Admin);
            t.check(Rule::ActsForEmployees, may, DenyCode::CannotActForEmployees);
            let active = match snapshot.org {
                Some(org) => org.active_employee(employee).map(|_| ()),
                None => Err(DenyCode::EmployeeNotFound),
            };
            t.result(Rule::EmployeeActive, active);
            t.finish(Permit::Application)
        }
        Request::Sign(sign) => explain_sign(t, snapshot, sign, now),
    }
}

const AUTO_SIGN_RULES: &[Rule] = &[
    Rule::AutoSignEnabled,
    Rule::AutoSignTemplate,
    Rule::AutoSignAuthorization,
    Rule::PartnerAuthorization,
];

const EMPLOYEE_RULES: &[Rule] = &[
    Rule::ActsForEmployees,
    Rule::EmployeeActive,
    Rule::BatchConfirmation,
    Rule::SigningPassword,
    Rule::Holder,
    Rule::LegalRepresentativeSeal,
    Rule::DocumentNamed,
    Rule::SealUseGrant,
];

fn explain_sign(mut t: Trace, s: &Snapshot<'_>, r: &SignRequest<'_>, now: i64) -> Explanation {
    use Outcome::*;
    let app = s.application;
    t.check(
        Rule::SignerRole,
        app.has_role(AppRole::Signer),
        DenyCode::NotSigner,
    );
    let seal = s.seal.filter(|seal| seal.id == r.seal);
    t.check(Rule::SealExists, seal.is_some(), DenyCode::SealNotFound);
    t.check(
        Rule::SealGranted,
        app.seals.iter().any(|id| id == r.seal),
        DenyCode::SealNotGranted,
    );
    t.record(
        Rule::SealSigns,
        match seal {
            None => NotEvaluated,
            Some(seal) => seal.signing_refusal().map_or(Passed, Failed),
        },
    );
    t.record(
        Rule::GroupScope,
        match (seal, s.org) {
            (Some(seal), Some(org)) if seal.enterprise.is_some() => {
                crate::group::signing_refusal(org, seal, r.employee, r.template)
                    .map_or(Passed, Failed)
            }
            (Some(seal), None) if seal.enterprise.is_some() => {
                Failed(DenyCode::GroupMemberNotFound)
            }
            (None, _) => NotEvaluated,
            _ => NotApplicable,
        },
    );
    t.record(
        Rule::TemplateAllowed,
        match (&app.templates, r.template) {
            (None, _) => NotApplicable,
            (Some(_), None) => Failed(DenyCode::TemplateRequired),
            (Some(allowed), Some(t)) if allowed.iter().any(|a| a == t) => Passed,
            (Some(_), Some(_)) => Failed(DenyCode::TemplateNotGranted),
        },
    );
    let template = templates(&mut t, s, r, seal);
    let page_seal = r.page_seal
        || template
            .zip(r.area)
            .and_then(|(t, a)| t.area(a))
            .is_some_and(|a| a.page_seal);
    t.record(
        Rule::PageSealEnabled,
        if !page_seal {
            NotApplicable
        } else if s.org.is_some_and(|o| o.enterprise.features.page_seal) {
            Passed
        } else {
            Failed(DenyCode::PageSealDisabled)
        },
    );
    contract_approval(&mut t, s, r, template, now);
    limits(&mut t, s, seal, now);
    let Some(employee) = r.employee else {
        return auto_sign(t, s, r, template, now);
    };
    t.rest(AUTO_SIGN_RULES, NotApplicable);
    t.check(
        Rule::ActsForEmployees,
        app.acts_for_employees,
        DenyCode::CannotActForEmployees,
    );
    let active = match s.org {
        Some(org) => org.active_employee(employee),
        None => Err(DenyCode::EmployeeNotFound),
    };
    t.record(Rule::EmployeeActive, active.map_or_else(Failed, |_| Passed));
    // Many documents sealed with one confirmation: while the employee holds the batch-sign
    // authorization, for their own confirmation, within its count and lifetime.
    let batch = match (r.batch_confirmed, active) {
        (false, _) => NotApplicable,
        (true, Err(_)) => NotEvaluated,
        (true, Ok(e)) if !e.batch_sign_authorized => Failed(DenyCode::BatchSignNotAuthorized),
        (true, Ok(_)) => match s.batch {
            None => Failed(DenyCode::BatchConfirmationNotFound),
            Some(b) => b.refusal(employee, r.seal, now).map_or(Passed, Failed),
        },
    };
    let batch_confirmed = batch == Passed;
    t.record(Rule::BatchConfirmation, batch);
    // Sealing by hand is confirmed with the employee's own signing password (or was, for a
    // whole batch).
    t.record(
        Rule::SigningPassword,
        match active {
            Err(_) => NotEvaluated,
            Ok(_) if r.batch_confirmed && !batch_confirmed => NotEvaluated,
            Ok(_) if batch_confirmed => Passed,
            Ok(e) if !e.has_signing_password => Failed(DenyCode::SigningPasswordNotSet),
            Ok(_) if r.password_confirmed => Passed,
            Ok(_) => Failed(DenyCode::SigningPasswordRequired),
        },
    );
    let Some(seal) = seal else {
        t.rest(&EMPLOYEE_RULES[4..], NotEvaluated);
        return t.finish(Permit::Holder);
    };
    if let Some(member) = &seal.enterprise {
        // A member's seal: the group scope (above) stands in for holding it.
        t.rest(&EMPLOYEE_RULES[4..], NotApplicable);
        return t.finish(Permit::Group {
            member: member.as_str().to_owned(),
        });
    }
    if seal.is_holder(employee) {
        t.record(Rule::Holder, Passed);
        t.rest(&EMPLOYEE_RULES[5..], NotApplicable);
        return t.finish(Permit::Holder);
    }
    // Not a holder: a seal-use grant for this document is what could allow it.
    t.record(Rule::Holder, NotApplicable);
    t.check(
        Rule::LegalRepresentativeSeal,
        seal.kind != SealType::LegalRepresentative,
        DenyCode::LegalRepresentativeOnly,
    );
    t.check(
        Rule::DocumentNamed,
        r.document.is_some(),
        DenyCode::DocumentRequired,
    );
    let Some(doc) = r.document else {
        t.record(Rule::SealUseGrant, NotEvaluated);
        return t.finish(Permit::Holder);
    };
    let covering: Vec<&Grant> = s
        .grants
        .iter()
        .filter(|g| g.covers(&seal.id, employee, doc.id))
        .collect();
    if let Some(usable) = covering
        .iter()
        .find(|g| g.refusal(doc.sha256, now).is_none())
    {
        t.record(Rule::SealUseGrant, Passed);
        return t.finish(Permit::Grant {
            id: usable.id.clone(),
        });
    }
    let pending = s.approvals.iter().find(|a| {
        a.submitter == employee
            && a.is_pending(now)
            && matches!(&a.subject, Subject::SealUse(u)
                if u.seal == seal.id && u.document_id == doc.id && u.document_sha256 == doc.sha256)
    });
    // A pending application answers "needs approval"; else a grant for this document that
    // cannot be used says why (used up, expired, another version), the newest one speaking.
    match (
        pending,
        covering.last().and_then(|g| g.refusal(doc.sha256, now)),
    ) {
        (Some(p), _) => t.wait(Rule::SealUseGrant, Scenario::SealUse, Some(p.id.clone())),
        (None, Some(code)) => t.record(Rule::SealUseGrant, Failed(code)),
        (None, None) => t.wait(Rule::SealUseGrant, Scenario::SealUse, None),
    }
    t.finish(Permit::Holder)
}

/// The seal's time windows and caps, and the enterprise's contract quota (which counts a
/// document at its first seal). Checked here; consumed with the audit record.
fn limits(t: &mut Trace, s: &Snapshot<'_>, seal: Option<&Seal>, now: i64) {
    let Some(org) = s.org else {
        t.rest(
            &[Rule::TimeWindow, Rule::SealCaps, Rule::ContractQuota],
            Outcome::NotApplicable,
        );
        return;
    };
    let result = |r: Result<(), DenyCode>| r.map_or_else(Outcome::Failed, |()| Outcome::Passed);
    match seal {
        None => t.rest(&[Rule::TimeWindow, Rule::SealCaps], Outcome::NotEvaluated),
        Some(seal) if seal.limits.is_empty() => {
            t.rest(&[Rule::TimeWindow, Rule::SealCaps], Outcome::NotApplicable)
        }
        Some(seal) => {
            let at = crate::limits::local_time(now, org.enterprise.utc_offset_minutes);
            t.record(
                Rule::TimeWindow,
                result(crate::limits::check_window(&seal.limits, at)),
            );
            t.record(
                Rule::SealCaps,
                result(crate::limits::check_caps(&seal.limits, &s.usage)),
            );
        }
    }
    let member = seal
        .and_then(|seal| seal.enterprise.as_ref())
        .and_then(|code| org.member(code.as_str()));
    t.record(
        Rule::ContractQuota,
        match (member, org.enterprise.contract_quota) {
            // A member's contract counts against its own quota, then (if it draws on it) the
            // parent's pool.
            (Some(m), quota) if m.contract_quota.is_some() => {
                if s.usage.document_counted {
                    Outcome::Passed
                } else {
                    let u = &s.usage;
                    let charge = crate::group::quota_charge(
                        m,
                        u.member_contracts_used,
                        quota,
                        u.contracts_used,
                    );
                    result(charge.map(|_| ()))
                }
            }
            (Some(_), _) | (None, None) => Outcome::NotApplicable,
            (None, quota) => result(crate::limits::check_quota(quota, &s.usage)),
        },
    );
}

/// Once the enterprise is set up, a named template must be registered and enabled, the
/// signing area its own and fit for the seal, and the document the template's. (Before, a
/// template id is only a label an application's restriction matches.) Returns the template.
fn templates<'s>(
    t: &mut Trace,
    s: &Snapshot<'s>,
    r: &SignRequest<'_>,
    seal: Option<&Seal>,
) -> Option<&'s Template> {
    use Outcome::*;
    let Some(id) = r.template.filter(|_| s.org.is_some()) else {
        // An auto-sign request must name its template (its own rule says so).
        let auto = s.org.is_some() && r.employee.is_none() && s.application.partner.is_none();
        t.rest(
            &[
                Rule::TemplateUsable,
                Rule::SigningArea,
                Rule::TemplateDocument,
            ],
            if auto { NotEvaluated } else { NotApplicable },
        );
        return None;
    };
    let template = s.template.filter(|tpl| tpl.id == id);
    t.record(
        Rule::TemplateUsable,
        match template {
            None => Failed(DenyCode::TemplateNotFound),
            Some(tpl) if !tpl.enabled => Failed(DenyCode::TemplateDisabled),
            Some(_) => Passed,
        },
    );
    let Some(template) = template else {
        t.rest(&[Rule::SigningArea, Rule::TemplateDocument], NotEvaluated);
        return None;
    };
    t.record(
        Rule::SigningArea,
        match (r.area, seal) {
            (None, _) if r.employee.is_none() => Failed(DenyCode::SigningAreaRequired),
            (None, _) => NotApplicable,
            (Some(area), None) if template.area(area).is_some() => NotEvaluated,
            (Some(_), None) => Failed(DenyCode::SigningAreaNotFound),
            (Some(area), Some(seal)) => template.area_refusal(area, seal).map_or(Passed, Failed),
        },
    );
    t.check(
        Rule::TemplateDocument,
        r.from_template,
        DenyCode::DocumentNotFromTemplate,
    );
    Some(template)
}

/// A request no employee acts for. Before the enterprise is set up it is the application's
/// own (its seal and template restrictions decided it); after, it is an auto-sign request:
/// auto-sign switched on, an auto-sign template bound to this seal, whose authorizer still
/// holds the auto-sign authorization.
fn auto_sign(
    mut t: Trace,
    s: &Snapshot<'_>,
    r: &SignRequest<'_>,
    template: Option<&Template>,
    now: i64,
) -> Explanation {
    use Outcome::*;
    let Some(org) = s.org else {
        t.rest(AUTO_SIGN_RULES, NotApplicable);
        t.rest(EMPLOYEE_RULES, NotApplicable);
        return t.finish(Permit::Application);
    };
    t.check(
        Rule::AutoSignEnabled,
        org.enterprise.features.auto_sign,
        DenyCode::AutoSignDisabled,
    );
    if let Some(partner) = &s.application.partner {
        // A partner's request: its enterprise's authorization, not an auto-sign template.
        t.rest(
            &[Rule::AutoSignTemplate, Rule::AutoSignAuthorization],
            NotApplicable,
        );
        let theirs: Vec<&PartnerAuthorization> = s
            .partners
            .iter()
            .filter(|a| a.partner == *partner)
            .collect();
        let usable = theirs
            .iter()
            .find(|a| a.refusal(r.seal, r.template, now).is_none());
        let Some(usable) = usable else {
            // The newest of its authorizations says why; none at all is its own code.
            let code = theirs
                .last()
                .and_then(|a| a.refusal(r.seal, r.template, now))
                .unwrap_or(DenyCode::PartnerNotAuthorized);
            t.record(Rule::PartnerAuthorization, Failed(code));
            t.rest(EMPLOYEE_RULES, NotApplicable);
            return t.finish(Permit::Application);
        };
        t.record(Rule::PartnerAuthorization, Passed);
        t.rest(EMPLOYEE_RULES, NotApplicable);
        return t.finish(Permit::Partner {
            authorization: usable.id.clone(),
        });
    }
    let (bound, authorizer) = match (r.template, template) {
        (None, _) => (Failed(DenyCode::AutoSignTemplateRequired), NotEvaluated),
        (Some(_), None) => (NotEvaluated, NotEvaluated),
        (Some(_), Some(tpl)) => match &tpl.auto_sign {
            None => (Failed(DenyCode::AutoSignTemplateRequired), NotEvaluated),
            Some(a) if a.seal != r.seal => (Failed(DenyCode::AutoSignSealMismatch), NotEvaluated),
            Some(a) => (
                Passed,
                match org.active_employee(&a.authorized_by) {
                    Ok(e) if e.auto_sign_authorized => Passed,
                    _ => Failed(DenyCode::AutoSignNotAuthorized),
                },
            ),
        },
    };
    t.record(Rule::AutoSignTemplate, bound);
    t.record(Rule::AutoSignAuthorization, authorizer);
    t.record(Rule::PartnerAuthorization, NotApplicable);
    t.rest(EMPLOYEE_RULES, NotApplicable);
    let permit = Permit::AutoSign {
        template: r.template.unwrap_or_default().to_owned(),
    };
    t.finish(permit)
}

/// With forced contract approval on (or for a template that requires it), no seal of the
/// enterprise goes on a document (this version of it) without an approved contract approval.
fn contract_approval(
    t: &mut Trace,
    s: &Snapshot<'_>,
    r: &SignRequest<'_>,
    template: Option<&Template>,
    now: i64,
) {
    let forced = s
        .org
        .is_some_and(|o| o.enterprise.features.forced_contract_approval);
    if !forced && !template.is_some_and(|t| t.requires_contract_approval) {
        t.record(Rule::ContractApproved, Outcome::NotApplicable);
        return;
    }
    let Some(doc) = r.document else {
        t.record(
            Rule::ContractApproved,
            Outcome::Failed(DenyCode::DocumentRequired),
        );
        return;
    };
    let for_this = |a: &&ApprovalRequest| {
        matches!(&a.subject, Subject::ContractApproval { document_id, document_sha256 }
            if document_id == doc.id && document_sha256 == doc.sha256)
    };
    let mut approvals = s.approvals.iter().filter(for_this);
    if approvals
        .clone()
        .any(|a| a.state == ApprovalState::Approved)
    {
        t.record(Rule::ContractApproved, Outcome::Passed);
    } else if let Some(p) = approvals.find(|a| a.is_pending(now)) {
        t.wait(
            Rule::ContractApproved,
            Scenario::ContractApproval,
            Some(p.id.clone()),
        );
    } else {
        t.record(
            Rule::ContractApproved,
            Outcome::Failed(DenyCode::ContractApprovalRequired),
        );
    }
}
