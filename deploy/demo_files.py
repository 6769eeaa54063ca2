"""Writes the quickstart's sample files: a one-page contract PDF, a labour-contract template
with fill-in text fields (姓名, 身份证号, 入职日期), and a seal image (PNG with transparency),
so the demo has something to fill and seal.

usage: demo_files.py DIR
"""
import math
import os
import struct
import sys
import zlib

out = sys.argv[1]


def png(path, size=300):
    rows = []
    c = size / 2
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            d = math.hypot(x + 0.5 - c, y + 0.5 - c)
            star = abs(x - c) < size * 0.12 and abs(y - c) < size * 0.12
            if c * 0.82 <= d <= c * 0.95 or star:
                row += bytes([210, 20, 30, 255])
            else:
                row += bytes([0, 0, 0, 0])
        rows.append(bytes(row))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    data = b"\x89PNG\r\n\x1a\n"
    data += chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(b"".join(rows)))
    data += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def write_pdf(path, objects):
    body = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for i, o in enumerate(objects, 1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f\r\n" % (len(objects) + 1)
    for o in offsets:
        body += b"%010d 00000 n\r\n" % o
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    with open(path, "wb") as f:
        f.write(body)


def pdf(path):
    text = (
        b"BT /F1 20 Tf 72 760 Td (Sales Contract No. 2026-001) Tj ET\n"
        b"BT /F1 11 Tf 72 720 Td (Seller and buyer agree to the terms below.) Tj ET\n"
        b"BT /F1 11 Tf 72 140 Td (Seal of the seller:) Tj ET\n"
    )
    write_pdf(path, [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ])


def text_string(s):
    """A PDF text string: UTF-16BE with a byte order mark, as hex."""
    return b"<FEFF" + s.encode("utf-16-be").hex().upper().encode() + b">"


def template(path):
    """A labour contract with three fill-in text fields, their widgets on page 1."""
    text = (
        b"BT /F1 20 Tf 72 760 Td (Labour Contract) Tj ET\n"
        b"BT /F1 11 Tf 72 700 Td (Name:) Tj ET\n"
        b"BT /F1 11 Tf 72 670 Td (ID number:) Tj ET\n"
        b"BT /F1 11 Tf 72 640 Td (Start date:) Tj ET\n"
        b"BT /F1 11 Tf 72 140 Td (Seal of the employer:) Tj ET\n"
    )
    fields = [("姓名", 694), ("身份证号", 664), ("入职日期", 634)]
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [6 0 R 7 0 R 8 0 R] "
        b"/DA (/Helv 0 Tf 0 g) /DR << /Font << /Helv 5 0 R >> >> /NeedAppearances true >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R /Annots [6 0 R 7 0 R 8 0 R] >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for name, y in fields:
        objects.append(
            b"<< /Type /Annot /Subtype /Widget /FT /Tx /T " + text_string(name)
            + b" /Rect [160 %d 420 %d] /P 3 0 R /F 4 /DA (/Helv 0 Tf 0 g) >>" % (y, y + 20)
        )
    write_pdf(path, objects)


os.makedirs(out, exist_ok=True)
png(os.path.join(out, "seal.png"))
pdf(os.path.join(out, "contract.pdf"))
template(os.path.join(out, "labour-template.pdf"))
