//! The real `seald` binary end to end: mTLS, signing validated by independent tools,
//! idempotency, bad input, the audit chain and its verification, load, shutdown, metrics.

use std::fs;
use std::process::Command;
use std::time::Duration;

use seald_tests::daemon::{client_cert, send, sha256_hex, try_send, Daemon, Setup};
use seald_tests::pdf::Validators;
use seald_tests::{run, run_ok, workspace_root};
use serde_json::Value;

fn sign_url(d: &Daemon, seal: &str, query: &str) -> String {
    format!("{}/v1/seals/{seal}/sign?{query}", d.api)
}

fn sign(
    d: &Daemon,
    client: &reqwest::blocking::Client,
    query: &str,
    pdf: Vec<u8>,
) -> seald_tests::daemon::Answer {
    send(
        client
            .post(sign_url(d, "contract", query))
            .header("Content-Type", "application/pdf")
            .body(pdf),
    )
}

/// Audit records as stored: (seq, action, decision, reason, principal).
fn audit_rows(setup: &Setup) -> Vec<Vec<String>> {
    setup
        .sql("SELECT seq, action, decision, coalesce(reason, ''), principal FROM audit_records ORDER BY seq")
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

fn signed_count(setup: &Setup) -> usize {
    setup
        .sql("SELECT count(*) FROM audit_records WHERE action = 'sign' AND decision = 'allowed'")
        .parse()
        .expect("count")
}

#[test]
fn sealed_over_mtls_and_judged_by_pdfsig_pyhanko_and_qpdf() {
    let setup = Setup::new("");
    let d = setup.start();
    setup.register(&d);
    let app = d.client("app");

    let listed = send(app.get(format!("{}/v1/seals", d.api))).json();
    assert_eq!(listed["seals"][0]["id"], "contract", "{listed}");
    let shown = send(app.get(format!("{}/v1/seals/contract", d.api))).json();
    assert_eq!(shown["status"], "active");
    assert!(
        shown["certificate"]["subject"]
            .as_str()
            .unwrap_or("")
            .contains("合同专用章"),
        "{shown}"
    );
    assert!(shown["certificate_chain_pem"]
        .as_str()
        .unwrap_or("")
        .contains("BEGIN CERTIFICATE"));
    assert!(shown["image_png_base64"].is_string());

    let input = setup.sample();
    let answer = sign(
        &d,
        &app,
        "page=1&x=30&y=40&width=35&reason=approved&location=Shenzhen&document_id=C-2026-001",
        input.clone(),
    );
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/pdf")
    );
    let seq: u64 = answer
        .header("seald-audit-record")
        .expect("audit header")
        .parse()
        .expect("seq");
    assert!(
        answer.body.starts_with(&input),
        "the original bytes come first, unchanged"
    );
    let out = setup.dir().join("signed.pdf");
    fs::write(&out, &answer.body).expect("write");

    let validators = Validators::new(setup.dir(), &[setup.seal.root()]);
    validators.qpdf(&out).expect("qpdf --check");
    let pdfsig = validators.pdfsig(&out);
    assert_eq!(pdfsig.len(), 1, "{pdfsig:?}");
    assert!(
        pdfsig[0].valid && pdfsig[0].trusted && pdfsig[0].whole_document,
        "{pdfsig:?}"
    );
    let pyhanko = validators.pyhanko(&out, true);
    assert_eq!(pyhanko.len(), 1);
    for key in ["intact", "valid", "trusted"] {
        assert_eq!(pyhanko[0][key], true, "pyHanko {key}: {}", pyhanko[0]);
    }

    // seald's own verifier agrees, over the API.
    let report = send(
        app.post(format!("{}/v1/verify", d.api))
            .header("Content-Type", "application/pdf")
            .body(answer.body.clone()),
    )
    .json();
    assert_eq!(report["verdict"], "not_tampered", "{report}");
    assert_eq!(report["signatures"][0]["valid"], true);

    // The audit record names the attempt, the input and the output.
    let row = setup.sql(&format!(
        "SELECT principal, action, seal, document_id, input_sha256, output_sha256, decision FROM audit_records WHERE seq = {seq}"
    ));
    let sha = |b: &[u8]| {
        use std::io::Write;
        let f = setup.dir().join("h.bin");
        fs::File::create(&f)
            .and_then(|mut w| w.write_all(b))
            .expect("write");
        run_ok(Command::new("sha256sum").arg(&f))
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        row,
        format!(
            "erp|sign|contract|C-2026-001|{}|{}|allowed",
            sha(&input),
            sha(&answer.body)
        )
    );
    // Nothing is left in the spool.
    assert_eq!(
        fs::read_dir(setup.data.join("spool"))
            .expect("spool")
            .count(),
        0
    );
    // The audit key signs the chain's head while seald runs (every 2 s in this setup).
    assert!(
        seald_tests::daemon::wait_until(Duration::from_secs(30), || {
            setup.sql(&format!(
                "SELECT count(*) FROM audit_checkpoints WHERE seq >= {seq}"
            )) != "0"
        }),
        "no periodic checkpoint covers the signature"
    );
}

