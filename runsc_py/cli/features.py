"""Print the features document (runtime-spec features.md) as JSON."""

OPTIONS = ()
ARGS = ()


def run(g):
    import json
    import sys
    from specs.features import features
    sys.stdout.write(json.dumps(features(), indent=2) + "\n")
