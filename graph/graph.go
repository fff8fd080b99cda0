package graph

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/omniflow-go/omniflow/profiler"
)

// Graph is a pipeline under construction: operators added as named nodes,
// their ports connected. Build checks it and returns a Plan. A Graph is not
// safe for concurrent use.
type Graph struct {
	name    string
	nodes   []*Node
	byName  map[string]*Node
	edges   []*edge
	inputs  []*Node // graph inputs (pseudo nodes fed by Submit)
	outputs []*edge // edges to graph outputs (to == nil)
	errs    []error
}

// New returns an empty graph.
func New(name string) *Graph {
	return &Graph{name: name, byName: map[string]*Node{}}
}

// Name returns the graph's name.
func (g *Graph) Name() string { return g.name }

// Node is an operator placed in a graph.
type Node struct {
	g         *Graph
	name      string
	op        Operator
	contract  Contract
	index     int
	stage     int
	stageName string
	lane      int
	hasStage  bool
	isInput   bool
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Stage returns the node's stage id and name.
func (n *Node) Stage() (int, string) { return n.stage, n.stageName }

// NodeOption configures a node.
type NodeOption func(*Node)

// Stage places the node on a pipeline stage (a process track in the trace,
// the unit of profiler stage selection). Nodes without a Stage are on stage
// 0, named after the graph.
func Stage(id int, name string) NodeOption {
	return func(n *Node) { n.stage, n.stageName, n.hasStage = id, name, true }
}

// PortRef names a port of a node, for Connect and Output.
type PortRef struct {
	node *Node
	port string
	out  bool
}

func (r PortRef) String() string {
	if r.node == nil {
		return "<nil>." + r.port
	}
	if r.node.isInput {
		return "input " + strconv.Quote(r.node.name)
	}
	return r.node.name + "." + r.port
}

// In refers to an input port of n.
func (n *Node) In(port string) PortRef { return PortRef{node: n, port: port} }

// Out refers to an output port of n.
func (n *Node) Out(port string) PortRef { return PortRef{node: n, port: port, out: true} }

// edge connects an output port to an input port (or to a graph output).
type edge struct {
	index    int
	from     *Node
	fromPort Port
	to       *Node // nil for a graph output
	toPort   Port
	output   string // graph output name when to == nil
}

func (e *edge) String() string {
	to := "output " + strconv.Quote(e.output)
	if e.to != nil {
		to = e.to.name + "." + e.toPort.Name
	}
	from := e.from.name + "." + e.fromPort.Name
	if e.from.isInput {
		from = "input " + strconv.Quote(e.from.name)
	}
	return from + " -> " + to
}

func (g *Graph) errf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	g.errs = append(g.errs, err)
	return err
}

func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, "\x00\n")
}

// Add places op in the graph under name. Mistakes (a duplicate or empty
// name, a nil operator) are reported by Build, so calls can be chained.
func (g *Graph) Add(name string, op Operator, opts ...NodeOption) *Node {
	n := &Node{g: g, name: name, op: op, index: len(g.nodes), stageName: g.name}
	for _, o := range opts {
		if o != nil {
			o(n)
		}
	}
	switch {
	case !validName(name):
		g.errf("node %q: invalid name", name)
	case g.byName[name] != nil:
		g.errf("node %q: duplicate name", name)
	default:
		g.byName[name] = n
	}
	if op == nil {
		g.errf("node %q: nil operator", name)
	} else {
		n.contract = op.Contract()
		checkContract(g, n)
	}
	if n.stage < 0 || n.stage >= 256 {
		g.errf("node %q: stage id %d out of range [0, 256)", name, n.stage)
	}
	g.nodes = append(g.nodes, n)
	return n
}

func checkContract(g *Graph, n *Node) {
	seen := map[string]bool{}
	for _, p := range n.contract.Inputs {
		if !validName(p.Name) || seen[p.Name] {
			g.errf("node %q (%s): input %q: invalid or duplicate port name", n.name, n.contract.Name, p.Name)
		}
		seen[p.Name] = true
	}
	seen = map[string]bool{}
	for _, p := range n.contract.Outputs {
		if !validName(p.Name) || seen[p.Name] {
			g.errf("node %q (%s): output %q: invalid or duplicate port name", n.name, n.contract.Name, p.Name)
		}
		seen[p.Name] = true
		if p.Optional {
			g.errf("node %q (%s): output %q: outputs cannot be optional", n.name, n.contract.Name, p.Name)
		}
	}
}

// Input declares a graph input: a value supplied with each request (see
// Session.Submit) and delivered through the returned reference.
func (g *Graph) Input(name string, t Type) PortRef {
	n := &Node{g: g, name: name, isInput: true, index: -1,
		contract: Contract{Name: "input", Outputs: []Port{Out(name, t)}}}
	switch {
	case !validName(name):
		g.errf("input %q: invalid name", name)
	case g.byName[name] != nil:
		g.errf("input %q: name already used by a node or input", name)
	default:
		g.byName[name] = n
	}
	g.inputs = append(g.inputs, n)
	return PortRef{node: n, port: name, out: true}
}

