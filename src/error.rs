//! The library's error type.
//!
//! Every variant carries a message written for the person at the keyboard: it names the file
//! (and line:column where there is one), says what is wrong and how to fix it.

use std::path::{Path, PathBuf};

/// Errors from circuitscope's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the user: a file, a flag, a dataset. The message is complete.
    #[error("{0}")]
    Input(String),
    /// A file could not be read or written. (The operating system's error is part of the
    /// message, not a separate cause, so that it is printed once.)
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the operating system said.
        cause: std::io::Error,
    },
    /// A RON file that does not parse: the file, the 1-based line and column, what is wrong and
    /// what a valid file looks like.
    #[error("{}:{line}:{col}: {msg}", path.display())]
    Parse {
        /// The file (or the flag or name the text came from).
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column, from 1.
        col: usize,
        /// What is wrong, and how to fix it.
        msg: String,
    },
    /// A tensor operation failed; this usually means a shape mismatch in a model file.
    #[error("tensor error: {0}")]
    Tensor(candle_core::Error),
}

// Not `#[from]`: that would make the tensor error the cause as well, and every report that
// prints causes would say it twice.
impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Tensor(e)
    }
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Bad input, with a complete message.
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            cause: source,
        }
    }
}

/// Shorthand for `Err(Error::Input(format!(...)))`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::Input(format!($($arg)*)))
    };
}

/// Read a whole file to a string, naming the file on failure.
pub fn read_to_string(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Check, before any work, that a file can be written at `path` (given by `flag`): its folder
/// exists and is a folder, and `path` is not a folder.
pub fn check_output_file(path: &Path, flag: &str) -> Result<()> {
    if path.is_dir() {
        return Err(Error::input(format!(
            "{flag} {}: is a folder; give a file name inside it",
            path.display()
        )));
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) if parent.is_file() => Err(Error::input(format!(
            "{flag} {}: {} is a file, not a folder; choose a path inside a folder",
            path.display(),
            parent.display()
        ))),
        Some(parent) if !parent.is_dir() => Err(Error::input(format!(
            "{flag} {}: the folder {} does not exist; create it first",
            path.display(),
            parent.display()
        ))),
        _ => Ok(()),
    }
}

/// Check, before any work, that `dir` (given by `flag`) is or can become a folder: it is not a
/// file, and no folder above it is a file. Missing folders are fine (they are created).
pub fn check_output_dir(dir: &Path, flag: &str) -> Result<()> {
    for a in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        if a.is_dir() {
            return Ok(());
        }
        if a.exists() {
            let what = if a == dir {
                "exists and is not a folder".to_string()
            } else {
                format!("{} is a file, not a folder", a.display())
            };
            return Err(Error::input(format!(
                "{flag} {}: {what}; choose another folder",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, then a rename,
/// so a reader never sees a half-written file and an old file is never lost to a crash.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}
