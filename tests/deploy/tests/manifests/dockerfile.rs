//! The Dockerfiles, statically (no Docker engine here): what they build,
//! as whom, on which port, from which bases.

use std::collections::BTreeSet;

use crate::code;
use crate::helpers::{
    COMPOSE, DOCKERFILE, DOCKERFILE_TANSU, Manifests, dockerfile, document, items, read_text,
    str_at,
};

/// Where the build context's exclusions are.
const DOCKERIGNORE: &str = ".dockerignore";

/// The arguments of every instruction called `name`.
fn all(instructions: &[(String, String)], name: &str) -> Vec<String> {
    instructions
        .iter()
        .filter(|(i, _)| i == name)
        .map(|(_, args)| args.clone())
        .collect()
}

/// The one instruction called `name`.
fn one(path: &str, instructions: &[(String, String)], name: &str) -> String {
    let found = all(instructions, name);
    assert_eq!(found.len(), 1, "{path}: one {name}, found {found:?}");
    found[0].clone()
}

/// `uid:gid` of a numeric USER.
fn user(path: &str, instructions: &[(String, String)]) -> (u64, u64) {
    let user = one(path, instructions, "USER");
    let (uid, gid) = user
        .split_once(':')
        .unwrap_or_else(|| panic!("{path}: USER {user} should be numeric uid:gid"));
    let parse = |n: &str| -> u64 {
        n.parse().unwrap_or_else(|_| {
            panic!("{path}: USER {user} is not numeric (runAsNonRoot needs a number)")
        })
    };
    let (uid, gid) = (parse(uid), parse(gid));
    assert!(uid != 0 && gid != 0, "{path}: USER {user} is root");
    (uid, gid)
}

/// Whether `reference` is a base image we accept as a default: fully
/// qualified (`docker.io/library/…`), tagged (never `latest`), and, when
/// pinned, by a well-formed digest (`name:tag@sha256:<64 lowercase hex>`).
fn pinnable_reference(reference: &str) -> Result<(), String> {
    let (named, digest) = match reference.split_once('@') {
        Some((named, digest)) => (named, Some(digest)),
        None => (reference, None),
    };
    if !named.starts_with("docker.io/library/") {
        return Err(format!("{reference}: not fully qualified"));
    }
    let tag = named
        .rsplit('/')
        .next()
        .and_then(|last| last.split_once(':'))
        .map(|(_, tag)| tag);
    match tag {
        None | Some("") => return Err(format!("{reference}: no tag")),
        Some("latest") => return Err(format!("{reference}: `latest` moves")),
        Some(_) => {}
    }
    if let Some(digest) = digest {
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("{reference}: a digest is sha256:<hex>"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("{reference}: a sha256 digest is 64 lowercase hex"));
        }
    }
    Ok(())
}

/// The build arguments declared before the first FROM, with their defaults.
fn global_args(instructions: &[(String, String)]) -> Vec<(String, String)> {
    instructions
        .iter()
        .take_while(|(instruction, _)| instruction != "FROM")
        .filter(|(instruction, _)| instruction == "ARG")
        .map(|(_, args)| match args.split_once('=') {
            Some((name, default)) => (name.to_owned(), default.to_owned()),
            None => (args.clone(), String::new()),
        })
        .collect()
}

/// Every FROM names a base through a build argument declared (with a
/// default) before the first FROM, or a stage of the same file.
fn bases_are_pinnable_arguments(path: &str, instructions: &[(String, String)]) {
    let mut global_args = BTreeSet::new();
    for (instruction, args) in instructions {
        if instruction == "FROM" {
            break;
        }
        if instruction == "ARG" {
            let (name, default) = args
                .split_once('=')
                .unwrap_or_else(|| panic!("{path}: ARG {args} before FROM needs a default"));
            if let Err(why) = pinnable_reference(default) {
                panic!("{path}: ARG {name}: {why}");
            }
            global_args.insert(format!("${{{name}}}"));
        }
    }
    let froms = all(instructions, "FROM");
    assert!(!froms.is_empty(), "{path}: no FROM");
    for from in froms {
        let image = from.split_whitespace().next().unwrap_or_default();
        assert!(
            global_args.contains(image),
            "{path}: FROM {image} is not one of the digest-pinnable arguments {global_args:?}"
        );
    }
}

