//! The message rules, field by field.

use super::*;
use serde_json::json;

fn fill() -> Fill<'static> {
    Fill {
        source: "machine-1",
    }
}

#[test]
fn type_rule_refuses_paths() {
    for bad in [
        "", "../x", "a/b", ".hidden", "-x", "_x", "a b", "é", "a\0b", "%2e%2e",
    ] {
        assert!(validate_type(bad).is_err(), "{bad:?} should be refused");
    }
    for good in ["task.event", "a", "A-1_b.c", "9"] {
        assert!(validate_type(good).is_ok(), "{good:?} should pass");
    }
    assert!(validate_type(&"a".repeat(128)).is_ok());
    assert!(validate_type(&"a".repeat(129)).is_err());
}

#[test]
fn host_id_rule_is_64_chars() {
    assert!(validate_host_id("source", &"h".repeat(64)).is_ok());
    let err = validate_host_id("target", &"h".repeat(65)).unwrap_err();
    assert_eq!(err.field, "target");
    assert!(validate_host_id("source", "..").is_err());
}

#[test]
fn new_message_has_v7_id_and_microsecond_utc_time() {
    let m = Message::new("task.event", "machine-1", None, Priority::Normal, json!({})).unwrap();
    assert_eq!(m.id.get_version_num(), 7);
    // 2026-11-24T10:30:00.123456+00:00
    assert_eq!(m.created_at.len(), 32, "{}", m.created_at);
    assert!(m.created_at.ends_with("+00:00"));
    let name = m.file_name();
    assert_eq!(name.len(), "YYYYMMDDTHHmmss_".len() + 36 + ".json".len());
    assert_eq!(id_from_file_name(&name), Some(m.id));
}

#[test]
fn file_name_uses_utc() {
    let d = Draft::from_json(
        br#"{"id":"0193a0a4-7c1e-7d7e-9a2b-5f1d2c3b4a59","type":"t","source":"h",
            "created_at":"2026-11-24T12:30:00.5+02:00"}"#,
    )
    .unwrap();
    let m = d.complete(None).unwrap();
    assert_eq!(
        m.file_name(),
        "20261124T103000_0193a0a4-7c1e-7d7e-9a2b-5f1d2c3b4a59.json"
    );
}

