//! RON files: the one parser every RON reader uses (hypotheses, ACDC configs, training
//! configs, task specifications, …) and the one rule for relative paths written inside them.
//!
//! Parse errors are [`Error::Parse`]: the file, line and column, what is wrong and what a valid
//! file looks like. A relative path inside a RON file is relative to the folder of the file that
//! names it, never to the working directory; messages say which path was tried.

use crate::data::TaskSpec;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// The RON options of every file the crate reads: newtype variants unwrapped (`Ioi(n: 10)`)
/// and implicit `Some` (`flip: "IO"`).
pub fn options() -> ron::Options {
    ron::Options::default()
        .with_default_extension(ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES)
        .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
}

/// A value as RON in the form every reader here parses back: struct names written, newtype
/// variants unwrapped and `Some` implicit (what a run folder keeps as `config.ron`).
pub fn to_pretty<T: serde::Serialize>(value: &T) -> String {
    let pretty = ron::ser::PrettyConfig::new().struct_names(true).extensions(
        ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES
            | ron::extensions::Extensions::IMPLICIT_SOME,
    );
    options()
        .to_string_pretty(value, pretty)
        .unwrap_or_default()
}

/// Parse RON `text`; `path` names it in errors and `example` (what a valid file looks like, or
/// where to find one) ends the message.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path, example: &str) -> Result<T> {
    options().from_str(text).map_err(|e| {
        let mut msg = e.code.to_string();
        if !example.is_empty() {
            msg.push_str("; ");
            msg.push_str(example);
        }
        Error::Parse {
            path: path.to_path_buf(),
            line: e.position.line,
            col: e.position.col,
            msg,
        }
    })
}

/// Read and parse a RON file; returns the value and the text.
pub fn read<T: DeserializeOwned>(path: &Path, example: &str) -> Result<(T, String)> {
    let text = crate::error::read_to_string(path)?;
    let value = parse(&text, path, example)?;
    Ok((value, text))
}

/// The folder relative paths in `file` are relative to.
fn base_dir(file: &Path) -> PathBuf {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::path::absolute(&dir).unwrap_or(dir)
}

/// A path written in `file`: absolute paths as they are, relative ones joined to the folder of
/// `file` (made absolute, so the result does not depend on where the file is read from later).
pub fn resolve(file: &Path, written: &str) -> PathBuf {
    let p = Path::new(written);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base_dir(file).join(p)
    }
}

/// The `model:` of a RON file: a folder relative to the file (returned as an absolute path), or
/// else a shipped model's name or a Hugging Face id, returned unchanged. A folder that exists
/// only relative to the working directory is refused, naming the path that was tried.
pub fn model_spec(file: &Path, written: &str) -> Result<String> {
    let tried = resolve(file, written);
    if tried.is_dir() {
        return Ok(tried.display().to_string());
    }
    let is_name = crate::model::resolve::shipped_models_dir()
        .join(written)
        .is_dir();
    if !is_name && !Path::new(written).is_absolute() && Path::new(written).is_dir() {
        return Err(Error::input(format!(
            "{}: model \"{written}\": a relative path in a RON file is relative to the file's \
             folder, so {} was tried and is not a folder (\"{written}\" exists relative to the \
             working directory instead); write the path relative to {} or give an absolute path",
            file.display(),
            tried.display(),
            base_dir(file).display()
        )));
    }
    Ok(written.to_string())
}

/// Resolve the paths a task specification names (a JSONL dataset's `path`) against `file`.
pub fn resolve_task_paths(task: &mut TaskSpec, file: &Path) {
    if let TaskSpec::Jsonl(o) = task {
        if !o.path.is_empty() {
            o.path = resolve(file, &o.path).display().to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct T {
        a: u32,
    }

    #[test]
    fn parse_errors_are_typed_with_line_and_column() {
        let e = parse::<T>("T(\n  a: \"x\",\n)", Path::new("f.ron"), "see f.ron").unwrap_err();
        match &e {
            Error::Parse {
                path, line, col, ..
            } => {
                assert_eq!(path, Path::new("f.ron"));
                assert_eq!((*line, *col), (2, 6));
            }
            other => panic!("not a parse error: {other:?}"),
        }
        let s = e.to_string();
        assert!(
            s.starts_with("f.ron:2:6: ") && s.ends_with("; see f.ron"),
            "{s}"
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let p = resolve(Path::new("/a/b/h.ron"), "data.jsonl");
        assert_eq!(p, Path::new("/a/b/data.jsonl"));
        assert_eq!(resolve(Path::new("/a/b/h.ron"), "/x/y"), Path::new("/x/y"));
        let rel = resolve(Path::new("h.ron"), "d");
        assert!(rel.is_absolute() && rel.ends_with("d"), "{}", rel.display());
    }

    #[test]
    fn a_folder_relative_to_the_working_directory_only_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("h.ron");
        // `src` exists relative to the crate root (the tests' working directory), not to `file`.
        let e = model_spec(&file, "src").unwrap_err().to_string();
        assert!(e.contains("relative to the file's folder"), "{e}");
        assert!(
            e.contains(&tmp.path().join("src").display().to_string()),
            "{e}"
        );
        std::fs::create_dir(tmp.path().join("m")).unwrap();
        let ok = model_spec(&file, "m").unwrap();
        assert_eq!(Path::new(&ok), tmp.path().join("m"));
        assert_eq!(model_spec(&file, "toy-ioi").unwrap(), "toy-ioi");
    }
}
