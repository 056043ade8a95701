//! Property tests of the id rules, chunking, the job state machine and Klaviyo's compound ids.

use catalog_domain::chunk::{chunk_ranges, effective_size};
use catalog_domain::ids::{is_safe_char, IdCharset};
use catalog_domain::{
    check_id, chunk_count, chunks, validate_ids, CompoundId, Dialect, IdProblem, JobEvent, JobState, RawId,
};
use proptest::prelude::*;
use std::collections::HashMap;

fn dialect() -> impl Strategy<Value = Dialect> {
    prop::sample::select(Dialect::ALL.to_vec())
}

/// An id every rule of `dialect` accepts.
fn valid_id(dialect: Dialect) -> BoxedStrategy<String> {
    match dialect.charset() {
        IdCharset::Safe => "[A-Za-z0-9_-]{1,250}".boxed(),
        IdCharset::NoSlash => "[^/]{1,300}".boxed(),
        IdCharset::Any => "(?s).{1,300}".boxed(),
    }
}

fn dialect_and_id() -> impl Strategy<Value = (Dialect, String)> {
    dialect().prop_flat_map(|d| (Just(d), valid_id(d)))
}

fn event() -> impl Strategy<Value = JobEvent> {
    prop_oneof![
        Just(JobEvent::BecameDue),
        Just(JobEvent::Claimed),
        Just(JobEvent::Released),
        (0u64..20, 0u64..20).prop_map(|(completed, failed)| JobEvent::Checkpoint { completed, failed }),
        Just(JobEvent::Finished),
        Just(JobEvent::Failed),
        Just(JobEvent::CancelRequested),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_dialect_accepts_a_generated_valid_id((dialect, id) in dialect_and_id()) {
        prop_assert_eq!(check_id(dialect, &id), Ok(()));
        let verdicts = validate_ids(dialect, vec![RawId::String(id.clone())]);
        prop_assert_eq!(verdicts, Ok(vec![Ok(id)]));
    }

    #[test]
    fn native_and_braze_refuse_any_character_outside_the_charset(
        before in "[A-Za-z0-9_-]{0,124}",
        bad in any::<char>().prop_filter("outside the charset", |c| !is_safe_char(*c)),
        after in "[A-Za-z0-9_-]{0,124}",
    ) {
        let id = format!("{before}{bad}{after}");
        for dialect in [Dialect::Native, Dialect::Braze] {
            prop_assert_eq!(check_id(dialect, &id), Err(IdProblem::InvalidCharacter { ch: bad }));
        }
    }

    #[test]
    fn native_and_braze_refuse_ids_over_250_chars(id in "[A-Za-z0-9_-]{251,400}") {
        for dialect in [Dialect::Native, Dialect::Braze] {
            prop_assert_eq!(
                check_id(dialect, &id),
                Err(IdProblem::TooLong { max: 250, len: id.chars().count() })
            );
        }
    }

    #[test]
    fn bloomreach_refuses_exactly_the_ids_with_a_slash(id in "(?s).{1,50}") {
        let expected = if id.contains('/') { Err(IdProblem::ContainsSlash) } else { Ok(()) };
        prop_assert_eq!(check_id(Dialect::Bloomreach, &id), expected);
    }

    #[test]
    fn duplicate_detection_agrees_with_a_hash_set(
        dialect in dialect(),
        ids in prop::collection::vec("[ab]{1,2}", 1..50),
    ) {
        let verdicts = validate_ids(dialect, ids.iter().cloned().map(RawId::String).collect())
            .expect("within every dialect's item limit");
        prop_assert_eq!(verdicts.len(), ids.len());
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        for (index, (id, verdict)) in ids.iter().zip(&verdicts).enumerate() {
            match first_seen.get(id.as_str()) {
                Some(&first_index) if dialect.requires_unique_ids() => {
                    prop_assert_eq!(verdict, &Err(IdProblem::Duplicate { first_index }));
                }
                _ => prop_assert_eq!(verdict, &Ok(id.clone())),
            }
            first_seen.entry(id.as_str()).or_insert(index);
        }
    }

    #[test]
    fn verdicts_keep_request_order_and_length(
        dialect in dialect(),
        raws in prop::collection::vec(
            prop_oneof![
                Just(RawId::Missing),
                Just(RawId::NotAString),
                "[a-c/ ]{0,3}".prop_map(RawId::String),
            ],
            1..50,
        ),
    ) {
        let verdicts = validate_ids(dialect, raws.clone()).expect("within limits");
        prop_assert_eq!(verdicts.len(), raws.len());
        for (raw, verdict) in raws.iter().zip(&verdicts) {
            match (raw, verdict) {
                (RawId::Missing, v) => prop_assert_eq!(v, &Err(IdProblem::Missing)),
                (RawId::NotAString, v) => prop_assert_eq!(v, &Err(IdProblem::NotAString)),
                (RawId::String(id), Ok(ok)) => prop_assert_eq!(id, ok),
                (RawId::String(_), Err(problem)) => {
                    prop_assert!(!matches!(problem, IdProblem::Missing | IdProblem::NotAString));
                }
            }
        }
    }

    #[test]
    fn chunking_keeps_order_and_covers_every_item_once(
        items in prop::collection::vec(any::<u32>(), 0..500),
        size in 0usize..60,
    ) {
        let parts: Vec<&[u32]> = chunks(&items, size).collect();
        prop_assert_eq!(parts.len(), chunk_count(items.len(), size));
        prop_assert!(parts.iter().all(|c| !c.is_empty() && c.len() <= effective_size(size)));
        let flat: Vec<u32> = parts.concat();
        prop_assert_eq!(&flat, &items);
        let by_range: Vec<&[u32]> = chunk_ranges(items.len(), size).map(|r| &items[r]).collect();
        prop_assert_eq!(by_range, parts);
    }

    #[test]
    fn no_event_sequence_leaves_a_terminal_status(
        total in 0u64..40,
        scheduled in any::<bool>(),
        events in prop::collection::vec(event(), 0..60),
    ) {
        let mut job = JobState::new(total, scheduled);
        for event in events {
            let before = job;
            match job.apply(event) {
                Ok(next) => {
                    prop_assert!(!before.status.is_terminal(), "{before:?} moved on {event:?}");
                    job = next;
                }
                Err(_) => prop_assert_eq!(job, before),
            }
            if before.status.is_terminal() {
                prop_assert_eq!(job, before);
            }
        }
    }

    #[test]
    fn counts_never_exceed_total(
        total in 0u64..40,
        scheduled in any::<bool>(),
        events in prop::collection::vec(event(), 0..60),
    ) {
        let mut job = JobState::new(total, scheduled);
        for event in events {
            if let Ok(next) = job.apply(event) {
                job = next;
            }
            prop_assert!(job.completed_count + job.failed_count <= job.total_count, "{job:?}");
            if job.status == catalog_domain::JobStatus::Completed {
                prop_assert_eq!(job.processed(), job.total_count);
            }
        }
    }

    #[test]
    fn klaviyo_compound_id_render_parse_round_trips(external_id in "(?s).{1,100}") {
        let id = CompoundId::custom_default(external_id);
        prop_assert_eq!(CompoundId::parse(&id.render()), Ok(id));
    }

    #[test]
    fn klaviyo_compound_id_parse_render_round_trips(external_id in "(?s).{1,100}") {
        let text = format!("$custom:::$default:::{external_id}");
        let parsed = CompoundId::parse(&text).expect("supported compound id");
        prop_assert_eq!(parsed.render(), text);
    }
}
