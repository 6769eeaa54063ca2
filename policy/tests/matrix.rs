//! Every governance rule, with at least one allowed and one refused case each.

mod world;

use seald_policy::flow::{pending_center, SealUse, Submission, Transition};
use seald_policy::*;
use world::*;

/// The inputs of one sign decision; `base()` is alice (a holder) sealing with the contract
/// seal through the OA system.
#[derive(Clone)]
struct Case {
    app: Application,
    org: Org,
    seals: Vec<Seal>,
    grants: Vec<Grant>,
    approvals: Vec<ApprovalRequest>,
    seal: String,
    employee: Option<String>,
    template: Option<String>,
    /// The registered templates.
    templates: Vec<Template>,
    area: Option<String>,
    from_template: bool,
    page_seal: bool,
    document: Option<(String, String)>,
    password_confirmed: bool,
    batch: Option<batch::BatchConfirmation>,
    batch_confirmed: bool,
    partners: Vec<partner::PartnerAuthorization>,
    usage: limits::Usage,
    now: i64,
}

impl Case {
    fn base() -> Case {
        Case {
            app: oa(),
            org: org(),
            seals: seals(),
            grants: vec![],
            approvals: vec![],
            seal: "contract".to_owned(),
            employee: Some("alice".to_owned()),
            template: None,
            templates: templates(),
            area: None,
            from_template: true,
            page_seal: false,
            document: Some((DOC.to_owned(), SHA.to_owned())),
            password_confirmed: true,
            batch: None,
            partners: vec![],
            batch_confirmed: false,
            usage: limits::Usage::default(),
            now: NOW,
        }
    }

    fn decide(&self) -> Decision {
        self.explain().decision
    }

    fn explain(&self) -> Explanation {
        let snapshot = Snapshot {
            application: &self.app,
            org: Some(&self.org),
            seal: self.seals.iter().find(|s| s.id == self.seal),
            grants: &self.grants,
            approvals: &self.approvals,
            usage: self.usage,
            template: self
                .templates
                .iter()
                .find(|t| Some(&t.id) == self.template.as_ref()),
            batch: self.batch.as_ref(),
            partners: &self.partners,
        };
        let request = Request::Sign(SignRequest {
            seal: &self.seal,
            template: self.template.as_deref(),
            area: self.area.as_deref(),
            from_template: self.from_template,
            batch_confirmed: self.batch_confirmed,
            page_seal: self.page_seal,
            employee: self.employee.as_deref(),
            document: self
                .document
                .as_ref()
                .map(|(id, sha)| DocumentRef { id, sha256: sha }),
            password_confirmed: self.password_confirmed,
        });
        explain(&snapshot, &request, self.now)
    }
}

/// An explanation lists every sign rule once, in order, and its decision is the first
/// failed rule's code (else needs-approval when a rule says so, else allow).
fn check_explanation(rule: &str, e: &Explanation) {
    use Rule::*;
    let order = [
        ApplicationEnabled,
        SignerRole,
        SealExists,
        SealGranted,
        SealSigns,
        GroupScope,
        TemplateAllowed,
        TemplateUsable,
        SigningArea,
        TemplateDocument,
        PageSealEnabled,
        ContractApproved,
        TimeWindow,
        SealCaps,
        ContractQuota,
        AutoSignEnabled,
        AutoSignTemplate,
        AutoSignAuthorization,
        PartnerAuthorization,
        ActsForEmployees,
        EmployeeActive,
        BatchConfirmation,
        SigningPassword,
        Holder,
        LegalRepresentativeSeal,
        DocumentNamed,
        SealUseGrant,
    ];
    let listed: Vec<Rule> = e.rules.iter().map(|r| r.rule).collect();
    assert_eq!(listed, order, "{rule}: rules in order");
    let first_failed = e.rules.iter().find_map(|r| match r.outcome {
        Outcome::Failed(code) => Some(code),
        _ => None,
    });
    match (&e.decision, first_failed) {
        (Decision::Deny(code), Some(failed)) => assert_eq!(*code, failed, "{rule}"),
        (Decision::Deny(code), None) => panic!("{rule}: denied {code} with no failed rule"),
        (Decision::NeedsApproval { .. }, None) => assert!(
            e.rules.iter().any(|r| r.outcome == Outcome::NeedsApproval),
            "{rule}"
        ),
        (Decision::Allow(_), None) => {}
        (d, Some(code)) => panic!("{rule}: {d:?} though {code} failed"),
    }
}

fn deny(code: DenyCode) -> Decision {
    Decision::Deny(code)
}

fn grant_permit(id: &str) -> Decision {
    Decision::Allow(Permit::Grant { id: id.to_owned() })
}

const HOLDER: Decision = Decision::Allow(Permit::Holder);

fn needs(pending: Option<&str>) -> Decision {
    Decision::NeedsApproval {
        scenario: Scenario::SealUse,
        pending: pending.map(str::to_owned),
    }
}

fn seal_use_request(org: &Org, submitter: &str, seal: &str) -> ApprovalRequest {
    grant::apply(
        org,
        find(&seals(), seal),
        &Flow::default_for(Scenario::SealUse),
        Submission {
            id: "req-1",
            submitter,
            reason: "签署销售合同",
        },
        seal_use(seal),
        NOW,
    )
    .expect("allowed")
}

type Edit = fn(&mut Case);

/// Local (+08:00) midnight of NOW's day.
const NOW_LOCAL_MIDNIGHT: i64 = NOW - (NOW + 8 * 3600).rem_euclid(86_400);

/// Every day 08:00 to 18:00, at most 2 a day and 20 a month.
fn office_hours() -> limits::SealLimits {
    limits::SealLimits {
        per_day: Some(2),
        per_month: Some(20),
        windows: vec![limits::Window {
            weekdays: (1..=7).collect(),
            from: "08:00".to_owned(),
            to: "18:00".to_owned(),
        }],
    }
}

/// A contract approval of document DOC with `sha`, approved or still pending.
fn contract(org: &Org, id: &str, sha: &str, approved: bool) -> ApprovalRequest {
    let flow = Flow::new(
        Scenario::ContractApproval,
        vec![Node {
            approvers: vec![Approver::Member("sa1".to_owned())],
            mode: SignMode::Or,
        }],
        DAY,
    )
    .expect("flow");
    let sub = Submission {
        id,
        submitter: "bob",
        reason: "",
    };
    let mut r =
        ApprovalRequest::contract_approval(org, &flow, sub, DOC, sha, NOW).expect("submitted");
    if approved {
        r.approve(org, "sa1", NOW, None).expect("approved");
    }
    r
}

