//! `sealctl audit verify|export`: recompute seald's audit chain and check its signed
//! checkpoints, naming the first bad record; or write the log as JSON lines. Both read the
//! records exactly as stored (over the API, or from an export file).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use seald_audit::{Break, ChainVerifier, Checkpoint, ExportLine, Record};

use crate::remote::{Remote, RemoteArgs};
use crate::Failure;

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Recompute the hash chain from the first record and check every checkpoint's
    /// signature; exit 1 naming the first bad record.
    Verify {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Verify an export (`sealctl audit export` of the whole log) instead of a server.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Root certificate(s) the audit key's certificate must chain to (PEM); repeatable.
        /// Without it, checkpoint signatures are checked but not whose they are.
        #[arg(long, value_name = "FILE")]
        trust: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the audit log (its checkpoints, then its records) as JSON lines.
    Export {
        #[command(flatten)]
        remote: RemoteArgs,
        /// Only records from this time on (RFC 3339, e.g. 2026-12-01T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Write here instead of standard output.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

const PAGE: u32 = 1000;

/// Records from the server, a page at a time, in order.
fn each_record(
    remote: &Remote,
    since: Option<&str>,
    mut f: impl FnMut(Record) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut after = 0u64;
    let mut first = true;
    loop {
        let mut path = format!("/v1/audit/records?after={after}&limit={PAGE}");
        if let (true, Some(s)) = (first, since) {
            path.push_str(&format!(
                "&since={}",
                s.replace(':', "%3A").replace('+', "%2B")
            ));
        }
        first = false;
        let response = remote.get(&path)?;
        let mut n = 0;
        for line in BufReader::new(response).lines() {
            let line = line.map_err(|e| Failure::failed(format!("reading the records: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let record: Record = serde_json::from_str(&line)
                .map_err(|e| Failure::failed(format!("a record is unreadable ({e}): {line}")))?;
            after = record.seq;
            n += 1;
            f(record)?;
        }
        if n < PAGE {
            return Ok(());
        }
    }
}

fn check_checkpoints(
    checkpoints: &[Checkpoint],
    roots: Option<&[Vec<u8>]>,
) -> Result<Vec<String>, Break> {
    let mut signers = Vec::new();
    for c in checkpoints {
        let at = seald_pades::time::parse_rfc3339(&c.time).unwrap_or(0);
        match seald_pades::verify_detached(&c.signature, &c.signed_content(), roots, at) {
            Ok(signer) => {
                if !signers.contains(&signer.subject) {
                    signers.push(signer.subject);
                }
            }
            Err(why) => return Err(Break::CheckpointSignature { seq: c.seq, why }),
        }
    }
    Ok(signers)
}

fn report(
    result: Result<(seald_audit::Verified, Vec<String>), Break>,
    json: bool,
    trusted: bool,
) -> ExitCode {
    match result {
        Ok((v, signers)) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "records": v.records, "head_hash": v.head_hash, "checkpoints": v.checkpoints, "checkpoint_signers": signers, "signers_trusted": trusted})
                );
            } else {
                println!(
                    "audit log intact: {} records, head {}, {} signed checkpoint(s) verified",
                    v.records, v.head_hash, v.checkpoints
                );
                for s in &signers {
                    println!(
                        "  checkpoints signed by {s}{}",
                        if trusted {
                            " (trusted)"
                        } else {
                            " (not checked against a root: pass --trust)"
                        }
                    );
                }
                if v.checkpoints == 0 {
                    println!("  warning: no checkpoint yet; a truncated log cannot be told from a short one");
                }
            }
            ExitCode::SUCCESS
        }
        Err(b) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "first_bad_record": b.seq(), "problem": b.to_string()})
                );
            } else {
                println!("audit log BROKEN at record {}: {b}", b.seq());
            }
            ExitCode::from(1)
        }
    }
}