#[test]
fn mtls_refuses_missing_foreign_expired_and_revoked_certificates() {
    let setup = Setup::new("");
    let tls = &setup.tls;
    client_cert(tls, "old", true);
    client_cert(tls, "revoked", false);
    client_cert(tls, "stranger", false);
    client_cert(tls, "later", false);
    run_ok(
        Command::new(workspace_root().join("deploy/pki.sh"))
            .arg("revoke")
            .arg(tls)
            .arg("revoked"),
    );
    // A certificate from another CA, with a key of its own.
    let other = setup.dir().join("other-ca");
    run_ok(
        Command::new(workspace_root().join("deploy/pki.sh"))
            .arg("tls")
            .arg(&other),
    );
    client_cert(&other, "foreign", false);
    let d = setup.start();
    setup.register(&d);

    let healthz = format!("{}/healthz", d.api);
    let curl = |args: &[&str]| {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "--cacert"])
            .arg(tls.join("tls-ca.pem"))
            .args(args)
            .arg(&healthz);
        run(&mut cmd)
    };
    // TLS 1.0 and 1.1 are not offered, even to a good certificate.
    let app_cert = [
        "--cert",
        &tls.join("app.crt").display().to_string(),
        "--key",
        &tls.join("app.key").display().to_string(),
    ]
    .map(str::to_owned);
    let args: Vec<&str> = app_cert
        .iter()
        .map(String::as_str)
        .chain(["--tlsv1.0", "--tls-max", "1.1"])
        .collect();
    assert!(!curl(&args).status.success(), "TLS 1.1 was accepted");
    let args: Vec<&str> = app_cert
        .iter()
        .map(String::as_str)
        .chain(["--tlsv1.2", "--tls-max", "1.2"])
        .collect();
    assert!(curl(&args).status.success(), "TLS 1.2 was refused");
    // No client certificate: the handshake fails, no HTTP answer.
    let out = curl(&[]);
    assert!(!out.status.success(), "no client certificate was accepted");
    for (cert, key) in [
        (other.join("foreign.crt"), other.join("foreign.key")),
        (tls.join("old.crt"), tls.join("old.key")),
        (tls.join("revoked.crt"), tls.join("revoked.key")),
    ] {
        let out = curl(&[
            "--cert",
            &cert.display().to_string(),
            "--key",
            &key.display().to_string(),
        ]);
        assert!(
            !out.status.success(),
            "{} was accepted: {}",
            cert.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        let client = seald_tests::daemon::client_for(tls, &cert, &key, &tls.join("tls-ca.pem"));
        let err = try_send(client.get(&healthz)).expect_err("refused");
        assert!(!err.is_empty());
    }
    // Valid but unregistered: 403 with its code, and the attempt is audited.
    let stranger = d.client("stranger");
    let answer = sign(&d, &stranger, "", setup.sample());
    assert_eq!(answer.status, 403);
    assert_eq!(answer.code(), "unregistered_application");
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let rows = audit_rows(&setup);
    let last = rows.last().expect("a record");
    assert_eq!(
        (last[1].as_str(), last[2].as_str(), last[3].as_str()),
        ("sign", "denied", "unregistered_application")
    );
    assert!(last[4].starts_with("unregistered:"), "{last:?}");

    // A CRL updated and reloaded on SIGHUP refuses a certificate that worked before.
    assert_eq!(send(d.client("app").get(&healthz)).status, 200);
    run_ok(
        Command::new(workspace_root().join("deploy/pki.sh"))
            .arg("revoke")
            .arg(tls)
            .arg("app"),
    );
    d.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        // A fresh client each time: a kept-alive connection was authenticated before.
        match try_send(d.client("app").get(&healthz)) {
            Err(_) => break,
            Ok(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(a) => panic!(
                "revoked certificate still accepted after SIGHUP: {}",
                a.status
            ),
        }
    }
    assert_eq!(
        send(d.client("later").get(&healthz)).status,
        200,
        "others still pass"
    );
}

#[test]
fn idempotency_key_replays_the_same_signature_and_refuses_another_body() {
    let setup = Setup::new("");
    let d = setup.start();
    setup.register(&d);
    let app = d.client("app");
    let post = |key: &str, query: &str, pdf: Vec<u8>| {
        send(
            app.post(sign_url(&d, "contract", query))
                .header("Content-Type", "application/pdf")
                .header("Idempotency-Key", key)
                .body(pdf),
        )
    };
    let first = post("order-42", "document_id=D1", setup.sample());
    assert_eq!(first.status, 200);
    let before = signed_count(&setup);
    let again = post("order-42", "document_id=D1", setup.sample());
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body, "the very same signed PDF");
    assert_eq!(
        again.header("seald-audit-record"),
        first.header("seald-audit-record")
    );
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(signed_count(&setup), before, "no second signature record");

    let other = fs::read(workspace_root().join("tests/corpus/minimal-two-pages.pdf")).expect("pdf");
    let conflict = post("order-42", "x=5&y=5&width=10", other.clone());
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.code(), "idempotency_key_reused");
    // A new key signs anew.
    let fresh = post("order-43", "x=5&y=5&width=10", other);
    assert_eq!(fresh.status, 200);
    assert_eq!(signed_count(&setup), before + 1);
}