#[test]
fn sign_decisions() {
    let rows: Vec<(&str, Edit, Decision)> = vec![
        ("a holder signs", |_| {}, HOLDER),
        (
            "a disabled application never signs",
            |c| c.app.enabled = false,
            deny(DenyCode::ApplicationDisabled),
        ),
        (
            "an application without the signer role does not sign",
            |c| c.app.roles = vec![AppRole::Admin],
            deny(DenyCode::NotSigner),
        ),
        (
            "an unknown seal",
            |c| c.seal = "nope".to_owned(),
            deny(DenyCode::SealNotFound),
        ),
        (
            "a seal the application is not granted",
            |c| c.app.seals.retain(|s| s != "contract"),
            deny(DenyCode::SealNotGranted),
        ),
        (
            "a seal pending review does not sign",
            |c| c.seal = "pending".to_owned(),
            deny(DenyCode::SealPendingReview),
        ),
        (
            "a disabled seal does not sign",
            |c| {
                c.seal = "finance".to_owned();
                c.employee = Some("carol".to_owned())
            },
            deny(DenyCode::SealDisabled),
        ),
        (
            "a re-enabled seal signs again",
            |c| {
                c.seal = "finance".to_owned();
                c.employee = Some("carol".to_owned());
                c.seals[2].status = SealStatus::Active
            },
            HOLDER,
        ),
        (
            "a deleted seal never signs",
            |c| c.seal = "deleted".to_owned(),
            deny(DenyCode::SealDeleted),
        ),
        (
            "a template-restricted application names a template",
            |c| {
                c.app.templates = Some(vec!["nda".to_owned()]);
                c.template = Some("nda".to_owned())
            },
            HOLDER,
        ),
        (
            "a template-restricted application without template",
            |c| c.app.templates = Some(vec!["nda".to_owned()]),
            deny(DenyCode::TemplateRequired),
        ),
        (
            "a template-restricted application with another template",
            |c| {
                c.app.templates = Some(vec!["nda".to_owned()]);
                c.template = Some("loan".to_owned())
            },
            deny(DenyCode::TemplateNotGranted),
        ),
        (
            "page seals when switched on",
            |c| {
                c.page_seal = true;
                c.org.enterprise.features.page_seal = true
            },
            HOLDER,
        ),
        (
            "page seals when switched off",
            |c| c.page_seal = true,
            deny(DenyCode::PageSealDisabled),
        ),
        (
            "the application's own request is an auto-sign request: it needs a template",
            |c| {
                c.app.acts_for_employees = false;
                c.employee = None;
                c.org.enterprise.features.auto_sign = true
            },
            deny(DenyCode::AutoSignTemplateRequired),
        ),
        (
            "an application not registered to act for employees names one",
            |c| c.app.acts_for_employees = false,
            deny(DenyCode::CannotActForEmployees),
        ),
        (
            "an unknown employee",
            |c| c.employee = Some("nobody".to_owned()),
            deny(DenyCode::EmployeeNotFound),
        ),
        (
            "a resigned employee",
            |c| {
                c.employee = Some("gone".to_owned());
                c.seals[1].holders.push("gone".to_owned())
            },
            deny(DenyCode::EmployeeResigned),
        ),
        (
            "a signing password, confirmed",
            |c| {
                c.org
                    .employee_mut("alice")
                    .expect("allowed")
                    .has_signing_password = true;
                c.password_confirmed = true
            },
            HOLDER,
        ),
        (
            "a signing password, not confirmed",
            |c| c.password_confirmed = false,
            deny(DenyCode::SigningPasswordRequired),
        ),
        (
            "no signing password set: sealing by hand waits for one",
            |c| {
                c.org
                    .employee_mut("alice")
                    .expect("allowed")
                    .has_signing_password = false
            },
            deny(DenyCode::SigningPasswordNotSet),
        ),
        (
            "an auto-sign request needs no password",
            |c| {
                auto_sign_case(c);
                c.password_confirmed = false
            },
            auto_sign_permit(),
        ),
        (
            "a non-holder must apply",
            |c| c.employee = Some("bob".to_owned()),
            needs(None),
        ),
        (
            "a non-holder without a document",
            |c| {
                c.employee = Some("bob".to_owned());
                c.document = None
            },
            deny(DenyCode::DocumentRequired),
        ),
        (
            "a non-holder whose application is pending",
            |c| {
                c.employee = Some("bob".to_owned());
                c.approvals = vec![seal_use_request(&c.org, "bob", "contract")]
            },
            needs(Some("req-1")),
        ),
        (
            "a non-holder with a grant",
            |c| {
                c.employee = Some("bob".to_owned());
                c.grants = vec![grant("g1", "bob", "contract", 1, NOW + DAY)]
            },
            grant_permit("g1"),
        ),
        (
            "a grant used up",
            |c| {
                c.employee = Some("bob".to_owned());
                c.grants = vec![grant("g1", "bob", "contract", 0, NOW + DAY)]
            },
            deny(DenyCode::GrantUsedUp),
        ),
        (
            "a grant past its deadline",
            |c| {
                c.employee = Some("bob".to_owned());
                c.grants = vec![grant("g1", "bob", "contract", 1, NOW)]
            },
            deny(DenyCode::GrantExpired),
        ),
        (
            "a grant for another version of the document",
            |c| {
                c.employee = Some("bob".to_owned());
                c.grants = vec![grant("g1", "bob", "contract", 1, NOW + DAY)];
                c.document = Some((DOC.to_owned(), OTHER_SHA.to_owned()))
            },
            deny(DenyCode::DocumentChanged),
        ),
        (
            "a grant for another document is no grant",
            |c| {
                c.employee = Some("bob".to_owned());
                c.grants = vec![grant("g1", "bob", "contract", 1, NOW + DAY)];
                c.document = Some(("other".to_owned(), SHA.to_owned()))
            },
            needs(None),
        ),
        (
            "someone else's grant is no grant",
            |c| {
                c.employee = Some("bob".to_owned());
                c.grants = vec![grant("g1", "carol", "contract", 1, NOW + DAY)]
            },
            needs(None),
        ),
        (
            "a used-up grant and a fresh one",
            |c| {
                c.employee = Some("bob".to_owned());
                c.grants = vec![
                    grant("g1", "bob", "contract", 0, NOW + DAY),
                    grant("g2", "bob", "contract", 1, NOW + DAY),
                ]
            },
            grant_permit("g2"),
        ),
        (
            "the legal representative uses his seal",
            |c| {
                c.seal = "legal-seal".to_owned();
                c.employee = Some("legal".to_owned())
            },
            HOLDER,
        ),
        (
            "anyone else and the legal-representative seal",
            |c| {
                c.seal = "legal-seal".to_owned();
                c.grants = vec![grant("g1", "alice", "legal-seal", 1, NOW + DAY)]
            },
            deny(DenyCode::LegalRepresentativeOnly),
        ),
        (
            "an authorized practice seal",
            |c| {
                c.seal = "practice-ok".to_owned();
                c.employee = Some("carol".to_owned())
            },
            HOLDER,
        ),
        (
            "a practice seal its holder has not authorized",
            |c| {
                c.seal = "practice".to_owned();
                c.employee = Some("carol".to_owned())
            },
            deny(DenyCode::PracticeSealUnauthorized),
        ),
        (
            "forced contract approval: an approved one for this version",
            |c| {
                c.org.enterprise.features.forced_contract_approval = true;
                c.approvals = vec![contract(&c.org, "k1", SHA, true)];
            },
            HOLDER,
        ),
        (
            "forced contract approval: none",
            |c| c.org.enterprise.features.forced_contract_approval = true,
            deny(DenyCode::ContractApprovalRequired),
        ),
        (
            "forced contract approval: approved for another version",
            |c| {
                c.org.enterprise.features.forced_contract_approval = true;
                c.approvals = vec![contract(&c.org, "k1", OTHER_SHA, true)];
            },
            deny(DenyCode::ContractApprovalRequired),
        ),
        (
            "forced contract approval: one pending",
            |c| {
                c.org.enterprise.features.forced_contract_approval = true;
                c.approvals = vec![contract(&c.org, "k1", SHA, false)];
            },
            Decision::NeedsApproval {
                scenario: Scenario::ContractApproval,
                pending: Some("k1".to_owned()),
            },
        ),
        (
            "forced contract approval: no document named",
            |c| {
                c.org.enterprise.features.forced_contract_approval = true;
                c.document = None;
            },
            deny(DenyCode::DocumentRequired),
        ),
        (
            "forced contract approval applies to the application's own requests too",
            |c| {
                c.org.enterprise.features.forced_contract_approval = true;
                c.employee = None;
            },
            deny(DenyCode::ContractApprovalRequired),
        ),
        (
            "inside the seal's time window",
            |c| c.seals[1].limits = office_hours(),
            HOLDER,
        ),
        (
            "outside the seal's time window",
            |c| {
                c.seals[1].limits = office_hours();
                c.now = NOW_LOCAL_MIDNIGHT + 20 * 3600;
            },
            deny(DenyCode::OutsideTimeWindow),
        ),
        (
            "the same instant, another time zone",
            |c| {
                c.seals[1].limits = office_hours();
                c.now = NOW_LOCAL_MIDNIGHT + 20 * 3600;
                c.org.enterprise.utc_offset_minutes = 0;
            },
            HOLDER,
        ),
        (
            "under the seal's daily cap",
            |c| {
                c.seals[1].limits = office_hours();
                c.usage.seal_today = 1;
            },
            HOLDER,
        ),
        (
            "the seal's daily cap reached",
            |c| {
                c.seals[1].limits = office_hours();
                c.usage.seal_today = 2;
            },
            deny(DenyCode::SealDailyCapReached),
        ),
        (
            "the seal's monthly cap reached",
            |c| {
                c.seals[1].limits = office_hours();
                c.usage.seal_this_month = 20;
            },
            deny(DenyCode::SealMonthlyCapReached),
        ),
        (
            "within the contract quota",
            |c| {
                c.org.enterprise.contract_quota = Some(10);
                c.usage.contracts_used = 9;
            },
            HOLDER,
        ),
        (
            "the contract quota used up",
            |c| {
                c.org.enterprise.contract_quota = Some(10);
                c.usage.contracts_used = 10;
            },
            deny(DenyCode::ContractQuotaExhausted),
        ),
        (
            "a document already counted seals again on a used-up quota",
            |c| {
                c.org.enterprise.contract_quota = Some(10);
                c.usage.contracts_used = 10;
                c.usage.document_counted = true;
            },
            HOLDER,
        ),
    ];
    run(rows);
}

/// Each row edits the base case, and its decision and explanation are checked.
fn run(rows: Vec<(&str, Edit, Decision)>) {
    for (rule, edit, expected) in rows {
        let mut case = Case::base();
        edit(&mut case);
        let explained = case.explain();
        assert_eq!(explained.decision, expected, "{rule}");
        check_explanation(rule, &explained);
    }
}

/// boss's auto-sign request on the labour template's employer area.
fn auto_sign_case(c: &mut Case) {
    c.app.acts_for_employees = false;
    c.employee = None;
    c.org.enterprise.features.auto_sign = true;
    c.template = Some("labour".to_owned());
    c.area = Some("employer".to_owned());
}

/// bob (who holds the batch-sign authorization) seals his own seal under a batch
/// confirmation, without a signing password.
fn batch_case(c: &mut Case) {
    c.employee = Some("bob".to_owned());
    c.seals[1].holders.push("bob".to_owned());
    c.password_confirmed = false;
    c.batch_confirmed = true;
    let ask = batch::BatchAsk {
        seal: None,
        count: 3,
        lifetime_seconds: 600,
    };
    c.batch = Some(
        batch::confirm(&c.org, "bob", &ask, Default::default(), "b1", NOW - 60).expect("confirmed"),
    );
}

/// The partner's system seals with the contract seal a document from the nda template.
fn partner_case(c: &mut Case) {
    c.app.acts_for_employees = false;
    c.app.partner = Some(CreditCode::parse(PARTNER).expect("valid"));
    c.employee = None;
    c.org.enterprise.features.auto_sign = true;
    c.template = Some("nda".to_owned());
    c.area = Some("party-a".to_owned());
    c.partners = vec![partner_authorization()];
}

/// gca (group contract administrator) seals a contract with the member's seal.
fn group_case(c: &mut Case) {
    c.org = group_org();
    c.seals.push(member_seal());
    c.app.seals.push("sub-contract".to_owned());
    c.seal = "sub-contract".to_owned();
    c.employee = Some("gca".to_owned());
}

fn group_permit() -> Decision {
    Decision::Allow(Permit::Group {
        member: MEMBER.to_owned(),
    })
}

fn auto_sign_permit() -> Decision {
    Decision::Allow(Permit::AutoSign {
        template: "labour".to_owned(),
    })
}

