//! Verification: for each signature, what it covers, whether the covered bytes are intact,
//! whether its CMS signature is sound and its certificate trusted, its time-stamp, and what
//! later revisions changed; and a verdict for the document ("contract validation").

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::{Decode, Encode};
use serde::Serialize;
use x509_tsp::TstInfo;

use crate::cms::{
    hash_from_oid, Hasher, ID_CONTENT_TYPE, ID_MESSAGE_DIGEST, ID_SIGNED_DATA, ID_TIMESTAMP_TOKEN,
};
use crate::crypto::{chain_to_root, verify, Cert};
use crate::document::Document;
use crate::error::Result;
use crate::form;
use crate::object::{Dict, Object};
use crate::time::{days_from_civil, rfc3339};
use crate::tlv;

const ID_KP_TIME_STAMPING: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
const ID_CT_TSTINFO: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// The document's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every signed byte is intact and later revisions only added signatures or filled forms;
    /// at least one signature is valid.
    NotTampered,
    /// Signed content was changed.
    Tampered,
    /// Nothing is tampered, but no signature is valid (none at all, or none trusted or sound).
    NoValidSignature,
}

/// What revisions after a signature changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Modifications {
    /// No later revision changed anything shown (or there is none).
    None,
    /// Later revisions added signatures or filled in form fields.
    SignaturesAndFormFields,
    /// Anything else: the signed content is not what is shown any more.
    Other,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertificateSummary {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
}

/// One signature's findings.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    pub field: String,
    pub sub_filter: Option<String>,
    pub signer: Option<CertificateSummary>,
    /// /M as written.
    pub signing_time: Option<String>,
    /// The time-stamp's time (RFC 3339), if there is a time-stamp.
    pub timestamp_time: Option<String>,
    pub timestamp_valid: Option<bool>,
    pub byte_range: Vec<u64>,
    /// The byte range covers its whole revision except the signature value.
    pub covers_revision: bool,
    /// …and that revision is the whole file.
    pub covers_whole_file: bool,
    /// Whether the signed bytes are intact; `None` when the CMS is unreadable and the digest
    /// could not be checked.
    pub digest_valid: Option<bool>,
    pub signature_valid: bool,
    pub trusted: bool,
    pub modifications: Modifications,
    pub problems: Vec<String>,
    /// Intact, sound, trusted, and nothing after it but signatures and form filling.
    pub valid: bool,
}

/// The verification report of a document.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub signatures: Vec<SignatureReport>,
    pub revisions: usize,
}

/// Trust anchors and the time to check certificates at.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// DER trust roots (for signers and time-stamp authorities).
    pub trust_roots: Vec<Vec<u8>>,
    /// Unix seconds to judge certificate validity at when a signature has no time-stamp.
    pub now: i64,
}

/// Verifies every signature of `doc`.
pub fn verify_document(doc: &Document, options: &VerifyOptions) -> Result<Report> {
    let roots: Vec<Cert> = options
        .trust_roots
        .iter()
        .filter_map(|der| Cert::parse(der).ok())
        .collect();
    let mut reports = Vec::new();
    for field in form::fields(doc)? {
        if !field.is_signature() {
            continue;
        }
        let Some(v) = field.dict.get("V") else {
            continue;
        };
        let Some(sig) = doc.get_dict(Some(v))? else {
            continue;
        };
        reports.push(check_signature(doc, &field.name, &sig, &roots, options.now));
    }
    let tampered = reports.iter().any(|r| {
        r.digest_valid == Some(false)
            || !r.covers_revision
            || r.modifications == Modifications::Other
    });
    let verdict = if tampered {
        Verdict::Tampered
    } else if reports.iter().any(|r| r.valid) {
        Verdict::NotTampered
    } else {
        Verdict::NoValidSignature
    };
    Ok(Report {
        verdict,
        signatures: reports,
        revisions: doc.section_offsets().len(),
    })
}

fn check_signature(
    doc: &Document,
    field: &str,
    sig: &Dict,
    roots: &[Cert],
    now: i64,
) -> SignatureReport {
    let mut report = SignatureReport {
        field: field.to_owned(),
        sub_filter: sig
            .name("SubFilter")
            .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned()),
        signer: None,
        signing_time: sig
            .get("M")
            .and_then(Object::as_string)
            .map(|s| s.to_text()),
        timestamp_time: None,
        timestamp_valid: None,
        byte_range: Vec::new(),
        covers_revision: false,
        covers_whole_file: false,
        digest_valid: None,
        signature_valid: false,
        trusted: false,
        modifications: Modifications::Other,
        problems: Vec::new(),
        valid: false,
    };
    if let Err(problem) = check_into(doc, sig, roots, now, &mut report) {
        report.problems.push(problem);
    }
    report.valid = report.covers_revision
        && report.digest_valid == Some(true)
        && report.signature_valid
        && report.trusted
        && report.timestamp_valid != Some(false)
        && report.modifications != Modifications::Other;
    report
}

