//! Signing: plan the new revision (field, widget, appearance, signature dictionary with
//! placeholders), write the output as a copy of the input plus that revision while hashing the
//! signed byte ranges, have the [`Signer`] sign, and splice the CMS into the placeholder.
//!
//! Memory stays flat: the input is streamed through a fixed buffer; only the new revision (a
//! few kilobytes, plus the seal image) is held. The output appears only when complete: it is
//! written to a temporary file next to it and renamed into place.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use seald_signer::{HashAlgorithm, Signer};

use crate::appearance::{self, SealAppearance};
use crate::cms::{self, Hasher};
use crate::document::{Document, Page};
use crate::error::{Error, Result};
use crate::form::{self, AcroFormAt};
use crate::object::{name, real, Dict, ObjRef, Object, PdfString};
use crate::time::SigningTime;
use crate::writer::Update;

/// Where the signature goes and what it looks like.
#[derive(Debug, Clone)]
pub enum Placement {
    /// A new signature field with an invisible widget on `page`.
    Invisible { page: u32 },
    /// A new signature field showing `seal` on `page`, its top-left corner `x_mm`, `y_mm` from
    /// the top-left corner of the page as displayed, `width_mm` wide.
    Visible {
        page: u32,
        x_mm: f64,
        y_mm: f64,
        width_mm: f64,
        seal: SealAppearance,
    },
    /// An existing empty signature field (templates predefine them), optionally showing `seal`
    /// fitted into the field's rectangle.
    Field {
        name: String,
        seal: Option<SealAppearance>,
    },
}

/// Obtains RFC 3161 time-stamp tokens (for PAdES B-T).
pub trait Timestamper {
    /// A verified `TimeStampToken` (DER ContentInfo) over `digest`, made with `hash`.
    fn timestamp(&self, hash: HashAlgorithm, digest: &[u8]) -> Result<Vec<u8>>;

    /// How many bytes a token usually takes (to size the placeholder).
    fn expected_size(&self) -> usize {
        8192
    }
}

/// What to sign and how.
pub struct SignOptions<'a> {
    pub signer: &'a dyn Signer,
    pub placement: Placement,
    /// Name for a new field (default: `Signature1`, `Signature2`, … whichever is free).
    pub field_name: Option<String>,
    pub reason: Option<String>,
    pub location: Option<String>,
    pub contact_info: Option<String>,
    pub time: SigningTime,
    /// Set for PAdES B-T.
    pub timestamper: Option<&'a dyn Timestamper>,
    /// Flush the output to stable storage before it appears under its name (files kept at
    /// rest). A spool file streamed to a client right away does not need it.
    pub durable: bool,
}

impl std::fmt::Debug for SignOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignOptions")
            .field("placement", &self.placement)
            .field("field_name", &self.field_name)
            .field("time", &self.time)
            .field("timestamped", &self.timestamper.is_some())
            .finish_non_exhaustive()
    }
}

/// What was signed.
#[derive(Debug, Clone)]
pub struct Signed {
    pub field: String,
    pub byte_range: [u64; 4],
    /// The document digest the signature covers.
    pub digest: Vec<u8>,
    /// Size of the CMS signature and of the room reserved for it, in bytes.
    pub signature_len: usize,
    pub reserved_len: usize,
    pub output_len: u64,
    pub timestamped: bool,
}

/// Width reserved for the /ByteRange array (enough for files up to 10^12 bytes).
const BYTE_RANGE_SLOT: usize = 48;
const COPY_BUFFER: usize = 1 << 20;
/// The highest object number PDF readers must support (ISO 32000, Annex C).
const MAX_OBJECT_NUMBER: u32 = 8_388_607;

/// Signs `input` into `output`. On any error no output file is left behind.
pub fn sign_file(input: &Path, output: &Path, options: &SignOptions<'_>) -> Result<Signed> {
    if same_file(input, output) {
        return Err(Error::InvalidRequest(
            "the output is the input file; write the signed copy under another name".to_owned(),
        ));
    }
    let doc = Document::open(input)?;
    sign_document(&doc, output, options)
}

