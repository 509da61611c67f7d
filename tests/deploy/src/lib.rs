//! Offline checks of the deployment files: `knative/`, `kong/`,
//! `compose.yaml`, `vault/` and the Dockerfiles.
//!
//! The manifests are data, so they are checked the way a cluster would check
//! them, without a cluster: every YAML document against the upstream JSON
//! schema for its `apiVersion`/`kind` (the strict variants where
//! `../shared/schemas` has them, which refuse unknown fields as `kubectl
//! apply` does), and then against each other and the code (see the
//! `manifests` test). This library loads files and schemas; the tests say
//! what must hold.
//!
//! # Layout
//! - [`repo_root`], [`schemas_dir`]: where things are (`../shared/schemas`
//!   beside the repository, as in CI's fresh clone).
//! - [`load_documents`]: multi-document YAML, one [`Document`] per document.
//! - [`Schemas`]: every validator, built once; [`Schemas::validate`] picks
//!   one by `apiVersion`/`kind`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use jsonschema::{Registry, Resource, Validator};
use serde_json::Value;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// `../shared/schemas` relative to the repository root: the upstream schemas
/// are shared project data, not part of the repository.
pub fn schemas_dir() -> anyhow::Result<PathBuf> {
    let dir = repo_root().join("../shared/schemas");
    if !dir.is_dir() {
        bail!(
            "the schema folder {} is missing: the deployment manifests are validated \
             offline against the upstream schemas in `shared/schemas`, which must sit \
             beside the repository (`../shared/schemas` from its root, as in CI's fresh \
             clone with `shared/` next to it)",
            dir.display()
        );
    }
    Ok(dir)
}

/// One YAML document of a manifest file.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it came from, relative to the repository root.
    pub file: String,
    /// Its position in the file (0-based), for messages.
    pub index: usize,
    /// Its content.
    pub value: Value,
}

