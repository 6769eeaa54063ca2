//! XLSX workbooks (Office Open XML SpreadsheetML, transitional or strict) read as rows: the ZIP
//! package's central directory, the package and workbook relationships, the chosen sheet, its
//! shared strings and cell formats (to tell dates from numbers), then the sheet's XML streamed
//! row by row — never the whole sheet in memory.
//!
//! Bounds, so that an upload can exhaust neither memory nor time: every part is read only up
//! to its declared size, which is checked against a limit first, and its CRC-32 verified at its
//! end; no XML event (a cell's text, a tag, a comment) longer than [`MAX_RUN`] bytes is
//! buffered, no cell longer than [`MAX_CELL`] or row longer than [`MAX_ROW`] is kept; shared
//! strings (the one table a workbook needs whole) are held up to [`MAX_SHARED_TEXT`] bytes.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Take};

use quick_xml::events::{BytesStart, Event};

use super::{FileError, Row, RowProblem, Rows};

/// Uncompressed sheet XML read at most (a 100,000-row sheet of ten columns is ~40 MiB).
const MAX_SHEET_XML: u64 = 1 << 30;
/// Shared strings XML read at most.
const MAX_SHARED_XML: u64 = 256 << 20;
/// Shared strings' text held at most.
const MAX_SHARED_TEXT: usize = 32 << 20;
/// Any other part (workbook, relationships, styles).
const MAX_SMALL_PART: u64 = 16 << 20;
/// The longest XML event (text, tag, comment…) read, in bytes.
const MAX_RUN: usize = 1 << 20;
/// The longest cell or shared string, in bytes (Excel's limit is 32,767 characters).
const MAX_CELL: usize = 128 << 10;
/// The most text one row holds, in bytes.
const MAX_ROW: usize = 1 << 20;
/// Entries of the ZIP package read at most.
const MAX_ENTRIES: u64 = 10_000;
/// Excel's last column is XFD.
const MAX_COLUMNS: u32 = 16_384;

fn invalid(detail: impl Into<String>) -> FileError {
    FileError::new("invalid_xlsx", detail)
}

fn too_large(detail: impl Into<String>) -> FileError {
    FileError::new(
        "xlsx_too_large",
        format!("{}; save the sheet as CSV instead", detail.into()),
    )
}

fn io(e: std::io::Error) -> FileError {
    invalid(format!("cannot read the workbook: {e}"))
}

// ---- the ZIP package ------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
}

struct Package<R> {
    input: R,
    len: u64,
    entries: Vec<Entry>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl<R: Read + Seek> Package<R> {
    fn open(mut input: R) -> Result<Self, FileError> {
        let len = input.seek(SeekFrom::End(0)).map_err(io)?;
        let mut magic = [0u8; 4];
        input.seek(SeekFrom::Start(0)).map_err(io)?;
        if len < 22 || input.read_exact(&mut magic).is_err() {
            return Err(invalid("not an XLSX workbook: the file is too short"));
        }
        if magic == [0xD0, 0xCF, 0x11, 0xE0] {
            return Err(invalid(
                "the file is a password-protected workbook or an old Excel 97-2003 (.xls) file; \
                 save it as .xlsx without a password, or as CSV",
            ));
        }
        if &magic != b"PK\x03\x04" {
            return Err(invalid("not an XLSX workbook (not a ZIP package)"));
        }
        let tail_len = len.min(22 + 0xFFFF);
        let tail = Self::read_at(&mut input, len - tail_len, tail_len as usize)?;
        let eocd = (0..=tail.len() - 22)
            .rev()
            .find(|&p| tail[p..p + 4] == *b"PK\x05\x06")
            .ok_or_else(|| invalid("not an XLSX workbook: no ZIP end record"))?;
        let e = &tail[eocd..];
        if u16_at(e, 4) != 0 || u16_at(e, 6) != 0 {
            return Err(invalid(
                "a ZIP archive split over several files is not a workbook",
            ));
        }
        let (mut count, mut cd_size, mut cd_offset) = (
            u64::from(u16_at(e, 10)),
            u64::from(u32_at(e, 12)),
            u64::from(u32_at(e, 16)),
        );
        if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
            // ZIP64: the locator stands just before the classic end record.
            let at = (len - tail_len) + eocd as u64;
            let locator = Self::read_at(&mut input, at.saturating_sub(20), 20)?;
            if locator[..4] != *b"PK\x06\x07" {
                return Err(invalid("a ZIP64 archive without its locator"));
            }
            let end = Self::read_at(&mut input, u64_at(&locator, 8), 56)?;
            if end[..4] != *b"PK\x06\x06" {
                return Err(invalid("a ZIP64 archive without its end record"));
            }
            (count, cd_size, cd_offset) = (u64_at(&end, 32), u64_at(&end, 40), u64_at(&end, 48));
        }
        if count > MAX_ENTRIES {
            return Err(invalid(format!(
                "the package has {count} parts (a workbook has a few dozen)"
            )));
        }
        if cd_offset.checked_add(cd_size).is_none_or(|end| end > len) || cd_size > 64 << 20 {
            return Err(invalid("the ZIP central directory lies outside the file"));
        }
        let cd = Self::read_at(&mut input, cd_offset, cd_size as usize)?;
        let mut entries = Vec::with_capacity(count as usize);
        let mut p = 0usize;
        for _ in 0..count {
            if p + 46 > cd.len() || cd[p..p + 4] != *b"PK\x01\x02" {
                return Err(invalid("a damaged ZIP central directory"));
            }
            let flags = u16_at(&cd, p + 8);
            let method = u16_at(&cd, p + 10);
            let crc = u32_at(&cd, p + 16);
            let mut compressed = u64::from(u32_at(&cd, p + 20));
            let mut size = u64::from(u32_at(&cd, p + 24));
            let name_len = usize::from(u16_at(&cd, p + 28));
            let extra_len = usize::from(u16_at(&cd, p + 30));
            let comment_len = usize::from(u16_at(&cd, p + 32));
            let mut offset = u64::from(u32_at(&cd, p + 42));
            let name_end = p + 46 + name_len;
            let extra_end = name_end + extra_len;
            if extra_end + comment_len > cd.len() {
                return Err(invalid("a damaged ZIP central directory"));
            }
            let name = String::from_utf8_lossy(&cd[p + 46..name_end]).into_owned();
            // The ZIP64 extra field holds, in order, the sizes and offset marked 0xFFFFFFFF.
            let mut extra = &cd[name_end..extra_end];
            while extra.len() >= 4 {
                let (id, n) = (u16_at(extra, 0), usize::from(u16_at(extra, 2)));
                let body = extra.get(4..4 + n).unwrap_or_default();
                if id == 1 {
                    let mut fields = body.chunks_exact(8).map(|c| u64_at(c, 0));
                    for slot in [&mut size, &mut compressed, &mut offset] {
                        if *slot == 0xFFFF_FFFF {
                            *slot = fields.next().ok_or_else(|| {
                                invalid(format!("{name}: a damaged ZIP64 extra field"))
                            })?;
                        }
                    }
                }
                extra = extra.get(4 + n..).unwrap_or_default();
            }
            if flags & 1 != 0 {
                return Err(invalid(format!(
                    "{name} is encrypted: save the workbook without a password"
                )));
            }
            entries.push(Entry {
                name,
                method,
                crc,
                compressed,
                size,
                offset,
            });
            p = extra_end + comment_len;
        }
        Ok(Package {
            input,
            len,
            entries,
        })
    }