/// The FUNCTIONs the Dockerfile's build stage copies out (`for f in …;`).
fn copied_binaries(instructions: &[(String, String)]) -> BTreeSet<String> {
    all(instructions, "RUN")
        .join("\n")
        .split_once("for f in ")
        .and_then(|(_, rest)| rest.split_once(';'))
        .map(|(list, _)| list.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_else(|| panic!("{DOCKERFILE}: no `for f in …;` copy loop"))
}

#[test]
fn base_image_defaults_are_tags_and_a_pinned_digest_must_be_well_formed() {
    for ok in [
        "docker.io/library/debian:bookworm-slim",
        "docker.io/library/rust:1.95-bookworm",
        &format!(
            "docker.io/library/debian:bookworm-slim@sha256:{}",
            "0a".repeat(32)
        ),
    ] {
        assert_eq!(pinnable_reference(ok), Ok(()), "{ok}");
    }
    for bad in [
        "debian:bookworm-slim",
        "docker.io/library/debian",
        "docker.io/library/debian:latest",
        "docker.io/library/debian:bookworm-slim@sha256:abc",
        &format!(
            "docker.io/library/debian:bookworm-slim@md5:{}",
            "0a".repeat(32)
        ),
        &format!(
            "docker.io/library/debian:bookworm-slim@sha256:{}",
            "0A".repeat(32)
        ),
    ] {
        assert!(pinnable_reference(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn the_readme_pins_every_base_argument_of_both_dockerfiles_by_digest() {
    // How to pin is documented once, in the README's release build: it
    // must pass each base argument the Dockerfiles declare, with a digest,
    // and no argument they do not declare.
    let readme = read_text("README.md");
    let pinned: BTreeSet<String> = readme
        .split("--build-arg ")
        .skip(1)
        .filter_map(|rest| rest.split_once('='))
        .filter(|(_, value)| {
            value
                .split_whitespace()
                .next()
                .is_some_and(|v| v.contains("@$") || v.contains("@sha256:"))
        })
        .map(|(name, _)| name.to_owned())
        .collect();
    for path in [DOCKERFILE, DOCKERFILE_TANSU] {
        let instructions = dockerfile(path);
        let bases: BTreeSet<String> = global_args(&instructions)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert!(!bases.is_empty(), "{path}: no base arguments");
        assert_eq!(
            pinned, bases,
            "README pins these arguments by digest; {path} declares those"
        );
        for base in &bases {
            assert!(
                read_text(path).contains(&format!("FROM ${{{base}}}")),
                "{path}: ARG {base} is never used in a FROM"
            );
        }
    }
    assert!(
        readme.contains("< 40 MB compressed"),
        "README states the image size target"
    );
}

#[test]
fn every_knative_service_runs_the_image_of_a_function_the_dockerfile_builds() {
    let copied = copied_binaries(&dockerfile(DOCKERFILE));
    let manifests = Manifests::load();
    let ksvcs = manifests.ksvcs();
    assert!(!ksvcs.is_empty());
    for (name, ksvc) in ksvcs {
        let containers = items(&ksvc.value["spec"]["template"]["spec"]["containers"]);
        let image = str_at(&containers[0]["image"]).unwrap_or_default();
        let function = image
            .rsplit('/')
            .next()
            .and_then(|last| last.split_once(':'))
            .map(|(repository, _)| repository.to_owned())
            .unwrap_or_default();
        assert!(
            copied.contains(&function),
            "{name}: image {image} is not one of the Dockerfile's FUNCTIONs {copied:?}"
        );
        assert_eq!(
            name,
            format!("coffeebuddy-{function}"),
            "{name} runs {image}: the service and its image name one function"
        );
    }
}

#[test]
fn the_build_context_leaves_out_build_output_local_state_and_secrets() {
    // `COPY . .` sends the whole context: without these exclusions an image
    // would carry a developer's `.env` secrets and gigabytes of `target/`,
    // and its build would depend on what happened to be on the disk.
    let ignored: BTreeSet<String> = read_text(DOCKERIGNORE)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    for needed in ["target", ".git", ".env", ".dev"] {
        assert!(
            ignored.contains(needed),
            "{DOCKERIGNORE}: {needed} is not excluded ({ignored:?})"
        );
    }
    assert!(
        all(&dockerfile(DOCKERFILE), "COPY")
            .iter()
            .any(|c| c == ". ."),
        "{DOCKERFILE}: the build stage copies the (filtered) context"
    );
}

#[test]
fn the_dockerfile_builds_exactly_the_functions_of_the_workspace_as_the_manifests_run_them() {
    let instructions = dockerfile(DOCKERFILE);
    bases_are_pinnable_arguments(DOCKERFILE, &instructions);

    // Reproducible: the lock file as is, in release mode.
    let runs = all(&instructions, "RUN").join("\n");
    assert!(
        runs.contains("cargo build --release --locked"),
        "{DOCKERFILE}: cargo build --release --locked"
    );

    // The binaries it copies: every buildable crate, each a workspace member.
    let copied = copied_binaries(&instructions);
    let buildable = code::buildable();
    let expected: BTreeSet<String> = buildable.keys().cloned().collect();
    assert_eq!(
        copied, expected,
        "{DOCKERFILE}: binaries vs functions/, local and tools/"
    );
    let members = code::workspace_members();
    for folder in buildable.values() {
        assert!(members.contains(folder), "{folder} is no workspace member");
    }
    assert!(
        runs.contains(r#"cp "target/release/coffeebuddy-$f""#),
        "{DOCKERFILE}: binaries are coffeebuddy-<FUNCTION>"
    );

    // As the manifests run it: port, non-root user, entrypoint.
    let manifests = Manifests::load();
    let expose = one(DOCKERFILE, &instructions, "EXPOSE");
    let (uid, gid) = user(DOCKERFILE, &instructions);
    for ksvc in manifests.ksvcs().values() {
        let containers = items(&ksvc.value["spec"]["template"]["spec"]["containers"]);
        let c = &containers[0];
        assert_eq!(
            c["ports"][0]["containerPort"].to_string(),
            expose,
            "{ksvc}: containerPort vs EXPOSE"
        );
        let security = &c["securityContext"];
        assert_eq!(security["runAsNonRoot"], true, "{ksvc}");
        assert_eq!(
            security["runAsUser"].as_u64(),
            Some(uid),
            "{ksvc}: runAsUser vs USER"
        );
        assert_eq!(
            security["runAsGroup"].as_u64(),
            Some(gid),
            "{ksvc}: runAsGroup vs USER"
        );
    }
    let entrypoint = one(DOCKERFILE, &instructions, "ENTRYPOINT");
    assert!(
        all(&instructions, "COPY")
            .iter()
            .any(|c| c.ends_with("/out/coffeebuddy-${FUNCTION} /usr/local/bin/function")),
        "{DOCKERFILE}: the FUNCTION's binary is the entrypoint"
    );
    assert_eq!(entrypoint, r#"["/usr/local/bin/function"]"#);

    // compose runs the images as the same user.
    let compose = document(COMPOSE);
    for (name, service) in compose.value["services"].as_object().expect("services") {
        if service["build"]["dockerfile"] == DOCKERFILE {
            assert_eq!(
                str_at(&service["user"]),
                Some(format!("{uid}:{gid}")),
                "{COMPOSE}: {name} runs as the image's USER"
            );
        }
    }
}

#[test]
fn the_tansu_image_is_the_brokers_crate_built_locked_with_storage_and_run_as_non_root() {
    let instructions = dockerfile(DOCKERFILE_TANSU);
    bases_are_pinnable_arguments(DOCKERFILE_TANSU, &instructions);
    let runs = all(&instructions, "RUN").join("\n");
    for needed in ["cargo install tansu", "--locked", "--features dynostore"] {
        assert!(runs.contains(needed), "{DOCKERFILE_TANSU}: {needed}");
    }
    let version = all(&instructions, "ARG")
        .into_iter()
        .find_map(|a| a.strip_prefix("TANSU_VERSION=").map(str::to_owned))
        .unwrap_or_else(|| panic!("{DOCKERFILE_TANSU}: ARG TANSU_VERSION=…"));
    assert!(runs.contains(r#"--version "${TANSU_VERSION}""#));
    let (uid, gid) = user(DOCKERFILE_TANSU, &instructions);
    assert_eq!(
        (uid, gid),
        user(DOCKERFILE, &dockerfile(DOCKERFILE)),
        "one non-root user everywhere"
    );
    // compose tags the image with the version it builds.
    let compose = document(COMPOSE);
    let tansu = &compose.value["services"]["tansu"];
    assert_eq!(tansu["build"]["dockerfile"], DOCKERFILE_TANSU);
    assert_eq!(
        str_at(&tansu["image"]),
        Some(format!("coffeebuddy/tansu:{version}")),
        "{COMPOSE}: tansu's tag vs TANSU_VERSION"
    );
}

/// Where the shipped binaries' build is defined, for the Dockerfile and the
/// bench alike.
const RELEASE_ENV: &str = "scripts/lib/release.env";

/// The packages a `-p a -p b` list of `release.env` names, without the
/// `coffeebuddy-` prefix.
fn release_packages(settings: &[(String, String)], name: &str) -> BTreeSet<String> {
    let (_, value) = settings
        .iter()
        .find(|(key, _)| key == name)
        .unwrap_or_else(|| panic!("{RELEASE_ENV}: no {name}"));
    let words: Vec<&str> = value.trim_matches('"').split_whitespace().collect();
    assert!(
        words.len().is_multiple_of(2) && words.iter().step_by(2).all(|w| *w == "-p"),
        "{RELEASE_ENV}: {name} is `-p <package>` pairs, not {value}"
    );
    words
        .iter()
        .skip(1)
        .step_by(2)
        .map(|package| {
            package
                .strip_prefix("coffeebuddy-")
                .unwrap_or_else(|| panic!("{RELEASE_ENV}: {package} is not ours"))
                .to_owned()
        })
        .collect()
}

#[test]
fn the_image_and_the_bench_build_each_function_as_its_own_package_with_the_same_flags() {
    // The bench's figures are only the images' figures if both build the
    // same way, from one definition.
    let settings = crate::helpers::env_file(RELEASE_ENV);
    let functions = release_packages(&settings, "RELEASE_FUNCTIONS");
    let tools = release_packages(&settings, "RELEASE_TOOLS");
    let expected: BTreeSet<String> = code::functions().into_iter().collect();
    assert_eq!(
        functions, expected,
        "{RELEASE_ENV}: RELEASE_FUNCTIONS vs functions/"
    );
    let copied = copied_binaries(&dockerfile(DOCKERFILE));
    let built: BTreeSet<String> = functions.union(&tools).cloned().collect();
    assert_eq!(
        built, copied,
        "{RELEASE_ENV}: what is built vs what {DOCKERFILE} copies out"
    );
    assert!(
        settings.iter().any(
            |(key, value)| key == "RELEASE_RUSTFLAGS" && value.contains("pack-relative-relocs")
        ),
        "{RELEASE_ENV}: RELEASE_RUSTFLAGS"
    );

    let runs = all(&dockerfile(DOCKERFILE), "RUN").join("\n");
    let bench = read_text("scripts/bench");
    for (user, text) in [
        (DOCKERFILE, runs.as_str()),
        ("scripts/bench", bench.as_str()),
    ] {
        for needed in [
            RELEASE_ENV,
            r#"RUSTFLAGS="$RELEASE_RUSTFLAGS""#,
            "cargo build --release --locked $RELEASE_FUNCTIONS",
        ] {
            assert!(text.contains(needed), "{user}: no `{needed}`");
        }
        assert!(
            !text.contains("--workspace"),
            "{user}: a whole-workspace build ships other features"
        );
    }
    assert!(
        runs.contains("cargo build --release --locked $RELEASE_TOOLS"),
        "{DOCKERFILE}: builds the laptop stack's binaries too"
    );
}
