//! Filling a template's text fields: each value is set as the field's /V and drawn in an
//! appearance stream with an embedded subset of a TrueType font (a CJK one for Chinese text),
//! as a CID font with a ToUnicode map so the text is extracted as written. The fields become
//! read-only and the form says its appearances are current, so no viewer regenerates them
//! (which would look like a change after sealing). One incremental revision, appended to the
//! template's bytes untouched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::document::Document;
use crate::error::{Error, Result};
use crate::form::{self, AcroFormAt, Field};
use crate::object::{name, real, Dict, ObjRef, Object, PdfString};
use crate::writer::Update;

/// The resource name the filled fields' font goes by.
const FONT_KEY: &str = "SealdFill";
/// At most this many characters per value (what a form field holds).
pub const MAX_VALUE_CHARS: usize = 500;

/// A TrueType font (or one face of a collection) to fill fields with.
#[derive(Clone)]
pub struct FillFont {
    data: Arc<[u8]>,
    index: u32,
    /// PostScript name, or a made-up one.
    name: String,
}

impl std::fmt::Debug for FillFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillFont")
            .field("name", &self.name)
            .field("index", &self.index)
            .field("bytes", &self.data.len())
            .finish()
    }
}

fn font_error(what: impl std::fmt::Display) -> Error {
    Error::Fill(format!("the fill font: {what}"))
}

impl FillFont {
    /// Reads face `index` of the TrueType font or collection at `path`.
    pub fn open(path: &Path, index: u32) -> Result<FillFont> {
        let data = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        FillFont::from_bytes(data, index)
    }

    pub fn from_bytes(data: impl Into<Arc<[u8]>>, index: u32) -> Result<FillFont> {
        let data: Arc<[u8]> = data.into();
        ttf_parser::Face::parse(&data, index).map_err(font_error)?;
        let data: Arc<[u8]> = standalone_face(&data, index)?.into();
        let index = 0;
        let face = ttf_parser::Face::parse(&data, index).map_err(font_error)?;
        if face.tables().glyf.is_none() {
            return Err(font_error(
                "it has no TrueType outlines (glyf); use a TrueType font such as WenQuanYi Micro Hei",
            ));
        }
        let name = face
            .names()
            .into_iter()
            .filter(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
            .find_map(|n| n.to_string())
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or_else(|| "SealdFillFont".to_owned());
        Ok(FillFont { data, index, name })
    }

    /// The first character of `text` the font has no glyph for (whitespace becomes a space
    /// when filling, controls are dropped).
    pub fn missing_glyph(&self, text: &str) -> Option<char> {
        let face = self.face().ok()?;
        text.chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .filter(|c| !c.is_control())
            .find(|c| face.glyph_index(*c).is_none())
    }

    fn face(&self) -> Result<ttf_parser::Face<'_>> {
        ttf_parser::Face::parse(&self.data, self.index).map_err(font_error)
    }
}

