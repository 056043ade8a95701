//! Reading ids files and JSON Lines item files.
//!
//! Both are read twice — a dry run to find every bad input before anything is sent, then the real
//! run — so a file is opened twice and streamed each time, while standard input (which can be read
//! only once) is held in memory.
//!
//! Line `n` (from 1) is input index `n - 1`: nothing is skipped, so a report's indexes are line
//! numbers minus one. That is why a blank line is an input too (an empty id, or an unreadable
//! item) rather than silently dropped.

use catalog_client::{ItemInput, UnreadableInput};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where the lines come from.
pub enum Source {
    /// A file, opened anew for each pass.
    File(PathBuf),
    /// Standard input, read once into memory.
    Memory(Arc<Vec<Vec<u8>>>),
}

impl Source {
    /// `-` is standard input; anything else a file path.
    pub fn open(path: &str) -> Result<Source, String> {
        if path == "-" {
            let mut lines = Vec::new();
            let mut reader = io::stdin().lock();
            loop {
                let mut line = Vec::new();
                let read =
                    reader.read_until(b'\n', &mut line).map_err(|e| format!("cannot read standard input: {e}"))?;
                if read == 0 {
                    break;
                }
                lines.push(line);
            }
            Ok(Source::Memory(Arc::new(lines)))
        } else {
            let path = PathBuf::from(path);
            // Fail now, not halfway through a pass, when the file cannot be opened.
            File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            Ok(Source::File(path))
        }
    }

    /// The lines, without their line ends; a read error stops them and is kept in `error`.
    pub fn lines(&self, error: Arc<Mutex<Option<String>>>) -> Result<Box<dyn Iterator<Item = Vec<u8>>>, String> {
        match self {
            Source::Memory(lines) => {
                let lines = Arc::clone(lines);
                Ok(Box::new(
                    (0..lines.len()).filter_map(move |i| lines.get(i).map(|line| trim_line_end(line).to_vec())),
                ))
            }
            Source::File(path) => {
                let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                Ok(Box::new(ReadLines { reader: BufReader::with_capacity(1 << 16, file), error, path: path.clone() }))
            }
        }
    }
}

struct ReadLines<R> {
    reader: BufReader<R>,
    error: Arc<Mutex<Option<String>>>,
    path: PathBuf,
}

impl<R: Read> Iterator for ReadLines<R> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => {
                let len = trim_line_end(&line).len();
                line.truncate(len);
                Some(line)
            }
            Err(e) => {
                if let Ok(mut slot) = self.error.lock() {
                    *slot = Some(format!("cannot read {}: {e}", self.path.display()));
                }
                None
            }
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// One line of an ids file: the whole line is the id, as is (no trimming: `" a"` is reported,
/// not quietly turned into `"a"`).
pub fn id_line(line: Vec<u8>) -> Result<String, UnreadableInput> {
    String::from_utf8(line).map_err(|e| UnreadableInput {
        message: "the line is not valid UTF-8".to_owned(),
        id: Some(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    })
}

/// One line of a JSON Lines item file: either `{"id": "...", "fields": {...}}` (an object whose
/// keys are exactly `id` and `fields`, the latter an object) or a flat object whose `id` is the id
/// and every other key a field.
pub fn item_line(line: Vec<u8>) -> Result<ItemInput, UnreadableInput> {
    let unreadable = |message: &str, id: Option<String>| UnreadableInput { message: message.to_owned(), id };
    let value: Value = serde_json::from_slice(&line)
        .map_err(|e| UnreadableInput { message: format!("the line is not JSON: {e}"), id: None })?;
    let Value::Object(mut object) = value else {
        return Err(unreadable("the line is not a JSON object", None));
    };
    let id = match object.remove("id") {
        Some(Value::String(id)) => id,
        Some(other) => return Err(unreadable("`id` is not a string", Some(other.to_string()))),
        None => return Err(unreadable("the object has no `id`", None)),
    };
    let structured = object.len() == 1 && matches!(object.get("fields"), Some(Value::Object(_)));
    let fields = if structured {
        match object.remove("fields") {
            Some(Value::Object(fields)) => fields,
            _ => Map::new(),
        }
    } else {
        object
    };
    Ok(ItemInput { id, fields })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_lines_as_is() {
        assert_eq!(id_line(b"sku-1".to_vec()), Ok("sku-1".to_owned()));
        assert_eq!(id_line(b" a".to_vec()), Ok(" a".to_owned()));
        let bad = id_line(vec![b'a', 0xff]).expect_err("not UTF-8");
        assert_eq!(bad.id.as_deref(), Some("a\u{fffd}"));
    }

    #[test]
    fn line_ends_are_trimmed() {
        assert_eq!(trim_line_end(b"a\r\n"), b"a");
        assert_eq!(trim_line_end(b"a\n"), b"a");
        assert_eq!(trim_line_end(b"a"), b"a");
        assert_eq!(trim_line_end(b"\n"), b"");
    }

    #[test]
    fn structured_and_flat_items() {
        let item = item_line(br#"{"id":"a","fields":{"price":3}}"#.to_vec()).expect("structured");
        assert_eq!(item.id, "a");
        assert_eq!(Value::Object(item.fields), json!({"price": 3}));
        let item = item_line(br#"{"id":"b","price":4,"fields":"x"}"#.to_vec()).expect("flat");
        assert_eq!(Value::Object(item.fields), json!({"price": 4, "fields": "x"}));
        let item = item_line(br#"{"id":"c"}"#.to_vec()).expect("no fields");
        assert!(item.fields.is_empty());
    }

    #[test]
    fn bad_item_lines_are_unreadable() {
        assert!(item_line(b"".to_vec()).is_err());
        assert!(item_line(b"[1]".to_vec()).is_err());
        assert!(item_line(br#"{"price":1}"#.to_vec()).is_err());
        let bad = item_line(br#"{"id":7}"#.to_vec()).expect_err("number id");
        assert_eq!(bad.id.as_deref(), Some("7"));
    }

    #[test]
    fn files_are_streamed_line_by_line() {
        let path = std::env::temp_dir().join(format!("catalogctl-input-test-{}", std::process::id()));
        std::fs::write(&path, b"a\r\nb\n\nc").expect("write");
        let source = Source::open(path.to_str().expect("utf-8 path")).expect("opens");
        let error = Arc::new(Mutex::new(None));
        let lines: Vec<Vec<u8>> = source.lines(Arc::clone(&error)).expect("lines").collect();
        assert_eq!(lines, vec![b"a".to_vec(), b"b".to_vec(), b"".to_vec(), b"c".to_vec()]);
        assert!(error.lock().expect("lock").is_none());
        std::fs::remove_file(&path).ok();
        assert!(Source::open("/definitely/not/here").is_err());
    }
}
