"""Validates rendered Kubernetes manifests offline and hands them back as JSON.

Request on stdin (JSON): {"yaml": "<multi-document YAML>", "kubernetesVersions": ["1.27.0", ...]}
Reply on stdout (JSON):  {"documents": [...parsed documents...], "problems": ["...", ...]}

Every document is checked, strictly (an unknown field is an error), against the
Kubernetes JSON schemas shipped inside the kubernetes-validate package, so
nothing is downloaded. A kind with no shipped schema is a problem too: the
package's own CLI only warns about it, which would let a typo in `kind` pass.
"""
import json
import sys

import kubernetes_validate
import yaml


def name_of(document):
    metadata = document.get("metadata") or {}
    return "%s/%s" % (document.get("kind"), metadata.get("name"))


def problems_of(document, versions):
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
