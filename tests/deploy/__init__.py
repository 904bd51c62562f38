"""Tests of the deployment artefacts: Helm chart, compose file, alerts and dashboards."""
