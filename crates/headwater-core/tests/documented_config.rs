//! docs/configuration.md quotes `SyncConfig::default()` as JSON; this keeps the quote
//! and the code the same.

use headwater_core::engine::SyncConfig;

const PAGE: &str = include_str!("../../../docs/configuration.md");

fn first_json_block(page: &str) -> &str {
    let start = page
        .find("```json\n")
        .expect("the page has a ```json block")
        + "```json\n".len();
    let len = page[start..].find("```").expect("the json block is closed");
    &page[start..start + len]
}

#[test]
fn the_documented_defaults_are_the_defaults() {
    let documented: serde_json::Value =
        serde_json::from_str(first_json_block(PAGE)).expect("the documented JSON parses");
    let actual = serde_json::to_value(SyncConfig::default()).unwrap();
    assert_eq!(
        documented, actual,
        "docs/configuration.md no longer shows SyncConfig::default(); paste the new JSON"
    );
    let parsed: SyncConfig = serde_json::from_value(documented).unwrap();
    assert_eq!(parsed, SyncConfig::default());
}