impl Document {
    /// `apiVersion`, or `""` when absent.
    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or_default()
    }

    /// `kind`, or `""` when absent.
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name`, or `""` when absent.
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {}", self.file, self.index + 1)?;
        if !self.kind().is_empty() {
            write!(f, ", {} {:?}", self.kind(), self.name())?;
        }
        f.write_str(")")
    }
}

/// Every YAML document of `path` (relative to the repository root); empty
/// documents (a trailing `---`) are skipped.
pub fn load_documents(path: &str) -> anyhow::Result<Vec<Document>> {
    let full = repo_root().join(path);
    let text = std::fs::read_to_string(&full)
        .with_context(|| format!("cannot read {}", full.display()))?;
    let values: Vec<Value> =
        serde_saphyr::from_multiple(&text).with_context(|| format!("{path} is not valid YAML"))?;
    Ok(values
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(index, value)| Document {
            file: path.to_owned(),
            index,
            value,
        })
        .collect())
}

/// The one document of a single-document file.
pub fn load_document(path: &str) -> anyhow::Result<Document> {
    let mut docs = load_documents(path)?;
    if docs.len() != 1 {
        bail!("{path} should hold one YAML document, not {}", docs.len());
    }
    Ok(docs.remove(0))
}

/// The YAML files of a folder (relative to the repository root), sorted.
pub fn yaml_files(folder: &str) -> anyhow::Result<Vec<String>> {
    let dir = repo_root().join(folder);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {folder}"))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            files.push(format!("{folder}/{name}"));
        }
    }
    files.sort();
    Ok(files)
}

/// The Kubernetes schemas (strict, standalone) by kind, for `apiVersion: v1`.
const KUBERNETES: &[(&str, &str)] = &[
    ("ConfigMap", "configmap-v1.json"),
    ("Secret", "secret-v1.json"),
    ("ServiceAccount", "serviceaccount-v1.json"),
    ("Service", "service-v1.json"),
];

/// The Knative schemas (strict variants) by `apiVersion` and `kind`.
const KNATIVE: &[(&str, &str, &str)] = &[
    (
        "serving.knative.dev/v1",
        "Service",
        "knative-serving-service.v1.strict.schema.json",
    ),
    (
        "sources.knative.dev/v1",
        "PingSource",
        "knative-eventing-pingsource.v1.strict.schema.json",
    ),
    (
        "sources.knative.dev/v1",
        "KafkaSource",
        "knative-kafka-source.v1.strict.schema.json",
    ),
    (
        "eventing.knative.dev/v1",
        "Broker",
        "knative-eventing-broker.v1.strict.schema.json",
    ),
    (
        "eventing.knative.dev/v1",
        "Trigger",
        "knative-eventing-trigger.v1.strict.schema.json",
    ),
];

/// Other CRDs by `apiVersion` and `kind`: (folder under `../shared/schemas`,
/// file).
const OTHER_CRDS: &[(&str, &str, &str, &str)] = &[(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    "prometheus",
    "servicemonitor.v1.strict.schema.json",
)];

/// A made-up base for Oathkeeper's relative `$id`s (`/.schema/…`): nothing
/// is fetched, it only makes them absolute so `$ref`s between them resolve
/// inside the registry.
const OATHKEEPER_BASE: &str = "https://oathkeeper.invalid";

/// Every validator the manifests need, built once from `../shared/schemas`.
#[derive(Debug)]
pub struct Schemas {
    by_kind: BTreeMap<(String, String), (String, Validator)>,
    kong: Validator,
    compose: Validator,
    oathkeeper_rules: Validator,
    oathkeeper_config: Validator,
    oathkeeper_handlers: BTreeMap<String, Validator>,
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read schema {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn build(schema: &Value, what: &str) -> anyhow::Result<Validator> {
    jsonschema::options()
        .build(schema)
        .map_err(|e| anyhow::anyhow!("schema {what} does not compile: {e}"))
}

/// Every error `validator` finds in `value`, as `at <path>: <message>`.
pub fn errors(validator: &Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("at {:?}: {e}", e.instance_path().as_str()))
        .collect()
}

impl Schemas {
    /// Loads and compiles every schema the deployment files use.
    pub fn load() -> anyhow::Result<Self> {
        let dir = schemas_dir()?;
        let mut by_kind = BTreeMap::new();
        for (kind, file) in KUBERNETES {
            let path = dir.join("kubernetes/v1.30.10-standalone-strict").join(file);
            let validator = build(&read_json(&path)?, file)?;
            by_kind.insert(
                ("v1".to_owned(), (*kind).to_owned()),
                ((*file).to_owned(), validator),
            );
        }
        for (api_version, kind, file) in KNATIVE {
            let validator = build(&read_json(&dir.join("knative").join(file))?, file)?;
            by_kind.insert(
                ((*api_version).to_owned(), (*kind).to_owned()),
                ((*file).to_owned(), validator),
            );
        }
        for (api_version, kind, folder, file) in OTHER_CRDS {
            let validator = build(&read_json(&dir.join(folder).join(file))?, file)?;
            by_kind.insert(
                ((*api_version).to_owned(), (*kind).to_owned()),
                ((*file).to_owned(), validator),
            );
        }
        let kong = build(
            &read_json(&dir.join("kong/kong_json_schema.json"))?,
            "kong_json_schema.json",
        )?;
        let compose = build(
            &read_json(&dir.join("compose/compose-spec.json"))?,
            "compose-spec.json",
        )?;
        let oathkeeper_rules = build(
            &read_json(&dir.join("oathkeeper/access-rules.derived.schema.json"))?,
            "access-rules.derived.schema.json",
        )?;
        let (oathkeeper_config, oathkeeper_handlers) = Self::oathkeeper(&dir.join("oathkeeper"))?;
        Ok(Self {
            by_kind,
            kong,
            compose,
            oathkeeper_rules,
            oathkeeper_config,
            oathkeeper_handlers,
        })
    }

    /// Oathkeeper's config schema and the per-handler schemas, which `$ref`
    /// into it; all registered by `$id`, nothing fetched.
    fn oathkeeper(dir: &Path) -> anyhow::Result<(Validator, BTreeMap<String, Validator>)> {
        let config = read_json(&dir.join("config.schema.json"))?;
        let config_id = format!("{OATHKEEPER_BASE}/.schema/config.schema.json");
        let registry = Registry::new()
            .add(&config_id, Resource::from_contents(config.clone()))?
            .add(
                "ory://logging-config",
                Resource::from_contents(read_json(&dir.join("oryx-logrusx.config.schema.json"))?),
            )?
            .add(
                "ory://tracing-config",
                Resource::from_contents(read_json(&dir.join("oryx-otelx.config.schema.json"))?),
            )?
            .prepare()
            .map_err(|e| anyhow::anyhow!("cannot register Oathkeeper's schemas: {e}"))?;
        let with_registry = |schema: &Value, what: &str| {
            jsonschema::options()
                .with_base_uri(OATHKEEPER_BASE)
                .with_registry(&registry)
                .build(schema)
                .map_err(|e| anyhow::anyhow!("schema {what} does not compile: {e}"))
        };
        let config_validator = with_registry(&config, "oathkeeper/config.schema.json")?;
        let mut handlers = BTreeMap::new();
        for entry in std::fs::read_dir(dir.join("pipeline"))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            // errors.*: the upstream files all declare mutators.cookie's $id
            // (see shared/schemas/README.md); our rule sets no error config.
            let Some(handler) = name.strip_suffix(".schema.json") else {
                continue;
            };
            if handler.starts_with("errors.") {
                continue;
            }
            let mut schema = read_json(&dir.join("pipeline").join(&name))?;
            // Compile each by its content, not its `$id`, so ids cannot clash.
            if let Some(object) = schema.as_object_mut() {
                object.remove("$id");
            }
            handlers.insert(handler.to_owned(), with_registry(&schema, &name)?);
        }
        Ok((config_validator, handlers))
    }

    /// Validates a Kubernetes/Knative document against the schema for its
    /// `apiVersion` and `kind`; the error lists every problem found.
    pub fn validate(&self, doc: &Document) -> anyhow::Result<()> {
        let key = (doc.api_version().to_owned(), doc.kind().to_owned());
        let Some((file, validator)) = self.by_kind.get(&key) else {
            bail!(
                "{doc}: no schema for apiVersion {:?} kind {:?} (known: {:?})",
                key.0,
                key.1,
                self.by_kind.keys().collect::<Vec<_>>()
            );
        };
        let problems = errors(validator, &doc.value);
        if !problems.is_empty() {
            bail!("{doc} does not match {file}:\n  {}", problems.join("\n  "));
        }
        Ok(())
    }

    /// The decK (Kong declarative config) validator.
    pub fn kong(&self) -> &Validator {
        &self.kong
    }

    /// The Compose specification validator (`compose.yaml`).
    pub fn compose(&self) -> &Validator {
        &self.compose
    }

    /// The Oathkeeper access-rules validator (a file is an array of rules).
    pub fn oathkeeper_rules(&self) -> &Validator {
        &self.oathkeeper_rules
    }

    /// The Oathkeeper configuration (`oathkeeper.yml`) validator.
    pub fn oathkeeper_config(&self) -> &Validator {
        &self.oathkeeper_config
    }

    /// The validator for one handler's `config`, e.g. `authenticators.jwt`.
    pub fn oathkeeper_handler(&self, kind_and_handler: &str) -> Option<&Validator> {
        self.oathkeeper_handlers.get(kind_and_handler)
    }
}
