//! The stream filters seald needs to read structure (xref and object streams): FlateDecode with
//! PNG/TIFF predictors. Content streams are never decoded.

use crate::error::{Error, Result};
use crate::object::{Dict, Object};

/// Decodes `data` as the stream dictionary says, producing at most `max` bytes.
pub(crate) fn decode(dict: &Dict, data: Vec<u8>, max: usize) -> Result<Vec<u8>> {
    let filters: Vec<&Object> = match dict.get("Filter") {
        None | Some(Object::Null) => Vec::new(),
        Some(Object::Array(a)) => a.iter().collect(),
        Some(other) => vec![other],
    };
    let params: Vec<Option<&Dict>> = match dict.get("DecodeParms") {
        Some(Object::Array(a)) => a.iter().map(Object::as_dict).collect(),
        Some(other) => vec![other.as_dict()],
        None => Vec::new(),
    };
    let mut data = data;
    for (i, filter) in filters.iter().enumerate() {
        let name = filter
            .as_name()
            .ok_or_else(|| Error::Damaged("a stream filter is not a name".to_owned()))?;
        let params = params.get(i).copied().flatten();
        data = if name.is("FlateDecode") || name.is("Fl") {
            let inflated = inflate(&data, max)?;
            unpredict(inflated, params)?
        } else {
            return Err(Error::Unsupported(format!(
                "structural stream encoded with {name}"
            )));
        };
    }
    if data.len() > max {
        return Err(Error::TooLarge {
            what: "a structural stream".to_owned(),
            size: data.len() as u64,
            max: max as u64,
        });
    }
    Ok(data)
}

fn inflate(data: &[u8], max: usize) -> Result<Vec<u8>> {
    use miniz_oxide::inflate::{decompress_to_vec_zlib_with_limit, TINFLStatus};
    match decompress_to_vec_zlib_with_limit(data, max) {
        Ok(out) => Ok(out),
        Err(e) if e.status == TINFLStatus::HasMoreOutput => Err(Error::TooLarge {
            what: "a decompressed structural stream".to_owned(),
            size: max as u64 + 1,
            max: max as u64,
        }),
        // Some writers omit the zlib checksum or end early; what was inflated is usable only
        // if it is complete, which the consumer checks (entry counts, object offsets).
        Err(e) if !e.output.is_empty() && e.status == TINFLStatus::FailedCannotMakeProgress => {
            Ok(e.output)
        }
        Err(e) => Err(Error::Damaged(format!(
            "a compressed structural stream does not inflate ({:?})",
            e.status
        ))),
    }
}

/// Zlib-compresses (for new streams seald writes) at `level` (1 fast … 9 small).
///
/// A compressor's state is some 300 KiB; made afresh for every stream, its allocation and
/// page faults cost more than compressing the small streams a filling or a signature
/// writes, so each thread keeps one and resets it.
pub(crate) fn deflate(data: &[u8], level: u8) -> Vec<u8> {
    use miniz_oxide::deflate::core::{compress, CompressorOxide, TDEFLFlush, TDEFLStatus};
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<Box<CompressorOxide>>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = slot.get_or_insert_with(Box::default);
        compressor.reset();
        compressor.set_format_and_level(miniz_oxide::DataFormat::Zlib, level);
        let mut out = vec![0u8; (data.len() / 2).max(64)];
        let (mut input, mut at) = (data, 0usize);
        loop {
            let (status, read, written) =
                compress(compressor, input, &mut out[at..], TDEFLFlush::Finish);
            at += written;
            input = &input[read.min(input.len())..];
            match status {
                TDEFLStatus::Done => {
                    out.truncate(at);
                    return out;
                }
                TDEFLStatus::Okay => {
                    if out.len() - at < 64 {
                        out.resize(out.len() * 2, 0);
                    }
                }
                // Only a bad parameter or a broken callback, neither possible here: fall
                // back to the one-shot compressor.
                _ => return miniz_oxide::deflate::compress_to_vec_zlib(data, level),
            }
        }
    })
}