/// Face `index` of a font or collection, copied out as a font of its own whose `post` table
/// keeps only its header (version 3: no glyph names). A CJK font names tens of thousands of
/// glyphs there, and the subsetter would read every name for each filling; the PDF maps CIDs
/// to text with its own ToUnicode, so the names serve nothing.
fn standalone_face(data: &[u8], index: u32) -> Result<Vec<u8>> {
    let truncated = || font_error("its table directory is truncated");
    let u32_at = |at: usize| -> Result<u32> {
        data.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(truncated)
    };
    let u16_at = |at: usize| -> Result<u16> {
        data.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(truncated)
    };
    let start = if data.starts_with(b"ttcf") {
        u32_at(12 + 4 * index as usize)? as usize
    } else {
        0
    };
    let version = u32_at(start)?;
    let count = u16_at(start + 4)? as usize;
    // A font has a few dozen tables; each is copied, so a directory naming thousands (or
    // tables overlapping to many times the file) is refused rather than allocated.
    if count > 256 {
        return Err(font_error(format!("its directory names {count} tables")));
    }
    let mut tables = Vec::with_capacity(count);
    for i in 0..count {
        let record = start + 12 + 16 * i;
        let tag = data.get(record..record + 4).ok_or_else(truncated)?;
        let (offset, length) = (u32_at(record + 8)? as usize, u32_at(record + 12)? as usize);
        let mut table = data
            .get(offset..offset.saturating_add(length))
            .ok_or_else(|| font_error("a table lies outside the file"))?
            .to_vec();
        if tag == b"post" && table.len() >= 32 {
            table.truncate(32);
            table[..4].copy_from_slice(&0x0003_0000u32.to_be_bytes());
        }
        tables.push(([tag[0], tag[1], tag[2], tag[3]], table));
    }
    let total: usize = tables
        .iter()
        .map(|(_, t)| t.len().next_multiple_of(4))
        .sum();
    if total > data.len().saturating_mul(2) {
        return Err(font_error("its tables overlap to more than the file holds"));
    }
    tables.sort_by_key(|(tag, _)| *tag);
    let n = tables.len() as u16;
    let selector = if n == 0 {
        0
    } else {
        15 - n.leading_zeros() as u16
    };
    let range = 16u16 << selector;
    let mut out = Vec::with_capacity(data.len().min(1 << 26));
    out.extend_from_slice(&version.to_be_bytes());
    for v in [n, range, selector, (n * 16).saturating_sub(range)] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    let mut at = 12 + 16 * tables.len();
    for (tag, table) in &tables {
        let checksum = table.chunks(4).fold(0u32, |sum, c| {
            let mut word = [0u8; 4];
            word[..c.len()].copy_from_slice(c);
            sum.wrapping_add(u32::from_be_bytes(word))
        });
        out.extend_from_slice(tag);
        out.extend_from_slice(&checksum.to_be_bytes());
        out.extend_from_slice(&(at as u32).to_be_bytes());
        out.extend_from_slice(&(table.len() as u32).to_be_bytes());
        at += table.len().next_multiple_of(4);
    }
    for (_, table) in &tables {
        out.extend_from_slice(table);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    Ok(out)
}

/// What a filling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filled {
    /// The fields filled, by name.
    pub fields: Vec<String>,
    /// Bytes of the embedded font subset.
    pub font_bytes: usize,
}

/// The glyphs a filling uses, with their CIDs in the subset and their widths.
struct Glyphs {
    /// char → (CID in the subset, width in 1/1000 em).
    by_char: BTreeMap<char, (u16, f64)>,
    ascent: f64,
    descent: f64,
    bbox: [f64; 4],
    subset: Vec<u8>,
}

fn glyphs(font: &FillFont, text: &BTreeSet<char>) -> Result<Glyphs> {
    let face = font.face()?;
    let scale = 1000.0 / f64::from(face.units_per_em());
    let mut remapper = subsetter::GlyphRemapper::new();
    let mut by_char = BTreeMap::new();
    for &c in text {
        let gid = face.glyph_index(c).ok_or_else(|| {
            Error::Fill(format!(
                "the fill font has no glyph for '{c}' (U+{:04X})",
                u32::from(c)
            ))
        })?;
        let cid = remapper.remap(gid.0);
        let width = f64::from(face.glyph_hor_advance(gid).unwrap_or(0)) * scale;
        by_char.insert(c, (cid, width));
    }
    let subset = subsetter::subset(&font.data, font.index, &remapper)
        .map_err(|e| font_error(format!("cannot subset it: {e:?}")))?;
    let b = face.global_bounding_box();
    Ok(Glyphs {
        by_char,
        ascent: f64::from(face.ascender()) * scale,
        descent: f64::from(face.descender()) * scale,
        bbox: [
            f64::from(b.x_min) * scale,
            f64::from(b.y_min) * scale,
            f64::from(b.x_max) * scale,
            f64::from(b.y_max) * scale,
        ],
        subset,
    })
}

/// A subset tag: six capitals derived from the glyphs used (the same glyphs, the same tag).
fn subset_tag(glyphs: &Glyphs) -> String {
    let mut h: u32 = 2_166_136_261;
    for (c, (cid, _)) in &glyphs.by_char {
        for b in u32::from(*c)
            .to_le_bytes()
            .into_iter()
            .chain(cid.to_le_bytes())
        {
            h = (h ^ u32::from(b)).wrapping_mul(16_777_619);
        }
    }
    (0..6)
        .map(|i| char::from(b'A' + ((h >> (i * 5)) % 26) as u8))
        .collect()
}

