//! A minimal DER walker for the places where the exact signed bytes matter (signed attributes,
//! TBS certificates): re-encoding a decoded structure could differ from what was signed.

/// One TLV: its tag byte, the whole encoding, and the value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub raw: &'a [u8],
    pub value: &'a [u8],
}

/// Reads the TLV at the start of `data` (single-byte tags, definite lengths).
pub(crate) fn read(data: &[u8]) -> Option<Tlv<'_>> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *data.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if end > data.len() {
        return None;
    }
    Some(Tlv {
        tag,
        raw: &data[..end],
        value: &data[header..end],
    })
}

/// The TLVs inside a constructed value.
pub(crate) fn children(value: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let t = read(rest)?;
        rest = &rest[t.raw.len()..];
        out.push(t);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_nested_structures_and_refuses_overruns() {
        // SEQUENCE { INTEGER 5, OCTET STRING "ab" } followed by padding zeros.
        let data = [0x30, 0x07, 0x02, 0x01, 0x05, 0x04, 0x02, b'a', b'b', 0, 0];
        let seq = read(&data).expect("sequence");
        assert_eq!(seq.raw.len(), 9);
        let kids = children(seq.value).expect("children");
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[1].value, b"ab");
        assert!(read(&[0x30, 0x05, 0x01]).is_none());
        assert!(read(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }
}
