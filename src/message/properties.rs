//! Properties of message validation, over generated input: no input makes
//! it panic, whatever passes the type rule cannot name a path, a valid
//! message survives encoding unchanged (and its encoding is read back
//! field by field to the same message), the payload keeps its bytes, and
//! `created_at` takes exactly the RFC 3339 offsets within ±23:59.

use proptest::prelude::*;

use super::*;

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,40}"
}

/// JSON number text as a sender may write it: big, tiny, with exponents.
fn number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,4})?"
}

fn payload() -> impl Strategy<Value = String> {
    prop::collection::vec(("[a-z]{1,6}", number()), 0..6).prop_map(|fields| {
        let inner: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{k:?}:[{v},{{\"s\":\"{k} \\\\\\\" x\"}}]"))
            .collect();
        format!("{{{}}}", inner.join(","))
    })
}

proptest! {
    #[test]
    fn any_bytes_are_parsed_or_refused_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Draft::from_json(&bytes).map(|d| d.complete(Some(&Fill { source: "h" })));
    }

    #[test]
    fn a_type_that_passes_cannot_name_a_path(s in "[ -~]{0,140}") {
        if validate_type(&s).is_ok() {
            prop_assert!(!s.contains('/') && !s.starts_with('.') && !s.is_empty() && s.len() <= 128);
        }
    }

    #[test]
    fn a_valid_message_round_trips_byte_for_byte(
        kind in name(),
        source in name(),
        target in prop::option::of(name()),
        prio in 0..3u8,
        payload in payload(),
    ) {
        let priority = ["high", "normal", "low"][prio as usize];
        let target = target.map_or("null".to_string(), |t| format!("{t:?}"));
        let text = format!(
            r#"{{"id":"0193a0a4-7c1e-7d7e-9a2b-5f1d2c3b4a59","type":{kind:?},"source":{source:?},"target":{target},"priority":"{priority}","created_at":"2026-11-24T10:30:00.5+02:00","payload":{payload}}}"#
        );
        let m = Message::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(m.payload.get(), payload.as_str());
        prop_assert_eq!(String::from_utf8(m.to_json_bytes()).unwrap(), text.clone());
        // The hub reads this encoding field by field, to the same message.
        prop_assert_eq!(Message::from_compact(&text), Some(m.clone()));
        // Whitespace between tokens goes, nothing else changes.
        let spaced = text.replace('{', "{\n ").replace('[', "[ ");
        prop_assert_eq!(Message::from_compact(&spaced), None);
        prop_assert_eq!(Message::parse(spaced.as_bytes()).unwrap(), m);
    }

    #[test]
    fn a_text_read_as_compact_is_the_message_the_full_parser_reads(
        text in prop::sample::select(vec![
            r#"{"id":"0193a0a4-7c1e-7d7e-9a2b-5f1d2c3b4a59","type":"t","source":"a","target":null,"priority":"high","created_at":"2026-11-24T10:30:00Z","payload":{"k":"v w"}}"#,
            r#"{"id":"0193a0a4-7c1e-7d7e-9a2b-5f1d2c3b4a59","type":"t","source":"a","target":"b","priority":"low","created_at":"2026-11-24T10:30:00.5+02:00","payload":[1,{"x":null}]}"#,
        ]),
        at in any::<prop::sample::Index>(),
        to in prop::sample::select(b" \"\\,:{}[]0aZ.-_\t".to_vec()),
    ) {
        // One byte changed anywhere: whenever the result is still one JSON
        // value read as compact, the full parser reads the same message.
        let mut bytes = text.as_bytes().to_vec();
        let i = at.index(bytes.len());
        bytes[i] = to;
        let Ok(changed) = String::from_utf8(bytes) else { return Ok(()) };
        if serde_json::from_str::<&RawValue>(&changed).is_err() {
            return Ok(());
        }
        if let Some(m) = Message::from_compact(&changed) {
            prop_assert_eq!(Message::parse(changed.as_bytes()).ok(), Some(m));
        }
    }

    #[test]
    fn created_at_takes_exactly_the_offsets_within_a_day(
        secs in 0i64..250_000_000_000,
        hours in 0u8..30,
        minutes in 0u8..60,
        minus in any::<bool>(),
    ) {
        let ts = jiff::Timestamp::from_second(secs).unwrap();
        let date = ts.strftime("%Y-%m-%dT%H:%M:%S");
        let sign = if minus { '-' } else { '+' };
        let text = format!("{date}{sign}{hours:02}:{minutes:02}");
        prop_assert_eq!(time::parse_created_at(&text).is_ok(), hours <= 23, "{}", text);
    }
}
