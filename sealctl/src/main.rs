//! `sealctl`: seald's administration CLI.
//!
//! `sealctl token …` prepares UKeys and HSM partitions for seals directly over PKCS#11
//! (seald-pkcs11); `sealctl admin …` and `sealctl audit …` administer a running seald over its mTLS API.

use std::fmt;
use std::process::ExitCode;

use clap::Parser;

mod admin;
mod audit;
mod batch;
mod device;
mod governance;
mod remote;
mod secrets;
mod sign;
mod templates;
mod token;
mod verify;

#[derive(Parser, Debug)]
#[command(
    name = "sealctl",
    version,
    about = "Administer seald and its seal tokens"
)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Prepare and inspect PKCS#11 tokens (UKeys, HSM partitions) that hold seal keys.
    Token(token::TokenArgs),
    /// Serial signing devices (TKey, seal appliances) attached to this machine.
    Device(device::DeviceArgs),
    /// Seal a PDF with a key on a token (PAdES, incremental update).
    Sign(Box<sign::SignArgs>),
    /// Check a signed PDF: intact or tampered, signed by whom, trusted or not.
    Verify(verify::VerifyArgs),
    /// Administer a running seald: seals and applications.
    Admin(admin::AdminArgs),
    /// Check or export seald's audit log.
    Audit(audit::AuditArgs),
    /// Seal governance: the enterprise, departments, employees, approval flows.
    Org(governance::OrgArgs),
    /// Custom roles (the system roles are fixed).
    Role(governance::RoleArgs),
    /// Seals in a running seald: register, enable, disable, delete, holders, authorize.
    Seal(admin::SealArgs),
    /// Seal-use applications and approvals: apply, pending, approve, reject, cancel, resubmit.
    Approval(governance::ApprovalArgs),
    /// Employees' signing passwords: set, change, reset.
    Password(governance::PasswordArgs),
    /// Templates: signing areas, fill-in fields, the PDF, an auto-sign seal.
    Template(templates::TemplateArgs),
    /// The auto-sign authorization: who may make auto-sign templates and start auto-sign jobs.
    Autosign(templates::AutoSignArgs),
    /// Batch signing: the authorization, and confirmations of many signatures with one
    /// signing password.
    Batchsign(templates::BatchSignArgs),
    /// Partner enterprises: invitation links, authorizations, revocation.
    Partner(templates::PartnerArgs),
    /// Groups: member subsidiaries, their scopes, their removal.
    Group(templates::GroupArgs),
    /// The enterprise's contract quota and its consumption.
    Quota(governance::QuotaArgs),
    /// Batch jobs: a template's rows from a CSV file, filled and sealed.
    Batch(batch::BatchArgs),
}

/// A failure to report: the message, and whether it was the caller's usage (exit 2) or an
/// operation that failed (exit 1).
#[derive(Debug)]
pub struct Failure {
    message: String,
    usage: bool,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            usage: true,
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            usage: false,
        }
    }
}

impl From<seald_pkcs11::Error> for Failure {
    fn from(err: seald_pkcs11::Error) -> Self {
        Failure::failed(err.to_string())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Reads a file the user named; a failure is a usage error naming it.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

/// DER certificates from PEM or DER files (trust roots, TSA roots).
pub fn read_certificates(paths: &[std::path::PathBuf]) -> Result<Vec<Vec<u8>>, Failure> {
    let mut certs = Vec::new();
    for path in paths {
        certs.extend(
            seald_pades::parse_certificates(&read_file(path)?)
                .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?,
        );
    }
    Ok(certs)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Token(args) => token::run(args).map(|()| ExitCode::SUCCESS),
        Command::Device(args) => device::run(args).map(|()| ExitCode::SUCCESS),
        Command::Sign(args) => sign::run(*args).map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => verify::run(args),
        Command::Admin(args) => admin::run(args).map(|()| ExitCode::SUCCESS),
        Command::Audit(args) => audit::run(args),
        Command::Org(args) => governance::run_org(args).map(|()| ExitCode::SUCCESS),
        Command::Role(args) => governance::run_role(args).map(|()| ExitCode::SUCCESS),
        Command::Seal(args) => admin::run_seal(args).map(|()| ExitCode::SUCCESS),
        Command::Approval(args) => governance::run_approval(args).map(|()| ExitCode::SUCCESS),
        Command::Password(args) => governance::run_password(args).map(|()| ExitCode::SUCCESS),
        Command::Template(args) => templates::run_template(args).map(|()| ExitCode::SUCCESS),
        Command::Autosign(args) => templates::run_autosign(args).map(|()| ExitCode::SUCCESS),
        Command::Batchsign(args) => templates::run_batchsign(args).map(|()| ExitCode::SUCCESS),
        Command::Partner(args) => templates::run_partner(args).map(|()| ExitCode::SUCCESS),
        Command::Group(args) => templates::run_group(args).map(|()| ExitCode::SUCCESS),
        Command::Quota(args) => governance::run_quota(args).map(|()| ExitCode::SUCCESS),
        Command::Batch(args) => batch::run_batch(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("sealctl: error: {failure}");
            ExitCode::from(if failure.usage { 2 } else { 1 })
        }
    }
}