fn check_into(
    doc: &Document,
    sig: &Dict,
    roots: &[Cert],
    now: i64,
    report: &mut SignatureReport,
) -> Result<(), String> {
    let range: Vec<u64> = sig
        .get("ByteRange")
        .and_then(Object::as_array)
        .ok_or("no /ByteRange")?
        .iter()
        .map(|o| o.as_int().and_then(|i| u64::try_from(i).ok()))
        .collect::<Option<_>>()
        .ok_or("/ByteRange is not four offsets")?;
    report.byte_range = range.clone();
    if range.len() != 4 {
        return Err("/ByteRange is not four offsets".to_owned());
    }
    let (a, b, c, d) = (range[0], range[1], range[2], range[3]);
    let end = c.checked_add(d).ok_or("/ByteRange overflows")?;
    if a != 0 || b > c || end > doc.len() {
        return Err("/ByteRange does not lie within the file".to_owned());
    }
    // The gap must be exactly the hex /Contents string, and the range must end a revision.
    let gap = doc
        .source()
        .read_at(b, (c - b).min(1 << 20) as usize)
        .map_err(|e| e.to_string())?;
    let gap_is_contents = gap.len() as u64 == c - b
        && gap.first() == Some(&b'<')
        && gap.last() == Some(&b'>')
        && gap[1..gap.len() - 1].iter().all(u8::is_ascii_hexdigit);
    let tail = doc
        .source()
        .read_at(end.saturating_sub(16), (end.min(16)) as usize)
        .map_err(|e| e.to_string())?;
    let ends_revision = trim_eol(&tail).ends_with(b"%%EOF");
    report.covers_revision = gap_is_contents && ends_revision;
    report.covers_whole_file = report.covers_revision && end == doc.len();
    if !report.covers_revision {
        report
            .problems
            .push("the signed byte range does not cover its whole revision".to_owned());
    }

    // What later revisions changed (whatever the CMS turns out to be).
    let (modifications, why) = crate::diff::modifications_after(doc, end);
    report.modifications = modifications;
    if let Some(why) = why {
        report.problems.push(format!(
            "a later revision changed more than signatures and form fields: {why}"
        ));
    }

    let contents = sig
        .get("Contents")
        .and_then(Object::as_string)
        .ok_or("no /Contents")?;
    let der = tlv::read(&contents.bytes)
        .ok_or("/Contents is not DER")?
        .raw;
    // The placeholder's padding is zeros; anything else there is hidden data.
    let hidden_data = contents.bytes[der.len()..].iter().any(|&b| b != 0);
    let info = ContentInfo::from_der(der).map_err(|e| format!("bad CMS: {e}"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err("the CMS is not SignedData".to_owned());
    }
    let signed_data: SignedData = info
        .content
        .decode_as()
        .map_err(|e| format!("bad SignedData: {e}"))?;
    let content_der = info.content.to_der().map_err(|e| e.to_string())?;
    let signed = check_signed_data(&signed_data, &content_der, None)?;
    report.signer = Some(summary(&signed.signer));

    // The document digest over the byte range.
    let mut hasher = Hasher::new(signed.hash);
    hash_range(doc, 0, b, &mut hasher)?;
    hash_range(doc, c, d, &mut hasher)?;
    let digest = hasher.finish();
    report.digest_valid = Some(signed.message_digest == digest);
    if report.digest_valid == Some(false) {
        report
            .problems
            .push("the document was changed after it was signed (digest mismatch)".to_owned());
    }
    report.signature_valid = signed.signature_ok && !hidden_data;
    if let Some(problem) = &signed.signature_problem {
        report.problems.push(problem.clone());
    }
    if hidden_data {
        report
            .problems
            .push("/Contents holds data after the signature".to_owned());
    }

    // The time-stamp over the signature value.
    let mut at = report
        .signing_time
        .as_deref()
        .and_then(parse_pdf_date)
        .unwrap_or(now);
    if let Some(token) = &signed.timestamp_token {
        match check_timestamp(token, &signed.signature_value, roots) {
            Ok(time) => {
                report.timestamp_valid = Some(true);
                report.timestamp_time = Some(rfc3339(time));
                at = time;
            }
            Err(problem) => {
                report.timestamp_valid = Some(false);
                report.problems.push(format!("time-stamp: {problem}"));
            }
        }
    } else {
        at = now.max(at);
    }
    match chain_to_root(&signed.signer, &signed.pool, roots, at) {
        Ok(_) => report.trusted = true,
        Err(problem) => report.problems.push(problem),
    }
    Ok(())
}

fn trim_eol(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b'\r' | b'\n' | b' ') {
        end -= 1;
    }
    &b[..end]
}

