//! Request bodies and signed outputs on disk under the data dir, never whole in memory. A
//! spool file is removed when its guard drops, unless it is kept (an idempotent response).

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::problem::ApiError;

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
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

/// A received body.
#[derive(Debug)]
pub struct Received {
    pub file: SpoolFile,
    pub sha256: String,
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
    pub fn new(dir: PathBuf) -> std::io::Result<Spool> {
        std::fs::create_dir_all(&dir)?;
        // Left by a crash: nothing in the spool outlives its request.
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(Spool { dir })
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
            file,
            sha256: hex::encode(hash.finalize()),
        })
    }
}

/// SHA-256 (hex) of a file, read in blocks (blocking).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hex::encode(hash.finalize()))
}
