//! The PDF object syntax: a parser over a window of the file.
//!
//! The reader hands the parser a window starting at an object's offset; when an object runs
//! past the window's end the parser says so ([`ParseError::NeedMore`]) and the reader retries
//! with a larger window, so only the bytes an object occupies are ever read.

use crate::object::{Dict, Name, ObjRef, Object, PdfString, Stream};

/// Containers nested deeper than this are refused (a hostile file could exhaust the stack).
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ParseError {
    /// The window ended inside the object; a larger one may do.
    NeedMore,
    Syntax {
        offset: u64,
        what: String,
    },
    TooDeep {
        offset: u64,
    },
}

pub(crate) type PResult<T> = Result<T, ParseError>;

fn is_whitespace(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_regular(b: u8) -> bool {
    !is_whitespace(b) && !is_delimiter(b)
}

pub(crate) struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// True when `buf` holds everything there is (an object stream, or the file's tail):
    /// running out is then the end, not a reason to read more.
    complete: bool,
    depth: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(buf: &'a [u8], base: u64, complete: bool) -> Self {
        Parser {
            buf,
            pos: 0,
            base,
            complete,
            depth: 0,
        }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn syntax(&self, what: impl Into<String>) -> ParseError {
        ParseError::Syntax {
            offset: self.offset(),
            what: what.into(),
        }
    }

    fn eof(&self) -> ParseError {
        if self.complete {
            self.syntax("unexpected end of data")
        } else {
            ParseError::NeedMore
        }
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Skips whitespace and comments.
    pub(crate) fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            if is_whitespace(b) {
                self.pos += 1;
            } else if b == b'%' {
                while let Some(c) = self.peek() {
                    if c == b'\r' || c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// The next run of regular characters, without consuming it.
    fn peek_word(&self) -> &'a [u8] {
        let start = self.pos;
        let mut end = start;
        while end < self.buf.len() && is_regular(self.buf[end]) {
            end += 1;
        }
        &self.buf[start..end]
    }

    /// Consumes `word` if it comes next as a whole keyword.
    pub(crate) fn eat_keyword(&mut self, word: &[u8]) -> PResult<bool> {
        self.skip_ws();
        let found = self.peek_word();
        if found == word {
            if self.pos + found.len() >= self.buf.len() && !self.complete {
                // "stream" could be the start of "streamx": need to see the next byte.
                return Err(ParseError::NeedMore);
            }
            self.pos += found.len();
            Ok(true)
        } else if found.len() < word.len()
            && word.starts_with(found)
            && self.pos + found.len() >= self.buf.len()
            && !self.complete
        {
            Err(ParseError::NeedMore)
        } else {
            Ok(false)
        }
    }

    /// Reads an unsigned integer token (for object headers and xref data).
    pub(crate) fn read_uint(&mut self) -> PResult<u64> {
        self.skip_ws();
        let word = self.peek_word();
        if word.is_empty() {
            return Err(if self.pos >= self.buf.len() {
                self.eof()
            } else {
                self.syntax("expected a number")
            });
        }
        if self.pos + word.len() >= self.buf.len() && !self.complete {
            return Err(ParseError::NeedMore);
        }
        let text = std::str::from_utf8(word).map_err(|_| self.syntax("expected a number"))?;
        let value = text
            .parse::<u64>()
            .map_err(|_| self.syntax(format!("expected a number, found '{text}'")))?;
        self.pos += word.len();
        Ok(value)
    }

    /// Parses `N G obj <object>`; for a stream, stops at the start of its data.
    pub(crate) fn parse_indirect(&mut self) -> PResult<(ObjRef, Object)> {
        let num = self.read_uint()?;
        let gen = self.read_uint()?;
        if !self.eat_keyword(b"obj")? {
            return Err(self.syntax("expected 'obj'"));
        }
        let reference = ObjRef::new(
            u32::try_from(num).map_err(|_| self.syntax("object number out of range"))?,
            u16::try_from(gen).map_err(|_| self.syntax("generation out of range"))?,
        );
        let object = self.parse_object()?;
        if let Object::Dict(dict) = object {
            if self.eat_keyword(b"stream")? {
                // The keyword is followed by CRLF or LF (a lone CR is tolerated).
                match (self.peek(), self.buf.get(self.pos + 1).copied()) {
                    (Some(b'\r'), Some(b'\n')) => self.pos += 2,
                    (Some(b'\r'), None) if !self.complete => return Err(ParseError::NeedMore),
                    (Some(b'\n'), _) | (Some(b'\r'), _) => self.pos += 1,
                    (None, _) => return Err(self.eof()),
                    _ => return Err(self.syntax("'stream' not followed by an end of line")),
                }
                return Ok((
                    reference,
                    Object::Stream(Stream {
                        dict,
                        data_offset: self.offset(),
                    }),
                ));
            }
            return Ok((reference, Object::Dict(dict)));
        }
        Ok((reference, object))
    }

    pub(crate) fn parse_object(&mut self) -> PResult<Object> {
        self.skip_ws();
        let Some(b) = self.peek() else {
            return Err(self.eof());
        };
        match b {
            b'/' => Ok(Object::Name(self.parse_name()?)),
            b'(' => Ok(Object::String(self.parse_literal()?)),
            b'[' => self.nested(|p| {
                p.pos += 1;
                let mut items = Vec::new();
                loop {
                    p.skip_ws();
                    match p.peek() {
                        None => return Err(p.eof()),
                        Some(b']') => {
                            p.pos += 1;
                            return Ok(Object::Array(items));
                        }
                        Some(_) => items.push(p.parse_object()?),
                    }
                }
            }),
            b'<' => match self.buf.get(self.pos + 1) {
                Some(b'<') => self.nested(|p| p.parse_dict().map(Object::Dict)),
                Some(_) => Ok(Object::String(self.parse_hex()?)),
                None => Err(self.eof()),
            },
            b'+' | b'-' | b'.' | b'0'..=b'9' => self.parse_number_or_ref(),
            _ => {
                let word = self.peek_word();
                if self.pos + word.len() >= self.buf.len() && !self.complete {
                    return Err(ParseError::NeedMore);
                }
                let object = match word {
                    b"true" => Object::Bool(true),
                    b"false" => Object::Bool(false),
                    b"null" => Object::Null,
                    _ => {
                        let shown = String::from_utf8_lossy(&word[..word.len().min(20)]);
                        return Err(self.syntax(if word.is_empty() {
                            format!("unexpected character 0x{b:02x}")
                        } else {
                            format!("unexpected '{shown}'")
                        }));
                    }
                };
                self.pos += word.len();
                Ok(object)
            }
        }
    }

    fn nested(&mut self, f: impl FnOnce(&mut Self) -> PResult<Object>) -> PResult<Object> {
        if self.depth >= MAX_DEPTH {
            return Err(ParseError::TooDeep {
                offset: self.offset(),
            });
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    pub(crate) fn parse_dict(&mut self) -> PResult<Dict> {
        // At "<<".
        self.pos += 2;
        let mut dict = Dict::new();
        loop {
            self.skip_ws();
            match (self.peek(), self.buf.get(self.pos + 1).copied()) {
                (None, _) => return Err(self.eof()),
                (Some(b'>'), Some(b'>')) => {
                    self.pos += 2;
                    return Ok(dict);
                }
                (Some(b'>'), None) => return Err(self.eof()),
                (Some(b'/'), _) => {
                    let key = self.parse_name()?;
                    let value = self.parse_object()?;
                    dict.0.push((key, value));
                }
                _ => return Err(self.syntax("expected a name as dictionary key")),
            }
        }
    }

    fn parse_name(&mut self) -> PResult<Name> {
        // At "/".
        self.pos += 1;
        let start = self.pos;
        while self.pos < self.buf.len() && is_regular(self.buf[self.pos]) {
            self.pos += 1;
        }
        if self.pos >= self.buf.len() && !self.complete {
            return Err(ParseError::NeedMore);
        }
        let raw = &self.buf[start..self.pos];
        let mut name = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'#' && i + 2 < raw.len() + 1 {
                if let Some(v) = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    name.push(v);
                    i += 3;
                    continue;
                }
            }
            name.push(raw[i]);
            i += 1;
        }
        Ok(Name(name))
    }

    fn parse_literal(&mut self) -> PResult<PdfString> {
        // At "(".
        self.pos += 1;
        let mut out = Vec::new();
        let mut depth = 1usize;
        loop {
            let Some(b) = self.peek() else {
                return Err(self.eof());
            };
            self.pos += 1;
            match b {
                b'(' => {
                    depth += 1;
                    out.push(b);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(PdfString::literal(out));
                    }
                    out.push(b);
                }
                b'\r' => {
                    if self.peek() == Some(b'\n') {
                        self.pos += 1;
                    }
                    out.push(b'\n');
                }
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.eof());
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((v & 0xff) as u8);
                        }
                        b'\r' => {
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }

    fn parse_hex(&mut self) -> PResult<PdfString> {
        // At "<".
        self.pos += 1;
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        loop {
            let Some(b) = self.peek() else {
                return Err(self.eof());
            };
            self.pos += 1;
            let v = match b {
                b'>' => {
                    if let Some(h) = high {
                        out.push(h << 4);
                    }
                    return Ok(PdfString {
                        bytes: out,
                        hex: true,
                    });
                }
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ if is_whitespace(b) => continue,
                _ => return Err(self.syntax("invalid character in hex string")),
            };
            match high.take() {
                Some(h) => out.push((h << 4) | v),
                None => high = Some(v),
            }
        }
    }

    fn parse_number_or_ref(&mut self) -> PResult<Object> {
        let start = self.pos;
        let word = self.peek_word();
        if self.pos + word.len() >= self.buf.len() && !self.complete {
            return Err(ParseError::NeedMore);
        }
        let text = std::str::from_utf8(word).map_err(|_| self.syntax("bad number"))?;
        let body = text.strip_prefix(['+', '-']).unwrap_or(text);
        let valid = !body.is_empty()
            && body.bytes().all(|c| c.is_ascii_digit() || c == b'.')
            && body.bytes().filter(|&c| c == b'.').count() <= 1
            && body != ".";
        if !valid {
            return Err(self.syntax(format!("bad number '{}'", &text[..text.len().min(20)])));
        }
        self.pos += word.len();
        if body.contains('.') {
            return Ok(Object::Real(word.to_vec()));
        }
        let value: i64 = text
            .parse()
            .map_err(|_| self.syntax(format!("integer out of range '{text}'")))?;
        // "N G R"?
        if value >= 0 && !text.starts_with(['+', '-']) {
            let after = self.pos;
            match self.try_ref_tail() {
                Ok(Some(gen)) => {
                    if let (Ok(num), Ok(gen)) = (u32::try_from(value), u16::try_from(gen)) {
                        return Ok(Object::Ref(ObjRef::new(num, gen)));
                    }
                    self.pos = after;
                }
                Ok(None) => self.pos = after,
                Err(ParseError::NeedMore) => {
                    self.pos = start;
                    return Err(ParseError::NeedMore);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Object::Int(value))
    }

    /// After an integer: `G R` → the generation. Leaves the position unspecified.
    fn try_ref_tail(&mut self) -> PResult<Option<u64>> {
        self.skip_ws();
        let word = self.peek_word();
        if word.is_empty() || !word.iter().all(u8::is_ascii_digit) {
            if self.pos >= self.buf.len() && !self.complete {
                return Err(ParseError::NeedMore);
            }
            return Ok(None);
        }
        if self.pos + word.len() >= self.buf.len() && !self.complete {
            return Err(ParseError::NeedMore);
        }
        let Ok(gen) = std::str::from_utf8(word).unwrap_or("x").parse::<u64>() else {
            return Ok(None);
        };
        self.pos += word.len();
        self.skip_ws();
        if self.pos >= self.buf.len() && !self.complete {
            return Err(ParseError::NeedMore);
        }
        let word = self.peek_word();
        if word == b"R" {
            if self.pos + 1 >= self.buf.len() && !self.complete {
                return Err(ParseError::NeedMore);
            }
            self.pos += 1;
            return Ok(Some(gen));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> PResult<Object> {
        Parser::new(s, 0, true).parse_object()
    }

    #[test]
    fn parses_the_object_syntax() {
        let o = parse(b"<< /Type /Page /Kids [1 0 R 2 0 R] /N -3 /R 0.5 /S (a\\(b\\)) /H <4142 3> /B true /Z null >>")
            .expect("dict");
        let d = o.as_dict().expect("dict");
        assert!(d.is_type("Page"));
        assert_eq!(
            d.get("Kids"),
            Some(&Object::Array(vec![
                Object::Ref(ObjRef::new(1, 0)),
                Object::Ref(ObjRef::new(2, 0))
            ]))
        );
        assert_eq!(d.int("N"), Some(-3));
        assert_eq!(d.get("R"), Some(&Object::Real(b"0.5".to_vec())));
        assert_eq!(
            d.get("S")
                .and_then(Object::as_string)
                .map(|s| s.bytes.clone()),
            Some(b"a(b)".to_vec())
        );
        assert_eq!(
            d.get("H")
                .and_then(Object::as_string)
                .map(|s| s.bytes.clone()),
            Some(vec![0x41, 0x42, 0x30])
        );
        assert_eq!(d.get("B"), Some(&Object::Bool(true)));
        assert_eq!(d.get("Z"), Some(&Object::Null));
    }

    #[test]
    fn a_window_ending_inside_an_object_asks_for_more() {
        for cut in [
            b"<< /A 1 0".as_slice(),
            b"[1 2",
            b"(abc",
            b"12",
            b"<< /Type /Pa",
        ] {
            assert_eq!(
                Parser::new(cut, 0, false).parse_object(),
                Err(ParseError::NeedMore),
                "{}",
                String::from_utf8_lossy(cut)
            );
        }
        // With the whole data it is a syntax error instead.
        assert!(matches!(parse(b"[1 2"), Err(ParseError::Syntax { .. })));
    }

    #[test]
    fn indirect_objects_and_stream_starts() {
        let data = b"12 0 obj\n<< /Length 5 >>\nstream\r\nhello\nendstream\nendobj\n";
        let mut p = Parser::new(data, 1000, false);
        let (r, o) = p.parse_indirect().expect("object");
        assert_eq!(r, ObjRef::new(12, 0));
        match o {
            Object::Stream(s) => assert_eq!(s.data_offset, 1000 + 33),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = vec![b'['; 100_000];
        assert!(matches!(
            Parser::new(&deep, 0, true).parse_object(),
            Err(ParseError::TooDeep { .. })
        ));
    }

    #[test]
    fn garbage_is_a_syntax_error() {
        assert!(matches!(parse(b"endobj"), Err(ParseError::Syntax { .. })));
        assert!(matches!(
            parse(b"<< 1 2 >>"),
            Err(ParseError::Syntax { .. })
        ));
        assert!(matches!(parse(b"--5"), Err(ParseError::Syntax { .. })));
        assert!(matches!(parse(b"<zz>"), Err(ParseError::Syntax { .. })));
    }

    #[test]
    fn names_decode_hex_escapes() {
        assert_eq!(
            parse(b"/A#20B ").expect("name"),
            Object::Name(Name(b"A B".to_vec()))
        );
    }
}