func (g *Graph) resolve(r PortRef, wantOut bool) (Port, error) {
	if r.node == nil {
		return Port{}, fmt.Errorf("port %q: nil node", r.port)
	}
	if r.node.g != g {
		return Port{}, fmt.Errorf("%s: node belongs to another graph", r)
	}
	if r.out != wantOut {
		dir := "an input"
		if r.out {
			dir = "an output"
		}
		return Port{}, fmt.Errorf("%s: is %s port here", r, dir)
	}
	ports := r.node.contract.Inputs
	dir := "input"
	if wantOut {
		ports = r.node.contract.Outputs
		dir = "output"
	}
	for _, p := range ports {
		if p.Name == r.port {
			return p, nil
		}
	}
	names := make([]string, len(ports))
	for i, p := range ports {
		names[i] = p.Name
	}
	return Port{}, fmt.Errorf("node %q (%s): no %s port %q (has %s)", r.node.name, r.node.contract.Name, dir, r.port, listOrNone(names))
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// Connect connects an output port to an input port. An output may feed many
// inputs; an input takes one edge. Errors are returned and also reported
// again by Build.
func (g *Graph) Connect(from, to PortRef) error {
	fp, err := g.resolve(from, true)
	if err != nil {
		return g.errf("connect %s -> %s: %w", from, to, err)
	}
	tp, err := g.resolve(to, false)
	if err != nil {
		return g.errf("connect %s -> %s: %w", from, to, err)
	}
	if to.node.isInput {
		return g.errf("connect %s -> %s: a graph input has no input ports", from, to)
	}
	e := &edge{index: len(g.edges), from: from.node, fromPort: fp, to: to.node, toPort: tp}
	g.edges = append(g.edges, e)
	return nil
}

// Output declares a graph output fed by from. Stream outputs deliver their
// chunks to the caller as they are produced.
func (g *Graph) Output(name string, from PortRef) error {
	fp, err := g.resolve(from, true)
	if err != nil {
		return g.errf("output %q: %w", name, err)
	}
	if !validName(name) {
		return g.errf("output %q: invalid name", name)
	}
	for _, o := range g.outputs {
		if o.output == name {
			return g.errf("output %q: duplicate name", name)
		}
	}
	e := &edge{index: len(g.edges), from: from.node, fromPort: fp, output: name}
	g.edges = append(g.edges, e)
	g.outputs = append(g.outputs, e)
	return nil
}

// BuildOption configures the Plan.
type BuildOption func(*planConfig)

type planConfig struct {
	prof   *profiler.Profiler
	hooks  []Hook
	buffer int
}

// WithProfiler sets the profiler whose sessions record this plan's
// operators (default: profiler.Default() when the plan starts serving).
func WithProfiler(p *profiler.Profiler) BuildOption { return func(c *planConfig) { c.prof = p } }

// WithHook adds an instrumentation hook; hooks run after the profiler's, in
// the order given.
func WithHook(h Hook) BuildOption { return func(c *planConfig) { c.hooks = append(c.hooks, h) } }

// WithBuffer sets the capacity of every channel between nodes (default 8).
func WithBuffer(n int) BuildOption { return func(c *planConfig) { c.buffer = n } }

// Build checks the graph and compiles it. Every problem is reported at once
// (errors.Join), each naming its nodes and ports: unknown ports, kind, dtype
// and rank mismatches, stream/value mismatches, dims that cannot unify,
// cycles, unconnected required inputs and doubly connected ones, duplicate
// names.
func (g *Graph) Build(opts ...BuildOption) (*Plan, error) {
	cfg := planConfig{buffer: 8}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	errs := slices.Clone(g.errs)
	if cfg.buffer < 1 {
		errs = append(errs, fmt.Errorf("buffer size must be >= 1, got %d", cfg.buffer))
	}
	if len(g.nodes) == 0 {
		errs = append(errs, errors.New("graph has no nodes"))
	}
	// Edge types.
	inEdge := map[*Node]map[string]*edge{}
	for _, e := range g.edges {
		if e.to == nil {
			continue
		}
		if m := typeMismatch(e.fromPort.Type, e.toPort.Type); m != "" {
			errs = append(errs, fmt.Errorf("edge %s: %s (%s vs %s)", e, m, e.fromPort.Type, e.toPort.Type))
		}
		if e.fromPort.Stream != e.toPort.Stream {
			kind := func(s bool) string {
				if s {
					return "a stream"
				}
				return "a value"
			}
			errs = append(errs, fmt.Errorf("edge %s: %s output feeds %s input", e, kind(e.fromPort.Stream), kind(e.toPort.Stream)))
		}
		m := inEdge[e.to]
		if m == nil {
			m = map[string]*edge{}
			inEdge[e.to] = m
		}
		if prev := m[e.toPort.Name]; prev != nil {
			errs = append(errs, fmt.Errorf("node %q: input %q connected twice (%s and %s)", e.to.name, e.toPort.Name, prev, e))
			continue
		}
		m[e.toPort.Name] = e
	}
	// Required inputs.
	for _, n := range g.nodes {
		for _, p := range n.contract.Inputs {
			if !p.Optional && inEdge[n][p.Name] == nil {
				errs = append(errs, fmt.Errorf("node %q (%s): required input %q is not connected", n.name, n.contract.Name, p.Name))
			}
		}
	}
	errs = append(errs, g.unifyDims()...)
	errs = append(errs, g.findCycles()...)
	// Stage names must agree per id.
	stageNames := map[int]string{}
	for _, n := range g.nodes {
		if prev, ok := stageNames[n.stage]; ok && prev != n.stageName {
			errs = append(errs, fmt.Errorf("node %q: stage %d is named %q here and %q elsewhere", n.name, n.stage, n.stageName, prev))
			continue
		}
		stageNames[n.stage] = n.stageName
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("graph %q: %w", g.name, errors.Join(errs...))
	}
	return newPlan(g, cfg, inEdge), nil
}

// findCycles reports every cycle found by a depth-first search, each as the
// list of nodes around it.
func (g *Graph) findCycles() []error {
	succ := map[*Node][]*Node{}
	for _, e := range g.edges {
		if e.to != nil && !e.from.isInput {
			succ[e.from] = append(succ[e.from], e.to)
		}
	}
	const (
		white = iota
		grey
		black
	)
	color := map[*Node]int{}
	var stack []*Node
	var errs []error
	seen := map[string]bool{}
	var visit func(n *Node)
	visit = func(n *Node) {
		color[n] = grey
		stack = append(stack, n)
		for _, m := range succ[n] {
			switch color[m] {
			case white:
				visit(m)
			case grey:
				i := slices.Index(stack, m)
				cyc := make([]string, 0, len(stack)-i+1)
				for _, c := range stack[i:] {
					cyc = append(cyc, c.name)
				}
				key := append([]string(nil), cyc...)
				sort.Strings(key)
				k := strings.Join(key, "\x00")
				if !seen[k] {
					seen[k] = true
					errs = append(errs, fmt.Errorf("cycle: %s -> %s", strings.Join(cyc, " -> "), m.name))
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	for _, n := range g.nodes {
		if color[n] == white {
			visit(n)
		}
	}
	return errs
}

// unifyDims unifies symbolic dims across edges with a union-find over
// (node, name) variables and numeric constants.
func (g *Graph) unifyDims() []error {
	type class struct {
		parent int
		value  int64 // -1: unbound
		origin string
	}
	var cls []class
	vars := map[string]int{}
	fresh := func(value int64, origin string) int {
		cls = append(cls, class{parent: len(cls), value: value, origin: origin})
		return len(cls) - 1
	}
	var find func(i int) int
	find = func(i int) int {
		for cls[i].parent != i {
			cls[i].parent = cls[cls[i].parent].parent
			i = cls[i].parent
		}
		return i
	}
	term := func(n *Node, port string, i int, d string) int {
		origin := fmt.Sprintf("%s.%s[%d]", n.name, port, i)
		if d == "_" || d == "?" || d == "*" || d == "" {
			return fresh(-1, origin)
		}
		if v, err := strconv.ParseInt(d, 10, 64); err == nil {
			return fresh(v, origin)
		}
		k := n.name + "\x00" + d
		if id, ok := vars[k]; ok {
			return id
		}
		id := fresh(-1, origin)
		vars[k] = id
		return id
	}
	var errs []error
	for _, e := range g.edges {
		if e.to == nil {
			continue
		}
		od, id := e.fromPort.Type.Dims, e.toPort.Type.Dims
		if od == nil || id == nil || len(od) != len(id) {
			continue // rank mismatches are reported with the edge types
		}
		for i := range od {
			a := find(term(e.from, e.fromPort.Name, i, od[i]))
			b := find(term(e.to, e.toPort.Name, i, id[i]))
			if a == b {
				continue
			}
			va, vb := cls[a].value, cls[b].value
			if va >= 0 && vb >= 0 && va != vb {
				errs = append(errs, fmt.Errorf("edge %s: dim %d (%s vs %s) cannot unify: %d (from %s) vs %d (from %s)",
					e, i, od[i], id[i], va, cls[a].origin, vb, cls[b].origin))
				continue
			}
			if va < 0 {
				cls[a].parent = b
			} else {
				cls[b].parent = a
			}
		}
	}
	return errs
}
