//! A PDF opened for signing or verification: lazy object resolution through the
//! cross-reference data, the catalog, the page tree and the form.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::object::{Dict, ObjRef, Object, Stream};
use crate::parse::Parser;
use crate::source::{convert, Source};
use crate::xref::{read_stream_data, Entry, Xref, XrefStyle};

/// Largest decompressed object stream.
const MAX_OBJECT_STREAM: usize = 32 << 20;
/// Page trees deeper than this are refused.
const MAX_TREE_DEPTH: usize = 64;
/// How many decoded object streams are kept.
const OBJSTM_CACHE: usize = 4;

/// Page attributes a page inherits from its ancestors.
const INHERITED: [&str; 4] = ["Resources", "MediaBox", "CropBox", "Rotate"];
type Inherited = HashMap<&'static str, Object>;
type PageVisitor<'a> = dyn FnMut(ObjRef, Dict, u32, &Inherited) -> Result<bool> + 'a;

struct PageWalk<'v, 'a> {
    visited: HashSet<ObjRef>,
    number: u32,
    visit: &'v mut PageVisitor<'a>,
}

/// A page as the signature needs it.
#[derive(Debug, Clone)]
pub struct Page {
    pub reference: ObjRef,
    pub dict: Dict,
    /// 1-based.
    pub number: u32,
    /// The crop box (the visible area), in default user space: [llx, lly, urx, ury].
    pub crop_box: [f64; 4],
    /// Clockwise rotation for display: 0, 90, 180 or 270.
    pub rotate: u32,
}

/// A decoded object stream: its data and the offsets of its objects.
struct ObjectStream {
    data: Vec<u8>,
    /// (object number, offset into `data`)
    offsets: Vec<(u32, usize)>,
}

/// An open PDF, read lazily.
pub struct Document {
    source: Source,
    xref: Rc<Xref>,
    /// Which section reading starts from: 0 for the whole document, more to read it as of an
    /// earlier revision.
    first_section: usize,
    header_version: (u8, u8),
    objstm: RefCell<Vec<(u32, Rc<ObjectStream>)>>,
    /// Object streams being decoded (one whose /Length lives in itself must not recurse).
    loading: RefCell<HashSet<u32>>,
    cache: RefCell<HashMap<ObjRef, Object>>,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("path", &self.source.path())
            .field("sections", &self.xref.sections.len())
            .finish_non_exhaustive()
    }
}

impl Document {
    pub fn open(path: &Path) -> Result<Self> {
        Self::from_source(Source::open(path)?)
    }

    pub fn from_bytes(bytes: impl Into<std::sync::Arc<[u8]>>) -> Result<Self> {
        Self::from_source(Source::from_bytes(bytes))
    }

