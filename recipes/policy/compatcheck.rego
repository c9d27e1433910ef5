# conftest policy over `compatcheck diff --format json` (schema compatcheck.report/v1):
#   compatcheck diff OLD NEW --format json --output report.json
#   conftest test --policy recipes/policy report.json
package main

import rego.v1

report_schema := "compatcheck.report/v1"

deny contains msg if {
	input.schema != report_schema
	msg := sprintf("not a compatcheck report (schema %v, expected %v)", [input.schema, report_schema])
}

# Every finding that makes the verdict no-go, named the way the report names it.
deny contains msg if {
	input.schema == report_schema
	some f in input.findings
	blocking(f)
	msg := sprintf("%v %v: %v", [f.kind, f.subject, f.message])
}

# A no-go must never pass, even if no finding above explains it.
deny contains msg if {
	input.schema == report_schema
	input.go == false
	count([f | some f in input.findings; blocking(f)]) == 0
	msg := sprintf("verdict %v", [input.verdict])
}

warn contains msg if {
	input.schema == report_schema
	some f in input.findings
	f.severity == "warning"
	not f.waived
	msg := sprintf("%v %v: %v", [f.kind, f.subject, f.message])
}

rank := {"info": 1, "warning": 2, "error": 3}

# What the engine counts against the verdict: not waived, not relaxed by a safe rollback plan,
# and at least as severe as the report's --fail-on.
blocking(f) if {
	not f.waived
	f.blocking
	rank[f.severity] >= rank[input.fail_on]
}
