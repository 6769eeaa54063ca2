//! docs/policy.md lists every reason code the crate can give.

use seald_policy::DenyCode;

#[test]
fn every_reason_code_is_documented() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/policy.md"))
        .expect("docs/policy.md");
    let missing: Vec<&str> = DenyCode::ALL
        .iter()
        .map(|c| c.code())
        .filter(|code| !page.contains(&format!("| `{code}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/policy.md's table: {missing:?}"
    );
}