#[test]
fn bad_input_gets_typed_errors_and_leaves_nothing_behind() {
    let setup = Setup::new("[limits]\nmax_body_mib = 1\n");
    let d = setup.start();
    setup.register(&d);
    let app = d.client("app");
    let corpus =
        |name: &str| fs::read(workspace_root().join("tests/corpus").join(name)).expect("corpus");
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "text/plain",
            "",
            setup.sample(),
            415,
            "unsupported_media_type",
        ),
        (
            "application/pdf",
            "",
            b"hello, this is not a PDF at all".to_vec(),
            415,
            "not_pdf",
        ),
        (
            "application/pdf",
            "",
            setup.sample()[..setup.sample().len() / 2].to_vec(),
            422,
            "malformed_pdf",
        ),
        (
            "application/pdf",
            "",
            corpus("minimal-aes256.pdf"),
            422,
            "encrypted_pdf",
        ),
        (
            "application/pdf",
            "page=3&x=5&y=5&width=10",
            corpus("circular-page-tree.pdf"),
            422,
            "malformed_pdf",
        ),
        (
            "application/pdf",
            "level=b-x",
            setup.sample(),
            400,
            "invalid_parameter",
        ),
        (
            "application/pdf",
            "width=-3",
            setup.sample(),
            400,
            "invalid_parameter",
        ),
        (
            "application/pdf",
            "colour=red",
            setup.sample(),
            400,
            "invalid_parameter",
        ),
        (
            "application/pdf",
            "level=b-t",
            setup.sample(),
            400,
            "invalid_parameter",
        ),
        (
            "application/pdf",
            "page=9",
            setup.sample(),
            422,
            "no_such_page",
        ),
    ];
    for (ctype, query, body, status, code) in cases {
        let a = send(
            app.post(sign_url(&d, "contract", query))
                .header("Content-Type", ctype)
                .body(body),
        );
        assert_eq!(a.status, status, "{ctype} {query} ({} bytes)", a.body.len());
        assert_eq!(a.code(), code, "{ctype} {query}");
        assert_eq!(
            a.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        assert!(!a.json()["detail"].as_str().unwrap_or("").is_empty());
    }
    // Too large, declared up front or streamed without a length: 413 before the body is read
    // (curl waits for "100 Continue", which never comes).
    let big = setup.dir().join("big.pdf");
    fs::write(&big, vec![b'%'; 2 << 20]).expect("big");
    for chunked in [false, true] {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "30", "--cacert"])
            .arg(setup.tls.join("tls-ca.pem"))
            .arg("--cert")
            .arg(setup.tls.join("app.crt"))
            .arg("--key")
            .arg(setup.tls.join("app.key"))
            .args([
                "-H",
                "Content-Type: application/pdf",
                "-w",
                "\n%{http_code}",
                "--data-binary",
            ])
            .arg(format!("@{}", big.display()));
        if chunked {
            cmd.args(["-H", "Transfer-Encoding: chunked"]);
        }
        let out = run(cmd.arg(sign_url(&d, "contract", "")));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.trim_end().ends_with("413") && text.contains("payload_too_large"),
            "chunked={chunked}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Unknown seal, disabled seal, a seal not granted.
    let a = send(
        app.post(sign_url(&d, "nope", ""))
            .header("Content-Type", "application/pdf")
            .body(setup.sample()),
    );
    assert_eq!((a.status, a.code().as_str()), (404, "seal_not_found"));
    run_ok(
        setup
            .sealctl(&d, "admin")
            .args(["admin", "seal", "disable", "contract"]),
    );
    let a = sign(&d, &app, "", setup.sample());
    assert_eq!((a.status, a.code().as_str()), (403, "seal_disabled"));
    run_ok(
        setup
            .sealctl(&d, "admin")
            .args(["admin", "seal", "enable", "contract"]),
    );
    assert_eq!(sign(&d, &app, "", setup.sample()).status, 200);
    // An application without the admin role cannot administer (and the refusal is audited).
    let out = run(setup
        .sealctl(&d, "app")
        .args(["admin", "seal", "disable", "contract"]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not_admin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rows = audit_rows(&setup);
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r[2] == "failed")
        .map(|r| r[3].as_str())
        .collect();
    for code in [
        "payload_too_large",
        "unsupported_media_type",
        "not_pdf",
        "malformed_pdf",
        "encrypted_pdf",
        "invalid_parameter",
        "no_such_page",
    ] {
        assert!(
            failed.contains(&code),
            "no failed record with {code}: {failed:?}"
        );
    }
    // Every administrative change is in the log, as allowed.
    let changes: Vec<&str> = rows
        .iter()
        .filter(|r| r[2] == "allowed" && r[1] != "sign")
        .map(|r| r[1].as_str())
        .collect();
    for action in [
        "application.register",
        "seal.register",
        "seal.disable",
        "seal.enable",
    ] {
        assert!(
            changes.contains(&action),
            "no record of {action}: {changes:?}"
        );
    }
    let denied: Vec<&str> = rows
        .iter()
        .filter(|r| r[2] == "denied")
        .map(|r| r[3].as_str())
        .collect();
    for code in ["seal_not_found", "seal_disabled", "not_admin"] {
        assert!(
            denied.contains(&code),
            "no denied record with {code}: {denied:?}"
        );
    }
    assert_eq!(signed_count(&setup), 1);
    assert_eq!(
        fs::read_dir(setup.data.join("spool"))
            .expect("spool")
            .count(),
        0,
        "spool files left behind"
    );
    assert_eq!(
        fs::read_dir(setup.data.join("responses"))
            .expect("responses")
            .count(),
        0
    );
}

