"""pyHanko signing a PDF with a key on a PKCS#11 token (the peer seald is compared with).

usage: pyhanko_sign.py MODULE TOKEN PIN_FILE KEY_LABEL IN.pdf OUT.pdf ITERATIONS
Prints the mean milliseconds per signature (the session is opened once, outside the timing).
"""
import sys
import time

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import pkcs11 as p11
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter

lib, token, pin_file, key, source, target, n = sys.argv[1:8]
with open(pin_file) as f:
    pin = f.read().strip()
session = p11.open_pkcs11_session(lib, token_criteria=p11.TokenCriteria(label=token), user_pin=pin)
# other_certs_to_pull=None embeds every certificate on the token (the chain), as seald does.
signer = p11.PKCS11Signer(session, cert_label=key, key_label=key, other_certs_to_pull=None)
meta = signers.PdfSignatureMetadata(field_name="Signature1", subfilter=SigSeedSubFilter.PADES)
start = time.perf_counter()
for _ in range(int(n)):
    with open(source, "rb") as inf:
        writer = IncrementalPdfFileWriter(inf)
        with open(target, "wb") as outf:
            signers.sign_pdf(writer, meta, signer=signer, output=outf)
print((time.perf_counter() - start) / int(n) * 1000)