#[test]
fn template_auto_sign_and_batch_decisions() {
    let rows: Vec<(&str, Edit, Decision)> = vec![
        (
            "a registered template, its area for the contract seal",
            |c| {
                c.template = Some("nda".to_owned());
                c.area = Some("party-a".to_owned())
            },
            HOLDER,
        ),
        (
            "a template that is not registered",
            |c| c.template = Some("loan".to_owned()),
            deny(DenyCode::TemplateNotFound),
        ),
        (
            "a disabled template signs nothing",
            |c| c.template = Some("off".to_owned()),
            deny(DenyCode::TemplateDisabled),
        ),
        (
            "an area the template does not have",
            |c| {
                c.template = Some("nda".to_owned());
                c.area = Some("party-b".to_owned())
            },
            deny(DenyCode::SigningAreaNotFound),
        ),
        (
            "an area requiring the official seal refuses the contract seal",
            |c| {
                c.template = Some("nda".to_owned());
                c.area = Some("official".to_owned())
            },
            deny(DenyCode::SealTypeMismatch),
        ),
        (
            "an area requiring the official seal takes it",
            |c| {
                c.template = Some("nda".to_owned());
                c.area = Some("official".to_owned());
                c.seal = "official".to_owned()
            },
            HOLDER,
        ),
        (
            "a document that is not the template's",
            |c| {
                c.template = Some("nda".to_owned());
                c.from_template = false
            },
            deny(DenyCode::DocumentNotFromTemplate),
        ),
        (
            "a page-seal area when page seals are off",
            |c| {
                c.template = Some("nda".to_owned());
                c.area = Some("seam".to_owned())
            },
            deny(DenyCode::PageSealDisabled),
        ),
        (
            "a template requiring contract approval, without one",
            |c| {
                c.template = Some("nda".to_owned());
                c.templates[0].requires_contract_approval = true
            },
            deny(DenyCode::ContractApprovalRequired),
        ),
        (
            "a template requiring contract approval, with it approved",
            |c| {
                c.template = Some("nda".to_owned());
                c.templates[0].requires_contract_approval = true;
                c.approvals = vec![contract(&c.org, "ca-1", SHA, true)]
            },
            HOLDER,
        ),
        (
            "an auto-sign request: template, seal and area",
            auto_sign_case,
            auto_sign_permit(),
        ),
        (
            "an auto-sign request with auto-sign switched off",
            |c| {
                auto_sign_case(c);
                c.org.enterprise.features.auto_sign = false
            },
            deny(DenyCode::AutoSignDisabled),
        ),
        (
            "an auto-sign request on a template that is not auto-sign",
            |c| {
                auto_sign_case(c);
                c.template = Some("nda".to_owned());
                c.area = Some("party-a".to_owned())
            },
            deny(DenyCode::AutoSignTemplateRequired),
        ),
        (
            "an auto-sign request with another seal than the template's",
            |c| {
                auto_sign_case(c);
                c.seal = "official".to_owned();
                c.templates[1].areas[0].seal_type = None
            },
            deny(DenyCode::AutoSignSealMismatch),
        ),
        (
            "an auto-sign request without its signing area",
            |c| {
                auto_sign_case(c);
                c.area = None
            },
            deny(DenyCode::SigningAreaRequired),
        ),
        (
            "an auto-sign request once the authorizer's authorization is revoked",
            |c| {
                auto_sign_case(c);
                c.org = template::set_authorization(
                    &c.org,
                    "boss",
                    "boss",
                    Authorization::AutoSign,
                    false,
                )
                .expect("revoked")
            },
            deny(DenyCode::AutoSignNotAuthorized),
        ),
        (
            "an auto-sign request once the authorizer has resigned",
            |c| {
                auto_sign_case(c);
                c.templates[1].auto_sign = Some(template::AutoSign {
                    seal: "contract".to_owned(),
                    authorized_by: "gone".to_owned(),
                })
            },
            deny(DenyCode::AutoSignNotAuthorized),
        ),
        (
            "an auto-sign request on a disabled auto-sign template",
            |c| {
                auto_sign_case(c);
                c.templates[1].enabled = false
            },
            deny(DenyCode::TemplateDisabled),
        ),
        (
            "an auto-sign request on a document not from the template",
            |c| {
                auto_sign_case(c);
                c.from_template = false
            },
            deny(DenyCode::DocumentNotFromTemplate),
        ),
        (
            "a partner's request within its authorization",
            partner_case,
            Decision::Allow(Permit::Partner {
                authorization: "pa-1".to_owned(),
            }),
        ),
        (
            "a partner's request with auto-sign switched off",
            |c| {
                partner_case(c);
                c.org.enterprise.features.auto_sign = false
            },
            deny(DenyCode::AutoSignDisabled),
        ),
        (
            "a partner without any authorization",
            |c| {
                partner_case(c);
                c.partners.clear()
            },
            deny(DenyCode::PartnerNotAuthorized),
        ),
        (
            "another partner's authorization does not count",
            |c| {
                partner_case(c);
                c.app.partner = Some(CreditCode::parse("91440300MA5G000020").expect("valid"))
            },
            deny(DenyCode::PartnerNotAuthorized),
        ),
        (
            "a partner asking for a seal it is not authorized for",
            |c| {
                partner_case(c);
                c.seal = "official".to_owned();
                c.area = Some("official".to_owned())
            },
            deny(DenyCode::PartnerSealNotAuthorized),
        ),
        (
            "a partner asking outside its templates",
            |c| {
                partner_case(c);
                c.template = None;
                c.area = None
            },
            deny(DenyCode::PartnerTemplateNotAuthorized),
        ),
        (
            "a partner authorized for documents it initiates needs no template",
            |c| {
                partner_case(c);
                c.template = None;
                c.area = None;
                c.partners[0].scope = partner::PartnerScope::Initiated
            },
            Decision::Allow(Permit::Partner {
                authorization: "pa-1".to_owned(),
            }),
        ),
        (
            "a partner's expired authorization",
            |c| {
                partner_case(c);
                c.now = NOW + DAY
            },
            deny(DenyCode::PartnerAuthorizationExpired),
        ),
        (
            "a partner's revoked authorization",
            |c| {
                partner_case(c);
                let org = c.org.clone();
                c.partners[0] =
                    partner::revoke(&org, "legal", &c.partners[0], NOW - 1).expect("revoked")
            },
            deny(DenyCode::PartnerAuthorizationRevoked),
        ),
        (
            "a partner's template request still needs its signing area",
            |c| {
                partner_case(c);
                c.area = None
            },
            deny(DenyCode::SigningAreaRequired),
        ),
        (
            "a batch confirmation instead of the password",
            batch_case,
            HOLDER,
        ),
        (
            "a batch confirmation past its lifetime",
            |c| {
                batch_case(c);
                c.now = NOW + 600
            },
            deny(DenyCode::BatchConfirmationExpired),
        ),
        (
            "a batch confirmation used for its whole count",
            |c| {
                batch_case(c);
                if let Some(b) = &mut c.batch {
                    b.used = 3
                }
            },
            deny(DenyCode::BatchConfirmationUsedUp),
        ),
        (
            "another employee's batch confirmation",
            |c| {
                batch_case(c);
                c.employee = Some("alice".to_owned());
                c.org = template::set_authorization(
                    &c.org,
                    "boss",
                    "alice",
                    Authorization::BatchSign,
                    true,
                )
                .expect("granted")
            },
            deny(DenyCode::BatchConfirmationNotFound),
        ),
        (
            "a batch confirmation for another seal",
            |c| {
                batch_case(c);
                if let Some(b) = &mut c.batch {
                    b.seal = Some("official".to_owned())
                }
            },
            deny(DenyCode::BatchConfirmationNotFound),
        ),
        (
            "a batch confirmation that does not exist",
            |c| {
                batch_case(c);
                c.batch = None
            },
            deny(DenyCode::BatchConfirmationNotFound),
        ),
        (
            "a batch confirmation once the batch-sign authorization is revoked",
            |c| {
                batch_case(c);
                c.org = template::set_authorization(
                    &c.org,
                    "legal",
                    "bob",
                    Authorization::BatchSign,
                    false,
                )
                .expect("revoked")
            },
            deny(DenyCode::BatchSignNotAuthorized),
        ),
    ];
    run(rows);
}

#[test]
fn templates_and_authorizations_are_managed_by_whom_they_should_be() {
    use template::{put, set_authorization, AutoSign};
    let org = org();
    let s = seals();
    let t = templates();
    let (nda, labour) = (&t[0], &t[1]);
    // Template management: boss (super administrator) yes, alice no.
    assert_eq!(
        put(&org, "alice", None, &s, nda),
        Err(DenyCode::PermissionDenied)
    );
    let stored = put(&org, "boss", None, &s, nda).expect("created");
    assert_eq!(stored.created_by, "boss");
    // Auto-sign needs the switch, then the actor's authorization.
    assert_eq!(
        put(&org, "boss", None, &s, labour),
        Err(DenyCode::AutoSignDisabled)
    );
    let mut on = org.clone();
    on.enterprise.features.auto_sign = true;
    let made = put(&on, "boss", None, &s, labour).expect("auto-sign template");
    assert_eq!(
        made.auto_sign.as_ref().map(|a| a.authorized_by.as_str()),
        Some("boss")
    );
    // Whoever asks, the authorizer is who made it auto-sign (not what the request claims).
    let claimed = Template {
        auto_sign: Some(AutoSign {
            seal: "contract".to_owned(),
            authorized_by: "alice".to_owned(),
        }),
        ..labour.clone()
    };
    assert_eq!(
        put(&on, "boss", None, &s, &claimed)
            .expect("made")
            .auto_sign
            .map(|a| a.authorized_by),
        Some("boss".to_owned())
    );
    // A template administrator without the authorization cannot make one auto-sign, but
    // edits an existing auto-sign template (its authorizer stays).
    let mut with_ta = on.clone();
    with_ta.employees.push(employee(
        "tadmin",
        "hq",
        &[SystemRole::TemplateAdministrator],
    ));
    assert_eq!(
        put(&with_ta, "tadmin", None, &s, labour),
        Err(DenyCode::AutoSignNotAuthorized)
    );
    let edited = Template {
        name: "劳动合同 2027".to_owned(),
        ..made.clone()
    };
    let kept = put(&with_ta, "tadmin", Some(&made), &s, &edited).expect("edited");
    assert_eq!(kept.auto_sign, made.auto_sign);
    // Another PDF, batch jobs allowed or contract approval dropped need the authorization.
    let widen: Vec<fn(&mut Template)> = vec![|t| t.pdf_sha256 = OTHER_SHA.to_owned(), |t| {
        t.allow_batch = !t.allow_batch
    }];
    for edit in widen {
        let mut changed = made.clone();
        changed.allow_batch = false;
        let base = Template { ..changed.clone() };
        edit(&mut changed);
        let from = if changed.allow_batch { &base } else { &made };
        assert_eq!(
            put(&with_ta, "tadmin", Some(from), &s, &changed),
            Err(DenyCode::AutoSignNotAuthorized)
        );
    }
    let approving = Template {
        requires_contract_approval: true,
        ..made.clone()
    };
    assert_eq!(
        put(&with_ta, "tadmin", Some(&approving), &s, &made),
        Err(DenyCode::AutoSignNotAuthorized)
    );
    // Rebinding it to another seal needs the authorization again.
    let rebound = Template {
        auto_sign: Some(AutoSign {
            seal: "official".to_owned(),
            authorized_by: String::new(),
        }),
        areas: vec![SigningArea {
            seal_type: None,
            ..made.areas[0].clone()
        }],
        ..made.clone()
    };
    assert_eq!(
        put(&with_ta, "tadmin", Some(&made), &s, &rebound),
        Err(DenyCode::AutoSignNotAuthorized)
    );
    // The bound seal: active, not the legal representative's, fitting every area.
    let bind = |seal: &str| Template {
        auto_sign: Some(AutoSign {
            seal: seal.to_owned(),
            authorized_by: String::new(),
        }),
        ..labour.clone()
    };
    assert_eq!(
        put(&on, "boss", None, &s, &bind("finance")),
        Err(DenyCode::SealDisabled)
    );
    assert_eq!(
        put(&on, "boss", None, &s, &bind("nope")),
        Err(DenyCode::SealNotFound)
    );
    assert_eq!(
        put(&on, "boss", None, &s, &bind("official")),
        Err(DenyCode::SealTypeMismatch)
    );
    let mut legal = bind("legal-seal");
    legal.areas[0].seal_type = None;
    assert_eq!(
        put(&on, "boss", None, &s, &legal),
        Err(DenyCode::LegalRepresentativeOnly)
    );
    // Shapes: no area, a duplicate area id, a position off the page, page 0, a bad hash.
    let shapes: Vec<fn(&mut Template)> = vec![
        |t| t.areas.clear(),
        |t| {
            let a = t.areas[0].clone();
            t.areas.push(a)
        },
        |t| t.areas[0].x = -1.0,
        |t| t.areas[0].width = f64::NAN,
        |t| t.areas[0].page = template::AreaPage::Page(0),
        |t| t.pdf_sha256 = "xyz".to_owned(),
        |t| t.id = "has space".to_owned(),
        |t| t.fields.push(t.fields[0].clone()),
    ];
    for edit in shapes {
        let mut bad = nda.clone();
        edit(&mut bad);
        assert_eq!(
            put(&org, "boss", None, &s, &bad),
            Err(DenyCode::InvalidTemplate)
        );
    }
    // Authorizations: only the super administrator or the legal representative.
    assert_eq!(
        set_authorization(&org, "sa1", "alice", Authorization::AutoSign, true),
        Err(DenyCode::AuthorizationReserved)
    );
    let granted =
        set_authorization(&org, "legal", "alice", Authorization::BatchSign, true).expect("granted");
    assert!(granted
        .employee("alice")
        .is_some_and(|e| e.batch_sign_authorized));
    assert_eq!(
        set_authorization(&org, "boss", "gone", Authorization::AutoSign, true),
        Err(DenyCode::EmployeeResigned)
    );
    // A batch confirmation: authorized employees, within the bounds.
    let bounds = batch::BatchBounds {
        max_count: 100,
        max_lifetime_seconds: 900,
    };
    let ask = |count, lifetime_seconds| batch::BatchAsk {
        seal: None,
        count,
        lifetime_seconds,
    };
    assert_eq!(
        batch::confirm(&org, "alice", &ask(10, 60), bounds, "b", NOW),
        Err(DenyCode::BatchSignNotAuthorized)
    );
    for (count, lifetime) in [(0, 60), (101, 60), (10, 0), (10, 901)] {
        assert_eq!(
            batch::confirm(&org, "bob", &ask(count, lifetime), bounds, "b", NOW),
            Err(DenyCode::InvalidBatchConfirmation),
            "{count} in {lifetime}s"
        );
    }
    let b = batch::confirm(&org, "bob", &ask(100, 900), bounds, "b", NOW).expect("confirmed");
    assert_eq!((b.uses_left(), b.expires_at), (100, NOW + 900));
}

