//! Encryption at rest with the age format (X25519 recipients, ChaCha20-Poly1305 in 64 KiB
//! chunks), through the reviewed `age` crate. A key file holds one age identity
//! (`AGE-SECRET-KEY-1...`, as `age-keygen`, `rage-keygen` or `amber-backup keygen` write it);
//! backups are encrypted to its public key and decrypted with it.
//!
//! In an encrypted backup every data file is stored as `<name>.age` (the RDB, the AOF files
//! and their manifest); `meta` (time, key count, digest) stays in clear for the catalog. The
//! catalog's checksum covers the encrypted files, so checking it needs no key; a full
//! verification decrypts into a scratch directory and parses.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;

use crate::catalog::{BackupError, io};
use crate::verify::files_under;

/// The suffix of encrypted files.
pub const SUFFIX: &str = ".age";

/// An age identity: encrypts to its public key, decrypts with itself.
#[derive(Clone)]
pub struct BackupKey {
    identity: age::x25519::Identity,
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "BackupKey({})", self.identity.to_public())
    }
}

impl BackupKey {
    /// Reads the first `AGE-SECRET-KEY-1...` line of a key file (comments are skipped).
    pub fn load(path: &Path) -> Result<BackupKey, BackupError> {
        let text = std::fs::read_to_string(path)
            .map_err(io(format!("reading the key file {}", path.display())))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .ok_or_else(|| {
                BackupError::Refused(format!(
                    "{} holds no age identity (a line AGE-SECRET-KEY-1...)",
                    path.display()
                ))
            })?;
        let identity = age::x25519::Identity::from_str(line).map_err(|_| {
            BackupError::Refused(format!("{}: the age identity is malformed", path.display()))
        })?;
        Ok(BackupKey { identity })
    }

    /// A new random key.
    pub fn generate() -> BackupKey {
        BackupKey {
            identity: age::x25519::Identity::generate(),
        }
    }

    /// The key file's text: a comment with the public key, then the identity.
    pub fn file_text(&self) -> String {
        format!(
            "# public key: {}\n{}\n",
            self.identity.to_public(),
            self.identity.to_string().expose_secret()
        )
    }

    /// The public key (`age1...`).
    pub fn public(&self) -> String {
        self.identity.to_public().to_string()
    }

    /// Encrypts `plain` into a new age file at `to`, fsynced.
    pub fn encrypt_file(&self, plain: &Path, to: &Path) -> Result<(), BackupError> {
        let what = format!("encrypting {} into {}", plain.display(), to.display());
        let mut input = File::open(plain).map_err(io(what.clone()))?;
        let output = File::create(to).map_err(io(what.clone()))?;
        let mut writer = self
            .encryptor()?
            .wrap_output(BufWriter::with_capacity(1 << 20, output))
            .map_err(io(what.clone()))?;
        std::io::copy(&mut input, &mut writer).map_err(io(what.clone()))?;
        let buffered = writer.finish().map_err(io(what.clone()))?;
        let file = buffered
            .into_inner()
            .map_err(|e| io(what.clone())(e.into_error()))?;
        file.sync_all().map_err(io(what))
    }

    /// Encrypts bytes in memory (archive segments).
    pub fn encrypt_bytes(&self, plain: &[u8]) -> Result<Vec<u8>, BackupError> {
        let mut out = Vec::with_capacity(plain.len() + 256);
        let mut writer = self
            .encryptor()?
            .wrap_output(&mut out)
            .map_err(io("encrypting"))?;
        writer.write_all(plain).map_err(io("encrypting"))?;
        writer.finish().map_err(io("encrypting"))?;
        Ok(out)
    }

    fn encryptor(&self) -> Result<age::Encryptor, BackupError> {
        let recipient = self.identity.to_public();
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(|e| BackupError::Refused(format!("age: {e}")))
    }

    fn reader<R: Read>(&self, input: R, name: &str) -> Result<impl Read, BackupError> {
        let decryptor = age::Decryptor::new(input).map_err(|e| decrypt_error(name, e))?;
        decryptor
            .decrypt(std::iter::once(&self.identity as &dyn age::Identity))
            .map_err(|e| decrypt_error(name, e))
    }

    /// Decrypts the age file `from` into `to`.
    pub fn decrypt_file(&self, from: &Path, to: &Path) -> Result<(), BackupError> {
        let name = from.display().to_string();
        let input = File::open(from).map_err(io(format!("reading {name}")))?;
        let mut reader = self.reader(BufReader::with_capacity(1 << 20, input), &name)?;
        let mut output = File::create(to).map_err(io(format!("creating {}", to.display())))?;
        std::io::copy(&mut reader, &mut output).map_err(|e| damaged(&name, &e))?;
        output
            .sync_all()
            .map_err(io(format!("writing {}", to.display())))
    }

    /// Decrypts bytes in memory (archive segments).
    pub fn decrypt_bytes(&self, encrypted: &[u8], name: &str) -> Result<Vec<u8>, BackupError> {
        let mut reader = self.reader(encrypted, name)?;
        let mut plain = Vec::with_capacity(encrypted.len());
        reader
            .read_to_end(&mut plain)
            .map_err(|e| damaged(name, &e))?;
        Ok(plain)
    }

