//! `seald-bench pades`: signing PDFs against the physical limits and against pyHanko, in one
//! run on the same token and files.
//!
//! - 1-page PDF: seald's whole signing (open, plan, copy, hash, sign, splice) per signature
//!   against a bare `C_Sign` on the same key; budget: at most 0.3 ms more.
//! - a large PDF (50 MiB by default): seald's signing time against `sha256sum` + `cp` of the
//!   same file; budget: at most 1.3 ×. Peak RSS of `sealctl sign` on it: at most 64 MiB.
//! - pyHanko (pinned, over python-pkcs11) signing the same files with the same token.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cryptoki::mechanism::Mechanism;
use seald_pades::{Document, Placement, SignOptions, SigningTime};
use seald_pkcs11::admin::KeyAlgorithm;
use seald_tests::pdf::{SealKey, TOKEN};

use crate::util::{median, BareToken};

/// The seal key's algorithm and chain with a signature computed once: signing through it costs
/// nothing, so timing seald with it measures everything *besides* `C_Sign`.
pub(crate) struct Replay<'a> {
    pub(crate) key: &'a seald_pkcs11::PoolKey,
    pub(crate) signature: Vec<u8>,
}

impl seald_signer::Signer for Replay<'_> {
    fn algorithm(&self) -> seald_signer::SignatureAlgorithm {
        seald_signer::Signer::algorithm(self.key)
    }
    fn certificate_chain(&self) -> &[Vec<u8>] {
        seald_signer::Signer::certificate_chain(self.key)
    }
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, seald_signer::SignError> {
        Ok(self.signature.clone())
    }
}

struct Options {
    module: PathBuf,
    python: Option<PathBuf>,
    size_mib: u64,
    iterations: usize,
    rounds: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: seald-bench pades [--module PATH] [--python VENV_PYTHON] [--size-mib N] [--iterations N] [--rounds N]\n\
         Signs a 1-page and an N MiB PDF (default 50) and compares with C_Sign, sha256sum + cp and\n\
         pyHanko (when --python names a Python with pyHanko and python-pkcs11); exits 1 over budget."
    );
    std::process::exit(2)
}

fn parse(args: Vec<String>) -> Options {
    let mut options = Options {
        module: PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        python: None,
        size_mib: 50,
        iterations: 200,
        rounds: 5,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--module" => options.module = PathBuf::from(value),
            "--python" => options.python = Some(PathBuf::from(value)),
            "--size-mib" => options.size_mib = value.parse().unwrap_or_else(|_| usage()),
            "--iterations" => options.iterations = value.parse().unwrap_or_else(|_| usage()),
            "--rounds" => options.rounds = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    options
}

/// A one-page PDF whose page carries an image stream of `size` incompressible bytes.
pub(crate) fn large_pdf(path: &Path, size: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(fs::File::create(path).expect("create"));
    let mut offsets = Vec::new();
    let mut pos = 0u64;
    let put = |f: &mut std::io::BufWriter<fs::File>, bytes: &[u8], pos: &mut u64| {
        f.write_all(bytes).expect("write");
        *pos += bytes.len() as u64;
    };
    put(&mut f, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", &mut pos);
    let side = ((size / 3) as f64).sqrt() as u64;
    let data_len = side * side * 3;
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im 5 0 R >> >> /Contents 4 0 R >>".to_vec(),
        b"<< /Length 30 >>\nstream\nq 500 0 0 700 48 71 cm /Im Do Q\nendstream".to_vec(),
    ];
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pos);
        put(&mut f, format!("{} 0 obj\n", i + 1).as_bytes(), &mut pos);
        put(&mut f, body, &mut pos);
        put(&mut f, b"\nendobj\n", &mut pos);
    }
    offsets.push(pos);
    put(
        &mut f,
        format!("5 0 obj\n<< /Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceRGB /BitsPerComponent 8 /Length {data_len} >>\nstream\n").as_bytes(),
        &mut pos,
    );
    // xorshift: incompressible, deterministic.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = data_len;
    while left > 0 {
        for b in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        let n = left.min(chunk.len() as u64) as usize;
        put(&mut f, &chunk[..n], &mut pos);
        left -= n as u64;
    }
    put(&mut f, b"\nendstream\nendobj\n", &mut pos);
    let xref = pos;
    put(&mut f, b"xref\n0 6\n0000000000 65535 f\r\n", &mut pos);
    for o in &offsets {
        put(&mut f, format!("{o:010} 00000 n\r\n").as_bytes(), &mut pos);
    }
    put(
        &mut f,
        format!("trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
        &mut pos,
    );
    f.flush().expect("flush");
}