#[test]
fn group_decisions() {
    let rows: Vec<(&str, Edit, Decision)> = vec![
        (
            "a group contract administrator seals a member's contract",
            group_case,
            group_permit(),
        ),
        (
            "a group salesperson seals a document from a member's template",
            |c| {
                group_case(c);
                c.employee = Some("gsp".to_owned());
                c.template = Some("nda".to_owned());
                c.area = Some("party-a".to_owned())
            },
            group_permit(),
        ),
        (
            "a group salesperson does not seal a member's contract without its template",
            |c| {
                group_case(c);
                c.employee = Some("gsp".to_owned())
            },
            deny(DenyCode::GroupRoleRequired),
        ),
        (
            "a template the member has not granted",
            |c| {
                group_case(c);
                c.employee = Some("gsp".to_owned());
                c.template = Some("labour".to_owned());
                c.area = Some("employer".to_owned())
            },
            deny(DenyCode::GroupTemplateOutOfScope),
        ),
        (
            "a parent employee without a group role",
            |c| {
                group_case(c);
                c.employee = Some("alice".to_owned())
            },
            deny(DenyCode::GroupRoleRequired),
        ),
        (
            "a group seal administrator manages but does not seal",
            |c| {
                group_case(c);
                c.employee = Some("gsa".to_owned())
            },
            deny(DenyCode::GroupRoleRequired),
        ),
        (
            "a member seal outside the scope",
            |c| {
                group_case(c);
                c.org.members[0].scope.seals.clear()
            },
            deny(DenyCode::GroupSealOutOfScope),
        ),
        (
            "contracts outside the scope",
            |c| {
                group_case(c);
                c.org.members[0].scope.contracts = false
            },
            deny(DenyCode::GroupContractsOutOfScope),
        ),
        (
            "a removed member's seal signs nothing",
            |c| {
                group_case(c);
                c.org = group::remove_member(&c.org, "boss", MEMBER).expect("removed")
            },
            deny(DenyCode::GroupMemberNotFound),
        ),
        (
            "no employee: a member's seal is never auto-signed",
            |c| {
                group_case(c);
                auto_sign_case(c);
                c.seal = "sub-contract".to_owned()
            },
            deny(DenyCode::GroupRoleRequired),
        ),
        (
            "the member's own quota used up",
            |c| {
                group_case(c);
                c.org.members[0].contract_quota = Some(5);
                c.usage.member_contracts_used = 5
            },
            deny(DenyCode::ContractQuotaExhausted),
        ),
        (
            "the member's quota used up, drawing on the parent's pool",
            |c| {
                group_case(c);
                c.org.members[0].contract_quota = Some(5);
                c.org.members[0].draw_on_parent = true;
                c.org.enterprise.contract_quota = Some(10);
                c.usage.member_contracts_used = 5;
                c.usage.contracts_used = 9
            },
            group_permit(),
        ),
        (
            "the member's and the parent's quotas both used up",
            |c| {
                group_case(c);
                c.org.members[0].contract_quota = Some(5);
                c.org.members[0].draw_on_parent = true;
                c.org.enterprise.contract_quota = Some(10);
                c.usage.member_contracts_used = 5;
                c.usage.contracts_used = 10
            },
            deny(DenyCode::ContractQuotaExhausted),
        ),
        (
            "the parent's used-up quota does not stop a member with its own",
            |c| {
                group_case(c);
                c.org.members[0].contract_quota = Some(5);
                c.org.enterprise.contract_quota = Some(10);
                c.usage.member_contracts_used = 4;
                c.usage.contracts_used = 10
            },
            group_permit(),
        ),
    ];
    run(rows);
}

#[test]
fn group_members_and_their_seals_are_managed_within_scope() {
    use group::{grant_scope, put_member, remove_member, GroupScope, MemberTerms};
    let org = group_org();
    let code = CreditCode::parse(MEMBER).expect("valid");
    let terms = MemberTerms {
        name: "子公司".to_owned(),
        contract_quota: Some(100),
        draw_on_parent: true,
    };
    assert_eq!(
        put_member(&org, "sa1", &code, &terms, NOW),
        Err(DenyCode::GroupReserved)
    );
    let changed = put_member(&org, "legal", &code, &terms, NOW).expect("changed");
    let m = changed.member(MEMBER).expect("member");
    assert_eq!(
        (m.contract_quota, m.scope.seals.len()),
        (Some(100), 1),
        "terms change, the scope stays"
    );
    assert_eq!(
        put_member(&org, "boss", &org.enterprise.credit_code, &terms, NOW),
        Err(DenyCode::InvalidGroupMember)
    );
    let narrowed = grant_scope(&org, &code, &GroupScope::default()).expect("granted");
    assert!(narrowed
        .member(MEMBER)
        .is_some_and(|m| m.scope.seals.is_empty()));
    let stranger = CreditCode::parse(PARTNER).expect("valid");
    assert_eq!(
        grant_scope(&org, &stranger, &GroupScope::default()),
        Err(DenyCode::GroupMemberNotFound)
    );
    // The member's seal: group seal management within scope, not the parent's seal administrators.
    let seal = member_seal();
    assert_eq!(
        seal::change_status(&org, "sa1", &seal, SealStatus::Disabled),
        Err(DenyCode::GroupRoleRequired)
    );
    assert_eq!(
        seal::change_status(&org, "gsa", &seal, SealStatus::Disabled),
        Ok(())
    );
    assert_eq!(
        seal::change_status(&narrowed, "gsa", &seal, SealStatus::Disabled),
        Err(DenyCode::GroupSealOutOfScope)
    );
    let mut all = seals();
    let created = seal::create(
        &org,
        &all,
        "gsa",
        &Seal {
            id: "sub-official".to_owned(),
            ..Seal {
                kind: SealType::Official,
                ..member_seal()
            }
        },
    );
    assert_eq!(created, Err(DenyCode::GroupSealOutOfScope));
    // One official seal per enterprise: the member's does not collide with the parent's.
    let mut wider = org.clone();
    wider.members[0].scope.seals.push("sub-official".to_owned());
    wider.members[0]
        .scope
        .seals
        .push("sub-official-2".to_owned());
    let official = Seal {
        id: "sub-official".to_owned(),
        kind: SealType::Official,
        ..member_seal()
    };
    let made = seal::create(&wider, &all, "boss", &official).expect("created");
    all.push(made);
    assert_eq!(
        seal::create(
            &wider,
            &all,
            "boss",
            &Seal {
                id: "sub-official-2".to_owned(),
                ..official.clone()
            }
        ),
        Err(DenyCode::OfficialSealExists)
    );
    let removed = remove_member(&org, "boss", MEMBER).expect("removed");
    assert_eq!(
        seal::change_status(&removed, "gsa", &seal, SealStatus::Disabled),
        Err(DenyCode::GroupMemberNotFound)
    );
    assert_eq!(
        remove_member(&removed, "boss", MEMBER),
        Err(DenyCode::GroupMemberNotFound)
    );
    // Member seals are not bound to auto-sign templates nor granted to partners.
    let mut on = org.clone();
    on.enterprise.features.auto_sign = true;
    let mut with_member = seals();
    with_member.push(member_seal());
    let bound = Template {
        auto_sign: Some(template::AutoSign {
            seal: "sub-contract".to_owned(),
            authorized_by: String::new(),
        }),
        ..templates()[1].clone()
    };
    assert_eq!(
        template::put(&on, "boss", None, &with_member, &bound),
        Err(DenyCode::GroupRoleRequired)
    );
}

#[test]
fn partner_authorizations_and_invitations() {
    use partner::{accept, authorize, invite, revoke, PartnerGrant, PartnerScope};
    let org = org();
    let s = seals();
    let code = CreditCode::parse(PARTNER).expect("valid");
    let grant = |seals: &[&str], scope: PartnerScope, expires_at| PartnerGrant {
        seals: seals.iter().map(|s| (*s).to_owned()).collect(),
        scope,
        expires_at,
    };
    let ok = grant(&["contract"], PartnerScope::Initiated, NOW + DAY);
    let who = (&code, "合作方有限公司");
    assert_eq!(
        authorize(&org, "sa1", &s, &[], who, &ok, "p", NOW),
        Err(DenyCode::AuthorizationReserved)
    );
    let given = authorize(&org, "legal", &s, &[], who, &ok, "p", NOW).expect("granted");
    assert_eq!(
        (given.granted_by.as_str(), given.revoked_at),
        ("legal", None)
    );
    let own = (&org.enterprise.credit_code, "自己");
    assert_eq!(
        authorize(&org, "boss", &s, &[], own, &ok, "p", NOW),
        Err(DenyCode::InvalidPartnerAuthorization)
    );
    for (bad, code_expected) in [
        (
            grant(&[], PartnerScope::Initiated, NOW + DAY),
            DenyCode::InvalidPartnerAuthorization,
        ),
        (
            grant(&["contract"], PartnerScope::Initiated, NOW),
            DenyCode::InvalidPartnerAuthorization,
        ),
        (
            grant(
                &["contract"],
                PartnerScope::Initiated,
                NOW + partner::MAX_VALIDITY + 1,
            ),
            DenyCode::InvalidPartnerAuthorization,
        ),
        (
            grant(&["finance"], PartnerScope::Initiated, NOW + DAY),
            DenyCode::SealDisabled,
        ),
        (
            grant(&["legal-seal"], PartnerScope::Initiated, NOW + DAY),
            DenyCode::LegalRepresentativeOnly,
        ),
        (
            grant(
                &["contract"],
                PartnerScope::Templates {
                    templates: vec!["nope".to_owned()],
                },
                NOW + DAY,
            ),
            DenyCode::TemplateNotFound,
        ),
        (
            grant(
                &["contract"],
                PartnerScope::Templates { templates: vec![] },
                NOW + DAY,
            ),
            DenyCode::InvalidPartnerAuthorization,
        ),
    ] {
        assert_eq!(
            authorize(&org, "boss", &s, &["nda"], who, &bad, "p", NOW),
            Err(code_expected),
            "{bad:?}"
        );
    }
    let revoked = revoke(&org, "boss", &given, NOW + 5).expect("revoked");
    assert_eq!(revoked.revoked_at, Some(NOW + 5));
    assert_eq!(
        revoke(&org, "boss", &revoked, NOW + 6),
        Err(DenyCode::PartnerAuthorizationRevoked)
    );
    // Invitations: single-use, 30 days.
    let inv = invite(&code, "合作方有限公司", "请授权合同章", "inv-1", NOW).expect("invited");
    let ok = grant(&["contract"], PartnerScope::Initiated, NOW + 90 * DAY);
    assert_eq!(inv.expires_at, NOW + 30 * DAY);
    let (used, auth) =
        accept(&org, "boss", &s, &[], &inv, &ok, "pa-9", NOW + DAY).expect("accepted");
    assert_eq!(
        (used.accepted_as.as_deref(), auth.partner.as_str()),
        (Some("pa-9"), PARTNER)
    );
    assert_eq!(
        accept(&org, "boss", &s, &[], &used, &ok, "pa-10", NOW + DAY),
        Err(DenyCode::InvitationUsed)
    );
    assert_eq!(
        accept(&org, "boss", &s, &[], &inv, &ok, "pa-10", NOW + 30 * DAY),
        Err(DenyCode::InvitationExpired)
    );
    assert_eq!(
        accept(&org, "alice", &s, &[], &inv, &ok, "pa-10", NOW + DAY),
        Err(DenyCode::AuthorizationReserved)
    );
}

