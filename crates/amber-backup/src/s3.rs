//! S3-compatible buckets as a backup remote (`backup-remote s3://bucket/prefix`), through
//! object_store's S3 client (request signing, retries, multipart uploads with a SHA-256 per
//! part). Credentials come from the usual `AWS_*` environment variables, or from the shared
//! credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`, profile
//! `AWS_PROFILE` or `default`); they are never part of the server's configuration, so
//! `CONFIG GET` and the log cannot show them.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use crate::bucket::Bucket;
use crate::catalog::BackupError;

/// Where the bucket is and how to address it (`backup-s3-endpoint`, `backup-s3-region`,
/// `backup-s3-path-style`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// `http(s)://host:port` of an S3-compatible server; AWS when empty.
    pub endpoint: String,
    /// The region; `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`, when empty.
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`), as MinIO and most local servers need.
    pub path_style: bool,
}

/// `s3://bucket/prefix` split into bucket and prefix; `None` for other remotes.
pub fn parse_url(url: &str) -> Result<Option<(String, String)>, BackupError> {
    let Some(rest) = url.strip_prefix("s3://") else {
        return Ok(None);
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(BackupError::Refused(format!(
            "{url}: expected s3://bucket[/prefix]"
        )));
    }
    Ok(Some((
        bucket.to_string(),
        prefix.trim_matches('/').to_string(),
    )))
}

/// Opens the bucket of `s3://bucket/prefix`.
pub fn open(url: &str, settings: &S3Settings) -> Result<Bucket, BackupError> {
    let Some((bucket, prefix)) = parse_url(url)? else {
        return Err(BackupError::Refused(format!("{url} is not an s3:// URL")));
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&bucket)
        .with_checksum_algorithm(Checksum::SHA256)
        .with_virtual_hosted_style_request(!settings.path_style)
        // Fail within seconds when the endpoint is unreachable, not after minutes of retries.
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        })
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(300)),
        );
    if !settings.endpoint.is_empty() {
        builder = builder
            .with_endpoint(&settings.endpoint)
            .with_allow_http(settings.endpoint.starts_with("http://"));
    }
    let region = if settings.region.is_empty() {
        std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".into())
    } else {
        settings.region.clone()
    };
    builder = builder.with_region(region);
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
        && let Some(credentials) = credentials_from_file()?
    {
        builder = builder
            .with_access_key_id(credentials.key_id)
            .with_secret_access_key(credentials.secret);
        if let Some(token) = credentials.token {
            builder = builder.with_token(token);
        }
    }
    let store = builder.build().map_err(|source| BackupError::Remote {
        what: format!("configuring {url}"),
        cause: Box::new(source),
    })?;
    Bucket::new(Arc::new(store), &prefix, url.trim_end_matches('/'))
}

/// A key pair from the shared credentials file.
struct FileCredentials {
    key_id: String,
    secret: String,
    token: Option<String>,
}

/// The profile's keys from the shared credentials file, if the file exists.
fn credentials_from_file() -> Result<Option<FileCredentials>, BackupError> {
    let path = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
        Some(path) => std::path::PathBuf::from(path),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::Path::new(&home).join(".aws/credentials"),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(crate::catalog::io(format!("reading {}", path.display()))(
                error,
            ));
        }
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let section = ini_section(&text, &profile);
    let value = |name: &str| {
        section
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match (value("aws_access_key_id"), value("aws_secret_access_key")) {
        (Some(key_id), Some(secret)) => Ok(Some(FileCredentials {
            key_id,
            secret,
            token: value("aws_session_token"),
        })),
        _ => Err(BackupError::Refused(format!(
            "{} has no aws_access_key_id and aws_secret_access_key for profile {profile}",
            path.display()
        ))),
    }
}

/// The `key = value` pairs of `[section]` in an INI text.
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut pairs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside && let Some((key, value)) = line.split_once('=') {
            pairs.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_url("s3://backups/amber/prod/").expect("valid"),
            Some(("backups".into(), "amber/prod".into()))
        );
        assert_eq!(
            parse_url("s3://backups").expect("valid"),
            Some(("backups".into(), String::new()))
        );
        assert_eq!(parse_url("/mnt/nas").expect("not s3"), None);
        assert!(parse_url("s3:///x").is_err());
    }

    #[test]
    fn the_profile_section_of_a_credentials_file_is_read() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key=B\n\n[other]\naws_access_key_id = C\n";
        assert_eq!(
            ini_section(text, "default"),
            vec![
                ("aws_access_key_id".to_string(), "A".to_string()),
                ("aws_secret_access_key".to_string(), "B".to_string())
            ]
        );
        assert_eq!(ini_section(text, "other").len(), 1);
        assert!(ini_section(text, "missing").is_empty());
    }
}
