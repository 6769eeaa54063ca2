//! Request bodies and signed outputs. A body that declares a small length is held in memory
//! when the memory budget allows (a byte budget shared by all requests, so memory stays
//! bounded however many clients upload at once); anything else streams to a spool file under
//! the data dir, never whole in memory. A spool file is removed when its guard drops.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::problem::ApiError;

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    /// Bodies held in memory, in KiB (input and output both counted).
    memory: Arc<Semaphore>,
    /// Largest body held in memory.
    memory_body: u64,
}

/// A file in the spool, removed on drop.
#[derive(Debug)]
pub struct SpoolFile {
    path: PathBuf,
}

impl SpoolFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where a received body is.
#[derive(Debug)]
pub enum Content {
    /// In memory, with its share of the memory budget (room for the signed copy included).
    Memory {
        bytes: Arc<[u8]>,
        /// Returned to the budget when the request is done with the body.
        _budget: OwnedSemaphorePermit,
    },
    File(SpoolFile),
}

/// A received body.
#[derive(Debug)]
pub struct Received {
    pub content: Content,
    pub sha256: String,
}

impl Received {
    /// Opens it as a PDF (blocking: a file is mapped).
    pub fn document(&self) -> seald_pades::Result<seald_pades::Document> {
        match &self.content {
            Content::Memory { bytes, .. } => seald_pades::Document::from_bytes(bytes.clone()),
            Content::File(f) => seald_pades::Document::open(f.path()),
        }
    }
}

impl Received {
    /// Whether the body begins with `len` bytes whose SHA-256 is `sha256` (a template PDF the
    /// document was made from by appending revisions).
    pub async fn begins_with(&self, len: u64, sha256: &str) -> Result<bool, ApiError> {
        let prefix = match &self.content {
            Content::Memory { bytes, .. } => {
                let Some(prefix) = usize::try_from(len).ok().and_then(|n| bytes.get(..n)) else {
                    return Ok(false);
                };
                Sha256::digest(prefix)
            }
            Content::File(f) => {
                use tokio::io::AsyncReadExt;
                let file = tokio::fs::File::open(f.path()).await.map_err(|e| {
                    ApiError::internal(format!("cannot read the spooled body: {e}"))
                })?;
                let mut reader = file.take(len);
                let mut hash = Sha256::new();
                let mut buf = vec![0u8; 64 << 10];
                let mut read = 0u64;
                loop {
                    let n = reader.read(&mut buf).await.map_err(|e| {
                        ApiError::internal(format!("cannot read the spooled body: {e}"))
                    })?;
                    if n == 0 {
                        break;
                    }
                    read += n as u64;
                    hash.update(&buf[..n]);
                }
                if read != len {
                    return Ok(false);
                }
                hash.finalize()
            }
        };
        Ok(hex::encode(prefix) == sha256)
    }
}

pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // getrandom fails only without an OS entropy source; a timestamp still makes names unique
    // enough for temporary files in that impossible case.
    if getrandom::getrandom(&mut bytes).is_err() {
        bytes[..16].copy_from_slice(
            &std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
                .to_be_bytes(),
        );
    }
    hex::encode(bytes)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "Document too large",
        format!(
            "the body is larger than the limit of {} MiB (limits.max_body_mib)",
            limit >> 20
        ),
    )
}

fn incomplete(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "body_incomplete",
        "Body incomplete",
        format!("the request body could not be read to its end: {e}"),
    )
}

fn spool_error(e: std::io::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "spool_unavailable",
        "Spool unavailable",
        format!("cannot write the spool file: {e}"),
    )
    .retry_after(5)
}

impl Spool {
    /// A spool in `dir`, holding bodies of at most `memory_body` bytes in memory within a
    /// budget of `memory_budget` bytes.
    pub fn new(dir: PathBuf, memory_body: u64, memory_budget: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(&dir)?;
        // Left by a crash: nothing in the spool outlives its request.
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(Spool {
            dir,
            memory: Arc::new(Semaphore::new((memory_budget >> 10) as usize)),
            memory_body,
        })
    }

    /// The memory budget's share for a body of `len` bytes and its signed copy.
    fn memory_share(&self, len: u64) -> Option<OwnedSemaphorePermit> {
        if len > self.memory_body {
            return None;
        }
        let kib = u32::try_from((2 * len + (64 << 10)) >> 10).ok()?;
        self.memory.clone().try_acquire_many_owned(kib).ok()
    }

    /// A fresh name in the spool (the file is not created).
    pub fn file(&self, suffix: &str) -> SpoolFile {
        SpoolFile {
            path: self.dir.join(format!("{}{suffix}", random_id())),
        }
    }

    /// Streams `body` into a spool file, hashing it; at most `limit` bytes.
    pub async fn receive(
        &self,
        body: Body,
        declared: Option<u64>,
        limit: u64,
    ) -> Result<Received, ApiError> {
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        let mut body = body;
        let mut hash = Sha256::new();
        if let Some(permit) = declared.and_then(|n| self.memory_share(n)) {
            let declared = declared.unwrap_or(0);
            let mut bytes = Vec::with_capacity(declared as usize);
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.map_err(incomplete)?.into_data() else {
                    continue;
                };
                // hyper holds the body to its Content-Length; this is a second fence.
                if (bytes.len() + data.len()) as u64 > declared {
                    return Err(incomplete("more bytes than Content-Length"));
                }
                hash.update(&data);
                bytes.extend_from_slice(&data);
            }
            return Ok(Received {
                content: Content::Memory {
                    bytes: bytes.into(),
                    _budget: permit,
                },
                sha256: hex::encode(hash.finalize()),
            });
        }
        let file = self.file(".in.pdf");
        let out = tokio::fs::File::create(file.path())
            .await
            .map_err(spool_error)?;
        let mut out = tokio::io::BufWriter::with_capacity(256 << 10, out);
        let mut hash = Sha256::new();
        let mut len = 0u64;
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "body_incomplete",
                    "Body incomplete",
                    format!("the request body could not be read to its end: {e}"),
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            len += data.len() as u64;
            if len > limit {
                return Err(too_large(limit));
            }
            hash.update(&data);
            out.write_all(&data).await.map_err(spool_error)?;
        }
        out.flush().await.map_err(spool_error)?;
        Ok(Received {
            content: Content::File(file),
            sha256: hex::encode(hash.finalize()),
        })
    }
}

/// SHA-256 (hex) of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 (hex) of a file, read in blocks (blocking).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hex::encode(hash.finalize()))
}
