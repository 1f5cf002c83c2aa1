//! Where a model comes from: a local directory or file, or a Hugging Face
//! Hub repository fetched with hf-hub into the standard `HF_HOME` cache.
//! `HF_HUB_OFFLINE=1` (which hf-hub itself ignores) and cached files never
//! touch the network.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use super::ModelError;

/// The Hub repository of the published gluRPC weights.
pub const REFERENCE_REPO: &str = "Livia-Zaharia/gluformer_models";
/// The weights file gluRPC 0.6.3 loads from [`REFERENCE_REPO`].
pub const REFERENCE_FILE: &str =
    "gluformer_1samples_500epochs_10heads_32batch_geluactivation_livia_large_weights.pth";

/// The files of a resolved model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    /// The id as given.
    pub id: String,
    /// `model.safetensors` or a `.pth`.
    pub weights: PathBuf,
    /// `config.json`, when there is one.
    pub config: Option<PathBuf>,
}

/// A parsed Hub id: `owner/name[@revision][:file]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubId {
    /// `owner/name`.
    pub repo: String,
    /// Branch, tag or commit (default `main`).
    pub revision: String,
    /// Weights file name, when given.
    pub file: Option<String>,
}

impl HubId {
    /// Parses an id; `None` when it does not look like `owner/name`.
    pub fn parse(id: &str) -> Option<HubId> {
        let (rest, file) = match id.split_once(':') {
            Some((r, f)) if !f.is_empty() => (r, Some(f.to_string())),
            Some(_) => return None,
            None => (id, None),
        };
        let (repo, revision) = match rest.split_once('@') {
            Some((r, v)) if !v.is_empty() => (r, v.to_string()),
            Some(_) => return None,
            None => (rest, "main".to_string()),
        };
        let mut parts = repo.split('/');
        let ok_part = |p: Option<&str>| {
            p.is_some_and(|p| {
                !p.is_empty()
                    && !p.starts_with('.')
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            })
        };
        if !(ok_part(parts.next()) && ok_part(parts.next()) && parts.next().is_none()) {
            return None;
        }
        Some(HubId {
            repo: repo.to_string(),
            revision,
            file,
        })
    }

    /// The weights file to fetch: the given one, the reference file for the
    /// reference repository, otherwise `model.safetensors`.
    pub fn weights_file(&self) -> String {
        match &self.file {
            Some(f) => f.clone(),
            None if self.repo == REFERENCE_REPO => REFERENCE_FILE.to_string(),
            None => "model.safetensors".to_string(),
        }
    }

    fn repo(&self) -> Repo {
        Repo::with_revision(self.repo.clone(), RepoType::Model, self.revision.clone())
    }
}

/// True when `HF_HUB_OFFLINE` is set to 1/true/yes/on.
pub fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// Resolves a local directory (holding `model.safetensors`, or exactly one
/// `.pth`, and optionally `config.json`) or a weights file.
pub fn resolve_local(path: &Path) -> Result<ModelFiles, ModelError> {
    let id = path.display().to_string();
    if path.is_file() {
        let config = path.parent().map(|d| d.join("config.json"));
        return Ok(ModelFiles {
            id,
            weights: path.to_path_buf(),
            config: config.filter(|c| c.is_file()),
        });
    }
    let st = path.join("model.safetensors");
    let weights = if st.is_file() {
        st
    } else {
        let mut pths: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| ModelError::Io(format!("{id}: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pth"))
            .collect();
        pths.sort();
        match pths.len() {
            1 => pths.remove(0),
            0 => {
                return Err(ModelError::NotFound {
                    what: "model weights".into(),
                    looked: vec![st.display().to_string(), format!("{id}/*.pth")],
                });
            }
            _ => {
                return Err(ModelError::Config(format!(
                    "{id} holds several .pth files; name one: {}",
                    pths.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    };
    let config = path.join("config.json");
    Ok(ModelFiles {
        id,
        weights,
        config: config.is_file().then_some(config),
    })
}

/// Resolves a model id: an existing local path first, then a Hub repo id.
/// Offline (or when cached) the Hub lookup reads only the `HF_HOME` cache.
pub async fn resolve(id: &str) -> Result<ModelFiles, ModelError> {
    let path = Path::new(id);
    if path.exists() {
        return resolve_local(path);
    }
    let Some(hub) = HubId::parse(id) else {
        return Err(ModelError::NotFound {
            what: "model".into(),
            looked: vec![format!(
                "{id} (no such file or directory, and not a Hub id)"
            )],
        });
    };
    let file = hub.weights_file();
    let cache = Cache::from_env();
    let cached = cache.repo(hub.repo());
    let offline = hub_offline();
    let weights = match cached.get(&file) {
        Some(p) => p,
        None if offline => {
            return Err(ModelError::NotFound {
                what: format!("{file} of {} (HF_HUB_OFFLINE is set)", hub.repo),
                looked: vec![
                    cache
                        .path()
                        .join(hub.repo().folder_name())
                        .display()
                        .to_string(),
                ],
            });
        }
        None => {
            let api = hf_hub::api::tokio::ApiBuilder::from_env()
                .with_progress(false)
                .build()
                .map_err(|e| ModelError::Hub(e.to_string()))?;
            api.repo(hub.repo())
                .get(&file)
                .await
                .map_err(|e| ModelError::Hub(format!("{}: {file}: {e}", hub.repo)))?
        }
    };
    let config = match cached.get("config.json") {
        Some(p) => Some(p),
        None if offline => None,
        None => {
            let api = hf_hub::api::tokio::ApiBuilder::from_env()
                .with_progress(false)
                .build()
                .map_err(|e| ModelError::Hub(e.to_string()))?;
            match api.repo(hub.repo()).get("config.json").await {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::info!(repo = %hub.repo, error = %e, "no config.json on the Hub; the reference default config applies");
                    None
                }
            }
        }
    };
    Ok(ModelFiles {
        id: id.to_string(),
        weights,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_parse() {
        let h = HubId::parse("Livia-Zaharia/gluformer_models").unwrap();
        assert_eq!(h.revision, "main");
        assert_eq!(h.weights_file(), REFERENCE_FILE);
        let h = HubId::parse("org/m@v2:w.pth").unwrap();
        assert_eq!((h.repo.as_str(), h.revision.as_str()), ("org/m", "v2"));
        assert_eq!(h.weights_file(), "w.pth");
        assert_eq!(
            HubId::parse("org/m").unwrap().weights_file(),
            "model.safetensors"
        );
        for bad in ["", "a", "a/b/c", "./x", "a/", "/a", "a/b:", "a/b@", "a b/c"] {
            assert!(HubId::parse(bad).is_none(), "{bad}");
        }
    }
}
