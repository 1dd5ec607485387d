//! How the store puts bytes on disk: the sealed envelope every file carries (format version,
//! kind, length, SHA-256 of the body) and the atomic write (temp file in the same directory,
//! write, fsync, rename, fsync the directory), with a seam through which tests inject a full disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::utc;

/// The envelope format this build writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;

/// First word of every store file.
const MAGIC: &str = "wasp-store";

/// Longest header we accept before deciding a file is not ours.
const MAX_HEADER: usize = 200;

/// Mode of every file the store creates.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Mode of every directory the store creates.
pub(crate) const DIR_MODE: u32 = 0o700;

/// What a sealed file holds; a status file can never be loaded as credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Credentials,
    Status,
}

impl Kind {
    /// The word written in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Credentials => "credentials",
            Kind::Status => "status",
        }
    }
}

/// Why a file's bytes are not a valid sealed body. None of these carries file content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the file is empty")]
    Empty,
    #[error("the file does not start with a wasp-store header")]
    NotAStoreFile,
    #[error("the header is cut short or malformed")]
    BadHeader,
    #[error(
        "it uses format version {found}, which this wasp does not read (it reads version {FORMAT_VERSION})"
    )]
    UnknownVersion { found: u32 },
    #[error("it holds {found} data, not {expected}")]
    WrongKind {
        expected: &'static str,
        found: String,
    },
    #[error("it is truncated: {found} of {expected} body bytes present")]
    Truncated { expected: u64, found: u64 },
    #[error("it has {extra} bytes more than its header declares")]
    TrailingBytes { extra: u64 },
    #[error("its checksum does not match its content")]
    ChecksumMismatch,
}

/// Wraps `body` in the envelope: `wasp-store <version> <kind> <len> <sha256 hex>\n<body>`.
pub fn seal(kind: Kind, body: &[u8]) -> Zeroizing<Vec<u8>> {
    let digest = hex(&Sha256::digest(body));
    let header = format!(
        "{MAGIC} {FORMAT_VERSION} {} {} {digest}\n",
        kind.as_str(),
        body.len()
    );
    let mut out = Zeroizing::new(Vec::with_capacity(header.len() + body.len()));
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

/// Checks version, kind, length and checksum; returns the body.
pub fn open(kind: Kind, bytes: &[u8]) -> Result<&[u8], EnvelopeError> {
    if bytes.is_empty() {
        return Err(EnvelopeError::Empty);
    }
    let magic_prefix = format!("{MAGIC} ");
    let probe = &bytes[..bytes.len().min(magic_prefix.len())];
    if !magic_prefix.as_bytes().starts_with(probe) {
        return Err(EnvelopeError::NotAStoreFile);
    }
    let Some(newline) = bytes.iter().take(MAX_HEADER).position(|&b| b == b'\n') else {
        return Err(EnvelopeError::BadHeader);
    };
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| EnvelopeError::BadHeader)?;
    let mut words = header.split(' ');
    let _magic = words.next();
    let version: u32 = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or(EnvelopeError::BadHeader)?;
    if version != FORMAT_VERSION {
        return Err(EnvelopeError::UnknownVersion { found: version });
    }
    let (Some(found_kind), Some(len), Some(digest), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(EnvelopeError::BadHeader);
    };
    if found_kind != kind.as_str() {
        return Err(EnvelopeError::WrongKind {
            expected: kind.as_str(),
            found: found_kind.chars().take(20).collect(),
        });
    }
    let expected: u64 = len.parse().map_err(|_| EnvelopeError::BadHeader)?;
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EnvelopeError::BadHeader);
    }
    let body = &bytes[newline + 1..];
    let found = body.len() as u64;
    if found < expected {
        return Err(EnvelopeError::Truncated { expected, found });
    }
    if found > expected {
        return Err(EnvelopeError::TrailingBytes {
            extra: found - expected,
        });
    }
    if hex(&Sha256::digest(body)) != digest {
        return Err(EnvelopeError::ChecksumMismatch);
    }
    Ok(body)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one place the file store hands bytes to the operating system, so a test can make a
/// write fail the way a full disk does. Production uses [`DirectWrites`].
pub trait WriteSeam: Send + Sync {
    /// Writes all of `bytes` into `file`, a fresh temp file that will replace `target`.
    fn write(&self, target: &Path, file: &mut File, bytes: &[u8]) -> io::Result<()>;

    /// Flushes `file` to stable storage.
    fn sync(&self, target: &Path, file: &File) -> io::Result<()> {
        let _ = target;
        file.sync_all()
    }
}

/// Plain `write_all` and `sync_all`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DirectWrites;

impl WriteSeam for DirectWrites {
    fn write(&self, _target: &Path, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
    }
}

