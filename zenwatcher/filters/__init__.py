"""Filters: the filter.json rules and their verdict on a finding (`rules`), the configuration in
force (`state`), and its hot reload from the ConfigMap on every pod (`reload`)."""
