//! Writing files whole: the one atomic write of the workspace. Teacher checkpoints
//! (`l2t-agents`), run folders and figures (`l2t`) all go through
//! [`write_atomic`]; it lives here, in the lowest crate, so every crate can use it.

use std::fs;
use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `path` atomically: into `<path>.part` beside it, flushed to disk,
/// then renamed over `path`, and (on Unix) the folder synced so the rename itself
/// survives a crash. A reader sees the old file or the new one, never a truncated one,
/// which is what resuming from a checkpoint after an interrupted run relies on.
///
/// On failure the `.part` file is removed (best effort) and the I/O error returned;
/// callers map it to their crate's typed error naming `path`. A `path` with no file
/// name (e.g. `..`) is an [`std::io::ErrorKind::InvalidInput`] error. Two writers of
/// the same `path` at once would share the `.part` file: callers write each file from
/// one place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut part_name = file_name.to_os_string();
    part_name.push(".part");
    let part = path.with_file_name(part_name);
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&part)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&part, path)?;
        // Make the rename durable (directories cannot be opened on Windows).
        #[cfg(unix)]
        {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    };
    write().inspect_err(|_| {
        // Best effort: the partial file may not exist.
        let _ = fs::remove_file(&part);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty folder of its own for test `name` under the system temp dir.
    fn fresh_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("l2t-envs-io-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the test folder");
        dir
    }

    #[test]
    fn writes_and_replaces_whole_files_without_leftovers() {
        let dir = fresh_dir("replace");
        let path = dir.join("a.bin");
        write_atomic(&path, b"first").expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"first");
        write_atomic(&path, b"second, longer").expect("rewrite");
        assert_eq!(fs::read(&path).expect("read"), b"second, longer");
        let names: Vec<_> = fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.bin")]);
        fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_failed_write_returns_the_error_and_leaves_nothing() {
        let dir = fresh_dir("fail");
        let missing = dir.join("no-such-dir").join("a.bin");
        assert_eq!(
            write_atomic(&missing, b"x").map_err(|e| e.kind()),
            Err(std::io::ErrorKind::NotFound)
        );
        // Renaming over a folder fails after the part file was written: it is removed.
        let folder = dir.join("folder");
        fs::create_dir(&folder).expect("mkdir");
        assert!(write_atomic(&folder, b"x").is_err());
        assert!(!dir.join("folder.part").exists());
        assert_eq!(
            write_atomic(Path::new(".."), b"x").map_err(|e| e.kind()),
            Err(std::io::ErrorKind::InvalidInput)
        );
        fs::remove_dir_all(&dir).expect("clean up");
    }
}
