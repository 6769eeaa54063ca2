//! `sealctl org|role|approval …`: seal governance in a running seald — the enterprise, its
//! departments, employees and roles, approval flows, seal-use applications and approvals.
//! Every command acts as the employee given with `--as` (or $SEALD_EMPLOYEE); seald decides
//! with that employee's permissions and audits the action. `--json` prints seald's answers.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::admin::show;
use crate::remote::{Remote, RemoteArgs};
use crate::Failure;

#[derive(Args, Debug)]
pub struct GovernanceArgs<C: Subcommand> {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Print seald's JSON answers.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: C,
}

#[derive(Subcommand, Debug)]
pub enum OrgCommand {
    /// Set up the enterprise (once, as an administering application): its top department
    /// and its super administrator.
    Init {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// The unified social credit code (18 characters).
        #[arg(long)]
        credit_code: String,
        #[arg(long, default_value = "hq")]
        department_id: String,
        #[arg(long)]
        department_name: String,
        #[arg(long)]
        admin_id: String,
        #[arg(long)]
        admin_name: String,
        #[arg(long)]
        admin_phone: String,
        /// Switch page seals (across pages' edges) on.
        #[arg(long)]
        page_seal: bool,
    },
    /// The enterprise, departments, employees and roles.
    Show,
    /// Switch the enterprise's features (as the super administrator or the legal
    /// representative); a feature not named is switched off.
    Features {
        #[arg(long)]
        auto_sign: bool,
        #[arg(long)]
        page_seal: bool,
        #[arg(long)]
        forced_contract_approval: bool,
    },
    /// Create or change a department.
    Department {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        parent: Option<String>,
    },
    /// Set the contract quota (or --unlimited) and the enterprise's UTC offset, e.g. +08:00.
    Quota {
        #[arg(long, conflicts_with = "unlimited")]
        contracts: Option<u64>,
        #[arg(long)]
        unlimited: bool,
        #[arg(long, default_value = "+08:00", allow_hyphen_values = true)]
        utc_offset: String,
    },
    /// The contract quota, what is used, and the consumption per day.
    Usage,
    /// Add or change an employee.
    Employee {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        phone: String,
        #[arg(long)]
        department: String,
    },
    /// Give an employee exactly these roles (repeat --role; none removes all).
    Roles {
        id: String,
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Record a resignation; the successor takes over pending requests, approver places and
    /// holder duties.
    Resign {
        id: String,
        #[arg(long)]
        successor: String,
    },
    /// Hand the super administrator role to another employee.
    TransferSuperAdmin {
        #[arg(long)]
        to: String,
    },
    /// Every scenario's approval flow.
    Flows,
    /// Configure a scenario's flow: one --node per node, in order, as
    /// `MODE:APPROVER[,APPROVER…]` with MODE `or` or `joint` and APPROVER `role=ID` or
    /// `member=ID`; e.g. --node or:role=seal_approver --node joint:member=cfo,member=ceo.
    Flow {
        /// seal_creation, seal_use, contract_approval or permission_application.
        scenario: String,
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
        /// Requests expire this many hours after submission.
        #[arg(long, default_value_t = 168)]
        deadline_hours: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Create or change a custom role.
    Put {
        id: String,
        #[arg(long)]
        name: String,
        /// A permission point; repeatable (seal_management, seal_use_approval,
        /// template_management, organization_management, contract_management,
        /// approval_flow_configuration, auto_sign_management, role_management).
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// own, department or enterprise.
        #[arg(long, default_value = "own")]
        scope: String,
    },
    /// Delete a custom role nobody holds.
    Delete { id: String },
    /// The system roles and the custom ones.
    List,
}

#[derive(Subcommand, Debug)]
pub enum ApprovalCommand {
    /// Apply to use a seal for one document (用印申请).
    Apply {
        #[arg(long)]
        seal: String,
        #[arg(long)]
        document_id: String,
        /// The PDF to be sealed (its SHA-256 goes into the application).
        #[arg(long, value_name = "PDF")]
        file: PathBuf,
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// The grant lasts this many hours.
        #[arg(long, default_value_t = 72)]
        valid_hours: i64,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Apply for a role (permission application).
    ApplyRole {
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Submit a contract for approval.
    ApplyContract {
        #[arg(long)]
        document_id: String,
        #[arg(long, value_name = "PDF")]
        file: PathBuf,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// What waits for me, what I submitted, what expires within 3 days, what is stalled.
    Pending,
    Show {
        id: String,
    },
    Approve {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    Reject {
        id: String,
        #[arg(long)]
        comment: Option<String>,
    },
    Cancel {
        id: String,
    },
    Resubmit {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PasswordCommand {
    /// Set your own signing password (six digits), or change it: the new one comes from
    /// $SEALD_NEW_SIGNING_PASSWORD or a no-echo prompt, the old one (with --change) from
    /// $SEALD_SIGNING_PASSWORD or a prompt. Never from an argument.
    Set {
        employee: String,
        #[arg(long)]
        change: bool,
    },
    /// As an administrator, clear an employee's signing password and its lockout.
    Reset { employee: String },
}

#[derive(Subcommand, Debug)]
pub enum QuotaCommand {
    /// Set the contract quota (or --unlimited) and the enterprise's UTC offset (as the super
    /// administrator or the legal representative); the same as `sealctl org quota`.
    Set {
        #[arg(long, conflicts_with = "unlimited")]
        contracts: Option<u64>,
        #[arg(long)]
        unlimited: bool,
        #[arg(long, default_value = "+08:00", allow_hyphen_values = true)]
        utc_offset: String,
    },
    /// The quota, what is used, and the consumption per day; the same as `sealctl org usage`.
    Show,
}

pub type QuotaArgs = GovernanceArgs<QuotaCommand>;

/// `sealctl quota …` is `sealctl org quota|usage`.
pub fn run_quota(args: QuotaArgs) -> Result<(), Failure> {
    let command = match args.command {
        QuotaCommand::Set {
            contracts,
            unlimited,
            utc_offset,
        } => OrgCommand::Quota {
            contracts,
            unlimited,
            utc_offset,
        },
        QuotaCommand::Show => OrgCommand::Usage,
    };
    run_org(GovernanceArgs {
        remote: args.remote,
        json: args.json,
        command,
    })
}

pub type OrgArgs = GovernanceArgs<OrgCommand>;
pub type PasswordArgs = GovernanceArgs<PasswordCommand>;
pub type RoleArgs = GovernanceArgs<RoleCommand>;
pub type ApprovalArgs = GovernanceArgs<ApprovalCommand>;

pub fn done(v: &Value, json_out: bool, what: &str) {
    show(v, json_out, |_| what.to_owned());
}

/// `MODE:role=ID,member=ID` → a flow node.
fn node(text: &str) -> Result<Value, Failure> {
    let bad = || {
        Failure::usage(format!(
            "--node '{text}': give MODE:APPROVER[,APPROVER…], MODE or/joint, APPROVER role=ID or member=ID"
        ))
    };
    let (mode, approvers) = text.split_once(':').ok_or_else(bad)?;
    if mode != "or" && mode != "joint" {
        return Err(bad());
    }
    let approvers = approvers
        .split(',')
        .map(|a| match a.split_once('=') {
            Some(("role", id)) if !id.is_empty() => Ok(json!({ "role": id })),
            Some(("member", id)) if !id.is_empty() => Ok(json!({ "member": id })),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "mode": mode, "approvers": approvers }))
}

pub fn run_org(args: OrgArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    let j = args.json;
    match args.command {
        OrgCommand::Init {
            id,
            name,
            credit_code,
            department_id,
            department_name,
            admin_id,
            admin_name,
            admin_phone,
            page_seal,
        } => {
            let body = json!({
                "enterprise": {"id": id, "name": name, "credit_code": credit_code, "features": {"page_seal": page_seal}},
                "department": {"id": department_id, "name": department_name},
                "super_administrator": {"id": admin_id, "name": admin_name, "phone": admin_phone},
            });
            let v = remote.post_json("/v1/org", &body)?;
            done(
                &v,
                j,
                &format!("enterprise '{id}' set up; '{admin_id}' is its super administrator"),
            );
        }
        OrgCommand::Show => {
            let v: Value = remote.get_json("/v1/org")?;
            show(&v, j, |v| {
                let mut out = format!(
                    "{} ({}) {}\n",
                    v["enterprise"]["name"].as_str().unwrap_or(""),
                    v["enterprise"]["id"].as_str().unwrap_or(""),
                    v["enterprise"]["credit_code"].as_str().unwrap_or("")
                );
                for d in v["departments"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "department\t{}\t{}\tparent={}\n",
                        d["id"].as_str().unwrap_or(""),
                        d["name"].as_str().unwrap_or(""),
                        d["parent"].as_str().unwrap_or("-")
                    ));
                }
                for e in v["employees"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "employee\t{}\t{}\t{}\t{}\troles={}\n",
                        e["id"].as_str().unwrap_or(""),
                        e["name"].as_str().unwrap_or(""),
                        e["department"].as_str().unwrap_or(""),
                        e["status"].as_str().unwrap_or(""),
                        e["roles"]
                    ));
                }
                out.trim_end().to_owned()
            });
        }
        OrgCommand::Features {
            auto_sign,
            page_seal,
            forced_contract_approval,
        } => {
            let features = json!({
                "auto_sign": auto_sign, "page_seal": page_seal,
                "forced_contract_approval": forced_contract_approval,
            });
            let v = remote.put_json("/v1/org/features", &features)?;
            done(&v, j, &format!("features: {features}"));
        }
        OrgCommand::Quota {
            contracts,
            unlimited,
            utc_offset,
        } => {
            if contracts.is_none() && !unlimited {
                return Err(Failure::usage("give --contracts N or --unlimited"));
            }
            let body = json!({"contract_quota": contracts, "utc_offset_minutes": crate::sign::parse_offset(&utc_offset)?});
            let v = remote.put_json("/v1/org/quota", &body)?;
            done(&v, j, "contract quota and time zone set");
        }
        OrgCommand::Usage => {
            let v: Value = remote.get_json("/v1/org/quota")?;
            show(&v, j, |v| {
                let mut out = format!(
                    "contracts: {} used of {}\n",
                    v["used"],
                    v["contract_quota"]
                        .as_u64()
                        .map_or("unlimited".to_owned(), |q| q.to_string())
                );
                for d in v["by_day"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "{}\t{}\n",
                        d["date"].as_str().unwrap_or(""),
                        d["contracts"]
                    ));
                }
                out.trim_end().to_owned()
            });
        }
        OrgCommand::Department { id, name, parent } => {
            let v = remote.put_json(
                &format!("/v1/org/departments/{id}"),
                &json!({"name": name, "parent": parent}),
            )?;
            done(&v, j, &format!("department '{id}' stored"));
        }
        OrgCommand::Employee {
            id,
            name,
            phone,
            department,
        } => {
            let v = remote.put_json(
                &format!("/v1/org/employees/{id}"),
                &json!({"name": name, "phone": phone, "department": department}),
            )?;
            done(&v, j, &format!("employee '{id}' stored"));
        }
        OrgCommand::Roles { id, roles } => {
            let v = remote.put_json(
                &format!("/v1/org/employees/{id}/roles"),
                &json!({ "roles": roles }),
            )?;
            done(&v, j, &format!("employee '{id}' now holds {roles:?}"));
        }
        OrgCommand::Resign { id, successor } => {
            let v = remote.post_json(
                &format!("/v1/org/employees/{id}/resign"),
                &json!({ "successor": successor }),
            )?;
            show(&v, j, |v| {
                format!(
                    "'{id}' resigned; '{successor}' took over requests {} and holder duties on {}; released {}",
                    v["requests"], v["seals"], v["released"]
                )
            });
        }
        OrgCommand::TransferSuperAdmin { to } => {
            let v = remote.post_json("/v1/org/super-administrator", &json!({ "to": to }))?;
            done(&v, j, &format!("'{to}' is the super administrator"));
        }
        OrgCommand::Flows => {
            let v: Value = remote.get_json("/v1/org/flows")?;
            show(&v, j, |v| {
                let mut out = String::new();
                for f in v["flows"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "{}\t{}\t{}\n",
                        f["scenario"].as_str().unwrap_or(""),
                        if f["configured"] == true {
                            "configured"
                        } else {
                            "default"
                        },
                        f["flow"]["nodes"]
                    ));
                }
                out.trim_end().to_owned()
            });
        }
        OrgCommand::Flow {
            scenario,
            nodes,
            deadline_hours,
        } => {
            let nodes = nodes
                .iter()
                .map(|n| node(n))
                .collect::<Result<Vec<_>, _>>()?;
            let body =
                json!({"nodes": nodes, "deadline_seconds": deadline_hours.saturating_mul(3600)});
            let v = remote.put_json(&format!("/v1/org/flows/{scenario}"), &body)?;
            done(&v, j, &format!("the {scenario} flow is configured"));
        }
    }
    Ok(())
}

