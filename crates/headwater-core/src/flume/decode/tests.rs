//! The decoder against Flume's acceptance rules, row by row.

use super::*;

fn decode(body: &str) -> Result<Vec<FlumeEvent>, DecodeErrorKind> {
    decode_batch(body, &DecodeLimits::default()).map_err(|error| error.kind)
}

fn status(body: &str) -> u16 {
    decode_batch(body, &DecodeLimits::default())
        .map(|_| 200)
        .unwrap_or_else(|error| error.flume_status())
}

#[test]
fn empty_array_is_valid() {
    assert_eq!(decode("[]"), Ok(vec![]));
    assert_eq!(decode(" \n[ ]\t"), Ok(vec![]));
}

#[test]
fn empty_and_null_documents_are_flume_500s() {
    assert_eq!(decode(""), Err(DecodeErrorKind::Empty));
    assert_eq!(decode("  \n"), Err(DecodeErrorKind::Empty));
    assert_eq!(decode("null"), Err(DecodeErrorKind::NullDocument));
    assert_eq!(decode("[null]"), Err(DecodeErrorKind::NullEvent));
    assert_eq!(decode("[{},]"), Err(DecodeErrorKind::NullEvent));
    assert_eq!(decode("[,]"), Err(DecodeErrorKind::NullEvent));
    for body in ["", " ", "null", "[null]", "[{}, null]", "[{},]"] {
        assert_eq!(status(body), 500, "{body:?}");
    }
}

#[test]
fn non_arrays_are_400s() {
    for body in [r#"{"headers":{}}"#, "\"x\"", "42", "true", "x"] {
        assert_eq!(decode(body), Err(DecodeErrorKind::NotAnArray), "{body}");
        assert_eq!(status(body), 400);
    }
    assert_eq!(decode("[1]"), Err(DecodeErrorKind::EventNotAnObject));
    assert_eq!(decode("[[]]"), Err(DecodeErrorKind::EventNotAnObject));
}

