//! The Dockerfiles, statically (no Docker engine here): what they build,
//! as whom, on which port, from which bases.

use std::collections::BTreeSet;

use crate::code;
use crate::helpers::{
    COMPOSE, DOCKERFILE, DOCKERFILE_TANSU, Manifests, dockerfile, document, items, str_at,
};

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
            assert!(
                default.starts_with("docker.io/library/") && !default.ends_with(":latest"),
                "{path}: ARG {name} default {default} should be a fully qualified, tagged image"
            );
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
    let copied: BTreeSet<String> = runs
        .split_once("for f in ")
        .and_then(|(_, rest)| rest.split_once(';'))
        .map(|(list, _)| list.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_else(|| panic!("{DOCKERFILE}: no `for f in …;` copy loop"));
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
