//! Seal images as administrators upload them: a PNG or a JPEG (a scan or photo of the
//! physical seal, at most 5 MB), checked and normalized to a PNG with a transparent
//! background, the form [`crate::SealImage`] embeds.

use crate::appearance::MAX_IMAGE_SIDE;
use crate::error::{Error, Result};

/// Largest upload accepted.
pub const MAX_UPLOAD_BYTES: usize = 5 << 20;

/// Pixels at least this light, and this close to gray, are paper: they become transparent.
const PAPER_MIN: u8 = 200;
const PAPER_MAX_SPREAD: u8 = 40;

/// Turns one decoded pixel into RGBA.
type ToRgba = fn(&[u8]) -> [u8; 4];

struct Rgba {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

fn check_size(width: u32, height: u32, what: &str) -> Result<()> {
    if width == 0 || height == 0 || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(Error::Image(format!(
            "the {what} is {width}×{height} pixels; each side must be 1 to {MAX_IMAGE_SIDE}"
        )));
    }
    Ok(())
}

fn decode_png(bytes: &[u8]) -> Result<Rgba> {
    let bad = |e: png::DecodingError| Error::Image(format!("not a readable PNG: {e}"));
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    decoder.set_limits(png::Limits {
        bytes: (MAX_IMAGE_SIDE as usize) * (MAX_IMAGE_SIDE as usize) * 4,
    });
    let mut reader = decoder.read_info().map_err(bad)?;
    let (width, height) = (reader.info().width, reader.info().height);
    check_size(width, height, "PNG")?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(bad)?;
    buf.truncate(frame.buffer_size());
    let pixels = (width as usize) * (height as usize);
    let to_rgba: ToRgba = match frame.color_type {
        png::ColorType::Grayscale => |p| [p[0], p[0], p[0], 255],
        png::ColorType::GrayscaleAlpha => |p| [p[0], p[0], p[0], p[1]],
        png::ColorType::Rgb => |p| [p[0], p[1], p[2], 255],
        png::ColorType::Rgba => |p| [p[0], p[1], p[2], p[3]],
        png::ColorType::Indexed => return Err(Error::Image("palette PNG not expanded".to_owned())),
    };
    let channels = frame.color_type.samples();
    if buf.len() < pixels * channels {
        return Err(Error::Image("the PNG's pixel data is short".to_owned()));
    }
    let mut out = Vec::with_capacity(pixels * 4);
    for p in buf.chunks_exact(channels).take(pixels) {
        out.extend_from_slice(&to_rgba(p));
    }
    Ok(Rgba {
        width,
        height,
        pixels: out,
    })
}