/// Distinguishes temp files of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Marker inside temp file names; [`is_temp_name`] recognises it.
const TEMP_MARK: &str = ".tmp-";

/// Replaces `dir/name` with `bytes` so that a crash at any moment leaves either the old file or
/// the new one, never a mix. On error the temp file is removed and the old file is untouched.
pub fn write_atomic(seam: &dyn WriteSeam, dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let target = dir.join(name);
    let temp = dir.join(format!(
        ".{name}{TEMP_MARK}{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&temp)?;
    let written = (|| {
        // The umask may only clear bits, but say exactly what we mean.
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        seam.write(&target, &mut file, bytes)?;
        seam.sync(&target, &file)
    })();
    drop(file);
    if let Err(e) = written.and_then(|()| fs::rename(&temp, &target)) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Makes renames and removals in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether `name` is a temp file left by [`write_atomic`] (a crash between create and rename).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

/// Whether `name` is a temp file for the file called `target`.
pub fn is_temp_of(name: &str, target: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(target))
        .is_some_and(|rest| rest.starts_with(TEMP_MARK))
}

/// Removes temp files left in `dir` by writers that died; only call while holding the lock.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_str().is_some_and(is_temp_name) {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Keeps a copy of `path` as `path.corrupt-<time>` (a hard link, or a copy where links are not
/// supported) and leaves `path` itself in place. Returns the new name.
pub fn keep_aside(path: &Path, now: SystemTime) -> io::Result<PathBuf> {
    let base = format!(
        "{}.corrupt-{}",
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        utc::compact(now)
    );
    let dir = path.parent().unwrap_or(Path::new("."));
    for n in 1..1000u32 {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let aside = dir.join(name);
        if aside.exists() {
            continue;
        }
        match fs::hard_link(path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => {
                fs::copy(path, &aside)?;
                fs::set_permissions(&aside, fs::Permissions::from_mode(FILE_MODE))?;
            }
        }
        sync_dir(dir)?;
        return Ok(aside);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "too many corrupt copies already kept under this name",
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn sealed_body_opens_to_itself() {
        let sealed = seal(Kind::Credentials, b"{\"counter\":7}");
        assert_eq!(
            open(Kind::Credentials, &sealed),
            Ok(&b"{\"counter\":7}"[..])
        );
        let empty = seal(Kind::Status, b"");
        assert_eq!(open(Kind::Status, &empty), Ok(&b""[..]));
    }

    #[test]
    fn every_truncation_is_refused() {
        let sealed = seal(Kind::Credentials, b"some body bytes that matter");
        for cut in 0..sealed.len() {
            assert!(
                open(Kind::Credentials, &sealed[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let sealed = seal(Kind::Credentials, b"abc");
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.to_vec();
                bad[i] ^= 1 << bit;
                assert!(open(Kind::Credentials, &bad).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        let sealed = seal(Kind::Status, b"abc");
        assert!(matches!(
            open(Kind::Credentials, &sealed),
            Err(EnvelopeError::WrongKind { .. })
        ));
        let v2 = String::from_utf8_lossy(&sealed).replacen(" 1 ", " 2 ", 1);
        assert_eq!(
            open(Kind::Status, v2.as_bytes()),
            Err(EnvelopeError::UnknownVersion { found: 2 })
        );
        assert_eq!(
            open(Kind::Status, &sealed[..sealed.len() - 1]),
            Err(EnvelopeError::Truncated {
                expected: 3,
                found: 2
            })
        );
        assert_eq!(
            open(Kind::Status, b"{\"a\":1}"),
            Err(EnvelopeError::NotAStoreFile)
        );
        let mut swapped = sealed.to_vec();
        let last = swapped.len() - 1;
        swapped[last] = b'x';
        assert_eq!(
            open(Kind::Status, &swapped),
            Err(EnvelopeError::ChecksumMismatch)
        );
    }

    #[test]
    fn temp_names_are_recognised() {
        assert!(is_temp_name(".creds.wasp.tmp-12-0"));
        assert!(is_temp_of(".creds.wasp.tmp-12-0", "creds.wasp"));
        assert!(!is_temp_of(".status.wasp.tmp-12-0", "creds.wasp"));
        assert!(!is_temp_name("creds.wasp"));
    }

    #[test]
    fn failed_write_leaves_old_file_and_no_temp() {
        struct Fail;
        impl WriteSeam for Fail {
            fn write(&self, _: &Path, file: &mut File, bytes: &[u8]) -> io::Result<()> {
                file.write_all(&bytes[..bytes.len() / 2])?;
                Err(io::Error::from_raw_os_error(libc::ENOSPC))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        write_atomic(&DirectWrites, dir.path(), "f", b"old").unwrap();
        let err = write_atomic(&Fail, dir.path(), "f", b"new content").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
