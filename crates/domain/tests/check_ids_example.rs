//! The `check-ids` example (examples/check-ids.rs), run as a function: everything but its
//! three-line `main`, with its input, output and exit status.

#[allow(dead_code)]
#[path = "../examples/check-ids.rs"]
mod check_ids;

use check_ids::{run, FAILED, PASSED, USAGE_ERROR};

/// Runs the example with `args` on `input`: (exit status, standard output, standard error).
fn check_ids(args: &[&str], input: &[u8]) -> (u8, String, String) {
    let args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = run(&args, input, &mut out, &mut err);
    (status, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

#[test]
fn braze_verdicts_are_the_reasons_and_a_failure_exits_1() {
    let (status, out, err) = check_ids(&["--dialect", "braze"], b"sku-1\nsku 2\nsku-1\n\nsku-3\n");
    assert_eq!(status, FAILED, "{err}");
    assert_eq!(
        out,
        [
            r#"line 1: "sku-1": ok"#,
            r#"line 2: "sku 2": invalid_character (the item id contains ' '; only letters, digits, `-` and `_` are allowed)"#,
            r#"line 3: "sku-1": duplicate_id (the item id appears earlier in the request, at index 0)"#,
            r#"line 4: "": empty_id (the item id is empty)"#,
            r#"line 5: "sku-3": ok"#,
            "",
        ]
        .join("\n")
    );
}

#[test]
fn all_valid_lines_exit_0() {
    let (status, out, _) = check_ids(&["--dialect=native"], b"a\r\nb\r\n");
    assert_eq!(status, PASSED);
    assert_eq!(out, "line 1: \"a\": ok\nline 2: \"b\": ok\n");
}

#[test]
fn native_words_are_the_reason_and_the_native_message() {
    let (status, out, _) = check_ids(&["--dialect", "native"], "ok\nsk\u{e9}\n".as_bytes());
    assert_eq!(status, FAILED);
    let second = out.lines().nth(1).expect("two verdicts");
    assert_eq!(
        second,
        "line 2: \"ské\": invalid_character (the item id contains 'é'; only letters, digits, `-` and `_` are allowed)"
    );
}

#[test]
fn bloomreach_allows_repeats_and_refuses_a_slash() {
    let (status, out, _) = check_ids(&["--dialect", "bloomreach"], b"a b\na b\na/b\n");
    assert_eq!(status, FAILED);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [r#"line 1: "a b": ok"#, r#"line 2: "a b": ok"#, r#"line 3: "a/b": contains_slash (the item id contains `/`)"#]
    );
}

#[test]
fn klaviyo_lines_are_compound_ids() {
    let input = b"$custom:::$default:::SKU 1\nSKU-2\n$custom:::$default:::SKU 1\n";
    let (status, out, _) = check_ids(&["--dialect", "klaviyo"], input);
    assert_eq!(status, FAILED);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            r#"line 1: "$custom:::$default:::SKU 1": ok"#,
            r#"line 2: "SKU-2": The id `SKU-2` must have the form `$custom:::$default:::<external id>`; it has 1 part(s)."#,
            r#"line 3: "$custom:::$default:::SKU 1": Duplicate id: the same id is already at index 0 of this request."#,
        ]
    );
}

#[test]
fn lines_are_checked_in_requests_of_the_dialects_limit() {
    // 51 Braze lines are two requests: line 51 repeats line 1 in another request, which passes;
    // line 50 repeats line 49 in the same one, which does not.
    let mut lines: Vec<String> = (1..=48).map(|n| format!("id-{n}")).collect();
    lines.extend(["id-49".to_owned(), "id-49".to_owned(), "id-1".to_owned()]);
    let input = lines.join("\n");
    let (status, out, _) = check_ids(&["--dialect", "braze"], input.as_bytes());
    assert_eq!(status, FAILED);
    let verdicts: Vec<&str> = out.lines().collect();
    assert_eq!(verdicts.len(), 51);
    assert_eq!(
        verdicts[49],
        r#"line 50: "id-49": duplicate_id (the item id appears earlier in the request, at index 48)"#
    );
    assert_eq!(verdicts[50], r#"line 51: "id-1": ok"#);
}

#[test]
fn no_lines_is_the_dialects_empty_request() {
    let (status, out, _) = check_ids(&["--dialect", "braze"], b"");
    assert_eq!((status, out.as_str()), (FAILED, "invalid_request (the request has no items)\n"));
    let (status, out, _) = check_ids(&["--dialect", "klaviyo"], b"");
    assert_eq!((status, out.as_str()), (FAILED, "A job must include at least one resource.\n"));
}

#[test]
fn usage_errors_exit_2() {
    for args in [&[][..], &["--dialect"], &["--dialect", "sap"], &["--dialect", "braze", "extra"], &["braze"]] {
        let (status, out, err) = check_ids(args, b"a\n");
        assert_eq!(status, USAGE_ERROR, "{args:?}");
        assert!(out.is_empty() && err.contains("usage: check-ids"), "{args:?}: {err}");
    }
}

#[test]
fn openreplay_is_refused_with_the_reason() {
    let (status, _, err) = check_ids(&["--dialect", "openreplay"], b"a\n");
    assert_eq!(status, USAGE_ERROR);
    assert!(err.contains("OpenReplay's API names no items"), "{err}");
}

#[test]
fn unreadable_input_exits_2() {
    let (status, out, err) = check_ids(&["--dialect", "native"], b"ok\n\xff\xfe\n");
    assert_eq!(status, USAGE_ERROR);
    assert!(out.is_empty() && err.contains("cannot read standard input"), "{err}");
}
