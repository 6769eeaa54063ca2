//! `sealctl sign`: seal a PDF locally, straight from a token (for admins, tests and scripts).

use std::fs;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use seald_pades::{Placement, SealAppearance, SealImage, SignOptions, SigningTime};
use seald_pkcs11::{Certificate, KeySelector, Module, PoolConfig, PoolKey, TokenPool};
use seald_signer::{SignError, SignatureAlgorithm, Signer};

use crate::secrets::PinSource;
use crate::Failure;
use seald_tsa_client::{Authority, HttpTimestamper};

#[derive(Args, Debug)]
pub struct SignArgs {
    /// PKCS#11 module of the token holding the seal key.
    #[arg(long, env = "SEALD_PKCS11_MODULE", value_name = "PATH")]
    module: Option<PathBuf>,
    /// Token label.
    #[arg(long, value_name = "LABEL")]
    token: String,
    /// File holding the user PIN (else env SEALD_PIN, else a prompt).
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
    /// The seal key's label on the token.
    #[arg(long, value_name = "LABEL")]
    key: String,
    /// CA certificates to embed after the seal certificate (PEM: issuing CA first), when the
    /// token does not hold them.
    #[arg(long, value_name = "FILE")]
    chain: Option<PathBuf>,
    /// PAdES level: b-b (signature only) or b-t (with an RFC 3161 time-stamp).
    #[arg(long, value_enum, default_value = "b-b")]
    level: Level,
    /// RFC 3161 time-stamp authority URL for b-t; repeat for fail-over, tried in order.
    #[arg(long, value_name = "URL")]
    tsa: Vec<String>,
    /// Root certificate(s) the TSA's certificate must chain to (PEM); repeatable.
    #[arg(long, value_name = "FILE")]
    tsa_root: Vec<PathBuf>,
    /// Seconds to wait for each TSA before trying the next.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    tsa_timeout: u64,
    /// A PNG of the seal to show (with transparency); without it the signature is invisible.
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// Page to put the seal (or the invisible signature) on.
    #[arg(long, default_value_t = 1)]
    page: u32,
    /// Seal position: millimetres from the left edge of the page as displayed.
    #[arg(long, value_name = "MM", default_value_t = 20.0)]
    x: f64,
    /// Seal position: millimetres from the top edge of the page as displayed.
    #[arg(long, value_name = "MM", default_value_t = 20.0)]
    y: f64,
    /// Seal width in millimetres (the height follows the image).
    #[arg(long, value_name = "MM", default_value_t = 40.0)]
    width: f64,
    /// Show the signing date under the seal.
    #[arg(long)]
    date_line: bool,
    /// Sign this existing (empty) signature field instead of adding one.
    #[arg(long, value_name = "NAME")]
    field: Option<String>,
    /// Name of the new signature field (default Signature1, Signature2, …).
    #[arg(long, value_name = "NAME", conflicts_with = "field")]
    field_name: Option<String>,
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    location: Option<String>,
    #[arg(long, value_name = "TEXT")]
    contact: Option<String>,
    /// The time zone the signing time is written in, as an offset from UTC (e.g. +08:00).
    #[arg(long, value_name = "±HH:MM", default_value = "+00:00")]
    utc_offset: String,
    /// The PDF to sign.
    input: PathBuf,
    /// Where to write the signed PDF (written completely or not at all).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    #[value(name = "b-b")]
    BB,
    #[value(name = "b-t")]
    BT,
}

/// A pool key whose certificate chain is completed from a file.
struct ChainedKey {
    key: PoolKey,
    chain: Vec<Vec<u8>>,
}

impl Signer for ChainedKey {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.key.algorithm()
    }

    fn certificate_chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Signer::sign(&self.key, message)
    }
}

