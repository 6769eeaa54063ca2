//! What the revisions after a signed one changed. The signed revision is read on its own (the
//! file cut where its signature's byte range ends) and every object a later revision wrote is
//! compared with its signed version, judged by the part it plays in the signed revision: the
//! catalog, the form, a field, a page, an annotation list. The outcome is nothing, only signing
//! and form filling, or anything else — with the first such change named.
//!
//! Comments (annotations other than signature widgets) count as anything else, even where a
//! certification with DocMDP P=3 permits them: a comment can be drawn over the signed content,
//! and pyHanko judges them the same way.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::document::Document;
use crate::form;
use crate::object::{Dict, ObjRef, Object, Stream};
use crate::verify::Modifications;
use crate::xref::Entry;

/// Fields and widgets are followed through /Parent at most this far.
const MAX_PARENT_DEPTH: usize = 32;
/// Stream data is compared in chunks of this size.
const COMPARE_CHUNK: usize = 64 << 10;

type Found = std::result::Result<Modifications, String>;

/// Classifies what the revisions after the one ending at byte `end` changed; for `Other`, the
/// reason.
pub(crate) fn modifications_after(doc: &Document, end: u64) -> (Modifications, Option<String>) {
    match analyse(doc, end) {
        Ok(level) => (level, None),
        Err(why) => (Modifications::Other, Some(why)),
    }
}

fn analyse(doc: &Document, end: u64) -> Found {
    let offsets = doc.section_offsets();
    let later = offsets.iter().take_while(|&&o| o >= end).count();
    if offsets[later..].iter().any(|&o| o >= end) {
        return Err(
            "a cross-reference section of the signed revision lies after its signature".to_owned(),
        );
    }
    if later == 0 {
        return Ok(Modifications::None);
    }
    let before = Document::from_source(doc.source().prefix(end))
        .map_err(|e| format!("the signed revision cannot be read on its own: {e}"))?;
    if before.section_offsets() != offsets[later..] {
        return Err(
            "the later revisions do not continue the signed revision's cross-references".to_owned(),
        );
    }
    if before.trailer_value("Root").and_then(Object::as_ref)
        != doc.trailer_value("Root").and_then(Object::as_ref)
    {
        return Err("the document catalog was replaced".to_owned());
    }
    let permission = form::docmdp_permission(&before).map_err(|e| e.to_string())?;
    let cx = Cx {
        before: &before,
        after: doc,
        permission,
        roles: OnceCell::new(),
        signature_parts: OnceCell::new(),
    };

    let mut queue = BTreeSet::new();
    let mut structural = HashSet::new();
    for i in 0..later {
        queue.extend(doc.section_objects(i));
        structural.extend(doc.section_stream_objects(i).iter().copied());
    }
    let mut done = HashSet::new();
    let mut level = Modifications::None;
    while let Some(num) = queue.pop_first() {
        if !done.insert(num) {
            continue;
        }
        let expand = |queue: &mut BTreeSet<u32>| {
            queue.extend(before.objects_in_stream(num));
            queue.extend(doc.objects_in_stream(num));
        };
        let old = in_use(before.entry(num));
        let new = in_use(doc.entry(num));
        let found = match (old, new) {
            (None, None) => Ok(Modifications::None),
            (Some(_), None) => Err("it was deleted".to_owned()),
            (Some(gen), Some(_)) if structural.contains(&num) => {
                // Some writers number each cross-reference stream as the one before it.
                match before.resolve(ObjRef::new(num, gen)) {
                    Ok(Object::Stream(s)) if s.dict.is_type("XRef") => Ok(Modifications::None),
                    _ => Err("it was overwritten by a cross-reference stream".to_owned()),
                }
            }
            (None, Some(_)) if structural.contains(&num) => Ok(Modifications::None),
            (None, Some(gen)) => {
                // A new object counts through the existing objects that come to refer to it;
                // but a number the signed revision left free may be referred to already.
                if num < before.size() {
                    Err("it takes a number the signed revision left unused".to_owned())
                } else {
                    if is_object_stream(&doc.resolve(ObjRef::new(num, gen)).unwrap_or(Object::Null))
                    {
                        expand(&mut queue);
                    }
                    Ok(Modifications::None)
                }
            }
            (Some(g0), Some(g1)) if g0 != g1 => {
                Err(format!("its generation went from {g0} to {g1}"))
            }
            (Some(gen), Some(_)) => {
                let r = ObjRef::new(num, gen);
                let old = before.resolve(r).map_err(|e| e.to_string())?;
                let new = doc.resolve(r).map_err(|e| e.to_string())?;
                match (is_object_stream(&old), is_object_stream(&new)) {
                    (true, true) => {
                        // What matters is the objects inside, old and new.
                        expand(&mut queue);
                        Ok(Modifications::None)
                    }
                    (false, false) => cx.changed(r, &old, &new),
                    _ => Err("an object stream was replaced by another kind of object".to_owned()),
                }
            }
        };
        match found {
            Ok(l) => level = level.max(l),
            Err(why) => return Err(format!("object {num}: {why}")),
        }
    }
    if cx.permission == Some(1) && level > Modifications::None {
        return Err("the document is certified with no changes allowed (DocMDP P=1)".to_owned());
    }
    Ok(level)
}

