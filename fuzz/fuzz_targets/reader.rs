//! Fuzzes the PDF reader and verifier with arbitrary bytes: they must return an error, never
//! panic, hang or exhaust memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = seald_pades::Document::from_bytes(data.to_vec()) else {
        return;
    };
    let _ = doc.version();
    if let Ok(pages) = doc.page_count() {
        for page in [1, 2, pages] {
            let _ = doc.page(page);
        }
    }
    if let Ok(page) = doc.page(1) {
        let _ = doc.find_page(page.reference);
    }
    let _ = seald_pades::verify_document(&doc, &seald_pades::VerifyOptions::default());
});