fn hash_range(doc: &Document, start: u64, len: u64, hasher: &mut Hasher) -> Result<(), String> {
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < len {
        let want = ((len - done).min(buf.len() as u64)) as usize;
        let n = doc
            .source()
            .read_into(start + done, &mut buf[..want])
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the byte range runs past the end of the file".to_owned());
        }
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    Ok(())
}

/// What a CMS SignedData check found.
struct SignedCheck {
    signer: Cert,
    pool: Vec<Cert>,
    hash: seald_signer::HashAlgorithm,
    message_digest: Vec<u8>,
    signature_value: Vec<u8>,
    signature_ok: bool,
    signature_problem: Option<String>,
    timestamp_token: Option<Vec<u8>>,
}

/// Checks a SignedData's signer: its signed attributes (whose message digest is returned for
/// the caller to compare, or compared to `content` if given) and signature.
fn check_signed_data(
    sd: &SignedData,
    sd_der: &[u8],
    content: Option<&[u8]>,
) -> Result<SignedCheck, String> {
    // One signer, so the signer checked here is the one whose raw attributes are verified.
    let signer_info = match sd.signer_infos.0.as_slice() {
        [one] => one,
        [] => return Err("the CMS has no signer".to_owned()),
        many => {
            return Err(format!(
                "the CMS has {} signers; a PDF signature has exactly one",
                many.len()
            ))
        }
    };
    let pool: Vec<Cert> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            cms::cert::CertificateChoices::Certificate(c) => {
                c.to_der().ok().and_then(|der| Cert::parse(&der).ok())
            }
            _ => None,
        })
        .collect();
    let signer = pool
        .iter()
        .find(|c| match &signer_info.sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                c.cert.tbs_certificate.issuer == ias.issuer
                    && c.cert.tbs_certificate.serial_number == ias.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                const SKI: const_oid::ObjectIdentifier =
                    const_oid::ObjectIdentifier::new_unwrap("2.5.29.14");
                c.cert
                    .tbs_certificate
                    .extensions
                    .iter()
                    .flatten()
                    .find(|e| e.extn_id == SKI)
                    .and_then(|e| {
                        x509_cert::ext::pkix::SubjectKeyIdentifier::from_der(
                            e.extn_value.as_bytes(),
                        )
                        .ok()
                    })
                    .is_some_and(|s| s.0 == ski.0)
            }
        })
        .cloned()
        .ok_or("the signer's certificate is not in the CMS")?;
    let hash = hash_from_oid(&signer_info.digest_alg.oid).ok_or("unsupported digest algorithm")?;
    let signed_attrs_raw = raw_signed_attrs(sd_der).ok_or("no signed attributes")?;
    let attrs = signer_info
        .signed_attrs
        .as_ref()
        .ok_or("no signed attributes")?;
    if attrs.to_der().ok().as_deref() != Some(signed_attrs_raw.as_slice()) {
        return Err("the signed attributes are not DER-encoded".to_owned());
    }
    let message_digest = single_attribute(attrs, ID_MESSAGE_DIGEST, "message-digest")?
        .decode_as::<der::asn1::OctetString>()
        .map_err(|_| "the message-digest attribute is not an OCTET STRING")?
        .as_bytes()
        .to_vec();
    let content_type = single_attribute(attrs, ID_CONTENT_TYPE, "content-type")?
        .decode_as::<const_oid::ObjectIdentifier>()
        .map_err(|_| "the content-type attribute is not an object identifier")?;
    if content_type != sd.encap_content_info.econtent_type {
        return Err(
            "the content-type attribute does not name the signed content's type".to_owned(),
        );
    }
    let signature_value = signer_info.signature.as_bytes().to_vec();
    let (signature_ok, signature_problem) = match verify(
        &signer.cert.tbs_certificate.subject_public_key_info,
        &signer_info.signature_algorithm,
        Some(hash),
        &signed_attrs_raw,
        &signature_value,
    ) {
        Ok(()) => (true, None),
        Err(p) => (false, Some(p)),
    };
    if let Some(content) = content {
        if crate::cms::digest(hash, content) != message_digest {
            return Err("the signed content does not match its message digest".to_owned());
        }
    }
    let timestamp_token = signer_info
        .unsigned_attrs
        .iter()
        .flat_map(|a| a.iter())
        .find(|a| a.oid == ID_TIMESTAMP_TOKEN)
        .and_then(|a| a.values.iter().next())
        .and_then(|v| v.to_der().ok());
    Ok(SignedCheck {
        signer,
        pool,
        hash,
        message_digest,
        signature_value,
        signature_ok,
        signature_problem,
        timestamp_token,
    })
}

