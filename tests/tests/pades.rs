//! PAdES signing and verification end to end: every signed output is judged by tools nobody
//! here wrote (qpdf, poppler's pdfsig, pyHanko), on a corpus of third-party PDFs, with visible
//! seals on rotated and cropped pages, existing fields, certified documents, time-stamps from
//! an independent TSA, tampering, and broken inputs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use seald_pades::object::{ObjRef, Object};
use seald_pades::{
    Document, Modifications, Placement, SealAppearance, SealImage, SignOptions, SigningTime,
    Verdict, VerifyOptions,
};
use seald_pkcs11::admin::KeyAlgorithm;
use seald_tests::pdf::{by_field, red_box, seal_png, SealKey, Tsa, Validators};
use seald_tests::{run, run_ok, workspace_root};

fn corpus(name: &str) -> PathBuf {
    workspace_root().join("tests/corpus").join(name)
}

fn options<'a>(key: &'a SealKey, placement: Placement) -> SignOptions<'a> {
    SignOptions {
        signer: &key.key,
        placement,
        field_name: None,
        reason: Some("合同审批".to_owned()),
        location: Some("Shanghai".to_owned()),
        contact_info: None,
        time: SigningTime::now(480),
        timestamper: None,
        durable: true,
    }
}

fn verify(key: &SealKey, pdf: &Path) -> seald_pades::Report {
    let doc = Document::open(pdf).expect("open signed output");
    seald_pades::verify_document(
        &doc,
        &VerifyOptions {
            trust_roots: key.root_der(),
            now: SigningTime::now(0).unix_seconds,
        },
    )
    .expect("verify")
}

/// minimal.pdf signed invisibly on page 1 into `signed.pdf` in the key's directory.
fn signed_minimal(key: &SealKey) -> PathBuf {
    let signed = key.dir().join("signed.pdf");
    seald_pades::sign_file(
        &corpus("minimal.pdf"),
        &signed,
        &options(key, Placement::Invisible { page: 1 }),
    )
    .expect("sign");
    signed
}

/// Everything every output must satisfy: original bytes untouched, one revision in the
/// original's xref style, and all three validators (and ours) happy with signature `field`.
fn assert_signed_well(
    key: &SealKey,
    v: &Validators,
    input: &Path,
    output: &Path,
    field: &str,
    strict: bool,
) {
    let original = fs::read(input).expect("input");
    let signed = fs::read(output).expect("output");
    assert!(signed.len() > original.len());
    assert_eq!(
        &signed[..original.len()],
        &original[..],
        "original bytes changed"
    );
    let before = Document::open(input).expect("input");
    let after = Document::open(output).expect("output");
    assert_eq!(
        after.xref_style(),
        before.xref_style(),
        "xref style changed"
    );
    assert_eq!(
        after.section_offsets().len(),
        before.section_offsets().len() + 1
    );
    assert_eq!(after.section_offsets()[1], before.startxref(), "/Prev");
    let (_, catalog) = after.catalog().expect("catalog");
    let form = after
        .get_dict(catalog.get("AcroForm"))
        .expect("form")
        .expect("an AcroForm");
    assert_eq!(form.int("SigFlags").map(|f| f & 3), Some(3), "/SigFlags");

    v.qpdf(output)
        .unwrap_or_else(|e| panic!("qpdf on {}: {e}", output.display()));
    let poppler = v.pdfsig(output);
    let ours = poppler
        .iter()
        .find(|s| s.field == field)
        .unwrap_or_else(|| panic!("pdfsig does not list {field}: {poppler:?}"));
    assert!(ours.valid && ours.whole_document, "pdfsig: {ours:?}");
    // poppler 22.12 (NSS) reports "Unknown issue with Certificate" for the second of two
    // signatures by some certificates, pyHanko's as much as ours; trust is checked for the
    // first signature by each signer (pyHanko and our verifier check every one below).
    let repeated = poppler
        .iter()
        .any(|s| s.signed && s.field != field && s.signer == ours.signer);
    assert!(repeated || ours.trusted, "pdfsig: {ours:?}");
    for other in poppler.iter().filter(|s| s.signed && s.field != field) {
        assert!(
            other.valid,
            "pdfsig says an earlier signature broke: {other:?}"
        );
    }
    let hanko = v.pyhanko(output, strict);
    let s = by_field(&hanko, field);
    assert_eq!(s["intact"], true, "{s}");
    assert_eq!(s["valid"], true, "{s}");
    assert_eq!(s["trusted"], true, "{s}");
    assert_eq!(s["coverage"], "ENTIRE_FILE", "{s}");
    assert_eq!(s["sub_filter"], "/ETSI.CAdES.detached", "{s}");
    let attrs: Vec<&str> = s["signed_attrs"]
        .as_array()
        .expect("attrs")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        attrs.contains(&"signing_certificate_v2") && !attrs.contains(&"signing_time"),
        "{attrs:?}"
    );
    for other in hanko.iter().filter(|o| o["field"] != field) {
        assert_eq!(
            other["intact"], true,
            "pyHanko: an earlier signature broke: {other}"
        );
        assert!(
            other["modification_level"] == "NONE" || other["modification_level"] == "FORM_FILLING",
            "pyHanko does not accept our revision after an earlier signature: {other}"
        );
    }
    let report = verify(key, output);
    let mine = report
        .signatures
        .iter()
        .find(|r| r.field == field)
        .expect("our verifier lists the signature");
    assert!(mine.valid && mine.covers_whole_file, "{mine:?}");
    assert_ne!(report.verdict, Verdict::Tampered, "{report:?}");
}

#[test]
fn third_party_pdfs_are_signed_and_every_validator_agrees() {
    let key = SealKey::new(KeyAlgorithm::Rsa2048);
    let v = Validators::new(key.dir(), &[key.root()]);
    let image = SealImage::from_png(&seal_png(120)).expect("seal image");
    let mut inputs: Vec<(PathBuf, bool)> = [
        "minimal.pdf",
        "minimal-xref.pdf",
        "minimal-two-fields.pdf",
        "minimal-two-fields-tagged.pdf",
        "minimal-two-fields-signed-twice.pdf",
        "minimal-with-simple-form.pdf",
        "minimal-one-field-indir-annots.pdf",
        "separate-annots-kids-indir.pdf",
        "minimal-badxref.pdf",
    ]
    .iter()
    .map(|n| (corpus(n), true))
    .collect();
    // pyHanko refuses hybrid-reference files in strict mode; it judges them without it.
    inputs.push((corpus("minimal-hybrid-xref.pdf"), false));
    inputs.push((corpus("minimal-hybrid-xref-mswordstyle.pdf"), false));
    let manual = "/usr/share/doc/libtasn1-doc/libtasn1.pdf";
    for debian in [
        manual,
        "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
    ] {
        assert!(
            Path::new(debian).exists(),
            "{debian} missing: deploy/test.sh installs it"
        );
        inputs.push((PathBuf::from(debian), true));
    }
    // The same manual rewritten by qpdf: linearized, as PDF 1.3 with a classic table, and
    // with everything in object streams.
    for (name, args) in [
        ("linearized.pdf", vec!["--linearize"]),
        (
            "pdf13.pdf",
            vec!["--force-version=1.3", "--object-streams=disable"],
        ),
        ("objstreams.pdf", vec!["--object-streams=generate"]),
    ] {
        let out = key.dir().join(name);
        run_ok(Command::new("qpdf").arg(manual).args(&args).arg(&out));
        inputs.push((out, true));
    }
    for (i, (input, strict)) in inputs.iter().enumerate() {
        let name = input
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        // Invisible signature on the last page.
        let pages = Document::open(input)
            .expect("open")
            .page_count()
            .expect("pages");
        let out = key.dir().join(format!("invisible-{i}-{name}"));
        let signed = seald_pades::sign_file(
            input,
            &out,
            &options(&key, Placement::Invisible { page: pages }),
        )
        .unwrap_or_else(|e| panic!("signing {name}: {e}"));
        assert_signed_well(&key, &v, input, &out, &signed.field, *strict);
        // Visible seal on page 1.
        let out = key.dir().join(format!("visible-{i}-{name}"));
        let placement = Placement::Visible {
            page: 1,
            x_mm: 5.0,
            y_mm: 5.0,
            width_mm: 15.0,
            seal: SealAppearance {
                image: image.clone(),
                date_line: Some("2026-11-24".to_owned()),
            },
        };
        let signed = seald_pades::sign_file(input, &out, &options(&key, placement))
            .unwrap_or_else(|e| panic!("signing {name} visibly: {e}"));
        assert_signed_well(&key, &v, input, &out, &signed.field, *strict);
    }
}

