//! PDF objects as seald reads and writes them.
//!
//! Objects keep what is needed to write them back byte-faithfully in an incremental update:
//! dictionary key order, real numbers as written, strings as raw bytes.

use std::fmt;

/// An indirect object reference `N G R`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjRef {
    pub num: u32,
    pub gen: u16,
}

impl ObjRef {
    pub fn new(num: u32, gen: u16) -> Self {
        ObjRef { num, gen }
    }
}

impl fmt::Display for ObjRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} R", self.num, self.gen)
    }
}

/// A name, as bytes (`#xx` escapes decoded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(pub Vec<u8>);

impl Name {
    pub fn new(s: &str) -> Self {
        Name(s.as_bytes().to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is(&self, s: &str) -> bool {
        self.0 == s.as_bytes()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", String::from_utf8_lossy(&self.0))
    }
}

/// A string object: its bytes, and whether it was written as hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfString {
    pub bytes: Vec<u8>,
    pub hex: bool,
}

impl PdfString {
    pub fn literal(bytes: impl Into<Vec<u8>>) -> Self {
        PdfString {
            bytes: bytes.into(),
            hex: false,
        }
    }

    /// A text string: PDFDocEncoding-compatible ASCII as is, anything else as UTF-16BE with a
    /// byte order mark (what every reader understands).
    pub fn text(s: &str) -> Self {
        if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return PdfString::literal(s.as_bytes().to_vec());
        }
        let mut bytes = vec![0xfe, 0xff];
        for unit in s.encode_utf16() {
            bytes.extend_from_slice(&unit.to_be_bytes());
        }
        PdfString { bytes, hex: true }
    }

    /// Decodes a text string (UTF-16BE with BOM, UTF-8 with BOM, else PDFDocEncoding ≈ Latin-1).
    pub fn to_text(&self) -> String {
        let b = &self.bytes;
        if b.starts_with(&[0xfe, 0xff]) {
            let units: Vec<u16> = b[2..]
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        } else if b.starts_with(&[0xef, 0xbb, 0xbf]) {
            String::from_utf8_lossy(&b[3..]).into_owned()
        } else {
            b.iter().map(|&c| c as char).collect()
        }
    }
}

/// A dictionary, in the order its keys were written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dict(pub Vec<(Name, Object)>);

impl Dict {
    pub fn new() -> Self {
        Dict(Vec::new())
    }

    pub fn get(&self, key: &str) -> Option<&Object> {
        self.0.iter().find(|(k, _)| k.is(key)).map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing entry in place (keeping the order) or appending.
    pub fn set(&mut self, key: &str, value: impl Into<Object>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k.is(key)) {
            Some((_, v)) => *v = value,
            None => self.0.push((Name::new(key), value)),
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| !k.is(key));
    }

    pub fn name(&self, key: &str) -> Option<&Name> {
        match self.get(key) {
            Some(Object::Name(n)) => Some(n),
            _ => None,
        }
    }

    pub fn is_type(&self, ty: &str) -> bool {
        self.name("Type").is_some_and(|n| n.is(ty))
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Object::as_int)
    }

    pub fn keys(&self) -> impl Iterator<Item = &Name> {
        self.0.iter().map(|(k, _)| k)
    }
}

/// Where a stream's data lies in the file (its dictionary says how long it is).
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub dict: Dict,
    /// Offset of the first data byte in the file.
    pub data_offset: u64,
}

/// Any PDF object.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Null,
    Bool(bool),
    Int(i64),
    /// A real number as written (kept textual so writing it back changes nothing).
    Real(Vec<u8>),
    String(PdfString),
    Name(Name),
    Array(Vec<Object>),
    Dict(Dict),
    Stream(Stream),
    Ref(ObjRef),
}

