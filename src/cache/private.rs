//! Owner-only files and directories for what may hold patient data (cache
//! records, their temporary files, training outputs): directories are
//! created 0700 and files 0600 on Unix. Elsewhere the platform's defaults
//! apply (these helpers then behave as the plain `std::fs` calls).

use std::fs;
use std::io;
use std::path::Path;

/// Mode of a private directory on Unix.
pub const DIR_MODE: u32 = 0o700;
/// Mode of a private file on Unix.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parents, owner-only (0700) on Unix.
/// An existing directory is left as it is (it may be shared, like `/tmp`):
/// see [`loose_permissions`].
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir)
    }
}

/// Creates (or truncates) `path` for writing, owner-only (0600) on Unix; a
/// file that already existed is made owner-only too.
pub fn create_file(path: &Path) -> io::Result<fs::File> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    let f = opts.open(path)?;
    restrict_file(path)?;
    Ok(f)
}

/// Makes an existing file owner-only (0600) on Unix; a no-op elsewhere.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    set_mode(path, FILE_MODE)
}

/// Makes an existing directory owner-only (0700) on Unix; a no-op elsewhere.
pub fn restrict_dir(path: &Path) -> io::Result<()> {
    set_mode(path, DIR_MODE)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = fs::metadata(path)?.permissions().mode() & 0o777;
    if current != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// True when group or others may read, write or enter `path` (Unix).
pub fn loose_permissions(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}