fn decode_jpeg(bytes: &[u8]) -> Result<Rgba> {
    let bad = |e: jpeg_decoder::Error| Error::Image(format!("not a readable JPEG: {e}"));
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(bad)?;
    let info = decoder
        .info()
        .ok_or_else(|| Error::Image("a JPEG without a frame header".to_owned()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_size(width, height, "JPEG")?;
    decoder.set_max_decoding_buffer_size((MAX_IMAGE_SIDE as usize) * (MAX_IMAGE_SIDE as usize) * 4);
    let data = decoder.decode().map_err(bad)?;
    let pixels = (width as usize) * (height as usize);
    let (channels, to_rgba): (usize, ToRgba) = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => (1, |p| [p[0], p[0], p[0], 255]),
        // Big-endian 16-bit gray: the high byte.
        jpeg_decoder::PixelFormat::L16 => (2, |p| [p[0], p[0], p[0], 255]),
        jpeg_decoder::PixelFormat::RGB24 => (3, |p| [p[0], p[1], p[2], 255]),
        jpeg_decoder::PixelFormat::CMYK32 => (4, |p| {
            let k = u16::from(255 - p[3]);
            let c = |v: u8| ((u16::from(255 - v) * k) / 255) as u8;
            [c(p[0]), c(p[1]), c(p[2]), 255]
        }),
    };
    if data.len() < pixels * channels {
        return Err(Error::Image("the JPEG's pixel data is short".to_owned()));
    }
    let mut out = Vec::with_capacity(pixels * 4);
    for p in data.chunks_exact(channels).take(pixels) {
        out.extend_from_slice(&to_rgba(p));
    }
    Ok(Rgba {
        width,
        height,
        pixels: out,
    })
}

/// Checks an uploaded seal image and returns it as a PNG whose paper is transparent: light,
/// near-gray pixels (the white or off-white background of a scan) lose their opacity; the
/// ink keeps its colour. Refuses files over 5 MB, other formats, broken or oversized images,
/// and images with no ink left.
pub fn normalize_seal_image(bytes: &[u8]) -> Result<Vec<u8>> {
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(Error::Image(format!(
            "the image is {} bytes; at most {MAX_UPLOAD_BYTES} (5 MB) are accepted",
            bytes.len()
        )));
    }
    let mut image = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes)?
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        decode_jpeg(bytes)?
    } else {
        return Err(Error::Image(
            "the seal image must be a PNG or a JPEG".to_owned(),
        ));
    };
    let mut ink = 0usize;
    for px in image.pixels.chunks_exact_mut(4) {
        let (lo, hi) = (px[..3].iter().min(), px[..3].iter().max());
        let (Some(&lo), Some(&hi)) = (lo, hi) else {
            continue;
        };
        if lo >= PAPER_MIN && hi - lo <= PAPER_MAX_SPREAD {
            px[3] = 0;
        } else if px[3] > 0 {
            ink += 1;
        }
    }
    if ink == 0 {
        return Err(Error::Image(
            "the image is blank once its background is removed: upload the seal in colour on a light background".to_owned(),
        ));
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Best);
        let bad = |e: png::EncodingError| Error::Image(format!("cannot write the PNG: {e}"));
        let mut writer = encoder.write_header().map_err(bad)?;
        writer.write_image_data(&image.pixels).map_err(bad)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, width, height);
        e.set_color(color);
        e.set_depth(png::BitDepth::Eight);
        e.write_header()
            .expect("header")
            .write_image_data(data)
            .expect("data");
        out
    }

    /// A red ring on white paper, as a scan would give it.
    fn scan(side: u32) -> Vec<u8> {
        let mut rgb = Vec::new();
        for y in 0..side {
            for x in 0..side {
                let (dx, dy) = (x as i64 - side as i64 / 2, y as i64 - side as i64 / 2);
                let r2 = dx * dx + dy * dy;
                let ring = (side as i64 / 3).pow(2) < r2 && r2 < (side as i64 / 2 - 1).pow(2);
                rgb.extend_from_slice(if ring {
                    &[200, 20, 30]
                } else {
                    &[250, 248, 245]
                });
            }
        }
        png(side, side, png::ColorType::Rgb, &rgb)
    }

    fn decoded(png_bytes: &[u8]) -> Rgba {
        decode_png(png_bytes).expect("our own output decodes")
    }

    #[test]
    fn paper_becomes_transparent_and_ink_stays() {
        let out = normalize_seal_image(&scan(64)).expect("normalized");
        let img = decoded(&out);
        assert_eq!((img.width, img.height), (64, 64));
        let corner = &img.pixels[..4];
        assert_eq!(corner[3], 0, "the paper in the corner is transparent");
        let ring_px = ((32 * 64) + 2) * 4; // on the ring, left of centre
        assert_eq!(&img.pixels[ring_px..ring_px + 4], &[200, 20, 30, 255]);
        // The result is what the appearance code embeds.
        assert!(crate::SealImage::from_png(&out).is_ok());
    }

    #[test]
    fn jpeg_uploads_are_read() {
        // A 16×16 baseline JPEG, rgb(200, 30, 40) everywhere (libjpeg-turbo's
        // `cjpeg -quality 95 -baseline` of a PPM).
        let jpeg = include_bytes!("../tests/data/red16.jpg");
        let out = normalize_seal_image(jpeg).expect("normalized");
        let img = decoded(&out);
        assert_eq!((img.width, img.height), (16, 16));
        assert!(img
            .pixels
            .chunks_exact(4)
            .all(|p| p[3] == 255 && p[0] > 150 && p[1] < 80));
    }

    #[test]
    fn bad_uploads_are_named() {
        let blank = png(8, 8, png::ColorType::Rgb, &[255u8; 8 * 8 * 3]);
        let cases: [(&[u8], &str); 4] = [
            (b"GIF89a....", "PNG or a JPEG"),
            (&blank, "blank"),
            (&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10], "JPEG"),
            (&vec![0u8; MAX_UPLOAD_BYTES + 1], "5 MB"),
        ];
        for (bytes, says) in cases {
            let e = normalize_seal_image(bytes)
                .expect_err("refused")
                .to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