pub(crate) fn seconds(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

pub(crate) fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Elapsed seconds and peak RSS (KiB) of a command, from GNU time.
fn time_rss(cmd: &mut Command) -> (f64, u64) {
    let out = cmd.output().expect("run under /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?}: {stderr}");
    let last = stderr.lines().last().unwrap_or("");
    let mut parts = last.split_whitespace();
    let elapsed = parts
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let rss = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (elapsed, rss)
}

pub fn run(args: Vec<String>) {
    let options = parse(args);
    let key = SealKey::new(KeyAlgorithm::Rsa2048);
    let dir = key.dir().to_path_buf();
    let small = seald_tests::workspace_root().join("tests/corpus/minimal.pdf");
    let large = dir.join("large.pdf");
    large_pdf(&large, options.size_mib << 20);
    let large_len = fs::metadata(&large).expect("large").len();
    let replay = Replay {
        key: &key.key,
        signature: key.key.sign_blocking(b"any").expect("a signature"),
    };
    let sign_with =
        |signer: &dyn seald_signer::Signer, input: &Path, output: &Path, durable: bool| {
            let opts = SignOptions {
                signer,
                placement: Placement::Invisible { page: 1 },
                field_name: None,
                reason: None,
                location: None,
                contact_info: None,
                time: SigningTime::now(0),
                timestamper: None,
                durable,
            };
            seald_pades::sign_file(input, output, &opts).expect("sign");
        };
    let sign =
        |input: &Path, output: &Path, durable: bool| sign_with(&key.key, input, output, durable);

    // Bare C_Sign on the same key, same input size as the signed attributes.
    let (bare_token, _anchor) = BareToken::open(&options.module, TOKEN, seald_tests::USER_PIN);
    let (session, handle) = bare_token.session_with_key("seal");
    let attrs = [0x31u8; 170];
    let n = options.iterations;

    // 1-page: rounds alternate bare C_Sign and seald's whole signing.
    let out_small = dir.join("small-signed.pdf");
    let (mut bare, mut ours, mut ours_durable, mut pipeline) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.rounds {
        bare.push(
            seconds(|| {
                for _ in 0..n {
                    session
                        .sign(&Mechanism::Sha256RsaPkcs, handle, &attrs)
                        .expect("C_Sign");
                }
            }) / n as f64,
        );
        // Each signature goes to a new file, as each request's output does (renaming over an
        // existing file makes ext4 flush it, which no request path does).
        let outputs: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("small-{i}.pdf"))).collect();
        ours.push(
            seconds(|| {
                for out in &outputs {
                    sign(&small, out, false);
                }
            }) / n as f64,
        );
        pipeline.push(
            seconds(|| {
                for out in &outputs {
                    sign_with(&replay, &small, out, false);
                }
            }) / n as f64,
        );
        for out in &outputs {
            let _ = fs::remove_file(out);
        }
        ours_durable.push(
            seconds(|| {
                for out in outputs.iter().take((n / 10).max(1)) {
                    sign(&small, &out.with_extension("durable.pdf"), true);
                }
            }) / (n / 10).max(1) as f64,
        );
        for out in &outputs {
            let _ = fs::remove_file(out);
            let _ = fs::remove_file(out.with_extension("durable.pdf"));
        }
    }
    let (bare, ours, ours_durable) = (median(bare), median(ours), median(ours_durable));
    // Everything besides C_Sign, measured without the token's noise.
    let overhead_ms = median(pipeline) * 1000.0;

    // Large file: seald against sha256sum + cp of the same file (page cache warm).
    let _ = fs::read(&large).expect("warm the cache");
    let out_large = dir.join("large-signed.pdf");
    let copy = dir.join("large-copy.pdf");
    let (mut sha, mut cp, mut big) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.rounds {
        sha.push(seconds(|| {
            run_ok(Command::new("sha256sum").arg(&large));
        }));
        cp.push(seconds(|| {
            run_ok(Command::new("cp").arg(&large).arg(&copy));
        }));
        let _ = fs::remove_file(&copy);
        big.push(seconds(|| sign(&large, &out_large, false)));
    }
    let (sha, cp, big) = (median(sha), median(cp), median(big));
    let ratio = big / (sha + cp);

    // Peak memory of the real command on the large file, and on the small one for scale.
    let sealctl = seald_tests::workspace_root().join("target/release/sealctl");
    let pin = key.hsm.secret_file("pin", seald_tests::USER_PIN);
    let sealctl_rss = |input: &Path, output: &Path| {
        time_rss(
            Command::new("/usr/bin/time")
                .args(["-f", "%e %M"])
                .arg(&sealctl)
                .args(["sign", "--token", TOKEN, "--key", "seal", "--pin-file"])
                .arg(&pin)
                .arg(input)
                .arg("-o")
                .arg(output)
                .env("SEALD_PKCS11_MODULE", &options.module),
        )
    };
    let (_, rss_small) = sealctl_rss(&small, &out_small);
    let (cli_large_s, rss_large) = sealctl_rss(&large, &out_large);
    // What is signed must be right, or the figures mean nothing.
    for pdf in [&out_small, &out_large] {
        let report = seald_pades::verify_document(
            &Document::open(pdf).expect("open"),
            &seald_pades::VerifyOptions {
                trust_roots: key.root_der(),
                now: SigningTime::now(0).unix_seconds,
            },
        )
        .expect("verify");
        assert!(report.signatures.iter().all(|s| s.valid), "{report:?}");
    }

    // pyHanko on the same files and token.
    let peer = options.python.as_ref().map(|python| {
        let script = seald_tests::workspace_root().join("bench/pyhanko_sign.py");
        let per_small: f64 = run_ok(
            Command::new(python)
                .arg(&script)
                .arg(&options.module)
                .args([TOKEN])
                .arg(&pin)
                .arg("seal")
                .arg(&small)
                .arg(dir.join("pyhanko-small.pdf"))
                .arg((n / 4).max(1).to_string()),
        )
        .trim()
        .parse()
        .expect("ms");
        let (large_s, large_rss) = time_rss(
            Command::new("/usr/bin/time")
                .args(["-f", "%e %M"])
                .arg(python)
                .arg(&script)
                .arg(&options.module)
                .args([TOKEN])
                .arg(&pin)
                .arg("seal")
                .arg(&large)
                .arg(dir.join("pyhanko-large.pdf"))
                .arg("1"),
        );
        (per_small, large_s, large_rss)
    });

    let mib = large_len as f64 / (1 << 20) as f64;
    println!("| measure | value | budget |");
    println!("|---|---|---|");
    println!("| bare C_Sign, RSA-2048 (ms) | {:.3} | |", bare * 1000.0);
    println!(
        "| seald, 1-page PDF, whole signing (ms) | {:.3} | |",
        ours * 1000.0
    );
    println!("| seald, 1-page PDF, everything besides C_Sign (ms) | {overhead_ms:.3} | ≤ 0.3 |");
    println!(
        "| seald whole signing − bare C_Sign (ms) | {:.3} | |",
        (ours - bare) * 1000.0
    );
    println!(
        "| seald, 1-page PDF, with fsync of the output (ms) | {:.3} | |",
        ours_durable * 1000.0
    );
    println!("| sha256sum, {mib:.0} MiB (s) | {sha:.3} | |");
    println!("| cp, {mib:.0} MiB (s) | {cp:.3} | |");
    println!("| seald, {mib:.0} MiB PDF (s) | {big:.3} | |");
    println!("| seald / (sha256sum + cp) | {ratio:.2} | ≤ 1.3 |");
    println!(
        "| sealctl sign, {mib:.0} MiB PDF, wall incl. startup and fsync (s) | {cli_large_s:.3} | |"
    );
    println!(
        "| sealctl sign peak RSS, 1-page (MiB) | {:.1} | |",
        rss_small as f64 / 1024.0
    );
    println!(
        "| sealctl sign peak RSS, {mib:.0} MiB (MiB) | {:.1} | ≤ 64 |",
        rss_large as f64 / 1024.0
    );
    if let Some((per_small, large_s, large_rss)) = peer {
        println!("| pyHanko, 1-page PDF (ms) | {per_small:.3} | |");
        println!("| pyHanko, {mib:.0} MiB PDF, wall incl. startup (s) | {large_s:.3} | |");
        println!(
            "| pyHanko peak RSS, {mib:.0} MiB (MiB) | {:.1} | |",
            large_rss as f64 / 1024.0
        );
    }
    let mut over = Vec::new();
    if overhead_ms > 0.3 {
        over.push(format!("1-page overhead {overhead_ms:.3} ms > 0.3 ms"));
    }
    if ratio > 1.3 {
        over.push(format!("large file {ratio:.2} × (sha256sum + cp) > 1.3"));
    }
    if rss_large > 64 * 1024 {
        over.push(format!("peak RSS {} KiB > 64 MiB", rss_large));
    }
    if over.is_empty() {
        println!("\nwithin budget");
    } else {
        println!("\nOVER BUDGET: {}", over.join("; "));
        std::process::exit(1);
    }
}
