#!/usr/bin/env bash
# One-time Vault setup for CoffeeBuddy's functions (README, "Deployment",
# Vault). Run it with the Vault CLI as a Vault operator (VAULT_ADDR and a
# VAULT_TOKEN allowed to write policies and auth roles):
#
#   VAULT_ADDR=https://vault.example.internal vault/setup.sh
#
# It writes two things, both from files beside it:
#   1. the policy `coffeebuddy` (policy.hcl): read on exactly
#      secret/data/coffeebuddy, the KV v2 secret the functions read;
#   2. the Kubernetes-auth role `coffeebuddy` (role.json) on the auth mount
#      VAULT_AUTH_PATH (default `kubernetes`, the functions' default too):
#      only the ServiceAccount `coffeebuddy` in the namespace `coffeebuddy`
#      (knative/serviceaccount.yaml, knative/kustomization.yaml) may log in,
#      and its token carries that policy alone (no `default` policy), for 5
#      minutes: the functions read their secrets once at start and drop the
#      token (README, "Secrets from Vault").
#
# Not done here, because they are your cluster's and your secrets:
#   - enabling and configuring the Kubernetes auth method, once per cluster:
#       vault auth enable kubernetes
#       vault write auth/kubernetes/config kubernetes_host=https://<api-server>:443
#   - storing the secret, from a JSON file kept outside the repository (so
#     no value lands in the shell history), with the keys of README,
#     "Secrets from Vault" (slack_signing_secret, slack_bot_token, …):
#       vault kv put -mount=secret coffeebuddy @/secure/place/coffeebuddy.json
# Then set VAULT_ADDR and VAULT_ROLE=coffeebuddy in knative/configmap.yaml.
#
# Re-running it is safe: both writes replace what they wrote before.
set -euo pipefail
cd "$(dirname "$0")"

command -v vault >/dev/null || { echo "setup.sh: the vault CLI is not on PATH" >&2; exit 1; }
: "${VAULT_ADDR:?set VAULT_ADDR to the address of your Vault}"
auth_path="${VAULT_AUTH_PATH:-kubernetes}"

vault policy write coffeebuddy policy.hcl
vault write "auth/${auth_path}/role/coffeebuddy" @role.json
echo "setup.sh: policy coffeebuddy and role auth/${auth_path}/role/coffeebuddy written"