#[test]
fn an_edited_audit_row_is_found_by_sealctl_audit_verify() {
    let setup = Setup::new("");
    let d = setup.start();
    setup.register(&d);
    let app = d.client("app");
    for i in 0..5 {
        assert_eq!(
            sign(&d, &app, &format!("document_id=doc-{i}"), setup.sample()).status,
            200
        );
    }
    let status = d.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status}");
    let checkpoints: usize = setup
        .sql("SELECT count(*) FROM audit_checkpoints")
        .parse()
        .expect("n");
    assert!(checkpoints >= 1, "the shutdown checkpoint is missing");
    let d = setup.start();
    let verify = |setup: &Setup, d: &Daemon| {
        let out = run(setup
            .sealctl(d, "admin")
            .args(["audit", "verify", "--json", "--trust"])
            .arg(setup.seal.root()));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), v)
    };
    let (code, v) = verify(&setup, &d);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true);
    let records = v["records"].as_u64().expect("records");
    assert!(records >= 7, "{v}");
    // The export verifies offline as well.
    let export = setup.dir().join("audit.jsonl");
    run_ok(
        setup
            .sealctl(&d, "admin")
            .args(["audit", "export", "-o"])
            .arg(&export),
    );
    let lines = fs::read_to_string(&export).expect("export");
    assert_eq!(
        lines
            .lines()
            .filter(|l| l.contains("\"kind\":\"record\""))
            .count() as u64,
        records
    );
    run_ok(
        Command::new(seald_tests::binary("sealctl"))
            .args(["audit", "verify", "--input"])
            .arg(&export),
    );

    // Somebody with access to the database changes which document a record names.
    let target: u64 = setup
        .sql("SELECT min(seq) FROM audit_records WHERE document_id = 'doc-2'")
        .parse()
        .expect("seq");
    setup.sql(&format!(
        "UPDATE audit_records SET document_id = 'doc-X' WHERE seq = {target}"
    ));
    let (code, v) = verify(&setup, &d);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["first_bad_record"], target, "{v}");
    // Rehashing the edited row moves the break to the next link, still found.
    let out = run(setup.sealctl(&d, "admin").args(["audit", "verify"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("record {target}")));
    // Deleting the newest records is caught by the signed checkpoint.
    setup.sql(&format!(
        "UPDATE audit_records SET document_id = 'doc-2' WHERE seq = {target}"
    ));
    assert_eq!(verify(&setup, &d).0, Some(0));
    let last_cp: u64 = setup
        .sql("SELECT max(seq) FROM audit_checkpoints")
        .parse()
        .expect("cp");
    setup.sql(&format!("DELETE FROM audit_records WHERE seq >= {last_cp}"));
    let (code, v) = verify(&setup, &d);
    assert_eq!(code, Some(1), "{v}");
    assert!(
        v["problem"].as_str().unwrap_or("").contains("truncated"),
        "{v}"
    );
}

