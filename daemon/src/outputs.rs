//! A batch job's sealed PDFs, appended to one file under the data dir
//! (`jobs/ID/outputs.pdfs`), each row's offset, length and SHA-256 kept in its store row.
//!
//! One file, not one per row: creating tens of thousands of files (an inode and a directory
//! entry each, both to be flushed) cost more than sealing them. Appends are positioned
//! writes at offsets handed out in order, then flushed (`fdatasync`) before the row's record
//! commits, so a sealed row's bytes are on disk. The audit writer flushes once for each batch
//! of records it commits (`AuditLog::append_after_flush`), so the rows of one batch share one
//! `fdatasync`. Bytes a row wrote without its record committing (a crash between the two) are
//! never pointed at: the row stays pending and is written again further on.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// Where a row's output lies in its job's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
}

/// One job's output file, open for appending.
#[derive(Debug)]
pub struct OutputFile {
    file: std::fs::File,
    /// The next append's offset.
    end: Mutex<u64>,
    /// Held while flushing (flushes run one at a time).
    flush: Mutex<Flush>,
}

#[derive(Debug, Default)]
struct Flush {
    /// A flush failed. The kernel reports a write-back error once and may then call the
    /// pages clean, so no later flush can vouch for them: every write and flush fails from
    /// then on (the job fails, its rows stay pending; a new runner opens the file afresh).
    failed: bool,
    /// Flushes made (for tests).
    #[cfg(test)]
    made: u64,
}

/// The file of job `id` under `jobs_dir`.
pub fn path(jobs_dir: &Path, id: &str) -> PathBuf {
    jobs_dir.join(id).join("outputs.pdfs")
}

impl OutputFile {
    /// Opens (or creates, with its directory) the output file at `path`; appends go after
    /// whatever it holds.
    pub fn open(path: &Path) -> std::io::Result<OutputFile> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // The file and its directory entries up to the data dir, durable before any row
        // points into it (every open: a crash may have come between creating and syncing).
        file.sync_all()?;
        for d in dir.ancestors().take(3) {
            std::fs::File::open(d)?.sync_all()?;
        }
        let end = file.metadata()?.len();
        Ok(OutputFile {
            file,
            end: Mutex::new(end),
            flush: Mutex::default(),
        })
    }

    /// Appends `bytes` and flushes them to stable storage (blocking).
    #[cfg(test)]
    pub fn append(&self, bytes: &[u8]) -> std::io::Result<Extent> {
        let extent = self.write(bytes)?;
        self.flush()?;
        Ok(extent)
    }

    /// Writes `bytes` after everything appended so far, without flushing them: the record
    /// that points at them must wait for a [`OutputFile::flush`] that begins after this
    /// returns (the audit writer makes one per batch of records).
    pub fn write(&self, bytes: &[u8]) -> std::io::Result<Extent> {
        if self
            .flush
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed
        {
            return Err(failed_before());
        }
        let length = bytes.len() as u64;
        let offset = {
            let mut end = self.end.lock().unwrap_or_else(PoisonError::into_inner);
            let at = *end;
            *end += length;
            at
        };
        self.file.write_all_at(bytes, offset)?;
        Ok(Extent { offset, length })
    }

    /// Returns once every write completed before this call is on stable storage.
    pub fn flush(&self) -> std::io::Result<()> {
        let mut f = self.flush.lock().unwrap_or_else(PoisonError::into_inner);
        if f.failed {
            return Err(failed_before());
        }
        let synced = self.file.sync_data();
        f.failed = synced.is_err();
        #[cfg(test)]
        {
            f.made += 1;
        }
        synced
    }
}

impl OutputFile {
    /// Flushes made so far (for tests of who flushes how often).
    #[cfg(test)]
    pub fn flushes(&self) -> u64 {
        self.flush
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .made
    }

    /// Makes every later flush fail, as after a write-back error.
    #[cfg(test)]
    pub fn fail_flushes(&self) {
        self.flush
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed = true;
    }
}

fn failed_before() -> std::io::Error {
    std::io::Error::other("an earlier flush of this output file failed")
}

