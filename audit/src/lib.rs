//! seald's audit log as data: what a record holds, how records chain by hash, what a signed
//! checkpoint covers, and how a chain is verified. No I/O and no clock: the daemon stores the
//! records and signs the checkpoints, `sealctl audit verify` checks them, both through this
//! crate, so they cannot disagree on the format.
//!
//! A record's hash is SHA-256 over a fixed, length-prefixed encoding of every field but the
//! hash itself, including the previous record's hash (docs/audit.md spells it out so an auditor
//! can recompute it with other tools). Editing, inserting or deleting a record breaks the chain
//! at that record; truncating the tail is caught by the newest signed checkpoint.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash the first record chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const DOMAIN: &[u8] = b"seald-audit-record-v1";

/// What became of the attempt a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Done: a signature returned, an administrative change made.
    Allowed,
    /// Refused by policy or authorization.
    Denied,
    /// Allowed, but it failed (bad input, token unavailable…); nothing was returned.
    Failed,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "allowed" => Some(Decision::Allowed),
            "denied" => Some(Decision::Denied),
            "failed" => Some(Decision::Failed),
            _ => None,
        }
    }
}

/// A record before it joins the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// RFC 3339, UTC.
    pub time: String,
    /// Who: the application (or, for an unregistered certificate, its fingerprint).
    pub principal: String,
    /// What: `sign`, `seal.register`, `application.register`, …
    pub action: String,
    pub seal: Option<String>,
    pub document_id: Option<String>,
    /// SHA-256 (hex) of the document received.
    pub input_sha256: Option<String>,
    /// SHA-256 (hex) of the document returned.
    pub output_sha256: Option<String>,
    pub decision: Decision,
    /// A stable reason code for a denial or failure (the problem+json `code`).
    pub reason: Option<String>,
    pub request_id: String,
    /// Free-form details of an administrative change (JSON text).
    pub detail: Option<String>,
}

/// A record in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// 1, 2, 3, … without gaps.
    pub seq: u64,
    #[serde(flatten)]
    pub entry: Entry,
    pub prev_hash: String,
    pub hash: String,
}

impl Record {
    /// `entry` chained after the record with sequence number `prev_seq` and hash `prev_hash`
    /// (0 and [`GENESIS`] for the first).
    pub fn chain(prev_seq: u64, prev_hash: &str, entry: Entry) -> Record {
        let seq = prev_seq + 1;
        let hash = record_hash(seq, &entry, prev_hash);
        Record {
            seq,
            entry,
            prev_hash: prev_hash.to_owned(),
            hash,
        }
    }

    /// The hash this record should have.
    pub fn computed_hash(&self) -> String {
        record_hash(self.seq, &self.entry, &self.prev_hash)
    }
}

fn record_hash(seq: u64, e: &Entry, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    let mut field = |value: Option<&str>| match value {
        Some(v) => {
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
        None => h.update(u64::MAX.to_be_bytes()),
    };
    let seq = seq.to_string();
    field(Some(&seq));
    field(Some(&e.time));
    field(Some(&e.principal));
    field(Some(&e.action));
    field(e.seal.as_deref());
    field(e.document_id.as_deref());
    field(e.input_sha256.as_deref());
    field(e.output_sha256.as_deref());
    field(Some(e.decision.as_str()));
    field(e.reason.as_deref());
    field(Some(&e.request_id));
    field(e.detail.as_deref());
    field(Some(prev_hash));
    hex::encode(h.finalize())
}

/// A signed statement that the chain's head at `seq` had hash `head_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub head_hash: String,
    /// RFC 3339, UTC.
    pub time: String,
    /// A detached CMS signature over [`Checkpoint::content`], by the audit key (hex in JSON).
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// The bytes the audit key signs.
    pub fn content(seq: u64, head_hash: &str, time: &str) -> Vec<u8> {
        format!("seald-audit-checkpoint-v1\nseq {seq}\nhead {head_hash}\ntime {time}\n")
            .into_bytes()
    }

    pub fn signed_content(&self) -> Vec<u8> {
        Checkpoint::content(self.seq, &self.head_hash, &self.time)
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

/// Where and why a chain stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    #[error(
        "record {seq}: expected sequence number {expected} (a record is missing or out of order)"
    )]
    Sequence { seq: u64, expected: u64 },
    #[error("record {seq}: its previous-hash does not match record {}'s hash (a record before it was changed, removed or inserted)", seq - 1)]
    Link { seq: u64 },
    #[error("record {seq}: its contents do not match its hash (the record was edited)")]
    Hash { seq: u64 },
    #[error("checkpoint at record {seq}: the head hash does not match the record")]
    CheckpointMismatch { seq: u64 },
    #[error("checkpoint at record {seq}: the record is missing (the log was truncated)")]
    Truncated { seq: u64 },
    #[error("checkpoint at record {seq}: {why}")]
    CheckpointSignature { seq: u64, why: String },
}

