//! seald's PAdES engine.
//!
//! It reads PDFs lazily (only the objects a signature needs), appends exactly one incremental
//! update per signature without touching a byte of the original, builds the CMS/CAdES
//! signature through a [`seald_signer::Signer`], and verifies signed PDFs. It does no I/O other
//! than reading its input and writing its output, and never talks to a token directly.

pub mod appearance;
mod cms;
mod crypto;
pub mod detached;
mod diff;
pub mod document;
mod error;
pub mod fill;
mod filter;
mod form;
pub mod object;
mod parse;
pub mod sign;
mod source;
pub mod time;
mod tlv;
pub mod tsa;
pub mod upload;
pub mod verify;
mod writer;
mod xref;

pub use appearance::{SealAppearance, SealImage};
pub use crypto::parse_certificates;
pub use detached::sign_detached;
pub use document::{Document, Page};
pub use error::{Error, Result};
pub use fill::{fill_document_to_vec, FillFont, Filled};
pub use sign::{
    sign_document, sign_document_to_vec, sign_file, Placement, SignOptions, Signed, Timestamper,
};
pub use source::Source;
pub use time::SigningTime;
pub use tsa::TimestampRequest;
pub use upload::normalize_seal_image;
pub use verify::{
    verify_detached, verify_document, CertificateSummary, Modifications, Report, SignatureReport,
    Verdict, VerifyOptions,
};
pub use xref::XrefStyle;