/// Reads a sealed row's output back and checks it against the SHA-256 its row recorded
/// (blocking). A mismatch is an error: a damaged file is never served as a sealed PDF.
pub fn read(path: &Path, extent: Extent, sha256: &str) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let length = usize::try_from(extent.length)
        .map_err(|_| std::io::Error::other("an output larger than memory"))?;
    let mut bytes = vec![0u8; length];
    file.read_exact_at(&mut bytes, extent.offset)?;
    if hex::encode(Sha256::digest(&bytes)) != sha256 {
        return Err(std::io::Error::other(format!(
            "the bytes at {}+{} of {} do not match the recorded SHA-256",
            extent.offset,
            extent.length,
            path.display()
        )));
    }
    Ok(bytes)
}

/// The output files of the jobs that have a runner, shared by its rows.
#[derive(Debug, Default)]
pub struct OpenFiles {
    files: Mutex<HashMap<String, Arc<OutputFile>>>,
}

impl OpenFiles {
    /// Job `id`'s file, opened on first use.
    pub fn get(&self, jobs_dir: &Path, id: &str) -> std::io::Result<Arc<OutputFile>> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = files.get(id) {
            return Ok(f.clone());
        }
        let f = Arc::new(OutputFile::open(&path(jobs_dir, id))?);
        files.insert(id.to_owned(), f.clone());
        Ok(f)
    }

    /// Closes job `id`'s file (its runner ended) unless a row still holds it: a second
    /// `OutputFile` on the same file would hand out offsets the first one also hands out.
    pub fn close(&self, id: &str) {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if files.get(id).is_some_and(|f| Arc::strong_count(f) == 1) {
            files.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_read_back_whole_and_a_reopened_file_appends_after_its_end() {
        let dir = std::env::temp_dir().join(format!("seald-outputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = path(&dir, "job");
        let f = OutputFile::open(&p).expect("open");
        let a = f.append(b"%PDF-first").expect("append");
        let b = f.append(b"%PDF-second").expect("append");
        assert_eq!(
            a,
            Extent {
                offset: 0,
                length: 10
            }
        );
        assert_eq!(
            b,
            Extent {
                offset: 10,
                length: 11
            }
        );
        drop(f);
        // Bytes of a row whose record never committed: left where they are, never read.
        let f = OutputFile::open(&p).expect("reopen");
        let c = f.append(b"%PDF-third").expect("append");
        assert_eq!(c.offset, 21);
        let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
        assert_eq!(
            read(&p, b, &sha(b"%PDF-second")).expect("read"),
            b"%PDF-second"
        );
        assert_eq!(
            read(&p, c, &sha(b"%PDF-third")).expect("read"),
            b"%PDF-third"
        );
        let wrong = read(&p, a, &sha(b"%PDF-other")).expect_err("a mismatch");
        assert!(wrong.to_string().contains("do not match"), "{wrong}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_appends_each_return_flushed_and_land_whole() {
        let dir = std::env::temp_dir().join(format!("seald-outputs-c-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let p = path(&dir, "job");
        let f = Arc::new(OutputFile::open(&p).expect("open"));
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let f = f.clone();
                std::thread::spawn(move || {
                    (0..50u32)
                        .map(|i| {
                            let body = vec![t; 100 + i as usize];
                            (f.append(&body).expect("append"), body)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in threads {
            all.extend(t.join().expect("thread"));
        }
        let flush = f.flush.lock().expect("lock");
        assert_eq!(
            (flush.made, flush.failed),
            (400, false),
            "one flush per append"
        );
        drop(flush);
        let mut extents: Vec<Extent> = all.iter().map(|(e, _)| *e).collect();
        extents.sort_by_key(|e| e.offset);
        for w in extents.windows(2) {
            assert_eq!(w[0].offset + w[0].length, w[1].offset, "no overlap, no gap");
        }
        for (extent, body) in &all {
            let sha = hex::encode(Sha256::digest(body));
            assert_eq!(&read(&p, *extent, &sha).expect("read"), body);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
