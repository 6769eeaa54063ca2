"""Judges every signature of a PDF with pyHanko (the independent validator) and prints JSON.

usage: pyhanko_check.py FILE.pdf [FILE2.pdf ...] --trust ROOT.pem [--trust ROOT2.pem ...] [--no-strict]

With one file it prints that file's list; with several, an object mapping each path to its list
(one process for many files: batch outputs are judged without a start-up per file).

For each signature: intact / valid / trusted, coverage, pyHanko's diff analysis of later
revisions, the PAdES baseline attributes (sub-filter, signing-certificate-v2 present,
signing-time absent) and the signature time-stamp's status.
"""
import argparse
import json
import logging

from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

logging.disable(logging.WARNING)

parser = argparse.ArgumentParser()
parser.add_argument("pdf", nargs="+")
parser.add_argument("--trust", action="append", default=[])
parser.add_argument("--no-strict", action="store_true")
args = parser.parse_args()

roots = [load_cert_from_pemder(p) for p in args.trust]


def context():
    return ValidationContext(trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail")


def judge_one(sig):
    status = validate_pdf_signature(
        sig, signer_validation_context=context(), ts_validation_context=context()
    )
    signer_info = sig.signer_info
    attr_types = [a["type"].native for a in signer_info["signed_attrs"]]
    ts = status.timestamp_validity
    return {
        "field": sig.field_name,
        "intact": status.intact,
        "valid": status.valid,
        "trusted": status.trusted,
        "bottom_line": status.bottom_line,
        "coverage": status.coverage.name if status.coverage else None,
        "modification_level": status.modification_level.name
        if status.modification_level is not None
        else None,
        "docmdp_ok": status.docmdp_ok,
        "sub_filter": str(sig.sig_object.get("/SubFilter")),
        "signed_attrs": attr_types,
        "timestamp": None
        if ts is None
        else {"intact": ts.intact, "valid": ts.valid, "trusted": ts.trusted},
    }


def judge(path):
    with open(path, "rb") as f:
        reader = PdfFileReader(f, strict=not args.no_strict)
        return [judge_one(sig) for sig in reader.embedded_signatures]


if len(args.pdf) == 1:
    print(json.dumps(judge(args.pdf[0])))
else:
    print(json.dumps({p: judge(p) for p in args.pdf}))
