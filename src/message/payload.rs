//! The payload as the sender wrote it: never decoded into numbers and maps,
//! so `123456789012345678901234567890` stays that, `1e-400` is not rounded
//! to `0.0`, and keys keep their order. Only the whitespace between tokens
//! goes, so a message stays one line (the hub's log and the ledgers are JSON
//! lines).

use serde_json::value::RawValue;

/// `raw` without whitespace outside its strings; every other byte as given.
pub fn compact_payload(raw: Box<RawValue>) -> Box<RawValue> {
    let text = raw.get();
    if !has_loose_whitespace(text) {
        return raw;
    }
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    // Removing whitespace between tokens keeps valid JSON valid.
    RawValue::from_string(out).unwrap_or(raw)
}

pub(super) fn has_loose_whitespace(text: &str) -> bool {
    // JSON whitespace is all below '!'; most payloads have no byte that low
    // at all, which this loop finds quickly (it runs for every message).
    if !text.bytes().any(|b| b <= b' ') {
        return false;
    }
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            return true;
        } else if b == b'"' {
            in_string = true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(text: &str) -> String {
        let raw = serde_json::from_str::<Box<RawValue>>(text).unwrap();
        compact_payload(raw).get().to_string()
    }

    #[test]
    fn numbers_order_and_strings_stay_as_written() {
        let text = r#"{"z":123456789012345678901234567890,"a":1e-400,"m":[1.0,-0]}"#;
        assert_eq!(compact(text), text);
        assert_eq!(
            compact("{ \"b\" : \"x y\\\" \\n z\" ,\n\t\"a\" : [ 1 , 2 ] }"),
            r#"{"b":"x y\" \n z","a":[1,2]}"#
        );
    }
}