#[test]
fn visible_seals_land_where_asked_on_rotated_and_cropped_pages() {
    let key = SealKey::new(KeyAlgorithm::EcP256);
    let v = Validators::new(key.dir(), &[key.root()]);
    let image = SealImage::from_png(&seal_png(200)).expect("seal image");
    // Four pages, rotated 0/90/180/270 by qpdf, from a real manual.
    let rotated = key.dir().join("rotated.pdf");
    run_ok(
        Command::new("qpdf")
            .arg("/usr/share/doc/libtasn1-doc/libtasn1.pdf")
            .args([
                "--pages",
                "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
                "1-4",
                "--",
            ])
            .arg("--rotate=+90:2")
            .arg("--rotate=+180:3")
            .arg("--rotate=+270:4")
            .arg(&rotated),
    );
    for page in 1..=4u32 {
        let out = key.dir().join(format!("rotated-{page}.pdf"));
        let placement = Placement::Visible {
            page,
            x_mm: 30.0,
            y_mm: 20.0,
            width_mm: 25.0,
            seal: SealAppearance {
                image: image.clone(),
                date_line: None,
            },
        };
        let signed =
            seald_pades::sign_file(&rotated, &out, &options(&key, placement)).expect("sign");
        assert_signed_well(&key, &v, &rotated, &out, &signed.field, true);
        // poppler draws the seal at 30 mm / 20 mm from the displayed top-left, 25 mm wide.
        let (l, t, r, b) = red_box(&out, page, key.dir()).expect("the seal is drawn");
        let mm = |v: f64| v * 72.0 / 25.4;
        // The ring spans 5%..95% of the image.
        let (x0, y0, w) = (mm(30.0), mm(20.0), mm(25.0));
        let expect = (x0 + 0.05 * w, y0 + 0.05 * w, x0 + 0.95 * w, y0 + 0.95 * w);
        let near = |got: u32, want: f64| (got as f64 - want).abs() <= 3.0;
        assert!(
            near(l, expect.0) && near(t, expect.1) && near(r, expect.2) && near(b, expect.3),
            "page {page}: seal drawn at {:?}, expected about {expect:?}",
            (l, t, r, b)
        );
    }
    // A crop box whose origin is not 0,0: written by hand (qpdf has no option for it).
    let cropped = key.dir().join("cropped.pdf");
    fs::write(&cropped, cropped_pdf()).expect("write");
    let out = key.dir().join("cropped-signed.pdf");
    let placement = Placement::Visible {
        page: 1,
        x_mm: 10.0,
        y_mm: 10.0,
        width_mm: 20.0,
        seal: SealAppearance {
            image: image.clone(),
            date_line: None,
        },
    };
    let signed = seald_pades::sign_file(&cropped, &out, &options(&key, placement)).expect("sign");
    assert_signed_well(&key, &v, &cropped, &out, &signed.field, true);
    let (l, t, _, _) = red_box(&out, 1, key.dir()).expect("drawn");
    let want = 10.0 * 72.0 / 25.4 + 0.05 * 20.0 * 72.0 / 25.4;
    assert!(
        (l as f64 - want).abs() <= 3.0 && (t as f64 - want).abs() <= 3.0,
        "{l},{t} vs {want}"
    );

    // A seal that does not fit is refused, and nothing is written.
    let out = key.dir().join("too-big.pdf");
    let placement = Placement::Visible {
        page: 1,
        x_mm: 150.0,
        y_mm: 10.0,
        width_mm: 100.0,
        seal: SealAppearance {
            image,
            date_line: None,
        },
    };
    let err =
        seald_pades::sign_file(&cropped, &out, &options(&key, placement)).expect_err("too big");
    assert!(err.to_string().contains("does not fit on page 1"), "{err}");
    assert!(!out.exists());
}

/// A one-page PDF whose crop box starts at 100,50 inside its media box (hand-written).
fn cropped_pdf() -> Vec<u8> {
    hand_written_pdf("<< >>")
}