pub fn run_role(args: RoleArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    let j = args.json;
    match args.command {
        RoleCommand::Put {
            id,
            name,
            permissions,
            scope,
        } => {
            let v = remote.put_json(
                &format!("/v1/org/roles/{id}"),
                &json!({"name": name, "permissions": permissions, "scope": scope}),
            )?;
            done(&v, j, &format!("role '{id}' stored"));
        }
        RoleCommand::Delete { id } => {
            let v = remote.delete(&format!("/v1/org/roles/{id}"))?;
            done(&v, j, &format!("role '{id}' deleted"));
        }
        RoleCommand::List => {
            let v: Value = remote.get_json("/v1/org")?;
            let roles = v["roles"].clone();
            show(&roles, j, |roles| {
                let mut out = String::new();
                for r in roles.as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\t{}\n",
                        r["id"].as_str().unwrap_or(""),
                        if r["system"].is_null() {
                            "custom"
                        } else {
                            "system"
                        },
                        r["scope"].as_str().unwrap_or(""),
                        r["permissions"],
                        r["name"].as_str().unwrap_or("")
                    ));
                }
                out.trim_end().to_owned()
            });
        }
    }
    Ok(())
}

fn summary(r: &Value) -> String {
    format!(
        "{}\t{}\t{}\tsubmitter={}\tnode={}\teligible={}\texpires_at={}",
        r["id"].as_str().unwrap_or(""),
        r["scenario"].as_str().unwrap_or(""),
        r["state"].as_str().unwrap_or(""),
        r["submitter"].as_str().unwrap_or(""),
        r["node"],
        r["eligible"],
        r["expires_at"]
    )
}