    pub fn from_source(source: Source) -> Result<Self> {
        let head = source.read_at(0, 1024)?;
        let at = head
            .windows(5)
            .position(|w| w == b"%PDF-")
            .ok_or_else(|| Error::NotPdf("no %PDF- header".to_owned()))?;
        let version = parse_version(&head[at + 5..])
            .ok_or_else(|| Error::NotPdf("unreadable PDF version in the header".to_owned()))?;
        let xref = Rc::new(Xref::load(&source)?);
        let doc = Document {
            source,
            xref,
            first_section: 0,
            header_version: version,
            objstm: RefCell::new(Vec::new()),
            loading: RefCell::new(HashSet::new()),
            cache: RefCell::new(HashMap::new()),
        };
        if doc.trailer_value("Encrypt").is_some() {
            return Err(Error::Encrypted);
        }
        // The catalog must be reachable, or nothing else is.
        doc.catalog()?;
        Ok(doc)
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// How the newest revision's cross-reference section is written.
    pub fn xref_style(&self) -> XrefStyle {
        self.xref.sections[self.first_section].style
    }

    /// Offset of the newest cross-reference section (the next revision's /Prev).
    pub fn startxref(&self) -> u64 {
        self.xref.sections[self.first_section].offset
    }

    /// Offsets of every cross-reference section, newest first.
    pub fn section_offsets(&self) -> Vec<u64> {
        self.xref.sections[self.first_section..]
            .iter()
            .map(|s| s.offset)
            .collect()
    }

    /// Object numbers written in section `index` (0 = newest).
    pub(crate) fn section_objects(&self, index: usize) -> Vec<u32> {
        self.xref.sections[self.first_section + index]
            .entries
            .keys()
            .copied()
            .collect()
    }

    /// The cross-reference stream objects of section `index` (0 = newest).
    pub(crate) fn section_stream_objects(&self, index: usize) -> &[u32] {
        &self.xref.sections[self.first_section + index].stream_objects
    }

    /// Object `num`'s cross-reference entry, if any section has one.
    pub(crate) fn entry(&self, num: u32) -> Option<Entry> {
        self.xref.lookup_from(self.first_section, num)
    }

    /// The objects this revision keeps in object stream `stream`.
    pub(crate) fn objects_in_stream(&self, stream: u32) -> Vec<u32> {
        let mut seen = HashSet::new();
        let mut objects = Vec::new();
        for section in &self.xref.sections[self.first_section..] {
            for (&num, entry) in &section.entries {
                if seen.insert(num)
                    && matches!(entry, Entry::Compressed { stream: s, .. } if *s == stream)
                {
                    objects.push(num);
                }
            }
        }
        objects
    }

    /// A trailer entry (from the newest trailer that has it).
    pub fn trailer_value(&self, key: &str) -> Option<&Object> {
        self.xref.trailer_value(self.first_section, key)
    }

    /// The next free object number (the trailer's /Size).
    pub fn size(&self) -> u32 {
        let declared = self
            .trailer_value("Size")
            .and_then(Object::as_int)
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(0);
        let highest = self
            .xref
            .sections
            .iter()
            .filter_map(|s| s.entries.keys().next_back())
            .max()
            .map(|n| n + 1)
            .unwrap_or(0);
        declared.max(highest)
    }

    /// The PDF version: the header's, or the catalog's /Version if that is later.
    pub fn version(&self) -> (u8, u8) {
        let catalog = self
            .catalog()
            .ok()
            .and_then(|(_, c)| c.name("Version").and_then(|n| parse_version(n.as_bytes())));
        match catalog {
            Some(v) if v > self.header_version => v,
            _ => self.header_version,
        }
    }

    /// Resolves an indirect object. A free or missing object is `null`, as PDF says.
    pub fn resolve(&self, r: ObjRef) -> Result<Object> {
        if let Some(o) = self.cache.borrow().get(&r) {
            return Ok(o.clone());
        }
        let object = match self.xref.lookup_from(self.first_section, r.num) {
            None | Some(Entry::Free) => Object::Null,
            Some(Entry::InFile { offset, gen }) => {
                if gen != r.gen {
                    Object::Null
                } else {
                    self.load_in_file(r, offset)?
                }
            }
            Some(Entry::Compressed { stream, index }) => {
                if r.gen != 0 {
                    Object::Null
                } else {
                    self.load_compressed(r.num, stream, index)?
                }
            }
        };
        let mut cache = self.cache.borrow_mut();
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(r, object.clone());
        Ok(object)
    }

    fn load_in_file(&self, r: ObjRef, offset: u64) -> Result<Object> {
        let what = format!("object {} {}", r.num, r.gen);
        let (found, object) = self
            .source
            .parse_at(offset, &what, |p| p.parse_indirect())
            .map_err(|e| match e {
                Error::Syntax { .. } | Error::Damaged(_) => Error::Damaged(format!(
                    "the cross-reference table points {what} to byte {offset}, where there is no such object"
                )),
                other => other,
            })?;
        if found != r {
            return Err(Error::Damaged(format!(
                "the cross-reference table points {what} to byte {offset}, where object {} {} is",
                found.num, found.gen
            )));
        }
        Ok(object)
    }

    fn load_compressed(&self, num: u32, stream: u32, index: u32) -> Result<Object> {
        let objstm = self.object_stream(stream)?;
        let start = objstm
            .offsets
            .get(index as usize)
            .filter(|(n, _)| *n == num)
            .or_else(|| objstm.offsets.iter().find(|(n, _)| *n == num))
            .map(|(_, o)| *o)
            .ok_or_else(|| {
                Error::Damaged(format!("object {num} is not in object stream {stream}"))
            })?;
        let end = objstm
            .offsets
            .iter()
            .map(|(_, o)| *o)
            .filter(|&o| o > start)
            .min()
            .unwrap_or(objstm.data.len());
        let mut p = Parser::new(&objstm.data[start..end.max(start)], 0, true);
        p.parse_object().map_err(|e| {
            Error::Damaged(format!(
                "object {num} in object stream {stream} is unreadable: {}",
                convert(e)
            ))
        })
    }

    fn object_stream(&self, num: u32) -> Result<Rc<ObjectStream>> {
        if let Some((_, s)) = self.objstm.borrow().iter().find(|(n, _)| *n == num) {
            return Ok(s.clone());
        }
        // An object stream is a plain object in the file, never inside another object stream.
        if !matches!(
            self.xref.lookup_from(self.first_section, num),
            Some(Entry::InFile { gen: 0, .. })
        ) {
            return Err(Error::Damaged(format!(
                "object stream {num} is not an uncompressed object of generation 0"
            )));
        }
        if !self.loading.borrow_mut().insert(num) {
            return Err(Error::Damaged(format!(
                "object stream {num} needs itself to be read (its /Length is inside it)"
            )));
        }
        let decoded = self.decode_object_stream(num);
        self.loading.borrow_mut().remove(&num);
        let decoded = Rc::new(decoded?);
        let mut cache = self.objstm.borrow_mut();
        if cache.len() >= OBJSTM_CACHE {
            cache.remove(0);
        }
        cache.push((num, decoded.clone()));
        Ok(decoded)
    }

    fn decode_object_stream(&self, num: u32) -> Result<ObjectStream> {
        let bad = |what: &str| Error::Damaged(format!("object stream {num} has {what}"));
        let Object::Stream(stream) = self.resolve(ObjRef::new(num, 0))? else {
            return Err(Error::Damaged(format!(
                "object stream {num} is not a stream"
            )));
        };
        let data = self.stream_data(&stream, MAX_OBJECT_STREAM)?;
        let n = usize::try_from(stream.dict.int("N").unwrap_or(0)).map_err(|_| bad("a bad /N"))?;
        let first = usize::try_from(stream.dict.int("First").unwrap_or(0))
            .map_err(|_| bad("a bad /First"))?;
        // Each header entry takes at least four bytes ("1 0 ").
        if first > data.len() || n > first / 2 + 1 {
            return Err(bad("a bad /First or /N"));
        }
        let mut p = Parser::new(&data[..first], 0, true);
        let mut offsets = Vec::with_capacity(n);
        for _ in 0..n {
            let (Ok(obj), Ok(off)) = (p.read_uint(), p.read_uint()) else {
                return Err(bad("a bad header"));
            };
            let obj = u32::try_from(obj).map_err(|_| bad("a bad object number"))?;
            let at = usize::try_from(off)
                .ok()
                .and_then(|off| first.checked_add(off))
                .filter(|&at| at <= data.len())
                .ok_or_else(|| bad("a bad offset"))?;
            offsets.push((obj, at));
        }
        Ok(ObjectStream { data, offsets })
    }

    /// A stream's decoded data (structural streams only; at most `max` bytes).
    pub(crate) fn stream_data(&self, stream: &Stream, max: usize) -> Result<Vec<u8>> {
        let length = match stream.dict.get("Length") {
            Some(Object::Int(l)) => *l,
            Some(Object::Ref(r)) => self
                .resolve(*r)?
                .as_int()
                .ok_or_else(|| Error::Damaged("a stream's /Length is not a number".to_owned()))?,
            _ => return Err(Error::Damaged("a stream has no /Length".to_owned())),
        };
        let length = u64::try_from(length)
            .map_err(|_| Error::Damaged(format!("a stream has a negative /Length {length}")))?;
        read_stream_data(&self.source, stream, length, max)
    }

    /// `object`, or what it refers to.
    pub fn get(&self, object: &Object) -> Result<Object> {
        let mut current = object.clone();
        // A reference to a reference is legal but odd; a chain of them must end.
        for _ in 0..16 {
            match current {
                Object::Ref(r) => current = self.resolve(r)?,
                other => return Ok(other),
            }
        }
        Err(Error::Damaged(
            "a chain of references does not end".to_owned(),
        ))
    }

    /// The dictionary `object` is or refers to.
    pub fn get_dict(&self, object: Option<&Object>) -> Result<Option<Dict>> {
        match object {
            None => Ok(None),
            Some(o) => Ok(match self.get(o)? {
                Object::Dict(d) => Some(d),
                Object::Stream(s) => Some(s.dict),
                _ => None,
            }),
        }
    }

    /// The catalog (document root) and its reference.
    pub fn catalog(&self) -> Result<(ObjRef, Dict)> {
        let root = self
            .trailer_value("Root")
            .and_then(Object::as_ref)
            .ok_or_else(|| Error::Damaged("the trailer has no /Root".to_owned()))?;
        match self.resolve(root)? {
            Object::Dict(d) => Ok((root, d)),
            _ => Err(Error::Damaged("the document catalog is missing".to_owned())),
        }
    }

    /// The number of pages (from the page tree root).
    pub fn page_count(&self) -> Result<u32> {
        let (_, catalog) = self.catalog()?;
        let pages = self
            .get_dict(catalog.get("Pages"))?
            .ok_or_else(|| Error::Damaged("the catalog has no page tree".to_owned()))?;
        pages
            .int("Count")
            .and_then(|c| u32::try_from(c).ok())
            .ok_or_else(|| Error::Damaged("the page tree has no /Count".to_owned()))
    }

    /// Page `number` (1-based), walking down the page tree by the /Count of each subtree, with
    /// the attributes it inherits.
    pub fn page(&self, number: u32) -> Result<Page> {
        let pages = self.page_count()?;
        if number == 0 || number > pages {
            return Err(Error::NoSuchPage {
                requested: number,
                pages,
            });
        }
        let (_, catalog) = self.catalog()?;
        let mut node_ref = catalog
            .get("Pages")
            .and_then(Object::as_ref)
            .ok_or_else(|| Error::Damaged("the catalog's /Pages is not a reference".to_owned()))?;
        let mut remaining = number;
        let mut inherited = Inherited::new();
        let mut visited = HashSet::new();
        for _ in 0..MAX_TREE_DEPTH {
            if !visited.insert(node_ref) {
                return Err(Error::Damaged("the page tree has a cycle".to_owned()));
            }
            let node = match self.resolve(node_ref)? {
                Object::Dict(d) => d,
                _ => {
                    return Err(Error::Damaged(format!(
                        "page tree node {node_ref} is not a dictionary"
                    )))
                }
            };
            for key in INHERITED {
                if let Some(v) = node.get(key) {
                    inherited.insert(key, v.clone());
                }
            }
            if !node.is_type("Pages") && node.get("Kids").is_none() {
                if remaining == 1 {
                    return self.make_page(node_ref, node, number, &inherited);
                }
                return Err(Error::Damaged(
                    "the page tree's /Count does not match its pages".to_owned(),
                ));
            }
            let kids = match node.get("Kids") {
                Some(k) => self.get(k)?,
                None => return Err(Error::Damaged("a page tree node has no /Kids".to_owned())),
            };
            let kids = kids
                .as_array()
                .ok_or_else(|| Error::Damaged("/Kids is not an array".to_owned()))?;
            let mut next = None;
            for kid in kids {
                let kid_ref = kid.as_ref().ok_or_else(|| {
                    Error::Damaged("a page tree kid is not a reference".to_owned())
                })?;
                let kid_dict = self
                    .get_dict(Some(kid))?
                    .ok_or_else(|| Error::Damaged(format!("page tree kid {kid_ref} is missing")))?;
                let count = if kid_dict.is_type("Pages") || kid_dict.get("Kids").is_some() {
                    kid_dict
                        .int("Count")
                        .and_then(|c| u32::try_from(c).ok())
                        .ok_or_else(|| {
                            Error::Damaged("a page tree node has no /Count".to_owned())
                        })?
                } else {
                    1
                };
                if remaining <= count {
                    next = Some(kid_ref);
                    break;
                }
                remaining -= count;
            }
            node_ref = next.ok_or_else(|| {
                Error::Damaged("the page tree's /Count does not match its pages".to_owned())
            })?;
        }
        Err(Error::Damaged("the page tree is too deep".to_owned()))
    }

    /// The page whose object is `r`, if it is one (one walk of the page tree).
    pub fn find_page(&self, r: ObjRef) -> Result<Option<Page>> {
        let mut found = None;
        self.walk_pages(&mut |reference, dict, number, inherited| {
            if reference == r {
                found = Some(self.make_page(reference, dict, number, inherited)?);
                return Ok(true);
            }
            Ok(false)
        })?;
        Ok(found)
    }

    /// Every page's reference and dictionary, in order.
    pub(crate) fn page_dicts(&self) -> Result<Vec<(ObjRef, Dict)>> {
        let mut pages = Vec::new();
        self.walk_pages(&mut |reference, dict, _, _| {
            pages.push((reference, dict));
            Ok(false)
        })?;
        Ok(pages)
    }

    /// Walks the page tree in order, calling `visit` for each page (reference, dictionary,
    /// 1-based number, inherited attributes) until it returns `true`.
    fn walk_pages(&self, visit: &mut PageVisitor<'_>) -> Result<()> {
        let (_, catalog) = self.catalog()?;
        let root = catalog
            .get("Pages")
            .and_then(Object::as_ref)
            .ok_or_else(|| Error::Damaged("the catalog's /Pages is not a reference".to_owned()))?;
        let mut walk = PageWalk {
            visited: HashSet::new(),
            number: 0,
            visit,
        };
        self.walk_node(root, &HashMap::new(), 0, &mut walk)?;
        Ok(())
    }

    fn walk_node(
        &self,
        r: ObjRef,
        inherited: &Inherited,
        depth: usize,
        walk: &mut PageWalk<'_, '_>,
    ) -> Result<bool> {
        if depth > MAX_TREE_DEPTH {
            return Err(Error::Damaged("the page tree is too deep".to_owned()));
        }
        if !walk.visited.insert(r) {
            return Err(Error::Damaged("the page tree has a cycle".to_owned()));
        }
        let Object::Dict(node) = self.resolve(r)? else {
            return Err(Error::Damaged(format!(
                "page tree node {r} is not a dictionary"
            )));
        };
        let mut inherited = inherited.clone();
        for key in INHERITED {
            if let Some(v) = node.get(key) {
                inherited.insert(key, v.clone());
            }
        }
        if !node.is_type("Pages") && node.get("Kids").is_none() {
            walk.number += 1;
            return (walk.visit)(r, node, walk.number, &inherited);
        }
        let kids = match node.get("Kids") {
            Some(k) => self.get(k)?,
            None => return Err(Error::Damaged("a page tree node has no /Kids".to_owned())),
        };
        for kid in kids
            .as_array()
            .ok_or_else(|| Error::Damaged("/Kids is not an array".to_owned()))?
        {
            let kid = kid
                .as_ref()
                .ok_or_else(|| Error::Damaged("a page tree kid is not a reference".to_owned()))?;
            if self.walk_node(kid, &inherited, depth + 1, walk)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn make_page(
        &self,
        reference: ObjRef,
        dict: Dict,
        number: u32,
        inherited: &Inherited,
    ) -> Result<Page> {
        let rect = |key: &str| -> Result<Option<[f64; 4]>> {
            let Some(v) = inherited.get(key) else {
                return Ok(None);
            };
            let v = self.get(v)?;
            let a = v.as_array().filter(|a| a.len() == 4).ok_or_else(|| {
                Error::Damaged(format!("page {number}'s /{key} is not a rectangle"))
            })?;
            let mut r = [0.0; 4];
            for (i, item) in a.iter().enumerate() {
                r[i] = self.get(item)?.as_number().ok_or_else(|| {
                    Error::Damaged(format!("page {number}'s /{key} is not numeric"))
                })?;
            }
            // Normalize: lower-left, upper-right.
            Ok(Some([
                r[0].min(r[2]),
                r[1].min(r[3]),
                r[0].max(r[2]),
                r[1].max(r[3]),
            ]))
        };
        let media = rect("MediaBox")?.unwrap_or([0.0, 0.0, 612.0, 792.0]);
        let crop = match rect("CropBox")? {
            // The crop box is clipped to the media box.
            Some(c) => [
                c[0].max(media[0]),
                c[1].max(media[1]),
                c[2].min(media[2]),
                c[3].min(media[3]),
            ],
            None => media,
        };
        let rotate = match inherited.get("Rotate") {
            Some(r) => self.get(r)?.as_int().unwrap_or(0),
            None => 0,
        };
        Ok(Page {
            reference,
            dict,
            number,
            crop_box: crop,
            rotate: rotate.rem_euclid(360) as u32 / 90 * 90,
        })
    }
}

fn parse_version(bytes: &[u8]) -> Option<(u8, u8)> {
    let major = *bytes.first()?;
    if bytes.get(1) != Some(&b'.') {
        return None;
    }
    let minor = *bytes.get(2)?;
    if !major.is_ascii_digit() || !minor.is_ascii_digit() {
        return None;
    }
    Some((major - b'0', minor - b'0'))
}
