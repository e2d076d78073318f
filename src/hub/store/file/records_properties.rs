//! Properties of the record encoding: every record decodes to itself and
//! carries a good checksum, a message record is written byte for byte as
//! serde writes it, and no single changed byte passes as good.

use std::borrow::Cow;

use proptest::prelude::*;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::records::*;

fn host() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,20}"
}

fn line(rec: &Record) -> Vec<u8> {
    let mut buf = Vec::new();
    encode(rec, &mut buf).unwrap();
    assert_eq!(buf.pop(), Some(b'\n'));
    buf
}

/// A few records of each kind that carries data: acks, registrations and
/// messages (with a body holding quotes, escapes and non-ASCII text).
fn lines() -> impl Strategy<Value = Vec<u8>> {
    (
        host(),
        prop::collection::vec(any::<u64>(), 0..5),
        any::<u64>(),
        any::<i64>(),
        "[ -~é\"\\\\]{0,40}",
        0..3u8,
    )
        .prop_map(|(h, seqs, seq, t, text, which)| {
            let body = RawValue::from_string(serde_json::to_string(&text).unwrap()).unwrap();
            let rec = match which {
                0 => Record::Ack(AckRecord {
                    host: Cow::Borrowed(&h),
                    seqs,
                }),
                1 => Record::Delete(Deletion {
                    host: Cow::Borrowed(&h),
                    through: seq,
                }),
                _ => Record::Msg(MsgRecord {
                    seq,
                    id: Uuid::from_u64_pair(seq, t as u64),
                    t,
                    from: Cow::Borrowed(&h),
                    to: Some(vec![Cow::Borrowed(&h)]),
                    msg: &body,
                }),
            };
            line(&rec)
        })
}

proptest! {
    #[test]
    fn every_record_decodes_to_itself_with_a_good_checksum(bytes in lines()) {
        prop_assert_eq!(verify(&bytes), Ok(Checksum::Good));
        let back = decode(&bytes).unwrap();
        prop_assert_eq!(line(&back), bytes);
    }

    #[test]
    fn a_message_record_is_written_as_serde_writes_it(
        seq in any::<u64>(),
        t in any::<i64>(),
        from in "[A-Za-z0-9._\"\\\\-]{1,12}",
        to in prop::option::of(prop::collection::vec(host(), 0..3)),
    ) {
        let body = RawValue::from_string(r#"{"k":[1,"x y"]}"#.to_string()).unwrap();
        let rec = MsgRecord {
            seq,
            id: Uuid::from_u64_pair(seq, t as u64),
            t,
            from: Cow::Borrowed(&from),
            to: to.as_ref().map(|hs| hs.iter().map(|h| Cow::Borrowed(h.as_str())).collect()),
            msg: &body,
        };
        let by_serde = serde_json::to_vec(&Record::Msg(rec.clone())).unwrap();
        let mut ours = line(&Record::Msg(rec));
        prop_assert_eq!(verify(&ours), Ok(Checksum::Good));
        // Without the checksum, the same bytes.
        let cut = ours.iter().rposition(|&b| b == b',').unwrap();
        ours.truncate(cut);
        ours.push(b'}');
        prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(by_serde).unwrap());
    }

    #[test]
    fn no_changed_byte_passes_as_good(bytes in lines(), at in any::<prop::sample::Index>(), to in any::<u8>()) {
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != to);
        let mut changed = bytes.clone();
        changed[i] = to;
        prop_assert_ne!(verify(&changed), Ok(Checksum::Good));
    }

    #[test]
    fn any_line_is_decoded_or_refused_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }
}