fn sha256_file(path: &std::path::Path) -> Result<String, Failure> {
    use sha2::Digest;
    let bytes = crate::read_file(path)?;
    Ok(hex::encode(sha2::Sha256::digest(&bytes)))
}

fn step(
    remote: &Remote,
    j: bool,
    id: &str,
    action: &str,
    comment: Option<String>,
) -> Result<(), Failure> {
    let v = remote.post_json(
        &format!("/v1/approvals/{id}/{action}"),
        &json!({ "comment": comment }),
    )?;
    show(&v, j, summary);
    Ok(())
}

pub fn run_approval(args: ApprovalArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    let j = args.json;
    match args.command {
        ApprovalCommand::Apply {
            seal,
            document_id,
            file,
            uses,
            valid_hours,
            reason,
        } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let body = json!({
                "seal": seal, "document_id": document_id, "document_sha256": sha256_file(&file)?,
                "uses": uses, "valid_until": now + valid_hours.saturating_mul(3600), "reason": reason,
            });
            let v = remote.post_json("/v1/approvals", &body)?;
            show(&v, j, |v| format!("submitted: {}", summary(v)));
        }
        ApprovalCommand::ApplyRole { role, reason } => {
            let body =
                json!({"scenario": "permission_application", "role": role, "reason": reason});
            let v = remote.post_json("/v1/approvals", &body)?;
            show(&v, j, |v| format!("submitted: {}", summary(v)));
        }
        ApprovalCommand::ApplyContract {
            document_id,
            file,
            reason,
        } => {
            let body = json!({
                "scenario": "contract_approval", "document_id": document_id,
                "document_sha256": sha256_file(&file)?, "reason": reason,
            });
            let v = remote.post_json("/v1/approvals", &body)?;
            show(&v, j, |v| format!("submitted: {}", summary(v)));
        }
        ApprovalCommand::Pending => {
            let v: Value = remote.get_json("/v1/approvals/pending")?;
            show(&v, j, |v| {
                let mut out = String::new();
                for (title, key) in [
                    ("waiting for me", "waiting_for_me"),
                    ("submitted by me", "submitted_by_me"),
                    ("expiring within 3 days", "expiring_soon"),
                    ("stalled (nobody may approve)", "stalled"),
                ] {
                    out.push_str(&format!("{title}:\n"));
                    for r in v[key].as_array().into_iter().flatten() {
                        out.push_str(&format!("  {}\n", summary(r)));
                    }
                }
                out.trim_end().to_owned()
            });
        }
        ApprovalCommand::Show { id } => {
            let v: Value = remote.get_json(&format!("/v1/approvals/{id}"))?;
            show(&v, j, summary);
        }
        ApprovalCommand::Approve { id, comment } => step(&remote, j, &id, "approve", comment)?,
        ApprovalCommand::Reject { id, comment } => step(&remote, j, &id, "reject", comment)?,
        ApprovalCommand::Cancel { id } => step(&remote, j, &id, "cancel", None)?,
        ApprovalCommand::Resubmit { id } => step(&remote, j, &id, "resubmit", None)?,
    }
    Ok(())
}

