//! `sealctl verify`: is this signed PDF intact, and who signed it?

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use seald_pades::{Document, Modifications, Report, Verdict, VerifyOptions};

use crate::Failure;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Trusted root certificate(s) (PEM or DER); may be repeated.
    #[arg(long, value_name = "FILE")]
    trust: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The PDF to check.
    input: PathBuf,
}

/// Exit status: 0 every signature valid and nothing tampered, 1 tampered or invalid, 2 no
/// signature or unreadable.
pub fn run(args: VerifyArgs) -> Result<ExitCode, Failure> {
    let roots = crate::read_certificates(&args.trust)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let report = Document::open(&args.input).and_then(|doc| {
        seald_pades::verify_document(
            &doc,
            &VerifyOptions {
                trust_roots: roots,
                now,
            },
        )
    });
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sealctl: {}: {e}", args.input.display());
            return Ok(ExitCode::from(2));
        }
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::failed(format!("cannot encode JSON: {e}")))?;
        println!("{text}");
    } else {
        print_report(&report);
    }
    Ok(ExitCode::from(exit_code(&report)))
}

fn exit_code(report: &Report) -> u8 {
    if report.signatures.is_empty() {
        2
    } else if report.verdict == Verdict::NotTampered && report.signatures.iter().all(|s| s.valid) {
        0
    } else {
        1
    }
}

fn print_report(report: &Report) {
    let verdict = match report.verdict {
        Verdict::NotTampered => "not tampered",
        Verdict::Tampered => "TAMPERED",
        Verdict::NoValidSignature => "no valid signature",
    };
    println!(
        "Verdict: {verdict} ({} signature(s), {} revision(s))",
        report.signatures.len(),
        report.revisions
    );
    for s in &report.signatures {
        println!();
        println!(
            "Signature '{}': {}",
            s.field,
            if s.valid { "VALID" } else { "NOT VALID" }
        );
        if let Some(signer) = &s.signer {
            println!("  signer:        {}", signer.subject);
            println!("  issuer:        {}", signer.issuer);
        }
        if let Some(t) = &s.signing_time {
            println!("  signing time:  {t} (claimed by the signer)");
        }
        match (&s.timestamp_time, s.timestamp_valid) {
            (Some(t), Some(true)) => println!("  time-stamp:    {t} (valid)"),
            (_, Some(false)) => println!("  time-stamp:    INVALID"),
            _ => {}
        }
        println!(
            "  coverage:      {}",
            if s.covers_whole_file {
                "the whole file"
            } else if s.covers_revision {
                "its revision (later revisions follow)"
            } else {
                "INCOMPLETE"
            }
        );
        println!(
            "  integrity:     {}",
            match s.digest_valid {
                Some(true) => "intact",
                Some(false) => "CHANGED",
                None => "not checked (the signature is unreadable)",
            }
        );
        println!(
            "  signature:     {}",
            if s.signature_valid { "sound" } else { "BROKEN" }
        );
        println!(
            "  trust:         {}",
            if s.trusted {
                "chains to a trusted root"
            } else {
                "NOT TRUSTED"
            }
        );
        println!(
            "  changed later: {}",
            match s.modifications {
                Modifications::None => "nothing",
                Modifications::SignaturesAndFormFields => "only signatures and form fields",
                Modifications::Other => "OTHER CONTENT",
            }
        );
        for p in &s.problems {
            println!("  problem:       {p}");
        }
    }
}
