"""Certifies a PDF with pyHanko (an author signature with a DocMDP permission level).

usage: pyhanko_certify.py IN.pdf OUT.pdf KEY.pem CERT.pem CHAIN.pem PERMISSION
PERMISSION: 1 (no changes), 2 (form filling and signing) or 3 (also annotations).
"""
import sys

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers

source, target, key, cert, chain, permission = sys.argv[1:7]
signer = signers.SimpleSigner.load(key, cert, ca_chain_files=(chain,))
meta = signers.PdfSignatureMetadata(
    field_name="Author",
    certify=True,
    docmdp_permissions=fields.MDPPerm(int(permission)),
    subfilter=fields.SigSeedSubFilter.PADES,
)
with open(source, "rb") as inf:
    writer = IncrementalPdfFileWriter(inf)
    with open(target, "wb") as outf:
        signers.sign_pdf(writer, meta, signer=signer, output=outf)
