//! `sealctl token …`: the UKey / HSM ceremony.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use seald_pkcs11::admin::{self, KeyAlgorithm};
use seald_pkcs11::{Certificate, KeySelector, Module, PinRole, SlotDescription, TokenSelector};
use serde::Serialize;

use crate::secrets::PinSource;
use crate::Failure;

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    common: Common,

    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Args, Debug)]
struct Common {
    /// PKCS#11 module (shared library) of the token.
    #[arg(long, env = "SEALD_PKCS11_MODULE", global = true, value_name = "PATH")]
    module: Option<PathBuf>,

    /// Token to use, by label (preferred: slot numbers change when tokens are initialized).
    #[arg(long, global = true, value_name = "LABEL", conflicts_with = "slot")]
    token: Option<String>,

    /// Slot to use, by number.
    #[arg(long, global = true, value_name = "N")]
    slot: Option<u64>,

    /// File holding the user PIN (else env SEALD_PIN, else a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    pin_file: Option<PathBuf>,

    /// File holding the SO PIN (else env SEALD_SO_PIN, else a prompt).
    #[arg(long, global = true, value_name = "FILE")]
    so_pin_file: Option<PathBuf>,

    /// File holding the new PIN for change-pin and unblock-pin (else env SEALD_NEW_PIN, else a
    /// prompt asked twice).
    #[arg(long, global = true, value_name = "FILE")]
    new_pin_file: Option<PathBuf>,

    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args, Debug)]
struct KeyArg {
    /// The key, by label (CKA_LABEL).
    #[arg(
        long,
        value_name = "LABEL",
        required_unless_present = "id",
        conflicts_with = "id"
    )]
    key: Option<String>,

    /// The key, by id (CKA_ID, hex).
    #[arg(long, value_name = "HEX")]
    id: Option<String>,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// List slots and tokens with their flags (PIN counters, lock state, PIN length limits).
    List,
    /// List the objects on a token: keys, certificates, data objects.
    Objects {
        /// Do not log in: list public objects only (private keys stay hidden).
        #[arg(long)]
        public: bool,
    },
    /// Initialize a token (destructive): set its label and SO PIN, then its user PIN. The token
    /// is chosen with --slot N, or with --token LABEL when re-initializing.
    Init {
        /// Label of the new token (up to 32 bytes).
        #[arg(long)]
        label: String,
        /// Re-initialize a token that is already initialized (erases all its keys).
        #[arg(long)]
        reinit: bool,
        /// Confirm that the slot's contents may be destroyed.
        #[arg(long)]
        yes: bool,
    },
    /// Change the user PIN (or with --so the SO PIN), given the current one.
    ChangePin {
        /// Change the SO PIN instead of the user PIN.
        #[arg(long)]
        so: bool,
    },
    /// Set a new user PIN with the SO PIN (after the user PIN was locked or forgotten).
    UnblockPin,
    /// Generate a seal key pair on the token (never extractable, sign-only).
    Keygen {
        /// Label for the key pair.
        #[arg(long, value_name = "LABEL")]
        key: String,
        #[arg(long, value_enum)]
        algorithm: Algorithm,
    },
    /// Write a PKCS#10 certificate request for a key, signed on the token.
    Csr {
        #[command(flatten)]
        key: KeyArg,
        /// Subject in RFC 4514 form, most specific first: "CN=…,O=…,C=CN".
        #[arg(long)]
        subject: String,
        /// Output file (PEM); "-" for standard output.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Store a key's certificate (and its CA chain) on the token under the key's CKA_ID.
    ImportCert {
        #[command(flatten)]
        key: KeyArg,
        /// The key's certificate (PEM or DER).
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// The issuing CA's certificate, then its issuers up to the root (PEM).
        #[arg(long, value_name = "FILE")]
        chain: Option<PathBuf>,
    },
    /// Delete a key pair and its certificates from the token (destructive).
    DeleteKey {
        #[command(flatten)]
        key: KeyArg,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Algorithm {
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-3072")]
    Rsa3072,
    #[value(name = "ec-p256")]
    EcP256,
    #[value(name = "ec-p384")]
    EcP384,
}

impl From<Algorithm> for KeyAlgorithm {
    fn from(a: Algorithm) -> Self {
        match a {
            Algorithm::Rsa2048 => KeyAlgorithm::Rsa2048,
            Algorithm::Rsa3072 => KeyAlgorithm::Rsa3072,
            Algorithm::EcP256 => KeyAlgorithm::EcP256,
            Algorithm::EcP384 => KeyAlgorithm::EcP384,
        }
    }
}

impl Common {
    fn module(&self) -> Result<Module, Failure> {
        let path = self.module.as_ref().ok_or_else(|| {
            Failure::usage(
                "no PKCS#11 module given: pass --module PATH or set SEALD_PKCS11_MODULE \
                 (Debian's SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)",
            )
        })?;
        Ok(Module::load(path)?)
    }

    fn selector(&self) -> Result<TokenSelector, Failure> {
        match (&self.token, self.slot) {
            (Some(label), None) => Ok(TokenSelector::Label(label.clone())),
            (None, Some(slot)) => Ok(TokenSelector::Slot(slot)),
            _ => Err(Failure::usage(
                "select the token with --token LABEL (or --slot N); `sealctl token list` shows them",
            )),
        }
    }

    fn user_pin(&self) -> PinSource<'_> {
        PinSource {
            what: "user PIN",
            file: self.pin_file.as_deref(),
            env: "SEALD_PIN",
            file_flag: "--pin-file",
        }
    }

    fn so_pin(&self) -> PinSource<'_> {
        PinSource {
            what: "SO PIN",
            file: self.so_pin_file.as_deref(),
            env: "SEALD_SO_PIN",
            file_flag: "--so-pin-file",
        }
    }

    fn new_pin<'a>(&'a self, what: &'a str) -> PinSource<'a> {
        PinSource {
            what,
            file: self.new_pin_file.as_deref(),
            env: "SEALD_NEW_PIN",
            file_flag: "--new-pin-file",
        }
    }
}