/// Checks the checkpoints, then the records `records` feeds to the verifier; reports.
fn verify(
    checkpoints: &[Checkpoint],
    roots: Option<&[Vec<u8>]>,
    json: bool,
    records: impl FnOnce(&mut dyn FnMut(Record) -> Result<(), Failure>) -> Result<(), Failure>,
) -> Result<ExitCode, Failure> {
    let signers = match check_checkpoints(checkpoints, roots) {
        Ok(s) => s,
        Err(b) => return Ok(report(Err(b), json, roots.is_some())),
    };
    let mut verifier = ChainVerifier::new(checkpoints);
    let mut broken = None;
    records(&mut |r: Record| {
        if broken.is_none() {
            if let Err(b) = verifier.push(&r) {
                broken = Some(b);
            }
        }
        Ok(())
    })?;
    let result = match broken {
        Some(b) => Err(b),
        None => verifier.finish().map(|v| (v, signers)),
    };
    Ok(report(result, json, roots.is_some()))
}

pub fn run(args: AuditArgs) -> Result<ExitCode, Failure> {
    match args.command {
        AuditCommand::Verify {
            remote,
            input,
            trust,
            json,
        } => {
            let roots = crate::read_certificates(&trust)?;
            let roots = (!trust.is_empty()).then_some(roots.as_slice());
            match (input, remote) {
                (Some(path), remote) if !remote.given() => {
                    let file = fs::File::open(&path).map_err(|e| {
                        Failure::usage(format!("cannot read {}: {e}", path.display()))
                    })?;
                    let bad = |n: usize, why: String| {
                        Failure::failed(format!("{} line {n}: {why}", path.display()))
                    };
                    let mut lines = BufReader::new(file)
                        .lines()
                        .enumerate()
                        .filter(|(_, l)| !l.as_ref().is_ok_and(|l| l.trim().is_empty()))
                        .map(|(i, l)| {
                            let line = l.map_err(|e| bad(i + 1, e.to_string()))?;
                            serde_json::from_str::<ExportLine>(&line)
                                .map_err(|e| bad(i + 1, format!("not an audit export line ({e})")))
                        })
                        .peekable();
                    // An export lists its checkpoints first, so the records can stream past.
                    let mut checkpoints = Vec::new();
                    while let Some(Ok(ExportLine::Checkpoint(_))) = lines.peek() {
                        if let Some(Ok(ExportLine::Checkpoint(c))) = lines.next() {
                            checkpoints.push(c);
                        }
                    }
                    verify(&checkpoints, roots, json, |f| {
                        for line in lines {
                            match line? {
                                ExportLine::Record(r) => f(r)?,
                                ExportLine::Checkpoint(c) => {
                                    return Err(Failure::failed(format!(
                                        "checkpoint {} comes after records: not an export made by `sealctl audit export`",
                                        c.seq
                                    )))
                                }
                            }
                        }
                        Ok(())
                    })
                }
                (Some(_), _) => Err(Failure::usage(
                    "give either --input FILE or a server, not both",
                )),
                (None, remote) => {
                    let remote = remote.connect()?;
                    let checkpoints: Vec<Checkpoint> = remote.get_json("/v1/audit/checkpoints")?;
                    verify(&checkpoints, roots, json, |f| each_record(&remote, None, f))
                }
            }
        }
        AuditCommand::Export {
            remote,
            since,
            output,
        } => {
            let remote = remote.connect()?;
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(fs::File::create(p).map_err(
                    |e| Failure::usage(format!("cannot write {}: {e}", p.display())),
                )?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut n = 0u64;
            let write = |line: ExportLine, out: &mut dyn Write| -> Result<(), Failure> {
                serde_json::to_writer(&mut *out, &line)
                    .map_err(|e| Failure::failed(e.to_string()))?;
                out.write_all(b"\n")
                    .map_err(|e| Failure::failed(e.to_string()))
            };
            // Checkpoints first (each covers a record that already exists), then the records.
            let checkpoints: Vec<Checkpoint> = remote.get_json("/v1/audit/checkpoints")?;
            for c in checkpoints {
                write(ExportLine::Checkpoint(c), &mut *out)?;
            }
            each_record(&remote, since.as_deref(), |r| {
                n += 1;
                write(ExportLine::Record(r), &mut *out)
            })?;
            out.flush().map_err(|e| Failure::failed(e.to_string()))?;
            if output.is_some() {
                eprintln!("exported {n} audit records");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