/// A secret from `env`, else a no-echo prompt (twice when `confirm`).
pub fn secret(what: &str, env: &str, confirm: bool) -> Result<zeroize::Zeroizing<String>, Failure> {
    if let Ok(v) = std::env::var(env) {
        return Ok(zeroize::Zeroizing::new(v));
    }
    let ask = |prompt: String| {
        rpassword::prompt_password(prompt)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| {
                Failure::usage(format!(
                    "no {what} given and none can be asked for ({e}): set {env}"
                ))
            })
    };
    let first = ask(format!("{what}: "))?;
    if confirm && *ask(format!("{what} again: "))? != *first {
        return Err(Failure::usage(format!("the two {what}s differ")));
    }
    Ok(first)
}

pub fn run_password(args: PasswordArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    let j = args.json;
    match args.command {
        PasswordCommand::Set { employee, change } => {
            let old = change
                .then(|| secret("current signing password", "SEALD_SIGNING_PASSWORD", false))
                .transpose()?;
            let new = secret("new signing password", "SEALD_NEW_SIGNING_PASSWORD", true)?;
            let body = json!({ "old": old.as_deref().map(String::as_str), "new": new.as_str() });
            let v = remote.put_json(
                &format!("/v1/org/employees/{employee}/signing-password"),
                &body,
            )?;
            done(&v, j, &format!("signing password of '{employee}' set"));
        }
        PasswordCommand::Reset { employee } => {
            let v = remote.post_json(
                &format!("/v1/org/employees/{employee}/signing-password/reset"),
                &json!({}),
            )?;
            done(
                &v,
                j,
                &format!("signing password of '{employee}' cleared: they set a new one"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_nodes_are_parsed_or_refused_with_the_syntax() {
        assert_eq!(
            node("joint:role=seal_approver,member=cfo").expect("parsed"),
            json!({"mode": "joint", "approvers": [{"role": "seal_approver"}, {"member": "cfo"}]})
        );
        for bad in ["or", "any:role=x", "or:boss", "or:role=", "or:"] {
            assert!(node(bad).is_err(), "{bad}");
        }
    }
}