/// The one value of the one attribute `oid` among `attrs`.
fn single_attribute<'a>(
    attrs: &'a x509_cert::attr::Attributes,
    oid: const_oid::ObjectIdentifier,
    what: &str,
) -> Result<&'a der::Any, String> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    match (found.next(), found.next()) {
        (Some(a), None) => match a.values.as_slice() {
            [value] => Ok(value),
            _ => Err(format!("the {what} attribute must have exactly one value")),
        },
        (None, _) => Err(format!("no {what} attribute")),
        (Some(_), Some(_)) => Err(format!("more than one {what} attribute")),
    }
}

/// The signed attributes exactly as encoded, re-tagged as a SET for verification.
fn raw_signed_attrs(sd_der: &[u8]) -> Option<Vec<u8>> {
    // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo,
    //   [0] certificates OPTIONAL, [1] crls OPTIONAL, signerInfos SET }
    let sd = tlv::read(sd_der)?;
    let fields = tlv::children(sd.value)?;
    let signer_infos = fields.last()?;
    let first = tlv::children(signer_infos.value)?.into_iter().next()?;
    let si = tlv::children(first.value)?;
    let attrs = si.iter().find(|t| t.tag == 0xa0)?;
    let mut raw = attrs.raw.to_vec();
    raw[0] = 0x31;
    Some(raw)
}

/// What a checked time-stamp token says.
pub(crate) struct CheckedToken {
    /// Unix seconds.
    pub time: i64,
    pub imprint_hash: seald_signer::HashAlgorithm,
    pub imprint: Vec<u8>,
    pub nonce: Option<Vec<u8>>,
}