/// Writes the Type 0 font (CIDFontType2 descendant, FontFile2 subset, ToUnicode) and returns
/// its reference.
fn write_font(update: &mut Update<'_>, font: &FillFont, g: &Glyphs) -> ObjRef {
    let base = format!("{}+{}", subset_tag(g), font.name);
    let file = update.alloc();
    let mut file_dict = Dict::new();
    file_dict.set("Length1", g.subset.len() as i64);
    update.put_stream(file, file_dict, &g.subset, true);

    let descriptor = update.alloc();
    let mut d = Dict::new();
    d.set("Type", name("FontDescriptor"));
    d.set("FontName", name(&base));
    d.set("Flags", 4i64);
    d.set(
        "FontBBox",
        g.bbox.iter().map(|v| real(*v)).collect::<Vec<_>>(),
    );
    d.set("ItalicAngle", 0i64);
    d.set("Ascent", real(g.ascent));
    d.set("Descent", real(g.descent));
    d.set("CapHeight", real(g.ascent));
    d.set("StemV", 80i64);
    d.set("FontFile2", Object::Ref(file));
    update.put(descriptor, &Object::Dict(d));

    let mut widths: Vec<(u16, f64)> = g.by_char.values().copied().collect();
    widths.sort_by_key(|(cid, _)| *cid);
    widths.dedup_by_key(|(cid, _)| *cid);
    let w: Vec<Object> = widths
        .iter()
        .flat_map(|(cid, width)| {
            [
                Object::Int(i64::from(*cid)),
                Object::Array(vec![real(*width)]),
            ]
        })
        .collect();
    let cid_font = update.alloc();
    let mut c = Dict::new();
    c.set("Type", name("Font"));
    c.set("Subtype", name("CIDFontType2"));
    c.set("BaseFont", name(&base));
    let mut info = Dict::new();
    info.set(
        "Registry",
        Object::String(PdfString::literal(b"Adobe".to_vec())),
    );
    info.set(
        "Ordering",
        Object::String(PdfString::literal(b"Identity".to_vec())),
    );
    info.set("Supplement", 0i64);
    c.set("CIDSystemInfo", Object::Dict(info));
    c.set("FontDescriptor", Object::Ref(descriptor));
    c.set("DW", 1000i64);
    c.set("W", w);
    c.set("CIDToGIDMap", name("Identity"));
    update.put(cid_font, &Object::Dict(c));

    let to_unicode = update.alloc();
    update.put_stream(to_unicode, Dict::new(), &to_unicode_cmap(g), true);

    let type0 = update.alloc();
    let mut t = Dict::new();
    t.set("Type", name("Font"));
    t.set("Subtype", name("Type0"));
    t.set("BaseFont", name(&base));
    t.set("Encoding", name("Identity-H"));
    t.set("DescendantFonts", vec![Object::Ref(cid_font)]);
    t.set("ToUnicode", Object::Ref(to_unicode));
    update.put(type0, &Object::Dict(t));
    type0
}

fn to_unicode_cmap(g: &Glyphs) -> Vec<u8> {
    let mut out = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let entries: Vec<(u16, char)> = g.by_char.iter().map(|(c, (cid, _))| (*cid, *c)).collect();
    for chunk in entries.chunks(100) {
        out.push_str(&format!("{} beginbfchar\n", chunk.len()));
        for (cid, c) in chunk {
            let utf16: String = c
                .encode_utf16(&mut [0; 2])
                .iter()
                .map(|u| format!("{u:04X}"))
                .collect();
            out.push_str(&format!("<{cid:04X}> <{utf16}>\n"));
        }
        out.push_str("endbfchar\n");
    }
    out.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    out.into_bytes()
}

/// The size in a default-appearance string (`/Helv 12 Tf 0 g`), 0 meaning auto.
fn da_size(da: Option<&Object>) -> f64 {
    let text = da
        .and_then(Object::as_string)
        .map(|s| s.to_text())
        .unwrap_or_default();
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "Tf")
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| words[i].parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(0.0)
}