impl KeyArg {
    fn selector(&self) -> Result<KeySelector, Failure> {
        match (&self.key, &self.id) {
            (Some(label), _) => Ok(KeySelector::Label(label.clone())),
            (None, Some(id)) => hex::decode(id.trim_start_matches("0x"))
                .map(KeySelector::Id)
                .map_err(|e| Failure::usage(format!("--id must be hex: {e}"))),
            (None, None) => Err(Failure::usage(
                "select the key with --key LABEL or --id HEX",
            )),
        }
    }
}

pub fn run(args: TokenArgs) -> Result<(), Failure> {
    let common = &args.common;
    match &args.command {
        TokenCommand::List => list(common),
        TokenCommand::Objects { public } => objects(common, *public),
        TokenCommand::Init { label, reinit, yes } => init(common, label, *reinit, *yes),
        TokenCommand::ChangePin { so } => change_pin(common, *so),
        TokenCommand::UnblockPin => unblock_pin(common),
        TokenCommand::Keygen { key, algorithm } => keygen(common, key, (*algorithm).into()),
        TokenCommand::Csr { key, subject, out } => csr(common, key, subject, out),
        TokenCommand::ImportCert { key, cert, chain } => {
            import_cert(common, key, cert, chain.as_deref())
        }
        TokenCommand::DeleteKey { key, yes } => delete_key(common, key, *yes),
    }
}

fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::failed(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn list(common: &Common) -> Result<(), Failure> {
    let module = common.module()?;
    let slots = module.slots()?;
    if common.json {
        #[derive(Serialize)]
        struct Listing<'a> {
            module: String,
            library: String,
            slots: &'a [SlotDescription],
        }
        return print_json(&Listing {
            module: module.path().display().to_string(),
            library: module.library_description()?,
            slots: &slots,
        });
    }
    println!(
        "Module {}: {}",
        module.path().display(),
        module.library_description()?
    );
    if slots.is_empty() {
        println!("No slots.");
    }
    for slot in &slots {
        match &slot.token {
            None => match &slot.token_error {
                Some(error) => {
                    println!("Slot {}: token present but unreadable: {error}", slot.slot)
                }
                None => println!("Slot {}: no token ({})", slot.slot, slot.description),
            },
            Some(t) if !t.initialized => println!(
                "Slot {}: uninitialized token ({} {}, serial {})",
                slot.slot, t.manufacturer, t.model, t.serial
            ),
            Some(t) => {
                println!(
                    "Slot {}: token '{}' ({} {}, serial {})",
                    slot.slot, t.label, t.manufacturer, t.model, t.serial
                );
                let flags: Vec<&str> = [
                    (t.login_required, "login-required"),
                    (t.user_pin_initialized, "user-pin-initialized"),
                    (t.write_protected, "write-protected"),
                    (t.protected_authentication_path, "pin-pad"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, name)| *name)
                .collect();
                println!("  flags:    {}", flags.join(", "));
                println!(
                    "  user PIN: {}   SO PIN: {}   PIN length: {}..{}",
                    t.user_pin, t.so_pin, t.pin_min_len, t.pin_max_len
                );
            }
        }
    }
    Ok(())
}

fn objects(common: &Common, public: bool) -> Result<(), Failure> {
    let module = common.module()?;
    let selector = common.selector()?;
    let pin = if public {
        None
    } else {
        Some(common.user_pin().read(false)?)
    };
    let objects = admin::list_objects(&module, &selector, pin.as_ref())?;
    if common.json {
        return print_json(&objects);
    }
    if objects.is_empty() {
        println!("No objects.");
    }
    for o in &objects {
        let key = o.key.map(|k| format!(" {k}")).unwrap_or_default();
        println!("{}{key} '{}' id={}", o.class, o.label, o.id);
        if !o.flags.is_empty() {
            println!("  flags:   {}", o.flags.join(", "));
        }
        if let Some(c) = &o.certificate {
            println!("  subject: {}", c.subject);
            println!("  issuer:  {}", c.issuer);
            println!("  serial:  {}   not after: {}", c.serial, c.not_after);
        }
        if let Some(app) = &o.application {
            println!("  application: {app}");
        }
    }
    Ok(())
}

fn init(common: &Common, label: &str, reinit: bool, yes: bool) -> Result<(), Failure> {
    let target = common.selector().map_err(|_| {
        Failure::usage(
            "init needs --slot N (a slot with an uninitialized token; `sealctl token list` shows them), \
             or --token LABEL with --reinit",
        )
    })?;
    if !yes {
        return Err(Failure::usage(format!(
            "initializing {target} destroys whatever it holds: add --yes to go ahead"
        )));
    }
    let module = common.module()?;
    let so_pin = common.so_pin().read(true)?;
    let user_pin = common.user_pin().read(true)?;
    let slot_now = admin::init_token(&module, &target, label, &so_pin, &user_pin, reinit)?;
    if common.json {
        return print_json(&slot_now);
    }
    // Slot numbers may change once the module reloads (SoftHSM2 renumbers): name the label.
    println!("Initialized token '{label}'; select it with --token '{label}'.");
    Ok(())
}

fn change_pin(common: &Common, so: bool) -> Result<(), Failure> {
    let module = common.module()?;
    let selector = common.selector()?;
    let (role, old, what) = if so {
        (PinRole::So, common.so_pin().read(false)?, "new SO PIN")
    } else {
        (
            PinRole::User,
            common.user_pin().read(false)?,
            "new user PIN",
        )
    };
    let new = common.new_pin(what).read(true)?;
    admin::change_pin(&module, &selector, role, &old, &new)?;
    println!("Changed the {role} PIN of {selector}.");
    Ok(())
}