/// The generation of an object in use.
fn in_use(entry: Option<Entry>) -> Option<u16> {
    match entry? {
        Entry::Free => None,
        Entry::InFile { gen, .. } => Some(gen),
        Entry::Compressed { .. } => Some(0),
    }
}

fn is_object_stream(o: &Object) -> bool {
    matches!(o, Object::Stream(s) if s.dict.is_type("ObjStm"))
}

/// The part an existing object plays in the signed revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Catalog,
    Info,
    /// The catalog's XMP /Metadata stream.
    Metadata,
    AcroForm,
    /// The form's /Fields, as an object of its own.
    FieldsArray,
    Page,
    /// A page's /Annots, as an object of its own.
    AnnotsArray,
    /// A form field or its widget.
    Field(FieldRole),
    /// An appearance stream of a field that is not a signed signature field.
    FieldAppearance,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldRole {
    /// A signature field that holds a signature: frozen.
    Signed,
    /// An empty signature field: may be signed.
    Unsigned,
    /// Any other field: may be filled.
    Fillable,
}

/// The roles of the signed revision's objects, found once when first needed.
#[derive(Default)]
struct Roles {
    catalog: Option<ObjRef>,
    info: Option<ObjRef>,
    metadata: Option<ObjRef>,
    acroform: Option<ObjRef>,
    fields_array: Option<ObjRef>,
    fields: HashMap<ObjRef, FieldRole>,
    appearances: HashSet<ObjRef>,
    pages: HashSet<ObjRef>,
    annots_arrays: HashSet<ObjRef>,
}