impl Break {
    /// The first record (or checkpoint) that is bad.
    pub fn seq(&self) -> u64 {
        match self {
            Break::Sequence { seq, .. }
            | Break::Link { seq }
            | Break::Hash { seq }
            | Break::CheckpointMismatch { seq }
            | Break::Truncated { seq }
            | Break::CheckpointSignature { seq, .. } => *seq,
        }
    }
}

/// Checks records in sequence order as they stream past, against the checkpoints.
#[derive(Debug)]
pub struct ChainVerifier {
    expected: u64,
    prev_hash: String,
    /// Checkpoints by sequence number, not yet reached.
    pending: std::collections::BTreeMap<u64, String>,
    checkpoints_matched: usize,
}

impl ChainVerifier {
    /// A verifier for a chain from its first record; `checkpoints` must already have had
    /// their signatures checked.
    pub fn new<'a>(checkpoints: impl IntoIterator<Item = &'a Checkpoint>) -> Self {
        ChainVerifier {
            expected: 1,
            prev_hash: GENESIS.to_owned(),
            pending: checkpoints
                .into_iter()
                .map(|c| (c.seq, c.head_hash.clone()))
                .collect(),
            checkpoints_matched: 0,
        }
    }

    /// Checks the next record.
    pub fn push(&mut self, record: &Record) -> Result<(), Break> {
        if record.seq != self.expected {
            return Err(Break::Sequence {
                seq: record.seq,
                expected: self.expected,
            });
        }
        if record.prev_hash != self.prev_hash {
            return Err(Break::Link { seq: record.seq });
        }
        if record.computed_hash() != record.hash {
            return Err(Break::Hash { seq: record.seq });
        }
        if let Some(head) = self.pending.remove(&record.seq) {
            if head != record.hash {
                return Err(Break::CheckpointMismatch { seq: record.seq });
            }
            self.checkpoints_matched += 1;
        }
        self.expected += 1;
        self.prev_hash = record.hash.clone();
        Ok(())
    }

    /// After the last record: every checkpoint must have been reached.
    pub fn finish(self) -> Result<Verified, Break> {
        if let Some((&seq, _)) = self.pending.iter().next() {
            return Err(Break::Truncated { seq });
        }
        Ok(Verified {
            records: self.expected - 1,
            head_hash: self.prev_hash,
            checkpoints: self.checkpoints_matched,
        })
    }
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    pub records: u64,
    pub head_hash: String,
    pub checkpoints: usize,
}