fn unblock_pin(common: &Common) -> Result<(), Failure> {
    let module = common.module()?;
    let selector = common.selector()?;
    let so_pin = common.so_pin().read(false)?;
    let new = common.new_pin("new user PIN").read(true)?;
    admin::unblock_pin(&module, &selector, &so_pin, &new)?;
    println!("Set a new user PIN on {selector}; the user PIN is unblocked.");
    Ok(())
}

fn keygen(common: &Common, label: &str, algorithm: KeyAlgorithm) -> Result<(), Failure> {
    let module = common.module()?;
    let selector = common.selector()?;
    let pin = common.user_pin().read(false)?;
    let key = admin::generate_key(&module, &selector, &pin, label, algorithm)?;
    if common.json {
        return print_json(&key);
    }
    println!(
        "Generated {} key '{}' (id {}) on {selector}; the private key never leaves the token.",
        key.kind,
        key.label,
        hex::encode(&key.id)
    );
    Ok(())
}

fn csr(common: &Common, key: &KeyArg, subject: &str, out: &Path) -> Result<(), Failure> {
    let module = common.module()?;
    let selector = common.selector()?;
    let key = key.selector()?;
    let pin = common.user_pin().read(false)?;
    let pem = admin::certificate_request(&module, &selector, &pin, &key, subject)?;
    if out == Path::new("-") {
        std::io::stdout()
            .write_all(pem.as_bytes())
            .map_err(|e| Failure::failed(format!("cannot write the request: {e}")))?;
    } else {
        write_new_file(out, pem.as_bytes())?;
        eprintln!(
            "Wrote the certificate request for key {key} to {}.",
            out.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a failure
/// never leaves a half-written file behind.
fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::failed(format!("cannot write {}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Failure::usage(format!("{} is not a file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

fn read_certificates(path: &Path) -> Result<Vec<Certificate>, Failure> {
    let bytes = fs::read(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(Certificate::read_all(&bytes, &path.display().to_string())?)
}

fn import_cert(
    common: &Common,
    key: &KeyArg,
    cert: &Path,
    chain: Option<&Path>,
) -> Result<(), Failure> {
    let module = common.module()?;
    let selector = common.selector()?;
    let key = key.selector()?;
    let mut leaf = read_certificates(cert)?;
    if leaf.len() != 1 {
        return Err(Failure::usage(format!(
            "{} holds {} certificates; give the key's own certificate with --cert and the CA certificates with --chain",
            cert.display(),
            leaf.len()
        )));
    }
    let leaf = leaf.remove(0);
    let chain = match chain {
        Some(path) => read_certificates(path)?,
        None => Vec::new(),
    };
    let pin = common.user_pin().read(false)?;
    let imported = admin::import_certificate(&module, &selector, &pin, &key, &leaf, &chain)?;
    if common.json {
        return print_json(&imported);
    }
    println!(
        "Stored the certificate '{}' for key '{}' (id {}){}.",
        imported.subject,
        imported.key_label,
        hex::encode(&imported.key_id),
        if imported.replaced > 0 {
            format!(", replacing {} earlier one(s)", imported.replaced)
        } else {
            String::new()
        }
    );
    for ca in &imported.chain_added {
        println!("Stored CA certificate '{ca}'.");
    }
    Ok(())
}

fn delete_key(common: &Common, key: &KeyArg, yes: bool) -> Result<(), Failure> {
    let selector = common.selector()?;
    let key = key.selector()?;
    if !yes {
        return Err(Failure::usage(format!(
            "deleting key {key} from {selector} cannot be undone: add --yes to go ahead"
        )));
    }
    let module = common.module()?;
    let pin = common.user_pin().read(false)?;
    let deleted = admin::delete_key(&module, &selector, &pin, &key)?;
    if common.json {
        return print_json(&deleted);
    }
    println!(
        "Deleted key '{}' (id {}): {} private key(s), {} public key(s), {} certificate(s).",
        deleted.label,
        hex::encode(&deleted.id),
        deleted.private_keys,
        deleted.public_keys,
        deleted.certificates
    );
    Ok(())
}
