#!/usr/bin/env python3
"""expand.py CASES OUT - turns tests/prometheus/alerts.cases.yml into a file
for `promtool test rules`: rule_files become absolute, and every expected
alert gets its rule's runbook annotation (fixed text) added to the summary and
description the case states. Refuses (exit 1, saying why) when an alert rule
lacks a severity, a summary, a description or a runbook, or when an alert has
no case where it fires or none where it stays quiet."""
import os
import sys

import yaml


def main(cases_path, out_path):
    base = os.path.dirname(os.path.abspath(cases_path))
    with open(cases_path) as f:
        cases = yaml.safe_load(f)
    rule_files = [os.path.normpath(os.path.join(base, p)) for p in cases["rule_files"]]
    cases["rule_files"] = rule_files
    alerts = {}
    problems = []
    for path in rule_files:
        with open(path) as f:
            doc = yaml.safe_load(f)
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                if "alert" not in rule:
                    continue
                name = rule["alert"]
                ann = rule.get("annotations", {})
                for key in ("summary", "description", "runbook"):
                    if not str(ann.get(key, "")).strip():
                        problems.append(f"{name}: no {key} annotation")
                if "{{" in str(ann.get("runbook", "")):
                    problems.append(f"{name}: the runbook must be fixed text (no template)")
                if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
                    problems.append(f"{name}: severity must be warning or critical")
                alerts[name] = ann.get("runbook", "")
    fires, quiet = set(), set()
    for test in cases["tests"]:
        for t in test.get("alert_rule_test", []):
            name = t["alertname"]
            if name not in alerts:
                problems.append(f"a case tests {name}, which no rule file defines")
                continue
            if t.get("exp_alerts"):
                fires.add(name)
                for a in t["exp_alerts"]:
                    a.setdefault("exp_annotations", {})["runbook"] = alerts[name]
            else:
                quiet.add(name)
    for name in sorted(alerts):
        if name not in fires:
            problems.append(f"{name}: no case where it fires")
        if name not in quiet:
            problems.append(f"{name}: no case where it stays quiet")
    if problems:
        print("\n".join(problems))
        return 1
    with open(out_path, "w") as f:
        yaml.safe_dump(cases, f, sort_keys=False, width=1000)
    print(f"{len(alerts)} alerts, each with a firing and a quiet case")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