#[test]
fn metrics_pass_promtool_and_readyz_reports_the_parts() {
    let setup = Setup::new("");
    let d = setup.start();
    setup.register(&d);
    let app = d.client("app");
    assert_eq!(sign(&d, &app, "", setup.sample()).status, 200);
    assert_eq!(sign(&d, &app, "", b"nope".to_vec()).status, 415);
    let plain = reqwest::blocking::Client::new();
    let ready = send(plain.get(format!("{}/readyz", d.plain)));
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    assert_eq!(ready.json()["checks"]["tokens"]["hsm"]["state"], "ready");
    let metrics = send(plain.get(format!("{}/metrics", d.plain)));
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    for needle in [
        "seald_sign_total{outcome=\"signed\",seal=\"contract\"} 1",
        "seald_sign_total{outcome=\"failed\",seal=\"contract\"} 1",
        "seald_http_request_duration_seconds_bucket{endpoint=\"/v1/seals/{seal_id}/sign\"",
        "seald_token_sessions_max{token=\"hsm\"} 2",
        "seald_sign_queue_depth 0",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let file = setup.dir().join("metrics.txt");
    fs::write(&file, &metrics.body).expect("write");
    let out = run(Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", file.display())));
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The plain listener serves nothing else.
    assert_eq!(send(plain.get(format!("{}/v1/seals", d.plain))).status, 404);
}

#[test]
fn a_bad_configuration_names_its_key() {
    let setup = Setup::new("[limits]\nqueue_depth = 0\n");
    let out = run(Command::new(seald_tests::binary("seald"))
        .arg("--config")
        .arg(&setup.config));
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("limits.queue_depth"), "{text}");
}

/// seald's own verdict on a signed output (the tests also ask pdfsig and pyHanko).
fn verified(setup: &Setup, pdf: &[u8]) -> bool {
    let doc = seald_pades::Document::from_bytes(pdf.to_vec()).expect("signed output parses");
    let report = seald_pades::verify_document(
        &doc,
        &seald_pades::VerifyOptions {
            trust_roots: setup.seal.root_der(),
            now: 0,
        },
    )
    .expect("verify");
    report.verdict == seald_pades::Verdict::NotTampered && report.signatures.iter().all(|s| s.valid)
}

#[test]
fn two_hundred_concurrent_requests_from_eight_clients_all_sign_and_are_audited_once_each() {
    let setup = Setup::new("");
    let d = setup.start();
    setup.register(&d);
    let pdf = setup.sample();
    let results: Vec<(u16, Vec<u8>, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|c| {
                let client = d.client("app");
                let (pdf, d) = (pdf.clone(), &d);
                s.spawn(move || {
                    (0..25)
                        .map(|i| {
                            let a = sign(d, &client, &format!("document_id=c{c}-{i}"), pdf.clone());
                            let seq = a.header("seald-audit-record");
                            (a.status, a.body, seq)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client thread"))
            .collect()
    });
    assert_eq!(results.len(), 200);
    let mut seqs = std::collections::BTreeSet::new();
    let validators = Validators::new(setup.dir(), &[setup.seal.root()]);
    for (i, (status, body, seq)) in results.iter().enumerate() {
        assert_eq!(*status, 200, "{}", String::from_utf8_lossy(body));
        assert!(
            seqs.insert(seq.clone().expect("audit header")),
            "two answers name one record"
        );
        assert!(verified(&setup, body), "output {i} does not verify");
        let file = setup.dir().join(format!("out-{i}.pdf"));
        fs::write(&file, body).expect("write");
        let sigs = validators.pdfsig(&file);
        assert!(
            sigs.len() == 1 && sigs[0].valid && sigs[0].trusted,
            "pdfsig on output {i}: {sigs:?}"
        );
        // Each output names its own document id in its own record.
        let stored = setup.sql(&format!(
            "SELECT output_sha256 FROM audit_records WHERE seq = {}",
            seq.clone().unwrap_or_default()
        ));
        assert_eq!(stored, sha256_hex(body));
    }
    assert_eq!(
        signed_count(&setup),
        200,
        "exactly one sign record per signature"
    );
    let out = run(setup.sealctl(&d, "admin").args(["audit", "verify"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A TSA that accepts connections and never answers.
fn stalled_tsa() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", l.local_addr().expect("addr"));
    (l, url)
}

fn metric(d: &Daemon, name: &str) -> Option<f64> {
    let text = reqwest::blocking::get(format!("{}/metrics", d.plain))
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_a_slow_request_times_out_cleanly() {
    let (_tsa, url) = stalled_tsa();
    let setup = Setup::new(&format!(
        "[limits]\nqueue_depth = 1\nrequest_timeout_seconds = 2\n\n[tsa]\nurls = [\"{url}\"]\nroots = [\"@ROOT@\"]\ntimeout_seconds = 5\n"
    ));
    let d = setup.start();
    setup.register(&d);
    std::thread::scope(|s| {
        // A B-T request holds the only place in the queue while the TSA does not answer.
        let slow = s.spawn(|| sign(&d, &d.client("app"), "level=b-t", setup.sample()));
        assert!(
            seald_tests::daemon::wait_until(Duration::from_secs(20), || metric(
                &d,
                "seald_sign_queue_depth"
            ) == Some(1.0)),
            "the slow request never entered the queue"
        );
        let refused = sign(&d, &d.client("app"), "", setup.sample());
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (503, "queue_full")
        );
        assert!(refused.header("retry-after").is_some(), "no Retry-After");
        let slow = slow.join().expect("slow");
        assert_eq!(
            (slow.status, slow.code().as_str()),
            (503, "timeout"),
            "{}",
            String::from_utf8_lossy(&slow.body)
        );
        assert!(slow.header("retry-after").is_some());
    });
    // Once the stalled signing gives up, the queue is free again and nothing is left behind.
    assert!(seald_tests::daemon::wait_until(
        Duration::from_secs(20),
        || metric(&d, "seald_sign_queue_depth") == Some(0.0)
    ));
    let ok = sign(&d, &d.client("app"), "level=b-b", setup.sample());
    assert_eq!(ok.status, 200);
    assert!(verified(&setup, &ok.body));
    assert!(
        seald_tests::daemon::wait_until(Duration::from_secs(10), || fs::read_dir(
            setup.data.join("spool")
        )
        .map(|d| d.count() == 0)
        .unwrap_or(false)),
        "spool not emptied"
    );
    let rows = audit_rows(&setup);
    let reasons: Vec<&str> = rows
        .iter()
        .filter(|r| r[1] == "sign")
        .map(|r| r[3].as_str())
        .collect();
    assert!(
        reasons.contains(&"queue_full") && reasons.contains(&"timeout"),
        "{reasons:?}"
    );
    assert_eq!(
        signed_count(&setup),
        1,
        "the timed-out request left no signature record"
    );
}

#[test]
fn b_t_signatures_carry_a_time_stamp_from_the_tsa() {
    let setup = Setup::new("");
    let tsa = seald_tests::pdf::Tsa::start(&setup.seal.pki);
    let text = fs::read_to_string(&setup.config).expect("config")
        + &format!("[tsa]\nurls = [\"http://127.0.0.1:1/\", \"{}\"]\nroots = [\"{}\"]\ndefault_level = \"b-t\"\n", tsa.url, setup.seal.root().display());
    fs::write(&setup.config, text).expect("config");
    let d = setup.start();
    setup.register(&d);
    let ready = send(reqwest::blocking::Client::new().get(format!("{}/readyz", d.plain)));
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    let a = sign(&d, &d.client("app"), "", setup.sample());
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let out = setup.dir().join("bt.pdf");
    fs::write(&out, &a.body).expect("write");
    let validators = Validators::new(setup.dir(), &[setup.seal.root()]);
    let py = validators.pyhanko(&out, true);
    assert_eq!(py[0]["valid"], true, "{}", py[0]);
    assert_eq!(py[0]["timestamp"]["valid"], true, "{}", py[0]);
    assert_eq!(py[0]["timestamp"]["trusted"], true, "{}", py[0]);
    let detail = setup.sql(&format!(
        "SELECT detail FROM audit_records WHERE seq = {}",
        a.header("seald-audit-record").unwrap_or_default()
    ));
    assert!(detail.contains("\"level\":\"b-t\""), "{detail}");
    // With B-T the default, readiness requires a reachable TSA.
    drop(tsa);
    let plain = reqwest::blocking::Client::new();
    assert!(
        seald_tests::daemon::wait_until(Duration::from_secs(20), || {
            let r = send(plain.get(format!("{}/readyz", d.plain)));
            r.status == 503 && r.json()["checks"]["tsa"] != "ok"
        }),
        "readyz stayed ready without a TSA"
    );
}

#[test]
fn sigterm_under_load_finishes_requests_in_flight_and_loses_no_committed_record() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let setup = Setup::new("");
    let d = setup.start();
    setup.register(&d);
    let done = AtomicUsize::new(0);
    let answered: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let pdf = setup.sample();
    let status = std::thread::scope(|s| {
        for c in 0..4 {
            let client = d.client("app");
            let (done, answered, pdf, url) = (
                &done,
                &answered,
                pdf.clone(),
                sign_url(&d, "contract", &format!("document_id=load-{c}")),
            );
            s.spawn(move || loop {
                match try_send(
                    client
                        .post(&url)
                        .header("Content-Type", "application/pdf")
                        .body(pdf.clone()),
                ) {
                    Ok(a) if a.status == 200 => {
                        answered.lock().expect("lock").push((
                            a.header("seald-audit-record").unwrap_or_default(),
                            sha256_hex(&a.body),
                        ));
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(a) => panic!(
                        "unexpected answer {} during shutdown: {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    ),
                    Err(_) => break,
                }
            });
        }
        assert!(seald_tests::daemon::wait_until(
            Duration::from_secs(60),
            || done.load(Ordering::SeqCst) >= 40
        ));
        d.terminate(Duration::from_secs(60))
    });
    assert!(status.success(), "seald exited with {status}");
    let answered = answered.into_inner().expect("lock");
    assert!(answered.len() >= 40);
    // Every signature a client received has its record, with that output.
    for (seq, sha) in &answered {
        assert_eq!(
            setup.sql(&format!(
                "SELECT output_sha256 FROM audit_records WHERE seq = {seq}"
            )),
            *sha,
            "record {seq}"
        );
    }
    assert_eq!(
        signed_count(&setup),
        answered.len(),
        "a record without an answer, or the reverse"
    );
    // The shutdown checkpoint covers the last record.
    assert_eq!(
        setup.sql("SELECT max(seq) FROM audit_checkpoints"),
        setup.sql("SELECT max(seq) FROM audit_records")
    );
    let d = setup.start();
    let out = run(setup
        .sealctl(&d, "admin")
        .args(["audit", "verify", "--trust"])
        .arg(setup.seal.root()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_token_removed_under_load_fails_with_503_and_recovers_by_itself() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    let setup = Setup::new("");
    let d = setup.start();
    setup.register(&d);
    let plain = reqwest::blocking::Client::new();
    let ready = || send(plain.get(format!("{}/readyz", d.plain))).status;
    assert_eq!(ready(), 200);
    let stop = AtomicBool::new(false);
    let answers: Mutex<Vec<(u16, String, Vec<u8>)>> = Mutex::new(Vec::new());
    let storage = setup.token_storage();
    let parked = setup.dir().join("parked-token");
    std::thread::scope(|s| {
        for _ in 0..2 {
            let client = d.client("app");
            let (stop, answers, pdf, url) = (
                &stop,
                &answers,
                setup.sample(),
                sign_url(&d, "contract", ""),
            );
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let a = send(
                        client
                            .post(&url)
                            .header("Content-Type", "application/pdf")
                            .body(pdf.clone()),
                    );
                    let code = if a.status == 200 {
                        String::new()
                    } else {
                        a.code()
                    };
                    answers.lock().expect("lock").push((a.status, code, a.body));
                }
            });
        }
        let count = |status: u16| {
            answers
                .lock()
                .expect("lock")
                .iter()
                .filter(|a| a.0 == status)
                .count()
        };
        assert!(seald_tests::daemon::wait_until(
            Duration::from_secs(30),
            || count(200) >= 10
        ));
        // The token's storage disappears (a pulled UKey, an HSM restarting).
        fs::rename(&storage, &parked).expect("remove the token");
        assert!(
            seald_tests::daemon::wait_until(Duration::from_secs(30), || ready() == 503),
            "readyz never noticed"
        );
        let before = count(503);
        assert!(seald_tests::daemon::wait_until(
            Duration::from_secs(30),
            || count(503) >= before + 5
        ));
        let signed_while_gone = count(200);
        fs::rename(&parked, &storage).expect("restore the token");
        assert!(
            seald_tests::daemon::wait_until(Duration::from_secs(60), || ready() == 200),
            "readyz never recovered:\n{}",
            d.log_text()
        );
        assert!(
            seald_tests::daemon::wait_until(Duration::from_secs(30), || count(200)
                >= signed_while_gone + 10),
            "signing never recovered"
        );
        stop.store(true, Ordering::SeqCst);
    });
    let answers = answers.into_inner().expect("lock");
    for (status, code, body) in &answers {
        match status {
            200 => assert!(verified(&setup, body), "a corrupt output"),
            503 => assert!(
                code == "token_unavailable" || code == "token_busy",
                "{code}"
            ),
            other => panic!("unexpected {other} {code}"),
        }
    }
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    assert_eq!(signed_count(&setup), ok);
    let reasons =
        setup.sql("SELECT count(*) FROM audit_records WHERE reason = 'token_unavailable'");
    assert!(reasons.parse::<usize>().expect("n") >= 5);
}

#[test]
fn the_openapi_document_is_valid_and_every_route_in_it_is_served() {
    let setup = Setup::new("");
    let d = setup.start();
    setup.register(&d);
    let admin = d.client("admin");
    let spec = send(admin.get(format!("{}/v1/openapi.json", d.api)));
    assert_eq!(spec.status, 200);
    let file = setup.dir().join("openapi.json");
    fs::write(&file, &spec.body).expect("write");
    let out = run(Command::new(seald_tests::pdf::pyhanko_python())
        .args(["-c", "import sys; from openapi_spec_validator import validate; from openapi_spec_validator.readers import read_from_filename; validate(read_from_filename(sys.argv[1])[0]); print('valid')"])
        .arg(&file));
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = spec.json();
    for (path, operations) in spec["paths"].as_object().expect("paths") {
        for method in operations.as_object().expect("ops").keys() {
            let url = format!("{}{}", d.api, path.replace("{seal_id}", "contract"));
            let request = match method.as_str() {
                "get" => admin.get(&url),
                "post" => admin
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body("{}"),
                "put" => admin
                    .put(&url)
                    .header("Content-Type", "application/json")
                    .body("{}"),
                "delete" => admin.delete(&url),
                other => panic!("unexpected method {other}"),
            };
            let a = send(request);
            let code = if a.header("content-type").as_deref() == Some("application/problem+json") {
                a.code()
            } else {
                String::new()
            };
            assert!(
                code != "no_route" && code != "method_not_allowed",
                "{method} {path}: {} {code}",
                a.status
            );
        }
    }
    // And what is not in it is not served.
    let a = send(admin.get(format!("{}/v1/nothing-here", d.api)));
    assert_eq!((a.status, a.code().as_str()), (404, "no_route"));
    let a = send(admin.delete(format!("{}/v1/seals/contract", d.api)));
    assert_eq!((a.status, a.code().as_str()), (405, "method_not_allowed"));
}

#[test]
fn template_restrictions_existing_fields_and_exports_since_a_time() {
    let setup = Setup::new("");
    let d = setup.start();
    setup.register(&d);
    // An application that may use the seal only for the NDA template.
    client_cert(&setup.tls, "hr", false);
    let register_hr = |extra: &[&str]| {
        let mut cmd = setup.sealctl(&d, "admin");
        cmd.args([
            "admin", "app", "register", "--id", "hr", "--name", "HR", "--role", "signer", "--seal",
            "contract",
        ])
        .args(extra)
        .arg("--cert")
        .arg(setup.tls.join("hr.crt"));
        run_ok(&mut cmd);
    };
    register_hr(&["--template", "nda"]);
    let hr = d.client("hr");
    let a = sign(&d, &hr, "", setup.sample());
    assert_eq!((a.status, a.code().as_str()), (403, "template_required"));
    let a = sign(&d, &hr, "template_id=loan", setup.sample());
    assert_eq!((a.status, a.code().as_str()), (403, "template_not_granted"));
    assert_eq!(sign(&d, &hr, "template_id=nda", setup.sample()).status, 200);
    // A disabled application is refused at once.
    register_hr(&["--disabled"]);
    let a = sign(&d, &hr, "template_id=nda", setup.sample());
    assert_eq!((a.status, a.code().as_str()), (403, "application_disabled"));
    // A seal whose key is not on the token is refused at registration.
    let out = run(setup
        .sealctl(&d, "admin")
        .args([
            "admin",
            "seal",
            "register",
            "--id",
            "ghost",
            "--name",
            "Ghost",
            "--token",
            "hsm",
            "--key",
            "no-such-key",
            "--chain",
        ])
        .arg(&setup.chain));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("seal_key_unusable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same certificate cannot be registered under a second id.
    let out = run(setup
        .sealctl(&d, "admin")
        .args([
            "admin", "app", "register", "--id", "hr2", "--name", "HR", "--role", "signer", "--cert",
        ])
        .arg(setup.tls.join("hr.crt")));
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("certificate_registered")
    );

    // A template's predefined empty field is signed by name, with the seal fitted into it.
    let form =
        fs::read(workspace_root().join("tests/corpus/minimal-two-fields.pdf")).expect("form");
    let app = d.client("app");
    let a = send(
        app.post(sign_url(&d, "contract", "field=Sig1"))
            .header("Content-Type", "application/pdf")
            .body(form.clone()),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let out = setup.dir().join("field.pdf");
    fs::write(&out, &a.body).expect("write");
    let sigs = Validators::new(setup.dir(), &[setup.seal.root()]).pyhanko(&out, true);
    assert_eq!(
        seald_tests::pdf::by_field(&sigs, "Sig1")["valid"],
        true,
        "{sigs:?}"
    );
    let a = send(
        app.post(sign_url(&d, "contract", "field=Nope"))
            .header("Content-Type", "application/pdf")
            .body(form),
    );
    assert_eq!((a.status, a.code().as_str()), (422, "no_such_field"));

    // Exports from a point in time hold the records from then on, in order.
    let cut = setup.sql("SELECT time FROM audit_records WHERE action = 'sign' AND decision = 'allowed' ORDER BY seq LIMIT 1 OFFSET 1");
    let expected: Vec<String> = setup
        .sql(&format!(
            "SELECT seq FROM audit_records WHERE time >= '{cut}' ORDER BY seq"
        ))
        .lines()
        .map(str::to_owned)
        .collect();
    let export = run_ok(
        setup
            .sealctl(&d, "admin")
            .args(["audit", "export", "--since", &cut]),
    );
    let seqs: Vec<String> = export
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "record")
        .map(|v| v["seq"].to_string())
        .collect();
    assert_eq!(seqs, expected);
    assert!(!seqs.is_empty());
}

#[test]
fn documents_through_the_spool_sign_like_documents_in_memory() {
    // Nothing in memory: every body goes through a spool file.
    let setup = Setup::new("[limits]\nmemory_body_kib = 0\n");
    let d = setup.start();
    setup.register(&d);
    let app = d.client("app");
    let post = |key: &str| {
        send(
            app.post(sign_url(&d, "contract", "document_id=spooled"))
                .header("Content-Type", "application/pdf")
                .header("Idempotency-Key", key)
                .body(setup.sample()),
        )
    };
    let first = post("spool-1");
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert!(verified(&setup, &first.body));
    let again = post("spool-1");
    assert_eq!(
        (
            again.body == first.body,
            again.header("idempotent-replayed").as_deref()
        ),
        (true, Some("true"))
    );
    // A body sent without a length (chunked) is streamed to the spool on any configuration.
    let out = setup.dir().join("chunked.pdf");
    fs::write(setup.dir().join("contract.pdf"), setup.sample()).expect("write");
    let status = run_ok(
        Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(setup.tls.join("tls-ca.pem"))
            .arg("--cert")
            .arg(setup.tls.join("app.crt"))
            .arg("--key")
            .arg(setup.tls.join("app.key"))
            .args([
                "-H",
                "Content-Type: application/pdf",
                "-H",
                "Transfer-Encoding: chunked",
                "-o",
            ])
            .arg(&out)
            .args(["-w", "%{http_code}", "--data-binary"])
            .arg(format!("@{}", setup.dir().join("contract.pdf").display()))
            .arg(sign_url(&d, "contract", "")),
    );
    assert_eq!(status, "200");
    let body = fs::read(&out).expect("signed");
    assert!(verified(&setup, &body));
    let sigs = Validators::new(setup.dir(), &[setup.seal.root()]).pdfsig(&out);
    assert!(sigs.len() == 1 && sigs[0].valid, "{sigs:?}");
    assert_eq!(
        fs::read_dir(setup.data.join("spool"))
            .expect("spool")
            .count(),
        0
    );
}

#[test]
fn seald_starts_without_its_token_and_serves_once_the_token_appears() {
    let setup = Setup::new("");
    let d = setup.start();
    setup.register(&d);
    assert!(d.terminate(Duration::from_secs(60)).success());
    let storage = setup.token_storage();
    let parked = setup.dir().join("parked-token");
    fs::rename(&storage, &parked).expect("remove the token");
    let d = setup.start();
    let plain = reqwest::blocking::Client::new();
    let ready = || send(plain.get(format!("{}/readyz", d.plain)));
    let r = ready();
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json()["checks"]["tokens"]["hsm"]["state"],
        "unavailable",
        "{}",
        r.json()
    );
    let a = sign(&d, &d.client("app"), "", setup.sample());
    assert_eq!((a.status, a.code().as_str()), (503, "token_unavailable"));
    assert!(a.header("retry-after").is_some());
    fs::rename(&parked, &storage).expect("restore the token");
    assert!(
        seald_tests::daemon::wait_until(Duration::from_secs(60), || ready().status == 200),
        "never ready:\n{}",
        d.log_text()
    );
    let a = sign(&d, &d.client("app"), "", setup.sample());
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(verified(&setup, &a.body));
}

#[test]
fn the_token_pin_can_come_from_an_environment_variable() {
    let setup = Setup::new("");
    let text = fs::read_to_string(&setup.config).expect("config");
    let pin_line = text
        .lines()
        .find(|l| l.starts_with("pin_file = "))
        .expect("pin_file line")
        .to_owned();
    fs::write(
        &setup.config,
        text.replace(&pin_line, "pin_env = \"SEALD_TEST_HSM_PIN\""),
    )
    .expect("config");
    // Unset: seald refuses to start and names the key.
    let out = run(Command::new(seald_tests::binary("seald"))
        .arg("--config")
        .arg(&setup.config)
        .env("SOFTHSM2_CONF", setup.seal.hsm.conf())
        .env_remove("SEALD_TEST_HSM_PIN"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("token[0].pin_env"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Set: the token logs in and seals sign; the PIN is in no log line.
    let d = setup.start_with_env(&[("SEALD_TEST_HSM_PIN", seald_tests::USER_PIN)]);
    setup.register(&d);
    let a = sign(&d, &d.client("app"), "", setup.sample());
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(!d.log_text().contains(seald_tests::USER_PIN));
}