    fn read_at(input: &mut R, at: u64, n: usize) -> Result<Vec<u8>, FileError> {
        let mut buf = vec![0u8; n];
        input.seek(SeekFrom::Start(at)).map_err(io)?;
        input
            .read_exact(&mut buf)
            .map_err(|_| invalid("not an XLSX workbook: the ZIP package is truncated"))?;
        Ok(buf)
    }

    /// The entry named `name` (part names are case-insensitive).
    fn find(&self, name: &str) -> Option<Entry> {
        let name = name.trim_start_matches('/');
        self.entries
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
            .cloned()
    }

    /// Seeks to `e`'s data (past its local header), once its size is checked against `limit`.
    fn data_start(&mut self, e: &Entry, limit: u64) -> Result<(), FileError> {
        if e.size > limit {
            return Err(too_large(format!(
                "{} is {} MiB uncompressed, more than the {} MiB read",
                e.name,
                e.size >> 20,
                limit >> 20
            )));
        }
        if e.method != 0 && e.method != 8 {
            return Err(invalid(format!(
                "{} is compressed with ZIP method {}; only stored and deflated parts are read",
                e.name, e.method
            )));
        }
        let local = Self::read_at(&mut self.input, e.offset, 30)?;
        if local[..4] != *b"PK\x03\x04" {
            return Err(invalid(format!("{}: a damaged ZIP local header", e.name)));
        }
        let start = e.offset + 30 + u64::from(u16_at(&local, 26)) + u64::from(u16_at(&local, 28));
        if start
            .checked_add(e.compressed)
            .is_none_or(|end| end > self.len)
        {
            return Err(invalid(format!("{} lies outside the file", e.name)));
        }
        self.input.seek(SeekFrom::Start(start)).map_err(io)?;
        Ok(())
    }

    /// A part read whole (small parts only).
    fn part(&mut self, e: &Entry) -> Result<Vec<u8>, FileError> {
        self.data_start(e, MAX_SMALL_PART)?;
        let mut out = Vec::with_capacity(e.size as usize);
        PartReader::new(&mut self.input, e)
            .read_to_end(&mut out)
            .map_err(|err| invalid(format!("{}: {err}", e.name)))?;
        Ok(out)
    }

    /// A part streamed, reading from the package itself.
    fn stream(&mut self, e: &Entry, limit: u64) -> Result<PartReader<&mut R>, FileError> {
        self.data_start(e, limit)?;
        Ok(PartReader::new(&mut self.input, e))
    }

    /// The last part to read, streamed: the package is given up to it.
    fn into_stream(mut self, e: &Entry, limit: u64) -> Result<PartReader<R>, FileError> {
        self.data_start(e, limit)?;
        Ok(PartReader::new(self.input, e))
    }
}

enum Body<R: Read> {
    Stored(Take<R>),
    Deflated(Box<flate2::read::DeflateDecoder<Take<R>>>),
}

/// Bounds what the XML reader buffers for one event. Text and tags hold no `<`, so they end
/// within [`MAX_RUN`] bytes of the last one; comments, CDATA sections and processing
/// instructions may hold any byte, so they are followed to their terminator and counted on
/// their own. A DOCTYPE is refused: OOXML parts have none.
#[derive(Default)]
struct Bound {
    /// Bytes of the current event so far.
    run: usize,
    /// After a `<`: how many bytes may still open a comment or CDATA section, and those bytes.
    opening: Option<(usize, [u8; 8])>,
    /// Inside a comment, CDATA section or processing instruction: its terminator and how much
    /// of it the last bytes matched.
    special: Option<(&'static [u8], usize)>,
}

impl Bound {
    /// How much of `term` the bytes end with after `b`, given that they ended with
    /// `term[..matched]` before it.
    fn advance(term: &[u8], matched: usize, b: u8) -> usize {
        // Terminators are at most three bytes: the bytes seen are at most that too.
        let mut seen = [0u8; 4];
        seen[..matched].copy_from_slice(&term[..matched]);
        seen[matched] = b;
        let seen = &seen[..=matched];
        (0..=seen.len().min(term.len()))
            .rev()
            .find(|&k| seen.ends_with(&term[..k]))
            .unwrap_or(0)
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        for &b in bytes {
            self.run += 1;
            if let Some((term, matched)) = self.special {
                let m = Self::advance(term, matched, b);
                self.special = (m < term.len()).then_some((term, m));
                if self.special.is_none() {
                    self.run = 0;
                }
            } else if let Some((n, bytes)) = self.opening.as_mut() {
                bytes[*n] = b;
                *n += 1;
                let o = &bytes[..*n];
                if o == b"!--" {
                    self.special = Some((b"-->", 0));
                } else if o == b"![CDATA[" {
                    self.special = Some((b"]]>", 0));
                } else if o == b"?" {
                    self.special = Some((b"?>", 0));
                } else if o == b"!D" {
                    return Err("a DOCTYPE, which OOXML parts may not have".to_owned());
                }
                if self.special.is_some() || !(b"!--".starts_with(o) || b"![CDATA[".starts_with(o))
                {
                    self.opening = None;
                }
            } else if b == b'<' {
                self.run = 0;
                self.opening = Some((0, [0; 8]));
            }
            if self.run > MAX_RUN {
                return Err(format!("an XML event longer than {} KiB", MAX_RUN >> 10));
            }
        }
        Ok(())
    }
}

/// One part's uncompressed bytes: never more than declared, CRC-checked at the end, and no XML
/// event longer than [`MAX_RUN`] bytes.
struct PartReader<R: Read> {
    body: Body<R>,
    name: String,
    expected_crc: u32,
    declared: u64,
    crc: u32,
    seen: u64,
    bound: Bound,
}

impl<R: Read> PartReader<R> {
    fn new(input: R, e: &Entry) -> Self {
        let raw = input.take(e.compressed);
        PartReader {
            body: if e.method == 8 {
                Body::Deflated(Box::new(flate2::read::DeflateDecoder::new(raw)))
            } else {
                Body::Stored(raw)
            },
            name: e.name.clone(),
            expected_crc: e.crc,
            declared: e.size,
            crc: 0,
            seen: 0,
            bound: Bound::default(),
        }
    }
}

impl<R: Read> Read for PartReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let fail = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let n = match &mut self.body {
            Body::Stored(r) => r.read(buf)?,
            Body::Deflated(r) => r.read(buf)?,
        };
        if n == 0 {
            if self.seen != self.declared {
                return Err(fail(format!(
                    "{} holds {} bytes, not the {} its header declares",
                    self.name, self.seen, self.declared
                )));
            }
            if self.crc != self.expected_crc {
                return Err(fail(format!("{} is damaged (CRC mismatch)", self.name)));
            }
            return Ok(0);
        }
        self.seen += n as u64;
        if self.seen > self.declared {
            return Err(fail(format!(
                "{} is longer than its header declares",
                self.name
            )));
        }
        self.crc = crate::zip::crc32_continue(self.crc, &buf[..n]);
        self.bound
            .feed(&buf[..n])
            .map_err(|why| fail(format!("{} has {why}", self.name)))?;
        Ok(n)
    }
}

