//! One incremental update: the objects a signature adds or changes, appended after the
//! original bytes with a cross-reference section in the original's style and a /Prev to it.

use std::collections::BTreeMap;

use crate::document::Document;
use crate::error::{Error, Result};
use crate::filter;
use crate::object::{name, Dict, ObjRef, Object};
use crate::xref::XrefStyle;

/// Streams shorter than this are written as they are.
const MIN_DEFLATE: usize = 1024;
/// The compression level of streams written per document (a font subset, an xref stream):
/// level 6 would take as long as the rest of a filling for a few percent fewer bytes.
const FAST: u8 = 1;

/// The objects of one new revision.
pub(crate) struct Update<'d> {
    doc: &'d Document,
    next: u32,
    objects: BTreeMap<ObjRef, Vec<u8>>,
}

/// A serialized revision and where its objects landed.
pub(crate) struct Revision {
    pub bytes: Vec<u8>,
    /// Offset of each object's `N G obj` within `bytes`.
    pub offsets: BTreeMap<ObjRef, usize>,
}

impl<'d> Update<'d> {
    pub(crate) fn new(doc: &'d Document) -> Self {
        Update {
            doc,
            next: doc.size().max(1),
            objects: BTreeMap::new(),
        }
    }

    pub(crate) fn doc(&self) -> &'d Document {
        self.doc
    }

    /// A fresh object number.
    pub(crate) fn alloc(&mut self) -> ObjRef {
        let r = ObjRef::new(self.next, 0);
        self.next += 1;
        r
    }

    /// Writes (a new version of) object `r`.
    pub(crate) fn put(&mut self, r: ObjRef, object: &Object) {
        self.objects.insert(r, object.to_bytes());
    }

    /// Writes object `r` from ready bytes (the signature dictionary, whose layout matters).
    pub(crate) fn put_raw(&mut self, r: ObjRef, bytes: Vec<u8>) {
        self.objects.insert(r, bytes);
    }

    /// Writes a new stream object, Flate-compressed unless `compress` is false or the data is
    /// too short to gain from it (a Huffman table costs more than it saves).
    pub(crate) fn put_stream(&mut self, r: ObjRef, dict: Dict, data: &[u8], compress: bool) {
        if compress && data.len() >= MIN_DEFLATE {
            return self.put_deflated_stream(r, dict, &filter::deflate(data, FAST));
        }
        self.put_raw_stream(r, dict, data);
    }

    fn put_raw_stream(&mut self, r: ObjRef, mut dict: Dict, data: &[u8]) {
        dict.set("Length", data.len() as i64);
        let mut bytes = Object::Dict(dict).to_bytes();
        bytes.extend_from_slice(b"\nstream\n");
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(b"\nendstream");
        self.objects.insert(r, bytes);
    }

    /// Like [`Update::put_stream`] for data already zlib-compressed.
    pub(crate) fn put_deflated_stream(&mut self, r: ObjRef, mut dict: Dict, deflated: &[u8]) {
        dict.set("Filter", name("FlateDecode"));
        self.put_raw_stream(r, dict, deflated);
    }

    /// Lays out the revision to be appended to a file of `base` bytes.
    pub(crate) fn serialize(mut self, base: u64) -> Result<Revision> {
        let doc = self.doc;
        let mut out = Vec::new();
        // The original must end with an end of line before anything is appended to it.
        let last = doc.source().read_at(base.saturating_sub(1), 1)?;
        if !matches!(last.first(), Some(b'\n') | Some(b'\r')) {
            out.push(b'\n');
        }
        let style = doc.xref_style();
        let xref_stream = (style == XrefStyle::Stream).then(|| self.alloc());
        let mut offsets = BTreeMap::new();
        for (r, body) in &self.objects {
            offsets.insert(*r, out.len());
            out.extend_from_slice(format!("{} {} obj\n", r.num, r.gen).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        }
        let size = doc.size().max(self.next);
        let mut trailer = Dict::new();
        trailer.set("Size", i64::from(size));
        for key in ["Root", "Info", "ID"] {
            if let Some(v) = doc.trailer_value(key) {
                trailer.set(key, v.clone());
            }
        }
        trailer.set("Prev", doc.startxref() as i64);
        let xref_offset = out.len();
        match xref_stream {
            None => {
                out.extend_from_slice(b"xref\n");
                for run in runs(&offsets) {
                    out.extend_from_slice(format!("{} {}\n", run[0].0.num, run.len()).as_bytes());
                    for (r, at) in run {
                        let absolute = base + at as u64;
                        out.extend_from_slice(
                            format!("{absolute:010} {:05} n\r\n", r.gen).as_bytes(),
                        );
                    }
                }
                out.extend_from_slice(b"trailer\n");
                Object::Dict(trailer).write(&mut out);
                out.push(b'\n');
            }
            Some(xref_ref) => {
                offsets.insert(xref_ref, xref_offset);
                let width = byte_width(base + out.len() as u64 + 4096);
                let mut data = Vec::new();
                let mut index = Vec::new();
                for run in runs(&offsets) {
                    index.push(Object::Int(i64::from(run[0].0.num)));
                    index.push(Object::Int(run.len() as i64));
                    for (r, at) in run {
                        data.push(1u8);
                        let absolute = base + at as u64;
                        data.extend_from_slice(&absolute.to_be_bytes()[8 - width..]);
                        data.extend_from_slice(&r.gen.to_be_bytes());
                    }
                }
                let mut dict = trailer;
                dict.set("Type", name("XRef"));
                dict.set("Index", index);
                dict.set(
                    "W",
                    vec![Object::Int(1), Object::Int(width as i64), Object::Int(2)],
                );
                let compressed = filter::deflate(&data, FAST);
                dict.set("Filter", name("FlateDecode"));
                dict.set("Length", compressed.len() as i64);
                out.extend_from_slice(
                    format!("{} {} obj\n", xref_ref.num, xref_ref.gen).as_bytes(),
                );
                Object::Dict(dict).write(&mut out);
                out.extend_from_slice(b"\nstream\n");
                out.extend_from_slice(&compressed);
                out.extend_from_slice(b"\nendstream\nendobj\n");
            }
        }
        out.extend_from_slice(
            format!("startxref\n{}\n%%EOF\n", base + xref_offset as u64).as_bytes(),
        );
        if size > 8_000_000 {
            return Err(Error::Unsupported("more than 8,000,000 objects".to_owned()));
        }
        Ok(Revision {
            bytes: out,
            offsets,
        })
    }
}

/// Runs of consecutive object numbers (one cross-reference subsection each).
fn runs(offsets: &BTreeMap<ObjRef, usize>) -> Vec<Vec<(ObjRef, usize)>> {
    let mut runs: Vec<Vec<(ObjRef, usize)>> = Vec::new();
    for (r, at) in offsets {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|(p, _)| p.num + 1 == r.num) => run.push((*r, *at)),
            _ => runs.push(vec![(*r, *at)]),
        }
    }
    runs
}

/// Bytes needed for offsets up to `max`.
fn byte_width(max: u64) -> usize {
    ((64 - max.leading_zeros() as usize).div_ceil(8)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_group_consecutive_numbers() {
        let mut m = BTreeMap::new();
        for n in [3u32, 4, 5, 9, 11, 12] {
            m.insert(ObjRef::new(n, 0), n as usize);
        }
        let lens: Vec<usize> = runs(&m).iter().map(Vec::len).collect();
        assert_eq!(lens, vec![3, 1, 2]);
        assert_eq!(byte_width(255), 1);
        assert_eq!(byte_width(256), 2);
        assert_eq!(byte_width(70_000_000), 4);
    }
}
