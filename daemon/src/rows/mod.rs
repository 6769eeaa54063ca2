//! The rows of a batch job, read one at a time from the uploaded file — CSV or an XLSX
//! workbook — so that memory stays flat in the number of rows. Both formats give the same
//! thing: a header row of column names, then each data row's values by column (trimmed,
//! wholly empty rows skipped), or why a row cannot be read.

use std::io::{Read, Seek};

mod xlsx;

/// The media type of an XLSX workbook.
pub const XLSX_MEDIA_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// How the rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    /// The format a request's `Content-Type` (without parameters, lower case) names.
    pub fn from_media_type(media_type: &str) -> Option<Format> {
        match media_type {
            "text/csv" => Some(Format::Csv),
            XLSX_MEDIA_TYPE => Some(Format::Xlsx),
            _ => None,
        }
    }
}

/// The whole file cannot be read as rows: nothing of it is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// `invalid_csv`, `invalid_xlsx`, `xlsx_too_large`, `sheet_not_found`.
    pub code: &'static str,
    pub detail: String,
}

impl FileError {
    fn new(code: &'static str, detail: impl Into<String>) -> Self {
        FileError {
            code,
            detail: detail.into(),
        }
    }
}

/// One row cannot be read (the others still can): the row is reported invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// `invalid_csv_row` or `invalid_xlsx_row`.
    pub code: &'static str,
    pub message: String,
}

/// A data row's values, one per header column, or why the row cannot be read.
pub type Row = Result<Vec<String>, RowProblem>;

/// A source of rows.
pub trait Rows {
    /// The header row's column names, in order.
    fn header(&self) -> &[String];
    /// The next data row's values, one per header column; `None` at the end of the file. A
    /// `FileError` ends the reading: the file is broken beyond this row.
    fn next_row(&mut self) -> Option<Result<Row, FileError>>;
}

/// Opens `input` as rows of `format`. `sheet` names an XLSX workbook's sheet (default: its
/// first); CSV has none.
pub fn open<'a, R: Read + Seek + Send + 'a>(
    format: Format,
    input: R,
    sheet: Option<&str>,
) -> Result<Box<dyn Rows + Send + 'a>, FileError> {
    match format {
        Format::Csv => Ok(Box::new(CsvRows::new(input)?)),
        Format::Xlsx => Ok(Box::new(xlsx::XlsxRows::open(input, sheet)?)),
    }
}

struct CsvRows<R> {
    header: Vec<String>,
    records: csv::StringRecordsIntoIter<R>,
}

impl<R: Read> CsvRows<R> {
    fn new(input: R) -> Result<Self, FileError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .trim(csv::Trim::All)
            .from_reader(input);
        let header = reader
            .headers()
            .map_err(|e| FileError::new("invalid_csv", format!("the header row: {e}")))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_owned())
            .collect();
        Ok(CsvRows {
            header,
            records: reader.into_records(),
        })
    }
}

impl<R: Read> Rows for CsvRows<R> {
    fn header(&self) -> &[String] {
        &self.header
    }

    fn next_row(&mut self) -> Option<Result<Row, FileError>> {
        loop {
            let record = self.records.next()?;
            return Some(Ok(match record {
                // A line of empty cells (",,,") is an empty row, as in a workbook: skipped.
                Ok(r) if r.iter().all(str::is_empty) => continue,
                Ok(r) => Ok(r.iter().map(str::to_owned).collect()),
                Err(e) => Err(RowProblem {
                    code: "invalid_csv_row",
                    message: e.to_string(),
                }),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(rows: &mut dyn Rows) -> Vec<Row> {
        std::iter::from_fn(|| rows.next_row())
            .map(|r| r.expect("no file error"))
            .collect()
    }

    #[test]
    fn csv_rows_are_trimmed_empty_ones_skipped_and_a_ragged_row_is_a_row_problem() {
        let csv = "\u{feff}document_id, 姓名 \nA-1, 张三 \n\n , \nA-2,李四,extra\nA-3,王五\n";
        let mut rows = open(Format::Csv, std::io::Cursor::new(csv), None).expect("open");
        assert_eq!(rows.header(), ["document_id", "姓名"]);
        let got = all(rows.as_mut());
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], Ok(vec!["A-1".to_owned(), "张三".to_owned()]));
        assert_eq!(got[1].as_ref().map_err(|p| p.code), Err("invalid_csv_row"));
        assert_eq!(got[2], Ok(vec!["A-3".to_owned(), "王五".to_owned()]));
    }

    #[test]
    fn media_types_name_the_formats() {
        assert_eq!(Format::from_media_type("text/csv"), Some(Format::Csv));
        assert_eq!(Format::from_media_type(XLSX_MEDIA_TYPE), Some(Format::Xlsx));
        assert_eq!(Format::from_media_type("application/vnd.ms-excel"), None);
    }
}