/// Signs an open document into `output`.
pub fn sign_document(doc: &Document, output: &Path, options: &SignOptions<'_>) -> Result<Signed> {
    sign_into(doc, Output::File(output), options).map(|(signed, _)| signed)
}

/// Signs an open document into memory and returns the signed file. For small documents a
/// service answers at once (no output file to create and remove); the caller bounds how much
/// it keeps in memory.
pub fn sign_document_to_vec(
    doc: &Document,
    options: &SignOptions<'_>,
) -> Result<(Signed, Vec<u8>)> {
    let (signed, bytes) = sign_into(doc, Output::Memory, options)?;
    Ok((signed, bytes.unwrap_or_default()))
}

/// Where a signed document goes.
#[derive(Clone, Copy)]
enum Output<'a> {
    File(&'a Path),
    Memory,
}

fn sign_into(
    doc: &Document,
    output: Output<'_>,
    options: &SignOptions<'_>,
) -> Result<(Signed, Option<Vec<u8>>)> {
    if form::docmdp_permission(doc)? == Some(1) {
        return Err(Error::CertifiedNoChanges);
    }
    if doc.size() > MAX_OBJECT_NUMBER - 64 {
        return Err(Error::TooLarge {
            what: "the document's object count (/Size)".to_owned(),
            size: u64::from(doc.size()),
            max: u64::from(MAX_OBJECT_NUMBER - 64),
        });
    }
    let certificate = cms::signer_certificate(options.signer)?;
    let chain_len: usize = options
        .signer
        .certificate_chain()
        .iter()
        .map(Vec::len)
        .sum();
    let mut reserve = chain_len
        + 1024 // signature value (RSA-8192 at most)
        + 2048 // signed attributes and structure
        + options.timestamper.map(|t| t.expected_size() + 2048).unwrap_or(0);
    // Once: if the estimate was short (an unusually large time-stamp token), plan again with
    // the size now known — never truncate.
    for attempt in 0..2 {
        match attempt_sign(doc, output, options, &certificate, reserve) {
            Err(Error::PlaceholderTooSmall { needed, .. }) if attempt == 0 => {
                reserve = needed + 1024;
            }
            other => return other,
        }
    }
    Err(Error::PlaceholderTooSmall {
        needed: reserve,
        room: reserve,
    })
}