/// A hand-written one-page PDF with correct offsets, the page's /Resources being `resources`.
fn hand_written_pdf(resources: &str) -> Vec<u8> {
    let page = format!(
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 700 900] /CropBox [100 50 700 900] /Resources {resources} /Contents 4 0 R >>"
    );
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        page.as_str(),
        "<< /Length 0 >>\nstream\n\nendstream",
    ];
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f\r\n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[test]
fn existing_fields_certified_documents_and_second_signatures() {
    let key = SealKey::new(KeyAlgorithm::Rsa2048);
    let v = Validators::new(key.dir(), &[key.root()]);
    let image = SealImage::from_png(&seal_png(100)).expect("seal image");
    let input = corpus("minimal-two-fields.pdf");
    let first = key.dir().join("sig1.pdf");
    let field = |name: &str, seal: bool| Placement::Field {
        name: name.to_owned(),
        seal: seal.then(|| SealAppearance {
            image: image.clone(),
            date_line: Some("2026-11-24".to_owned()),
        }),
    };
    let signed =
        seald_pades::sign_file(&input, &first, &options(&key, field("Sig1", true))).expect("Sig1");
    assert_eq!(signed.field, "Sig1");
    assert_signed_well(&key, &v, &input, &first, "Sig1", true);
    // A second signature in the other field keeps the first one valid (form filling only).
    let second = key.dir().join("sig2.pdf");
    seald_pades::sign_file(&first, &second, &options(&key, field("Sig2", false))).expect("Sig2");
    assert_signed_well(&key, &v, &first, &second, "Sig2", true);
    let hanko = v.pyhanko(&second, true);
    assert_eq!(by_field(&hanko, "Sig1")["valid"], true);
    assert_eq!(by_field(&hanko, "Sig1")["coverage"], "ENTIRE_REVISION");
    let report = verify(&key, &second);
    assert_eq!(report.verdict, Verdict::NotTampered);
    assert!(report.signatures.iter().all(|s| s.valid), "{report:?}");

    // Signed fields cannot be signed again; unknown fields are named.
    let err = seald_pades::sign_file(
        &second,
        &key.dir().join("x.pdf"),
        &options(&key, field("Sig1", false)),
    )
    .expect_err("already signed");
    assert!(
        matches!(err, seald_pades::Error::FieldAlreadySigned(_)),
        "{err}"
    );
    let err = seald_pades::sign_file(
        &input,
        &key.dir().join("x.pdf"),
        &options(&key, field("Nope", false)),
    )
    .expect_err("no such field");
    assert!(
        err.to_string().contains("no signature field named 'Nope'"),
        "{err}"
    );
    assert!(!key.dir().join("x.pdf").exists());

    // Certified by pyHanko: P=2 allows our approval signature, P=1 refuses it.
    let (author_key, author_pem) = software_signer(&key, "Author");
    for permission in [1, 2, 3] {
        let certified = key.dir().join(format!("certified-{permission}.pdf"));
        run_ok(
            Command::new(seald_tests::pdf::pyhanko_python())
                .arg(workspace_root().join("tests/support/pyhanko_certify.py"))
                .arg(corpus("minimal.pdf"))
                .arg(&certified)
                .arg(&author_key)
                .arg(&author_pem)
                .arg(key.pki.join("chain.pem"))
                .arg(permission.to_string()),
        );
        let out = key.dir().join(format!("certified-{permission}-signed.pdf"));
        let result = seald_pades::sign_file(
            &certified,
            &out,
            &options(&key, Placement::Invisible { page: 1 }),
        );
        if permission == 1 {
            let err = result.expect_err("P=1 refuses");
            assert!(
                matches!(err, seald_pades::Error::CertifiedNoChanges),
                "{err}"
            );
            assert!(!out.exists());
        } else {
            let signed = result.expect("P=2 and P=3 allow approval signatures");
            assert_signed_well(&key, &v, &certified, &out, &signed.field, true);
            let hanko = v.pyhanko(&out, true);
            assert_eq!(by_field(&hanko, "Author")["docmdp_ok"], true, "{hanko:?}");
        }
        // A comment added after certification is a change even where P=3 permits it (it can
        // cover signed content); pyHanko judges it the same way.
        let commented = key
            .dir()
            .join(format!("certified-{permission}-commented.pdf"));
        fs::write(&commented, with_comment(&certified)).expect("write");
        let report = verify(&key, &commented);
        let author = report
            .signatures
            .iter()
            .find(|s| s.field == "Author")
            .expect("the author's signature");
        assert_eq!(report.verdict, Verdict::Tampered, "{report:?}");
        assert_eq!(author.modifications, Modifications::Other);
        assert!(
            author
                .problems
                .iter()
                .any(|p| p.contains("an annotation (/FreeText) was added")),
            "{report:?}"
        );
        let hanko = v.pyhanko(&commented, true);
        assert_eq!(
            by_field(&hanko, "Author")["bottom_line"],
            false,
            "{hanko:?}"
        );
        assert_eq!(by_field(&hanko, "Author")["docmdp_ok"], false, "{hanko:?}");
    }
}

/// A key pair in a file and a certificate for it from the test PKI (for signers that are not
/// seald: pyHanko, openssl).
fn software_signer(key: &SealKey, name: &str) -> (PathBuf, PathBuf) {
    let private = key.dir().join(format!("{name}.key"));
    let csr = key.dir().join(format!("{name}.csr"));
    let cert = key.dir().join(format!("{name}.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&private),
    );
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-subj"])
            .arg(format!("/C=CN/O={name}/CN={name}"))
            .arg("-key")
            .arg(&private)
            .arg("-out")
            .arg(&csr),
    );
    seald_tests::pki_issue(&key.pki, &csr, &cert);
    (private, cert)
}

/// A CMS with two signers in /Contents (each of which signed the document): a PDF signature
/// has exactly one, and which of them would be checked is up to the reader, so it is invalid.
#[test]
fn a_signature_with_two_signers_is_refused() {
    let key = SealKey::new(KeyAlgorithm::EcP256);
    let dir = key.dir().to_path_buf();
    let signed = signed_minimal(&key);
    let report = verify(&key, &signed);
    assert_eq!(report.verdict, Verdict::NotTampered);
    let range = report.signatures[0].byte_range.clone();
    let (b, c) = (range[1] as usize, range[2] as usize);
    let mut bytes = fs::read(&signed).expect("read");
    let content = dir.join("content.bin");
    fs::write(&content, [&bytes[..b], &bytes[c..]].concat()).expect("write");
    let (a_key, a_cert) = software_signer(&key, "SignerA");
    let (b_key, b_cert) = software_signer(&key, "SignerB");
    let cms = dir.join("two.der");
    run_ok(
        Command::new("openssl")
            .args([
                "cms", "-sign", "-binary", "-md", "sha256", "-outform", "DER", "-in",
            ])
            .arg(&content)
            .arg("-signer")
            .arg(&a_cert)
            .arg("-inkey")
            .arg(&a_key)
            .arg("-signer")
            .arg(&b_cert)
            .arg("-inkey")
            .arg(&b_key)
            .arg("-out")
            .arg(&cms),
    );
    let hex: Vec<u8> = fs::read(&cms)
        .expect("cms")
        .iter()
        .flat_map(|byte| format!("{byte:02X}").into_bytes())
        .collect();
    assert!(hex.len() < c - b - 2, "the CMS fits the placeholder");
    bytes[b + 1..c - 1].fill(b'0');
    bytes[b + 1..b + 1 + hex.len()].copy_from_slice(&hex);
    let two = dir.join("two-signers.pdf");
    fs::write(&two, &bytes).expect("write");
    let report = verify(&key, &two);
    // Nothing signed was changed, but the signature cannot be checked: not valid.
    assert_eq!(report.verdict, Verdict::NoValidSignature, "{report:?}");
    assert_eq!(report.signatures[0].digest_valid, None);
    assert!(
        report.signatures[0]
            .problems
            .iter()
            .any(|p| p.contains("2 signers")),
        "{report:?}"
    );
}

