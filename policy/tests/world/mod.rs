//! The enterprise the policy tests run against (shared by the matrix and the properties).
#![allow(dead_code)]

use seald_policy::*;

pub const NOW: i64 = 1_800_000_000;
pub const DAY: i64 = 24 * 3600;
pub const DOC: &str = "contract-2026-001";
pub const SHA: &str = "0b3c6e5b8a0f6d1e2c4a9b7d5e3f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f";
pub const OTHER_SHA: &str = "1111111111111111111111111111111111111111111111111111111111111111";

pub fn employee(id: &str, department: &str, roles: &[SystemRole]) -> Employee {
    Employee {
        id: id.to_owned(),
        name: format!("员工 {id}"),
        phone: "13800138000".to_owned(),
        department: department.to_owned(),
        roles: roles.iter().map(|r| r.id().to_owned()).collect(),
        status: EmployeeStatus::Active,
        // Everyone has set theirs; sealing by hand needs it.
        has_signing_password: true,
        auto_sign_authorized: false,
        batch_sign_authorized: false,
    }
}

fn dept(id: &str, parent: Option<&str>) -> Department {
    Department {
        id: id.to_owned(),
        name: format!("部门 {id}"),
        parent: parent.map(str::to_owned),
    }
}

/// hq ⊃ sales ⊃ sales-east, hq ⊃ finance.
pub fn org() -> Org {
    use SystemRole::*;
    let enterprise = Enterprise::new(
        "acme",
        "示例科技有限公司",
        "91350100M000100Y43",
        Features::default(),
    )
    .expect("allowed");
    let mut org = Org::new(
        enterprise,
        dept("hq", None),
        employee("boss", "hq", &[SuperAdministrator]),
    )
    .expect("allowed");
    org.departments.push(dept("sales", Some("hq")));
    org.departments.push(dept("sales-east", Some("sales")));
    org.departments.push(dept("finance", Some("hq")));
    org.employees.extend([
        employee("legal", "hq", &[LegalRepresentative]),
        employee("sa1", "hq", &[SealAdministrator]),
        employee("sa2", "hq", &[SealAdministrator]),
        employee("appr", "hq", &[SealApprover]),
        employee("dadmin", "sales", &[DepartmentAdministrator]),
        employee("it", "hq", &[ItAdministrator]),
        employee("alice", "sales-east", &[BusinessStaff]),
        employee("bob", "sales", &[BusinessStaff]),
        employee("carol", "finance", &[BusinessStaff]),
        Employee {
            status: EmployeeStatus::Resigned,
            ..employee("gone", "sales", &[BusinessStaff])
        },
    ]);
    if let Some(boss) = org.employee_mut("boss") {
        boss.auto_sign_authorized = true;
    }
    if let Some(bob) = org.employee_mut("bob") {
        bob.batch_sign_authorized = true;
    }
    org.validate().expect("allowed");
    org
}

pub fn seal(id: &str, kind: SealType, status: SealStatus, holders: &[&str]) -> Seal {
    Seal {
        name: format!("印章 {id}"),
        kind,
        holders: holders.iter().map(|h| (*h).to_owned()).collect(),
        ..Seal::registered(id, status)
    }
}

pub fn seals() -> Vec<Seal> {
    use SealStatus::*;
    use SealType::*;
    vec![
        seal("official", Official, Active, &["alice"]),
        Seal {
            department: Some("sales".to_owned()),
            ..seal("contract", Contract, Active, &["alice"])
        },
        Seal {
            department: Some("finance".to_owned()),
            ..seal("finance", Finance, Disabled, &["carol"])
        },
        seal("legal-seal", LegalRepresentative, Active, &["legal"]),
        seal("pending", Contract, PendingReview, &["alice"]),
        seal("deleted", Other, Deleted, &["alice"]),
        seal("practice", Practice, Active, &["carol"]),
        Seal {
            practice_authorized: true,
            ..seal("practice-ok", Practice, Active, &["carol"])
        },
    ]
}

