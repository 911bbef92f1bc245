//! docs/configuration.md's `HttpConfig` table names every field of `HttpConfig`: a field
//! added to the struct and not to the page fails here.
#![cfg(not(target_arch = "wasm32"))]

const PAGE: &str = include_str!("../../../docs/configuration.md");
const SOURCE: &str = include_str!("../src/config.rs");

/// The `pub` fields of `pub struct HttpConfig`, read from its source.
fn fields() -> Vec<&'static str> {
    let start = SOURCE
        .find("pub struct HttpConfig {")
        .expect("config.rs defines HttpConfig");
    let body = &SOURCE[start..];
    let body = &body[..body.find("\n}").expect("the struct is closed")];
    body.lines()
        .filter_map(|line| line.trim().strip_prefix("pub "))
        .filter_map(|rest| rest.split_once(':').map(|(name, _)| name.trim()))
        .collect()
}

/// The rows of the page's `HttpConfig` section.
fn table() -> &'static str {
    let start = PAGE
        .find("## `HttpConfig`")
        .expect("the page has an HttpConfig section");
    let section = &PAGE[start + 1..];
    &section[..section.find("\n## ").unwrap_or(section.len())]
}

#[test]
fn every_http_config_field_is_in_the_table() {
    let fields = fields();
    assert!(fields.len() >= 10, "the fields were read: {fields:?}");
    let table = table();
    let missing: Vec<_> = fields
        .iter()
        .filter(|name| {
            !table.contains(&format!("| `{name}`"))
                && !table.contains(&format!("`{name}.",))
                && !table.contains(&format!(", `{name}`"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md's HttpConfig table lacks {missing:?}"
    );
}
