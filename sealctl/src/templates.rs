//! `sealctl template|autosign|batchsign|partner|group …`: templates (with their signing
//! areas and an auto-sign seal), the auto-sign and batch-sign authorizations, batch-sign
//! confirmations, partner authorizations and group members, in a running seald, acting as the
//! employee given with `--as`.

use std::path::PathBuf;

use base64::Engine;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::admin::show;
use crate::governance::{done, secret, GovernanceArgs};
use crate::Failure;

#[derive(Subcommand, Debug)]
pub enum TemplateCommand {
    /// Create or change a template from a JSON file (name, areas, fields, allow_batch,
    /// requires_contract_approval, enabled, auto_sign_seal — see docs/policy.md); --pdf gives
    /// its PDF (needed for a new template).
    Put {
        id: String,
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        pdf: Option<PathBuf>,
    },
    List,
    Show {
        id: String,
    },
    /// Write the template PDF to --out.
    Pdf {
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
    Enable {
        id: String,
    },
    Disable {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuthorizationCommand {
    /// Grant the authorization (as the super administrator or the legal representative).
    Grant { employee: String },
    /// Revoke it: it stops working at the very next request.
    Revoke { employee: String },
}

#[derive(Subcommand, Debug)]
pub enum BatchSignCommand {
    /// Grant the batch-sign authorization (super administrator or legal representative).
    Grant { employee: String },
    /// Revoke it: open confirmations stop working at the very next request.
    Revoke { employee: String },
    /// Confirm up to --count signatures within --lifetime seconds with your signing password
    /// ($SEALD_SIGNING_PASSWORD or a no-echo prompt); prints the token sign requests carry in
    /// Seald-Batch-Confirmation.
    Confirm {
        #[arg(long)]
        count: u32,
        #[arg(long)]
        lifetime: i64,
        /// Only for this seal.
        #[arg(long)]
        seal: Option<String>,
    },
    /// What is left of one of your confirmations.
    Show { id: String },
    /// End one of your confirmations now.
    End { id: String },
}

pub type TemplateArgs = GovernanceArgs<TemplateCommand>;
pub type AutoSignArgs = GovernanceArgs<AuthorizationCommand>;
pub type BatchSignArgs = GovernanceArgs<BatchSignCommand>;

fn authorize(
    remote: &crate::remote::Remote,
    j: bool,
    employee: &str,
    what: &str,
    granted: bool,
) -> Result<(), Failure> {
    let v = remote.put_json(
        &format!("/v1/org/employees/{employee}/authorizations/{what}"),
        &json!({ "granted": granted }),
    )?;
    let verb = if granted {
        "granted to"
    } else {
        "revoked from"
    };
    done(&v, j, &format!("{what} authorization {verb} '{employee}'"));
    Ok(())
}

pub fn run_template(args: TemplateArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    let j = args.json;
    match args.command {
        TemplateCommand::Put { id, file, pdf } => {
            let mut body: Value = serde_json::from_slice(&crate::read_file(&file)?)
                .map_err(|e| Failure::usage(format!("{}: not JSON: {e}", file.display())))?;
            if let Some(pdf) = pdf {
                let bytes = crate::read_file(&pdf)?;
                body["pdf_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            let v = remote.put_json(&format!("/v1/templates/{id}"), &body)?;
            show(&v, j, |v| match v["auto_sign"]["seal"].as_str() {
                Some(seal) => format!("template '{id}' stored: auto-sign with seal '{seal}'"),
                None => format!("template '{id}' stored"),
            });
        }
        TemplateCommand::List => {
            let v: Value = remote.get_json("/v1/templates")?;
            show(&v, j, |v| {
                v["templates"]
                    .as_array()
                    .map(|all| {
                        all.iter()
                            .map(|t| {
                                format!(
                                    "{}\t{}\t{}\t{}",
                                    t["id"].as_str().unwrap_or(""),
                                    if t["enabled"] == json!(true) {
                                        "enabled"
                                    } else {
                                        "disabled"
                                    },
                                    t["auto_sign"]["seal"]
                                        .as_str()
                                        .map_or("-".to_owned(), |s| format!("auto-sign:{s}")),
                                    t["name"].as_str().unwrap_or(""),
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            });
        }
        TemplateCommand::Show { id } => {
            let v: Value = remote.get_json(&format!("/v1/templates/{id}"))?;
            show(&v, true, |_| String::new());
        }
        TemplateCommand::Pdf { id, out } => {
            let response = remote.get(&format!("/v1/templates/{id}/pdf"))?;
            let bytes = response
                .bytes()
                .map_err(|e| Failure::failed(format!("cannot read the template PDF: {e}")))?;
            std::fs::write(&out, &bytes)
                .map_err(|e| Failure::failed(format!("cannot write {}: {e}", out.display())))?;
            done(
                &json!({ "template": id, "bytes": bytes.len() }),
                j,
                &format!("wrote {}", out.display()),
            );
        }
        TemplateCommand::Enable { id } => {
            let v = remote.post_json(&format!("/v1/templates/{id}/enable"), &json!({}))?;
            done(&v, j, &format!("template '{id}' enabled"));
        }
        TemplateCommand::Disable { id } => {
            let v = remote.post_json(&format!("/v1/templates/{id}/disable"), &json!({}))?;
            done(
                &v,
                j,
                &format!("template '{id}' disabled: it signs nothing"),
            );
        }
        TemplateCommand::Delete { id } => {
            let v = remote.delete(&format!("/v1/templates/{id}"))?;
            done(&v, j, &format!("template '{id}' deleted"));
        }
    }
    Ok(())
}

pub fn run_autosign(args: AutoSignArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    match args.command {
        AuthorizationCommand::Grant { employee } => {
            authorize(&remote, args.json, &employee, "auto_sign", true)
        }
        AuthorizationCommand::Revoke { employee } => {
            authorize(&remote, args.json, &employee, "auto_sign", false)
        }
    }
}

pub fn run_batchsign(args: BatchSignArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    let j = args.json;
    match args.command {
        BatchSignCommand::Grant { employee } => {
            authorize(&remote, j, &employee, "batch_sign", true)?
        }
        BatchSignCommand::Revoke { employee } => {
            authorize(&remote, j, &employee, "batch_sign", false)?
        }
        BatchSignCommand::Confirm {
            count,
            lifetime,
            seal,
        } => {
            let password = secret("signing password", "SEALD_SIGNING_PASSWORD", false)?;
            let body = json!({ "count": count, "lifetime_seconds": lifetime, "seal": seal });
            let v = remote.post_json_with(
                "/v1/batch-confirmations",
                &body,
                &[("Seald-Signing-Password", password.as_str())],
            )?;
            show(&v, j, |v| {
                format!(
                    "batch confirmation {} for {} signatures until {}\ntoken (send it as Seald-Batch-Confirmation; it is shown once): {}",
                    v["id"].as_str().unwrap_or(""),
                    v["count"],
                    v["expires_at"],
                    v["token"].as_str().unwrap_or("")
                )
            });
        }
        BatchSignCommand::Show { id } => {
            let v: Value = remote.get_json(&format!("/v1/batch-confirmations/{id}"))?;
            show(&v, j, |v| {
                format!(
                    "{id}: {} of {} used, {} left, until {}",
                    v["used"], v["count"], v["left"], v["expires_at"]
                )
            });
        }
        BatchSignCommand::End { id } => {
            let v = remote.delete(&format!("/v1/batch-confirmations/{id}"))?;
            done(&v, j, &format!("batch confirmation {id} ended"));
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum PartnerCommand {
    /// As a partner's application: send this enterprise an invitation link.
    Invite {
        /// The partner enterprise's name.
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        message: String,
    },
    /// Who an invitation link is from, and whether it is still good.
    Invitation { token: String },
    /// Accept an invitation (super administrator or legal representative).
    Accept {
        token: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// Authorize a partner without an invitation.
    Grant {
        /// The partner's unified social credit code.
        #[arg(long)]
        partner: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// Every partner authorization.
    List,
    /// Revoke one: the partner's very next request is refused.
    Revoke { id: String },
}

#[derive(clap::Args, Debug)]
pub struct GrantArgs {
    /// A seal the partner may have applied (repeat).
    #[arg(long = "seal", required = true)]
    seals: Vec<String>,
    /// Only documents from this template (repeat); without any, documents the partner
    /// initiates.
    #[arg(long = "template")]
    templates: Vec<String>,
    /// Days until it expires.
    #[arg(long, default_value_t = 365)]
    days: i64,
}

impl GrantArgs {
    fn body(&self) -> Result<Value, Failure> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| Failure::failed(format!("the clock is before 1970: {e}")))?
            .as_secs() as i64;
        let scope = if self.templates.is_empty() {
            json!({ "kind": "initiated" })
        } else {
            json!({ "kind": "templates", "templates": self.templates })
        };
        Ok(json!({
            "seals": self.seals, "scope": scope,
            "expires_at": now.saturating_add(self.days.saturating_mul(86_400)),
        }))
    }
}

pub type PartnerArgs = GovernanceArgs<PartnerCommand>;

fn describe_partner(v: &Value) -> String {
    format!(
        "{}\t{}\t{}\tseals={}\tscope={}\texpires_at={}{}",
        v["id"].as_str().unwrap_or(""),
        v["partner"].as_str().unwrap_or(""),
        v["partner_name"].as_str().unwrap_or(""),
        v["seals"],
        v["scope"],
        v["expires_at"],
        if v["revoked_at"].is_null() {
            String::new()
        } else {
            format!("\trevoked_at={}", v["revoked_at"])
        }
    )
}

pub fn run_partner(args: PartnerArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    let j = args.json;
    match args.command {
        PartnerCommand::Invite { name, message } => {
            let v = remote.post_json(
                "/v1/partners/invitations",
                &json!({ "name": name, "message": message }),
            )?;
            show(&v, j, |v| {
                format!(
                    "invitation {} (single use, until {})\nlink: {}",
                    v["id"].as_str().unwrap_or(""),
                    v["expires_at"],
                    v["link"].as_str().unwrap_or("")
                )
            });
        }
        PartnerCommand::Invitation { token } => {
            let v: Value = remote.get_json(&format!("/v1/partners/invitations/{token}"))?;
            show(&v, j, |v| {
                format!(
                    "from {} ({}): {}\nusable: {}",
                    v["partner_name"].as_str().unwrap_or(""),
                    v["partner"].as_str().unwrap_or(""),
                    v["message"].as_str().unwrap_or(""),
                    v["usable"]
                )
            });
        }
        PartnerCommand::Accept { token, grant } => {
            let v = remote.post_json(
                &format!("/v1/partners/invitations/{token}/accept"),
                &grant.body()?,
            )?;
            show(&v, j, describe_partner);
        }
        PartnerCommand::Grant {
            partner,
            name,
            grant,
        } => {
            let mut body = grant.body()?;
            body["partner"] = json!(partner);
            body["name"] = json!(name);
            let v = remote.post_json("/v1/partners", &body)?;
            show(&v, j, describe_partner);
        }
        PartnerCommand::List => {
            let v: Value = remote.get_json("/v1/partners")?;
            show(&v, j, |v| {
                v["authorizations"]
                    .as_array()
                    .map(|all| {
                        all.iter()
                            .map(describe_partner)
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            });
        }
        PartnerCommand::Revoke { id } => {
            let v = remote.post_json(&format!("/v1/partners/{id}/revoke"), &json!({}))?;
            done(&v, j, &format!("partner authorization {id} revoked"));
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// The members and the scopes they granted.
    Show,
    /// Add a member subsidiary, or change its terms (super administrator or legal
    /// representative).
    Add {
        /// The member's unified social credit code.
        code: String,
        #[arg(long)]
        name: String,
        /// The member's own contract quota (none: unlimited).
        #[arg(long)]
        quota: Option<u64>,
        /// When its own quota is used up, count against the parent's.
        #[arg(long)]
        draw_on_parent: bool,
    },
    /// Remove a member: everything it granted ends at once.
    Remove { code: String },
    /// As the member's own application: grant the parent this scope (it replaces the last).
    Scope {
        code: String,
        /// The parent seals the member's contracts (any document).
        #[arg(long)]
        contracts: bool,
        /// A member seal the parent may use and manage (repeat).
        #[arg(long = "seal")]
        seals: Vec<String>,
        /// A template the parent's group salespeople may seal documents from (repeat).
        #[arg(long = "template")]
        templates: Vec<String>,
    },
}

pub type GroupArgs = GovernanceArgs<GroupCommand>;

pub fn run_group(args: GroupArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    let j = args.json;
    match args.command {
        GroupCommand::Show => {
            let v: Value = remote.get_json("/v1/group")?;
            show(&v, j, |v| {
                v["members"]
                    .as_array()
                    .map(|all| {
                        all.iter()
                            .map(|m| {
                                format!(
                                    "{}\t{}\tquota={}\tdraw_on_parent={}\tscope={}",
                                    m["credit_code"].as_str().unwrap_or(""),
                                    m["name"].as_str().unwrap_or(""),
                                    m["contract_quota"],
                                    m["draw_on_parent"],
                                    m["scope"]
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .unwrap_or_default()
            });
        }
        GroupCommand::Add {
            code,
            name,
            quota,
            draw_on_parent,
        } => {
            let body =
                json!({ "name": name, "contract_quota": quota, "draw_on_parent": draw_on_parent });
            let v = remote.put_json(&format!("/v1/group/members/{code}"), &body)?;
            done(&v, j, &format!("member {code} added"));
        }
        GroupCommand::Remove { code } => {
            let v = remote.delete(&format!("/v1/group/members/{code}"))?;
            done(
                &v,
                j,
                &format!("member {code} removed: its seals sign nothing here"),
            );
        }
        GroupCommand::Scope {
            code,
            contracts,
            seals,
            templates,
        } => {
            let body = json!({ "contracts": contracts, "seals": seals, "templates": templates });
            let v = remote.put_json(&format!("/v1/group/members/{code}/scope"), &body)?;
            done(&v, j, &format!("scope granted to the parent by {code}"));
        }
    }
    Ok(())
}