#[test]
fn explain_goes_on_after_the_first_failed_rule() {
    let mut case = Case::base();
    case.employee = Some("bob".to_owned());
    case.seals[1].status = SealStatus::Disabled;
    let e = case.explain();
    assert_eq!(e.decision, deny(DenyCode::SealDisabled));
    let outcome = |rule| {
        e.rules
            .iter()
            .find(|r| r.rule == rule)
            .map(|r| r.outcome.clone())
    };
    assert_eq!(
        outcome(Rule::SealSigns),
        Some(Outcome::Failed(DenyCode::SealDisabled))
    );
    assert_eq!(outcome(Rule::EmployeeActive), Some(Outcome::Passed));
    assert_eq!(
        outcome(Rule::Holder),
        Some(Outcome::NotApplicable),
        "bob holds nothing"
    );
    assert_eq!(
        outcome(Rule::SealUseGrant),
        Some(Outcome::NeedsApproval),
        "and would need a grant too"
    );
    // The outcomes serialize for the API as {"rule": …, "outcome": …, "code": …}.
    let json = serde_json::to_value(&e.rules[4]).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"rule": "seal_signs", "outcome": "failed", "code": "seal_disabled"})
    );
}

#[test]
fn administering_needs_the_admin_role() {
    let admin = Application {
        roles: vec![AppRole::Admin],
        ..oa()
    };
    let snap = Snapshot::of(&admin, None);
    assert_eq!(
        decide(&snap, &Request::Administer, NOW),
        Decision::Allow(Permit::Application)
    );
    let signer = oa();
    let snap = Snapshot::of(&signer, None);
    assert_eq!(
        decide(&snap, &Request::Administer, NOW),
        deny(DenyCode::NotAdmin)
    );
}

#[test]
fn acting_for_an_employee_needs_an_application_registered_for_it() {
    let org = org();
    let act = |app: &Application, employee: &str| {
        let snap = Snapshot {
            org: Some(&org),
            ..Snapshot::of(app, None)
        };
        decide(&snap, &Request::ActFor { employee }, NOW)
    };
    let allowed = Decision::Allow(Permit::Application);
    assert_eq!(act(&oa(), "sa1"), allowed);
    let admin_tool = Application {
        roles: vec![AppRole::Admin],
        acts_for_employees: false,
        ..oa()
    };
    assert_eq!(act(&admin_tool, "sa1"), allowed);
    let erp = Application {
        acts_for_employees: false,
        ..oa()
    };
    assert_eq!(act(&erp, "sa1"), deny(DenyCode::CannotActForEmployees));
    assert_eq!(act(&oa(), "gone"), deny(DenyCode::EmployeeResigned));
    assert_eq!(act(&oa(), "nobody"), deny(DenyCode::EmployeeNotFound));
    let disabled = Application {
        enabled: false,
        ..oa()
    };
    assert_eq!(act(&disabled, "sa1"), deny(DenyCode::ApplicationDisabled));
}

fn new_seal(id: &str, kind: SealType, source: SealSource) -> Seal {
    Seal {
        source,
        ..seal(id, kind, SealStatus::Active, &["alice"])
    }
}

#[test]
fn seal_creation_rules() {
    let (org, existing) = (org(), seals());
    // Who creates decides whether it is active at once.
    for (actor, status) in [
        ("boss", SealStatus::Active),
        ("legal", SealStatus::Active),
        ("sa1", SealStatus::PendingReview),
    ] {
        let s = seal::create(
            &org,
            &existing,
            actor,
            &new_seal("hr", SealType::Hr, SealSource::Uploaded),
        )
        .expect("allowed");
        assert_eq!(s.status, status, "{actor}");
        assert_eq!(s.created_by.as_deref(), Some(actor));
    }
    let refused = |actor: &str, s: &Seal, existing: &[Seal]| {
        seal::create(&org, existing, actor, s).expect_err("refused")
    };
    assert_eq!(
        refused(
            "alice",
            &new_seal("hr", SealType::Hr, SealSource::Uploaded),
            &existing
        ),
        DenyCode::PermissionDenied
    );
    assert_eq!(
        refused(
            "boss",
            &new_seal("contract", SealType::Hr, SealSource::Uploaded),
            &existing
        ),
        DenyCode::SealExists
    );
    // One official seal per enterprise; a deleted one no longer counts.
    assert_eq!(
        refused(
            "boss",
            &new_seal("official-2", SealType::Official, SealSource::Uploaded),
            &existing
        ),
        DenyCode::OfficialSealExists
    );
    let mut without = existing.clone();
    without[0].status = SealStatus::Deleted;
    assert!(seal::create(
        &org,
        &without,
        "boss",
        &new_seal("official-2", SealType::Official, SealSource::Uploaded)
    )
    .is_ok());
    // At most one template-generated seal per type.
    let mut with_template = existing.clone();
    with_template.push(new_seal("hr-template", SealType::Hr, SealSource::Template));
    assert_eq!(
        refused(
            "boss",
            &new_seal("hr-template-2", SealType::Hr, SealSource::Template),
            &with_template
        ),
        DenyCode::TemplateSealExists
    );
    assert!(seal::create(
        &org,
        &with_template,
        "boss",
        &new_seal("finance-template", SealType::Finance, SealSource::Template)
    )
    .is_ok());
    assert!(seal::create(
        &org,
        &with_template,
        "boss",
        &new_seal("hr-uploaded", SealType::Hr, SealSource::Uploaded)
    )
    .is_ok());
    // The legal-representative seal is the legal representative's to create.
    let legal = seal(
        "legal-2",
        SealType::LegalRepresentative,
        SealStatus::Active,
        &["legal"],
    );
    assert_eq!(
        seal::create(&org, &existing, "legal", &legal)
            .expect("allowed")
            .status,
        SealStatus::Active
    );
    for actor in ["boss", "sa1"] {
        assert_eq!(
            refused(actor, &legal, &existing),
            DenyCode::LegalRepresentativeOnly,
            "{actor}"
        );
    }
    // Holders are active employees; a practice seal has exactly one.
    let mut to_gone = new_seal("hr", SealType::Hr, SealSource::Uploaded);
    to_gone.holders = vec!["gone".to_owned()];
    assert_eq!(
        refused("boss", &to_gone, &existing),
        DenyCode::EmployeeResigned
    );
    let two = seal(
        "practice-2",
        SealType::Practice,
        SealStatus::Active,
        &["carol", "bob"],
    );
    assert_eq!(
        refused("boss", &two, &existing),
        DenyCode::PracticeSealHolder
    );
    let mine = seal(
        "practice-2",
        SealType::Practice,
        SealStatus::Active,
        &["boss"],
    );
    assert!(
        seal::create(&org, &existing, "boss", &mine)
            .expect("allowed")
            .practice_authorized,
        "created by its holder"
    );
    let theirs = seal(
        "practice-3",
        SealType::Practice,
        SealStatus::Active,
        &["carol"],
    );
    assert!(
        !seal::create(&org, &existing, "boss", &theirs)
            .expect("allowed")
            .practice_authorized
    );
}

#[test]
fn a_seal_created_by_a_seal_administrator_waits_for_another() {
    let (org, existing) = (org(), seals());
    let created = seal::create(
        &org,
        &existing,
        "sa1",
        &new_seal("hr", SealType::Hr, SealSource::Uploaded),
    )
    .expect("allowed");
    assert_eq!(created.status, SealStatus::PendingReview);
    let flow = Flow::default_for(Scenario::SealCreation);
    let subject = Subject::SealCreation {
        seal: "hr".to_owned(),
    };
    let mut request = ApprovalRequest::submit(
        &org,
        &flow,
        Submission {
            id: "c1",
            submitter: "sa1",
            reason: "人事章",
        },
        subject,
        NOW,
    )
    .expect("allowed");
    // The other seal administrator and the legal representative, never the creator.
    assert_eq!(
        request.eligible(&org, 0),
        vec!["legal".to_owned(), "sa2".to_owned()]
    );
    assert_eq!(
        request.approve(&org, "sa1", NOW, None),
        Err(DenyCode::SelfApproval)
    );
    assert_eq!(
        request.approve(&org, "appr", NOW, None),
        Err(DenyCode::NotAnApprover)
    );
    assert_eq!(
        request.approve(&org, "sa2", NOW, None),
        Ok(Transition::Approved)
    );
    assert_eq!(
        seal::creation_approved(&created).expect("allowed").status,
        SealStatus::Active
    );
    // Only a pending seal is approved into being.
    assert_eq!(
        seal::creation_approved(find(&existing, "contract")),
        Err(DenyCode::InvalidSealTransition)
    );
}

#[test]
fn seal_status_changes() {
    let (org, s) = (org(), seals());
    use SealStatus::*;
    let ok = [
        ("contract", Disabled),
        ("finance", Active),
        ("finance", Deleted),
        ("pending", Deleted),
    ];
    for (id, to) in ok {
        assert_eq!(
            seal::change_status(&org, "sa1", find(&s, id), to),
            Ok(()),
            "{id} → {to:?}"
        );
    }
    let refused = [
        ("pending", Active, DenyCode::SealPendingReview),
        ("deleted", Active, DenyCode::SealDeleted),
        ("contract", PendingReview, DenyCode::InvalidSealTransition),
        ("contract", Active, DenyCode::InvalidSealTransition),
    ];
    for (id, to, code) in refused {
        assert_eq!(
            seal::change_status(&org, "sa1", find(&s, id), to),
            Err(code),
            "{id} → {to:?}"
        );
    }
    assert_eq!(
        seal::change_status(&org, "alice", find(&s, "contract"), Disabled),
        Err(DenyCode::PermissionDenied)
    );
    // The legal-representative seal: enabled, disabled, deleted and given holders by him alone.
    let legal = find(&s, "legal-seal");
    assert_eq!(seal::change_status(&org, "legal", legal, Disabled), Ok(()));
    assert_eq!(seal::change_status(&org, "legal", legal, Deleted), Ok(()));
    for actor in ["boss", "sa1"] {
        assert_eq!(
            seal::change_status(&org, actor, legal, Disabled),
            Err(DenyCode::LegalRepresentativeOnly)
        );
        assert_eq!(
            seal::set_holders(&org, actor, legal, &["alice".to_owned()]),
            Err(DenyCode::LegalRepresentativeOnly)
        );
    }
    let given = seal::set_holders(
        &org,
        "legal",
        legal,
        &["legal".to_owned(), "alice".to_owned()],
    )
    .expect("allowed");
    assert_eq!(given.holders, vec!["alice".to_owned(), "legal".to_owned()]);
}

