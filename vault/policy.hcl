# Vault policy for the CoffeeBuddy functions: read, and nothing else, on
# exactly the one KV v2 secret they read at start (README, "Secrets from
# Vault"). KV v2 serves a secret's current version at <mount>/data/<path>;
# with the functions' defaults VAULT_KV_MOUNT=secret and
# VAULT_SECRET_PATH=coffeebuddy that is secret/data/coffeebuddy. If you
# change either variable, change this path to match (tests/deploy checks it
# against the defaults).
#
# No list, no metadata, no other versions, no write: a stolen pod token can
# read the current secret and nothing more. Written by vault/setup.sh as the
# policy `coffeebuddy`.
path "secret/data/coffeebuddy" {
  capabilities = ["read"]
}
