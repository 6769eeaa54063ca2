"""Writes an XLSX workbook with openpyxl (an independent producer of the format), for the batch
job tests.

usage: rows_xlsx.py OUT.xlsx < SPEC.json
SPEC: {"sheets": [{"name": "...", "rows": [[cell, ...], ...]}, ...]}, a cell being a string, a
number, null (left empty), or {"date": "YYYY-MM-DD", "format": "yyyy/mm/dd"} (a real date cell,
shown with that number format).
"""
import datetime
import json
import sys

import openpyxl

spec = json.load(sys.stdin)
book = openpyxl.Workbook()
book.remove(book.active)
for sheet in spec["sheets"]:
    ws = book.create_sheet(sheet["name"])
    for r, row in enumerate(sheet["rows"], start=1):
        for c, value in enumerate(row, start=1):
            if value is None:
                continue
            cell = ws.cell(row=r, column=c)
            if isinstance(value, dict):
                cell.value = datetime.date.fromisoformat(value["date"])
                cell.number_format = value.get("format", "yyyy-mm-dd")
            else:
                cell.value = value
book.save(sys.argv[1])
