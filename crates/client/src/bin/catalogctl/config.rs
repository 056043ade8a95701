//! Where catalogctl finds the server and the token: flags, then the environment (`CATALOGD_URL`,
//! `CATALOGD_TOKEN`; clap reads both into the same option), then a JSON config file, then the
//! default URL.
//!
//! The file is JSON because the crate already reads JSON and a TOML parser would be a dependency
//! for two strings: `{"url": "https://catalog.example.com", "token": "ck_..."}`. It is
//! `--config PATH` (or `CATALOGCTL_CONFIG`), else `$XDG_CONFIG_HOME/catalogctl/config.json`,
//! else `$HOME/.config/catalogctl/config.json`. A file named explicitly must exist; the default
//! one may be absent.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// catalogd's default listen address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The config file's contents.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The server's base URL.
    pub url: Option<String>,
    /// The API token.
    pub token: Option<String>,
}

/// The settings in force.
#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    /// The server's base URL.
    pub url: String,
    /// The API token, if any was given anywhere.
    pub token: Option<String>,
}

/// The default config file path, from the environment.
fn default_path(xdg_config_home: Option<String>, home: Option<String>) -> Option<PathBuf> {
    match xdg_config_home.filter(|dir| !dir.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir).join("catalogctl").join("config.json")),
        None => {
            home.filter(|dir| !dir.is_empty()).map(|home| PathBuf::from(home).join(".config/catalogctl/config.json"))
        }
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))
}

/// Merges flags/env over the config file over the defaults.
pub fn resolve(url: Option<String>, token: Option<String>, config: Option<&Path>) -> Result<Settings, String> {
    let file = match config {
        Some(path) => read_file(path)?,
        None => match default_path(std::env::var("XDG_CONFIG_HOME").ok(), std::env::var("HOME").ok()) {
            Some(path) if path.exists() => read_file(&path)?,
            _ => FileConfig::default(),
        },
    };
    Ok(merge(url, token, file))
}

fn merge(url: Option<String>, token: Option<String>, file: FileConfig) -> Settings {
    let non_empty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    Settings {
        url: non_empty(url).or(non_empty(file.url)).unwrap_or_else(|| DEFAULT_URL.to_owned()),
        token: non_empty(token).or(non_empty(file.token)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_env_beat_the_file_which_beats_the_default() {
        let file = || FileConfig { url: Some("http://file".into()), token: Some("file-token".into()) };
        assert_eq!(
            merge(Some("http://flag".into()), Some("flag-token".into()), file()),
            Settings { url: "http://flag".into(), token: Some("flag-token".into()) }
        );
        assert_eq!(merge(None, None, file()), Settings { url: "http://file".into(), token: Some("file-token".into()) });
        assert_eq!(merge(None, None, FileConfig::default()), Settings { url: DEFAULT_URL.into(), token: None });
        // An empty variable (`CATALOGD_URL=`) does not hide the file.
        assert_eq!(merge(Some(String::new()), None, file()).url, "http://file");
    }

    #[test]
    fn default_path_prefers_xdg() {
        assert_eq!(
            default_path(Some("/x".into()), Some("/home/u".into())),
            Some(PathBuf::from("/x/catalogctl/config.json"))
        );
        assert_eq!(
            default_path(None, Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.config/catalogctl/config.json"))
        );
        assert_eq!(default_path(Some(String::new()), None), None);
    }

    #[test]
    fn file_is_json_with_known_keys_only() {
        let dir = std::env::temp_dir().join(format!("catalogctl-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good.json");
        std::fs::write(&good, r#"{"url":"http://h:1","token":"t"}"#).expect("write");
        let settings = resolve(None, None, Some(&good)).expect("reads");
        assert_eq!(settings, Settings { url: "http://h:1".into(), token: Some("t".into()) });
        let typo = dir.join("typo.json");
        std::fs::write(&typo, r#"{"urll":"http://h:1"}"#).expect("write");
        assert!(resolve(None, None, Some(&typo)).is_err());
        assert!(resolve(None, None, Some(&dir.join("missing.json"))).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
