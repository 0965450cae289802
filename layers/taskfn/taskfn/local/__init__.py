"""The local stack: the whole platform on one machine, driven from template.yaml."""
