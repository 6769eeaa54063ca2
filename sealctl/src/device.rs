//! `sealctl device …`: serial signing devices attached to this machine (seald-firmware-bridge):
//! list them, show what one runs, print its public key, and have it sign a certificate request
//! for the CA.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use der::{Decode, EncodePem};
use seald_firmware_bridge::{Device, DeviceConfig, Profile, PublicKey, Selector, UsbId};
use seald_signer::{EcCurve, HashAlgorithm, SignatureAlgorithm};
use serde_json::json;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

use crate::Failure;

#[derive(Args, Debug)]
pub struct DeviceArgs {
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Args, Debug)]
struct Which {
    /// The device's port (/dev/ttyACM0, /dev/serial/by-id/…).
    #[arg(long, conflicts_with = "usb")]
    path: Option<PathBuf>,
    /// Or its USB identity, VID:PID in hex (a TKey is 1207:8887).
    #[arg(long)]
    usb: Option<String>,
    /// With --usb: its USB serial number.
    #[arg(long, requires = "usb")]
    serial: Option<String>,
    /// p256 (a seal appliance) or ed25519 (a TKey with its signer app).
    #[arg(long)]
    profile: String,
    /// The app to load if the device is in firmware mode (a TKey's signer binary).
    #[arg(long)]
    app: Option<PathBuf>,
    /// A file holding the passphrase for the TKey's user-supplied secret (as in seald.toml).
    #[arg(long)]
    uss_file: Option<PathBuf>,
    /// Seconds to wait for the touch.
    #[arg(long, default_value_t = 35)]
    touch_timeout: u64,
}

#[derive(Subcommand, Debug)]
enum DeviceCommand {
    /// The USB serial ports present (TKeys marked).
    List,
    /// What the device runs, and its public key.
    Info(Which),
    /// The device's public key as a SubjectPublicKeyInfo (PEM), or hex with --json.
    Pubkey(Which),
    /// A certificate request for the device's key, signed by the device (touch it), to give
    /// to the CA.
    Csr {
        #[command(flatten)]
        which: Which,
        /// The subject, e.g. "CN=合同专用章,O=示例科技有限公司,C=CN".
        #[arg(long)]
        subject: String,
        /// Where the PEM request goes (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn failed(e: seald_firmware_bridge::Error) -> Failure {
    Failure::failed(e.to_string())
}

fn open(w: &Which) -> Result<Device, Failure> {
    let profile =
        Profile::parse(&w.profile).ok_or_else(|| Failure::usage("--profile is p256 or ed25519"))?;
    let selector = match (&w.path, &w.usb) {
        (Some(p), None) => Selector::Path(p.clone()),
        (None, Some(u)) => Selector::Usb(
            UsbId::parse(u, w.serial.clone())
                .ok_or_else(|| Failure::usage(format!("--usb '{u}' is not VID:PID in hex")))?,
        ),
        _ => return Err(Failure::usage("give --path or --usb")),
    };
    let mut c = DeviceConfig::new("sealctl", selector, profile);
    if let Some(app) = &w.app {
        c.app = Some(crate::read_file(app)?);
    }
    if let Some(f) = &w.uss_file {
        c.uss = Some(
            seald_firmware_bridge::uss_from_file(f).map_err(|e| Failure::usage(e.to_string()))?,
        );
    }
    c.touch_timeout = Duration::from_secs(w.touch_timeout.max(1));
    Ok(Device::new(c))
}

/// The device's key as a SubjectPublicKeyInfo.
fn spki(key: &PublicKey) -> Result<SubjectPublicKeyInfoOwned, Failure> {
    SubjectPublicKeyInfoOwned::from_der(&key.spki_der())
        .map_err(|e| Failure::failed(format!("the device's key: {e}")))
}

fn key_hex(k: &PublicKey) -> String {
    hex::encode(k.spki_bytes())
}

pub fn run(args: DeviceArgs) -> Result<(), Failure> {
    let j = args.json;
    match args.command {
        DeviceCommand::List => {
            let ports = seald_firmware_bridge::usb_ports().map_err(failed)?;
            if j {
                let list: Vec<_> = ports
                    .iter()
                    .map(|p| {
                        let u = p.usb.as_ref();
                        json!({
                            "path": p.path, "vid": u.map(|u| format!("{:04x}", u.vid)),
                            "pid": u.map(|u| format!("{:04x}", u.pid)),
                            "serial": u.and_then(|u| u.serial.clone()), "product": p.product,
                            "tkey": u.is_some_and(UsbId::is_tkey),
                        })
                    })
                    .collect();
                println!("{}", json!(list));
            } else if ports.is_empty() {
                println!("no USB serial ports");
            } else {
                for p in &ports {
                    let u = p.usb.as_ref();
                    println!(
                        "{}  {}  serial {}  {}{}",
                        p.path.display(),
                        u.map(|u| format!("{:04x}:{:04x}", u.vid, u.pid))
                            .unwrap_or_default(),
                        u.and_then(|u| u.serial.clone())
                            .unwrap_or_else(|| "-".to_owned()),
                        p.product.clone().unwrap_or_default(),
                        if u.is_some_and(UsbId::is_tkey) {
                            "  (TKey)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        DeviceCommand::Info(w) => {
            let d = open(&w)?;
            let info = d.info().map_err(failed)?;
            if j {
                println!(
                    "{}",
                    json!({
                        "path": info.path, "profile": info.profile.name(),
                        "app": info.app.name(), "app_version": info.app.version,
                        "loaded_app": info.loaded_app, "public_key": key_hex(&info.public_key),
                        "status": d.status().name(),
                    })
                );
            } else {
                println!("path        {}", info.path.display());
                println!("profile     {}", info.profile.name());
                println!(
                    "app         {} version {}{}",
                    info.app.name(),
                    info.app.version,
                    if info.loaded_app { " (loaded now)" } else { "" }
                );
                println!("public key  {}", key_hex(&info.public_key));
            }
        }
        DeviceCommand::Pubkey(w) => {
            let key = open(&w)?.public_key().map_err(failed)?;
            if j {
                println!("{}", json!({"public_key": key_hex(&key)}));
            } else {
                print!(
                    "{}",
                    spki(&key)?
                        .to_pem(der::pem::LineEnding::LF)
                        .map_err(|e| Failure::failed(e.to_string()))?
                );
            }
        }
        DeviceCommand::Csr {
            which,
            subject,
            out,
        } => {
            let subject =
                seald_pkcs11::parse_subject(&subject).map_err(|e| Failure::usage(e.to_string()))?;
            let d = open(&which)?;
            let key = d.public_key().map_err(failed)?;
            let algorithm = match key {
                PublicKey::P256(_) => SignatureAlgorithm::Ecdsa {
                    curve: EcCurve::P256,
                    hash: HashAlgorithm::Sha256,
                },
                PublicKey::Ed25519(_) => SignatureAlgorithm::Ed25519,
            };
            eprintln!("touch the device to sign the request…");
            let text = seald_pkcs11::signed_request(subject, spki(&key)?, algorithm, |tbs| {
                d.sign(tbs, Some(&key)).map_err(failed)
            })?;
            match out {
                Some(path) => std::fs::write(&path, text).map_err(|e| {
                    Failure::failed(format!("cannot write {}: {e}", path.display()))
                })?,
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}
