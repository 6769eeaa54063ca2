//! The visible seal: a PNG (with transparency) as an image XObject with a soft mask, drawn by a
//! form XObject that is the signature widget's appearance, optionally with a signing-date line,
//! placed in millimetres from the top-left corner of the page as the user sees it.

use crate::error::{Error, Result};
use crate::object::{name, real, Dict, ObjRef, Object, PdfString};
use crate::writer::Update;

/// Largest PNG file accepted.
pub const MAX_IMAGE_BYTES: usize = 8 << 20;
/// Largest image side in pixels.
pub const MAX_IMAGE_SIDE: u32 = 4096;

const PT_PER_MM: f64 = 72.0 / 25.4;
/// Height of the date line under the seal, in points.
const DATE_LINE: f64 = 10.0;

/// A decoded seal image, ready to be embedded: its samples are compressed once, when it is
/// decoded, so each signature only copies them (a service signs with the same seal image over
/// and over). Clones share the samples.
#[derive(Clone)]
pub struct SealImage {
    width: u32,
    height: u32,
    /// 8-bit samples, 1 (gray) or 3 (RGB) per pixel, zlib-compressed (/FlateDecode).
    color: std::sync::Arc<[u8]>,
    gray: bool,
    /// 8-bit alpha, one per pixel, zlib-compressed, when the image has transparency.
    alpha: Option<std::sync::Arc<[u8]>>,
}

impl std::fmt::Debug for SealImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("alpha", &self.alpha.is_some())
            .finish()
    }
}

