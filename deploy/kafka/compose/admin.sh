#!/usr/bin/env bash
# Runs a Kafka CLI tool (kafka-topics.sh, kafka-acls.sh, ...) as the super user mandaact-admin:
#   admin.sh kafka-topics.sh --bootstrap-server kafka:9092 --list
# The client config (SASL_PLAINTEXT, SCRAM-SHA-512) is written from MANDAACT_KAFKA_ADMIN_PASSWORD
# into a private temp file and passed with --command-config.
set -euo pipefail
tool=$1
shift
config=$(mktemp)
trap 'rm -f "$config"' EXIT
cat > "$config" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="mandaact-admin" password="${MANDAACT_KAFKA_ADMIN_PASSWORD:?}";
PROPERTIES
"${KAFKA_BIN:-/opt/kafka/bin}/$tool" "$@" --command-config "$config"