    /// Encrypts every file of `plain_dir` into `encrypted_dir` (as `<name>.age`; `meta`
    /// copied as is), keeping the tree's shape.
    pub fn encrypt_tree(&self, plain_dir: &Path, encrypted_dir: &Path) -> Result<(), BackupError> {
        for path in files_under(plain_dir)? {
            let relative = path.strip_prefix(plain_dir).unwrap_or(&path);
            let target = encrypted_dir.join(relative);
            make_parent(&target)?;
            if relative == Path::new("meta") {
                std::fs::copy(&path, &target).map_err(io(format!("copying {}", path.display())))?;
                continue;
            }
            self.encrypt_file(&path, &with_suffix(&target))?;
        }
        sync_dirs(encrypted_dir)
    }

    /// Decrypts every `.age` file of `encrypted_dir` into `plain_dir` (others are copied).
    pub fn decrypt_tree(&self, encrypted_dir: &Path, plain_dir: &Path) -> Result<(), BackupError> {
        for path in files_under(encrypted_dir)? {
            let relative = path.strip_prefix(encrypted_dir).unwrap_or(&path);
            let target = plain_dir.join(relative);
            make_parent(&target)?;
            match target.to_str().and_then(|t| t.strip_suffix(SUFFIX)) {
                Some(plain) => self.decrypt_file(&path, Path::new(plain))?,
                None => {
                    std::fs::copy(&path, &target)
                        .map_err(io(format!("copying {}", path.display())))?;
                }
            }
        }
        Ok(())
    }
}

/// A writer that encrypts to a key as it goes (a backup's writer seals its files directly);
/// [`SealedWriter::finish`] writes the last chunk and hands back the inner writer.
pub struct SealedWriter<W: Write> {
    inner: age::stream::StreamWriter<W>,
}

impl<W: Write> Write for SealedWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> SealedWriter<W> {
    /// Ends the age stream; returns the inner writer (flush and fsync it).
    pub fn finish(self) -> std::io::Result<W> {
        self.inner.finish()
    }
}

impl BackupKey {
    /// Encrypts what is written to the returned writer into `out`.
    pub fn seal<W: Write>(&self, out: W) -> std::io::Result<SealedWriter<W>> {
        let encryptor = self
            .encryptor()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(SealedWriter {
            inner: encryptor.wrap_output(out)?,
        })
    }

    /// A reader of the plain bytes of the age stream `input` (`name` for messages).
    pub fn open<R: Read>(&self, input: R, name: &str) -> Result<impl Read, BackupError> {
        self.reader(input, name)
    }
}

fn decrypt_error(name: &str, error: age::DecryptError) -> BackupError {
    match error {
        age::DecryptError::NoMatchingKeys => BackupError::WrongKey(name.to_string()),
        age::DecryptError::Io(error) => damaged(name, &error),
        other => BackupError::Verification {
            id: name.to_string(),
            what: format!("not a readable age file: {other}"),
        },
    }
}

fn damaged(name: &str, error: &std::io::Error) -> BackupError {
    BackupError::Verification {
        id: name.to_string(),
        what: format!("decryption failed, the file is damaged: {error}"),
    }
}

fn with_suffix(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(SUFFIX);
    PathBuf::from(name)
}

fn make_parent(path: &Path) -> Result<(), BackupError> {
    match path.parent() {
        Some(parent) => {
            std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))
        }
        None => Ok(()),
    }
}

fn sync_dirs(dir: &Path) -> Result<(), BackupError> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        File::open(&current)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", current.display())))?;
        let entries =
            std::fs::read_dir(&current).map_err(io(format!("listing {}", current.display())))?;
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(())
}

/// Whether the backup in `dir` is encrypted (its data files end in `.age`).
pub fn is_encrypted(dir: &Path) -> bool {
    files_under(dir).is_ok_and(|files| files.iter().any(|f| f.to_string_lossy().ends_with(SUFFIX)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bytes_round_trip_and_another_key_is_a_clear_error() {
        let key = BackupKey::generate();
        let sealed = key.encrypt_bytes(b"SET secret value").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            key.decrypt_bytes(&sealed, "x").unwrap(),
            b"SET secret value"
        );
        let other = BackupKey::generate();
        assert!(matches!(
            other.decrypt_bytes(&sealed, "x"),
            Err(BackupError::WrongKey(_))
        ));
        let mut damaged = sealed.clone();
        let last = damaged.len() - 3;
        damaged[last] ^= 1;
        assert!(matches!(
            key.decrypt_bytes(&damaged, "x"),
            Err(BackupError::Verification { .. })
        ));
    }

    #[test]
    fn key_files_round_trip() {
        let key = BackupKey::generate();
        let path = std::env::temp_dir().join(format!("amber-key-{}", std::process::id()));
        std::fs::write(&path, key.file_text()).unwrap();
        let loaded = BackupKey::load(&path).unwrap();
        assert_eq!(loaded.public(), key.public());
        std::fs::write(&path, "# nothing here\n").unwrap();
        assert!(BackupKey::load(&path).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
