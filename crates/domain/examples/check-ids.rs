//! Checks item ids, one per line of standard input, by one dialect's rules, and prints each line's
//! verdict: the reason and message (native, Braze, Bloomreach: their vendor wording is the
//! server's facades') or Klaviyo's words.
//!
//! ```sh
//! cargo run -p catalog-domain --example check-ids -- --dialect braze < ids.txt
//! ```
//!
//! Dialects: `native`, `braze`, `bloomreach`, `klaviyo` (each line a compound id,
//! `$custom:::$default:::<external id>`). OpenReplay's API names no items, so `openreplay` is
//! refused with that reason. Lines are taken as they are (a blank line is an empty id) and checked
//! in groups of the dialect's per-request limit (50 for Braze), the requests a sender would make:
//! so a repeated id is refused within its group, and a duplicate's wording counts positions in it.
//!
//! The exit status is 0 when every line passes, 1 when any fails (or the input has none), 2 for a
//! usage error or unreadable input.

use catalog_domain::ids::{BatchProblem, IdProblem};
use catalog_domain::klaviyo::validate_compound_ids;
use catalog_domain::{validate_ids, Dialect, RawId};
use std::io::{self, BufRead, Write};
use std::process::ExitCode;

const USAGE: &str = "usage: check-ids --dialect <native|braze|bloomreach|klaviyo> < ids.txt";

/// Every line passed.
pub const PASSED: u8 = 0;
/// A line failed, or there was none.
pub const FAILED: u8 = 1;
/// Bad arguments or unreadable input.
pub const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = run(&args, io::stdin().lock(), &mut io::stdout().lock(), &mut io::stderr().lock());
    ExitCode::from(status)
}

/// The whole program: reads `input`, writes verdicts to `out` and complaints to `err`, and returns
/// the exit status.
pub fn run(args: &[String], input: impl BufRead, out: &mut impl Write, err: &mut impl Write) -> u8 {
    let dialect = match parse_args(args) {
        Ok(dialect) => dialect,
        Err(message) => {
            let _ = writeln!(err, "check-ids: {message}\n{USAGE}");
            return USAGE_ERROR;
        }
    };
    let lines: Vec<String> = match input.lines().collect() {
        Ok(lines) => lines,
        Err(error) => {
            let _ = writeln!(err, "check-ids: cannot read standard input: {error}");
            return USAGE_ERROR;
        }
    };
    match check(dialect, &lines, out) {
        Ok(true) => PASSED,
        Ok(false) => FAILED,
        Err(error) => {
            let _ = writeln!(err, "check-ids: cannot write the verdicts: {error}");
            USAGE_ERROR
        }
    }
}

/// The dialect named by `--dialect NAME` (or `--dialect=NAME`).
pub fn parse_args(args: &[String]) -> Result<Dialect, String> {
    let name = match args {
        [flag, name] if flag == "--dialect" => name.as_str(),
        [flag] if flag.starts_with("--dialect=") => &flag["--dialect=".len()..],
        _ => return Err("expected `--dialect NAME` and nothing else".to_owned()),
    };
    if name == "openreplay" {
        return Err("OpenReplay's API names no items (it lists and cancels jobs): there are no ids to check".to_owned());
    }
    Dialect::ALL
        .iter()
        .copied()
        .find(|dialect| dialect.as_str() == name)
        .ok_or_else(|| format!("unknown dialect `{name}`"))
}

/// Writes one verdict per line to `out`; true when every line passed.
pub fn check(dialect: Dialect, lines: &[String], out: &mut impl Write) -> io::Result<bool> {
    if lines.is_empty() {
        writeln!(out, "{}", batch_words(dialect, &BatchProblem::Empty))?;
        return Ok(false);
    }
    let group = dialect.limits().max_items_per_request;
    let mut passed = true;
    for (group_number, ids) in lines.chunks(group).enumerate() {
        let first_line = group_number * group + 1;
        let verdicts = match verdicts(dialect, ids) {
            Ok(verdicts) => verdicts,
            // Unreachable with groups of the dialect's limit; written out rather than assumed.
            Err(problem) => {
                writeln!(out, "lines {first_line}-{}: {}", first_line + ids.len() - 1, batch_words(dialect, &problem))?;
                passed = false;
                continue;
            }
        };
        for (offset, (id, verdict)) in ids.iter().zip(verdicts).enumerate() {
            let line = first_line + offset;
            match verdict {
                Ok(()) => writeln!(out, "line {line}: {id:?}: ok")?,
                Err(words) => {
                    passed = false;
                    writeln!(out, "line {line}: {id:?}: {words}")?;
                }
            }
        }
    }
    Ok(passed)
}

/// One request's verdicts, each refusal already in the dialect's words.
fn verdicts(dialect: Dialect, ids: &[String]) -> Result<Vec<Result<(), String>>, BatchProblem> {
    let raw: Vec<RawId> = ids.iter().map(|id| RawId::from(id.as_str())).collect();
    if dialect == Dialect::Klaviyo {
        let verdicts = validate_compound_ids(raw)?;
        return Ok(verdicts.into_iter().map(|verdict| verdict.map(drop).map_err(|problem| problem.detail())).collect());
    }
    let verdicts = validate_ids(dialect, raw)?;
    Ok(verdicts.into_iter().map(|verdict| verdict.map(drop).map_err(|problem| id_words(dialect, &problem))).collect())
}

/// A refused id in the dialect's words: what its facade would answer.
fn id_words(dialect: Dialect, problem: &IdProblem) -> String {
    match dialect {
        // Braze's and Bloomreach's words are their facades' (catalog-api): the reason and the
        // domain's message stand for them here.
        Dialect::Native | Dialect::Braze | Dialect::Bloomreach => format!("{} ({problem})", problem.reason()),
        Dialect::Klaviyo => problem.klaviyo_detail(),
    }
}

/// A refused request in the dialect's words.
fn batch_words(dialect: Dialect, problem: &BatchProblem) -> String {
    match dialect {
        Dialect::Native | Dialect::Braze | Dialect::Bloomreach => format!("{} ({problem})", problem.code()),
        Dialect::Klaviyo => problem.klaviyo_detail(),
    }
}
