//! `sealctl admin …`: register seals and applications in a running seald, enable and
//! disable seals, list what is registered. The daemon checks and audits every change.

use std::path::PathBuf;

use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::remote::RemoteArgs;
use crate::Failure;

#[derive(Args, Debug)]
pub struct AdminArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// Print seald's JSON answers.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Seals: register, enable, disable, list.
    #[command(subcommand)]
    Seal(SealCommand),
    /// Client applications (mTLS principals): register, list.
    #[command(subcommand, name = "app")]
    App(AppCommand),
}

#[derive(Subcommand, Debug)]
enum SealCommand {
    /// Register a seal (or replace its registration): a key on a configured token, its
    /// certificate chain and its image. seald checks the key is there and certified.
    Register {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// The `[[token]]` name in seald.toml.
        #[arg(long)]
        token: String,
        /// The key's label on that token.
        #[arg(long = "key")]
        key_label: String,
        /// PEM: the seal certificate, then its issuers.
        #[arg(long, value_name = "FILE")]
        chain: PathBuf,
        /// The seal image: PNG or JPEG (at most 5 MB); seald makes its background
        /// transparent.
        #[arg(long, value_name = "FILE")]
        image: Option<PathBuf>,
        /// official, contract, finance, hr, legal_representative, practice or other.
        #[arg(long, default_value = "other")]
        kind: String,
        /// The department it belongs to.
        #[arg(long)]
        department: Option<String>,
        /// An employee who may use it; repeatable.
        #[arg(long = "holder")]
        holders: Vec<String>,
        /// A group member's seal kept here: the member's unified social credit code.
        #[arg(long)]
        enterprise: Option<String>,
    },
    Enable {
        id: String,
    },
    Disable {
        id: String,
    },
    /// Delete a seal: final, it never signs again.
    Delete {
        id: String,
    },
    /// Make these employees the seal's holders (none: --holder omitted).
    Holders {
        id: String,
        #[arg(long = "holder")]
        holders: Vec<String>,
    },
    /// As the holder of a practice seal, authorize it.
    Authorize {
        id: String,
    },
    /// Set the seal's limits (none given: no limits): caps per day and month, and windows
    /// `DAYS HH:MM-HH:MM` with DAYS like `1-5` or `1,3,5` (1 = Monday), in the enterprise's
    /// time zone; repeat --window for several.
    Limits {
        id: String,
        #[arg(long)]
        per_day: Option<u32>,
        #[arg(long)]
        per_month: Option<u32>,
        #[arg(long = "window")]
        windows: Vec<String>,
    },
    List,
}

/// `sealctl seal …`: the same as `sealctl admin seal …`.
#[derive(Args, Debug)]
pub struct SealArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// Print seald's JSON answers.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: SealCommand,
}

#[derive(Subcommand, Debug)]
enum AppCommand {
    /// Register an application (or change it) by its client certificate.
    Register {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Its client certificate (PEM).
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// signer or admin; repeatable.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// A seal it may use; repeatable.
        #[arg(long = "seal")]
        seals: Vec<String>,
        /// Restrict it to these template ids; repeatable.
        #[arg(long = "template")]
        templates: Vec<String>,
        /// Register it disabled.
        #[arg(long)]
        disabled: bool,
        /// Its requests may name the employee they act for (an OA system).
        #[arg(long)]
        acts_for_employees: bool,
    },
    List,
}

fn read_text(path: &std::path::Path) -> Result<String, Failure> {
    String::from_utf8(crate::read_file(path)?)
        .map_err(|_| Failure::usage(format!("{} is not UTF-8 text (PEM)", path.display())))
}

pub fn show(value: &Value, json_out: bool, summary: impl FnOnce(&Value) -> String) {
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        println!("{}", summary(value));
    }
}

/// `1-5 09:00-18:00` → a window.
fn window(text: &str) -> Result<Value, Failure> {
    let bad = || {
        Failure::usage(format!(
            "--window '{text}': give DAYS HH:MM-HH:MM, DAYS like 1-5 or 1,3,5 (1 = Monday)"
        ))
    };
    let (days, hours) = text.trim().split_once(' ').ok_or_else(bad)?;
    let (from, to) = hours.trim().split_once('-').ok_or_else(bad)?;
    let mut weekdays = Vec::new();
    for part in days.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u8, u8) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b {
            return Err(bad());
        }
        weekdays.extend(a..=b);
    }
    Ok(json!({"weekdays": weekdays, "from": from, "to": to}))
}

pub fn run_seal(args: SealArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    seal(&remote, args.json, args.command)
}