#[test]
fn b_t_signatures_carry_a_verified_time_stamp_with_fail_over() {
    let key = SealKey::new(KeyAlgorithm::Rsa2048);
    let v = Validators::new(key.dir(), &[key.root()]);
    let tsa = Tsa::start(&key.pki);
    let pin = key.hsm.secret_file("pin", seald_tests::USER_PIN);
    let out = key.dir().join("bt.pdf");
    // The first TSA is down (nothing listens on port 1): seald moves on to the second.
    let output = run(key
        .hsm
        .sealctl()
        .args([
            "sign",
            "--token",
            seald_tests::pdf::TOKEN,
            "--key",
            "seal",
            "--level",
            "b-t",
        ])
        .args([
            "--tsa",
            "http://127.0.0.1:1/tsa",
            "--tsa",
            &tsa.url,
            "--tsa-timeout",
            "5",
        ])
        .arg("--tsa-root")
        .arg(key.root())
        .arg("--pin-file")
        .arg(&pin)
        .arg(corpus("minimal.pdf"))
        .arg("-o")
        .arg(&out));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("127.0.0.1:1") && stderr.contains("time-stamped"),
        "{stderr}"
    );
    assert_signed_well(&key, &v, &corpus("minimal.pdf"), &out, "Signature1", true);
    let hanko = v.pyhanko(&out, true);
    let ts = &by_field(&hanko, "Signature1")["timestamp"];
    assert_eq!(ts["intact"], true, "{ts}");
    assert_eq!(ts["valid"], true, "{ts}");
    assert_eq!(ts["trusted"], true, "{ts}");
    let report = verify(&key, &out);
    assert_eq!(
        report.signatures[0].timestamp_valid,
        Some(true),
        "{report:?}"
    );

    // No TSA answering: a clear error and no output.
    let out2 = key.dir().join("bt-fail.pdf");
    let output = run(key
        .hsm
        .sealctl()
        .args([
            "sign",
            "--token",
            seald_tests::pdf::TOKEN,
            "--key",
            "seal",
            "--level",
            "b-t",
        ])
        .args(["--tsa", "http://127.0.0.1:1/tsa"])
        .arg("--tsa-root")
        .arg(key.root())
        .arg("--pin-file")
        .arg(&pin)
        .arg(corpus("minimal.pdf"))
        .arg("-o")
        .arg(&out2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no time-stamp authority answered usefully"),
        "{stderr}"
    );
    assert!(!out2.exists());

    // A TSA whose certificate does not chain to the configured TSA roots is refused.
    let other_pki = key.dir().join("other-pki");
    seald_tests::pki_init(&other_pki);
    let output = run(key
        .hsm
        .sealctl()
        .args([
            "sign",
            "--token",
            seald_tests::pdf::TOKEN,
            "--key",
            "seal",
            "--level",
            "b-t",
        ])
        .args(["--tsa", &tsa.url])
        .arg("--tsa-root")
        .arg(other_pki.join("root.pem"))
        .arg("--pin-file")
        .arg(&pin)
        .arg(corpus("minimal.pdf"))
        .arg("-o")
        .arg(&out2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("TSA certificate"), "{stderr}");
}

/// A time-stamper whose tokens are larger than it announced: the first plan overflows.
struct Understated<'a>(&'a dyn seald_pades::Timestamper);

impl seald_pades::Timestamper for Understated<'_> {
    fn timestamp(
        &self,
        hash: seald_signer::HashAlgorithm,
        digest: &[u8],
    ) -> seald_pades::Result<Vec<u8>> {
        self.0.timestamp(hash, digest)
    }
    fn expected_size(&self) -> usize {
        0
    }
}

/// A minimal RFC 3161 client for the placeholder test (the HTTP one lives in sealctl).
struct CurlTimestamper {
    url: String,
    roots: Vec<Vec<u8>>,
    dir: PathBuf,
}

impl seald_pades::Timestamper for CurlTimestamper {
    fn timestamp(
        &self,
        hash: seald_signer::HashAlgorithm,
        digest: &[u8],
    ) -> seald_pades::Result<Vec<u8>> {
        let request = seald_pades::TimestampRequest::new(hash, digest, 42)?;
        let q = self.dir.join("q.tsq");
        fs::write(&q, request.der()).expect("query");
        let out = run(Command::new("curl")
            .args([
                "-sf",
                "-H",
                "Content-Type: application/timestamp-query",
                "--data-binary",
            ])
            .arg(format!("@{}", q.display()))
            .arg(&self.url));
        request.accept(&out.stdout, &self.roots)
    }
}

#[test]
fn an_overflowing_placeholder_is_planned_again_never_truncated() {
    let key = SealKey::new(KeyAlgorithm::Rsa2048);
    let v = Validators::new(key.dir(), &[key.root()]);
    let tsa = Tsa::start(&key.pki);
    let client = CurlTimestamper {
        url: tsa.url.clone(),
        roots: key.root_der(),
        dir: key.dir().to_path_buf(),
    };
    let understated = Understated(&client);
    let mut opts = options(&key, Placement::Invisible { page: 1 });
    opts.timestamper = Some(&understated);
    // With nothing reserved for the token the chain alone nearly fills the first plan.
    let out = key.dir().join("replanned.pdf");
    let signed = seald_pades::sign_file(&corpus("minimal.pdf"), &out, &opts).expect("sign");
    assert!(signed.timestamped && signed.signature_len <= signed.reserved_len);
    assert!(signed.signature_len > 4096, "{signed:?}");
    assert_signed_well(&key, &v, &corpus("minimal.pdf"), &out, &signed.field, true);
}

#[test]
fn tampering_is_detected_by_us_and_by_pyhanko_and_pdfsig() {
    let key = SealKey::new(KeyAlgorithm::Rsa2048);
    let v = Validators::new(key.dir(), &[key.root()]);
    let out = signed_minimal(&key);
    let mut bytes = fs::read(&out).expect("read");
    // One byte of the page's /MediaBox, inside the first signed range.
    let at = bytes
        .windows(9)
        .position(|w| w == b"/MediaBox")
        .expect("mediabox")
        + 12;
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    let tampered = key.dir().join("tampered.pdf");
    fs::write(&tampered, &bytes).expect("write");
    let report = verify(&key, &tampered);
    assert_eq!(report.verdict, Verdict::Tampered, "{report:?}");
    assert_eq!(report.signatures[0].digest_valid, Some(false));
    let poppler = v.pdfsig(&tampered);
    assert!(
        poppler[0].digest_mismatch && !poppler[0].valid,
        "{poppler:?}"
    );
    let hanko = v.pyhanko(&tampered, true);
    assert_eq!(hanko[0]["intact"], false, "{hanko:?}");

    // A later revision that changes the page's content (not a signature or form fill).
    let doc = Document::open(&out).expect("open");
    let page = doc.page(1).expect("page");
    let mut dict = page.dict.clone();
    dict.set("Rotate", 90i64);
    let mut appended = fs::read(&out).expect("read");
    let obj_at = appended.len();
    appended.extend_from_slice(
        format!("{} {} obj\n", page.reference.num, page.reference.gen).as_bytes(),
    );
    seald_pades::object::Object::Dict(dict).write(&mut appended);
    appended.extend_from_slice(b"\nendobj\n");
    let xref_at = appended.len();
    appended.extend_from_slice(
        format!(
            "xref\n{} 1\n{obj_at:010} {:05} n\r\ntrailer\n<< /Size {} /Root {} /Prev {} >>\nstartxref\n{xref_at}\n%%EOF\n",
            page.reference.num,
            page.reference.gen,
            doc.size(),
            doc.trailer_value("Root").map(|r| String::from_utf8_lossy(&r.to_bytes()).into_owned()).unwrap_or_default(),
            doc.startxref()
        )
        .as_bytes(),
    );
    let modified = key.dir().join("modified.pdf");
    fs::write(&modified, &appended).expect("write");
    let report = verify(&key, &modified);
    assert_eq!(report.verdict, Verdict::Tampered, "{report:?}");
    assert!(
        report.signatures[0].digest_valid == Some(true),
        "the signed revision itself is intact"
    );
    assert!(
        report.signatures[0]
            .problems
            .iter()
            .any(|p| p.contains("/Rotate changed")),
        "{report:?}"
    );
    let hanko = v.pyhanko(&modified, true);
    assert_eq!(hanko[0]["intact"], true);
    assert_ne!(hanko[0]["modification_level"], "NONE");
    assert_ne!(hanko[0]["modification_level"], "FORM_FILLING");
    assert_eq!(hanko[0]["bottom_line"], false, "{hanko:?}");
}

