//! A streamed ZIP archive of stored (uncompressed: PDFs are compressed already) entries, with
//! ZIP64 records once offsets or the entry count outgrow the classic format — a job's outputs
//! are downloaded as one file however many rows it had. Each entry's data is known before it
//! is written, so local headers carry their CRC and sizes (no data descriptors).

/// CRC-32 (IEEE 802.3), as ZIP uses it.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_continue(0, data)
}

/// The CRC-32 of some bytes whose first part's CRC-32 is `crc`, given the rest (`crc32` of the
/// whole is `crc32_continue(crc32(first), rest)`). crc32fast uses the CPU's carry-less
/// multiply where it has one: a sheet of a workbook can be a gigabyte.
pub fn crc32_continue(crc: u32, data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(crc);
    h.update(data);
    h.finalize()
}

struct Central {
    name: Vec<u8>,
    crc: u32,
    size: u64,
    offset: u64,
}

/// Builds the archive piece by piece: [`Zip::entry`] returns the bytes of one entry,
/// [`Zip::finish`] the central directory and end records.
#[derive(Default)]
pub struct Zip {
    written: u64,
    entries: Vec<Central>,
    /// ZIP64 records even where the classic ones would do (tests).
    force_zip64: bool,
}

impl std::fmt::Debug for Zip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zip")
            .field("written", &self.written)
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// 1980-01-01 00:00 (DOS time and date): outputs carry no meaningful file time.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;
const UTF8_NAMES: u16 = 1 << 11;

impl Zip {
    #[cfg(test)]
    fn zip64() -> Zip {
        Zip {
            force_zip64: true,
            ..Zip::default()
        }
    }

    fn big(&self, v: u64) -> bool {
        self.force_zip64 || v >= 0xFFFF_FFFF
    }

    /// One stored entry named `name` (UTF-8) holding `data` (under 4 GiB).
    pub fn entry(&mut self, name: &str, data: &[u8]) -> Vec<u8> {
        let crc = crc32(data);
        let size = data.len() as u64;
        let mut out = Vec::with_capacity(30 + name.len() + data.len());
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&UTF8_NAMES.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&DOS_TIME.to_le_bytes());
        out.extend_from_slice(&DOS_DATE.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        let size32 = u32::try_from(size).unwrap_or(u32::MAX);
        out.extend_from_slice(&size32.to_le_bytes());
        out.extend_from_slice(&size32.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        self.entries.push(Central {
            name: name.as_bytes().to_vec(),
            crc,
            size,
            offset: self.written,
        });
        self.written += out.len() as u64;
        out
    }

    /// The central directory and the end records.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        let cd_offset = self.written;
        for e in &self.entries {
            let zip64 = self.big(e.offset);
            out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            out.extend_from_slice(&45u16.to_le_bytes()); // made by: 4.5
            out.extend_from_slice(&(if zip64 { 45u16 } else { 20 }).to_le_bytes());
            out.extend_from_slice(&UTF8_NAMES.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&DOS_TIME.to_le_bytes());
            out.extend_from_slice(&DOS_DATE.to_le_bytes());
            out.extend_from_slice(&e.crc.to_le_bytes());
            let size32 = u32::try_from(e.size).unwrap_or(u32::MAX);
            out.extend_from_slice(&size32.to_le_bytes());
            out.extend_from_slice(&size32.to_le_bytes());
            out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            out.extend_from_slice(&(if zip64 { 12u16 } else { 0 }).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes()); // comment
            out.extend_from_slice(&0u16.to_le_bytes()); // disk
            out.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            out.extend_from_slice(&0u32.to_le_bytes()); // external attributes
            let offset32 = if zip64 { u32::MAX } else { e.offset as u32 };
            out.extend_from_slice(&offset32.to_le_bytes());
            out.extend_from_slice(&e.name);
            if zip64 {
                out.extend_from_slice(&1u16.to_le_bytes());
                out.extend_from_slice(&8u16.to_le_bytes());
                out.extend_from_slice(&e.offset.to_le_bytes());
            }
        }
        let cd_size = out.len() as u64;
        let count = self.entries.len() as u64;
        let zip64 = self.big(cd_offset) || self.big(cd_size) || count >= 0xFFFF || self.force_zip64;
        if zip64 {
            let eocd64 = cd_offset + cd_size;
            out.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&45u16.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&cd_size.to_le_bytes());
            out.extend_from_slice(&cd_offset.to_le_bytes());
            out.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&eocd64.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        let clamp16 = |v: u64| if zip64 { u16::MAX } else { v as u16 };
        let clamp32 = |v: u64| if zip64 { u32::MAX } else { v as u32 };
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&clamp16(count).to_le_bytes());
        out.extend_from_slice(&clamp16(count).to_le_bytes());
        out.extend_from_slice(&clamp32(cd_size).to_le_bytes());
        out.extend_from_slice(&clamp32(cd_offset).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32_continue(crc32(b"1234"), b"56789"), 0xCBF4_3926);
    }

    /// Python's zipfile (an independent reader) lists and tests both forms.
    #[test]
    fn classic_and_zip64_archives_read_back_in_pythons_zipfile() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, mut zip) in [("classic.zip", Zip::default()), ("zip64.zip", Zip::zip64())] {
            let mut bytes = zip.entry("HR-0001.pdf", b"%PDF-1.7 first");
            bytes.extend(zip.entry("劳动合同-2.pdf", b"%PDF-1.7 second, longer"));
            bytes.extend(zip.finish());
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let out = std::process::Command::new("python3")
                .arg("-c")
                .arg("import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print('|'.join(z.namelist()), z.read('劳动合同-2.pdf').decode())")
                .arg(&path)
                .output()
                .expect("python3");
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "HR-0001.pdf|劳动合同-2.pdf %PDF-1.7 second, longer",
                "{name}"
            );
        }
    }
}