#[test]
fn draft_fills_missing_fields() {
    let m = Draft::from_json(br#"{"type":"disk.full"}"#)
        .unwrap()
        .complete(Some(&fill()))
        .unwrap();
    assert_eq!(m.source, "machine-1");
    assert_eq!(m.priority, Priority::Normal);
    assert_eq!(m.target, None);
    assert_eq!(m.payload.get(), "{}");
}

#[test]
fn complete_message_needs_id_source_and_time() {
    let err = Message::parse(br#"{"type":"t","source":"h","created_at":"2026-11-24T10:30:00Z"}"#)
        .unwrap_err();
    assert!(err.to_string().contains("id is required"), "{err}");
}

#[test]
fn unknown_field_is_refused_by_name() {
    let err = Draft::from_json(br#"{"type":"t","priorty":"high"}"#).unwrap_err();
    assert!(err.to_string().contains("priorty"), "{err}");
}

#[test]
fn each_bad_field_is_named() {
    let cases = [
        (r#"{"type":"../x"}"#, "type"),
        (r#"{"type":"t","priority":"urgent"}"#, "priority"),
        (r#"{"type":"t","target":"a/b"}"#, "target"),
        (r#"{"type":"t","source":".."}"#, "source"),
        (r#"{"type":"t","id":"nope"}"#, "id"),
        (r#"{"type":"t","created_at":"yesterday"}"#, "created_at"),
        (r#"{"payload":{}}"#, "type"),
    ];
    for (text, field) in cases {
        let err = Draft::from_json(text.as_bytes())
            .unwrap()
            .complete(Some(&fill()))
            .unwrap_err();
        assert_eq!(err.field, field, "{text}: {err}");
    }
}

#[test]
fn wrong_json_type_and_non_object_are_errors() {
    assert!(Draft::from_json(br#"{"type":5}"#).is_err());
    assert!(Draft::from_json(b"[1,2]").is_err());
    assert!(Draft::from_json(b"{not json").is_err());
}

#[test]
fn size_limit_is_enforced() {
    let m = Message::new("t", "h", None, Priority::Low, json!("x".repeat(2000))).unwrap();
    assert!(matches!(m.encode(1000), Err(MessageError::TooLarge { .. })));
    assert!(m.encode(DEFAULT_MAX_MESSAGE_BYTES).is_ok());
}

#[test]
fn explicit_null_payload_is_kept() {
    let m = Draft::from_json(br#"{"type":"t","payload":null}"#)
        .unwrap()
        .complete(Some(&fill()))
        .unwrap();
    assert_eq!(m.payload.get(), "null");
}

#[test]
fn roundtrip_keeps_field_order() {
    let m = Message::new("t", "h", Some("b"), Priority::High, json!({"k":1})).unwrap();
    let text = String::from_utf8(m.to_json_bytes()).unwrap();
    assert!(text.starts_with(r#"{"id":"#), "{text}");
    assert_eq!(Message::parse(text.as_bytes()).unwrap(), m);
}

#[test]
fn payload_travels_byte_for_byte() {
    let text = r#"{"id":"0193a0a4-7c1e-7d7e-9a2b-5f1d2c3b4a59","type":"t","source":"h","target":null,"priority":"normal","created_at":"2026-11-24T10:30:00Z","payload":{"z":123456789012345678901234567890,"a":1e-400}}"#;
    let m = Message::parse(text.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(m.to_json_bytes()).unwrap(), text);
    let spaced = text.replace(r#""payload":{"#, "\"payload\": {\n  ");
    assert_eq!(
        Message::parse(spaced.as_bytes()).unwrap(),
        m,
        "one line again"
    );
}

#[test]
fn year_0000_is_refused_before_it_names_a_file() {
    let err = Draft::from_json(br#"{"type":"t","created_at":"0000-01-01T00:00:00Z"}"#)
        .unwrap()
        .complete(Some(&fill()))
        .unwrap_err();
    assert_eq!(err.field, "created_at");
}

#[test]
fn only_the_exact_compact_encoding_is_read_as_compact() {
    let m = Message::new("t", "a", None, Priority::Low, json!({"k": [1, "x y"]})).unwrap();
    let text = String::from_utf8(m.to_json_bytes()).unwrap();
    assert_eq!(Message::from_compact(&text), Some(m.clone()));
    let targeted = Message {
        target: Some("b".into()),
        ..m.clone()
    };
    let targeted_text = String::from_utf8(targeted.to_json_bytes()).unwrap();
    assert_eq!(Message::from_compact(&targeted_text), Some(targeted));
    // Another order, whitespace, a field after the payload, an upper-case
    // id, an escape or an invalid field: left to the full parser.
    for other in [
        text.replacen(
            r#""type":"t","source":"a""#,
            r#""source":"a","type":"t""#,
            1,
        ),
        text.replacen(r#""k":"#, r#""k": "#, 1),
        text.replacen(r#"]}}"#, r#"]},"x":1}"#, 1),
        text.replacen(r#"]}}"#, r#"]},"payload":{}}"#, 1),
        text.replacen(&m.id.to_string(), &m.id.to_string().to_uppercase(), 1),
        text.replacen(r#""type":"t""#, r#""type":"\u0074""#, 1),
        text.replacen(r#""type":"t""#, r#""type":"../t""#, 1),
        text.replacen(r#""priority":"low""#, r#""priority":"urgent""#, 1),
        text.replacen(r#""source":"a""#, r#""source":"a\"""#, 1),
    ] {
        assert_eq!(Message::from_compact(&other), None, "{other}");
    }
}