// ---- XML helpers ----------------------------------------------------------------------------

type Xml<B> = quick_xml::Reader<B>;

fn xml_error(part: &str, e: impl std::fmt::Display) -> FileError {
    invalid(format!("{part}: {e}"))
}

/// The next event of `xml`, read into `buf` (cleared first).
fn next_event<'b, B: BufRead>(
    xml: &mut Xml<B>,
    buf: &'b mut Vec<u8>,
    part: &str,
) -> Result<Event<'b>, FileError> {
    buf.clear();
    xml.read_event_into(buf).map_err(|e| xml_error(part, e))
}

/// The value of the attribute whose local name is `local`.
fn attr(e: &BytesStart, local: &[u8], part: &str) -> Result<Option<String>, FileError> {
    for a in e.attributes() {
        let a = a.map_err(|err| xml_error(part, err))?;
        if a.key.local_name().as_ref() == local {
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| xml_error(part, err))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// Appends an event's character data (text, CDATA, a reference) to `out`.
fn push_text(out: &mut String, ev: &Event, part: &str) -> Result<(), FileError> {
    match ev {
        Event::Text(t) => out.push_str(&t.xml10_content().map_err(|e| xml_error(part, e))?),
        Event::CData(c) => out.push_str(&c.xml10_content().map_err(|e| xml_error(part, e))?),
        Event::GeneralRef(r) => {
            let c = match r.resolve_char_ref().map_err(|e| xml_error(part, e))? {
                Some(c) => c,
                None => match &**r {
                    b"lt" => '<',
                    b"gt" => '>',
                    b"amp" => '&',
                    b"quot" => '"',
                    b"apos" => '\'',
                    other => {
                        return Err(xml_error(
                            part,
                            format!("unknown entity &{};", String::from_utf8_lossy(other)),
                        ))
                    }
                },
            };
            out.push(c);
        }
        _ => {}
    }
    Ok(())
}

/// Undoes SpreadsheetML's `_xHHHH_` escapes of characters XML cannot carry.
fn unescape_xstring(s: String) -> String {
    if !s.contains("_x") {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(at) = rest.find("_x") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let decoded = tail
            .get(2..6)
            .filter(|_| tail.as_bytes().get(6) == Some(&b'_'))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[7..];
            }
            None => {
                out.push_str("_x");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reads a small part's elements: `f` sees each start (or empty) element by local name.
fn each_element(
    bytes: &[u8],
    part: &str,
    mut f: impl FnMut(&[u8], &BytesStart) -> Result<(), FileError>,
) -> Result<(), FileError> {
    let mut xml = Xml::from_reader(bytes);
    let mut buf = Vec::new();
    loop {
        match next_event(&mut xml, &mut buf, part)? {
            Event::Start(e) | Event::Empty(e) => f(e.local_name().as_ref(), &e)?,
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

// ---- the workbook ---------------------------------------------------------------------------

struct Relationship {
    id: String,
    kind: String,
    target: String,
}

fn relationships(bytes: &[u8], part: &str) -> Result<Vec<Relationship>, FileError> {
    let mut out = Vec::new();
    each_element(bytes, part, |name, e| {
        if name == b"Relationship" {
            out.push(Relationship {
                id: attr(e, b"Id", part)?.unwrap_or_default(),
                kind: attr(e, b"Type", part)?.unwrap_or_default(),
                target: attr(e, b"Target", part)?.unwrap_or_default(),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// `target` taken from the folder `base` is in, as a part name.
fn resolve(base: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        base.rsplit_once('/')
            .map(|(dir, _)| dir.split('/').collect())
            .unwrap_or_default()
    };
    for seg in target.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// The relationships part of `part`: `dir/_rels/name.rels`.
fn rels_of(part: &str) -> String {
    match part.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/_rels/{name}.rels"),
        None => format!("_rels/{part}.rels"),
    }
}

/// How a cell format shows numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Number,
    Date,
    Time,
}

/// Excel's built-in formats that show dates or times (ids 27–36 and 50–58 are the Chinese,
/// Japanese and Korean locales' date and time formats).
fn builtin_format(id: u32) -> Shown {
    match id {
        14..=17 | 22 | 27..=31 | 36 | 50..=54 | 57 | 58 => Shown::Date,
        18..=21 | 32..=35 | 45..=47 | 55 | 56 => Shown::Time,
        _ => Shown::Number,
    }
}

/// What a custom number format shows: dates if it has a year or day, times if an hour or
/// second, once quoted text, escaped characters and bracketed colours or locales are left out.
fn custom_format(code: &str) -> Shown {
    let mut plain = String::new();
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                for q in chars.by_ref() {
                    if q == '"' {
                        break;
                    }
                }
            }
            '\\' | '_' | '*' => {
                chars.next();
            }
            '[' => {
                let inner: String = chars.by_ref().take_while(|&b| b != ']').collect();
                // [h], [mm], [ss]: elapsed time.
                if inner
                    .chars()
                    .all(|b| matches!(b, 'h' | 'H' | 'm' | 'M' | 's' | 'S'))
                {
                    plain.push('h');
                }
            }
            c => plain.push(c.to_ascii_lowercase()),
        }
    }
    if plain.contains(['y', 'd']) {
        Shown::Date
    } else if plain.contains(['h', 's']) {
        Shown::Time
    } else {
        Shown::Number
    }
}

/// The cell formats (`cellXfs`), by index, as what they show.
fn styles(bytes: &[u8], part: &str) -> Result<Vec<Shown>, FileError> {
    let mut custom: std::collections::HashMap<u32, Shown> = std::collections::HashMap::new();
    let mut xfs = Vec::new();
    let mut xml = Xml::from_reader(bytes);
    let mut buf = Vec::new();
    let mut in_cell_xfs = false;
    loop {
        let ev = next_event(&mut xml, &mut buf, part)?;
        match &ev {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                b"numFmt" => {
                    let id = attr(e, b"numFmtId", part)?.and_then(|v| v.parse().ok());
                    let code = attr(e, b"formatCode", part)?.unwrap_or_default();
                    if let Some(id) = id {
                        custom.insert(id, custom_format(&code));
                    }
                }
                b"cellXfs" => in_cell_xfs = matches!(ev, Event::Start(_)),
                b"xf" if in_cell_xfs => {
                    let id: u32 = attr(e, b"numFmtId", part)?
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    xfs.push(
                        custom
                            .get(&id)
                            .copied()
                            .unwrap_or_else(|| builtin_format(id)),
                    );
                }
                _ => {}
            },
            Event::End(e) if e.local_name().as_ref() == b"cellXfs" => in_cell_xfs = false,
            Event::Eof => return Ok(xfs),
            _ => {}
        }
    }
}

/// The shared strings table, as one string and where each entry ends.
#[derive(Default)]
struct SharedStrings {
    text: String,
    ends: Vec<usize>,
}

impl SharedStrings {
    fn read(input: impl BufRead, part: &str) -> Result<Self, FileError> {
        let mut table = SharedStrings::default();
        let mut xml = Xml::from_reader(input);
        let mut buf = Vec::new();
        let (mut in_t, mut phonetic) = (false, 0u32);
        let mut current = String::new();
        loop {
            let ev = next_event(&mut xml, &mut buf, part)?;
            match &ev {
                Event::Start(e) => match e.local_name().as_ref() {
                    b"si" => current.clear(),
                    b"t" => in_t = phonetic == 0,
                    b"rPh" => phonetic += 1,
                    _ => {}
                },
                Event::Empty(e) if e.local_name().as_ref() == b"si" => table.push("", part)?,
                Event::End(e) => match e.local_name().as_ref() {
                    b"si" => {
                        let s = unescape_xstring(std::mem::take(&mut current));
                        table.push(&s, part)?;
                    }
                    b"t" => in_t = false,
                    b"rPh" => phonetic = phonetic.saturating_sub(1),
                    _ => {}
                },
                Event::Eof => return Ok(table),
                ev if in_t => {
                    push_text(&mut current, ev, part)?;
                    if current.len() > MAX_CELL {
                        return Err(invalid(format!(
                            "{part} has a string longer than a cell may be"
                        )));
                    }
                }
                _ => {}
            }
        }
    }

    fn push(&mut self, s: &str, part: &str) -> Result<(), FileError> {
        // Each entry costs its text and its end offset.
        let held = self.text.len() + s.len() + std::mem::size_of::<usize>() * (self.ends.len() + 1);
        if held > MAX_SHARED_TEXT {
            return Err(too_large(format!(
                "{part} holds more than {} MiB of text",
                MAX_SHARED_TEXT >> 20
            )));
        }
        self.text.push_str(s);
        self.ends.push(self.text.len());
        Ok(())
    }

    fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }
}

// ---- cells ----------------------------------------------------------------------------------

/// `col` (0-based) as letters: 0 → A, 26 → AA.
fn column_letters(col: u32) -> String {
    let mut n = col + 1;
    let mut out = Vec::new();
    while n > 0 {
        let r = (n - 1) % 26;
        out.push(b'A' + r as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The column of a cell reference such as `C7`.
fn column_of(reference: &str) -> Option<u32> {
    let letters = reference.bytes().take_while(u8::is_ascii_alphabetic);
    let mut col = 0u32;
    let mut any = false;
    for b in letters {
        col = col * 26 + u32::from(b.to_ascii_uppercase() - b'A' + 1);
        any = true;
        if col > MAX_COLUMNS {
            return None;
        }
    }
    any.then(|| col - 1)
}

/// A date or time serial number as text (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or `HH:MM:SS`).
fn serial_text(v: f64, shown: Shown, date1904: bool) -> Result<String, String> {
    if !(0.0..2_958_466.0).contains(&v) {
        return Err(format!("holds {v}, which is no date Excel can show"));
    }
    let mut days = v.floor() as i64;
    let mut seconds = ((v - v.floor()) * 86_400.0).round() as i64;
    if seconds == 86_400 {
        days += 1;
        seconds = 0;
    }
    let time = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if shown == Shown::Time && days == 0 {
        return Ok(time);
    }
    // Days since 1970-01-01. The 1900 system counts a 29 February 1900 that never was (serial
    // 60): serials after it are a day ahead.
    let since_epoch = if date1904 {
        days - 24_107
    } else if days == 60 {
        return Err("holds 1900-02-29, a day that does not exist".to_owned());
    } else if days > 60 {
        days - 25_569
    } else {
        days - 25_568
    };
    if !date1904 && days == 0 {
        return Err("holds the date 0, which is no day".to_owned());
    }
    let date = seald_policy::limits::date_of_day(since_epoch);
    Ok(if seconds == 0 {
        date
    } else {
        format!("{date} {time}")
    })
}

/// A number as it is written: integers without a fraction, others in their shortest form.
fn number_text(v: f64) -> Result<String, String> {
    if !v.is_finite() {
        return Err("holds a number that is not finite".to_owned());
    }
    if v.fract() == 0.0 && v.abs() >= 1e15 {
        // Excel keeps 15 significant digits: an 18-digit ID number typed as a number has lost
        // its last digits already.
        return Err(format!(
            "holds the number {v:e}, which has more digits than a spreadsheet number keeps \
             (15); format the column as text and type the value again"
        ));
    }
    Ok(if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    })
}

// ---- the sheet ------------------------------------------------------------------------------

/// A row of the sheet as written: its number and its cells' values (or why a cell cannot
/// be read) by column.
struct SheetRow {
    number: u32,
    cells: Vec<(u32, Result<String, String>)>,
}

struct Sheet<B: BufRead> {
    xml: Xml<B>,
    buf: Vec<u8>,
    part: String,
    shared: SharedStrings,
    styles: Vec<Shown>,
    date1904: bool,
    last_row: u32,
    done: bool,
}

/// A cell being read.
#[derive(Default)]
struct Cell {
    col: u32,
    kind: Option<String>,
    style: usize,
    value: String,
    inline: String,
}

/// A cell's value as text.
fn cell_value(
    shared: &SharedStrings,
    styles: &[Shown],
    date1904: bool,
    c: Cell,
) -> Result<String, String> {
    match c.kind.as_deref().unwrap_or("n") {
        "s" => {
            let i: usize = c
                .value
                .trim()
                .parse()
                .map_err(|_| format!("names shared string '{}'", c.value))?;
            shared
                .get(i)
                .map(str::to_owned)
                .ok_or_else(|| format!("names shared string {i}, which the workbook lacks"))
        }
        "inlineStr" => Ok(unescape_xstring(c.inline)),
        "str" => Ok(unescape_xstring(c.value)),
        "b" => Ok(if c.value.trim() == "1" {
            "TRUE"
        } else {
            "FALSE"
        }
        .to_owned()),
        "e" => Err(format!("holds the error {}", c.value.trim())),
        "d" => {
            let v = c.value.trim();
            Ok(match v.split_once('T') {
                Some((date, time)) if time.trim_start_matches(['0', ':', '.']).is_empty() => {
                    date.to_owned()
                }
                _ => v.to_owned(),
            })
        }
        "n" => {
            let v = c.value.trim();
            if v.is_empty() {
                return Ok(String::new());
            }
            let n: f64 = v
                .parse()
                .map_err(|_| format!("holds '{v}', not a number"))?;
            match styles.get(c.style).copied().unwrap_or(Shown::Number) {
                Shown::Number => number_text(n),
                shown => serial_text(n, shown, date1904),
            }
        }
        other => Err(format!("has the unknown cell type '{other}'")),
    }
}

impl<B: BufRead> Sheet<B> {
    /// The next row, or `None` after the last.
    fn next_row(&mut self) -> Result<Option<SheetRow>, FileError> {
        if self.done {
            return Ok(None);
        }
        let mut row: Option<SheetRow> = None;
        let mut cell: Option<Cell> = None;
        let mut next_col = 0u32;
        // Text held by the row so far.
        let mut row_bytes = 0usize;
        // Where character data goes: 1 the cell's <v>, 2 an inline string's <t>.
        let mut into = 0u8;
        let mut phonetic = 0u32;
        loop {
            let ev = next_event(&mut self.xml, &mut self.buf, &self.part)?;
            match &ev {
                Event::Start(e) | Event::Empty(e) => {
                    let empty = matches!(ev, Event::Empty(_));
                    match e.local_name().as_ref() {
                        b"row" => {
                            let number = match attr(e, b"r", &self.part)? {
                                Some(r) => r.trim().parse().map_err(|_| {
                                    invalid(format!("{}: a row numbered '{r}'", self.part))
                                })?,
                                None => self.last_row.checked_add(1).ok_or_else(|| {
                                    invalid(format!("{}: too many rows", self.part))
                                })?,
                            };
                            self.last_row = number;
                            next_col = 0;
                            row_bytes = 0;
                            if !empty {
                                row = Some(SheetRow {
                                    number,
                                    cells: Vec::new(),
                                });
                            }
                        }
                        b"c" => {
                            let col = match attr(e, b"r", &self.part)? {
                                Some(r) => column_of(&r).ok_or_else(|| {
                                    invalid(format!("{}: a cell at '{r}'", self.part))
                                })?,
                                None => next_col,
                            };
                            // Cells come left to right, each once (as every writer saves them):
                            // a repeated or backward column would overwrite another's value.
                            if col < next_col {
                                return Err(invalid(format!(
                                    "{}: row {} has its cells out of order (column {})",
                                    self.part,
                                    self.last_row,
                                    column_letters(col)
                                )));
                            }
                            if col >= MAX_COLUMNS {
                                return Err(invalid(format!(
                                    "{}: a cell beyond column XFD",
                                    self.part
                                )));
                            }
                            next_col = col + 1;
                            if !empty {
                                cell = Some(Cell {
                                    col,
                                    kind: attr(e, b"t", &self.part)?,
                                    style: attr(e, b"s", &self.part)?
                                        .and_then(|s| s.parse().ok())
                                        .unwrap_or(0),
                                    ..Cell::default()
                                });
                            }
                        }
                        b"v" if !empty => into = 1,
                        b"t" if !empty && phonetic == 0 => into = 2,
                        b"rPh" if !empty => phonetic += 1,
                        _ => {}
                    }
                }
                Event::End(e) => match e.local_name().as_ref() {
                    b"v" | b"t" => into = 0,
                    b"rPh" => phonetic = phonetic.saturating_sub(1),
                    b"c" => {
                        if let Some(c) = cell.take() {
                            let col = c.col;
                            let value = cell_value(&self.shared, &self.styles, self.date1904, c);
                            row_bytes += value.as_ref().map_or(0, String::len);
                            if row_bytes > MAX_ROW {
                                return Err(invalid(format!(
                                    "{}: row {} holds more than {} KiB of text",
                                    self.part,
                                    self.last_row,
                                    MAX_ROW >> 10
                                )));
                            }
                            if let Some(r) = row.as_mut() {
                                r.cells.push((col, value));
                            }
                        }
                    }
                    b"row" => {
                        if let Some(r) = row.take() {
                            return Ok(Some(r));
                        }
                    }
                    b"sheetData" => {
                        self.done = true;
                        // Read the part to its end, so that its size and CRC are checked.
                        loop {
                            let ev = next_event(&mut self.xml, &mut self.buf, &self.part)?;
                            if matches!(ev, Event::Eof) {
                                return Ok(None);
                            }
                        }
                    }
                    _ => {}
                },
                Event::Eof => {
                    self.done = true;
                    return Err(invalid(format!(
                        "{} ends before its sheet data does",
                        self.part
                    )));
                }
                ev => {
                    if let Some(c) = cell.as_mut() {
                        match into {
                            1 => push_text(&mut c.value, ev, &self.part)?,
                            2 => push_text(&mut c.inline, ev, &self.part)?,
                            _ => {}
                        }
                        if c.value.len() + c.inline.len() > MAX_CELL {
                            return Err(invalid(format!(
                                "{}: a cell in row {} is longer than a cell may be",
                                self.part, self.last_row
                            )));
                        }
                    }
                }
            }
        }
    }
}

/// A workbook's sheet as rows: the first row with a value is the header.
pub struct XlsxRows<R: Read> {
    header: Vec<String>,
    sheet: Sheet<BufReader<PartReader<R>>>,
}

impl<R: Read + Seek> XlsxRows<R> {
    /// Opens the workbook in `input` at `sheet` (by name; default its first sheet) and reads its
    /// header row.
    pub fn open(input: R, sheet: Option<&str>) -> Result<Self, FileError> {
        let mut package = Package::open(input)?;
        let part = |package: &mut Package<R>, name: &str| -> Result<Vec<u8>, FileError> {
            let e = package
                .find(name)
                .ok_or_else(|| invalid(format!("not an XLSX workbook: it has no part {name}")))?;
            package.part(&e)
        };
        let root = relationships(&part(&mut package, "_rels/.rels")?, "_rels/.rels")?;
        let workbook = root
            .iter()
            .find(|r| r.kind.ends_with("/officeDocument"))
            .map(|r| resolve("", &r.target))
            .ok_or_else(|| invalid("not an XLSX workbook: the package names no document"))?;
        let mut sheets: Vec<(String, String)> = Vec::new();
        let mut date1904 = false;
        let wb = part(&mut package, &workbook)?;
        each_element(&wb, &workbook, |name, e| {
            match name {
                b"sheet" => sheets.push((
                    attr(e, b"name", &workbook)?.unwrap_or_default(),
                    attr(e, b"id", &workbook)?.unwrap_or_default(),
                )),
                b"workbookPr" => {
                    date1904 = matches!(
                        attr(e, b"date1904", &workbook)?.as_deref(),
                        Some("1" | "true")
                    )
                }
                _ => {}
            }
            Ok(())
        })?;
        let wb_rels_name = rels_of(&workbook);
        let wb_rels = relationships(&part(&mut package, &wb_rels_name)?, &wb_rels_name)?;
        let (sheet_name, sheet_rel) = match sheet {
            Some(want) => sheets.iter().find(|(n, _)| n == want).ok_or_else(|| {
                FileError::new(
                    "sheet_not_found",
                    format!(
                        "the workbook has no sheet '{want}' (its sheets: {})",
                        sheets
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?,
            None => sheets
                .first()
                .ok_or_else(|| invalid("the workbook has no sheet"))?,
        }
        .clone();
        let rel = wb_rels
            .iter()
            .find(|r| r.id == sheet_rel)
            .ok_or_else(|| invalid(format!("sheet '{sheet_name}' has no part")))?;
        if !rel.kind.ends_with("/worksheet") {
            return Err(invalid(format!(
                "sheet '{sheet_name}' is not a worksheet (a chart?)"
            )));
        }
        let sheet_part = resolve(&workbook, &rel.target);
        let by_kind = |kind: &str| {
            wb_rels
                .iter()
                .find(|r| r.kind.ends_with(kind))
                .map(|r| resolve(&workbook, &r.target))
        };
        let styles = match by_kind("/styles").and_then(|p| package.find(&p)) {
            Some(e) => styles(&package.part(&e)?, &e.name)?,
            None => Vec::new(),
        };
        let shared = match by_kind("/sharedStrings").and_then(|p| package.find(&p)) {
            Some(e) => {
                let stream = package.stream(&e, MAX_SHARED_XML)?;
                SharedStrings::read(BufReader::with_capacity(64 << 10, stream), &e.name)?
            }
            None => SharedStrings::default(),
        };
        let entry = package
            .find(&sheet_part)
            .ok_or_else(|| invalid(format!("the workbook lacks its part {sheet_part}")))?;
        let stream = package.into_stream(&entry, MAX_SHEET_XML)?;
        let mut sheet = Sheet {
            xml: Xml::from_reader(BufReader::with_capacity(64 << 10, stream)),
            buf: Vec::new(),
            part: sheet_part,
            shared,
            styles,
            date1904,
            last_row: 0,
            done: false,
        };
        let header_row = loop {
            match sheet.next_row()? {
                None => {
                    return Err(invalid(format!(
                        "sheet '{sheet_name}' is empty: no header row"
                    )))
                }
                Some(r)
                    if r.cells
                        .iter()
                        .all(|(_, v)| v.as_ref().is_ok_and(|v| v.trim().is_empty())) => {}
                Some(r) => break r,
            }
        };
        let mut header: Vec<String> = Vec::new();
        for (col, value) in header_row.cells {
            let at = || format!("{}{}", column_letters(col), header_row.number);
            let name = value.map_err(|p| invalid(format!("header cell {} {p}", at())))?;
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if (col as usize) > header.len() {
                return Err(invalid(format!(
                    "the header row (row {}) has an empty cell before column name '{name}' in {}",
                    header_row.number,
                    at()
                )));
            }
            header.push(name.to_owned());
        }
        Ok(XlsxRows { header, sheet })
    }
}

impl<R: Read> Rows for XlsxRows<R> {
    fn header(&self) -> &[String] {
        &self.header
    }

    fn next_row(&mut self) -> Option<Result<Row, FileError>> {
        loop {
            let row = match self.sheet.next_row() {
                Ok(Some(r)) => r,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            let mut values = vec![String::new(); self.header.len()];
            let mut problems = Vec::new();
            let mut any = false;
            for (col, value) in row.cells {
                let at = || format!("{}{}", column_letters(col), row.number);
                match value {
                    Ok(v) => {
                        let v = v.trim();
                        if v.is_empty() {
                            continue;
                        }
                        any = true;
                        match values.get_mut(col as usize) {
                            Some(slot) => *slot = v.to_owned(),
                            None => problems.push(format!(
                                "cell {} has a value but its column has no header",
                                at()
                            )),
                        }
                    }
                    Err(p) => {
                        any = true;
                        problems.push(format!("cell {} {p}", at()));
                    }
                }
            }
            if !any {
                continue;
            }
            return Some(Ok(if problems.is_empty() {
                Ok(values)
            } else {
                Err(RowProblem {
                    code: "invalid_xlsx_row",
                    message: format!("sheet row {}: {}", row.number, problems.join("; ")),
                })
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    const CT: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#;
    const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
    const WB_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="/xl/worksheets/sheet2.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/><Relationship Id="rId4" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#;
    const STYLES: &str = r#"<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy&quot;年&quot;m&quot;月&quot;d&quot;日&quot;"/></numFmts><cellStyleXfs count="1"><xf numFmtId="14"/></cellStyleXfs><cellXfs count="4"><xf numFmtId="0"/><xf numFmtId="14" applyNumberFormat="1"/><xf numFmtId="164"/><xf numFmtId="20"/></cellXfs></styleSheet>"#;
    const SHARED: &str = r#"<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="5" uniqueCount="5"><si><t>document_id</t></si><si><t>姓名</t></si><si><r><t>张</t></r><r><rPr><b/></rPr><t xml:space="preserve">三 </t></r><rPh sb="0" eb="1"><t>チョウ</t></rPh></si><si><t>a_x000D_b &amp; c</t></si><si><t>入职日期</t></si></sst>"#;

    fn workbook(date1904: bool) -> String {
        format!(
            r#"<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><workbookPr date1904="{}"/><sheets><sheet name="员工" sheetId="1" r:id="rId1"/><sheet name="Other" sheetId="2" r:id="rId2"/></sheets></workbook>"#,
            u8::from(date1904)
        )
    }

    fn sheet(rows: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><dimension ref="A1:D9"/><sheetData>{rows}</sheetData><mergeCells count="0"/></worksheet>"#
        )
    }

    /// A package of (name, XML) parts, deflated (or stored).
    fn package(parts: &[(&str, String)], deflate: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, xml) in parts {
            let data = if deflate {
                let mut enc =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(xml.as_bytes()).expect("deflate");
                enc.finish().expect("deflate")
            } else {
                xml.as_bytes().to_vec()
            };
            let crc = crate::zip::crc32(xml.as_bytes());
            let offset = out.len() as u32;
            let method: u16 = if deflate { 8 } else { 0 };
            let head = |sig: &[u8], out: &mut Vec<u8>| {
                out.extend_from_slice(sig);
                if sig == b"PK\x01\x02" {
                    out.extend_from_slice(&20u16.to_le_bytes());
                }
                out.extend_from_slice(&20u16.to_le_bytes());
                out.extend_from_slice(&0u16.to_le_bytes());
                out.extend_from_slice(&method.to_le_bytes());
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(&crc.to_le_bytes());
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(&(xml.len() as u32).to_le_bytes());
                out.extend_from_slice(&(name.len() as u16).to_le_bytes());
                out.extend_from_slice(&0u16.to_le_bytes());
            };
            head(b"PK\x03\x04", &mut out);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&data);
            head(b"PK\x01\x02", &mut central);
            // Comment length, disk, internal and external attributes.
            central.extend_from_slice(&[0; 10]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
        out.extend_from_slice(&(parts.len() as u16).to_le_bytes());
        out.extend_from_slice(&(parts.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn book(sheet1: &str, date1904: bool, deflate: bool) -> Vec<u8> {
        package(
            &[
                ("[Content_Types].xml", CT.to_owned()),
                ("_rels/.rels", ROOT_RELS.to_owned()),
                ("xl/workbook.xml", workbook(date1904)),
                ("xl/_rels/workbook.xml.rels", WB_RELS.to_owned()),
                ("xl/styles.xml", STYLES.to_owned()),
                ("xl/sharedStrings.xml", SHARED.to_owned()),
                ("xl/worksheets/sheet1.xml", sheet(sheet1)),
                (
                    "xl/worksheets/sheet2.xml",
                    sheet(r#"<row r="1"><c r="A1" t="inlineStr"><is><t>other</t></is></c></row>"#),
                ),
            ],
            deflate,
        )
    }

    fn read(bytes: Vec<u8>, sheet: Option<&str>) -> Result<(Vec<String>, Vec<Row>), FileError> {
        let mut rows = XlsxRows::open(Cursor::new(bytes), sheet)?;
        let header = rows.header().to_vec();
        let mut out = Vec::new();
        while let Some(r) = rows.next_row() {
            out.push(r?);
        }
        Ok((header, out))
    }

    const HEADER: &str = r#"<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>4</v></c><c r="D1" t="inlineStr"><is><t>电话</t></is></c></row>"#;

    #[test]
    fn values_come_out_as_people_typed_them() {
        let rows = format!(
            "{HEADER}\
             <row r=\"2\" spans=\"1:4\"><c r=\"A2\" t=\"str\"><f>\"HR-\"&amp;1</f><v>HR-1</v></c><c r=\"B2\" t=\"s\"><v>2</v></c><c r=\"C2\" s=\"1\"><v>46357</v></c><c r=\"D2\"><v>13800138000</v></c></row>\
             <row r=\"3\"><c r=\"A3\" t=\"inlineStr\"><is><t>HR-2</t></is></c><c r=\"B3\" t=\"s\"><v>3</v></c><c r=\"C3\" s=\"2\"><v>59</v></c><c r=\"D3\"><v>1.5</v></c></row>\
             <row r=\"4\"/>\
             <row r=\"5\"><c r=\"A5\" s=\"1\"/><c r=\"B5\" t=\"inlineStr\"><is><t>  </t></is></c></row>\
             <row r=\"7\"><c t=\"inlineStr\"><is><t>HR-3</t></is></c><c r=\"C7\" s=\"1\"><v>61.75</v></c><c t=\"b\"><v>1</v></c></row>\
             <row r=\"8\"><c r=\"A8\" t=\"d\"><v>2026-12-01T00:00:00</v></c><c r=\"C8\" s=\"3\"><v>0.5</v></c></row>"
        );
        for deflate in [false, true] {
            let (header, got) = read(book(&rows, false, deflate), None).expect("read");
            assert_eq!(header, ["document_id", "姓名", "入职日期", "电话"]);
            let s = |v: &[&str]| Ok(v.iter().map(|s| (*s).to_owned()).collect());
            assert_eq!(
                got,
                vec![
                    s(&["HR-1", "张三", "2026-12-01", "13800138000"]),
                    // 59: 1900-02-28; the custom format 年月日 is a date format too.
                    s(&["HR-2", "a\rb & c", "1900-02-28", "1.5"]),
                    // After the 29 February 1900 that never was, with a time of day.
                    s(&["HR-3", "", "1900-03-01 18:00:00", "TRUE"]),
                    s(&["2026-12-01", "", "12:00:00", ""]),
                ],
                "deflated: {deflate}"
            );
        }
    }

    #[test]
    fn the_1904_date_system_and_a_named_sheet() {
        let rows = format!("{HEADER}<row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>X</t></is></c><c r=\"C2\" s=\"1\"><v>44895</v></c></row>");
        let (_, got) = read(book(&rows, true, true), None).expect("read");
        assert_eq!(got[0].as_ref().expect("row")[2], "2026-12-01");
        let (header, got) = read(book(&rows, false, true), Some("Other")).expect("read");
        assert_eq!((header, got.len()), (vec!["other".to_owned()], 0));
        let missing = read(book(&rows, false, true), Some("Sheet9")).expect_err("refused");
        assert_eq!(missing.code, "sheet_not_found");
        assert!(missing.detail.contains("员工, Other"), "{}", missing.detail);
    }

    #[test]
    fn unreadable_cells_make_their_row_invalid_and_name_the_cell() {
        let rows = format!(
            "{HEADER}\
             <row r=\"2\"><c r=\"A2\" t=\"e\"><v>#N/A</v></c></row>\
             <row r=\"3\"><c r=\"A3\"><v>1.10105194912310E+17</v></c></row>\
             <row r=\"4\"><c r=\"F4\" t=\"inlineStr\"><is><t>stray</t></is></c></row>\
             <row r=\"5\"><c r=\"C5\" s=\"1\"><v>60</v></c></row>\
             <row r=\"6\"><c r=\"A6\" t=\"s\"><v>99</v></c></row>\
             <row r=\"7\"><c r=\"A7\" t=\"inlineStr\"><is><t>fine</t></is></c></row>"
        );
        let (_, got) = read(book(&rows, false, true), None).expect("read");
        let problems: Vec<String> = got
            .iter()
            .map(|r| match r {
                Ok(_) => "ok".to_owned(),
                Err(p) => format!("{}: {}", p.code, p.message),
            })
            .collect();
        let expected = [
            "invalid_xlsx_row: sheet row 2: cell A2 holds the error #N/A",
            "sheet row 3: cell A3 holds the number 1.1010519491231e17",
            "sheet row 4: cell F4 has a value but its column has no header",
            "sheet row 5: cell C5 holds 1900-02-29",
            "sheet row 6: cell A6 names shared string 99",
        ];
        for (got, want) in problems.iter().zip(expected) {
            assert!(got.contains(want), "{problems:?}");
        }
        assert_eq!(problems[5], "ok");
    }

    #[test]
    fn broken_workbooks_are_refused_with_a_reason() {
        let refused = |bytes: Vec<u8>| read(bytes, None).expect_err("refused");
        assert_eq!(
            refused(b"document_id,name\n1,2\n".to_vec()).code,
            "invalid_xlsx"
        );
        let ole = refused([0xD0, 0xCF, 0x11, 0xE0].repeat(10));
        assert!(ole.detail.contains("password-protected"), "{}", ole.detail);
        // A damaged part: one byte of the sheet changed (stored, so the CRC notices).
        let mut damaged = book(HEADER, false, false);
        let at = damaged
            .windows(4)
            .position(|w| w == b"HR-1".as_slice() || w == b"\xe7\x94\xb5\xe8")
            .expect("a byte of the sheet");
        damaged[at] ^= 1;
        let e = refused(damaged);
        assert!(e.detail.contains("CRC"), "{e:?}");
        // A truncated file has no end record.
        let whole = book(HEADER, false, true);
        assert_eq!(
            refused(whole[..whole.len() / 2].to_vec()).code,
            "invalid_xlsx"
        );
        // No header row.
        let e = refused(book("<row r=\"1\"/>", false, true));
        assert!(e.detail.contains("no header row"), "{e:?}");
        // An empty header cell before a name.
        let e = refused(book(
            r#"<row r="1"><c r="B1" t="inlineStr"><is><t>x</t></is></c></row>"#,
            false,
            true,
        ));
        assert!(
            e.detail.contains("empty cell before column name 'x' in B1"),
            "{e:?}"
        );
        // Sheet XML cut off in the middle.
        let sheet_xml = sheet(
            r#"<row r="1"><c r="A1" t="inlineStr"><is><t>a</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>b</t></is></c></row>"#,
        );
        let cut = package(
            &[
                ("_rels/.rels", ROOT_RELS.to_owned()),
                ("xl/workbook.xml", workbook(false)),
                ("xl/_rels/workbook.xml.rels", WB_RELS.to_owned()),
                (
                    "xl/worksheets/sheet1.xml",
                    sheet_xml[..sheet_xml.len() - 40].to_owned(),
                ),
            ],
            true,
        );
        let mut rows = XlsxRows::open(Cursor::new(cut), None).expect("the header reads");
        let end = std::iter::from_fn(|| rows.next_row()).last();
        assert!(matches!(
            end,
            Some(Err(FileError {
                code: "invalid_xlsx",
                ..
            }))
        ));
    }

    #[test]
    fn a_cell_without_markup_for_megabytes_is_refused_not_buffered() {
        let long = "x".repeat(MAX_RUN + 10);
        let rows = format!(
            "{HEADER}<row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>{long}</t></is></c></row>"
        );
        let mut rows = XlsxRows::open(Cursor::new(book(&rows, false, true)), None).expect("open");
        let got = rows.next_row().expect("an answer");
        let e = match got {
            Err(e) => e,
            Ok(r) => panic!(
                "read: {:?}",
                r.map(|v| v.iter().map(String::len).collect::<Vec<_>>())
            ),
        };
        assert!(e.detail.contains("an XML event longer than"), "{e:?}");
    }

    #[test]
    fn comments_cdata_and_instructions_are_bounded_and_doctypes_refused() {
        let mut b = Bound::default();
        // A comment full of `<` and `>` ends at its terminator; the text after it is counted anew.
        b.feed(b"<row><!-- < > <<< --- -> --><c>")
            .expect("a comment");
        assert!(b.special.is_none() && b.opening.is_none());
        b.feed(b"<![CDATA[ ]] ]]] < > ]]>text").expect("CDATA");
        assert!(b.special.is_none());
        b.feed(b"<?pi ? > ?>").expect("a processing instruction");
        assert!(b.special.is_none());
        let mut b = Bound::default();
        let mut comment = b"<!--".to_vec();
        comment.extend(std::iter::repeat_n(b'<', MAX_RUN + 1));
        assert!(
            b.feed(&comment).is_err(),
            "a comment longer than an event may be"
        );
        let mut b = Bound::default();
        assert!(b.feed(b"<!DOCTYPE x [<!ENTITY a 'b'>]>").is_err());
        // The terminator found across reads.
        let mut b = Bound::default();
        for chunk in [&b"<!-- x -"[..], b"-", b">"] {
            b.feed(chunk).expect("fed");
        }
        assert!(b.special.is_none());
    }

    #[test]
    fn cells_out_of_order_and_oversized_rows_are_refused() {
        let backwards = format!(
            "{HEADER}<row r=\"2\"><c r=\"B2\" t=\"inlineStr\"><is><t>x</t></is></c><c r=\"A2\" t=\"inlineStr\"><is><t>y</t></is></c></row>"
        );
        let e = read(book(&backwards, false, true), None).expect_err("refused");
        assert!(e.detail.contains("out of order"), "{e:?}");
        // One shared string referred to by every cell of a row: the row's text is bounded.
        let big = "x".repeat(100 << 10);
        let mut cells = String::new();
        for col in 0..20 {
            cells.push_str(&format!(
                "<c r=\"{}2\" t=\"inlineStr\"><is><t>{big}</t></is></c>",
                column_letters(col)
            ));
        }
        let rows = format!("{HEADER}<row r=\"2\">{cells}</row>");
        let e = read(book(&rows, false, true), None).expect_err("refused");
        assert!(e.detail.contains("KiB of text"), "{e:?}");
        let long = "y".repeat(MAX_CELL + 1);
        let rows = format!(
            "{HEADER}<row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>{long}</t></is></c></row>"
        );
        let e = read(book(&rows, false, true), None).expect_err("refused");
        assert!(e.detail.contains("longer than a cell may be"), "{e:?}");
    }

    #[test]
    fn custom_formats_are_told_apart() {
        assert_eq!(custom_format("yyyy/mm/dd"), Shown::Date);
        assert_eq!(custom_format("[$-804]yyyy\"年\"m\"月\""), Shown::Date);
        assert_eq!(custom_format("[h]:mm:ss"), Shown::Time);
        assert_eq!(custom_format("hh:mm"), Shown::Time);
        assert_eq!(custom_format("0.00\"days\""), Shown::Number);
        assert_eq!(custom_format("[Red]#,##0"), Shown::Number);
        assert_eq!(custom_format("General"), Shown::Number);
        assert_eq!(custom_format("@"), Shown::Number);
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(27), "AB");
        assert_eq!(column_of("AB12"), Some(27));
        assert_eq!(column_of("XFE1"), None);
        assert_eq!(
            unescape_xstring("_x005F_x0041_ and _x0041_".to_owned()),
            "_x0041_ and A"
        );
    }
}