fn attempt_sign(
    doc: &Document,
    output: Output<'_>,
    options: &SignOptions<'_>,
    certificate: &x509_cert::Certificate,
    reserve: usize,
) -> Result<(Signed, Option<Vec<u8>>)> {
    let mut update = Update::new(doc);
    let sig_ref = update.alloc();
    let field = plan_field(&mut update, options, sig_ref)?;
    let (sig_bytes, br_at, contents_at) = signature_dictionary(options, reserve);
    update.put_raw(sig_ref, sig_bytes);
    let base = doc.len();
    let mut revision = update.serialize(base)?;
    let sig_at = *revision
        .offsets
        .get(&sig_ref)
        .ok_or_else(|| Error::Encoding("the signature dictionary was not written".to_owned()))?;
    let header = format!("{} {} obj\n", sig_ref.num, sig_ref.gen).len();
    let br_pos = sig_at + header + br_at;
    let lt_pos = sig_at + header + contents_at;
    let gt_pos = lt_pos + 1 + 2 * reserve;
    let total = base + revision.bytes.len() as u64;
    let byte_range = [
        0,
        base + lt_pos as u64,
        base + gt_pos as u64 + 1,
        total - (base + gt_pos as u64 + 1),
    ];
    let text = format!(
        "[{} {} {} {}]",
        byte_range[0], byte_range[1], byte_range[2], byte_range[3]
    );
    if text.len() > BYTE_RANGE_SLOT {
        return Err(Error::Unsupported(
            "a file larger than 10^12 bytes".to_owned(),
        ));
    }
    revision.bytes[br_pos..br_pos + BYTE_RANGE_SLOT]
        .copy_from_slice(format!("{text:<BYTE_RANGE_SLOT$}").as_bytes());
    let hash = options.signer.algorithm().hash();
    let mut out = match output {
        Output::File(path) => Sink::File(TempOutput::create(path, options.durable)?),
        Output::Memory => Sink::Memory(Vec::with_capacity(total as usize)),
    };
    let mut hasher = Hasher::new(hash);
    copy_hashing(doc, &mut out, &mut hasher)?;
    hasher.update(&revision.bytes[..lt_pos]);
    hasher.update(&revision.bytes[gt_pos + 1..]);
    out.write(&revision.bytes)?;
    let digest = hasher.finish();

    let certificate_der = &options.signer.certificate_chain()[0];
    let attrs = cms::signed_attributes(&digest, certificate, certificate_der)?;
    let to_sign = der::Encode::to_der(&attrs).map_err(|e| Error::Encoding(e.to_string()))?;
    let signature = options.signer.sign(&to_sign)?;
    let token = match options.timestamper {
        Some(tsa) => Some(tsa.timestamp(
            HashAlgorithm::Sha256,
            &cms::digest(HashAlgorithm::Sha256, &signature),
        )?),
        None => None,
    };
    let cms = cms::content_info(
        options.signer,
        certificate,
        attrs,
        signature,
        token.as_deref(),
    )?;
    if cms.len() > reserve {
        return Err(Error::PlaceholderTooSmall {
            needed: cms.len(),
            room: reserve,
        });
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = Vec::with_capacity(cms.len() * 2);
    for b in &cms {
        hex.push(DIGITS[usize::from(b >> 4)]);
        hex.push(DIGITS[usize::from(b & 0x0f)]);
    }
    out.write_at(base + lt_pos as u64 + 1, &hex)?;
    let bytes = out.commit(options.durable)?;
    let signed = Signed {
        field,
        byte_range,
        digest,
        signature_len: cms.len(),
        reserved_len: reserve,
        output_len: total,
        timestamped: token.is_some(),
    };
    Ok((signed, bytes))
}

/// The signature dictionary with a blank /ByteRange slot and a zero-filled /Contents of
/// `reserve` bytes; returns it with the positions of the slot and of the '<'.
fn signature_dictionary(options: &SignOptions<'_>, reserve: usize) -> (Vec<u8>, usize, usize) {
    let mut d = Dict::new();
    d.set("Type", name("Sig"));
    d.set("Filter", name("Adobe.PPKLite"));
    d.set("SubFilter", name("ETSI.CAdES.detached"));
    d.set(
        "M",
        PdfString::literal(options.time.pdf_date().into_bytes()),
    );
    for (key, value) in [
        ("Reason", &options.reason),
        ("Location", &options.location),
        ("ContactInfo", &options.contact_info),
    ] {
        if let Some(v) = value {
            d.set(key, PdfString::text(v));
        }
    }
    let mut bytes = Object::Dict(d).to_bytes();
    bytes.truncate(bytes.len() - 2); // reopen the dictionary
    bytes.extend_from_slice(b"/ByteRange ");
    let br_at = bytes.len();
    bytes.extend_from_slice(&[b' '; BYTE_RANGE_SLOT]);
    bytes.extend_from_slice(b"/Contents ");
    let contents_at = bytes.len();
    bytes.push(b'<');
    bytes.resize(bytes.len() + 2 * reserve, b'0');
    bytes.extend_from_slice(b">>>");
    (bytes, br_at, contents_at)
}

/// Adds the field (new, or the named existing one) and its widget and appearance to the
/// update; returns the field's name.
fn plan_field(update: &mut Update<'_>, options: &SignOptions<'_>, sig: ObjRef) -> Result<String> {
    let doc = update.doc();
    let form = form::acroform(doc)?;
    let fields = form::fields(doc)?;
    match &options.placement {
        Placement::Field { name: wanted, seal } => {
            let field = fields
                .iter()
                .find(|f| f.name == *wanted)
                .ok_or_else(|| Error::NoSuchField(wanted.clone()))?;
            if !field.is_signature() {
                return Err(Error::InvalidRequest(format!(
                    "field '{wanted}' is not a signature field"
                )));
            }
            if field
                .dict
                .get("V")
                .is_some_and(|v| !matches!(v, Object::Null))
            {
                return Err(Error::FieldAlreadySigned(wanted.clone()));
            }
            let mut dict = field.dict.clone();
            dict.set("V", sig);
            // The widget: the field itself, or its first kid.
            let widget = if dict.name("Subtype").is_some_and(|s| s.is("Widget")) {
                None
            } else {
                let kid = match dict.get("Kids") {
                    Some(k) => doc.get(k)?,
                    None => Object::Null,
                };
                kid.as_array()
                    .and_then(|a| a.first())
                    .and_then(Object::as_ref)
                    .map(|r| -> Result<(ObjRef, Dict)> {
                        Ok((r, doc.get_dict(Some(&Object::Ref(r)))?.unwrap_or_default()))
                    })
                    .transpose()?
            };
            if let Some(seal) = seal {
                let widget_dict = match &widget {
                    Some((_, d)) => d,
                    None => &dict,
                };
                let rect = rect_of(doc, widget_dict)?;
                let rotate = match widget_dict.get("P").and_then(Object::as_ref) {
                    Some(p) => doc.find_page(p)?.map(|p| p.rotate).unwrap_or(0),
                    None => 0,
                };
                let (w, h) = appearance::displayed_size(rect, rotate);
                if w < 1.0 || h < 1.0 {
                    return Err(Error::InvalidRequest(format!(
                        "field '{wanted}' has no area to show a seal in (it is invisible)"
                    )));
                }
                let ap = appearance::write_fitted_form(update, seal, w, h, rotate);
                let mut aps = Dict::new();
                aps.set("N", ap);
                match widget {
                    Some((r, mut wd)) => {
                        wd.set("AP", aps);
                        update.put(r, &Object::Dict(wd));
                    }
                    None => dict.set("AP", aps),
                }
            }
            update.put(field.reference, &Object::Dict(dict));
            set_sig_flags(update, &form, None)?;
            Ok(wanted.clone())
        }
        Placement::Invisible { page } | Placement::Visible { page, .. } => {
            let page = doc.page(*page)?;
            let field_name = match &options.field_name {
                Some(n) => {
                    if fields.iter().any(|f| f.name == *n) {
                        return Err(Error::InvalidRequest(format!(
                            "a field named '{n}' exists already (sign it with --field, or choose another name)"
                        )));
                    }
                    n.clone()
                }
                None => (1..)
                    .map(|i| format!("Signature{i}"))
                    .find(|n| !fields.iter().any(|f| f.name == *n))
                    .unwrap_or_else(|| "Signature".to_owned()),
            };
            let (rect, ap) = match &options.placement {
                Placement::Visible {
                    x_mm,
                    y_mm,
                    width_mm,
                    seal,
                    ..
                } => {
                    let rect = visible_rect(&page, *x_mm, *y_mm, *width_mm, seal)?;
                    let w = appearance::mm(*width_mm);
                    (rect, appearance::write_form(update, seal, w, page.rotate))
                }
                _ => ([0.0; 4], appearance::write_empty_form(update)),
            };
            let field_ref = update.alloc();
            let mut field = Dict::new();
            field.set("Type", name("Annot"));
            field.set("Subtype", name("Widget"));
            field.set("FT", name("Sig"));
            field.set("T", PdfString::text(&field_name));
            field.set("V", sig);
            // Print + Locked.
            field.set("F", 132i64);
            field.set("Rect", rect.iter().map(|v| real(*v)).collect::<Vec<_>>());
            field.set("P", page.reference);
            let mut aps = Dict::new();
            aps.set("N", ap);
            field.set("AP", aps);
            update.put(field_ref, &Object::Dict(field));
            add_annotation(update, &page, field_ref)?;
            set_sig_flags(update, &form, Some(field_ref))?;
            Ok(field_name)
        }
    }
}

fn visible_rect(
    page: &Page,
    x_mm: f64,
    y_mm: f64,
    width_mm: f64,
    seal: &SealAppearance,
) -> Result<[f64; 4]> {
    if !(x_mm.is_finite() && y_mm.is_finite() && width_mm.is_finite())
        || x_mm < 0.0
        || y_mm < 0.0
        || width_mm <= 0.0
    {
        return Err(Error::InvalidRequest(
            "the seal's x, y and width must be non-negative millimetres (width above 0)".to_owned(),
        ));
    }
    let (x, y, w) = (
        appearance::mm(x_mm),
        appearance::mm(y_mm),
        appearance::mm(width_mm),
    );
    let h = seal.height_for(w);
    let (page_w, page_h) = appearance::displayed_size(page.crop_box, page.rotate);
    if x + w > page_w + 0.01 || y + h > page_h + 0.01 {
        return Err(Error::InvalidRequest(format!(
            "a seal {width_mm:.1} mm wide at x={x_mm:.1} mm, y={y_mm:.1} mm does not fit on page {} ({:.1} × {:.1} mm)",
            page.number,
            page_w * 25.4 / 72.0,
            page_h * 25.4 / 72.0
        )));
    }
    Ok(appearance::place(page.crop_box, page.rotate, x, y, w, h))
}

fn rect_of(doc: &Document, widget: &Dict) -> Result<[f64; 4]> {
    let rect = match widget.get("Rect") {
        Some(r) => doc.get(r)?,
        None => return Ok([0.0; 4]),
    };
    let mut r = [0.0; 4];
    let items = rect
        .as_array()
        .filter(|a| a.len() == 4)
        .ok_or_else(|| Error::Damaged("a widget's /Rect is not a rectangle".to_owned()))?;
    for (i, v) in items.iter().enumerate() {
        r[i] = doc
            .get(v)?
            .as_number()
            .ok_or_else(|| Error::Damaged("a widget's /Rect is not numeric".to_owned()))?;
    }
    Ok([
        r[0].min(r[2]),
        r[1].min(r[3]),
        r[0].max(r[2]),
        r[1].max(r[3]),
    ])
}

/// Whether `output` names the file `input` names (also through links).
fn same_file(input: &Path, output: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(input), std::fs::metadata(output)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Adds `annot` to the page's /Annots (rewriting the array object if it is one).
fn add_annotation(update: &mut Update<'_>, page: &Page, annot: ObjRef) -> Result<()> {
    let doc = update.doc();
    match page.dict.get("Annots") {
        Some(Object::Ref(r)) => {
            let mut items = match doc.resolve(*r)? {
                Object::Array(a) => a,
                Object::Null => Vec::new(),
                _ => {
                    return Err(Error::Damaged(format!(
                        "page {}'s /Annots is not an array",
                        page.number
                    )))
                }
            };
            items.push(Object::Ref(annot));
            update.put(*r, &Object::Array(items));
        }
        Some(Object::Array(a)) => {
            let mut items = a.clone();
            items.push(Object::Ref(annot));
            let mut dict = page.dict.clone();
            dict.set("Annots", items);
            update.put(page.reference, &Object::Dict(dict));
        }
        _ => {
            let mut dict = page.dict.clone();
            dict.set("Annots", vec![Object::Ref(annot)]);
            update.put(page.reference, &Object::Dict(dict));
        }
    }
    Ok(())
}

/// Sets /SigFlags 3 on the form (creating the form if there is none) and adds `new_field` to
/// its /Fields.
fn set_sig_flags(
    update: &mut Update<'_>,
    form: &AcroFormAt,
    new_field: Option<ObjRef>,
) -> Result<()> {
    let doc = update.doc();
    let mut dict = form.dict().cloned().unwrap_or_default();
    let flags = dict.int("SigFlags").unwrap_or(0) | 3;
    dict.set("SigFlags", flags);
    if let Some(field) = new_field {
        match dict.get("Fields") {
            Some(Object::Ref(r)) => {
                let r = *r;
                let mut items = match doc.resolve(r)? {
                    Object::Array(a) => a,
                    Object::Null => Vec::new(),
                    _ => {
                        return Err(Error::Damaged(
                            "the form's /Fields is not an array".to_owned(),
                        ))
                    }
                };
                items.push(Object::Ref(field));
                update.put(r, &Object::Array(items));
            }
            Some(Object::Array(a)) => {
                let mut items = a.clone();
                items.push(Object::Ref(field));
                dict.set("Fields", items);
            }
            _ => dict.set("Fields", vec![Object::Ref(field)]),
        }
    }
    match form {
        AcroFormAt::Object(r, _) => update.put(*r, &Object::Dict(dict)),
        AcroFormAt::InCatalog(_) | AcroFormAt::Missing => {
            let (root, mut catalog) = doc.catalog()?;
            let value = if matches!(form, AcroFormAt::Missing) {
                let r = update.alloc();
                update.put(r, &Object::Dict(dict));
                Object::Ref(r)
            } else {
                Object::Dict(dict)
            };
            catalog.set("AcroForm", value);
            update.put(root, &Object::Dict(catalog));
        }
    }
    Ok(())
}

/// Copies the whole input to the output, hashing it (the first signed byte range starts with
/// all of it).
fn copy_hashing(doc: &Document, out: &mut Sink, hasher: &mut Hasher) -> Result<()> {
    // A small input needs no megabyte of zeroed buffer.
    let mut buf = vec![0u8; COPY_BUFFER.min(doc.len() as usize).max(1)];
    let mut offset = 0u64;
    loop {
        let n = doc.source().read_into(offset, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
        out.write(&buf[..n])?;
        offset += n as u64;
    }
}

/// The output being written: a file, or memory.
enum Sink {
    File(TempOutput),
    Memory(Vec<u8>),
}

impl Sink {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::File(f) => f.write(bytes),
            Sink::Memory(v) => {
                v.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::File(f) => f.write_at(offset, bytes),
            Sink::Memory(v) => {
                let at = usize::try_from(offset)
                    .ok()
                    .filter(|&at| at + bytes.len() <= v.len());
                let at = at.ok_or_else(|| {
                    Error::Encoding("the signature lies outside the output".to_owned())
                })?;
                v[at..at + bytes.len()].copy_from_slice(bytes);
                Ok(())
            }
        }
    }

    /// Finishes the output; the signed bytes, for memory.
    fn commit(self, durable: bool) -> Result<Option<Vec<u8>>> {
        match self {
            Sink::File(f) => f.commit(durable).map(|()| None),
            Sink::Memory(v) => Ok(Some(v)),
        }
    }
}

/// An output file that is either complete or gone.
struct TempOutput {
    file: File,
    temp: PathBuf,
    target: PathBuf,
    done: bool,
}

impl TempOutput {
    /// A durable output is written beside its name and renamed into place once synced; a
    /// spool output (`durable` false) is written under its own name, which the caller made
    /// fresh, and removed if signing fails.
    fn create(target: &Path, durable: bool) -> Result<Self> {
        if !durable {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(target)
                .map_err(|source| Error::Io {
                    path: target.to_owned(),
                    source,
                })?;
            return Ok(TempOutput {
                file,
                temp: target.to_owned(),
                target: target.to_owned(),
                done: false,
            });
        }
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                Error::InvalidRequest(format!("{} is not a file name", target.display()))
            })?;
        let io = |source| Error::Io {
            path: target.to_owned(),
            source,
        };
        for i in 0..100u32 {
            let temp = dir.join(format!(".{base}.seald-{}-{i}.tmp", std::process::id()));
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => {
                    return Ok(TempOutput {
                        file,
                        temp,
                        target: target.to_owned(),
                        done: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(std::io::Error::other(
            "cannot create a temporary output file",
        )))
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.target.clone(),
            source,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).map_err(|e| self.io(e))
    }

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(bytes))
            .map_err(|e| self.io(e))
    }

    fn commit(mut self, durable: bool) -> Result<()> {
        if durable {
            self.file.sync_all().map_err(|e| self.io(e))?;
        }
        if self.temp != self.target {
            fs::rename(&self.temp, &self.target).map_err(|e| self.io(e))?;
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.temp);
        }
    }
}