/// A revision appended by hand, as an attacker would: `objects` (number, generation, body)
/// written out, `freed` marked free, and the trailer's /Root replaced if `root` is given; the
/// cross-reference section is a classic table, or a stream if `stream` is set.
fn append_revision(
    signed: &Path,
    objects: &[(ObjRef, Vec<u8>)],
    freed: &[ObjRef],
    root: Option<ObjRef>,
    stream: bool,
) -> Vec<u8> {
    let doc = Document::open(signed).expect("open");
    let root = root
        .or_else(|| doc.trailer_value("Root").and_then(|r| r.as_ref()))
        .expect("root");
    let mut out = fs::read(signed).expect("read");
    let mut entries: Vec<(u32, u8, u32, u16)> = Vec::new();
    for (r, body) in objects {
        entries.push((r.num, 1, out.len() as u32, r.gen));
        out.extend_from_slice(format!("{} {} obj\n", r.num, r.gen).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    for r in freed {
        entries.push((r.num, 0, 0, r.gen + 1));
    }
    let xref_at = out.len();
    let size = objects
        .iter()
        .map(|(r, _)| r.num + 1)
        .fold(doc.size(), u32::max);
    if stream {
        let xref_num = size;
        entries.push((xref_num, 1, xref_at as u32, 0));
        let mut rows = Vec::new();
        let mut index = String::new();
        for (num, kind, field, gen) in &entries {
            rows.push(*kind);
            rows.extend_from_slice(&field.to_be_bytes());
            rows.extend_from_slice(&gen.to_be_bytes());
            index.push_str(&format!("{num} 1 "));
        }
        out.extend_from_slice(
            format!(
                "{xref_num} 0 obj\n<< /Type /XRef /Size {} /Root {root} /Prev {} /W [1 4 2] /Index [{index}] /Length {} >>\nstream\n",
                xref_num + 1,
                doc.startxref(),
                rows.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&rows);
        out.extend_from_slice(b"\nendstream\nendobj\n");
    } else {
        out.extend_from_slice(b"xref\n");
        for (num, kind, field, gen) in &entries {
            let f = if *kind == 1 { 'n' } else { 'f' };
            out.extend_from_slice(format!("{num} 1\n{field:010} {gen:05} {f}\r\n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {size} /Root {root} /Prev {} >>\n",
                doc.startxref()
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(format!("startxref\n{xref_at}\n%%EOF\n").as_bytes());
    out
}

fn body(object: &Object) -> Vec<u8> {
    object.to_bytes()
}

/// `pdf` with a comment (a FreeText annotation) added to page 1 in a new revision.
fn with_comment(pdf: &Path) -> Vec<u8> {
    let doc = Document::open(pdf).expect("open");
    let page = doc.page(1).expect("page");
    let note = ObjRef::new(doc.size(), 0);
    let mut annotated = page.dict.clone();
    let mut annots = match annotated.get("Annots") {
        Some(a) => doc
            .get(a)
            .expect("annots")
            .as_array()
            .cloned()
            .unwrap_or_default(),
        None => Vec::new(),
    };
    annots.push(Object::Ref(note));
    annotated.set("Annots", annots);
    append_revision(
        pdf,
        &[
            (
                note,
                b"<< /Type /Annot /Subtype /FreeText /Rect [10 10 200 40] /Contents (paid in full) /DA (/Helv 12 Tf 0 g) >>".to_vec(),
            ),
            (page.reference, body(&Object::Dict(annotated))),
        ],
        &[],
        None,
        false,
    )
}

/// Each way of slipping a change past "only signatures and form fields" is caught: by us (with
/// the reason) and by pyHanko's own difference analysis.
#[test]
fn later_revisions_that_change_content_are_caught() {
    let key = SealKey::new(KeyAlgorithm::EcP256);
    let v = Validators::new(key.dir(), &[key.root()]);
    let dir = key.dir().to_path_buf();
    let signed = signed_minimal(&key);
    let doc = Document::open(&signed).expect("open");
    let page = doc.page(1).expect("page");
    let contents = page
        .dict
        .get("Contents")
        .and_then(|c| c.as_ref())
        .expect("contents");
    let Object::Stream(content) = doc.resolve(contents).expect("content") else {
        panic!("the page content is not a stream");
    };
    let length = content.dict.int("Length").expect("length") as usize;
    let mut data = fs::read(&signed).expect("read")
        [content.data_offset as usize..content.data_offset as usize + length]
        .to_vec();
    let hello = data
        .windows(5)
        .position(|w| w == b"Hello")
        .expect("the text");
    data[hello..hello + 5].copy_from_slice(b"Hallo");
    let mut rewritten = format!("<< /Length {length} >>\nstream\n").into_bytes();
    rewritten.extend_from_slice(&data);
    rewritten.extend_from_slice(b"\nendstream");
    let (root, catalog) = doc.catalog().expect("catalog");
    let new_root = ObjRef::new(doc.size(), 0);
    let mut swapped = catalog.clone();
    swapped.set("PageMode", seald_pades::object::name("FullScreen"));

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "content-same-length",
            append_revision(&signed, &[(contents, rewritten)], &[], None, false),
            "content stream was changed",
        ),
        (
            "deleted",
            append_revision(&signed, &[], &[contents], None, false),
            "was deleted",
        ),
        (
            "root-swap",
            append_revision(
                &signed,
                &[(new_root, body(&Object::Dict(swapped)))],
                &[],
                Some(new_root),
                false,
            ),
            "catalog was replaced",
        ),
        (
            "comment",
            with_comment(&signed),
            "an annotation (/FreeText) was added",
        ),
    ];
    assert_ne!(root, new_root);
    for (name, bytes, reason) in cases {
        let path = dir.join(format!("{name}.pdf"));
        fs::write(&path, bytes).expect("write");
        let report = verify(&key, &path);
        let sig = &report.signatures[0];
        assert_eq!(report.verdict, Verdict::Tampered, "{name}: {report:?}");
        assert!(
            sig.digest_valid == Some(true) && sig.covers_revision,
            "{name}: {report:?}"
        );
        assert_eq!(sig.modifications, Modifications::Other, "{name}");
        assert!(
            sig.problems.iter().any(|p| p.contains(reason)),
            "{name}: expected '{reason}' in {:?}",
            sig.problems
        );
        let hanko = v.pyhanko(&path, false);
        assert_eq!(hanko[0]["bottom_line"], false, "{name}: {hanko:?}");
        assert_ne!(hanko[0]["modification_level"], "NONE", "{name}");
        assert_ne!(hanko[0]["modification_level"], "FORM_FILLING", "{name}");
    }

    // Data hidden in /Contents after the CMS, where the padding must be zeros.
    let range = &verify(&key, &signed).signatures[0].byte_range;
    let mut hidden = fs::read(&signed).expect("read");
    let last_digit = range[2] as usize - 2;
    assert_eq!(hidden[last_digit], b'0');
    hidden[last_digit] = b'7';
    let path = dir.join("hidden-data.pdf");
    fs::write(&path, hidden).expect("write");
    let report = verify(&key, &path);
    assert_eq!(report.verdict, Verdict::NoValidSignature, "{report:?}");
    assert!(
        report.signatures[0]
            .problems
            .iter()
            .any(|p| p.contains("data after the signature")),
        "{report:?}"
    );

    // An object stream rewritten in place: the page tree node inside it changes while the
    // node's own cross-reference entry stays as it was.
    let packed = dir.join("packed.pdf");
    run_ok(
        Command::new("qpdf")
            .arg("--object-streams=generate")
            .arg(corpus("minimal.pdf"))
            .arg(&packed),
    );
    let signed = dir.join("packed-signed.pdf");
    seald_pades::sign_file(
        &packed,
        &signed,
        &options(&key, Placement::Invisible { page: 1 }),
    )
    .expect("sign");
    let doc = Document::open(&signed).expect("open");
    let (_, catalog) = doc.catalog().expect("catalog");
    let pages = catalog
        .get("Pages")
        .and_then(|p| p.as_ref())
        .expect("pages");
    let xref = run_ok(Command::new("qpdf").arg("--show-xref").arg(&signed));
    let prefix = format!("{}/{}: compressed; stream = ", pages.num, pages.gen);
    let holder: u32 = xref
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the page tree is not in an object stream: {xref}"));
    let Object::Stream(objstm) = doc.resolve(ObjRef::new(holder, 0)).expect("objstm") else {
        panic!("object {holder} is not a stream");
    };
    let decoded = run(Command::new("qpdf")
        .arg(format!("--show-object={holder}"))
        .arg("--filtered-stream-data")
        .arg(&signed))
    .stdout;
    let media_box = decoded
        .windows(7)
        .position(|w| w == b"300 144")
        .expect("the page tree's /MediaBox");
    let mut changed = decoded.clone();
    changed[media_box..media_box + 7].copy_from_slice(b"600 144");
    // The object stream written again (uncompressed) with `data`, in a revision of its own.
    let rewrite = |data: &[u8], name: &str| -> PathBuf {
        let mut stream = format!(
            "<< /Type /ObjStm /N {} /First {} /Length {} >>\nstream\n",
            objstm.dict.int("N").expect("N"),
            objstm.dict.int("First").expect("First"),
            data.len()
        )
        .into_bytes();
        stream.extend_from_slice(data);
        stream.extend_from_slice(b"\nendstream");
        let path = dir.join(name);
        let update = append_revision(
            &signed,
            &[(ObjRef::new(holder, 0), stream)],
            &[],
            None,
            true,
        );
        fs::write(&path, update).expect("write");
        path
    };
    let path = rewrite(&changed, "objstm-rewritten.pdf");
    let report = verify(&key, &path);
    assert_eq!(report.verdict, Verdict::Tampered, "{report:?}");
    assert!(
        report.signatures[0]
            .problems
            .iter()
            .any(|p| p.contains(&format!(
                "object {}: a /Pages dictionary was changed",
                pages.num
            ))),
        "{report:?}"
    );
    let hanko = v.pyhanko(&path, false);
    assert_eq!(hanko[0]["bottom_line"], false, "{hanko:?}");
    // And the same update with the page tree unchanged is not tampering.
    let path = rewrite(&decoded, "objstm-rewritten-unchanged.pdf");
    let report = verify(&key, &path);
    assert_eq!(report.verdict, Verdict::NotTampered, "{report:?}");
    assert_eq!(report.signatures[0].modifications, Modifications::None);
}

#[test]
fn broken_inputs_get_clear_errors_and_leave_nothing_behind() {
    let key = SealKey::new(KeyAlgorithm::EcP256);
    let dir = key.dir().to_path_buf();
    let good = fs::read(corpus("minimal.pdf")).expect("minimal");
    // A page whose /Resources nests 100,000 arrays deep (the page itself is read).
    let nested = hand_written_pdf(&format!(
        "<< /X {}{} >>",
        "[".repeat(100_000),
        "]".repeat(100_000)
    ));
    let huge_length = {
        // The cross-reference stream (the last object) claims far more data than there is.
        let d = fs::read(corpus("minimal-xref.pdf")).expect("xref");
        let at = d
            .windows(7)
            .rposition(|w| w == b"/Length")
            .expect("/Length")
            + 7;
        let digits_end = at
            + d[at..]
                .iter()
                .position(|b| !b.is_ascii_digit() && *b != b' ')
                .expect("end");
        [&d[..at], b" 99999999999", &d[digits_end..]].concat()
    };
    // The page object (3) said to be far past the end of the file.
    let past_eof = String::from_utf8_lossy(&good)
        .replacen("0000000178 00000 n", "0009999999 00000 n", 1)
        .into_bytes();
    assert_ne!(past_eof, good);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"this is not a PDF at all, just text".repeat(10)),
        ("empty", Vec::new()),
        (
            "prev-loop",
            fs::read(corpus("circular-xref-chain.pdf")).expect("corpus"),
        ),
        (
            "malformed-prev",
            fs::read(corpus("xref-malformed-prev.pdf")).expect("corpus"),
        ),
        (
            "startxref-off",
            fs::read(corpus("minimal-startxref-obo4.pdf")).expect("corpus"),
        ),
        (
            "broken-objstream",
            fs::read(corpus("broken-objstream2.pdf")).expect("corpus"),
        ),
        (
            "encrypted",
            fs::read(corpus("minimal-aes256.pdf")).expect("corpus"),
        ),
        ("offset-past-eof", past_eof),
        ("huge-length", huge_length),
        ("deeply-nested", nested),
    ];
    let pin = key.hsm.secret_file("pin", seald_tests::USER_PIN);
    // A page tree that loops back on itself: the pages before the loop sign, the looping one
    // is refused.
    let cyclic = corpus("circular-page-tree.pdf");
    let err = seald_pades::sign_file(
        &cyclic,
        &dir.join("cyclic-signed.pdf"),
        &options(&key, Placement::Invisible { page: 3 }),
    )
    .expect_err("cycle");
    assert!(err.to_string().contains("cycle"), "{err}");
    assert!(!dir.join("cyclic-signed.pdf").exists());
    // Signing a file onto itself would destroy the original: refused, the file untouched.
    let own = dir.join("own.pdf");
    fs::write(&own, &good).expect("write");
    let err = seald_pades::sign_file(&own, &own, &options(&key, Placement::Invisible { page: 1 }))
        .expect_err("same file");
    assert!(
        matches!(err, seald_pades::Error::InvalidRequest(_)),
        "{err}"
    );
    assert_eq!(fs::read(&own).expect("read"), good);
    for (name, bytes) in cases {
        let input = dir.join(format!("{name}.pdf"));
        fs::write(&input, &bytes).expect("write");
        let out = dir.join(format!("{name}-signed.pdf"));
        let err = seald_pades::sign_file(
            &input,
            &out,
            &options(&key, Placement::Invisible { page: 1 }),
        )
        .expect_err(name);
        let text = err.to_string();
        assert!(!text.is_empty() && !out.exists(), "{name}: {text}");
        if name == "encrypted" {
            assert!(
                matches!(err, seald_pades::Error::Encrypted),
                "{name}: {text}"
            );
        }
        // No temporary file either.
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".seald-"))
            .collect();
        assert!(leftovers.is_empty(), "{name}: {leftovers:?}");
        // The command line says what is wrong and exits 1 (sign) / 2 (verify).
        let signed = run(key
            .hsm
            .sealctl()
            .args([
                "sign",
                "--token",
                seald_tests::pdf::TOKEN,
                "--key",
                "seal",
                "--pin-file",
            ])
            .arg(&pin)
            .arg(&input)
            .arg("-o")
            .arg(&out));
        assert_eq!(signed.status.code(), Some(1), "{name}");
        assert!(
            !String::from_utf8_lossy(&signed.stderr).contains("panicked"),
            "{name}"
        );
        let verified = run(key.hsm.sealctl().arg("verify").arg(&input));
        assert_eq!(
            verified.status.code(),
            Some(2),
            "{name}: {}",
            String::from_utf8_lossy(&verified.stdout)
        );
    }
}

#[test]
fn sealctl_sign_and_verify_from_the_command_line() {
    let key = SealKey::new(KeyAlgorithm::Rsa2048);
    let pin = key.hsm.secret_file("pin", seald_tests::USER_PIN);
    let png_path = key.dir().join("seal.png");
    fs::write(&png_path, seal_png(150)).expect("png");
    let out = key.dir().join("cli.pdf");
    let sign = |args: &[&str], out: &Path| {
        let mut cmd = key.hsm.sealctl();
        cmd.args([
            "sign",
            "--token",
            seald_tests::pdf::TOKEN,
            "--key",
            "seal",
            "--pin-file",
        ])
        .arg(&pin)
        .args(args)
        .arg(corpus("minimal-two-pages.pdf"))
        .arg("-o")
        .arg(out);
        run(&mut cmd)
    };
    let png = png_path.to_str().expect("path");
    let done = sign(
        &[
            "--image",
            png,
            "--page",
            "2",
            "--x",
            "5",
            "--y",
            "5",
            "--width",
            "20",
            "--date-line",
            "--reason",
            "合同审批",
            "--utc-offset",
            "+08:00",
        ],
        &out,
    );
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let verify = |pdf: &Path, json: bool| {
        let mut cmd = key.hsm.sealctl();
        cmd.arg("verify").arg("--trust").arg(key.root());
        if json {
            cmd.arg("--json");
        }
        run(cmd.arg(pdf))
    };
    let ok = verify(&out, true);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("json");
    assert_eq!(report["verdict"], "not_tampered");
    assert_eq!(
        report["signatures"][0]["signer"]["subject"],
        "CN=合同专用章,O=示例科技有限公司,C=CN"
    );
    assert!(report["signatures"][0]["signing_time"]
        .as_str()
        .expect("time")
        .ends_with("+08'00'"));
    // Untrusted (no --trust): not valid, exit 1; unsigned: exit 2.
    let untrusted = run(key.hsm.sealctl().arg("verify").arg(&out));
    assert_eq!(untrusted.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&untrusted.stdout).contains("NOT TRUSTED"));
    let unsigned = verify(&corpus("minimal.pdf"), false);
    assert_eq!(unsigned.status.code(), Some(2));

    // Bad requests are refused before anything is written.
    for (args, expect) in [
        (vec!["--page", "3"], "page 3 does not exist"),
        (
            vec!["--image", "/nonexistent.png"],
            "cannot read /nonexistent.png",
        ),
        (
            vec!["--image", corpus("minimal.pdf").to_str().expect("p")],
            "not a readable PNG",
        ),
        (
            vec!["--image", png, "--x", "100", "--width", "80"],
            "does not fit on page 1",
        ),
        (vec!["--field", "Nope"], "no signature field named 'Nope'"),
        (vec!["--level", "b-t"], "needs at least one --tsa URL"),
        (
            vec!["--utc-offset", "8"],
            "--utc-offset must look like +08:00",
        ),
    ] {
        let bad = key.dir().join("bad.pdf");
        let done = sign(&args, &bad);
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(
            !done.status.success() && stderr.contains(expect),
            "{args:?}: {stderr}"
        );
        assert!(!bad.exists(), "{args:?}");
    }
}

