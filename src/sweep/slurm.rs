//! Slurm: a submission script for an array job, one array task per point.
//!
//! Each task runs this same binary on its point with `--resume` (`acdc sweep --out DIR
//! --resume --point $SLURM_ARRAY_TASK_ID`): a task that is pre-empted or requeued continues
//! from the point's last checkpoint, and a finished point is skipped. Only points that are not
//! done are in the array, so submitting again finishes what is missing.

use super::folder::{PointState, SweepFolder};
use super::spec::SlurmResources;
use crate::error::{write_atomic, Error, Result};
use std::path::{Path, PathBuf};

/// Quote a string for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Indices as Slurm's `--array` list: `0-3,5,7-9`.
pub fn array_spec(indices: &[usize]) -> String {
    let mut parts = vec![];
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            indices[i].to_string()
        } else {
            format!("{}-{}", indices[i], indices[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// A written script.
#[derive(Debug, Clone)]
pub struct Script {
    /// Its path (`DIR/slurm/array.sh`).
    pub path: PathBuf,
    /// The points in the array (not done when it was written).
    pub indices: Vec<usize>,
}

/// A resource value on one `#SBATCH` line: no spaces or newlines.
fn checked(flag: &str, v: &str) -> Result<String> {
    let v = v.trim();
    if v.is_empty() || v.chars().any(|c| c.is_whitespace()) {
        return Err(Error::input(format!(
            "slurm {flag} \"{v}\": give one value without spaces (e.g. --time 02:00:00, --mem 4G)"
        )));
    }
    Ok(v.to_string())
}

/// The array job's name: `acdc-` and the sweep folder's name, with `-` for anything else
/// than letters, digits and `-`.
fn job_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The `#SBATCH` lines: name, array, resources, log files and requeue.
fn sbatch_lines(
    res: &SlurmResources,
    indices: &[usize],
    name: &str,
    dir_s: &str,
) -> Result<String> {
    let mut s = format!("#SBATCH --job-name=acdc-{name}\n");
    if !indices.is_empty() {
        let limit = res.max_running.map_or(String::new(), |k| format!("%{k}"));
        s.push_str(&format!("#SBATCH --array={}{limit}\n", array_spec(indices)));
    }
    if let Some(t) = &res.time {
        s.push_str(&format!("#SBATCH --time={}\n", checked("time", t)?));
    }
    if let Some(m) = &res.mem {
        s.push_str(&format!("#SBATCH --mem={}\n", checked("mem", m)?));
    }
    let cpus = res.cpus.unwrap_or(1);
    if cpus == 0 {
        return Err(Error::input(
            "slurm cpus = 0: a task needs at least one CPU (--cpus 1)",
        ));
    }
    s.push_str(&format!("#SBATCH --cpus-per-task={cpus}\n"));
    if let Some(p) = &res.partition {
        s.push_str(&format!(
            "#SBATCH --partition={}\n",
            checked("partition", p)?
        ));
    }
    for e in &res.extra {
        s.push_str(&format!("#SBATCH {}\n", checked("extra option", e)?));
    }
    s.push_str(&format!(
        "#SBATCH --output={dir_s}/logs/point-%a-%A.out\n#SBATCH --open-mode=append\n#SBATCH --requeue\n"
    ));
    Ok(s)
}

/// Write `DIR/slurm/array.sh` for the points that are not done; `binary` is the `acdc`
/// executable the tasks run.
pub fn write_script(folder: &SweepFolder, res: &SlurmResources, binary: &Path) -> Result<Script> {
    let indices: Vec<usize> = folder
        .points()
        .iter()
        .enumerate()
        .filter(|(_, p)| folder.state(p) != PointState::Done)
        .map(|(i, _)| i)
        .collect();
    let dir = std::path::absolute(&folder.dir).unwrap_or_else(|_| folder.dir.clone());
    let dir_s = dir.display().to_string();
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!(
        "# ACDC sweep {} ({} points, {} in this array). Written by `acdc sweep --slurm`.\n\
         # Submit: sbatch {}\n\
         # Each task runs one point with --resume: a requeued or pre-empted task continues from\n\
         # the point's checkpoint; a finished point is skipped. Then: acdc sweep status {}\n\
         #                                                             acdc sweep collect {}\n",
        folder.manifest.plan.source,
        folder.points().len(),
        indices.len(),
        shell_quote(&dir.join("slurm/array.sh").display().to_string()),
        shell_quote(&dir_s),
        shell_quote(&dir_s)
    ));
    s.push_str(&sbatch_lines(res, &indices, &job_name(&dir), &dir_s)?);
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!("cd {}\n", shell_quote(&folder.manifest.workdir)));
    s.push_str(&format!(
        "exec {} sweep --out {} --resume --point \"$SLURM_ARRAY_TASK_ID\" \\\n    \
         --threads-per-run \"${{SLURM_CPUS_PER_TASK:-1}}\" --no-progress\n",
        shell_quote(&binary.display().to_string()),
        shell_quote(&dir_s)
    ));
    let slurm_dir = folder.dir.join("slurm");
    std::fs::create_dir_all(&slurm_dir).map_err(|e| Error::io(&slurm_dir, e))?;
    std::fs::create_dir_all(folder.dir.join("logs"))
        .map_err(|e| Error::io(folder.dir.join("logs"), e))?;
    let path = slurm_dir.join("array.sh");
    write_atomic(&path, s.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
    }
    Ok(Script { path, indices })
}

/// Run `sbatch SCRIPT`; its output (the job id line).
pub fn submit(script: &Path) -> Result<String> {
    let out = std::process::Command::new("sbatch")
        .arg(script)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::input(format!(
                    "--submit: `sbatch` was not found on PATH, so nothing was submitted; run this \
                     on a Slurm login node, or submit the written script yourself: sbatch {}",
                    script.display()
                ))
            } else {
                Error::input(format!("--submit: cannot run sbatch: {e}"))
            }
        })?;
    if !out.status.success() {
        return Err(Error::input(format!(
            "--submit: sbatch {} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_lists_are_compact() {
        assert_eq!(array_spec(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_spec(&[0, 2, 3, 4, 7]), "0,2-4,7");
        assert_eq!(array_spec(&[5]), "5");
        assert_eq!(array_spec(&[]), "");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a/b-c"), "/a/b-c");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
