//! Cross-reference data: classic tables, cross-reference streams, hybrid files, chains of
//! incremental updates (and linearized files, which are such a chain). Every section is
//! kept, newest first, so the document can also be read as of an earlier revision.

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, Result};
use crate::filter;
use crate::object::{Dict, Object, Stream};
use crate::parse::{PResult, ParseError, Parser};
use crate::source::{convert, Source};

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Free,
    InFile { offset: u64, gen: u16 },
    Compressed { stream: u32, index: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XrefStyle {
    Table,
    Stream,
}

/// One cross-reference section (one revision of the file).
#[derive(Debug)]
pub(crate) struct Section {
    pub offset: u64,
    pub style: XrefStyle,
    pub trailer: Dict,
    pub entries: BTreeMap<u32, Entry>,
    /// The number of the cross-reference stream object, for a stream section (and the
    /// /XRefStm of a hybrid one).
    pub stream_objects: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct Xref {
    /// Newest first.
    pub sections: Vec<Section>,
}

/// Sections beyond this are refused (a /Prev chain this long is an attack, not a document).
const MAX_SECTIONS: usize = 100_000;
/// Largest decompressed cross-reference stream.
const MAX_XREF_STREAM: usize = 64 << 20;
/// Object numbers beyond this are refused (the xref would not fit the memory budget).
const MAX_OBJECTS: u64 = 8_000_000;
/// Entries over all sections: a tiny compressed stream must not expand into gigabytes of map.
const MAX_TOTAL_ENTRIES: usize = 1_000_000;

impl Xref {
    pub(crate) fn load(source: &Source) -> Result<Xref> {
        let start = find_startxref(source)?;
        Self::load_from(source, start)
    }

    /// Loads the chain of sections starting at the one at `start`.
    pub(crate) fn load_from(source: &Source, start: u64) -> Result<Xref> {
        let mut sections: Vec<Section> = Vec::new();
        let mut seen = HashSet::new();
        let mut total = 0usize;
        let mut next = Some(start);
        while let Some(offset) = next {
            if !seen.insert(offset) {
                return Err(Error::Damaged(format!(
                    "the cross-reference chain loops back to byte {offset}"
                )));
            }
            if sections.len() >= MAX_SECTIONS {
                return Err(Error::Damaged(
                    "too many cross-reference sections".to_owned(),
                ));
            }
            let mut section = read_section(source, offset)?;
            // Hybrid file: the table's /XRefStm holds the objects in object streams.
            if let Some(stm) = section.trailer.int("XRefStm") {
                let stm = u64::try_from(stm)
                    .map_err(|_| Error::Damaged(format!("negative /XRefStm {stm}")))?;
                if stm == offset {
                    return Err(Error::Damaged(
                        "a table's /XRefStm points at itself".to_owned(),
                    ));
                }
                // Read for this section alone (another section naming the same stream does
                // not take it away from this one).
                let hidden = read_section(source, stm)?;
                if hidden.style != XrefStyle::Stream {
                    return Err(Error::Damaged(
                        "/XRefStm does not point at a cross-reference stream".to_owned(),
                    ));
                }
                section.stream_objects.extend(hidden.stream_objects);
                for (num, entry) in hidden.entries {
                    match section.entries.get(&num) {
                        None | Some(Entry::Free) => {
                            section.entries.insert(num, entry);
                        }
                        Some(_) => {}
                    }
                }
            }
            total += section.entries.len();
            if total > MAX_TOTAL_ENTRIES {
                return Err(Error::TooLarge {
                    what: "the cross-reference data".to_owned(),
                    size: total as u64,
                    max: MAX_TOTAL_ENTRIES as u64,
                });
            }
            next = match section.trailer.get("Prev") {
                None => None,
                Some(Object::Int(p)) => Some(
                    u64::try_from(*p).map_err(|_| Error::Damaged(format!("negative /Prev {p}")))?,
                ),
                Some(other) => {
                    return Err(Error::Damaged(format!(
                        "/Prev is not an offset: {}",
                        String::from_utf8_lossy(&other.to_bytes())
                    )))
                }
            };
            sections.push(section);
        }
        Ok(Xref { sections })
    }

    /// Where object `num` is, reading sections from `first` (0 = newest) on.
    pub(crate) fn lookup_from(&self, first: usize, num: u32) -> Option<Entry> {
        self.sections[first..]
            .iter()
            .find_map(|s| s.entries.get(&num).copied())
    }

    /// The newest trailer with `key`, from section `first` on (incremental updates should
    /// repeat the whole trailer but not every writer does).
    pub(crate) fn trailer_value(&self, first: usize, key: &str) -> Option<&Object> {
        self.sections[first..]
            .iter()
            .find_map(|s| s.trailer.get(key))
    }
}

fn find_startxref(source: &Source) -> Result<u64> {
    if source.len() < 20 {
        return Err(Error::NotPdf("the file is too short".to_owned()));
    }
    let tail_len = 2048.min(source.len());
    let tail = source.read_at(source.len() - tail_len, tail_len as usize)?;
    let pos = tail
        .windows(9)
        .rposition(|w| w == b"startxref")
        .ok_or_else(|| Error::Damaged("no 'startxref' near the end of the file".to_owned()))?;
    let mut p = Parser::new(&tail[pos + 9..], 0, true);
    let offset = p
        .read_uint()
        .map_err(|_| Error::Damaged("'startxref' is not followed by an offset".to_owned()))?;
    Ok(offset)
}

fn read_section(source: &Source, offset: u64) -> Result<Section> {
    let is_table = source.parse_at(offset, "the cross-reference section", |p| {
        p.eat_keyword(b"xref")
    })?;
    if is_table {
        read_table(source, offset)
    } else {
        read_stream_section(source, offset)
    }
}

/// A classic table: `xref`, subsections of `start count` and 20-byte entries, `trailer`.
/// Read in blocks so a table of any size never needs one large window.
fn read_table(source: &Source, offset: u64) -> Result<Section> {
    let mut entries = BTreeMap::new();
    // Just after "xref".
    let mut pos = source.parse_at(offset, "the cross-reference table", |p| {
        p.eat_keyword(b"xref")?;
        Ok(p.offset())
    })?;
    loop {
        // "trailer", or a subsection header.
        let header = source.parse_at(pos, "the cross-reference table", |p| {
            if p.eat_keyword(b"trailer")? {
                let Object::Dict(trailer) = p.parse_object()? else {
                    return Err(ParseError::Syntax {
                        offset: p.offset(),
                        what: "the trailer is not a dictionary".to_owned(),
                    });
                };
                return Ok(Err(trailer));
            }
            let first = p.read_uint()?;
            let count = p.read_uint()?;
            Ok(Ok((first, count, p.offset())))
        })?;
        let (first, count, after) = match header {
            Err(trailer) => {
                return Ok(Section {
                    offset,
                    style: XrefStyle::Table,
                    trailer,
                    entries,
                    stream_objects: Vec::new(),
                })
            }
            Ok(h) => h,
        };
        if first.saturating_add(count) > MAX_OBJECTS {
            return Err(Error::TooLarge {
                what: "the cross-reference table".to_owned(),
                size: first.saturating_add(count),
                max: MAX_OBJECTS,
            });
        }
        pos = after;
        let mut done = 0u64;
        while done < count {
            let batch = (count - done).min(4096);
            let (parsed, next) = source.parse_at(pos, "the cross-reference table", |p| {
                let mut parsed = Vec::with_capacity(batch as usize);
                for _ in 0..batch {
                    parsed.push(table_entry(p)?);
                }
                Ok((parsed, p.offset()))
            })?;
            for (i, entry) in parsed.into_iter().enumerate() {
                let num = (first + done + i as u64) as u32;
                // Within one section the first entry for a number counts.
                entries.entry(num).or_insert(entry);
            }
            done += batch;
            pos = next;
        }
    }
}

fn table_entry(p: &mut Parser<'_>) -> PResult<Entry> {
    let offset = p.read_uint()?;
    let gen = p.read_uint()?;
    let entry = if p.eat_keyword(b"n")? {
        Entry::InFile {
            offset,
            gen: u16::try_from(gen).unwrap_or(u16::MAX),
        }
    } else if p.eat_keyword(b"f")? {
        Entry::Free
    } else {
        return Err(ParseError::Syntax {
            offset: p.offset(),
            what: "a cross-reference entry is neither 'n' nor 'f'".to_owned(),
        });
    };
    Ok(entry)
}

/// A cross-reference stream (PDF 1.5+).
fn read_stream_section(source: &Source, offset: u64) -> Result<Section> {
    let (stream_ref, object) = source
        .parse_at(offset, "the cross-reference stream", |p| p.parse_indirect())
        .map_err(|e| match e {
            Error::Syntax { .. } | Error::Damaged(_) => Error::Damaged(format!(
                "startxref/Prev points to byte {offset}, where there is no cross-reference section"
            )),
            other => other,
        })?;
    let Object::Stream(stream) = object else {
        return Err(Error::Damaged(format!(
            "startxref/Prev points to byte {offset}, which holds neither a cross-reference table nor a stream"
        )));
    };
    if !stream.dict.is_type("XRef") {
        return Err(Error::Damaged(format!(
            "the object at byte {offset} is not a cross-reference stream"
        )));
    }
    let length = stream
        .dict
        .int("Length")
        .and_then(|l| u64::try_from(l).ok())
        .ok_or_else(|| {
            Error::Damaged("the cross-reference stream has no direct /Length".to_owned())
        })?;
    let data = read_stream_data(source, &stream, length, MAX_XREF_STREAM)?;
    let widths: Vec<usize> = stream
        .dict
        .get("W")
        .and_then(Object::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Object::as_int)
                .map(|v| v.clamp(0, 8) as usize)
                .collect()
        })
        .unwrap_or_default();
    if widths.len() != 3 {
        return Err(Error::Damaged(
            "the cross-reference stream's /W is not three widths".to_owned(),
        ));
    }
    let size = stream
        .dict
        .int("Size")
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| Error::Damaged("the cross-reference stream has no /Size".to_owned()))?;
    let index: Vec<u64> = match stream.dict.get("Index").and_then(Object::as_array) {
        Some(items) => items
            .iter()
            .map(|i| i.as_int().and_then(|v| u64::try_from(v).ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Damaged("bad /Index in a cross-reference stream".to_owned()))?,
        None => vec![0, size],
    };
    let row: usize = widths.iter().sum();
    if row == 0 || index.len() % 2 != 0 {
        return Err(Error::Damaged(
            "bad /W or /Index in a cross-reference stream".to_owned(),
        ));
    }
    let mut entries = BTreeMap::new();
    let mut rows = data.chunks_exact(row);
    for pair in index.chunks(2) {
        let (first, count) = (pair[0], pair[1]);
        // An /Index may not describe more objects than /Size says there are.
        if first.saturating_add(count) > MAX_OBJECTS.min(size) {
            return Err(Error::Damaged(format!(
                "the cross-reference stream's /Index ({first}, {count}) exceeds its /Size {size}"
            )));
        }
        for num in first..first + count {
            let Some(bytes) = rows.next() else {
                return Err(Error::Damaged(
                    "the cross-reference stream has fewer entries than its /Index says".to_owned(),
                ));
            };
            let field = |i: usize| -> u64 {
                let start: usize = widths[..i].iter().sum();
                bytes[start..start + widths[i]]
                    .iter()
                    .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
            };
            // A zero-width type field means type 1.
            let kind = if widths[0] == 0 { 1 } else { field(0) };
            let entry = match kind {
                0 => Entry::Free,
                1 => Entry::InFile {
                    offset: field(1),
                    gen: u16::try_from(field(2)).unwrap_or(u16::MAX),
                },
                2 => Entry::Compressed {
                    stream: u32::try_from(field(1)).map_err(|_| {
                        Error::Damaged("object stream number out of range".to_owned())
                    })?,
                    index: u32::try_from(field(2)).unwrap_or(u32::MAX),
                },
                // Unknown types are to be treated as null references.
                _ => Entry::Free,
            };
            entries.entry(num as u32).or_insert(entry);
        }
    }
    Ok(Section {
        offset,
        style: XrefStyle::Stream,
        trailer: stream.dict,
        entries,
        stream_objects: vec![stream_ref.num],
    })
}

/// Reads and decodes a stream's data, checking that `endstream` follows where `length` says.
pub(crate) fn read_stream_data(
    source: &Source,
    stream: &Stream,
    length: u64,
    max: usize,
) -> Result<Vec<u8>> {
    if length > max as u64 {
        return Err(Error::TooLarge {
            what: "a structural stream".to_owned(),
            size: length,
            max: max as u64,
        });
    }
    let end = stream
        .data_offset
        .checked_add(length)
        .filter(|&e| e <= source.len())
        .ok_or_else(|| {
            Error::Damaged(format!(
                "a stream at byte {} claims {length} bytes, past the end of the file",
                stream.data_offset
            ))
        })?;
    let data = source.read_at(stream.data_offset, length as usize)?;
    let ends = source.parse_at(end, "a stream's end", |p| p.eat_keyword(b"endstream"));
    if !matches!(ends, Ok(true)) {
        return Err(Error::Damaged(format!(
            "the stream at byte {} does not end where its /Length says",
            stream.data_offset
        )));
    }
    filter::decode(&stream.dict, data, max)
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        convert(e)
    }
}
