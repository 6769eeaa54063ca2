-- A job's sealed PDFs are appended to one file (jobs/ID/outputs.pdfs); each sealed row says
-- where its bytes lie. Rows sealed before this migration have neither and are read from
-- their own file (jobs/ID/NNNNNN.pdf).
ALTER TABLE job_rows ADD COLUMN output_offset INTEGER;
ALTER TABLE job_rows ADD COLUMN output_length INTEGER;