#[test]
fn rsa_pss_signatures_validate_too() {
    let key = SealKey::new(KeyAlgorithm::Rsa3072);
    let v = Validators::new(key.dir(), &[key.root()]);
    let pss = key
        .pool
        .key(
            seald_tests::label("seal"),
            Some(seald_signer::SignatureAlgorithm::RsaPss {
                hash: seald_signer::HashAlgorithm::Sha256,
            }),
        )
        .expect("PSS key");
    let mut opts = options(&key, Placement::Invisible { page: 1 });
    opts.signer = &pss;
    let out = key.dir().join("pss.pdf");
    let signed = seald_pades::sign_file(&corpus("minimal.pdf"), &out, &opts).expect("sign");
    assert_signed_well(&key, &v, &corpus("minimal.pdf"), &out, &signed.field, true);
}

#[test]
fn sealctl_sign_completes_the_chain_from_a_file() {
    let key = SealKey::new(KeyAlgorithm::EcP256);
    let pin = key.hsm.secret_file("pin", seald_tests::USER_PIN);
    // A second seal whose CA is not on the token: only its own certificate is imported.
    let other = key.dir().join("other-pki");
    seald_tests::pki_init(&other);
    let token = |args: &[&str]| {
        let mut cmd = key.hsm.sealctl();
        cmd.args(["token", "--token", seald_tests::pdf::TOKEN])
            .args(args)
            .arg("--pin-file")
            .arg(&pin);
        run_ok(&mut cmd)
    };
    token(&["keygen", "--key", "seal2", "--algorithm", "rsa-2048"]);
    let csr = key.dir().join("seal2.csr");
    token(&[
        "csr",
        "--key",
        "seal2",
        "--subject",
        "CN=Finance Seal,O=Example,C=CN",
        "--out",
        csr.to_str().expect("p"),
    ]);
    let cert = key.dir().join("seal2.pem");
    seald_tests::pki_issue(&other, &csr, &cert);
    token(&[
        "import-cert",
        "--key",
        "seal2",
        "--cert",
        cert.to_str().expect("p"),
    ]);
    let sign = |chain: Option<&Path>, out: &Path| {
        let mut cmd = key.hsm.sealctl();
        cmd.args([
            "sign",
            "--token",
            seald_tests::pdf::TOKEN,
            "--key",
            "seal2",
            "--pin-file",
        ])
        .arg(&pin);
        if let Some(chain) = chain {
            cmd.arg("--chain").arg(chain);
        }
        run_ok(cmd.arg(corpus("minimal.pdf")).arg("-o").arg(out));
    };
    let verify = |pdf: &Path| {
        run(key
            .hsm
            .sealctl()
            .arg("verify")
            .arg("--trust")
            .arg(other.join("root.pem"))
            .arg(pdf))
        .status
        .code()
    };
    let bare = key.dir().join("bare.pdf");
    sign(None, &bare);
    assert_eq!(
        verify(&bare),
        Some(1),
        "without the CA certificate the signer is untrusted"
    );
    let full = key.dir().join("full.pdf");
    sign(Some(&other.join("chain.pem")), &full);
    assert_eq!(verify(&full), Some(0));
    let v = Validators::new(key.dir(), &[other.join("root.pem")]);
    let hanko = v.pyhanko(&full, true);
    assert_eq!(hanko[0]["trusted"], true, "{hanko:?}");
}

