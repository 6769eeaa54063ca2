//! Detached CMS signatures over arbitrary bytes, for seald's own records (the audit log's
//! checkpoints): the same CAdES signer and verifier as PDF signatures, without a PDF.

use der::Encode;
use seald_signer::Signer;

use crate::cms;
use crate::error::{Error, Result};

/// Signs `content` as a detached CMS SignedData (content-type, message-digest and
/// signing-certificate-v2 signed attributes; the signer's chain embedded).
pub fn sign_detached(signer: &dyn Signer, content: &[u8]) -> Result<Vec<u8>> {
    let certificate = cms::signer_certificate(signer)?;
    let digest = cms::digest(signer.algorithm().hash(), content);
    let attrs = cms::signed_attributes(&digest, &certificate, &signer.certificate_chain()[0])?;
    let to_sign = attrs.to_der().map_err(|e| Error::Encoding(e.to_string()))?;
    let signature = signer.sign(&to_sign)?;
    cms::content_info(signer, &certificate, attrs, signature, None)
}