#[test]
fn numbers_and_booleans_are_coerced_to_their_text() {
    let events =
        decode(r#"[{"headers":{"a":42,"b":-1.5e3,"c":true,"d":false},"body":7}]"#).unwrap();
    let headers = &events[0].headers;
    assert_eq!(headers["a"], "42");
    assert_eq!(headers["b"], "-1.5e3");
    assert_eq!(headers["c"], "true");
    assert_eq!(headers["d"], "false");
    assert_eq!(events[0].body, "7");
}

#[test]
fn objects_or_arrays_as_values_are_400s() {
    assert_eq!(
        decode(r#"[{"headers":{"a":{}}}]"#),
        Err(DecodeErrorKind::NotAString { field: "a".into() })
    );
    assert_eq!(
        decode(r#"[{"body":[1,2]}]"#),
        Err(DecodeErrorKind::NotAString {
            field: "body".into()
        })
    );
    assert_eq!(
        decode(r#"[{"headers":"a=b"}]"#),
        Err(DecodeErrorKind::HeadersNotAnObject)
    );
    assert_eq!(status(r#"[{"headers":{"a":[]}}]"#), 400);
}

#[test]
fn headers_may_be_an_array_of_pairs_as_gson_reads_maps() {
    let events = decode(r#"[{"headers":[["a","1"],["n",2]]},{"headers":[]}]"#).unwrap();
    assert_eq!(events[0].headers["a"], "1");
    assert_eq!(events[0].headers["n"], "2");
    assert!(events[1].headers.is_empty());
    assert_eq!(
        decode(r#"[{"headers":[["a","1"],["a","2"]]}]"#),
        Err(DecodeErrorKind::DuplicateHeader { name: "a".into() })
    );
    assert_eq!(
        decode(r#"[{"headers":["a"]}]"#),
        Err(DecodeErrorKind::HeadersNotAnObject)
    );
    assert_eq!(status(r#"[{"headers":[["a"]]}]"#), 400);
}

#[test]
fn duplicate_header_is_a_400() {
    let error = decode_batch(
        r#"[{"headers":{"a":"1","a":"2"}}]"#,
        &DecodeLimits::default(),
    )
    .unwrap_err();
    assert_eq!(
        error.kind,
        DecodeErrorKind::DuplicateHeader { name: "a".into() }
    );
    assert_eq!(error.offset, 22, "at the repeated name");
    assert_eq!(error.flume_status(), 400);
}

#[test]
fn null_and_missing_fields_give_empty_values() {
    let events = decode(r#"[{"headers":null,"body":null},{},{"headers":{}}]"#).unwrap();
    assert_eq!(events, vec![FlumeEvent::default(); 3]);
}

#[test]
fn unknown_members_are_skipped_however_nested() {
    let events =
        decode(r#"[{"meta":{"a":[1,{"b":null}],"c":"\""},"body":"x","more":[]}]"#).unwrap();
    assert_eq!(events, vec![FlumeEvent::with_body("x")]);
}

#[test]
fn trailing_content_is_rejected() {
    assert_eq!(decode("[] x"), Err(DecodeErrorKind::TrailingContent));
    assert_eq!(decode("[][]"), Err(DecodeErrorKind::TrailingContent));
    assert_eq!(status("[]x"), 400);
}

#[test]
fn malformed_json_is_a_syntax_error() {
    for body in [
        "[",
        "[{",
        r#"[{"body":}]"#,
        r#"[{"body":"x"]"#,
        r#"[{"body":"x",}]"#,
        r#"[{"body":"x"#,
        r#"[{"x":{"a" 1}}]"#,
        r#"[{"body":"\x"}]"#,
        r#"[{"body":"\u12"#,
        "[{,}]",
        "[{} {}]",
        "/* unterminated",
        r#"[{"body":/}]"#,
    ] {
        let error = decode(body).unwrap_err();
        assert!(
            matches!(error, DecodeErrorKind::Syntax { .. }),
            "{body}: {error:?}"
        );
        assert_eq!(status(body), 400, "{body}");
    }
}

#[test]
fn gson_leniencies_are_accepted() {
    let lenient = [
        r#"[{'body':'x'}]"#,
        r#"[{body:x}]"#,
        r#"[{"body"="x"}]"#,
        r#"[{"body"=>"x"}]"#,
        r#"[{"headers":{};"body":"x"}]"#,
        "// a comment\n[{\"body\":\"x\"}] ",
        "# a comment\n[/* here too */{\"body\":\"x\"}]",
        ")]}'\n[{\"body\":\"x\"}]",
        r#"[{"body":"x","extra":[1;2,,]}]"#,
    ];
    for body in lenient {
        assert_eq!(decode(body), Ok(vec![FlumeEvent::with_body("x")]), "{body}");
    }
    let events = decode(r#"[{headers:{a:01,b:1.,c:TRUE,d:nullx},body:-}]"#).unwrap();
    let headers = &events[0].headers;
    assert_eq!(
        (
            &*headers["a"],
            &*headers["b"],
            &*headers["c"],
            &*headers["d"]
        ),
        ("01", "1.", "true", "nullx")
    );
    assert_eq!(events[0].body, "-");
    // Raw control characters and escaped quotes of either kind are kept.
    assert_eq!(decode("[{\"body\":\"a\nb\\'\"}]").unwrap()[0].body, "a\nb'");
    // A repeated member overwrites the earlier one.
    assert_eq!(decode(r#"[{"body":"a","body":"b"}]"#).unwrap()[0].body, "b");
}

#[test]
fn null_header_values_are_kept_and_only_a_non_null_one_is_a_duplicate() {
    let events = decode(r#"[{"headers":{"a":null,"b":"1"}}]"#).unwrap();
    assert!(events[0].null_headers.contains("a"));
    assert_eq!(events[0].headers["b"], "1");
    let events = decode(r#"[{"headers":{"a":null,"a":"x"}}]"#).unwrap();
    assert_eq!(events[0].headers["a"], "x");
    assert!(events[0].null_headers.is_empty());
    assert_eq!(
        decode(r#"[{"headers":{"a":"x","a":null}}]"#),
        Err(DecodeErrorKind::DuplicateHeader { name: "a".into() })
    );
    assert_eq!(
        decode(r#"[{"headers":[[null,"x"]]}]"#),
        Err(DecodeErrorKind::NullHeaderName)
    );
    assert_eq!(status(r#"[{"headers":[[null,"x"]]}]"#), 500);
}

#[test]
fn escapes_and_unicode() {
    let events =
        decode(r#"[{"body":"a\"\\\/\b\f\n\r\t\u00e9\ud83c\udf89 é","headers":{"\u0041":"1"}}]"#)
            .unwrap();
    assert_eq!(events[0].body, "a\"\\/\u{8}\u{c}\n\r\té🎉 é");
    assert_eq!(events[0].headers["A"], "1");
    // Lone surrogates: Java keeps them in the string and writes '?' in UTF-8.
    assert_eq!(decode(r#"[{"body":"\ud800"}]"#).unwrap()[0].body, "?");
    assert_eq!(decode(r#"[{"body":"\udc00x"}]"#).unwrap()[0].body, "?x");
    assert_eq!(
        decode(r#"[{"body":"\ud800\u0041"}]"#).unwrap()[0].body,
        "?A"
    );
    assert_eq!(
        decode(r#"[{"body":"\ud800\ud800\udc00"}]"#).unwrap()[0].body,
        "?\u{10000}"
    );
    let utf16 = decode_batch_with_replacement(
        r#"[{"headers":{"h":"\ud800"},"body":"\ud800"}]"#,
        &DecodeLimits::default(),
        char::REPLACEMENT_CHARACTER,
    )
    .unwrap();
    assert_eq!(utf16[0].body, "\u{fffd}");
    assert_eq!(utf16[0].headers["h"], "?");
    // Four characters that are not hex digits: Gson's NumberFormatException, a 500.
    assert_eq!(
        decode(r#"[{"body":"\u12G4"}]"#),
        Err(DecodeErrorKind::BadUnicodeEscape {
            escape: "\\u12G4".into()
        })
    );
    assert_eq!(status(r#"[{"skipped":"\uZZZZ"}]"#), 500);
}

#[test]
fn gson_fails_on_the_list_before_flume_fails_on_a_null_event() {
    assert_eq!(
        decode(r#"[null,"x"]"#),
        Err(DecodeErrorKind::EventNotAnObject)
    );
    assert_eq!(decode("[null] x"), Err(DecodeErrorKind::TrailingContent));
    // A null document is not checked for what follows it.
    assert_eq!(decode("null x"), Err(DecodeErrorKind::NullDocument));
    assert_eq!(decode("// only a comment"), Err(DecodeErrorKind::Empty));
}

#[test]
fn limits_are_enforced() {
    let limits = DecodeLimits {
        max_bytes: 20,
        max_events: 2,
        max_depth: 4,
    };
    assert!(matches!(
        decode_batch(&" ".repeat(21), &limits).unwrap_err().kind,
        DecodeErrorKind::TooLarge { bytes: 21, .. }
    ));
    assert_eq!(
        decode_batch("[{},{},{}]", &limits).unwrap_err().kind,
        DecodeErrorKind::TooManyEvents { limit: 2 }
    );
    assert_eq!(decode_batch("[{},{}]", &limits).unwrap().len(), 2);
    assert_eq!(
        decode_batch(r#"[{"x":[[[]]]}]"#, &limits).unwrap_err().kind,
        DecodeErrorKind::TooDeep { limit: 4 }
    );
    assert!(decode_batch(r#"[{"x":[[]]}]"#, &limits).is_ok());
    let deep = format!("[{{\"x\":{}{}}}]", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        decode(&deep),
        Err(DecodeErrorKind::TooDeep { .. })
    ));
}

#[test]
fn one_byte_order_mark_before_the_document_is_skipped_as_gson_does() {
    assert_eq!(decode("\u{feff}[]"), Ok(Vec::new()));
    let events = decode("\u{feff}[{\"headers\":{\"a\":\"1\"},\"body\":\"x\"}]").unwrap();
    assert_eq!(events[0].body, "x");
    // Only one, and only at the start: anywhere else it is not JSON.
    assert!(decode("\u{feff}\u{feff}[]").is_err());
    assert!(decode(" \u{feff}[]").is_err());
}