/// "nda": a template for hand sealing, with a contract-seal area, a free area and a page-seal
/// area; "labour": an auto-sign template bound to the contract seal, authorized by boss (who
/// holds the auto-sign authorization); "off": a disabled one.
pub fn templates() -> Vec<Template> {
    use seald_policy::template::{AreaPage, AutoSign, FieldKind, FillField};
    let area = |id: &str, seal_type: Option<SealType>, page_seal: bool| SigningArea {
        id: id.to_owned(),
        party: "我方".to_owned(),
        seal_type,
        page: if page_seal {
            AreaPage::All(template::AllPages::All)
        } else {
            AreaPage::Page(1)
        },
        x: 120.0,
        y: 40.0,
        width: 40.0,
        page_seal,
    };
    let nda = Template {
        id: "nda".to_owned(),
        name: "保密协议".to_owned(),
        enabled: true,
        allow_batch: false,
        requires_contract_approval: false,
        areas: vec![
            area("party-a", Some(SealType::Contract), false),
            area("official", Some(SealType::Official), false),
            area("seam", None, true),
        ],
        fields: vec![FillField {
            name: "姓名".to_owned(),
            kind: FieldKind::Text,
            required: true,
        }],
        pdf_sha256: SHA.to_owned(),
        pdf_len: 1000,
        auto_sign: None,
        created_by: "boss".to_owned(),
    };
    let labour = Template {
        id: "labour".to_owned(),
        name: "劳动合同".to_owned(),
        allow_batch: true,
        areas: vec![area("employer", Some(SealType::Contract), false)],
        auto_sign: Some(AutoSign {
            seal: "contract".to_owned(),
            authorized_by: "boss".to_owned(),
        }),
        ..nda.clone()
    };
    let off = Template {
        id: "off".to_owned(),
        enabled: false,
        ..nda.clone()
    };
    vec![nda, labour, off]
}

/// The group member's unified social credit code.
pub const MEMBER: &str = "91440300MA5G000020";

/// The organization as a group's parent: member MEMBER grants its contracts, its seal
/// "sub-contract" and the nda template; gca, gsp and gsa hold the group roles.
pub fn group_org() -> Org {
    use seald_policy::group::{GroupMember, GroupScope};
    let mut org = org();
    org.members.push(GroupMember {
        credit_code: CreditCode::parse(MEMBER).expect("valid"),
        name: "子公司有限公司".to_owned(),
        scope: GroupScope {
            contracts: true,
            seals: vec!["sub-contract".to_owned()],
            templates: vec!["nda".to_owned()],
        },
        contract_quota: None,
        draw_on_parent: false,
        joined_at: NOW - DAY,
    });
    org.employees.extend([
        employee("gca", "hq", &[SystemRole::GroupContractAdministrator]),
        employee("gsp", "hq", &[SystemRole::GroupSalesperson]),
        employee("gsa", "hq", &[SystemRole::GroupSealAdministrator]),
    ]);
    org.validate().expect("allowed");
    org
}

/// The member's contract seal, kept by the parent.
pub fn member_seal() -> Seal {
    Seal {
        enterprise: Some(CreditCode::parse(MEMBER).expect("valid")),
        ..seal("sub-contract", SealType::Contract, SealStatus::Active, &[])
    }
}

/// The partner enterprise's unified social credit code.
pub const PARTNER: &str = "91310000MA1FL0001R";

/// boss (the super administrator) authorizes the partner to have the contract seal applied
/// to documents from the nda template, for a day.
pub fn partner_authorization() -> partner::PartnerAuthorization {
    let mut org = org();
    org.enterprise.features.auto_sign = true;
    let code = CreditCode::parse(PARTNER).expect("a valid code");
    partner::authorize(
        &org,
        "boss",
        &seals(),
        &["nda", "labour"],
        (&code, "合作方有限公司"),
        &partner::PartnerGrant {
            seals: vec!["contract".to_owned()],
            scope: partner::PartnerScope::Templates {
                templates: vec!["nda".to_owned()],
            },
            expires_at: NOW + DAY,
        },
        "pa-1",
        NOW - 60,
    )
    .expect("authorized")
}

pub fn find<'a>(seals: &'a [Seal], id: &str) -> &'a Seal {
    seals.iter().find(|s| s.id == id).expect("allowed")
}

/// An OA system acting for employees, with every seal.
pub fn oa() -> Application {
    Application {
        id: "oa".to_owned(),
        enabled: true,
        roles: vec![AppRole::Signer],
        seals: seals().into_iter().map(|s| s.id).collect(),
        templates: None,
        acts_for_employees: true,
        partner: None,
    }
}

pub fn grant(id: &str, employee: &str, seal: &str, uses: u32, valid_until: i64) -> Grant {
    Grant {
        id: id.to_owned(),
        approval: format!("approval-{id}"),
        seal: seal.to_owned(),
        employee: employee.to_owned(),
        document_id: DOC.to_owned(),
        document_sha256: SHA.to_owned(),
        uses_left: uses,
        valid_until,
    }
}

pub fn seal_use(seal: &str) -> flow::SealUse {
    flow::SealUse {
        seal: seal.to_owned(),
        document_id: DOC.to_owned(),
        document_sha256: SHA.to_owned(),
        uses: 1,
        valid_until: NOW + 30 * DAY,
    }
}