#[test]
fn signing_into_memory_gives_the_same_document_as_signing_into_a_file() {
    let key = SealKey::new(KeyAlgorithm::Rsa2048);
    let dir = key.dir().to_path_buf();
    let input = corpus("minimal-two-fields.pdf");
    let doc = Document::open(&input).expect("open");
    let placement = Placement::Field {
        name: "Sig1".to_owned(),
        seal: None,
    };
    let to_file = dir.join("to-file.pdf");
    let signed_file = seald_pades::sign_document(&doc, &to_file, &options(&key, placement.clone()))
        .expect("sign to file");
    let (signed_mem, bytes) =
        seald_pades::sign_document_to_vec(&doc, &options(&key, placement)).expect("sign to memory");
    let file_bytes = fs::read(&to_file).expect("read");
    assert_eq!(signed_mem.byte_range, signed_file.byte_range);
    assert_eq!(bytes.len(), file_bytes.len());
    assert_eq!(
        &bytes[..fs::read(&input).expect("input").len()],
        &fs::read(&input).expect("input")[..]
    );
    let in_memory = dir.join("in-memory.pdf");
    fs::write(&in_memory, &bytes).expect("write");
    for pdf in [&to_file, &in_memory] {
        let report = verify(&key, pdf);
        assert_eq!(
            report.verdict,
            seald_pades::Verdict::NotTampered,
            "{}",
            pdf.display()
        );
    }
    let validators = Validators::new(&dir, &[key.root()]);
    validators.qpdf(&in_memory).expect("qpdf --check");
    let sigs = validators.pyhanko(&in_memory, true);
    assert_eq!(by_field(&sigs, "Sig1")["valid"], true, "{sigs:?}");
}