fn rect(doc: &Document, widget: &Dict) -> Result<[f64; 4]> {
    let r = match widget.get("Rect") {
        Some(r) => doc.get(r)?,
        None => return Err(Error::Fill("a field's widget has no /Rect".to_owned())),
    };
    let n: Vec<f64> = r
        .as_array()
        .map(|a| a.iter().filter_map(Object::as_number).collect())
        .unwrap_or_default();
    let [x1, y1, x2, y2] = n.as_slice() else {
        return Err(Error::Fill(
            "a field's widget /Rect is not four numbers".to_owned(),
        ));
    };
    Ok([x1.min(*x2), y1.min(*y2), x1.max(*x2), y1.max(*y2)])
}

/// The appearance stream of `value` in a widget of `width` × `height`.
fn appearance(value: &str, g: &Glyphs, width: f64, height: f64, size: f64, align: i64) -> Vec<u8> {
    let units: f64 = value
        .chars()
        .filter_map(|c| g.by_char.get(&c))
        .map(|(_, w)| *w)
        .sum();
    let pad = 2.0;
    // Auto size: fit the height, then shrink to fit the width.
    let mut size = if size > 0.0 {
        size
    } else {
        (height - 2.0 * pad) * 0.8
    };
    if units > 0.0 {
        size = size.min((width - 2.0 * pad) * 1000.0 / units);
    }
    let size = size.clamp(1.0, 100.0);
    let text_width = units * size / 1000.0;
    let x = match align {
        1 => (width - text_width) / 2.0,
        2 => width - pad - text_width,
        _ => pad,
    }
    .max(pad);
    // Vertically centred between the font's ascent and descent.
    let y = (height - (g.ascent - g.descent) * size / 1000.0) / 2.0 - g.descent * size / 1000.0;
    let hex: String = value
        .chars()
        .filter_map(|c| g.by_char.get(&c))
        .map(|(cid, _)| format!("{cid:04X}"))
        .collect();
    format!(
        "/Tx BMC\nq\n1 1 {w:.2} {h:.2} re W n\nBT\n/{FONT_KEY} {size:.2} Tf\n0 g\n{x:.2} {y:.2} Td\n<{hex}> Tj\nET\nQ\nEMC\n",
        w = (width - 2.0).max(0.0),
        h = (height - 2.0).max(0.0),
    )
    .into_bytes()
}

/// The widgets of a terminal field: itself when merged, else its kids.
fn widgets(doc: &Document, field: &Field) -> Result<Vec<(ObjRef, Dict)>> {
    if field.dict.get("Rect").is_some() {
        return Ok(vec![(field.reference, field.dict.clone())]);
    }
    let kids = match field.dict.get("Kids") {
        Some(k) => doc.get(k)?,
        None => Object::Null,
    };
    let mut out = Vec::new();
    for kid in kids.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        if let (Some(r), Some(d)) = (kid.as_ref(), doc.get_dict(Some(kid))?) {
            out.push((r, d));
        }
    }
    Ok(out)
}