impl Object {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Object::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value of an integer or real.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Object::Int(i) => Some(*i as f64),
            Object::Real(r) => std::str::from_utf8(r).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Object::Dict(d) => Some(d),
            Object::Stream(s) => Some(&s.dict),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Object>> {
        match self {
            Object::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_name(&self) -> Option<&Name> {
        match self {
            Object::Name(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_ref(&self) -> Option<ObjRef> {
        match self {
            Object::Ref(r) => Some(*r),
            _ => None,
        }
    }

    pub fn as_string(&self) -> Option<&PdfString> {
        match self {
            Object::String(s) => Some(s),
            _ => None,
        }
    }

    /// Writes the object in PDF syntax. Streams cannot be written this way (their data lives
    /// in the file); new streams are written by the writer.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Object::Null => out.extend_from_slice(b"null"),
            Object::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Object::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Object::Real(r) => out.extend_from_slice(r),
            Object::String(s) => write_string(s, out),
            Object::Name(n) => write_name(n, out),
            Object::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Object::Dict(d) => write_dict(d, out),
            Object::Stream(s) => write_dict(&s.dict, out),
            Object::Ref(r) => out.extend_from_slice(r.to_string().as_bytes()),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

pub(crate) fn write_dict(d: &Dict, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<<");
    for (k, v) in &d.0 {
        write_name(k, out);
        out.push(b' ');
        v.write(out);
    }
    out.extend_from_slice(b">>");
}

fn write_name(n: &Name, out: &mut Vec<u8>) {
    out.push(b'/');
    for &b in &n.0 {
        let regular = b > 0x20
            && b < 0x7f
            && !matches!(
                b,
                b'#' | b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
            );
        if regular {
            out.push(b);
        } else {
            out.extend_from_slice(format!("#{b:02X}").as_bytes());
        }
    }
}

fn write_string(s: &PdfString, out: &mut Vec<u8>) {
    if s.hex {
        out.push(b'<');
        for b in &s.bytes {
            out.extend_from_slice(format!("{b:02X}").as_bytes());
        }
        out.push(b'>');
        return;
    }
    out.push(b'(');
    for &b in &s.bytes {
        match b {
            b'(' | b')' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.push(b')');
}

impl From<i64> for Object {
    fn from(i: i64) -> Self {
        Object::Int(i)
    }
}

impl From<ObjRef> for Object {
    fn from(r: ObjRef) -> Self {
        Object::Ref(r)
    }
}

impl From<Name> for Object {
    fn from(n: Name) -> Self {
        Object::Name(n)
    }
}

impl From<Dict> for Object {
    fn from(d: Dict) -> Self {
        Object::Dict(d)
    }
}

impl From<Vec<Object>> for Object {
    fn from(a: Vec<Object>) -> Self {
        Object::Array(a)
    }
}

impl From<PdfString> for Object {
    fn from(s: PdfString) -> Self {
        Object::String(s)
    }
}

/// A name object from a string.
pub fn name(s: &str) -> Object {
    Object::Name(Name::new(s))
}

/// A real number written with up to four decimals (no exponent, as PDF requires).
pub fn real(v: f64) -> Object {
    let mut s = format!("{v:.4}");
    while s.contains('.') && (s.ends_with('0') || s.ends_with('.')) {
        s.pop();
    }
    if s == "-0" {
        s = "0".to_owned();
    }
    Object::Real(s.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_strings_are_escaped_when_written() {
        let mut d = Dict::new();
        d.set("A B", name("x#y"));
        d.set("S", PdfString::literal(b"a(b)\\c\n".to_vec()));
        assert_eq!(
            Object::Dict(d).to_bytes(),
            b"<</A#20B /x#23y/S (a\\(b\\)\\\\c\\n)>>".to_vec()
        );
    }

    #[test]
    fn text_strings_use_utf16_only_when_needed() {
        assert_eq!(PdfString::text("Approved").bytes, b"Approved".to_vec());
        let chinese = PdfString::text("合同");
        assert!(chinese.hex);
        assert_eq!(chinese.bytes, vec![0xfe, 0xff, 0x54, 0x08, 0x54, 0x0c]);
        assert_eq!(chinese.to_text(), "合同");
    }

    #[test]
    fn reals_have_no_exponent_and_no_trailing_zeros() {
        assert_eq!(real(12.5).to_bytes(), b"12.5".to_vec());
        assert_eq!(real(3.0).to_bytes(), b"3".to_vec());
        assert_eq!(real(-0.00001).to_bytes(), b"0".to_vec());
        assert_eq!(real(1e-7 + 841.88976).to_bytes(), b"841.8898".to_vec());
    }

    #[test]
    fn set_replaces_in_place() {
        let mut d = Dict::new();
        d.set("A", 1);
        d.set("B", 2);
        d.set("A", 3);
        assert_eq!(d.0.len(), 2);
        assert_eq!(d.int("A"), Some(3));
        assert_eq!(d.0[0].0, Name::new("A"));
    }
}