/// The CJK font `deploy/test.sh` installs (fonts-wqy-microhei), or `SEALD_TEST_FONT`.
fn cjk_font() -> seald_pades::FillFont {
    let path = std::env::var_os("SEALD_TEST_FONT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"));
    seald_pades::FillFont::open(&path, 0).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (deploy/test.sh installs fonts-wqy-microhei)",
            path.display()
        )
    })
}

#[test]
fn template_fields_are_filled_with_an_embedded_cjk_subset_then_sealed_and_every_validator_agrees() {
    let key = SealKey::new(KeyAlgorithm::Rsa2048);
    let dir = key.dir().to_path_buf();
    run_ok(
        Command::new("python3")
            .arg(workspace_root().join("deploy/demo_files.py"))
            .arg(&dir),
    );
    let template = dir.join("labour-template.pdf");
    let doc = Document::open(&template).expect("template");
    let font = cjk_font();
    let values: std::collections::BTreeMap<String, String> = [
        ("姓名", "张三丰"),
        ("身份证号", "11010519491231002X"),
        ("入职日期", "2026年12月1日"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let (filled, bytes) = seald_pades::fill_document_to_vec(&doc, &font, &values).expect("filled");
    assert_eq!(filled.fields.len(), 3);
    assert!(
        filled.font_bytes < 64 * 1024,
        "a subset, not the 5 MB font: {} bytes",
        filled.font_bytes
    );
    let original = fs::read(&template).expect("template");
    assert_eq!(
        &bytes[..original.len()],
        &original[..],
        "the template's bytes are untouched"
    );
    let filled_path = dir.join("filled.pdf");
    fs::write(&filled_path, &bytes).expect("write");
    let v = Validators::new(&dir, &[key.root()]);
    v.qpdf(&filled_path)
        .expect("qpdf --check on the filled template");
    // The text is there as written, in an embedded, subset font with a Unicode map.
    let text = run_ok(Command::new("pdftotext").arg(&filled_path).arg("-"));
    for value in values.values() {
        assert!(
            text.contains(value.as_str()),
            "pdftotext lacks {value}: {text}"
        );
    }
    let fonts = run_ok(Command::new("pdffonts").arg(&filled_path));
    let cid = fonts
        .lines()
        .find(|l| l.contains("CID TrueType"))
        .unwrap_or_else(|| panic!("no CID TrueType font: {fonts}"));
    let cols: Vec<&str> = cid.split_whitespace().collect();
    assert!(
        cols.ends_with(&["yes", "yes", "yes"])
            || cols.windows(3).any(|w| w == ["yes", "yes", "yes"]),
        "embedded, subset, with a ToUnicode map: {cid}"
    );
    assert!(
        cols[0].len() > 7 && cols[0].as_bytes()[6] == b'+',
        "a subset tag: {cid}"
    );
    // The fields say their appearances are current and cannot be edited.
    let after = Document::open(&filled_path).expect("filled");
    let (_, catalog) = after.catalog().expect("catalog");
    let form = after
        .get_dict(catalog.get("AcroForm"))
        .expect("form")
        .expect("form");
    assert_eq!(form.get("NeedAppearances"), Some(&Object::Bool(false)));

    // Sealed on top: one more revision, and every validator accepts it.
    let sealed = dir.join("filled-sealed.pdf");
    seald_pades::sign_file(
        &filled_path,
        &sealed,
        &options(&key, Placement::Invisible { page: 1 }),
    )
    .expect("sealed");
    let field = v
        .pdfsig(&sealed)
        .first()
        .map(|s| s.field.clone())
        .expect("a signature");
    assert_signed_well(&key, &v, &filled_path, &sealed, &field, true);
    let after_seal = run_ok(Command::new("pdftotext").arg(&sealed).arg("-"));
    assert!(after_seal.contains("张三丰"), "{after_seal}");

    // What cannot be filled says why, and writes nothing.
    let bad = |k: &str, v: &str| {
        let values = std::collections::BTreeMap::from([(k.to_owned(), v.to_owned())]);
        seald_pades::fill_document_to_vec(&doc, &font, &values)
            .expect_err("refused")
            .to_string()
    };
    assert!(bad("部门", "x").contains("no field named '部门'"));
    assert!(
        bad("姓名", "\u{10FFFF}").contains("no glyph"),
        "{}",
        bad("姓名", "\u{10FFFF}")
    );
    assert!(bad("姓名", &"字".repeat(501)).contains("longer than 500"));
    let plain = Document::open(&corpus("minimal.pdf")).expect("minimal");
    let err = seald_pades::fill_document_to_vec(&plain, &font, &values).expect_err("no form");
    assert!(err.to_string().contains("no field named"), "{err}");
}
