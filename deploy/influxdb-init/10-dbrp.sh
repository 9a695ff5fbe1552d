#!/bin/bash
# Runs once, after the influxdb image's first-time setup (DOCKER_INFLUXDB_INIT_MODE=setup), with
# the influx CLI already authenticated as the admin token. Maps the v1 database ecg (retention
# policy autogen) onto the bucket, so InfluxQL and the v1 /write?db=ecg endpoint the worker and
# Grafana use reach it.
set -euo pipefail
db="${ECGMON_INFLUX_DATABASE:-ecg}"
# The image exports the new bucket's id to init scripts; look it up if an older image does not.
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:-$(influx bucket list --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --name "${DOCKER_INFLUXDB_INIT_BUCKET}" --hide-headers | cut -f1)}"
influx v1 dbrp create --org "${DOCKER_INFLUXDB_INIT_ORG}" --bucket-id "${bucket_id}" --db "${db}" --rp autogen --default
influx v1 dbrp list --org "${DOCKER_INFLUXDB_INIT_ORG}"
