"""Validates rendered Kubernetes manifests offline and hands them back as JSON.

Request on stdin (JSON): {"yaml": "<multi-document YAML>", "kubernetesVersions": ["1.27.0", ...]}
Reply on stdout (JSON):  {"documents": [...parsed documents...], "problems": ["...", ...]}

Every document is checked, strictly (an unknown field is an error), against the
Kubernetes JSON schemas shipped inside the kubernetes-validate package, so
nothing is downloaded. A kind with no shipped schema is a problem too: the
package's own CLI only warns about it, which would let a typo in `kind` pass.
The Prometheus Operator's kinds (monitoring.coreos.com/v1) ship no schema
there: they are checked, as strictly, against OPERATOR_SCHEMAS below, which
cover the fields this chart writes (written from the operator's API reference).
"""
import json
import sys

import jsonschema
import kubernetes_validate
import yaml

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": _STRING_MAP, "annotations": _STRING_MAP},
    "additionalProperties": False,
}
_SELECTOR = {
    "type": "object",
    "required": ["matchLabels"],
    "properties": {"matchLabels": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}}},
    "additionalProperties": False,
}
_ENDPOINT = {
    "type": "object",
    "required": ["port"],
    "properties": {"port": {"type": "string"}, "path": {"type": "string"}, "interval": _DURATION, "scrapeTimeout": _DURATION},
    "additionalProperties": False,
}


def _kind(spec_properties, required):
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"type": "string"},
            "metadata": _METADATA,
            "spec": {"type": "object", "required": required, "properties": spec_properties, "additionalProperties": False},
        },
        "additionalProperties": False,
    }


OPERATOR_SCHEMAS = {
    "ServiceMonitor": _kind({"selector": _SELECTOR, "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT}}, ["selector", "endpoints"]),
    "PodMonitor": _kind({"selector": _SELECTOR, "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT}}, ["selector", "podMetricsEndpoints"]),
    "PrometheusRule": _kind(
        {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "rules"],
                    "properties": {
                        "name": {"type": "string"},
                        "rules": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["alert", "expr"],
                                "properties": {
                                    "alert": {"type": "string"},
                                    "expr": {"type": "string"},
                                    "for": _DURATION,
                                    "labels": _STRING_MAP,
                                    "annotations": _STRING_MAP,
                                },
                                "additionalProperties": False,
                            },
                        },
                    },
                    "additionalProperties": False,
                },
            }
        },
        ["groups"],
    ),
}


def name_of(document):
    metadata = document.get("metadata") or {}
    return "%s/%s" % (document.get("kind"), metadata.get("name"))


def problems_of(document, versions):
    if document.get("apiVersion") == "monitoring.coreos.com/v1" and document.get("kind") in OPERATOR_SCHEMAS:
        validator = jsonschema.Draft7Validator(OPERATOR_SCHEMAS[document["kind"]])
        return ["%s: %s: %s" % (name_of(document), ".".join(str(s) for s in err.path), err.message) for err in validator.iter_errors(document)]
    problems = []
    for version in versions:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(step) for step in err.path)
            problems.append("%s against %s: %s: %s" % (name_of(document), version, path, err.message))
        except kubernetes_validate.SchemaNotFoundError as err:
            problems.append("%s: %s" % (name_of(document), err.message))
    return problems


def main():
    request = json.load(sys.stdin)
    versions = request["kubernetesVersions"]
    documents = [doc for doc in yaml.safe_load_all(request["yaml"]) if doc]
    problems = []
    for document in documents:
        problems.extend(problems_of(document, versions))
    json.dump({"documents": documents, "problems": problems}, sys.stdout, default=str)


if __name__ == "__main__":
    main()