/// Fills the text fields named in `values` (full field names → text) and returns the filled
/// document: the template's bytes and one revision.
pub fn fill_document_to_vec(
    doc: &Document,
    font: &FillFont,
    values: &BTreeMap<String, String>,
) -> Result<(Filled, Vec<u8>)> {
    let fields = form::fields(doc)?;
    let mut chosen = Vec::new();
    let mut text = BTreeSet::new();
    for (field_name, value) in values {
        let field = fields
            .iter()
            .find(|f| f.name == *field_name)
            .ok_or_else(|| {
                Error::Fill(format!("the template has no field named '{field_name}'"))
            })?;
        if field.kind.as_deref() != Some("Tx") {
            return Err(Error::Fill(format!(
                "field '{field_name}' is not a text field"
            )));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(Error::Fill(format!(
                "the value for '{field_name}' is longer than {MAX_VALUE_CHARS} characters"
            )));
        }
        // One line: line breaks and tabs become spaces.
        let line: String = value
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .filter(|c| !c.is_control())
            .collect();
        text.extend(line.chars());
        chosen.push((field, line));
    }
    if chosen.is_empty() {
        return Err(Error::Fill("no values to fill".to_owned()));
    }
    let g = glyphs(font, &text)?;
    let mut update = Update::new(doc);
    let font_ref = write_font(&mut update, font, &g);
    let form = form::acroform(doc)?;
    let form_align = form.dict().and_then(|d| d.int("Q")).unwrap_or(0);
    let da = format!("/{FONT_KEY} 0 Tf 0 g");
    let mut filled = Vec::new();
    for (field, line) in &chosen {
        let size = da_size(
            field
                .dict
                .get("DA")
                .or(form.dict().and_then(|d| d.get("DA"))),
        );
        let align = field.dict.int("Q").unwrap_or(form_align);
        let mut field_dict = field.dict.clone();
        for (widget_ref, mut widget) in widgets(doc, field)? {
            let [x1, y1, x2, y2] = rect(doc, &widget)?;
            let (w, h) = (x2 - x1, y2 - y1);
            let ap = update.alloc();
            let mut xobject = Dict::new();
            xobject.set("Type", name("XObject"));
            xobject.set("Subtype", name("Form"));
            xobject.set("BBox", vec![real(0.0), real(0.0), real(w), real(h)]);
            let mut fonts = Dict::new();
            fonts.set(FONT_KEY, Object::Ref(font_ref));
            let mut resources = Dict::new();
            resources.set("Font", Object::Dict(fonts));
            xobject.set("Resources", Object::Dict(resources));
            update.put_stream(ap, xobject, &appearance(line, &g, w, h, size, align), true);
            let mut aps = Dict::new();
            aps.set("N", Object::Ref(ap));
            if widget_ref == field.reference {
                field_dict.set("AP", Object::Dict(aps));
            } else {
                widget.set("AP", Object::Dict(aps));
                update.put(widget_ref, &Object::Dict(widget));
            }
        }
        field_dict.set("V", Object::String(PdfString::text(line)));
        field_dict.set(
            "DA",
            Object::String(PdfString::literal(da.clone().into_bytes())),
        );
        // Read-only: a filled field is not edited after sealing.
        field_dict.set("Ff", field_dict.int("Ff").unwrap_or(0) | 1);
        update.put(field.reference, &Object::Dict(field_dict));
        filled.push(field.name.clone());
    }
    set_form_font(&mut update, &form, font_ref)?;
    let base = doc.len();
    let revision = update.serialize(base)?;
    let mut out = Vec::with_capacity(base as usize + revision.bytes.len());
    let mut buf = vec![0u8; 1 << 16];
    let mut offset = 0u64;
    loop {
        let n = doc.source().read_into(offset, &mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        offset += n as u64;
    }
    out.extend_from_slice(&revision.bytes);
    Ok((
        Filled {
            fields: filled,
            font_bytes: g.subset.len(),
        },
        out,
    ))
}

/// Adds the font to the form's default resources and says the appearances are current.
fn set_form_font(update: &mut Update<'_>, form: &AcroFormAt, font: ObjRef) -> Result<()> {
    let doc = update.doc();
    let mut dict = form.dict().cloned().unwrap_or_default();
    let mut dr = doc.get_dict(dict.get("DR"))?.unwrap_or_default();
    let mut fonts = doc.get_dict(dr.get("Font"))?.unwrap_or_default();
    fonts.set(FONT_KEY, Object::Ref(font));
    dr.set("Font", Object::Dict(fonts));
    dict.set("DR", Object::Dict(dr));
    dict.set("NeedAppearances", Object::Bool(false));
    match form {
        AcroFormAt::Object(r, _) => update.put(*r, &Object::Dict(dict)),
        AcroFormAt::InCatalog(_) => {
            let (root, mut catalog) = doc.catalog()?;
            catalog.set("AcroForm", Object::Dict(dict));
            update.put(root, &Object::Dict(catalog));
        }
        AcroFormAt::Missing => {
            return Err(Error::Fill("the template has no form".to_owned()));
        }
    }
    Ok(())
}