/// Checks an RFC 3161 time-stamp token: the TSA's CMS signature over the TSTInfo, the
/// timeStamping extended key usage, and the TSA's chain to `roots` at the stamped time. The
/// caller compares the imprint with what it expects.
pub(crate) fn check_token(token: &[u8], roots: &[Cert]) -> Result<CheckedToken, String> {
    let info = ContentInfo::from_der(token).map_err(|e| format!("bad token: {e}"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err("the token is not SignedData".to_owned());
    }
    let sd: SignedData = info
        .content
        .decode_as()
        .map_err(|e| format!("bad token: {e}"))?;
    if sd.encap_content_info.econtent_type != ID_CT_TSTINFO {
        return Err("the token does not hold a TSTInfo".to_owned());
    }
    let tst_der = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or("the token has no TSTInfo")?
        .decode_as::<der::asn1::OctetString>()
        .map_err(|e| e.to_string())?;
    let tst = TstInfo::from_der(tst_der.as_bytes()).map_err(|e| format!("bad TSTInfo: {e}"))?;
    let imprint_hash = hash_from_oid(&tst.message_imprint.hash_algorithm.oid)
        .ok_or("unsupported message imprint hash")?;
    let sd_der = info.content.to_der().map_err(|e| e.to_string())?;
    let checked = check_signed_data(&sd, &sd_der, Some(tst_der.as_bytes()))?;
    if !checked.signature_ok {
        return Err(checked
            .signature_problem
            .unwrap_or_else(|| "the TSA's signature does not verify".to_owned()));
    }
    if !checked.signer.has_eku(ID_KP_TIME_STAMPING) {
        return Err("the TSA certificate lacks the timeStamping extended key usage".to_owned());
    }
    let time = tst.gen_time.to_unix_duration().as_secs() as i64;
    chain_to_root(&checked.signer, &checked.pool, roots, time)
        .map_err(|p| format!("TSA certificate: {p}"))?;
    Ok(CheckedToken {
        time,
        imprint_hash,
        imprint: tst.message_imprint.hashed_message.as_bytes().to_vec(),
        nonce: tst.nonce.map(|n| n.as_bytes().to_vec()),
    })
}

/// Checks a signature time-stamp token over `signature`; returns its time (unix seconds).
fn check_timestamp(token: &[u8], signature: &[u8], roots: &[Cert]) -> Result<i64, String> {
    let checked = check_token(token, roots)?;
    if checked.imprint != crate::cms::digest(checked.imprint_hash, signature) {
        return Err("the time-stamp is over another signature".to_owned());
    }
    Ok(checked.time)
}

/// Verifies a detached CMS signature (one signer) over `content`; with `trust_roots` (DER),
/// also that the signer's certificate chains to one of them at `at` (unix seconds). Returns
/// the signer.
pub fn verify_detached(
    cms_der: &[u8],
    content: &[u8],
    trust_roots: Option<&[Vec<u8>]>,
    at: i64,
) -> std::result::Result<CertificateSummary, String> {
    let info = ContentInfo::from_der(cms_der).map_err(|e| format!("bad CMS: {e}"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err("the CMS is not SignedData".to_owned());
    }
    let sd: SignedData = info
        .content
        .decode_as()
        .map_err(|e| format!("bad SignedData: {e}"))?;
    let sd_der = info.content.to_der().map_err(|e| e.to_string())?;
    let checked = check_signed_data(&sd, &sd_der, Some(content))?;
    if !checked.signature_ok {
        return Err(checked
            .signature_problem
            .unwrap_or_else(|| "the signature does not verify".to_owned()));
    }
    if let Some(roots) = trust_roots {
        let roots: Vec<Cert> = roots.iter().filter_map(|d| Cert::parse(d).ok()).collect();
        chain_to_root(&checked.signer, &checked.pool, &roots, at)?;
    }
    Ok(summary(&checked.signer))
}

fn summary(c: &Cert) -> CertificateSummary {
    let tbs = &c.cert.tbs_certificate;
    CertificateSummary {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        serial: tbs
            .serial_number
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        not_before: rfc3339(tbs.validity.not_before.to_unix_duration().as_secs() as i64),
        not_after: rfc3339(tbs.validity.not_after.to_unix_duration().as_secs() as i64),
    }
}

/// `D:YYYYMMDDHHmmSS+HH'mm'` (later parts optional) → unix seconds.
pub(crate) fn parse_pdf_date(text: &str) -> Option<i64> {
    let t = text.strip_prefix("D:").unwrap_or(text);
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return None;
    }
    let field = |from: usize, len: usize, default: u32| -> u32 {
        digits
            .get(from..from + len)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let year: i64 = digits[..4].parse().ok()?;
    let (mo, d, h, mi, s) = (
        field(4, 2, 1),
        field(6, 2, 1),
        field(8, 2, 0),
        field(10, 2, 0),
        field(12, 2, 0),
    );
    let mut unix = days_from_civil(year, mo.clamp(1, 12), d.clamp(1, 31)) * 86_400
        + i64::from(h) * 3600
        + i64::from(mi) * 60
        + i64::from(s);
    let rest = &t[digits.len()..];
    if let Some(sign) = rest.chars().next().filter(|c| *c == '+' || *c == '-') {
        let zone: String = rest[1..].chars().filter(char::is_ascii_digit).collect();
        let oh: i64 = zone.get(..2).and_then(|v| v.parse().ok()).unwrap_or(0);
        let om: i64 = zone.get(2..4).and_then(|v| v.parse().ok()).unwrap_or(0);
        let offset = (oh * 60 + om) * 60;
        unix -= if sign == '+' { offset } else { -offset };
    }
    Some(unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_dates_parse_with_zones() {
        let base = days_from_civil(2026, 11, 24) * 86_400 + 2 * 3600 + 30 * 60;
        assert_eq!(parse_pdf_date("D:20261124103000+08'00'"), Some(base));
        assert_eq!(parse_pdf_date("D:20261124023000Z"), Some(base));
        assert_eq!(
            parse_pdf_date("D:2026"),
            Some(days_from_civil(2026, 1, 1) * 86_400)
        );
        assert_eq!(parse_pdf_date("garbage"), None);
        assert_eq!(rfc3339(base), "2026-11-24T02:30:00Z");
    }
}