#[test]
fn holders_and_practice_seal_authorization() {
    let (org, s) = (org(), seals());
    let contract = find(&s, "contract");
    let changed = seal::set_holders(&org, "sa1", contract, &["bob".to_owned(), "bob".to_owned()])
        .expect("allowed");
    assert_eq!(changed.holders, vec!["bob".to_owned()]);
    assert_eq!(
        seal::set_holders(&org, "sa1", contract, &["gone".to_owned()]),
        Err(DenyCode::EmployeeResigned)
    );
    assert_eq!(
        seal::set_holders(&org, "sa1", contract, &["nobody".to_owned()]),
        Err(DenyCode::EmployeeNotFound)
    );
    assert_eq!(
        seal::set_holders(&org, "sa1", find(&s, "deleted"), &[]),
        Err(DenyCode::SealDeleted)
    );
    let practice = find(&s, "practice");
    assert_eq!(
        seal::authorize_practice(&org, "sa1", practice),
        Err(DenyCode::NotPracticeSealHolder)
    );
    assert_eq!(
        seal::authorize_practice(&org, "carol", contract),
        Err(DenyCode::InvalidSealTransition)
    );
    let authorized = seal::authorize_practice(&org, "carol", practice).expect("allowed");
    assert!(authorized.practice_authorized && authorized.signing_refusal().is_none());
    // A new holder authorizes it again.
    let moved = seal::set_holders(&org, "sa1", &authorized, &["bob".to_owned()]).expect("allowed");
    assert!(!moved.practice_authorized);
    assert_eq!(
        seal::set_holders(&org, "sa1", &authorized, &[]),
        Err(DenyCode::PracticeSealHolder)
    );
}

#[test]
fn data_scopes_reach_own_department_or_enterprise() {
    let mut org = org();
    let s = seals();
    let dept_role = RoleDef::custom(
        "branch-seals",
        "分公司印章管理",
        &[Permission::SealManagement],
        DataScope::Department,
    )
    .expect("allowed");
    let own_role = RoleDef::custom(
        "own-seals",
        "自有印章管理",
        &[Permission::SealManagement],
        DataScope::Own,
    )
    .expect("allowed");
    org = admin::create_role(&org, "boss", &dept_role).expect("allowed");
    org = admin::create_role(&org, "boss", &own_role).expect("allowed");
    org = admin::assign_roles(&org, "boss", "bob", &["branch-seals".to_owned()]).expect("allowed");
    org = admin::assign_roles(&org, "boss", "alice", &["own-seals".to_owned()]).expect("allowed");
    // bob (sales) reaches the sales seal, not finance's.
    assert_eq!(
        seal::change_status(&org, "bob", find(&s, "contract"), SealStatus::Disabled),
        Ok(())
    );
    assert_eq!(
        seal::change_status(&org, "bob", find(&s, "finance"), SealStatus::Active),
        Err(DenyCode::PermissionDenied)
    );
    // alice reaches what she holds only.
    assert_eq!(
        seal::change_status(&org, "alice", find(&s, "official"), SealStatus::Disabled),
        Ok(())
    );
    assert_eq!(
        seal::change_status(&org, "alice", find(&s, "finance"), SealStatus::Active),
        Err(DenyCode::PermissionDenied)
    );
    // A department administrator manages employees below their department only.
    let newcomer = employee("dave", "sales-east", &[]);
    assert!(admin::put_employee(&org, "dadmin", &newcomer).is_ok());
    let elsewhere = employee("erin", "finance", &[]);
    assert_eq!(
        admin::put_employee(&org, "dadmin", &elsewhere),
        Err(DenyCode::PermissionDenied)
    );
    assert!(admin::put_employee(&org, "it", &elsewhere).is_ok());
}

#[test]
fn role_rules() {
    let org = org();
    let custom = RoleDef::custom(
        "auditors",
        "审计",
        &[Permission::ContractManagement],
        DataScope::Enterprise,
    )
    .expect("allowed");
    let with = admin::create_role(&org, "boss", &custom).expect("allowed");
    assert_eq!(
        admin::create_role(&with, "boss", &custom),
        Err(DenyCode::RoleExists)
    );
    assert_eq!(
        admin::create_role(&org, "sa1", &custom),
        Err(DenyCode::PermissionDenied)
    );
    // System roles are neither edited nor deleted, nor forged as custom ones.
    let mut edited = RoleDef::system(SystemRole::SealApprover);
    edited.permissions.push(Permission::SealManagement);
    assert_eq!(
        admin::edit_role(&org, "boss", &edited),
        Err(DenyCode::SystemRoleImmutable)
    );
    assert_eq!(
        admin::delete_role(&org, "boss", "seal_approver"),
        Err(DenyCode::SystemRoleImmutable)
    );
    let mut forged = org.clone();
    forged.roles[6].permissions.push(Permission::SealManagement);
    assert_eq!(forged.validate(), Err(DenyCode::SystemRoleImmutable));
    // Custom roles are edited, and deleted once nobody holds them.
    let renamed = RoleDef {
        name: "内部审计".to_owned(),
        ..custom.clone()
    };
    assert_eq!(
        admin::edit_role(&with, "boss", &renamed)
            .expect("allowed")
            .role("auditors")
            .expect("allowed")
            .name,
        "内部审计"
    );
    let held =
        admin::assign_roles(&with, "boss", "carol", &["auditors".to_owned()]).expect("allowed");
    assert_eq!(
        admin::delete_role(&held, "boss", "auditors"),
        Err(DenyCode::RoleInUse)
    );
    assert!(admin::delete_role(&with, "boss", "auditors")
        .expect("allowed")
        .role("auditors")
        .is_none());
    assert_eq!(
        admin::assign_roles(&org, "boss", "carol", &["nope".to_owned()]),
        Err(DenyCode::RoleNotFound)
    );
}

#[test]
fn exactly_one_super_administrator_and_at_most_one_legal_representative() {
    let org = org();
    let super_id = SystemRole::SuperAdministrator.id().to_owned();
    assert_eq!(
        admin::assign_roles(&org, "boss", "carol", std::slice::from_ref(&super_id)),
        Err(DenyCode::SuperAdministratorExists)
    );
    assert_eq!(
        admin::assign_roles(&org, "boss", "boss", &[]),
        Err(DenyCode::SuperAdministratorRequired)
    );
    assert_eq!(
        admin::transfer_super_administrator(&org, "sa1", "carol"),
        Err(DenyCode::PermissionDenied)
    );
    let moved = admin::transfer_super_administrator(&org, "boss", "carol").expect("allowed");
    assert_eq!(
        moved
            .holder_of(SystemRole::SuperAdministrator)
            .expect("allowed")
            .id,
        "carol"
    );
    assert!(!moved.has_role(
        moved.employee("boss").expect("allowed"),
        SystemRole::SuperAdministrator
    ));
    let legal = SystemRole::LegalRepresentative.id().to_owned();
    assert_eq!(
        admin::assign_roles(&org, "boss", "carol", std::slice::from_ref(&legal)),
        Err(DenyCode::LegalRepresentativeExists)
    );
    let mut without = org.clone();
    without
        .employee_mut("legal")
        .expect("allowed")
        .roles
        .clear();
    assert!(admin::assign_roles(&without, "boss", "carol", &[legal]).is_ok());
    let mut two = org.clone();
    two.employee_mut("carol")
        .expect("allowed")
        .roles
        .push(super_id);
    assert_eq!(two.validate(), Err(DenyCode::SuperAdministratorExists));
}

#[test]
fn organization_structure_rules() {
    let org = org();
    let cycle = Department {
        id: "sales".to_owned(),
        name: "销售".to_owned(),
        parent: Some("sales-east".to_owned()),
    };
    assert_eq!(
        admin::put_department(&org, "boss", &cycle),
        Err(DenyCode::DepartmentCycle)
    );
    let fine = Department {
        id: "sales-west".to_owned(),
        name: "销售西区".to_owned(),
        parent: Some("sales".to_owned()),
    };
    assert!(admin::put_department(&org, "dadmin", &fine).is_ok());
    let outside = Department {
        parent: Some("finance".to_owned()),
        ..fine.clone()
    };
    assert_eq!(
        admin::put_department(&org, "dadmin", &outside),
        Err(DenyCode::PermissionDenied)
    );
    let orphan = Department {
        parent: Some("nowhere".to_owned()),
        ..fine
    };
    assert_eq!(
        admin::put_department(&org, "boss", &orphan),
        Err(DenyCode::DepartmentNotFound)
    );
    let bad_phone = Employee {
        phone: "12ab".to_owned(),
        ..employee("dave", "sales", &[])
    };
    assert_eq!(
        admin::put_employee(&org, "boss", &bad_phone),
        Err(DenyCode::InvalidPhone)
    );
    assert!(admin::put_employee(
        &org,
        "boss",
        &Employee {
            phone: "+8613800138000".to_owned(),
            ..bad_phone
        }
    )
    .is_ok());
    assert_eq!(
        Enterprise::new("x", "某公司", "91350100M000100Y44", Features::default()),
        Err(DenyCode::InvalidCreditCode)
    );
}

fn node(approvers: &[Approver], mode: SignMode) -> Node {
    Node {
        approvers: approvers.to_vec(),
        mode,
    }
}

fn member(id: &str) -> Approver {
    Approver::Member(id.to_owned())
}

fn role(r: SystemRole) -> Approver {
    Approver::Role(r.id().to_owned())
}

fn contract_request(org: &Org, flow: &Flow, submitter: &str) -> Result<ApprovalRequest, DenyCode> {
    let subject = Subject::ContractApproval {
        document_id: DOC.to_owned(),
        document_sha256: SHA.to_owned(),
    };
    let submission = Submission {
        id: "r1",
        submitter,
        reason: "",
    };
    ApprovalRequest::submit(org, flow, submission, subject, NOW)
}

#[test]
fn flows_have_one_to_ten_nodes() {
    let one = node(&[member("sa1")], SignMode::Or);
    assert!(Flow::new(Scenario::ContractApproval, vec![one.clone(); 10], DAY).is_ok());
    assert_eq!(
        Flow::new(Scenario::ContractApproval, vec![one.clone(); 11], DAY),
        Err(DenyCode::FlowInvalid)
    );
    assert_eq!(
        Flow::new(Scenario::ContractApproval, vec![], DAY),
        Err(DenyCode::FlowInvalid)
    );
    assert_eq!(
        Flow::new(
            Scenario::ContractApproval,
            vec![node(&[], SignMode::Or)],
            DAY
        ),
        Err(DenyCode::FlowInvalid)
    );
    assert_eq!(
        Flow::new(Scenario::ContractApproval, vec![one.clone()], 0),
        Err(DenyCode::FlowInvalid)
    );
    let org = org();
    let flow = Flow::new(Scenario::ContractApproval, vec![one], DAY).expect("allowed");
    assert_eq!(admin::configure_flow(&org, "it", &flow), Ok(()));
    assert_eq!(
        admin::configure_flow(&org, "alice", &flow),
        Err(DenyCode::PermissionDenied)
    );
    let to_gone = Flow::new(
        Scenario::ContractApproval,
        vec![node(&[member("gone")], SignMode::Or)],
        DAY,
    )
    .expect("allowed");
    assert_eq!(
        admin::configure_flow(&org, "it", &to_gone),
        Err(DenyCode::EmployeeResigned)
    );
    // A flow serves its own scenario only.
    let seal_use = Flow::default_for(Scenario::SealUse);
    assert_eq!(
        contract_request(&org, &seal_use, "alice"),
        Err(DenyCode::FlowInvalid)
    );
}

