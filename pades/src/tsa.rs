//! RFC 3161 time-stamping, without the transport: the request seald sends, and the checks a
//! response must pass before its token goes into a signature (status, nonce, message imprint,
//! the TSA's signature, its timeStamping key usage and its chain to the configured TSA roots).

use cmpv2::status::PkiStatus;
use der::asn1::{Int, OctetString};
use der::{Decode, Encode};
use seald_signer::HashAlgorithm;
use spki::AlgorithmIdentifier;
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion};

use crate::cms::hash_oid;
use crate::crypto::Cert;
use crate::error::{Error, Result};
use crate::verify::check_token;

/// A time-stamp request for one digest.
#[derive(Debug, Clone)]
pub struct TimestampRequest {
    der: Vec<u8>,
    nonce: Vec<u8>,
    hash: HashAlgorithm,
    digest: Vec<u8>,
}

impl TimestampRequest {
    /// A request over `digest` (made with `hash`), with `nonce`, asking for the TSA's
    /// certificate in the token.
    pub fn new(hash: HashAlgorithm, digest: &[u8], nonce: u64) -> Result<Self> {
        let encoding = |e: der::Error| Error::Encoding(e.to_string());
        // A positive INTEGER in minimal big-endian form (a leading zero only before a set top
        // bit).
        let raw = nonce.to_be_bytes();
        let first = raw.iter().position(|b| *b != 0).unwrap_or(raw.len() - 1);
        let mut nonce_bytes = Vec::with_capacity(9);
        if raw[first] & 0x80 != 0 {
            nonce_bytes.push(0);
        }
        nonce_bytes.extend_from_slice(&raw[first..]);
        let nonce_int = Int::new(&nonce_bytes).map_err(encoding)?;
        let request = TimeStampReq {
            version: TspVersion::V1,
            message_imprint: MessageImprint {
                hash_algorithm: AlgorithmIdentifier {
                    oid: hash_oid(hash),
                    parameters: None,
                },
                hashed_message: OctetString::new(digest.to_vec()).map_err(encoding)?,
            },
            req_policy: None,
            nonce: Some(nonce_int.clone()),
            cert_req: true,
            extensions: None,
        };
        Ok(TimestampRequest {
            der: request.to_der().map_err(encoding)?,
            nonce: nonce_int.as_bytes().to_vec(),
            hash,
            digest: digest.to_vec(),
        })
    }

    /// The DER request (`application/timestamp-query`).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Checks a DER response (`application/timestamp-reply`) and returns its token.
    pub fn accept(&self, response: &[u8], tsa_roots: &[Vec<u8>]) -> Result<Vec<u8>> {
        let bad = |what: String| Error::Timestamp(what);
        let resp = TimeStampResp::from_der(response)
            .map_err(|e| bad(format!("the response is not a TimeStampResp: {e}")))?;
        match resp.status.status {
            PkiStatus::Accepted | PkiStatus::GrantedWithMods => {}
            other => {
                return Err(bad(format!(
                    "the TSA refused the request (status {other:?}{})",
                    resp.status
                        .fail_info
                        .map(|f| format!(", failure {f:?}"))
                        .unwrap_or_default()
                )))
            }
        }
        let token = resp
            .time_stamp_token
            .ok_or_else(|| bad("the response holds no token".to_owned()))?
            .to_der()
            .map_err(|e| bad(e.to_string()))?;
        let roots: Vec<Cert> = tsa_roots
            .iter()
            .filter_map(|der| Cert::parse(der).ok())
            .collect();
        if roots.is_empty() {
            return Err(bad(
                "no TSA roots are configured to check the TSA against".to_owned()
            ));
        }
        let checked = check_token(&token, &roots).map_err(bad)?;
        if checked.imprint_hash != self.hash || checked.imprint != self.digest {
            return Err(bad(
                "the token is over another digest than the one sent".to_owned()
            ));
        }
        if checked.nonce.as_deref() != Some(self.nonce.as_slice()) {
            return Err(bad(
                "the token's nonce does not match the request's".to_owned()
            ));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_imprint_nonce_and_cert_req() {
        let digest = [7u8; 32];
        let req = TimestampRequest::new(HashAlgorithm::Sha256, &digest, u64::MAX).expect("request");
        let parsed = TimeStampReq::from_der(req.der()).expect("DER");
        assert!(parsed.cert_req);
        assert_eq!(parsed.message_imprint.hashed_message.as_bytes(), &digest);
        // The top bit is set, so the INTEGER keeps a leading zero to stay positive.
        assert_eq!(parsed.nonce.expect("nonce").as_bytes()[0], 0);
    }

    #[test]
    fn small_nonces_are_minimal_integers() {
        let req = TimestampRequest::new(HashAlgorithm::Sha256, &[1u8; 32], 5).expect("request");
        let parsed = TimeStampReq::from_der(req.der()).expect("DER");
        assert_eq!(parsed.nonce.expect("nonce").as_bytes(), &[5]);
    }

    #[test]
    fn garbage_responses_are_refused() {
        let req = TimestampRequest::new(HashAlgorithm::Sha256, &[1u8; 32], 5).expect("request");
        assert!(matches!(req.accept(b"nope", &[]), Err(Error::Timestamp(_))));
    }
}
