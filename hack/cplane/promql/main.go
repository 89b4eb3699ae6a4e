// Command promql-check parses PromQL expressions with Prometheus' own parser
// (github.com/prometheus/prometheus/promql/parser) and reports, for each, the
// parse error or the metric names it selects.
//
// Input (stdin): a JSON array of {"source": "...", "expr": "..."}.
// Output (stdout): a JSON array of {"source", "expr", "error", "metrics"} in
// the same order. Exit status 0 when it could read and answer, whatever the
// expressions; callers decide what a parse error means.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type query struct {
	Source string `json:"source"`
	Expr   string `json:"expr"`
}

type answer struct {
	Source  string   `json:"source"`
	Expr    string   `json:"expr"`
	Error   string   `json:"error,omitempty"`
	Metrics []string `json:"metrics"`
}

func main() {
	var queries []query
	if err := json.NewDecoder(os.Stdin).Decode(&queries); err != nil {
		fmt.Fprintf(os.Stderr, "promql-check: reading the JSON array of {source, expr} on stdin: %v\n", err)
		os.Exit(2)
	}
	answers := make([]answer, 0, len(queries))
	for _, q := range queries {
		answers = append(answers, check(q))
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(answers); err != nil {
		fmt.Fprintf(os.Stderr, "promql-check: %v\n", err)
		os.Exit(2)
	}
}

func check(q query) answer {
	a := answer{Source: q.Source, Expr: q.Expr, Metrics: []string{}}
	expr, err := parser.ParseExpr(q.Expr)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	seen := map[string]bool{}
	for _, sel := range parser.ExtractSelectors(expr) {
		for _, m := range sel {
			if m.Name != labels.MetricName {
				continue
			}
			if m.Type != labels.MatchEqual {
				a.Error = fmt.Sprintf("metric name matcher %s is not an exact name: cannot check that the metric exists", m)
				return a
			}
			seen[m.Value] = true
		}
	}
	for name := range seen {
		a.Metrics = append(a.Metrics, name)
	}
	sort.Strings(a.Metrics)
	return a
}