#[test]
fn or_sign_and_joint_sign_nodes_in_order() {
    let org = org();
    let flow = Flow::new(
        Scenario::ContractApproval,
        vec![
            node(&[member("sa1"), member("sa2")], SignMode::Or),
            node(&[member("appr"), member("legal")], SignMode::Joint),
        ],
        7 * DAY,
    )
    .expect("allowed");
    let mut r = contract_request(&org, &flow, "alice").expect("allowed");
    assert_eq!(
        r.approve(&org, "appr", NOW, None),
        Err(DenyCode::NotAnApprover),
        "not their node yet"
    );
    assert_eq!(
        r.approve(&org, "sa2", NOW, Some("同意")),
        Ok(Transition::Advanced {
            node: 1,
            stalled: false
        })
    );
    assert_eq!(
        r.approve(&org, "legal", NOW, None),
        Ok(Transition::Recorded)
    );
    assert_eq!(
        r.approve(&org, "legal", NOW, None),
        Err(DenyCode::AlreadyApproved)
    );
    assert_eq!(
        r.approve(&org, "appr", NOW + 1, None),
        Ok(Transition::Approved)
    );
    assert_eq!(r.state, ApprovalState::Approved);
    assert_eq!(
        r.approve(&org, "appr", NOW + 2, None),
        Err(DenyCode::NotPending)
    );
    assert_eq!(r.history.len(), 4);
}

#[test]
fn reject_cancel_resubmit_and_expire() {
    let org = org();
    let flow = Flow::new(
        Scenario::ContractApproval,
        vec![node(&[role(SystemRole::SealAdministrator)], SignMode::Or)],
        DAY,
    )
    .expect("allowed");
    let mut r = contract_request(&org, &flow, "alice").expect("allowed");
    assert_eq!(
        r.reject(&org, "alice", NOW, None),
        Err(DenyCode::SelfApproval)
    );
    assert_eq!(
        r.reject(&org, "sa1", NOW, Some("金额不对")),
        Ok(Transition::Rejected)
    );
    assert_eq!(r.cancel("alice", NOW), Err(DenyCode::NotPending));
    assert_eq!(r.resubmit(&org, "bob", NOW), Err(DenyCode::NotSubmitter));
    assert_eq!(
        r.resubmit(&org, "alice", NOW + 10),
        Ok(Transition::Resubmitted)
    );
    assert_eq!(
        (r.state, r.node, r.expires_at),
        (ApprovalState::Pending, 0, NOW + 10 + DAY)
    );
    assert_eq!(
        r.resubmit(&org, "alice", NOW + 10),
        Err(DenyCode::NotResubmittable)
    );
    assert_eq!(r.cancel("bob", NOW + 20), Err(DenyCode::NotSubmitter));
    assert_eq!(r.cancel("alice", NOW + 20), Ok(Transition::Canceled));
    assert_eq!(
        r.resubmit(&org, "alice", NOW + 30),
        Ok(Transition::Resubmitted)
    );
    // Past the deadline nobody approves it; it expires, and may be resubmitted.
    let late = NOW + 30 + DAY;
    assert_eq!(
        r.approve(&org, "sa1", late, None),
        Err(DenyCode::ApprovalExpired)
    );
    assert!(!r.expire_if_due(late - 1));
    assert!(r.expire_if_due(late));
    assert_eq!(r.state, ApprovalState::Expired);
    assert_eq!(r.resubmit(&org, "alice", late), Ok(Transition::Resubmitted));
    assert_eq!(r.approve(&org, "sa1", late, None), Ok(Transition::Approved));
}

#[test]
fn resigned_approvers_drop_out_and_an_empty_node_is_reported() {
    let mut org = org();
    let flow = Flow::new(
        Scenario::ContractApproval,
        vec![
            node(&[member("sa1"), member("sa2")], SignMode::Joint),
            node(&[member("appr")], SignMode::Or),
        ],
        DAY,
    )
    .expect("allowed");
    let mut r = contract_request(&org, &flow, "alice").expect("allowed");
    assert_eq!(r.approve(&org, "sa1", NOW, None), Ok(Transition::Recorded));
    // sa2 resigns before approving: the joint node completes with the approvers left.
    org.employee_mut("sa2").expect("allowed").status = EmployeeStatus::Resigned;
    assert_eq!(
        r.settle(&org),
        Some(Transition::Advanced {
            node: 1,
            stalled: false
        })
    );
    // appr resigns too: nobody may approve node 1, and the request says so.
    org.employee_mut("appr").expect("allowed").status = EmployeeStatus::Resigned;
    assert_eq!(r.stalled(&org), Some(1));
    let center = pending_center(std::slice::from_ref(&r), &org, "alice", NOW);
    assert_eq!(center.stalled.len(), 1);
    // A flow whose first node has nobody eligible is refused at submission.
    let only_self = Flow::new(
        Scenario::ContractApproval,
        vec![node(&[member("alice"), member("gone")], SignMode::Or)],
        DAY,
    )
    .expect("allowed");
    assert_eq!(
        contract_request(&org, &only_self, "alice").expect_err("refused"),
        DenyCode::NoEligibleApprover
    );
}

#[test]
fn seal_use_application_to_grant_to_one_signature() {
    let org = org();
    let s = seals();
    let flow = Flow::default_for(Scenario::SealUse);
    let contract = find(&s, "contract");
    let apply = |who: &str, seal: &Seal, u: SealUse| {
        grant::apply(
            &org,
            seal,
            &flow,
            Submission {
                id: "u1",
                submitter: who,
                reason: "客户合同",
            },
            u,
            NOW,
        )
    };
    assert_eq!(
        apply("alice", contract, seal_use("contract")).expect_err("refused"),
        DenyCode::AlreadyHolder
    );
    assert_eq!(
        apply("bob", find(&s, "legal-seal"), seal_use("legal-seal")).expect_err("refused"),
        DenyCode::LegalRepresentativeOnly
    );
    assert_eq!(
        apply("bob", find(&s, "finance"), seal_use("finance")).expect_err("refused"),
        DenyCode::SealDisabled
    );
    assert_eq!(
        apply("gone", contract, seal_use("contract")).expect_err("refused"),
        DenyCode::EmployeeResigned
    );
    for bad in [
        SealUse {
            document_sha256: "ABC".to_owned(),
            ..seal_use("contract")
        },
        SealUse {
            uses: 0,
            ..seal_use("contract")
        },
        SealUse {
            valid_until: NOW,
            ..seal_use("contract")
        },
        SealUse {
            valid_until: NOW + 400 * DAY,
            ..seal_use("contract")
        },
        SealUse {
            document_id: String::new(),
            ..seal_use("contract")
        },
    ] {
        assert_eq!(
            apply("bob", contract, bad.clone()).expect_err("refused"),
            DenyCode::InvalidApplication,
            "{bad:?}"
        );
    }
    let mut request = apply("bob", contract, seal_use("contract")).expect("allowed");
    assert_eq!(
        Grant::from_approved(&request, "g1"),
        Err(DenyCode::NotPending),
        "not approved yet"
    );
    assert_eq!(
        request.approve(&org, "appr", NOW + 60, None),
        Ok(Transition::Approved)
    );
    let mut g = Grant::from_approved(&request, "g1").expect("allowed");
    assert_eq!((g.employee.as_str(), g.uses_left), ("bob", 1));
    let mut case = Case::base();
    case.employee = Some("bob".to_owned());
    case.grants = vec![g.clone()];
    assert_eq!(case.decide(), grant_permit("g1"));
    g.consume(SHA, NOW + 120).expect("allowed");
    assert_eq!(g.consume(SHA, NOW + 121), Err(DenyCode::GrantUsedUp));
    case.grants = vec![g];
    assert_eq!(case.decide(), deny(DenyCode::GrantUsedUp));
}

#[test]
fn the_pending_center_lists_what_waits_for_me_what_i_submitted_and_what_expires_soon() {
    let org = org();
    let short = Flow::new(
        Scenario::ContractApproval,
        vec![node(&[member("sa1")], SignMode::Or)],
        2 * DAY,
    )
    .expect("allowed");
    let long = Flow::new(
        Scenario::ContractApproval,
        vec![node(&[member("sa1")], SignMode::Or)],
        10 * DAY,
    )
    .expect("allowed");
    let mut soon = contract_request(&org, &short, "alice").expect("allowed");
    soon.id = "soon".to_owned();
    let mut later = contract_request(&org, &long, "bob").expect("allowed");
    later.id = "later".to_owned();
    let mut done = contract_request(&org, &long, "alice").expect("allowed");
    done.id = "done".to_owned();
    done.approve(&org, "sa1", NOW, None).expect("allowed");
    let all = vec![soon, later, done];
    let ids = |list: &[&ApprovalRequest]| list.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let sa1 = pending_center(&all, &org, "sa1", NOW + 1);
    assert_eq!(ids(&sa1.waiting_for_me), ["soon", "later"]);
    assert_eq!(ids(&sa1.expiring_soon), ["soon"]);
    assert!(sa1.submitted_by_me.is_empty());
    let alice = pending_center(&all, &org, "alice", NOW + 1);
    assert_eq!(ids(&alice.submitted_by_me), ["soon"]);
    assert!(alice.waiting_for_me.is_empty());
    // Eight days on, "later" expires within three days; "soon" has expired.
    let sa1 = pending_center(&all, &org, "sa1", NOW + 8 * DAY);
    assert_eq!(ids(&sa1.waiting_for_me), ["later"]);
    assert_eq!(ids(&sa1.expiring_soon), ["later"]);
}

#[test]
fn resignation_hands_everything_over() {
    let mut org = org();
    let mut s = seals();
    let flow = Flow::new(
        Scenario::ContractApproval,
        vec![node(&[member("alice"), member("sa1")], SignMode::Joint)],
        DAY,
    )
    .expect("allowed");
    let mut approving = contract_request(&org, &flow, "bob").expect("allowed");
    approving.id = "alice-approves".to_owned();
    s[2].status = SealStatus::Active;
    let use_finance = seal_use("finance");
    let seal_flow = Flow::default_for(Scenario::SealUse);
    let submitted = grant::apply(
        &org,
        &s[2],
        &seal_flow,
        Submission {
            id: "alice-applied",
            submitter: "alice",
            reason: "",
        },
        use_finance,
        NOW,
    )
    .expect("allowed");
    let mut other = contract_request(
        &org,
        &Flow::default_for(Scenario::ContractApproval),
        "carol",
    );
    assert_eq!(
        other.as_ref().expect_err("refused"),
        &DenyCode::NoEligibleApprover,
        "no contract administrator"
    );
    other = contract_request(&org, &flow, "carol");
    let mut unrelated = other.expect("allowed");
    unrelated.id = "unrelated".to_owned();
    unrelated.flow.nodes[0].approvers = vec![member("sa1")];
    let mut requests = vec![approving, submitted, unrelated];

    assert_eq!(
        admin::resign(&org, &s, &requests, "boss", "boss", "carol"),
        Err(DenyCode::SuperAdministratorRequired)
    );
    assert_eq!(
        admin::resign(&org, &s, &requests, "boss", "alice", "alice"),
        Err(DenyCode::HandoverInvalid)
    );
    assert_eq!(
        admin::resign(&org, &s, &requests, "boss", "alice", "gone"),
        Err(DenyCode::HandoverInvalid)
    );
    assert_eq!(
        admin::resign(&org, &s, &requests, "carol", "alice", "bob"),
        Err(DenyCode::PermissionDenied)
    );
    let handover = admin::resign(&org, &s, &requests, "dadmin", "alice", "carol").expect("allowed");
    assert_eq!(handover.requests, ["alice-approves", "alice-applied"]);
    assert_eq!(handover.seals, ["official", "contract", "pending"]);
    handover.apply(&mut org, &mut s, &mut requests, NOW + 5);
    assert_eq!(
        org.active_employee("alice"),
        Err(DenyCode::EmployeeResigned)
    );
    assert!(find(&s, "contract").is_holder("carol") && !find(&s, "contract").is_holder("alice"));
    assert!(
        find(&s, "deleted").is_holder("alice"),
        "deleted seals stay as they were"
    );
    assert_eq!(requests[1].submitter, "carol");
    assert_eq!(requests[0].eligible(&org, 0), ["carol", "sa1"]);
    assert_eq!(
        requests[0].approve(&org, "carol", NOW + 6, None),
        Ok(Transition::Recorded)
    );
    // The resigned employee can no longer act.
    let mut case = Case::base();
    case.org = org.clone();
    case.seals = s.clone();
    assert_eq!(case.decide(), deny(DenyCode::EmployeeResigned));
    case.employee = Some("carol".to_owned());
    assert_eq!(case.decide(), HOLDER);
}