fn seal(
    remote: &crate::remote::Remote,
    json_out: bool,
    command: SealCommand,
) -> Result<(), Failure> {
    let status = |v: &Value| v["status"].as_str().unwrap_or("?").to_owned();
    match command {
        SealCommand::Register {
            id,
            name,
            token,
            key_label,
            chain,
            image,
            kind,
            department,
            holders,
            enterprise,
        } => {
            let image = image
                .map(|p| crate::read_file(&p))
                .transpose()?
                .map(|b| base64::engine::general_purpose::STANDARD.encode(b));
            let body = json!({
                "id": id, "name": name, "token": token, "key_label": key_label,
                "certificate_chain_pem": read_text(&chain)?, "image_base64": image,
                "kind": kind, "department": department, "holders": holders,
                "enterprise": enterprise,
            });
            let v = remote.post_json("/v1/admin/seals", &body)?;
            show(&v, json_out, |v| {
                match v["approval"].as_str() {
                Some(approval) => format!(
                    "seal '{id}' registered, pending review: approval request {approval} waits for its approvers"
                ),
                None => format!("seal '{id}' registered and {}", status(v)),
            }
            });
        }
        SealCommand::Enable { id } => {
            let v = remote.post_json(&format!("/v1/admin/seals/{id}/enable"), &json!({}))?;
            show(&v, json_out, |_| format!("seal '{id}' enabled"));
        }
        SealCommand::Disable { id } => {
            let v = remote.post_json(&format!("/v1/admin/seals/{id}/disable"), &json!({}))?;
            show(&v, json_out, |_| format!("seal '{id}' disabled"));
        }
        SealCommand::Delete { id } => {
            let v = remote.delete(&format!("/v1/admin/seals/{id}"))?;
            show(&v, json_out, |_| format!("seal '{id}' deleted"));
        }
        SealCommand::Holders { id, holders } => {
            let v = remote.put_json(
                &format!("/v1/admin/seals/{id}/holders"),
                &json!({ "holders": holders }),
            )?;
            show(&v, json_out, |v| {
                format!("seal '{id}' holders: {}", v["holders"])
            });
        }
        SealCommand::Limits {
            id,
            per_day,
            per_month,
            windows,
        } => {
            let windows = windows
                .iter()
                .map(|w| window(w))
                .collect::<Result<Vec<_>, _>>()?;
            let body = json!({"per_day": per_day, "per_month": per_month, "windows": windows});
            let v = remote.put_json(&format!("/v1/admin/seals/{id}/limits"), &body)?;
            show(&v, json_out, |v| {
                format!("seal '{id}' limits: {}", v["limits"])
            });
        }
        SealCommand::Authorize { id } => {
            let v = remote.post_json(&format!("/v1/admin/seals/{id}/authorize"), &json!({}))?;
            show(&v, json_out, |_| format!("practice seal '{id}' authorized"));
        }
        SealCommand::List => {
            let v = remote.get_json("/v1/seals")?;
            show(&v, json_out, |v| {
                let mut out = String::new();
                for s in v["seals"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "{}\t{}\t{}\t{}\n",
                        s["id"].as_str().unwrap_or(""),
                        s["status"].as_str().unwrap_or(""),
                        s["name"].as_str().unwrap_or(""),
                        s["certificate"]["subject"].as_str().unwrap_or("")
                    ));
                }
                out.trim_end().to_owned()
            });
        }
    }
    Ok(())
}

pub fn run(args: AdminArgs) -> Result<(), Failure> {
    let remote = args.remote.connect()?;
    match args.command {
        AdminCommand::Seal(command) => seal(&remote, args.json, command)?,
        AdminCommand::App(AppCommand::Register {
            id,
            name,
            cert,
            roles,
            seals,
            templates,
            disabled,
            acts_for_employees,
        }) => {
            let body = json!({
                "id": id, "name": name, "certificate_pem": read_text(&cert)?, "roles": roles,
                "seals": seals, "templates": if templates.is_empty() { Value::Null } else { json!(templates) },
                "enabled": !disabled, "acts_for_employees": acts_for_employees,
            });
            let v = remote.post_json("/v1/admin/applications", &body)?;
            show(&v, args.json, |v| {
                format!(
                    "application '{id}' registered (certificate key SHA-256 {})",
                    v["fingerprint"].as_str().unwrap_or("?")
                )
            });
        }
        AdminCommand::App(AppCommand::List) => {
            let v = remote.get_json("/v1/admin/applications")?;
            show(&v, args.json, |v| {
                let mut out = String::new();
                for a in v["applications"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "{}\t{}\troles={}\tseals={}\n",
                        a["id"].as_str().unwrap_or(""),
                        if a["enabled"] == true {
                            "enabled"
                        } else {
                            "disabled"
                        },
                        a["roles"],
                        a["seals"]
                    ));
                }
                out.trim_end().to_owned()
            });
        }
    }
    Ok(())
}
