//! The interactive form as signing and verification need it: where the AcroForm lives, the
//! terminal fields with their fully qualified names, and the document's certification (DocMDP).

use std::collections::HashSet;

use crate::document::Document;
use crate::error::{Error, Result};
use crate::object::{Dict, ObjRef, Object};

/// Fields beyond this are not walked (a form this large is an attack on the reader).
const MAX_FIELDS: usize = 100_000;
const MAX_FIELD_DEPTH: usize = 32;

/// Where the AcroForm dictionary is, so an update can rewrite the right object.
#[derive(Debug, Clone)]
pub(crate) enum AcroFormAt {
    /// The catalog has none.
    Missing,
    /// Directly inside the catalog.
    InCatalog(Dict),
    /// Its own object.
    Object(ObjRef, Dict),
}

impl AcroFormAt {
    pub(crate) fn dict(&self) -> Option<&Dict> {
        match self {
            AcroFormAt::Missing => None,
            AcroFormAt::InCatalog(d) | AcroFormAt::Object(_, d) => Some(d),
        }
    }
}

pub(crate) fn acroform(doc: &Document) -> Result<AcroFormAt> {
    let (_, catalog) = doc.catalog()?;
    Ok(match catalog.get("AcroForm") {
        None | Some(Object::Null) => AcroFormAt::Missing,
        Some(Object::Ref(r)) => match doc.resolve(*r)? {
            Object::Dict(d) => AcroFormAt::Object(*r, d),
            Object::Null => AcroFormAt::Missing,
            _ => {
                return Err(Error::Damaged(
                    "the /AcroForm is not a dictionary".to_owned(),
                ))
            }
        },
        Some(Object::Dict(d)) => AcroFormAt::InCatalog(d.clone()),
        Some(_) => {
            return Err(Error::Damaged(
                "the /AcroForm is not a dictionary".to_owned(),
            ))
        }
    })
}

/// A terminal form field.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub reference: ObjRef,
    pub dict: Dict,
    /// Fully qualified name (partial names joined with '.').
    pub name: String,
    /// The field type, inherited from ancestors if need be.
    pub kind: Option<String>,
}

impl Field {
    pub(crate) fn is_signature(&self) -> bool {
        self.kind.as_deref() == Some("Sig")
    }
}

/// Every terminal field of the form (widgets merged into fields, or kids that are only
/// widgets, end the walk).
pub(crate) fn fields(doc: &Document) -> Result<Vec<Field>> {
    let form = acroform(doc)?;
    let Some(form) = form.dict() else {
        return Ok(Vec::new());
    };
    let roots = match form.get("Fields") {
        Some(f) => doc.get(f)?,
        None => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for root in roots.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        walk(doc, root, "", None, 0, &mut seen, &mut out)?;
    }
    Ok(out)
}

fn walk(
    doc: &Document,
    node: &Object,
    prefix: &str,
    inherited_kind: Option<&str>,
    depth: usize,
    seen: &mut HashSet<ObjRef>,
    out: &mut Vec<Field>,
) -> Result<()> {
    let Some(reference) = node.as_ref() else {
        // Fields must be indirect; a direct one cannot be updated and is skipped.
        return Ok(());
    };
    if depth > MAX_FIELD_DEPTH || out.len() > MAX_FIELDS {
        return Err(Error::Damaged(
            "the form's field tree is too deep or too large".to_owned(),
        ));
    }
    if !seen.insert(reference) {
        return Err(Error::Damaged(
            "the form's field tree has a cycle".to_owned(),
        ));
    }
    let Object::Dict(dict) = doc.resolve(reference)? else {
        return Ok(());
    };
    let partial = dict
        .get("T")
        .and_then(Object::as_string)
        .map(|s| s.to_text());
    let name = match (&partial, prefix.is_empty()) {
        (Some(t), true) => t.clone(),
        (Some(t), false) => format!("{prefix}.{t}"),
        (None, _) => prefix.to_owned(),
    };
    let kind = dict
        .name("FT")
        .map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned())
        .or(inherited_kind.map(str::to_owned));
    let kids = match dict.get("Kids") {
        Some(k) => doc.get(k)?,
        None => Object::Null,
    };
    // Kids that carry a name are fields; kids without /T are the field's widgets.
    let field_kids: Vec<Object> = kids
        .as_array()
        .map(|kids| {
            kids.iter()
                .filter(|k| {
                    doc.get_dict(Some(k))
                        .ok()
                        .flatten()
                        .is_some_and(|d| d.get("T").is_some())
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if field_kids.is_empty() {
        out.push(Field {
            reference,
            dict,
            name,
            kind,
        });
        return Ok(());
    }
    for kid in &field_kids {
        walk(doc, kid, &name, kind.as_deref(), depth + 1, seen, out)?;
    }
    Ok(())
}

/// The DocMDP permission of a certified document (1: no changes, 2: form filling and
/// signing, 3: also annotations), or `None` if it is not certified.
pub(crate) fn docmdp_permission(doc: &Document) -> Result<Option<i64>> {
    let (_, catalog) = doc.catalog()?;
    let Some(perms) = doc.get_dict(catalog.get("Perms"))? else {
        return Ok(None);
    };
    let Some(sig) = doc.get_dict(perms.get("DocMDP"))? else {
        return Ok(None);
    };
    let references = match sig.get("Reference") {
        Some(r) => doc.get(r)?,
        None => return Ok(Some(2)),
    };
    for reference in references.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let Some(r) = doc.get_dict(Some(reference))? else {
            continue;
        };
        if r.name("TransformMethod").is_some_and(|m| m.is("DocMDP")) {
            let p = doc
                .get_dict(r.get("TransformParams"))?
                .and_then(|t| t.int("P"))
                .unwrap_or(2);
            return Ok(Some(p));
        }
    }
    Ok(Some(2))
}