#[test]
fn personal_seals_are_released_on_resignation() {
    let mut org = org();
    let mut s = seals();
    let handover = admin::resign(&org, &s, &[], "boss", "carol", "bob").expect("allowed");
    assert_eq!(handover.seals, ["finance"]);
    assert_eq!(handover.released, ["practice", "practice-ok"]);
    handover.apply(&mut org, &mut s, &mut [], NOW);
    let p = find(&s, "practice-ok");
    assert!(p.holders.is_empty() && !p.practice_authorized && p.status == SealStatus::Disabled);
    assert!(find(&s, "finance").is_holder("bob"));
}

#[test]
fn permission_and_contract_applications() {
    let org = org();
    let flow = Flow::default_for(Scenario::PermissionApplication);
    let sub = |id| Submission {
        id,
        submitter: "alice",
        reason: "",
    };
    let mut r = ApprovalRequest::role_application(&org, &flow, sub("p1"), "seal_approver", NOW)
        .expect("submitted");
    assert_eq!(
        r.eligible(&org, 0),
        ["boss"],
        "the super administrator decides by default"
    );
    for (role, code) in [
        ("super_administrator", DenyCode::RoleNotApplicable),
        ("legal_representative", DenyCode::RoleNotApplicable),
        ("business_staff", DenyCode::RoleHeld),
        ("nope", DenyCode::RoleNotFound),
    ] {
        assert_eq!(
            ApprovalRequest::role_application(&org, &flow, sub("p2"), role, NOW),
            Err(code),
            "{role}"
        );
    }
    assert_eq!(r.role_granted(&org), Err(DenyCode::NotPending));
    assert_eq!(r.approve(&org, "boss", NOW, None), Ok(Transition::Approved));
    let granted = r.role_granted(&org).expect("granted");
    assert!(granted.has_role(
        granted.employee("alice").expect("alice"),
        SystemRole::SealApprover
    ));
    // Who may see a request: its submitter, who acted on it, who may approve it, the super administrator.
    assert!(r.visible_to(&org, "alice") && r.visible_to(&org, "boss"));
    assert!(!r.visible_to(&org, "bob"));

    let contract_flow = Flow::new(
        Scenario::ContractApproval,
        vec![node(&[member("sa1")], SignMode::Or)],
        DAY,
    )
    .expect("flow");
    let c = ApprovalRequest::contract_approval(&org, &contract_flow, sub("c1"), DOC, SHA, NOW)
        .expect("submitted");
    assert!(c.visible_to(&org, "sa1") && !c.visible_to(&org, "bob"));
    assert_eq!(
        ApprovalRequest::contract_approval(&org, &contract_flow, sub("c2"), DOC, "nothex", NOW),
        Err(DenyCode::InvalidApplication)
    );
}

#[test]
fn who_sets_and_resets_a_signing_password() {
    let org = org();
    // One's own: the first time freely, later with the old one.
    assert_eq!(
        password::may_set(&org, "alice", "alice", false, false),
        Ok(())
    );
    assert_eq!(
        password::may_set(&org, "alice", "alice", true, true),
        Ok(())
    );
    assert_eq!(
        password::may_set(&org, "alice", "alice", true, false),
        Err(DenyCode::SigningPasswordRequired)
    );
    assert_eq!(
        password::may_set(&org, "boss", "alice", false, false),
        Err(DenyCode::PermissionDenied),
        "nobody sets another's"
    );
    // Reset: organization management over the employee's department.
    assert_eq!(password::may_reset(&org, "boss", "alice"), Ok(()));
    assert_eq!(
        password::may_reset(&org, "dadmin", "alice"),
        Ok(()),
        "sales-east is below sales"
    );
    assert_eq!(
        password::may_reset(&org, "dadmin", "carol"),
        Err(DenyCode::PermissionDenied)
    );
    assert_eq!(
        password::may_reset(&org, "bob", "alice"),
        Err(DenyCode::PermissionDenied)
    );
    assert_eq!(
        password::may_reset(&org, "gone", "alice"),
        Err(DenyCode::EmployeeResigned)
    );
}

#[test]
fn only_the_super_administrator_or_the_legal_representative_switches_features() {
    let org = org();
    let on = Features {
        auto_sign: true,
        page_seal: true,
        forced_contract_approval: true,
    };
    for who in ["boss", "legal"] {
        assert_eq!(
            admin::set_features(&org, who, on)
                .expect("switched")
                .enterprise
                .features,
            on,
            "{who}"
        );
    }
    for who in ["sa1", "it", "alice"] {
        assert_eq!(
            admin::set_features(&org, who, on),
            Err(DenyCode::FeaturesReserved),
            "{who}"
        );
    }
}

#[test]
fn who_sets_limits_and_the_quota() {
    let (org, s) = (org(), seals());
    let limits = limits::SealLimits {
        per_day: Some(5),
        ..limits::SealLimits::default()
    };
    assert_eq!(
        seal::set_limits(&org, "sa1", find(&s, "contract"), &limits)
            .expect("set")
            .limits,
        limits
    );
    assert_eq!(
        seal::set_limits(&org, "alice", find(&s, "contract"), &limits),
        Err(DenyCode::PermissionDenied)
    );
    assert_eq!(
        seal::set_limits(&org, "boss", find(&s, "legal-seal"), &limits),
        Err(DenyCode::LegalRepresentativeOnly)
    );
    let bad = limits::SealLimits {
        per_month: Some(0),
        ..limits::SealLimits::default()
    };
    assert_eq!(
        seal::set_limits(&org, "sa1", find(&s, "contract"), &bad),
        Err(DenyCode::InvalidLimits)
    );
    let set = admin::set_quota(&org, "legal", Some(1000), -300).expect("set");
    assert_eq!(
        (
            set.enterprise.contract_quota,
            set.enterprise.utc_offset_minutes
        ),
        (Some(1000), -300)
    );
    assert_eq!(
        admin::set_quota(&org, "sa1", Some(1000), 480),
        Err(DenyCode::QuotaReserved)
    );
    assert_eq!(
        admin::set_quota(&org, "boss", None, 15 * 60),
        Err(DenyCode::InvalidLimits)
    );
}

#[test]
fn fixes_from_review() {
    let org = org();
    // Administrators do not reset their own password around the old one.
    assert_eq!(
        password::may_reset(&org, "boss", "boss"),
        Err(DenyCode::PermissionDenied)
    );
    // Only the super administrator decides who the legal representative is.
    let managers = RoleDef::custom(
        "role-managers",
        "角色管理",
        &[Permission::RoleManagement],
        DataScope::Enterprise,
    )
    .expect("role");
    let mut with = admin::create_role(&org, "boss", &managers).expect("created");
    with = admin::assign_roles(&with, "boss", "carol", &["role-managers".to_owned()])
        .expect("assigned");
    let legal = SystemRole::LegalRepresentative.id().to_owned();
    let mut no_legal = with.clone();
    no_legal.employee_mut("legal").expect("legal").roles.clear();
    assert_eq!(
        admin::assign_roles(&with, "carol", "legal", &[]),
        Err(DenyCode::PermissionDenied)
    );
    assert_eq!(
        admin::assign_roles(&no_legal, "carol", "bob", std::slice::from_ref(&legal)),
        Err(DenyCode::PermissionDenied)
    );
    assert!(admin::assign_roles(&no_legal, "boss", "bob", std::slice::from_ref(&legal)).is_ok());
    assert!(admin::assign_roles(&with, "carol", "alice", &["seal_approver".to_owned()]).is_ok());
    // An expired contract approval is not "waiting": it is none.
    let mut case = Case::base();
    case.org.enterprise.features.forced_contract_approval = true;
    let pending = contract(&case.org, "k1", SHA, false);
    case.now = pending.expires_at;
    case.approvals = vec![pending];
    assert_eq!(case.decide(), deny(DenyCode::ContractApprovalRequired));
}

#[test]
fn a_resignation_that_completes_a_joint_node_approves_it_but_never_an_expired_one() {
    let mut org = org();
    let flow = Flow::new(
        Scenario::ContractApproval,
        vec![node(
            &[role(SystemRole::SealAdministrator)],
            SignMode::Joint,
        )],
        DAY,
    )
    .expect("flow");
    let mut r = contract_request(&org, &flow, "alice").expect("submitted");
    assert_eq!(r.approve(&org, "sa1", NOW, None), Ok(Transition::Recorded));
    let mut late = r.clone();
    late.id = "late".to_owned();
    let handover = admin::resign(&org, &[], &[], "boss", "sa2", "bob").expect("resign");
    let mut requests = [r.clone(), late];
    // The first is settled now; the second is looked at only after its deadline.
    handover.apply(&mut org.clone(), &mut [], &mut requests[..1], NOW + 10);
    handover.apply(&mut org, &mut [], &mut requests[1..], NOW + DAY);
    assert_eq!(requests[0].state, ApprovalState::Approved);
    assert!(
        requests[0]
            .history
            .iter()
            .any(|s| s.action == flow::StepAction::Handover),
        "says why"
    );
    assert_eq!(
        requests[1].state,
        ApprovalState::Pending,
        "expired: not approved by a resignation"
    );
    r.state = ApprovalState::Pending;
}

#[test]
fn who_starts_a_batch_job_of_which_template() {
    use template::may_start_job;
    let mut org = org();
    let t = templates();
    let (nda, labour) = (&t[0], &t[1]);
    assert_eq!(
        may_start_job(&org, "boss", labour),
        Err(DenyCode::AutoSignDisabled)
    );
    org.enterprise.features.auto_sign = true;
    assert_eq!(may_start_job(&org, "boss", labour), Ok(()));
    assert_eq!(
        may_start_job(&org, "alice", labour),
        Err(DenyCode::AutoSignNotAuthorized)
    );
    assert_eq!(
        may_start_job(&org, "boss", nda),
        Err(DenyCode::AutoSignTemplateRequired)
    );
    let no_batch = Template {
        allow_batch: false,
        ..labour.clone()
    };
    assert_eq!(
        may_start_job(&org, "boss", &no_batch),
        Err(DenyCode::BatchNotAllowed)
    );
    let off = Template {
        enabled: false,
        ..labour.clone()
    };
    assert_eq!(
        may_start_job(&org, "boss", &off),
        Err(DenyCode::TemplateDisabled)
    );
}
