// Command promql-check parses PromQL expressions with Prometheus' own parser
// (github.com/prometheus/prometheus/promql/parser) and reports, for each, the
// parse error or the metric names it selects.
//
// Input (stdin): a JSON array of {"source": "...", "expr": "..."}.
// Output (stdout): a JSON array of {"source", "expr", "error", "selectors"} in
// the same order; each selector names its metric and the labels it matches on. Exit status 0 when it could read and answer, whatever the
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

type selector struct {
	Metric string   `json:"metric"`
	Labels []string `json:"labels"`
}

type answer struct {
	Source    string     `json:"source"`
	Expr      string     `json:"expr"`
	Error     string     `json:"error,omitempty"`
	Selectors []selector `json:"selectors"`
}

func main() {
	var queries []query
	if err := json.NewDecoder(os.Stdin).Decode(&queries); err != nil {
		fmt.Fprintf(os.Stderr, "promql-check: reading the JSON array of {source, expr} on stdin: %v\n", err)
		os.Exit(2)
	}
	// The options a Prometheus server runs with by default: no experimental
	// functions or syntax.
	p := parser.NewParser(parser.Options{})
	answers := make([]answer, 0, len(queries))
	for _, q := range queries {
		answers = append(answers, check(p, q))
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(answers); err != nil {
		fmt.Fprintf(os.Stderr, "promql-check: %v\n", err)
		os.Exit(2)
	}
}

func check(p parser.Parser, q query) answer {
	a := answer{Source: q.Source, Expr: q.Expr, Selectors: []selector{}}
	expr, err := p.ParseExpr(q.Expr)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	for _, matchers := range parser.ExtractSelectors(expr) {
		sel := selector{Labels: []string{}}
		for _, m := range matchers {
			if m.Name != labels.MetricName {
				sel.Labels = append(sel.Labels, m.Name)
				continue
			}
			if m.Type != labels.MatchEqual {
				a.Error = fmt.Sprintf("metric name matcher %s is not an exact name: cannot check that the metric exists", m)
				return a
			}
			sel.Metric = m.Value
		}
		if sel.Metric == "" {
			a.Error = "a selector names no metric: cannot check that the metric exists"
			return a
		}
		sort.Strings(sel.Labels)
		a.Selectors = append(a.Selectors, sel)
	}
	return a
}