impl Roles {
    fn find(before: &Document) -> crate::error::Result<Roles> {
        let mut roles = Roles {
            catalog: before.trailer_value("Root").and_then(Object::as_ref),
            info: before.trailer_value("Info").and_then(Object::as_ref),
            ..Roles::default()
        };
        let (_, catalog) = before.catalog()?;
        roles.acroform = catalog.get("AcroForm").and_then(Object::as_ref);
        roles.metadata = catalog.get("Metadata").and_then(Object::as_ref);
        if let Some(form) = form::acroform(before)?.dict() {
            roles.fields_array = form.get("Fields").and_then(Object::as_ref);
        }
        for field in form::fields(before)? {
            let role = match (field.is_signature(), field.dict.get("V")) {
                (true, Some(v)) if !matches!(v, Object::Null) => FieldRole::Signed,
                (true, _) => FieldRole::Unsigned,
                (false, _) => FieldRole::Fillable,
            };
            let mut parts = vec![(field.reference, field.dict.clone())];
            if let Some(kids) = field.dict.get("Kids") {
                for kid in before
                    .get(kids)?
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    if let (Some(r), Some(d)) = (kid.as_ref(), before.get_dict(Some(kid))?) {
                        parts.push((r, d));
                    }
                }
            }
            for (r, dict) in parts {
                roles.fields.insert(r, role);
                if role != FieldRole::Signed {
                    roles.add_appearances(before, &dict)?;
                }
            }
        }
        for (r, page) in before.page_dicts()? {
            roles.pages.insert(r);
            if let Some(Object::Ref(a)) = page.get("Annots") {
                roles.annots_arrays.insert(*a);
            }
        }
        Ok(roles)
    }

    /// The appearance streams of a widget: /AP /N, /R and /D, each a stream or a dictionary
    /// of states.
    fn add_appearances(&mut self, before: &Document, widget: &Dict) -> crate::error::Result<()> {
        let Some(ap) = before.get_dict(widget.get("AP"))? else {
            return Ok(());
        };
        for (_, value) in &ap.0 {
            match value {
                Object::Ref(r) => {
                    self.appearances.insert(*r);
                    if let Object::Dict(states) = before.resolve(*r)? {
                        self.appearances
                            .extend(states.0.iter().filter_map(|(_, s)| s.as_ref()));
                    }
                }
                Object::Dict(states) => {
                    self.appearances
                        .extend(states.0.iter().filter_map(|(_, s)| s.as_ref()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn of(&self, r: ObjRef) -> Role {
        if Some(r) == self.catalog {
            Role::Catalog
        } else if Some(r) == self.info {
            Role::Info
        } else if Some(r) == self.metadata {
            Role::Metadata
        } else if Some(r) == self.acroform {
            Role::AcroForm
        } else if Some(r) == self.fields_array {
            Role::FieldsArray
        } else if let Some(field) = self.fields.get(&r) {
            Role::Field(*field)
        } else if self.pages.contains(&r) {
            Role::Page
        } else if self.annots_arrays.contains(&r) {
            Role::AnnotsArray
        } else if self.appearances.contains(&r) {
            Role::FieldAppearance
        } else {
            Role::Unknown
        }
    }
}

/// How a changed dictionary entry is judged.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Document-level data that changes nothing shown (/DSS, /Extensions, /Metadata).
    Meta,
    /// Part of signing or filling in a form.
    Form,
    /// A signature field's value: set once, never replaced.
    SetOnce,
    /// An array that may only grow, by signature fields.
    AppendSignatureFields,
    /// An array that may only grow, by signature widgets.
    AppendAnnotations,
    /// The catalog's /AcroForm, judged as the form.
    AcroForm,
}

const CATALOG: &[(&str, Rule)] = &[
    ("AcroForm", Rule::AcroForm),
    ("DSS", Rule::Meta),
    ("Extensions", Rule::Meta),
    ("Metadata", Rule::Meta),
];
const ACROFORM: &[(&str, Rule)] = &[
    ("Fields", Rule::AppendSignatureFields),
    ("SigFlags", Rule::Form),
    ("DR", Rule::Form),
    ("DA", Rule::Form),
    ("NeedAppearances", Rule::Form),
];
const PAGE: &[(&str, Rule)] = &[("Annots", Rule::AppendAnnotations)];
const UNSIGNED_SIGNATURE: &[(&str, Rule)] = &[
    ("V", Rule::SetOnce),
    ("AP", Rule::Form),
    ("AS", Rule::Form),
    // Signers lock the field they sign.
    ("F", Rule::Form),
];
const FILLABLE: &[(&str, Rule)] = &[("V", Rule::Form), ("AP", Rule::Form), ("AS", Rule::Form)];

/// The signed revision, the document now, and what the signed revision permits.
struct Cx<'a> {
    before: &'a Document,
    after: &'a Document,
    permission: Option<i64>,
    roles: OnceCell<std::result::Result<Roles, String>>,
    /// The signature fields of the document now and their widgets.
    signature_parts: OnceCell<std::result::Result<HashSet<ObjRef>, String>>,
}

impl Cx<'_> {
    /// Judges existing object `r`, which went from `old` to `new`.
    fn changed(&self, r: ObjRef, old: &Object, new: &Object) -> Found {
        if self.same_object(old, new)? {
            return Ok(Modifications::None);
        }
        let roles = self
            .roles
            .get_or_init(|| Roles::find(self.before).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| format!("the signed revision's structure cannot be read: {e}"))?;
        let role = roles.of(r);
        match (role, old, new) {
            // Document metadata changes nothing shown.
            (Role::Info | Role::Metadata, _, _) => Ok(Modifications::None),
            (Role::FieldAppearance, Object::Stream(_), Object::Stream(_)) => {
                Ok(Modifications::SignaturesAndFormFields)
            }
            (Role::FieldsArray, Object::Array(o), Object::Array(n)) => {
                self.appended(o, n, Rule::AppendSignatureFields)
            }
            (Role::AnnotsArray, Object::Array(o), Object::Array(n)) => {
                self.appended(o, n, Rule::AppendAnnotations)
            }
            (_, Object::Dict(o), Object::Dict(n)) => {
                let rules = match role {
                    Role::Catalog => CATALOG,
                    Role::AcroForm => ACROFORM,
                    Role::Page => PAGE,
                    Role::Field(FieldRole::Unsigned) => UNSIGNED_SIGNATURE,
                    Role::Field(FieldRole::Fillable) => FILLABLE,
                    Role::Field(FieldRole::Signed) => {
                        return Err("a signed signature field was changed".to_owned())
                    }
                    _ => return Err(format!("{} was changed", describe(o))),
                };
                self.dict(o, n, rules)
            }
            _ => Err(format!("{} was changed", describe_object(old))),
        }
    }

    /// Judges the entries that differ between two versions of a dictionary by `rules`.
    fn dict(&self, old: &Dict, new: &Dict, rules: &[(&str, Rule)]) -> Found {
        let (o, n) = (keyed(old)?, keyed(new)?);
        let keys: BTreeSet<&[u8]> = o.keys().chain(n.keys()).copied().collect();
        let mut level = Modifications::None;
        for key in keys {
            let (a, b) = (o.get(key).copied(), n.get(key).copied());
            if match (a, b) {
                (Some(a), Some(b)) => same(a, b),
                _ => false,
            } {
                continue;
            }
            let shown = String::from_utf8_lossy(key);
            let rule = rules
                .iter()
                .find(|(k, _)| k.as_bytes() == key)
                .map(|(_, rule)| *rule)
                .ok_or_else(|| format!("/{shown} changed"))?;
            let found = self
                .entry(rule, a, b)
                .map_err(|e| format!("/{shown}: {e}"))?;
            level = level.max(found);
        }
        Ok(level)
    }

    fn entry(&self, rule: Rule, old: Option<&Object>, new: Option<&Object>) -> Found {
        match rule {
            Rule::Meta => Ok(Modifications::None),
            Rule::Form => Ok(Modifications::SignaturesAndFormFields),
            Rule::SetOnce => match old {
                None | Some(Object::Null) => Ok(Modifications::SignaturesAndFormFields),
                Some(_) => Err("a signature field's value was replaced".to_owned()),
            },
            Rule::AppendSignatureFields | Rule::AppendAnnotations => {
                let old = self.resolved(self.before, old)?;
                let new = self.resolved(self.after, new)?;
                match (old.as_ref(), new.as_ref()) {
                    (None | Some(Object::Array(_)), Some(Object::Array(n))) => {
                        let o = match old {
                            Some(Object::Array(o)) => o,
                            _ => Vec::new(),
                        };
                        self.appended(&o, n, rule)
                    }
                    _ => Err("is not an array any more".to_owned()),
                }
            }
            Rule::AcroForm => {
                let old = self.resolved(self.before, old)?;
                let new = self.resolved(self.after, new)?;
                match (old, new) {
                    (None, Some(Object::Dict(n))) => self.dict(&Dict::new(), &n, ACROFORM),
                    (Some(Object::Dict(o)), Some(Object::Dict(n))) => self.dict(&o, &n, ACROFORM),
                    _ => Err("the form was removed or replaced".to_owned()),
                }
            }
        }
    }

    /// `value` in `doc`, with a reference followed.
    fn resolved(&self, doc: &Document, value: Option<&Object>) -> Result<Option<Object>, String> {
        match value {
            None | Some(Object::Null) => Ok(None),
            Some(v) => doc.get(v).map(Some).map_err(|e| e.to_string()),
        }
    }

    /// Judges an array that may only grow, by what was appended.
    fn appended(&self, old: &[Object], new: &[Object], rule: Rule) -> Found {
        if new.len() < old.len() || !old.iter().zip(new).all(|(a, b)| same(a, b)) {
            return Err("an array was changed other than by appending to it".to_owned());
        }
        let mut level = Modifications::None;
        for item in &new[old.len()..] {
            let dict = self
                .after
                .get_dict(Some(item))
                .map_err(|e| e.to_string())?
                .ok_or("a non-dictionary was appended")?;
            let signature = match item.as_ref() {
                Some(r) => self.is_signature_part(r, &dict)?,
                None => false,
            };
            let found = match rule {
                Rule::AppendSignatureFields if signature => Modifications::SignaturesAndFormFields,
                Rule::AppendSignatureFields => {
                    return Err("a form field other than a signature field was added".to_owned())
                }
                _ if signature && dict.name("Subtype").is_some_and(|s| s.is("Widget")) => {
                    Modifications::SignaturesAndFormFields
                }
                _ => return Err(format!("{} was added to a page", describe(&dict))),
            };
            level = level.max(found);
        }
        Ok(level)
    }

    /// Whether a (new) field or widget `r` belongs to a signature field: /FT /Sig on itself or
    /// a /Parent, or it is a signature field's widget kid in the form as it is now (some
    /// writers leave out the widget's /Parent).
    fn is_signature_part(&self, r: ObjRef, dict: &Dict) -> Result<bool, String> {
        let mut current = dict.clone();
        for _ in 0..MAX_PARENT_DEPTH {
            if let Some(ft) = current.name("FT") {
                if ft.is("Sig") {
                    return Ok(true);
                }
                break;
            }
            match self
                .after
                .get_dict(current.get("Parent"))
                .map_err(|e| e.to_string())?
            {
                Some(parent) => current = parent,
                None => break,
            }
        }
        let parts = self
            .signature_parts
            .get_or_init(|| signature_parts(self.after).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| format!("the form cannot be read: {e}"))?;
        Ok(parts.contains(&r))
    }

    /// Whether two versions of an object are the same: equal values, and for streams equal
    /// dictionaries (but for /Length) and equal data.
    fn same_object(&self, old: &Object, new: &Object) -> Result<bool, String> {
        let (Object::Stream(o), Object::Stream(n)) = (old, new) else {
            return Ok(same(old, new));
        };
        let without_length = |d: &Dict| {
            let mut d = d.clone();
            d.remove("Length");
            d
        };
        if !dict_same(&without_length(&o.dict), &without_length(&n.dict)) {
            return Ok(false);
        }
        let (lo, ln) = (length(self.before, o)?, length(self.after, n)?);
        if lo != ln {
            return Ok(false);
        }
        if o.data_offset == n.data_offset {
            return Ok(true);
        }
        let source = self.after.source();
        let mut done = 0u64;
        while done < lo {
            let want = (lo - done).min(COMPARE_CHUNK as u64) as usize;
            let a = source
                .read_at(o.data_offset + done, want)
                .map_err(|e| e.to_string())?;
            let b = source
                .read_at(n.data_offset + done, want)
                .map_err(|e| e.to_string())?;
            if a.len() != want || a != b {
                return Ok(false);
            }
            done += want as u64;
        }
        Ok(true)
    }
}

/// The signature fields of `doc` and their widget kids.
fn signature_parts(doc: &Document) -> crate::error::Result<HashSet<ObjRef>> {
    let mut parts = HashSet::new();
    for field in form::fields(doc)? {
        if !field.is_signature() {
            continue;
        }
        parts.insert(field.reference);
        if let Some(kids) = field.dict.get("Kids") {
            let kids = doc.get(kids)?;
            parts.extend(
                kids.as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(Object::as_ref),
            );
        }
    }
    Ok(parts)
}

fn length(doc: &Document, stream: &Stream) -> Result<u64, String> {
    stream
        .dict
        .get("Length")
        .map(|l| doc.get(l))
        .transpose()
        .map_err(|e| e.to_string())?
        .and_then(|l| l.as_int())
        .and_then(|l| u64::try_from(l).ok())
        .ok_or_else(|| "a stream has no valid /Length".to_owned())
}

fn is_annotation(d: &Dict) -> bool {
    d.name("Subtype").is_some() && d.get("Rect").is_some()
}

fn describe(d: &Dict) -> String {
    match (d.name("Type"), d.name("Subtype")) {
        (_, Some(s)) if is_annotation(d) => format!("an annotation ({s})"),
        (Some(t), _) => format!("a {t} dictionary"),
        _ => "a dictionary".to_owned(),
    }
}

fn describe_object(o: &Object) -> String {
    match o {
        Object::Dict(d) => describe(d),
        Object::Stream(s) => match s.dict.name("Subtype").or(s.dict.name("Type")) {
            Some(t) => format!("a {t} stream"),
            None => "a content stream".to_owned(),
        },
        Object::Array(_) => "an array".to_owned(),
        _ => "a value".to_owned(),
    }
}

/// A dictionary's entries by the raw bytes of their keys; a key written twice makes the
/// meaning reader-dependent, so it is refused.
fn keyed(d: &Dict) -> Result<BTreeMap<&[u8], &Object>, String> {
    let mut map = BTreeMap::new();
    for (k, v) in &d.0 {
        if map.insert(k.as_bytes(), v).is_some() {
            return Err(format!(
                "a dictionary has the key /{} twice",
                String::from_utf8_lossy(k.as_bytes())
            ));
        }
    }
    Ok(map)
}

/// Structural equality of values (key order does not matter; numbers compare by value).
fn same(a: &Object, b: &Object) -> bool {
    match (a, b) {
        (Object::Dict(x), Object::Dict(y)) => dict_same(x, y),
        (Object::Stream(x), Object::Stream(y)) => {
            dict_same(&x.dict, &y.dict) && x.data_offset == y.data_offset
        }
        (Object::Array(x), Object::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Object::Int(x), Object::Int(y)) => x == y,
        (Object::Real(_) | Object::Int(_), Object::Real(_) | Object::Int(_)) => {
            a.as_number() == b.as_number()
        }
        _ => a == b,
    }
}

fn dict_same(x: &Dict, y: &Dict) -> bool {
    match (keyed(x), keyed(y)) {
        (Ok(x), Ok(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}
