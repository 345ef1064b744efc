//! JSON files: the one way the crate reads them, with errors that name the file, line and
//! column (as [`crate::ron_file`] does for RON).
//!
//! Errors are [`Error::Parse`]; the message says what the file should have been, and how to
//! fix it where there is something to do.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Parse JSON `text` read from `path`; on a syntax or shape error the message is `what(&e)`,
/// at the error's line and column.
pub fn parse<T: DeserializeOwned>(
    text: &str,
    path: &Path,
    what: impl FnOnce(&serde_json::Error) -> String,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        col: e.column(),
        msg: what(&e),
    })
}

/// Read and parse a JSON file (see [`parse`]).
pub fn read<T: DeserializeOwned>(
    path: &Path,
    what: impl FnOnce(&serde_json::Error) -> String,
) -> Result<T> {
    parse(&crate::error::read_to_string(path)?, path, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_line_and_column() {
        let e = parse::<Vec<u32>>("[1,\n 2,\n x]", Path::new("f.json"), |_| {
            "expected ids".into()
        })
        .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Parse {
                    line: 3,
                    col: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "f.json:3:2: expected ids");
        let v: Vec<u32> = parse("[1, 2]", Path::new("f.json"), |_| String::new()).unwrap();
        assert_eq!(v, vec![1, 2]);
    }
}