/// One line of `sealctl audit export` (JSON lines): a record or a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one line at a time, never stored in bulk
pub enum ExportLine {
    Record(Record),
    Checkpoint(Checkpoint),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32) -> Entry {
        Entry {
            time: format!("2026-11-24T04:00:{n:02}.000Z"),
            principal: "erp".to_owned(),
            action: "sign".to_owned(),
            seal: Some("contract".to_owned()),
            document_id: Some(format!("doc-{n}")),
            input_sha256: Some("aa".repeat(32)),
            output_sha256: None,
            decision: Decision::Allowed,
            reason: None,
            request_id: format!("req-{n}"),
            detail: None,
        }
    }

    fn chain(n: u32) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for i in 0..n {
            let (seq, hash) = out
                .last()
                .map(|r| (r.seq, r.hash.clone()))
                .unwrap_or((0, GENESIS.to_owned()));
            out.push(Record::chain(seq, &hash, entry(i)));
        }
        out
    }

    fn verify(records: &[Record], checkpoints: &[Checkpoint]) -> Result<Verified, Break> {
        let mut v = ChainVerifier::new(checkpoints);
        for r in records {
            v.push(r)?;
        }
        v.finish()
    }

    fn checkpoint(r: &Record) -> Checkpoint {
        Checkpoint {
            seq: r.seq,
            head_hash: r.hash.clone(),
            time: r.entry.time.clone(),
            signature: vec![1, 2, 3],
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let records = chain(5);
        let v = verify(
            &records,
            &[checkpoint(&records[2]), checkpoint(&records[4])],
        )
        .expect("intact");
        assert_eq!(v.records, 5);
        assert_eq!(v.checkpoints, 2);
        assert_eq!(v.head_hash, records[4].hash);
    }

    #[test]
    fn every_kind_of_edit_is_found_at_its_record() {
        let records = chain(6);
        // An edited field (even one that was empty).
        for edit in [
            |r: &mut Record| r.entry.decision = Decision::Denied,
            |r: &mut Record| r.entry.output_sha256 = Some("bb".repeat(32)),
            |r: &mut Record| r.entry.seal = None,
            |r: &mut Record| r.entry.time.push('x'),
        ] {
            let mut bad = records.clone();
            edit(&mut bad[3]);
            assert_eq!(verify(&bad, &[]), Err(Break::Hash { seq: 4 }));
        }
        // Re-hashed after the edit: the next record's link breaks.
        let mut bad = records.clone();
        bad[3].entry.principal = "intruder".to_owned();
        bad[3].hash = bad[3].computed_hash();
        assert_eq!(verify(&bad, &[]), Err(Break::Link { seq: 5 }));
        // Removed.
        let mut bad = records.clone();
        bad.remove(2);
        assert_eq!(
            verify(&bad, &[]),
            Err(Break::Sequence {
                seq: 4,
                expected: 3
            })
        );
        // Truncated below a checkpoint.
        let cp = checkpoint(&records[5]);
        assert_eq!(
            verify(&records[..4], std::slice::from_ref(&cp)),
            Err(Break::Truncated { seq: 6 })
        );
        // A checkpoint that does not match.
        let mut cp = checkpoint(&records[1]);
        cp.head_hash = records[0].hash.clone();
        assert_eq!(
            verify(&records, &[cp]),
            Err(Break::CheckpointMismatch { seq: 2 })
        );
    }

    #[test]
    fn none_and_empty_are_different_and_fields_do_not_run_together() {
        let mut a = entry(1);
        let mut b = entry(1);
        a.reason = None;
        b.reason = Some(String::new());
        assert_ne!(
            Record::chain(0, GENESIS, a.clone()).hash,
            Record::chain(0, GENESIS, b).hash
        );
        let mut c = entry(1);
        a.principal = "ab".to_owned();
        a.action = "c".to_owned();
        c.principal = "a".to_owned();
        c.action = "bc".to_owned();
        assert_ne!(
            Record::chain(0, GENESIS, a).hash,
            Record::chain(0, GENESIS, c).hash
        );
    }

    #[test]
    fn records_round_trip_through_json_lines() {
        let records = chain(2);
        let line = serde_json::to_string(&records[1]).expect("json");
        assert!(line.contains("\"decision\":\"allowed\""), "{line}");
        let back: Record = serde_json::from_str(&line).expect("parse");
        assert_eq!(back, records[1]);
        let cp = checkpoint(&records[1]);
        let back: Checkpoint =
            serde_json::from_str(&serde_json::to_string(&cp).expect("json")).expect("parse");
        assert_eq!(back, cp);
        for line in [
            ExportLine::Record(records[0].clone()),
            ExportLine::Checkpoint(cp),
        ] {
            let text = serde_json::to_string(&line).expect("json");
            assert_eq!(
                serde_json::from_str::<ExportLine>(&text).expect("parse"),
                line
            );
        }
    }
}
