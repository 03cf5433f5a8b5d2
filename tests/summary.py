#!/usr/bin/python3
"""summary.py BUILD_DIR JUNIT_XML: what a test run really ran, per CTest label.

A green run proves only what ran. This prints, per label, how many CTest
tests passed, failed and were skipped, and for the Python scripts how many
test methods ran and which skipped, and why (from the records test_main.py
writes to BUILD_DIR/test-results/). Exit status 0; it reports, it does not
judge (test_main.py fails a skip under CI=true).
"""
import collections
import glob
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET


def ctest_labels(build_dir):
    """ctest_labels maps each CTest test name to its labels."""
    out = subprocess.run(["ctest", "--show-only=json-v1"], cwd=build_dir, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    labels = {}
    for test in json.loads(out).get("tests", []):
        names = []
        for prop in test.get("properties", []):
            if prop.get("name") == "LABELS":
                names = prop.get("value") or []
        labels[test["name"]] = names or ["unlabelled"]
    return labels


def ctest_outcomes(junit):
    """ctest_outcomes maps each test in CTest's JUnit file to passed, failed
    or skipped."""
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        status = case.get("status")
        if case.find("failure") is not None or status == "fail":
            outcomes[case.get("name")] = "failed"
        elif status == "run" and case.find("skipped") is None:
            outcomes[case.get("name")] = "passed"
        else:
            outcomes[case.get("name")] = "skipped"
    return outcomes


def main():
    build_dir, junit = sys.argv[1], sys.argv[2]
    labels = ctest_labels(build_dir)
    counts = collections.defaultdict(collections.Counter)
    for name, outcome in ctest_outcomes(junit).items():
        for label in labels.get(name, ["unlabelled"]):
            counts[label][outcome] += 1
    methods = collections.defaultdict(collections.Counter)
    skips = []
    for path in sorted(glob.glob(os.path.join(build_dir, "test-results", "*.json"))):
        with open(path) as f:
            record = json.load(f)
        methods[record["label"]]["ran"] += record["ran"]
        methods[record["label"]]["skipped"] += len(record["skipped"])
        for s in record["skipped"]:
            skips.append("%s.%s: %s: %s" % (record["label"], record["name"], s["test"], s["reason"]))

    print("\nWhat ran in %s:" % build_dir)
    print("  %-12s %7s %7s %7s   %s" % ("label", "passed", "failed", "skipped", "Python test methods"))
    for label in sorted(counts):
        c = counts[label]
        detail = ""
        if label in methods:
            detail = "%d ran, %d skipped" % (methods[label]["ran"], methods[label]["skipped"])
        print("  %-12s %7d %7d %7d   %s" % (label, c["passed"], c["failed"], c["skipped"], detail))
    if skips:
        print("Skipped test methods:")
        for line in skips:
            print("  " + line)


if __name__ == "__main__":
    main()
