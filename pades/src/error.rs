//! The one error type of this crate.

use std::path::PathBuf;

/// Why a PDF could not be read, signed or verified. Messages name the offset or object where
/// it went wrong and, where the user can act, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("not a PDF: {0}")]
    NotPdf(String),

    #[error("the PDF is damaged: {0} (it would have to be repaired, which rewrites it; seald signs only intact files)")]
    Damaged(String),

    #[error("syntax error at byte {offset}: {what}")]
    Syntax { offset: u64, what: String },

    #[error("objects nested more than {max} deep at byte {offset}")]
    TooDeep { offset: u64, max: usize },

    #[error("the PDF is encrypted; seald does not sign encrypted documents (remove the encryption first, e.g. qpdf --decrypt)")]
    Encrypted,

    #[error("object {0} is missing")]
    MissingObject(String),

    #[error("{what} is too large ({size} bytes, at most {max})")]
    TooLarge { what: String, size: u64, max: u64 },

    #[error("the document has {pages} page(s); page {requested} does not exist")]
    NoSuchPage { requested: u32, pages: u32 },

    #[error("unsupported: {0}")]
    Unsupported(String),

    #[error("the document is certified with no changes allowed (DocMDP P=1): adding a signature would invalidate its certification")]
    CertifiedNoChanges,

    #[error("no signature field named '{0}'")]
    NoSuchField(String),

    #[error("signature field '{0}' is already signed")]
    FieldAlreadySigned(String),

    #[error("the signature image is unusable: {0}")]
    Image(String),

    #[error("invalid signing request: {0}")]
    InvalidRequest(String),

    #[error("the signer failed: {0}")]
    Signer(#[from] seald_signer::SignError),

    #[error("the signer's certificate is unusable: {0}")]
    Certificate(String),

    #[error("cannot encode the signature: {0}")]
    Encoding(String),

    #[error("the signature ({needed} bytes) does not fit its placeholder ({room} bytes)")]
    PlaceholderTooSmall { needed: usize, room: usize },

    #[error("timestamping failed: {0}")]
    Timestamp(String),

    #[error("cannot fill the template: {0}")]
    Fill(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