impl SealImage {
    /// Decodes a PNG, refusing broken or oversized ones with a clear error.
    pub fn from_png(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(Error::Image(format!(
                "the PNG is {} bytes; at most {MAX_IMAGE_BYTES} are accepted",
                bytes.len()
            )));
        }
        let bad = |e: png::DecodingError| Error::Image(format!("not a readable PNG: {e}"));
        let mut decoder = png::Decoder::new(bytes);
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let limits = png::Limits {
            bytes: (MAX_IMAGE_SIDE as usize) * (MAX_IMAGE_SIDE as usize) * 4,
        };
        decoder.set_limits(limits);
        let mut reader = decoder.read_info().map_err(bad)?;
        let info = reader.info();
        let (width, height) = (info.width, info.height);
        if width == 0 || height == 0 || width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
            return Err(Error::Image(format!(
                "the PNG is {width}×{height} pixels; each side must be 1 to {MAX_IMAGE_SIDE}"
            )));
        }
        let mut buf = vec![0u8; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut buf).map_err(bad)?;
        buf.truncate(frame.buffer_size());
        let pixels = (width as usize) * (height as usize);
        let (channels, gray, has_alpha) = match frame.color_type {
            png::ColorType::Grayscale => (1, true, false),
            png::ColorType::GrayscaleAlpha => (2, true, true),
            png::ColorType::Rgb => (3, false, false),
            png::ColorType::Rgba => (4, false, true),
            png::ColorType::Indexed => {
                return Err(Error::Image("palette PNG not expanded".to_owned()))
            }
        };
        if buf.len() < pixels * channels {
            return Err(Error::Image("the PNG's pixel data is short".to_owned()));
        }
        let color_channels = if gray { 1 } else { 3 };
        let mut color = Vec::with_capacity(pixels * color_channels);
        let mut alpha = has_alpha.then(|| Vec::with_capacity(pixels));
        for px in buf.chunks_exact(channels).take(pixels) {
            color.extend_from_slice(&px[..color_channels]);
            if let Some(a) = alpha.as_mut() {
                a.push(px[channels - 1]);
            }
        }
        // An alpha channel that is opaque everywhere needs no mask.
        if alpha.as_ref().is_some_and(|a| a.iter().all(|&v| v == 255)) {
            alpha = None;
        }
        Ok(SealImage {
            width,
            height,
            color: crate::filter::deflate(&color, 6).into(),
            gray,
            alpha: alpha.map(|a| crate::filter::deflate(&a, 6).into()),
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Height over width.
    pub fn aspect(&self) -> f64 {
        f64::from(self.height) / f64::from(self.width)
    }

    /// Writes the image (and its soft mask) as XObjects; returns the image's reference.
    pub(crate) fn write(&self, update: &mut Update<'_>) -> ObjRef {
        let image = update.alloc();
        let mut dict = Dict::new();
        dict.set("Type", name("XObject"));
        dict.set("Subtype", name("Image"));
        dict.set("Width", i64::from(self.width));
        dict.set("Height", i64::from(self.height));
        dict.set(
            "ColorSpace",
            name(if self.gray { "DeviceGray" } else { "DeviceRGB" }),
        );
        dict.set("BitsPerComponent", 8i64);
        if let Some(alpha) = &self.alpha {
            let mask = update.alloc();
            let mut m = Dict::new();
            m.set("Type", name("XObject"));
            m.set("Subtype", name("Image"));
            m.set("Width", i64::from(self.width));
            m.set("Height", i64::from(self.height));
            m.set("ColorSpace", name("DeviceGray"));
            m.set("BitsPerComponent", 8i64);
            update.put_deflated_stream(mask, m, alpha);
            dict.set("SMask", mask);
        }
        update.put_deflated_stream(image, dict, &self.color);
        image
    }
}

/// What the widget shows.
#[derive(Debug, Clone)]
pub struct SealAppearance {
    pub image: SealImage,
    /// A line of text (e.g. the signing date) under the seal; ASCII.
    pub date_line: Option<String>,
}

impl SealAppearance {
    /// Width over height of the whole appearance (seal and date line) for a seal `width` pt
    /// wide.
    pub(crate) fn height_for(&self, width: f64) -> f64 {
        width * self.image.aspect()
            + if self.date_line.is_some() {
                DATE_LINE
            } else {
                0.0
            }
    }
}

/// A rectangle in default user space: [llx, lly, urx, ury].
pub(crate) type Rect = [f64; 4];

/// The widget rectangle for a seal `w`×`h` pt whose top-left corner is `x`,`y` pt from the
/// top-left corner of the page as displayed (the crop box, rotated by /Rotate).
pub(crate) fn place(crop: Rect, rotate: u32, x: f64, y: f64, w: f64, h: f64) -> Rect {
    let [llx, lly, urx, ury] = crop;
    match rotate {
        90 => [llx + y, lly + x, llx + y + h, lly + x + w],
        180 => [urx - x - w, lly + y, urx - x, lly + y + h],
        270 => [urx - y - h, ury - x - w, urx - y, ury - x],
        _ => [llx + x, ury - y - h, llx + x + w, ury - y],
    }
}

/// The displayed size of the page in points (width, height).
pub(crate) fn displayed_size(crop: Rect, rotate: u32) -> (f64, f64) {
    let (w, h) = (crop[2] - crop[0], crop[3] - crop[1]);
    if rotate == 90 || rotate == 270 {
        (h, w)
    } else {
        (w, h)
    }
}

pub(crate) fn mm(v: f64) -> f64 {
    v * PT_PER_MM
}

/// Writes the appearance form XObject of a new field: the seal `w` pt wide (height from the
/// image), the date line under it, rotated so it reads upright on a page rotated by `rotate`.
pub(crate) fn write_form(
    update: &mut Update<'_>,
    seal: &SealAppearance,
    w: f64,
    rotate: u32,
) -> ObjRef {
    let h = seal.height_for(w);
    draw(update, seal, w, h, w, rotate)
}

/// Writes an appearance filling an existing field's box (`box_w`×`box_h` pt as displayed):
/// the largest seal that fits, centred, with the date line under it.
pub(crate) fn write_fitted_form(
    update: &mut Update<'_>,
    seal: &SealAppearance,
    box_w: f64,
    box_h: f64,
    rotate: u32,
) -> ObjRef {
    let line = if seal.date_line.is_some() {
        DATE_LINE
    } else {
        0.0
    };
    let seal_w = box_w.min((box_h - line).max(1.0) / seal.image.aspect());
    draw(update, seal, box_w, box_h, seal_w, rotate)
}

fn draw(
    update: &mut Update<'_>,
    seal: &SealAppearance,
    box_w: f64,
    box_h: f64,
    seal_w: f64,
    rotate: u32,
) -> ObjRef {
    let image = seal.image.write(update);
    let img_h = seal_w * seal.image.aspect();
    let x = (box_w - seal_w) / 2.0;
    let y = box_h - img_h;
    let mut content = format!(
        "q {} 0 0 {} {} {} cm /Seal Do Q\n",
        num(seal_w),
        num(img_h),
        num(x),
        num(y)
    );
    let mut resources = Dict::new();
    let mut xobjects = Dict::new();
    xobjects.set("Seal", image);
    resources.set("XObject", xobjects);
    if let Some(text) = &seal.date_line {
        let ascii: String = text
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .collect();
        let size = 8.0;
        // Helvetica digits are 0.556 em wide: centre the line under the seal.
        let text_w = ascii.len() as f64 * size * 0.556;
        let literal = Object::String(PdfString::literal(ascii.into_bytes())).to_bytes();
        let literal = String::from_utf8_lossy(&literal).into_owned();
        content.push_str(&format!(
            "BT /Date {} Tf 0 g {} {} Td {literal} Tj ET\n",
            num(size),
            num(((box_w - text_w) / 2.0).max(0.0)),
            num((y - DATE_LINE + 2.0).max(0.0))
        ));
        let mut font = Dict::new();
        font.set("Type", name("Font"));
        font.set("Subtype", name("Type1"));
        font.set("BaseFont", name("Helvetica"));
        font.set("Encoding", name("WinAnsiEncoding"));
        let mut fonts = Dict::new();
        fonts.set("Date", font);
        resources.set("Font", fonts);
    }
    form(
        update,
        [0.0, 0.0, box_w, box_h],
        rotate,
        resources,
        content.as_bytes(),
    )
}

/// An empty appearance (invisible signatures still get one, as PDF/A wants).
pub(crate) fn write_empty_form(update: &mut Update<'_>) -> ObjRef {
    form(update, [0.0, 0.0, 0.0, 0.0], 0, Dict::new(), b"")
}

fn form(
    update: &mut Update<'_>,
    bbox: Rect,
    rotate: u32,
    resources: Dict,
    content: &[u8],
) -> ObjRef {
    let r = update.alloc();
    let mut dict = Dict::new();
    dict.set("Type", name("XObject"));
    dict.set("Subtype", name("Form"));
    dict.set("BBox", bbox.iter().map(|v| real(*v)).collect::<Vec<_>>());
    if rotate != 0 {
        let (c, s) = match rotate {
            90 => (0i64, 1i64),
            180 => (-1, 0),
            _ => (0, -1),
        };
        dict.set(
            "Matrix",
            vec![
                Object::Int(c),
                Object::Int(s),
                Object::Int(-s),
                Object::Int(c),
                Object::Int(0),
                Object::Int(0),
            ],
        );
    }
    dict.set("Resources", resources);
    update.put_stream(r, dict, content, !content.is_empty());
    r
}

fn num(v: f64) -> String {
    String::from_utf8_lossy(&real(v).to_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_follows_the_displayed_page() {
        let crop = [10.0, 20.0, 610.0, 820.0]; // 600 × 800, offset origin
                                               // Unrotated: top-left corner 50 right, 100 down.
        assert_eq!(
            place(crop, 0, 50.0, 100.0, 30.0, 40.0),
            [60.0, 680.0, 90.0, 720.0]
        );
        // Rotated 90° clockwise: the displayed top-left is user space lower-left.
        assert_eq!(
            place(crop, 90, 50.0, 100.0, 30.0, 40.0),
            [110.0, 70.0, 150.0, 100.0]
        );
        assert_eq!(
            place(crop, 180, 50.0, 100.0, 30.0, 40.0),
            [530.0, 120.0, 560.0, 160.0]
        );
        assert_eq!(
            place(crop, 270, 50.0, 100.0, 30.0, 40.0),
            [470.0, 740.0, 510.0, 770.0]
        );
        assert_eq!(displayed_size(crop, 90), (800.0, 600.0));
    }

    #[test]
    fn broken_and_oversized_pngs_are_clear_errors() {
        assert!(matches!(
            SealImage::from_png(b"not a png"),
            Err(Error::Image(_))
        ));
        let huge = vec![0u8; MAX_IMAGE_BYTES + 1];
        assert!(matches!(SealImage::from_png(&huge), Err(Error::Image(_))));
    }
}
