//! Random-access reading of the input: a file (read with positioned reads, never loaded
//! whole) or bytes in memory (tests, fuzzing).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::parse::{PResult, ParseError, Parser, MAX_DEPTH};

/// The largest window an object may need (dictionaries and arrays; stream data is read
/// separately). Anything larger is refused rather than read into memory.
pub(crate) const MAX_OBJECT_BYTES: usize = 8 << 20;
const FIRST_WINDOW: usize = 4096;

#[derive(Debug, Clone)]
enum Bytes {
    File(Arc<File>),
    Memory(Arc<[u8]>),
}

/// The PDF being read.
#[derive(Debug, Clone)]
pub struct Source {
    bytes: Bytes,
    len: u64,
    path: PathBuf,
}

impl Source {
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Ok(Source {
            bytes: Bytes::File(Arc::new(file)),
            len,
            path: path.to_owned(),
        })
    }

    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> Self {
        let bytes: Arc<[u8]> = bytes.into();
        Source {
            len: bytes.len() as u64,
            bytes: Bytes::Memory(bytes),
            path: PathBuf::from("<memory>"),
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// The first `len` bytes only: the file as it was when a revision ending there was the
    /// newest.
    pub fn prefix(&self, len: u64) -> Source {
        Source {
            bytes: self.bytes.clone(),
            len: len.min(self.len),
            path: self.path.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end of the file).
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        if offset >= self.len {
            return Ok(Vec::new());
        }
        let len = len.min(usize::try_from(self.len - offset).unwrap_or(usize::MAX));
        match &self.bytes {
            Bytes::Memory(m) => {
                let start = offset as usize;
                Ok(m[start..start + len].to_vec())
            }
            Bytes::File(f) => {
                let mut buf = vec![0u8; len];
                read_exact_at(f, &mut buf, offset).map_err(|source| Error::Io {
                    path: self.path.clone(),
                    source,
                })?;
                Ok(buf)
            }
        }
    }

    /// Fills `buf` from `offset` (less at the end of the file); returns how much was read.
    pub fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let len = buf
            .len()
            .min(usize::try_from(self.len - offset).unwrap_or(usize::MAX));
        match &self.bytes {
            Bytes::Memory(m) => {
                let start = offset as usize;
                buf[..len].copy_from_slice(&m[start..start + len]);
            }
            Bytes::File(f) => {
                read_exact_at(f, &mut buf[..len], offset).map_err(|source| Error::Io {
                    path: self.path.clone(),
                    source,
                })?;
            }
        }
        Ok(len)
    }

    /// Runs `parse` on a window starting at `offset`, growing the window while the parser needs
    /// more, up to [`MAX_OBJECT_BYTES`].
    pub(crate) fn parse_at<T>(
        &self,
        offset: u64,
        what: &str,
        parse: impl Fn(&mut Parser<'_>) -> PResult<T>,
    ) -> Result<T> {
        if offset >= self.len {
            return Err(Error::Damaged(format!(
                "{what} is said to be at byte {offset}, past the end of the file ({} bytes)",
                self.len
            )));
        }
        let mut window = FIRST_WINDOW;
        loop {
            let buf = self.read_at(offset, window)?;
            let complete = offset + buf.len() as u64 >= self.len;
            let mut parser = Parser::new(&buf, offset, complete);
            match parse(&mut parser) {
                Ok(value) => return Ok(value),
                Err(ParseError::NeedMore) if !complete && window < MAX_OBJECT_BYTES => {
                    window = (window * 4).min(MAX_OBJECT_BYTES);
                }
                Err(ParseError::NeedMore) => {
                    return Err(Error::TooLarge {
                        what: format!("{what} at byte {offset}"),
                        size: window as u64,
                        max: MAX_OBJECT_BYTES as u64,
                    })
                }
                Err(e) => return Err(convert(e)),
            }
        }
    }
}

pub(crate) fn convert(e: ParseError) -> Error {
    match e {
        ParseError::Syntax { offset, what } => Error::Syntax { offset, what },
        ParseError::TooDeep { offset } => Error::TooDeep {
            offset,
            max: MAX_DEPTH,
        },
        ParseError::NeedMore => Error::Damaged("unexpected end of data".to_owned()),
    }
}

#[cfg(unix)]
fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = f.try_clone()?;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}
