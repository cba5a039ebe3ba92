/*
Copyright 2026 The aivm-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package chart

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aivm-dev/aivm-operator/internal/testenv"
)

// metricDef is a metric as the Go source defines it.
type metricDef struct {
	name, typ string
	labels    []string
	at        string
}

// constructors maps the client_golang constructors to the metric type they
// make; NewDesc (a collector's own series) is handled apart.
var constructors = map[string]string{
	"NewCounter": "counter", "NewCounterVec": "counter", "NewCounterFunc": "counter",
	"NewGauge": "gauge", "NewGaugeVec": "gauge", "NewGaugeFunc": "gauge",
	"NewHistogram": "histogram", "NewHistogramVec": "histogram",
	"NewSummary": "summary", "NewSummaryVec": "summary",
}

// sourceMetrics reads every aivm_* metric definition from the repository's
// non-test Go files: the Name of a prometheus.*Opts given to a constructor,
// its ConstLabels and its variable labels, or a prometheus.NewDesc.
func sourceMetrics(t *testing.T) map[string]metricDef {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	defs := map[string]metricDef{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "vendor", "node_modules", "bin":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "prometheus" {
				return true
			}
			def := metricDef{at: rel + ":" + strconv.Itoa(fset.Position(call.Pos()).Line)}
			switch {
			case sel.Sel.Name == "NewDesc" && len(call.Args) >= 3:
				def.name = stringLit(call.Args[0])
				def.labels = stringList(call.Args[2])
				// The collectors here report their own series as gauges
				// (MustNewConstMetric with GaugeValue); a counter among them
				// must be told apart before it is documented.
				def.typ = "gauge"
				if strings.Contains(fileText(t, path), "prometheus.CounterValue") {
					def.typ = "unknown (NewDesc in a file with CounterValue)"
				}
			case constructors[sel.Sel.Name] != "" && len(call.Args) >= 1:
				def.typ = constructors[sel.Sel.Name]
				opts := call.Args[0]
				if u, ok := opts.(*ast.UnaryExpr); ok {
					opts = u.X
				}
				lit, ok := opts.(*ast.CompositeLit)
				if !ok {
					return true
				}
				for _, e := range lit.Elts {
					kv, ok := e.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					switch key, _ := kv.Key.(*ast.Ident); {
					case key == nil:
					case key.Name == "Name":
						def.name = stringLit(kv.Value)
					case key.Name == "ConstLabels":
						if cl, ok := kv.Value.(*ast.CompositeLit); ok {
							for _, le := range cl.Elts {
								if lkv, ok := le.(*ast.KeyValueExpr); ok {
									def.labels = append(def.labels, stringLit(lkv.Key))
								}
							}
						}
					}
				}
				if strings.HasSuffix(sel.Sel.Name, "Vec") && len(call.Args) >= 2 {
					def.labels = append(def.labels, stringList(call.Args[1])...)
				}
			default:
				return true
			}
			if !strings.HasPrefix(def.name, "aivm_") {
				return true
			}
			slices.Sort(def.labels)
			if prev, ok := defs[def.name]; ok && (prev.typ != def.typ || !slices.Equal(prev.labels, def.labels)) {
				t.Errorf("%s is defined twice, differently: %s (%s %v) and %s (%s %v)", def.name, prev.at, prev.typ, prev.labels, def.at, def.typ, def.labels)
			}
			defs[def.name] = def
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk must see the metrics it is meant to; a broken walk would
	// otherwise pass every check below with nothing to compare.
	for _, known := range []string{"aivm_scheduler_queue_depth", "aivm_node_agent_gpus", "aivm_chain_outbox_results", "aivm_result_endpoint_requests_total"} {
		if _, ok := defs[known]; !ok {
			t.Fatalf("the source walk found no %s; found %d metrics", known, len(defs))
		}
	}
	return defs
}

func fileText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func stringLit(e ast.Expr) string {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return ""
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return ""
	}
	return s
}

func stringList(e ast.Expr) []string {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil
	}
	var out []string
	for _, el := range lit.Elts {
		out = append(out, stringLit(el))
	}
	return out
}

// docRow is a row of a metrics table in docs/metrics.md.
var docRow = regexp.MustCompile("^\\| `(aivm_[a-z0-9_]+)` \\| ([a-z]+) \\|([^|]*)\\| [^|]+\\|$")

// TestMetricsDocumented: docs/metrics.md lists exactly the metrics the code
// defines, each with its type and labels.
func TestMetricsDocumented(t *testing.T) {
	defs := sourceMetrics(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for i, line := range strings.Split(fileText(t, filepath.Join(root, "docs", "metrics.md")), "\n") {
		if !strings.HasPrefix(line, "| `aivm_") {
			continue
		}
		m := docRow.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("docs/metrics.md:%d: a metric row is not | `name` | type | labels | meaning |", i+1)
			continue
		}
		name, typ := m[1], m[2]
		var labels []string
		for _, l := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(m[3], -1) {
			labels = append(labels, l[1])
		}
		slices.Sort(labels)
		documented[name] = true
		def, ok := defs[name]
		switch {
		case !ok:
			t.Errorf("docs/metrics.md:%d documents %s, which no code defines", i+1, name)
		case def.typ != typ:
			t.Errorf("docs/metrics.md:%d: %s is a %s, the code (%s) makes a %s", i+1, name, typ, def.at, def.typ)
		case !slices.Equal(def.labels, labels):
			t.Errorf("docs/metrics.md:%d: %s has labels %v, the code (%s) gives it %v", i+1, name, labels, def.at, def.labels)
		}
	}
	for name, def := range defs {
		if !documented[name] {
			t.Errorf("%s (%s) is not in docs/metrics.md", name, def.at)
		}
	}
}

// TestDashboardQueriesExist: every aivm_* series the Grafana dashboard
// queries is a metric the code defines (a histogram's _bucket, _sum and
// _count included), and the dashboard shows what an operator of GPUs and
// chain reporting watches.
func TestDashboardQueriesExist(t *testing.T) {
	defs := sourceMetrics(t)
	var dash struct {
		Panels []dashPanel `json:"panels"`
	}
	if err := json.Unmarshal([]byte(fileText(t, filepath.Join(chartDir(t), "dashboards", "aivm-operator.json"))), &dash); err != nil {
		t.Fatalf("dashboards/aivm-operator.json: %v", err)
	}
	series := regexp.MustCompile(`\baivm_[a-z0-9_]+`)
	used := map[string]bool{}
	var walk func([]dashPanel)
	walk = func(panels []dashPanel) {
		for _, p := range panels {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				names := series.FindAllString(tg.Expr, -1)
				if len(names) == 0 {
					t.Errorf("panel %q queries no aivm_* metric: %s", p.Title, tg.Expr)
				}
				for _, n := range names {
					base, ok := metricOfSeries(defs, n)
					if !ok {
						t.Errorf("panel %q queries %s, which no code defines: %s", p.Title, n, tg.Expr)
						continue
					}
					used[base] = true
				}
			}
		}
	}
	walk(dash.Panels)
	for _, want := range []string{
		"aivm_node_agent_gpus", "aivm_scheduler_gpu_memory_reserved_bytes", "aivm_node_agent_gpu_memory_free_bytes",
		"aivm_scheduler_queue_depth", "aivm_scheduler_time_to_placement_seconds", "aivm_inferencejob_completion_seconds",
		"aivm_inferencejob_failures_total", "aivm_chain_commit_lag_blocks", "aivm_chain_outbox_results",
	} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}

type dashPanel struct {
	Type    string      `json:"type"`
	Title   string      `json:"title"`
	Panels  []dashPanel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// metricOfSeries returns the metric a series name belongs to.
func metricOfSeries(defs map[string]metricDef, series string) (string, bool) {
	if _, ok := defs[series]; ok {
		return series, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, found := strings.CutSuffix(series, suffix)
		if !found {
			continue
		}
		if d, ok := defs[base]; ok && (d.typ == "histogram" || (d.typ == "summary" && suffix != "_bucket")) {
			return base, true
		}
	}
	return "", false
}