fn unpredict(data: Vec<u8>, params: Option<&Dict>) -> Result<Vec<u8>> {
    let Some(params) = params else {
        return Ok(data);
    };
    let predictor = params.int("Predictor").unwrap_or(1);
    if predictor == 1 {
        return Ok(data);
    }
    let colors = params.int("Colors").unwrap_or(1).clamp(1, 32) as usize;
    let bits = params.int("BitsPerComponent").unwrap_or(8).clamp(1, 16) as usize;
    let columns = params.int("Columns").unwrap_or(1).clamp(1, 1 << 20) as usize;
    let bpp = (colors * bits).div_ceil(8);
    let row = (colors * bits * columns).div_ceil(8);
    if predictor == 2 {
        if bits != 8 {
            return Err(Error::Unsupported(
                "TIFF predictor with other than 8 bits per component".to_owned(),
            ));
        }
        let mut out = data;
        for line in out.chunks_mut(row) {
            for i in bpp..line.len() {
                line[i] = line[i].wrapping_add(line[i - bpp]);
            }
        }
        return Ok(out);
    }
    if predictor < 10 {
        return Err(Error::Unsupported(format!("predictor {predictor}")));
    }
    // PNG predictors: each row starts with its filter type.
    let mut out = Vec::with_capacity(data.len());
    let mut prev = vec![0u8; row];
    for chunk in data.chunks(row + 1) {
        if chunk.len() < row + 1 {
            break;
        }
        let (kind, src) = (chunk[0], &chunk[1..]);
        let mut cur = vec![0u8; row];
        for i in 0..row {
            let left = if i >= bpp { cur[i - bpp] } else { 0 };
            let up = prev[i];
            let up_left = if i >= bpp { prev[i - bpp] } else { 0 };
            cur[i] = match kind {
                0 => src[i],
                1 => src[i].wrapping_add(left),
                2 => src[i].wrapping_add(up),
                3 => src[i].wrapping_add(((u16::from(left) + u16::from(up)) / 2) as u8),
                4 => src[i].wrapping_add(paeth(left, up, up_left)),
                other => {
                    return Err(Error::Damaged(format!(
                        "unknown PNG predictor row type {other}"
                    )))
                }
            };
        }
        out.extend_from_slice(&cur);
        prev = cur;
    }
    Ok(out)
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let (ia, ib, ic) = (i16::from(a), i16::from(b), i16::from(c));
    let p = ia + ib - ic;
    let (pa, pb, pc) = ((p - ia).abs(), (p - ib).abs(), (p - ic).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::name;

    #[test]
    fn flate_with_png_up_predictor_round_trips() {
        // Two rows of 3 bytes, PNG "Up" filter on the second.
        let raw = [0u8, 1, 2, 3, 2, 1, 1, 1];
        let compressed = deflate(&raw, 6);
        let mut params = Dict::new();
        params.set("Predictor", 12i64);
        params.set("Columns", 3i64);
        let mut dict = Dict::new();
        dict.set("Filter", name("FlateDecode"));
        dict.set("DecodeParms", params);
        let out = decode(&dict, compressed, 1 << 20).expect("decode");
        assert_eq!(out, vec![1, 2, 3, 2, 3, 4]);
    }

    #[test]
    fn a_zip_bomb_stops_at_the_limit() {
        let bomb = deflate(&vec![0u8; 10 << 20], 1);
        let mut dict = Dict::new();
        dict.set("Filter", name("FlateDecode"));
        assert!(matches!(
            decode(&dict, bomb, 1 << 20),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn the_reused_compressor_round_trips_streams_of_every_size_and_level_in_turn() {
        let mut dict = Dict::new();
        dict.set("Filter", name("FlateDecode"));
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for (i, len) in [0usize, 1, 100, 5000, 70_000, 3, 300_000, 64]
            .into_iter()
            .enumerate()
        {
            // Half text-like (compressible), half noise.
            let data: Vec<u8> = (0..len)
                .map(|k| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if k % 2 == 0 {
                        b"seal "[k % 5]
                    } else {
                        x as u8
                    }
                })
                .collect();
            let level = [1u8, 6, 9][i % 3];
            let out = decode(&dict, deflate(&data, level), 1 << 20).expect("decode");
            assert_eq!(out, data, "{len} bytes at level {level}");
        }
    }
}
