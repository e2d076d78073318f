//! Properties of settings parsing: every value written the documented way
//! reads back as meant, and no text makes a parser panic or accept what
//! the rules refuse.

use proptest::prelude::*;

use super::kinds::{Count, Duration, Kind, MessageBytes, MAX_MESSAGE_BYTES_LIMIT};

proptest! {
    #[test]
    fn durations_read_back_in_every_unit(n in 1u64..10_000_000, unit in 0usize..5, pad in " {0,2}") {
        let (suffix, scale) = [("", 1), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)][unit];
        let text = format!("{pad}{n}{suffix}{pad}");
        prop_assert_eq!(Duration::parse(&text), Some(std::time::Duration::from_secs(n * scale)));
    }

    #[test]
    fn any_text_is_a_duration_of_a_second_or_more_or_refused(text in "\\PC{0,30}") {
        if let Some(d) = Duration::parse(&text) {
            prop_assert!(d.as_secs() >= 1);
        }
    }

    #[test]
    fn counts_and_sizes_keep_their_bounds(n in any::<i128>()) {
        let text = n.to_string();
        prop_assert_eq!(Count::parse(&text), usize::try_from(n).ok().filter(|n| *n >= 1));
        let in_range = (1..=i128::from(MAX_MESSAGE_BYTES_LIMIT)).contains(&n);
        prop_assert_eq!(MessageBytes::parse(&text), in_range.then_some(n as u64));
    }
}