/// `+08:00` / `-05:30` → minutes east of UTC.
pub(crate) fn parse_offset(text: &str) -> Result<i32, Failure> {
    let bad = || Failure::usage(format!("--utc-offset must look like +08:00, not '{text}'"));
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

pub fn run(args: SignArgs) -> Result<(), Failure> {
    let timestamper = match args.level {
        Level::BB => None,
        Level::BT => {
            if args.tsa.is_empty() || args.tsa_root.is_empty() {
                return Err(Failure::usage(
                    "--level b-t needs at least one --tsa URL and one --tsa-root certificate",
                ));
            }
            let roots = crate::read_certificates(&args.tsa_root)?;
            Some(
                HttpTimestamper::new(
                    args.tsa.iter().map(Authority::unpaced).collect(),
                    roots,
                    std::time::Duration::from_secs(args.tsa_timeout.max(1)),
                )
                .map_err(Failure::failed)?,
            )
        }
    };
    let offset = parse_offset(&args.utc_offset)?;
    let time = SigningTime::now(offset);
    let seal = match &args.image {
        Some(path) => {
            let bytes = fs::read(path)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
            let image = SealImage::from_png(&bytes)
                .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
            Some(SealAppearance {
                image,
                date_line: args.date_line.then(|| time.date()),
            })
        }
        None => None,
    };
    let placement = match (&args.field, seal) {
        (Some(name), seal) => Placement::Field {
            name: name.clone(),
            seal,
        },
        (None, Some(seal)) => Placement::Visible {
            page: args.page,
            x_mm: args.x,
            y_mm: args.y,
            width_mm: args.width,
            seal,
        },
        (None, None) => Placement::Invisible { page: args.page },
    };

    let module_path = args.module.as_ref().ok_or_else(|| {
        Failure::usage("no PKCS#11 module given: pass --module PATH or set SEALD_PKCS11_MODULE")
    })?;
    let module = Module::load(module_path)?;
    let pin = PinSource {
        what: "user PIN",
        file: args.pin_file.as_deref(),
        env: "SEALD_PIN",
        file_flag: "--pin-file",
    }
    .read(false)?;
    let pool = TokenPool::open(
        &module,
        &args.token,
        pin,
        PoolConfig {
            max_sessions: 1,
            ..PoolConfig::default()
        },
    )?;
    let key = pool.key(KeySelector::Label(args.key.clone()), None)?;
    let mut chain = key.certificate_chain().to_vec();
    if chain.is_empty() {
        return Err(Failure::failed(format!(
            "key '{}' on token '{}' has no certificate: import it with `sealctl token import-cert`",
            args.key, args.token
        )));
    }
    if let Some(path) = &args.chain {
        let bytes = fs::read(path)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
        for cert in Certificate::read_all(&bytes, &path.display().to_string())? {
            if !chain.iter().any(|c| c == cert.der()) {
                chain.push(cert.der().to_vec());
            }
        }
    }
    let signer = ChainedKey { key, chain };
    let options = SignOptions {
        signer: &signer,
        placement,
        field_name: args.field_name.clone(),
        reason: args.reason.clone(),
        location: args.location.clone(),
        contact_info: args.contact.clone(),
        time,
        timestamper: timestamper
            .as_ref()
            .map(|t| t as &dyn seald_pades::Timestamper),
        // A file kept at rest: on stable storage before it appears under its name.
        durable: true,
    };
    let signed = seald_pades::sign_file(&args.input, &args.output, &options)
        .map_err(|e| Failure::failed(format!("{}: {e}", args.input.display())))?;
    eprintln!(
        "Sealed {} into {} (field '{}'{}, {} of {} reserved signature bytes used).",
        args.input.display(),
        args.output.display(),
        signed.field,
        if signed.timestamped {
            ", time-stamped"
        } else {
            ""
        },
        signed.signature_len,
        signed.reserved_len
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_offsets_parse() {
        assert_eq!(parse_offset("+08:00").ok(), Some(480));
        assert_eq!(parse_offset("-05:30").ok(), Some(-330));
        assert!(parse_offset("8").is_err());
        assert!(parse_offset("+25:00").is_err());
    }
}
